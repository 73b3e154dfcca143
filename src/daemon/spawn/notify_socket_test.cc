#include "daemon/spawn/notify_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/testing/temp_dir.h"
#include "base/unique_fd.h"
#include "daemon/testing/uv_loop.h"

namespace serverswap::daemon {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(ParseNotifyFields, LinesInOrder) {
  EXPECT_EQ(parse_notify_fields("READY=1\nSTATUS=a=b\n\nnoise\n=x\nMAINPID=42"),
            (Fields{{"READY", "1"}, {"STATUS", "a=b"}, {"MAINPID", "42"}}));
  EXPECT_TRUE(parse_notify_fields("").empty());
}

// "@name" (abstract) or a path.
void send_to(const std::string& address, const std::string& text) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (address.starts_with("@")) addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  ASSERT_EQ(
      ::sendto(fd.get(), text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&addr), len),
      static_cast<ssize_t>(text.size()))
      << strerror(errno);
}

using serverswap::testing::TempDir;

using testing::Loop;

Result<std::unique_ptr<NotifySocket>> open_at(uv_loop_t* loop, const std::string& address,
                                              uid_t uid = ::geteuid()) {
  return NotifySocket::open(
      loop, address, uid, [](const NotifyMessage&) {}, [](const NotifyRefusal&) {});
}

TEST(NotifySocket, RandomNamesAreFresh) {
  std::string a = NotifySocket::random_name(), b = NotifySocket::random_name();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 32u) << a;
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
}

// Servers of older versions keep their abstract name: it binds once, never shared.
TEST(NotifySocket, AbstractNamesOfOlderVersionsBindOnce) {
  Loop l;
  std::string name = "@serverswap-notify-" + NotifySocket::random_name();
  auto first = open_at(&l.loop, name);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ((*first)->address(), name);
  auto second = open_at(&l.loop, name);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
}

TEST(NotifySocket, APathSocketIsThe0600FileOfItsUidAndGoesWithTheSocket) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/" + NotifySocket::random_name();
  {
    // A stale file (a socket an earlier run left) is replaced.
    std::ofstream(path) << "stale";
    Loop l;
    auto socket = open_at(&l.loop, path);
    ASSERT_TRUE(socket.ok()) << socket.status().message();
    EXPECT_EQ((*socket)->address(), path);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
    send_to(path, "STATUS=x");  // reachable by its path
    if (::geteuid() == 0) {
      // Another uid's server: the file is given to that uid.
      std::string other = dir.path() + "/" + NotifySocket::random_name();
      auto theirs = open_at(&l.loop, other, 65534);
      ASSERT_TRUE(theirs.ok()) << theirs.status().message();
      ASSERT_EQ(::lstat(other.c_str(), &st), 0);
      EXPECT_EQ(st.st_uid, 65534u);
      EXPECT_EQ(st.st_mode & 07777, 0600u);
    }
  }
  // Destroyed: its file is gone, the directory stays.
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
  EXPECT_TRUE(std::filesystem::is_directory(dir.path()));
}

TEST(NotifySocket, ADirectoryOthersMayListOrWriteIsRefused) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  Loop l;
  auto socket = open_at(&l.loop, dir.path() + "/" + NotifySocket::random_name());
  ASSERT_FALSE(socket.ok());
  EXPECT_NE(socket.status().message().find("has mode 0755"), std::string::npos)
      << socket.status().message();
  // A symbolic link in its place: refused (O_NOFOLLOW), nothing bound where it points.
  TempDir target;
  std::string link = dir.path() + "/link";
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  ASSERT_EQ(::symlink(target.path().c_str(), link.c_str()), 0);
  auto through = open_at(&l.loop, link + "/" + NotifySocket::random_name());
  ASSERT_FALSE(through.ok());
  EXPECT_TRUE(std::filesystem::is_empty(target.path()));
}

TEST(NotifyDirectory, ASocketFileNoLongerNeededIsRemovedOnlyFromADirectoryOfOurs) {
  TempDir dir;
  std::string shared = dir.path() + "/serverswap-notify-abcdef";
  ASSERT_EQ(::mkdir(shared.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 0711), 0);
  std::ofstream(shared + "/a") << "";
  std::ofstream(shared + "/b") << "";
  remove_notify_socket_file(shared + "/a");
  EXPECT_FALSE(std::filesystem::exists(shared + "/a"));
  EXPECT_TRUE(std::filesystem::exists(shared + "/b"));  // the directory stays while not empty
  remove_notify_socket_file(shared + "/b");
  EXPECT_FALSE(std::filesystem::exists(shared));  // its last socket: gone with it
  // A directory others may write is not ours to clean: nothing is removed there.
  std::string open_dir = dir.path() + "/open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  std::ofstream(open_dir + "/c") << "";
  remove_notify_socket_file(open_dir + "/c");
  EXPECT_TRUE(std::filesystem::exists(open_dir + "/c"));
  remove_notify_socket_file("serverswap-notify-abstract");  // an abstract name: nothing
}

