// --user/--group: the daemon, as root, binds the sockets (privileged ports too) and starts
// servers as another user, who still get their sockets and talk to the daemon (through a
// socket of their own user) but may not send it control requests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "harness.h"

namespace serverswap::testing {
namespace {

constexpr uid_t kNobody = 65534;

// "Uid:" or "Gid:" of /proc/PID/status: real, effective, saved, filesystem.
std::string proc_field(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with(field)) return line.substr(0, line.find_last_not_of(" \t") + 1);
  return "";
}

class User : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  }

  static void expect_runs_as_nobody(pid_t pid) {
    EXPECT_EQ(proc_field(pid, "Uid:"), "Uid:\t65534\t65534\t65534\t65534");
    EXPECT_EQ(proc_field(pid, "Gid:"), "Gid:\t65534\t65534\t65534\t65534");
    EXPECT_EQ(proc_field(pid, "Groups:"), "Groups:");  // no supplementary groups
  }
};

TEST_F(User, ServerRunsAsNobodyAndStillGetsItsSocket) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"});
  auto deploy =
      serverswap(daemon, {"--user", "65534", "--group", "65534", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  expect_runs_as_nobody(pids[0]);
  EXPECT_TRUE(http_ok(port_of(daemon.address_of("127.0.0.1:0"))));
  // A reload runs the new generation as the same user.
  auto reload = serverswap(daemon, {"reload"});
  ASSERT_EQ(reload.code, 0) << reload.output;
  auto reloaded = daemon.server_pids();
  ASSERT_EQ(reloaded.size(), 1u);
  EXPECT_NE(reloaded[0], pids[0]);
  expect_runs_as_nobody(reloaded[0]);
}

TEST_F(User, PrivilegedPortBoundByTheDaemonServedByNobody) {
  {
    // Only where port 80 is free on loopback; the daemon binds it again below.
    UniqueFd probe(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      GTEST_SKIP() << "127.0.0.1:80 is taken here";
  }
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"});
  // A port its user could not bind: the operator grants it (resources_test.cc: refused without).
  auto deploy = serverswap(
      daemon, {"--user", "nobody", "--grant", "127.0.0.1:80", HELLO_SERVER_BIN, "127.0.0.1:80"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(proc_field(pids[0], "Uid:"), "Uid:\t65534\t65534\t65534\t65534");
  EXPECT_TRUE(http_ok(80));
}

// `serverswap daemon --user`: the default for every deploy. The server may speak the
// server protocol but not deploy (which would run commands as root).
TEST_F(User, DaemonWideUserAndNoControlRequestsFromServers) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms", "--user", "nobody"});
  char pattern[] = "/tmp/serverswap-test-XXXXXX";
  ASSERT_TRUE(mkdtemp(pattern));
  std::string dir = pattern;
  chmod(dir.c_str(), 0777);
  std::string out = dir + "/status.out";
  std::string script = std::string(SERVERSWAP_BIN) + " status > " + out + " 2>&1; exec " +
                       HELLO_SERVER_BIN + " 127.0.0.1:0";
  auto deploy = daemon.deploy({"/bin/sh", "-c", script});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(proc_field(pids[0], "Uid:"), "Uid:\t65534\t65534\t65534\t65534");
  std::string refused = read_file(out);
  EXPECT_NE(refused.find("a server of another user may not send control requests"),
            std::string::npos)
      << refused;
  std::filesystem::remove_all(dir);
}

TEST_F(User, UnknownUserFailsTheDeploy) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"});
  auto deploy =
      serverswap(daemon, {"--user", "no-such-user-here", HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(deploy.code, 1) << deploy.output;
  EXPECT_NE(deploy.output.find("--user no-such-user-here: no such user"), std::string::npos)
      << deploy.output;
}

}  // namespace
}  // namespace serverswap::testing
