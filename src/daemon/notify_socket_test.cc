#include "daemon/notify_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
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

TEST(NotifySocket, DeliversDatagramsFromTheServersSessionOnly) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<NotifyMessage> got;
  std::vector<std::string> rejected;
  {
    auto socket = NotifySocket::open(
        &loop, "serverswap-test-" + std::to_string(getpid()),
        [&](const NotifyMessage& m) { got.push_back(m); },
        [&](const std::string& why) { rejected.push_back(why); });
    ASSERT_TRUE(socket.ok()) << socket.status().message();
    // This test process is alive and not in session 1: refused.
    (*socket)->accept_sender(1, getuid());
    send_to((*socket)->address(), "READY=1\n");
    uv_run(&loop, UV_RUN_NOWAIT);
    EXPECT_TRUE(got.empty());
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_NE(rejected[0].find("not in the server's session"), std::string::npos) << rejected[0];
    (*socket)->accept_sender(getsid(0), getuid());
    send_to((*socket)->address(), "READY=1\nSTATUS=serving");
    uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].sender, getpid());
    EXPECT_EQ(got[0].fields, (Fields{{"READY", "1"}, {"STATUS", "serving"}}));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace serverswap::daemon
