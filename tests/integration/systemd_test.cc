// serverswap daemon under systemd: the daemon's own sd_notify messages, read from a real
// datagram socket standing in for systemd; listening sockets passed to the daemon by a
// socket unit (LISTEN_FDS); reload by request and by SIGHUP; orphans reaped.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "harness.h"

namespace serverswap::testing {
namespace {

uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000u +
         static_cast<uint64_t>(now.tv_nsec) / 1'000u;
}

// systemd's end of NOTIFY_SOCKET: an abstract datagram socket, as systemd's own is
// reachable in the abstract namespace too.
class FakeSystemd {
 public:
  FakeSystemd() : address_("@serverswap-test-notify-" + std::to_string(std::random_device{}())) {
    fd_.reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, address_.data() + 1, address_.size() - 1);
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
      throw std::runtime_error(std::string("bind notify socket: ") + strerror(errno));
  }
  const std::string& address() const { return address_; }
  // The next datagram, or "" after `timeout`.
  std::string next(Millis timeout = 10s) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string address_;
  UniqueFd fd_;
};

// "RELOADING=1\nMONOTONIC_USEC=N" with N taken between `before` and now.
void expect_reloading(const std::string& message, uint64_t before) {
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_TRUE(message.starts_with(prefix)) << message;
  uint64_t usec = std::stoull(message.substr(prefix.size()));
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, monotonic_usec());
  EXPECT_EQ(message, prefix + std::to_string(usec));
}

TEST(Systemd, DaemonSpeaksSdNotifyAroundStartReloadAndStop) {
  FakeSystemd systemd;
  TempDir dir;
  std::string socket = dir.path() + "/control.sock";
  Child daemon({SERVERSWAP_BIN, "--socket", socket, "--takedown-timeout", "5s", "--settle", "200ms",
                "daemon"},
               {{"NOTIFY_SOCKET", systemd.address()}});
  EXPECT_EQ(systemd.next(), "READY=1\nSTATUS=listening on " + socket);
  ASSERT_TRUE(daemon.wait_for_output("daemon listening on", 10s)) << daemon.output();

  auto first = serverswap(socket, {HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_EQ(first.output.find("NOTIFY_SOCKET"), std::string::npos);

  uint64_t before = monotonic_usec();
  auto reload = serverswap(socket, {"reload"});
  EXPECT_EQ(reload.code, 0) << reload.output;
  EXPECT_NE(reload.output.find("reloaded '" HELLO_SERVER_BIN " 127.0.0.1:0': pid"),
            std::string::npos)
      << reload.output;
  expect_reloading(systemd.next(), before);
  EXPECT_EQ(systemd.next(), "READY=1");

  before = monotonic_usec();
  daemon.signal(SIGHUP);
  expect_reloading(systemd.next(), before);
  EXPECT_EQ(systemd.next(), "READY=1");
  EXPECT_TRUE(daemon.wait_for_output("reload done: 1 redeployed, 0 failed", 10s));

  auto stop = serverswap(socket, {"stop"});
  EXPECT_EQ(stop.code, 0) << stop.output;
  EXPECT_EQ(systemd.next(), "STOPPING=1");
  EXPECT_EQ(daemon.wait(10s), 0) << daemon.output();
  EXPECT_EQ(systemd.next(100ms), "") << "nothing after STOPPING=1";
}

TEST(Systemd, ReloadRedeploysEveryUpServerAndReportsFailures) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"});
  TempDir dir;
  std::string broken = dir.path() + "/broken";
  // A server whose next start fails once `broken` exists: a bad release.
  std::string script = "test -e " + broken + " && { echo bad release; exit 7; }; exec " +
                       HELLO_SERVER_BIN + " 127.0.0.1:0";
  daemon.deploy_options = {"--name", "flaky"};  // two apps (both run hello_server)
  auto first = daemon.deploy({"/bin/sh", "-c", script});
  ASSERT_EQ(first.code, 0) << first.output;
  std::string other = "unix:" + dir.path() + "/other.sock";
  daemon.deploy_options = {"--name", "steady"};
  auto second = daemon.deploy({HELLO_SERVER_BIN, other});
  ASSERT_EQ(second.code, 0) << second.output;
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 2u);

  auto reload = serverswap(daemon.socket(), {"reload"});
  EXPECT_EQ(reload.code, 0) << reload.output;
  auto reloaded = daemon.server_pids();
  ASSERT_EQ(reloaded.size(), 2u) << reload.output;
  for (pid_t pid : pids) EXPECT_FALSE(process_exists(pid)) << "old server " << pid << " runs";

  std::ofstream(broken).put('x');
  reload = serverswap(daemon.socket(), {"reload"});
  EXPECT_EQ(reload.code, 1) << reload.output;
  EXPECT_NE(reload.output.find("failed: exited with status 7 before it was up"), std::string::npos)
      << reload.output;
  EXPECT_NE(reload.output.find("reloaded '" HELLO_SERVER_BIN " " + other + "'"), std::string::npos)
      << reload.output;
  // The bad release never took its old server down.
  EXPECT_TRUE(process_exists(reloaded[0])) << reload.output;
  EXPECT_TRUE(http_ok(port_of(daemon.address_of("127.0.0.1:0"))));
}

