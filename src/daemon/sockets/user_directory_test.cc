#include "daemon/sockets/user_directory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "base/testing/temp_dir.h"

namespace serverswap::daemon {
namespace {

// A directory under /tmp (or `below` it) with `mode`, and TMPDIR pointing at it while this
// lives.
struct TmpdirFor {
  explicit TmpdirFor(mode_t mode, const std::string& below = "")
      : dir("user-directory-test", 0755),
        root(dir.path()),
        path(below.empty() ? root : root + "/" + below) {
    std::filesystem::create_directories(path);
    ::chmod(path.c_str(), mode);
    ::setenv("TMPDIR", path.c_str(), 1);
  }
  ~TmpdirFor() { ::unsetenv("TMPDIR"); }
  serverswap::testing::TempDir dir;
  std::string root, path;
};

TEST(UserDirectory, ControlSocketNamesRoundTripAndOnlyTheCanonicalSpellingCounts) {
  EXPECT_EQ(control_socket_name(65534), "control-uid65534.sock");
  EXPECT_EQ(uid_of_control_socket("control-uid65534.sock"), std::optional<uid_t>(65534));
  EXPECT_EQ(uid_of_control_socket("control-uid0.sock"), std::optional<uid_t>(0));
  for (const char* other :
       {"control-uid.sock", "control-uid007.sock", "control-uid-1.sock",
        "control-uid99999999999.sock", "control-uid12.sockx", "0123456789abcdef0123456789abcdef"})
    EXPECT_EQ(uid_of_control_socket(other), std::nullopt) << other;
}

TEST(UserDirectory, IsMadeIn0711InASafeTmpdirAndRemovedWhenEmpty) {
  TmpdirFor tmp(0755);
  UserDirectory dir;
  auto path = dir.path();
  ASSERT_TRUE(path.ok()) << path.status().message();
  EXPECT_EQ(std::filesystem::path(*path).parent_path(), tmp.path);
  EXPECT_TRUE(is_user_directory_name(*path));
  struct stat st {};
  ASSERT_EQ(::lstat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  auto again = dir.path();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *path);  // made once
  dir.remove_if_empty();
  EXPECT_FALSE(std::filesystem::exists(*path));
  EXPECT_TRUE(dir.current().empty());
}

TEST(UserDirectory, ATmpdirOthersMayWriteIsPassedOverForTmpWithAReason) {
  TmpdirFor tmp(0777);
  std::string warning;
  auto chosen = safe_temporary_directory(&warning);
  ASSERT_TRUE(chosen.ok()) << chosen.status().message();
  EXPECT_EQ(*chosen, "/tmp");
  EXPECT_NE(warning.find("TMPDIR " + tmp.path + " is not used"), std::string::npos) << warning;
  EXPECT_NE(warning.find("writable by others, not sticky"), std::string::npos) << warning;
  // Below such a directory, too: it could be renamed away with what is in it.
  TmpdirFor below(0777, "inner");
  ::chmod(below.path.c_str(), 0755);
  ::chmod(below.root.c_str(), 0777);
  warning.clear();
  auto inner = safe_temporary_directory(&warning);
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(*inner, "/tmp");
  EXPECT_NE(warning.find("it lies in " + below.root), std::string::npos) << warning;
}

// A symbolic link on the way that another user owns is theirs to point elsewhere later
// (to a directory of theirs, where they would bind the servers' sockets first): passed over,
// wherever it points now. A relative TMPDIR is passed over with a reason too.
TEST(UserDirectory, ATmpdirThroughAnotherUsersSymlinkOrRelativeIsPassedOverWithAReason) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a symbolic link to another user";
  TmpdirFor target(0755);
  std::string link = target.root + "-link";
  ASSERT_EQ(::symlink(target.path.c_str(), link.c_str()), 0);
  ASSERT_EQ(::lchown(link.c_str(), 65534, 65534), 0);
  ::setenv("TMPDIR", link.c_str(), 1);
  std::string warning;
  auto chosen = safe_temporary_directory(&warning);
  ASSERT_TRUE(chosen.ok()) << chosen.status().message();
  EXPECT_EQ(*chosen, "/tmp");
  EXPECT_NE(warning.find("a symbolic link that belongs to uid 65534"), std::string::npos)
      << warning;
  // The same link, root's: only root can point it elsewhere.
  ASSERT_EQ(::lchown(link.c_str(), 0, 0), 0);
  warning.clear();
  auto roots = safe_temporary_directory(&warning);
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(*roots, link);
  EXPECT_TRUE(warning.empty()) << warning;
  ::unlink(link.c_str());

  ::setenv("TMPDIR", "relative/tmp", 1);
  warning.clear();
  auto relative = safe_temporary_directory(&warning);
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(*relative, "/tmp");
  EXPECT_NE(warning.find("TMPDIR relative/tmp is not used"), std::string::npos) << warning;
}

TEST(UserDirectory, ATmpdirTooLongForASocketPathMakesNothingAndSaysTheLimit) {
  TmpdirFor tmp(0755, std::string(60, 'd'));
  UserDirectory dir;
  auto path = dir.path();
  ASSERT_FALSE(path.ok());
  EXPECT_NE(path.status().message().find("set TMPDIR to a directory of at most 50 bytes"),
            std::string::npos)
      << path.status().message();
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path));
}

TEST(UserDirectory, OnlyADirectoryOfOursWithMode0711IsReused) {
  TmpdirFor tmp(0755);
  std::string made;
  {
    UserDirectory first;
    auto path = first.path();
    ASSERT_TRUE(path.ok());
    made = *path;
  }
  UserDirectory again;
  ASSERT_TRUE(again.reuse(made).ok());
  EXPECT_EQ(again.current(), made);
  ::chmod(made.c_str(), 0755);  // others may list it now
  UserDirectory listed;
  Status refused = listed.reuse(made);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("chmod 0711"), std::string::npos) << refused.message();
  EXPECT_TRUE(listed.current().empty());
  ::chmod(made.c_str(), 0711);
  EXPECT_FALSE(UserDirectory().reuse(tmp.path + "/somewhere-else").ok());  // not our name
  std::string link = tmp.path + "/serverswap-users-link00";
  ASSERT_EQ(::symlink(made.c_str(), link.c_str()), 0);
  EXPECT_FALSE(UserDirectory().reuse(link).ok());  // O_NOFOLLOW
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(made.c_str(), 65534, 65534), 0);
    Status theirs = UserDirectory().reuse(made);
    EXPECT_NE(theirs.message().find("belongs to uid 65534"), std::string::npos) << theirs.message();
  }
}

}  // namespace
}  // namespace serverswap::daemon
