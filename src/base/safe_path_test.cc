#include "base/safe_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "base/testing/temp_dir.h"

namespace serverswap {
namespace {

constexpr uid_t kNobody = 65534;

// A fresh directory under /tmp (sticky, root's) that is the test's own: safe for it.
struct Tree {
  testing::TempDir dir{"safe-path-test", 0755};
  std::string at(const std::string& name) const { return dir.path() + "/" + name; }
  std::string mkdir(const std::string& name, mode_t mode = 0755) const {
    std::string path = at(name);
    EXPECT_EQ(::mkdir(path.c_str(), 0700), 0) << path << ": " << std::strerror(errno);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0) << path;
    return path;
  }
  std::string link(const std::string& name, const std::string& target, uid_t owner) const {
    std::string path = at(name);
    EXPECT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path << ": " << std::strerror(errno);
    if (owner != ::geteuid()) {
      EXPECT_EQ(::lchown(path.c_str(), owner, owner), 0) << path;
    }
    return path;
  }
};

bool root() {
  return ::geteuid() == 0;
}

TEST(SafePath, OwnDirectoriesAndOwnLinksAreSafe) {
  Tree t;
  std::string real = t.mkdir("real");
  std::string sub = t.mkdir("real/sub", 0700);
  EXPECT_TRUE(find_unsafe_component(sub)->unsafe.empty());
  // Links of ours, absolute and relative (".." resolved against the directory the link is
  // in, as the kernel does), and through one another.
  t.link("abs", real, ::geteuid());
  t.link("rel", "real/../real/./sub", ::geteuid());
  t.link("chain", t.at("abs") + "/sub", ::geteuid());
  for (const char* name : {"abs/sub", "rel", "chain", "abs/../real/sub"}) {
    auto found = find_unsafe_component(t.at(name));
    ASSERT_TRUE(found.ok()) << name << ": " << found.status().message();
    EXPECT_TRUE(found->unsafe.empty()) << name << ": " << found->unsafe << " " << found->why;
  }
  // /tmp is writable by all but sticky: what is taken from it is checked in turn.
  EXPECT_TRUE(find_unsafe_component("/tmp")->unsafe.empty());
}

TEST(SafePath, ADirectoryOthersMayWriteIsNamedAlsoWhenOnlyALinkLeadsThere) {
  Tree t;
  std::string open = t.mkdir("open", 0777);
  t.mkdir("open/inner", 0700);
  auto direct = find_unsafe_component(open + "/inner");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->unsafe, open);
  EXPECT_NE(direct->why.find("mode 0777 (writable by others, not sticky)"), std::string::npos)
      << direct->why;
  // Reached through a link of ours only: the directory it passes through is checked too.
  t.mkdir("safe");
  t.link("safe/to-inner", "../open/inner", ::geteuid());
  auto via = find_unsafe_component(t.at("safe/to-inner"));
  ASSERT_TRUE(via.ok());
  EXPECT_EQ(via->unsafe, open) << via->why;
  // Sticky, it may be passed (what is in it cannot be renamed by others).
  ASSERT_EQ(::chmod(open.c_str(), 01777), 0);
  EXPECT_TRUE(find_unsafe_component(t.at("safe/to-inner"))->unsafe.empty());
}

