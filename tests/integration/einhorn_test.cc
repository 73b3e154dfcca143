// einhorn's manual ACK: a worker with no serverswap client gets its sockets in EINHORN_FD_*
// and says it is up with {"command":"worker:ack","pid":N} on EINHORN_SOCK_PATH. Only a
// process in the server's own session is believed.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

const std::vector<std::string> kListen = {"--listen", "127.0.0.1:0"};

TEST(Einhorn, WorkerAckMakesTheServerUpAndASecondDeploySwapsIt) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "20s"});
  auto first = deploy_with(daemon, kListen, {FAULT_SERVER_BIN, "einhorn-ack"});
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_TRUE(contains(first.output, "is up (einhorn worker:ack from pid")) << first.output;
  pid_t old_pid = daemon.server_pids().at(0);

  // --confirm 100ms: worker:ack's default window would add 5 s to the swap.
  auto second = deploy_with(daemon, {"--confirm", "100ms"}, {FAULT_SERVER_BIN, "einhorn-ack"});
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_FALSE(process_exists(old_pid));
  ASSERT_EQ(daemon.server_pids().size(), 1u);
}

// An ack naming a starting server's pid, sent from outside its session, changes nothing.
TEST(Einhorn, AckFromOutsideTheServersSessionIsRefused) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "3s"});
  std::vector<std::string> argv = {"--socket", daemon.socket(),  "--listen", "127.0.0.1:0",
                                   "--",       FAULT_SERVER_BIN, "no-client"};
  Child deploy([&] {
    std::vector<std::string> all = {SERVERSWAP_BIN};
    all.insert(all.end(), argv.begin(), argv.end());
    return all;
  }());
  ASSERT_TRUE(deploy.wait_for_output("started generation 1", 10s)) << deploy.output();
  pid_t pid = daemon.server_pids().at(0);

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, daemon.socket().c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string ack = "{\"command\":\"worker:ack\",\"pid\":" + std::to_string(pid) + "}\n";
  ASSERT_EQ(::write(fd, ack.data(), ack.size()), static_cast<ssize_t>(ack.size()));
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char reply[4096];
  ssize_t n = ::read(fd, reply, sizeof reply);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_TRUE(contains(std::string(reply, size_t(n)), "not a process of a server"));

  // Still not up: the deploy fails at --ready-timeout.
  EXPECT_EQ(deploy.wait(20s), 1) << deploy.output();
  EXPECT_TRUE(contains(deploy.output(), "never said it was ready")) << deploy.output();
}

}  // namespace
}  // namespace serverswap::testing
