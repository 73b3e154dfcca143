// What a server may get from the daemon's socket set (docs/security.md, "Servers run as
// another user"): a --user server only what its user could bind, plus what the command line
// grants; Unix sockets bound as that user and unlinked only by their inode; a live socket
// at a requested path never stalls the daemon; at most 64 resources per server; a socket
// no server holds any more is closed after a grace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "harness.h"
#include "unmodified.h"

namespace serverswap::testing {
namespace {

namespace fs = std::filesystem;
constexpr uid_t kNobody = 65534;

class Resources : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  }

  static std::vector<std::string> daemon_options() {
    return {"--takedown-timeout", "2s", "--settle", "100ms", "--ready-timeout", "10s"};
  }

  // `serverswap --user nobody OPTIONS... -- fault_server claim RESOURCES...`
  static DaemonUnderTest::Outcome claim_as_nobody(DaemonUnderTest& daemon,
                                                  std::vector<std::string> options,
                                                  const std::vector<std::string>& resources) {
    options.insert(options.begin(), {"--user", "nobody"});
    std::vector<std::string> command = {FAULT_SERVER_BIN, "claim"};
    command.insert(command.end(), resources.begin(), resources.end());
    return deploy_with(daemon, options, command);
  }
};

TEST_F(Resources, PrivilegedPortNeedsAGrantForAnotherUser) {
  uint16_t port = free_privileged_port(900, 929);
  if (port == 0) GTEST_SKIP() << "no free privileged port on loopback";
  std::string resource = "127.0.0.1:" + std::to_string(port);
  DaemonUnderTest daemon(daemon_options());
  auto refused = claim_as_nobody(daemon, {}, {resource});
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output, "port " + std::to_string(port) + " is privileged"))
      << refused.output;
  EXPECT_TRUE(contains(refused.output, "--grant " + resource)) << refused.output;
  EXPECT_TRUE(loopback_port_free(port)) << "bound though refused";

  auto granted = claim_as_nobody(daemon, {"--grant", resource}, {resource});
  ASSERT_EQ(granted.code, 0) << granted.output;
  // The grant is remembered for the command, like --listen: a swap needs no new one.
  auto again = claim_as_nobody(daemon, {}, {resource});
  EXPECT_EQ(again.code, 0) << again.output;
}

TEST_F(Resources, PrivilegedPortGrantedByListen) {
  uint16_t port = free_privileged_port(930, 959);
  if (port == 0) GTEST_SKIP() << "no free privileged port on loopback";
  std::string resource = "127.0.0.1:" + std::to_string(port);
  DaemonUnderTest daemon(daemon_options());
  auto deploy = claim_as_nobody(daemon, {"--listen", resource}, {resource});
  EXPECT_EQ(deploy.code, 0) << deploy.output;
}

// A socket the daemon holds for another application (here root's) is not handed to a
// --user server, though its port is unprivileged; a grant hands it over.
TEST_F(Resources, AnotherUsersSocketOnlyWithAGrant) {
  uint16_t port = free_ephemeral_port();
  ASSERT_NE(port, 0);
  std::string resource = "127.0.0.1:" + std::to_string(port);
  DaemonUnderTest daemon(daemon_options());
  auto roots = deploy_with(daemon, {}, {FAULT_SERVER_BIN, "claim", resource});
  ASSERT_EQ(roots.code, 0) << roots.output;
  auto refused = claim_as_nobody(daemon, {}, {resource});
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output,
                       "readyFor " + resource + ": the daemon holds it for another user (uid 0)"))
      << refused.output;
  ASSERT_EQ(daemon.server_pids().size(), 1u) << "root's server was taken down";
  // Granted: it gets the socket (and, once up, takes root's server down: a swap).
  auto granted = claim_as_nobody(daemon, {"--grant", resource}, {resource});
  EXPECT_EQ(granted.code, 0) << granted.output;
}

TEST_F(Resources, UnixSocketInARootOnlyDirectoryIsRefused) {
  TempDir dir;  // root's, 0700
  ASSERT_EQ(chmod(dir.path().c_str(), 0700), 0);
  std::string path = dir.path() + "/app.sock";
  DaemonUnderTest daemon(daemon_options());
  auto deploy = claim_as_nobody(daemon, {}, {"unix:" + path});
  EXPECT_EQ(deploy.code, 1) << deploy.output;
  EXPECT_TRUE(contains(deploy.output, "bind unix:" + path + ": Permission denied"))
      << deploy.output;
  EXPECT_FALSE(fs::exists(fs::symlink_status(path)));
}