TEST(Systemd, ReloadWithNoDaemonExits3) {
  TempDir dir;
  auto reload = serverswap(dir.path() + "/control.sock", {"reload"});
  EXPECT_EQ(reload.code, 3) << reload.output;
}

// A socket bound by "systemd" (this test), passed at fd 3 with LISTEN_FDS: a server asking
// for its address gets that very socket, not one the daemon bound.
TEST(Systemd, DaemonAdoptsSocketsFromASocketUnit) {
  TempDir dir;
  // Inherited by the shim (no CLOEXEC), at a number clear of 3.
  int listener = fcntl(UniqueFd(socket(AF_INET, SOCK_STREAM, 0)).get(), F_DUPFD, 10);
  ASSERT_GE(listener, 10);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 128), 0);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string resource = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  struct stat socket_stat {};
  fstat(listener, &socket_stat);

  std::string socket = dir.path() + "/control.sock";
  // The shim puts the socket at fd 3 and LISTEN_PID to the pid that execs the daemon.
  std::string shim = "LISTEN_PID=$$ exec \"$0\" --socket " + socket + " daemon 3<&" +
                     std::to_string(listener) + " " + std::to_string(listener) + "<&-";
  Child daemon({"/bin/bash", "-c", shim, SERVERSWAP_BIN},
               {{"LISTEN_FDS", "1"}, {"LISTEN_FDNAMES", "web"}});
  close(listener);
  ASSERT_TRUE(daemon.wait_for_output("daemon listening on", 10s)) << daemon.output();
  EXPECT_NE(daemon.output().find("adopted " + resource), std::string::npos) << daemon.output();

  auto deploy = serverswap(socket, {HELLO_SERVER_BIN, resource});
  ASSERT_EQ(deploy.code, 0) << deploy.output << daemon.output();
  EXPECT_TRUE(http_ok(ntohs(addr.sin_port)));
  auto status = nlohmann::json::parse(serverswap(socket, {"status", "--json"}).output);
  pid_t server = status["servers"][0]["pid"].get<pid_t>();
  // The server holds the test's socket (same inode), and no LISTEN_* reached it.
  std::string wanted = "socket:[" + std::to_string(socket_stat.st_ino) + "]";
  bool holds_it = false;
  for (const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(server) + "/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(fd.path(), ec).string() == wanted) holds_it = true;
  }
  EXPECT_TRUE(holds_it) << "server " << server << " does not hold " << wanted;
  std::string env = read_file("/proc/" + std::to_string(server) + "/environ");
  EXPECT_EQ(env.find("LISTEN_FDNAMES=web"), std::string::npos);
  EXPECT_EQ(serverswap(socket, {"stop"}).code, 0);
  EXPECT_EQ(daemon.wait(10s), 0) << daemon.output();
}

std::string proc_state(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("State:")) return line;
  return "";
}

pid_t parent_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("PPid:")) return std::stoi(line.substr(5));
  return -1;
}

// A server leaves an orphan behind; it is reparented to the daemon (a subreaper), which
// reaps it when it exits instead of leaving a zombie.
TEST(Systemd, DaemonReapsOrphansOfItsServers) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"});
  TempDir dir;
  std::string fifo = dir.path() + "/fifo", pid_file = dir.path() + "/orphan.pid";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // The subshell exits at once, orphaning its background child, which waits on the fifo.
  std::string script = "(sh -c 'echo $$ > " + pid_file + "; exec cat " + fifo +
                       "' > /dev/null &); exec " + HELLO_SERVER_BIN + " 127.0.0.1:0";
  auto deploy = daemon.deploy({"/bin/sh", "-c", script});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  pid_t orphan = -1;
  ASSERT_TRUE(eventually(
      [&] {
        std::ifstream in(pid_file);
        return static_cast<bool>(in >> orphan);
      },
      10s));
  ASSERT_TRUE(eventually([&] { return parent_of(orphan) == daemon.process().pid(); }, 10s))
      << "orphan " << orphan << " has parent " << parent_of(orphan);
  { std::ofstream(fifo).put('x'); }  // the orphan's cat reads to EOF and exits
  EXPECT_TRUE(daemon.process().wait_for_output("reaped orphan pid " + std::to_string(orphan), 10s))
      << daemon.process().output();
  EXPECT_TRUE(eventually([&] { return !process_exists(orphan); }, 10s)) << proc_state(orphan);
}

}  // namespace
}  // namespace serverswap::testing