TEST(NotifyDirectory, PrepareMakesAPrivateDirectoryAndRemovesOnlyUnrecordedSockets) {
  TempDir dir;
  std::string socket_path = dir.path() + "/c.sock";
  NotifyDirectory notify(socket_path);
  EXPECT_EQ(notify.private_dir(), socket_path + ".notify");
  ASSERT_TRUE(notify.prepare({}).ok());
  struct stat st {};
  ASSERT_EQ(::lstat(notify.private_dir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  std::string kept = notify.private_dir() + "/kept", stale = notify.private_dir() + "/stale";
  std::ofstream(kept) << "";
  std::ofstream(stale) << "";
  ASSERT_TRUE(notify.prepare({kept, "/elsewhere/stale", "abstract-name"}).ok());
  EXPECT_TRUE(std::filesystem::exists(kept));
  EXPECT_FALSE(std::filesystem::exists(stale));
  // Others may list it: refused, with the fix.
  ASSERT_EQ(::chmod(notify.private_dir().c_str(), 0750), 0);
  Status refused = notify.prepare({});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("chmod 0700"), std::string::npos) << refused.message();
  EXPECT_TRUE(std::filesystem::exists(kept));
}

TEST(NotifyDirectory, OwnServersInThePrivateDirectoryOthersAndLongPathsInASharedOne) {
  TempDir dir, tmp;
  ASSERT_EQ(::setenv("TMPDIR", tmp.path().c_str(), 1), 0);
  NotifyDirectory notify(dir.path() + "/c.sock");
  ASSERT_TRUE(notify.prepare({}).ok());
  auto own = notify.new_path(::geteuid());
  ASSERT_TRUE(own.ok()) << own.status().message();
  EXPECT_EQ(std::filesystem::path(*own).parent_path(), notify.private_dir());
  auto theirs = notify.new_path(::geteuid() + 1);
  ASSERT_TRUE(theirs.ok()) << theirs.status().message();
  std::string shared = std::filesystem::path(*theirs).parent_path();
  EXPECT_TRUE(shared.starts_with(tmp.path() + "/serverswap-users-")) << shared;
  struct stat st {};
  ASSERT_EQ(::lstat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  // A control socket whose SOCKET.notify/NAME would not fit in sun_path (108 bytes).
  std::string deep = dir.path() + "/" + std::string(60, 'd');
  ASSERT_EQ(::mkdir(deep.c_str(), 0700), 0);
  NotifyDirectory long_one(deep + "/c.sock");
  ASSERT_TRUE(long_one.prepare({}).ok());
  auto fallback = long_one.new_path(::geteuid());
  ASSERT_TRUE(fallback.ok()) << fallback.status().message();
  EXPECT_TRUE(fallback->starts_with(tmp.path() + "/serverswap-users-")) << *fallback;
  // TMPDIR too long as well: an error that names the limit.
  std::string long_tmp = tmp.path() + "/" + std::string(80, 't');
  ASSERT_EQ(::mkdir(long_tmp.c_str(), 0700), 0);
  ASSERT_EQ(::setenv("TMPDIR", long_tmp.c_str(), 1), 0);
  NotifyDirectory neither(deep + "/c.sock");
  auto none = neither.new_path(::geteuid());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("at most 107 bytes"), std::string::npos)
      << none.status().message();
  ::unsetenv("TMPDIR");
}

TEST(NotifySocket, DeliversDatagramsFromTheMainProcessOrItsDeclaredMainPidOnly) {
  TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<NotifyMessage> got;
  std::vector<NotifyRefusal> rejected;
  {
    auto socket = NotifySocket::open(
        &loop, dir.path() + "/" + NotifySocket::random_name(), ::geteuid(),
        [&](const NotifyMessage& m) { got.push_back(m); },
        [&](const NotifyRefusal& r) { rejected.push_back(r); });
    ASSERT_TRUE(socket.ok()) << socket.status().message();
    // This test process is alive and not the main process (pid 1 is): refused, with its name.
    (*socket)->accept_sender(1, getuid());
    send_to((*socket)->address(), "READY=1\n");
    uv_run(&loop, UV_RUN_NOWAIT);
    EXPECT_TRUE(got.empty());
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_NE(rejected[0].why.find("is not the server's main process 1"), std::string::npos)
        << rejected[0].why;
    EXPECT_EQ(rejected[0].sender, getpid());
    EXPECT_TRUE(rejected[0].ready);
    EXPECT_NE(rejected[0].comm, "?");

    // A child that sends and exits before the datagram is read: refused as gone.
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      send_to((*socket)->address(), "READY=1\n");
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    uv_run(&loop, UV_RUN_NOWAIT);
    EXPECT_TRUE(got.empty());
    ASSERT_EQ(rejected.size(), 2u);
    EXPECT_NE(rejected[1].why.find("has exited"), std::string::npos) << rejected[1].why;

    // The main process is heard; MAINPID= from it lets the declared pid speak.
    (*socket)->accept_sender(getpid(), getuid());
    send_to((*socket)->address(), "READY=1\nSTATUS=serving");
    uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].sender, getpid());
    EXPECT_EQ(got[0].fields, (Fields{{"READY", "1"}, {"STATUS", "serving"}}));

    int ends[2];
    ASSERT_EQ(pipe(ends), 0);
    pid_t declared = fork();
    ASSERT_GE(declared, 0);
    if (declared == 0) {
      close(ends[1]);
      char c;
      if (read(ends[0], &c, 1) == 1) send_to((*socket)->address(), "STATUS=child\nMAINPID=1");
      (void)!read(ends[0], &c, 1);  // lives until the test closes its end
      _exit(0);
    }
    send_to((*socket)->address(), "MAINPID=" + std::to_string(declared));
    uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_EQ(write(ends[1], "x", 1), 1);
    // Read while the child still lives: it waits on the pipe's end-of-file to exit.
    pollfd readable{(*socket)->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&readable, 1, 5000), 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    close(ends[1]);
    close(ends[0]);
    ASSERT_EQ(got.size(), 3u);
    // The declared pid's own MAINPID= is not taken.
    EXPECT_EQ(got[2].fields, (Fields{{"STATUS", "child"}}));
    ASSERT_EQ(waitpid(declared, &status, 0), declared);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace serverswap::daemon
