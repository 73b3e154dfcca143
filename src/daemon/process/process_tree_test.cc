#include "daemon/process/process_tree.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace serverswap::daemon {
namespace {

TEST(ProcessTree, StartTimeOfThisProcessIsStableAndAGoneProcessHasNone) {
  auto first = process_start_time(getpid());
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_GT(*first, 0u);
  EXPECT_EQ(*process_start_time(getpid()), *first);
  EXPECT_FALSE(process_start_time(0x3fffffff).ok());
}

TEST(ProcessTree, ParentAndComm) {
  EXPECT_EQ(parent_pid(getpid()), getppid());
  EXPECT_EQ(parent_pid(0x3fffffff), -1);
  EXPECT_NE(process_comm(getpid()), "?");
  EXPECT_EQ(process_comm(0x3fffffff), "?");
}

TEST(ProcessTree, DescendantsCountAndOthersDoNot) {
  uint64_t started = *process_start_time(getpid());
  int ends[2];
  ASSERT_EQ(pipe(ends), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setsid();  // another session does not matter
    close(ends[1]);
    char c;
    (void)!read(ends[0], &c, 1);
    _exit(0);
  }
  EXPECT_TRUE(is_process_of(getpid(), getpid(), started));
  EXPECT_TRUE(is_process_of(child, getpid(), started));
  EXPECT_TRUE(is_process_of(child, getpid(), 0));
  // A recycled pid (another start time) is not the server.
  EXPECT_FALSE(is_process_of(child, getpid(), started + 1));
  // The parent is not a process of its child; unrelated processes are not either.
  EXPECT_FALSE(is_process_of(getpid(), child, 0));
  EXPECT_FALSE(is_process_of(getppid(), getpid(), started));
  EXPECT_FALSE(is_process_of(0, getpid(), started));
  EXPECT_FALSE(is_process_of(0x3fffffff, getpid(), started));
  close(ends[1]);
  close(ends[0]);
  int status = 0;
  waitpid(child, &status, 0);
}

}  // namespace
}  // namespace serverswap::daemon