// The attack: a --user server asks for a socket under a directory it owns, swaps that
// directory for a symlink to a root-only one, and waits for the daemon to unlink "its"
// socket there at stop.
TEST_F(Resources, SymlinkSwappedInBeforeStopDeletesNothingOfRoot) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  std::string user_dir = dir.path() + "/user";
  std::string secret = dir.path() + "/secret";
  ASSERT_EQ(mkdir(user_dir.c_str(), 0755), 0);
  ASSERT_EQ(chown(user_dir.c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(mkdir((user_dir + "/x").c_str(), 0755), 0);
  ASSERT_EQ(chown((user_dir + "/x").c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(mkdir(secret.c_str(), 0700), 0);
  std::ofstream(secret + "/app.sock") << "root's\n";

  std::string path = user_dir + "/x/app.sock";
  auto daemon = std::make_unique<DaemonUnderTest>(daemon_options());
  auto deploy = claim_as_nobody(*daemon, {}, {"unix:" + path});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_uid, kNobody) << "bound as the server's user";

  ASSERT_EQ(rename((user_dir + "/x").c_str(), (user_dir + "/x.old").c_str()), 0);
  ASSERT_EQ(symlink(secret.c_str(), (user_dir + "/x").c_str()), 0);
  Child stop({SERVERSWAP_BIN, "--socket", daemon->socket(), "stop"});
  ASSERT_EQ(stop.wait(20s), 0) << stop.output();
  ASSERT_TRUE(daemon->process().wait(20s));
  // Unlinked relative to the directory it was bound in (moved away), never through the path.
  EXPECT_FALSE(fs::exists(fs::symlink_status(user_dir + "/x.old/app.sock")))
      << daemon->process().output();
  EXPECT_EQ(read_file(secret + "/app.sock"), "root's\n");
}

// Without the swap, the daemon removes its socket file at stop.
TEST_F(Resources, OwnSocketFileIsRemovedAtStop) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  ASSERT_EQ(chown(dir.path().c_str(), kNobody, kNobody), 0);
  std::string path = dir.path() + "/app.sock";
  auto daemon = std::make_unique<DaemonUnderTest>(daemon_options());
  auto deploy = claim_as_nobody(*daemon, {}, {"unix:" + path});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  ASSERT_TRUE(fs::exists(fs::symlink_status(path)));
  daemon.reset();
  EXPECT_FALSE(fs::exists(fs::symlink_status(path)));
}

// A socket someone accepts on (slowly: its backlog is full) at the requested path: the
// readyFor fails at once with "in use", and the daemon goes on answering.
TEST_F(Resources, LiveSocketWithFullBacklogIsInUseAndStallsNothing) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);  // nobody may reach it, not write it
  std::string path = dir.path() + "/busy.sock";
  UniqueFd busy(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(bind(busy.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(chmod(path.c_str(), 0777), 0);  // nobody may connect, so it sees it alive
  ASSERT_EQ(listen(busy.get(), 0), 0);
  std::vector<UniqueFd> queued;
  for (int i = 0; i < 64; ++i) {  // bounded: a backlog of 0 takes one or two
    UniqueFd c(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    queued.push_back(std::move(c));
  }

  DaemonUnderTest daemon(daemon_options());
  for (const char* who : {"root", "nobody"}) {
    SCOPED_TRACE(who);
    auto started = std::chrono::steady_clock::now();
    auto deploy = std::string(who) == "root"
                      ? deploy_with(daemon, {}, {FAULT_SERVER_BIN, "claim", "unix:" + path}, 8s)
                      : claim_as_nobody(daemon, {}, {"unix:" + path});
    EXPECT_EQ(deploy.code, 1) << deploy.output;
    EXPECT_TRUE(contains(deploy.output, "Address already in use: something accepts on " + path))
        << deploy.output;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_TRUE(daemon.status().contains("servers"));
  }
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << "the live socket's file was left alone";
}

TEST_F(Resources, AtMost64ResourcesPerServer) {
  TempDir dir;
  std::vector<std::string> resources;
  for (int i = 0; i < 65; ++i) resources.push_back("unix:" + dir.path() + "/s" + std::to_string(i));
  DaemonUnderTest daemon(daemon_options());
  std::vector<std::string> command = {FAULT_SERVER_BIN, "claim"};
  command.insert(command.end(), resources.begin(), resources.end());
  auto deploy = deploy_with(daemon, {}, command);
  EXPECT_EQ(deploy.code, 1) << deploy.output;
  EXPECT_TRUE(contains(deploy.output,
                       "readyFor " + resources[64] + ": a server may hold at most 64 resources"))
      << deploy.output;
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir.path() + "/s64")));
}

TEST_F(Resources, SocketNoServerHoldsIsClosedAfterTheGraceAndBoundAgainLater) {
  uint16_t port = free_ephemeral_port();
  ASSERT_NE(port, 0);
  std::string resource = "127.0.0.1:" + std::to_string(port);
  auto options = daemon_options();
  options.insert(options.end(), {"--idle-socket-grace", "300ms"});
  DaemonUnderTest daemon(options);
  // It asks, then exits before it is up: no crash restart waits for its socket.
  auto failed = deploy_with(daemon, {}, {FAULT_SERVER_BIN, "crash-after-resource", resource});
  ASSERT_EQ(failed.code, 1) << failed.output;
  ASSERT_TRUE(daemon.process().wait_for_output(
      "closed " + resource + ": no server has held it for 300ms", 10s))
      << daemon.process().output();
  EXPECT_TRUE(loopback_port_free(port));
  auto later = deploy_with(daemon, {}, {FAULT_SERVER_BIN, "claim", resource});
  EXPECT_EQ(later.code, 0) << later.output;
  EXPECT_FALSE(loopback_port_free(port));
}

// A socket a live server holds is never closed, however long the grace has passed.
TEST_F(Resources, SocketAServerHoldsStaysOpen) {
  uint16_t port = free_ephemeral_port();
  ASSERT_NE(port, 0);
  std::string resource = "127.0.0.1:" + std::to_string(port);
  auto options = daemon_options();
  options.insert(options.end(), {"--idle-socket-grace", "100ms"});
  DaemonUnderTest daemon(options);
  auto up = deploy_with(daemon, {}, {FAULT_SERVER_BIN, "claim", resource});
  ASSERT_EQ(up.code, 0) << up.output;
  // Another server exits (which runs the sweep); the held socket stays.
  auto other = deploy_with(daemon, {}, {FAULT_SERVER_BIN, "crash-after-resource", "127.0.0.1:0"});
  ASSERT_EQ(other.code, 1) << other.output;
  ASSERT_TRUE(daemon.process().wait_for_output("closed 127.0.0.1:0", 10s));
  EXPECT_FALSE(contains(daemon.process().output(), "closed " + resource));
  EXPECT_FALSE(loopback_port_free(port));
}

}  // namespace
}  // namespace serverswap::testing
