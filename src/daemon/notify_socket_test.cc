#include "daemon/notify_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/unique_fd.h"

namespace serverswap::daemon {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(ParseNotifyFields, LinesInOrder) {
  EXPECT_EQ(parse_notify_fields("READY=1\nSTATUS=a=b\n\nnoise\n=x\nMAINPID=42"),
            (Fields{{"READY", "1"}, {"STATUS", "a=b"}, {"MAINPID", "42"}}));
  EXPECT_TRUE(parse_notify_fields("").empty());
}

void send_to(const std::string& address, const std::string& text) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, address.data() + 1, address.size() - 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  ASSERT_EQ(
      ::sendto(fd.get(), text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&addr), len),
      static_cast<ssize_t>(text.size()))
      << strerror(errno);
}

TEST(NotifySocket, RandomNamesAreFreshAndBindOnce) {
  std::string a = NotifySocket::random_name(), b = NotifySocket::random_name();
  EXPECT_NE(a, b);
  EXPECT_TRUE(a.starts_with("serverswap-notify-")) << a;
  EXPECT_EQ(a.size(), std::string("serverswap-notify-").size() + 32) << a;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto first = NotifySocket::open(
        &loop, a, [](const NotifyMessage&) {}, [](const NotifyRefusal&) {});
    ASSERT_TRUE(first.ok()) << first.status().message();
    // Someone holding the name already: refused, never shared.
    auto second = NotifySocket::open(
        &loop, a, [](const NotifyMessage&) {}, [](const NotifyRefusal&) {});
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.status().message().find("in use"), std::string::npos)
        << second.status().message();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(NotifySocket, DeliversDatagramsFromTheMainProcessOrItsDeclaredMainPidOnly) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<NotifyMessage> got;
  std::vector<NotifyRefusal> rejected;
  {
    auto socket = NotifySocket::open(
        &loop, NotifySocket::random_name(), [&](const NotifyMessage& m) { got.push_back(m); },
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
