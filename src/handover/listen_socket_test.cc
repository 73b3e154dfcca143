#include "handover/listen_socket.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>

namespace serverswap::handover {
namespace {

protocol::Resource parse(std::string_view text) {
  return *protocol::parse_resource(text);
}

TEST(BindListener, EphemeralLoopbackPortIsReported) {
  auto s = bind_listener(parse("127.0.0.1:0"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->address.starts_with("127.0.0.1:"));
  EXPECT_NE(s->address, "127.0.0.1:0");
}

TEST(BindListener, AddressInUseNamesTheResourceAndErrno) {
  auto first = bind_listener(parse("127.0.0.1:0"));
  ASSERT_TRUE(first.ok());
  auto again = bind_listener(parse(first->address));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(), "bind " + first->address + ": Address already in use");
}

TEST(BindListener, DualStackAnyAddress) {
  auto s = bind_listener(parse(":0"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  // Either dual-stack IPv6 or the IPv4 fallback on kernels without IPv6.
  EXPECT_TRUE(s->address.starts_with("[::]:") || s->address.starts_with("0.0.0.0:")) << s->address;
}

TEST(BindListener, UnixSocketReplacesAStaleFileButNotALiveOne) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "a.sock").string();
  auto resource = parse("unix:" + path);
  {
    auto live = bind_listener(resource);
    ASSERT_TRUE(live.ok()) << live.status().message();
    auto second = bind_listener(resource);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos);
  }
  // The first socket is closed now; its file is stale and gets replaced.
  auto replaced = bind_listener(resource);
  EXPECT_TRUE(replaced.ok()) << replaced.status().message();
  std::filesystem::remove_all(dir);
}

TEST(BindListener, RecordsTheSocketInodeAndUnlinksOnlyIt) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-inode-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "real");
  std::string path = (dir / "real" / "a.sock").string();
  auto bound = bind_listener(parse("unix:" + path));
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_EQ(bound->dev, st.st_dev);
  EXPECT_EQ(bound->ino, st.st_ino);
  // Another inode at the path now: left alone.
  EXPECT_EQ(unlink_socket_file(path.c_str(), st.st_dev, st.st_ino + 1), EEXIST);
  EXPECT_TRUE(std::filesystem::exists(path));
  // Reached through a symlinked directory: refused, nothing unlinked.
  std::filesystem::create_directory_symlink(dir / "real", dir / "link");
  std::string via_link = (dir / "link" / "a.sock").string();
  int err = unlink_socket_file(via_link.c_str(), st.st_dev, st.st_ino);
  EXPECT_TRUE(err == ENOTDIR || err == ELOOP) << std::strerror(err);
  EXPECT_TRUE(std::filesystem::exists(path));
  // Its own inode by a real path: unlinked; gone already: fine.
  EXPECT_EQ(unlink_socket_file(path.c_str(), st.st_dev, st.st_ino), 0);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(unlink_socket_file(path.c_str(), st.st_dev, st.st_ino), 0);
  std::filesystem::remove_all(dir);
}

TEST(BindListener, FullBacklogCountsAsAlive) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-backlog-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "busy.sock").string();
  auto busy = bind_listener(parse("unix:" + path));
  ASSERT_TRUE(busy.ok());
  ASSERT_EQ(listen(busy->fd.get(), 0), 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  std::vector<UniqueFd> queued;
  for (int i = 0; i < 64; ++i) {  // bounded: a backlog of 0 takes one or two
    UniqueFd c(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
    queued.push_back(std::move(c));
  }
  auto again = bind_listener(parse("unix:" + path));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(),
            "bind unix:" + path + ": Address already in use: something accepts on " + path);
  std::filesystem::remove_all(dir);
}

// Set by the tests below: what unix_bind_test_hook does at each stage.
std::function<void(int)> g_hook;

struct HookGuard {
  explicit HookGuard(std::function<void(int)> f) {
    g_hook = std::move(f);
    unix_bind_test_hook = [](int stage) { g_hook(stage); };
  }
  ~HookGuard() {
    unix_bind_test_hook = nullptr;
    g_hook = nullptr;
  }
};

// The attack on the bind-as-user child: the directory is swapped for a symlink to a
// directory holding someone else's socket of the same name right after the bind. The inode
// recorded, the path shown and the unlink all stay with the directory the bind used.
TEST(BindListener, ADirectorySwappedAfterTheBindChangesNeitherTheRecordNorTheUnlink) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-swap-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "x");
  std::filesystem::create_directories(dir / "pub");
  auto victim = bind_listener(parse("unix:" + (dir / "pub" / "a.sock").string()));
  ASSERT_TRUE(victim.ok()) << victim.status().message();
  struct stat victim_st {};
  ASSERT_EQ(lstat((dir / "pub" / "a.sock").c_str(), &victim_st), 0);
  Result<ListenSocket> bound = Status::error("");
  {
    HookGuard hook([&](int stage) {
      if (stage != 1) return;
      std::filesystem::rename(dir / "x", dir / "moved");
      std::filesystem::create_directory_symlink(dir / "pub", dir / "x");
    });
    bound = bind_listener(parse("unix:" + (dir / "x" / "a.sock").string()));
  }
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  struct stat ours {};
  ASSERT_EQ(lstat((dir / "moved" / "a.sock").c_str(), &ours), 0);
  EXPECT_EQ(bound->ino, ours.st_ino);
  EXPECT_NE(bound->ino, victim_st.st_ino);
  EXPECT_EQ(bound->path, (dir / "moved" / "a.sock").string());
  EXPECT_EQ(bound->name, "a.sock");
  // Unlinked relative to the directory fd: ours goes, the other one stays.
  EXPECT_EQ(
      unlink_socket_at(bound->dir.get(), bound->name.c_str(), bound->dev, bound->ino, geteuid()),
      0);
  EXPECT_FALSE(std::filesystem::exists(dir / "moved" / "a.sock"));
  EXPECT_TRUE(std::filesystem::exists(dir / "pub" / "a.sock"));
  // The victim's own inode under another owner: left alone.
  EXPECT_EQ(unlink_socket_at(victim->dir.get(), "a.sock", victim_st.st_dev, victim_st.st_ino,
                             geteuid() + 1),
            EEXIST);
  EXPECT_TRUE(std::filesystem::exists(dir / "pub" / "a.sock"));
  std::filesystem::remove_all(dir);
}

// Swapped between opening the directory and the bind: the file is made elsewhere, so the
// directory holds no socket of this bind and nothing is recorded (never unlinked for it).
TEST(BindListener, ADirectorySwappedBeforeTheBindRecordsNoInode) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-swap0-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "x");
  std::filesystem::create_directories(dir / "other");
  Result<ListenSocket> bound = Status::error("");
  {
    HookGuard hook([&](int stage) {
      if (stage != 0) return;
      std::filesystem::rename(dir / "x", dir / "moved");
      std::filesystem::create_directory_symlink(dir / "other", dir / "x");
    });
    bound = bind_listener(parse("unix:" + (dir / "x" / "a.sock").string()));
  }
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  EXPECT_TRUE(std::filesystem::exists(dir / "other" / "a.sock"));
  EXPECT_EQ(bound->ino, 0u);
  EXPECT_EQ(bound->dev, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace serverswap::handover
