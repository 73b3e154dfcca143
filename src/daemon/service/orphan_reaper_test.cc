#include "daemon/service/orphan_reaper.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace serverswap::daemon {
namespace {

// An orphan is charged to its real uid: a process of uid 65534 that exec'd a set-user-ID
// program runs with euid 0 (its /proc entry is root's) and is still 65534's.
TEST(OrphanReaper, AnOrphanIsTheRealUidsEvenAsAZombieWithAnotherEffectiveUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to set a real uid apart from the effective";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(::setresuid(65534, 0, 0) == 0 ? 0 : 1);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);  // a zombie
  struct stat proc {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pid)).c_str(), &proc), 0);
  EXPECT_EQ(proc.st_uid, 0u);  // what the effective uid would have said
  EXPECT_EQ(real_uid_of(pid), std::optional<uid_t>(65534));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(real_uid_of(pid), std::nullopt);  // reaped: nothing to read
}

}  // namespace
}  // namespace serverswap::daemon