TEST(SafePath, ALinkLoopAndAMissingComponentAreErrorsNamingThePath) {
  Tree t;
  t.link("a", t.at("b"), ::geteuid());
  t.link("b", t.at("a"), ::geteuid());
  auto loop = find_unsafe_component(t.at("a"));
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find(std::strerror(ELOOP)), std::string::npos)
      << loop.status().message();
  auto missing = find_unsafe_component(t.at("nothing/here"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(t.at("nothing") + ": " + std::strerror(ENOENT)),
            std::string::npos)
      << missing.status().message();
  t.mkdir("d");
  ASSERT_EQ(::close(::creat(t.at("d/file").c_str(), 0600)), 0);
  auto file = find_unsafe_component(t.at("d/file/x"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find(std::strerror(ENOTDIR)), std::string::npos);
}

// Another user's link is theirs to point elsewhere later, wherever it points now: refused by
// its owner, on the path as written and wherever the resolution meets it.
TEST(SafePath, AnotherUsersLinkIsRefusedWhereverItIsMet) {
  if (!root()) GTEST_SKIP() << "needs root to give a symbolic link to another user";
  Tree t;
  std::string target = t.mkdir("target", 0700);
  std::string theirs = t.link("theirs", target, kNobody);
  auto written = find_unsafe_component(theirs);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written->unsafe, theirs);
  EXPECT_NE(written->why.find("a symbolic link that belongs to uid 65534 (neither root nor you)"),
            std::string::npos)
      << written->why;
  EXPECT_NE(written->why.find("to " + target), std::string::npos) << written->why;

  // A root-owned link to a root-owned directory that holds nobody's link: the second link is
  // met only by following the first (realpath() would have hidden it).
  t.mkdir("hop");
  std::string inner = t.link("hop/inner", target, kNobody);
  std::string outer = t.link("outer", t.at("hop/inner"), 0);
  auto via = find_unsafe_component(outer);
  ASSERT_TRUE(via.ok());
  EXPECT_EQ(via->unsafe, inner);
  EXPECT_NE(via->why.find("belongs to uid 65534"), std::string::npos) << via->why;
  // The same below the link: a path through it.
  t.mkdir("target/sub");
  auto below = find_unsafe_component(outer + "/sub");
  ASSERT_TRUE(below.ok());
  EXPECT_EQ(below->unsafe, inner);

  // Made root's, the same links are safe.
  ASSERT_EQ(::lchown(inner.c_str(), 0, 0), 0);
  EXPECT_TRUE(find_unsafe_component(outer + "/sub")->unsafe.empty());
}

// A root-owned link to another user's directory that holds a link: the directory is refused
// before anything in it is followed.
TEST(SafePath, ALinkIntoAnotherUsersDirectoryIsRefusedAtThatDirectory) {
  if (!root()) GTEST_SKIP() << "needs root to give a directory to another user";
  Tree t;
  std::string target = t.mkdir("target", 0700);
  std::string theirs = t.mkdir("theirs", 0755);
  ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
  t.link("theirs/next", target, 0);
  std::string outer = t.link("outer", t.at("theirs/next"), 0);
  auto found = find_unsafe_component(outer);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->unsafe, theirs);
  EXPECT_NE(found->why.find("which belongs to uid 65534 (neither root nor you)"), std::string::npos)
      << found->why;
}

// ".." after a symbolic link goes to the parent of the link's target, as the kernel goes;
// after a directory, to the directory before it; "." and repeated slashes go.
TEST(SafePath, DotDotIsTakenOutAsTheKernelResolvesIt) {
  Tree t;
  t.mkdir("a");
  t.mkdir("a/b");
  t.mkdir("t");
  t.mkdir("t/x");
  t.link("a/link", t.at("t/x"), ::geteuid());
  std::string real = std::filesystem::canonical(t.dir.path()).string();
  EXPECT_EQ(*resolve_dot_dot(t.at("a/link/../c.sock")), real + "/t/c.sock");
  EXPECT_EQ(*resolve_dot_dot(t.at("a/b/../c.sock")), t.at("a/c.sock"));
  EXPECT_EQ(*resolve_dot_dot(t.at("a/./b//c.sock")), t.at("a/b/c.sock"));
  EXPECT_EQ(*resolve_dot_dot("/../.."), "/");
  // Whatever the kernel reaches through the path, the result reaches too.
  struct stat by_kernel {
  }, by_result{};
  ASSERT_EQ(::stat(t.at("a/link/../x").c_str(), &by_kernel), 0);
  ASSERT_EQ(::stat(resolve_dot_dot(t.at("a/link/../x"))->c_str(), &by_result), 0);
  EXPECT_EQ(by_kernel.st_ino, by_result.st_ino);
  // A component before ".." that does not exist: an error naming it, as the kernel's ENOENT.
  auto missing = resolve_dot_dot(t.at("none/../c.sock"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(t.at("none") + ": No such file"), std::string::npos)
      << missing.status().message();
}

}  // namespace
}  // namespace serverswap
