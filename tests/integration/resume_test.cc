// Restarts of the daemon itself (docs/protocol.md section 11): a daemon killed with SIGKILL
// in the middle of a swap, and started again, takes its servers back as they resume; an
// upgrade re-executes the daemon in its own process; neither refuses or fails a request.
// The servers are resume_server, which speaks the protocol (and its resume) by hand.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

const std::vector<std::string> kDaemonOptions = {"--takedown-timeout", "5s", "--adopt-timeout",
                                                 "10s"};

// A second daemon on the socket of `first` (whose daemon was killed).
std::unique_ptr<Child> restart_daemon(const DaemonUnderTest& first) {
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", first.socket()};
  argv.insert(argv.end(), kDaemonOptions.begin(), kDaemonOptions.end());
  argv.push_back("daemon");
  auto daemon = std::make_unique<Child>(argv);
  EXPECT_TRUE(daemon->wait_for_output("daemon listening on", 10s)) << daemon->output();
  return daemon;
}

void stop_daemon(const DaemonUnderTest& first, Child& daemon) {
  Child stop({SERVERSWAP_BIN, "--socket", first.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.output();
}

// The daemon's log (`daemon`, the process that was upgraded) says a server resumed after the
// upgrade's exec; waits up to 10 s.
bool resumed_after_upgrade(Child& daemon) {
  return eventually(
      [&] {
        std::string log = daemon.output();
        size_t upgraded = log.find("upgrading: executing");
        return upgraded != std::string::npos &&
               log.find("resumed, up", upgraded) != std::string::npos;
      },
      10s);
}

nlohmann::json server_with_pid(DaemonUnderTest& daemon, pid_t pid) {
  nlohmann::json status = daemon.status();
  for (const auto& s : status["servers"])
    if (s["pid"] == pid) return s;
  return nullptr;
}

verify::LoadOptions load_on(const std::string& address) {
  auto [host, port] = split_address(address);
  verify::LoadOptions options;
  options.host = host;
  options.port = port;
  options.duration = std::chrono::seconds(120);  // an upper bound; stopped by the test
  options.connections = 4;
  options.mode = verify::Mode::kClose;  // every request is a new connect()
  options.rate = 300;
  return options;
}

TEST(Resume, KillNineMidSwapThenANewDaemonFinishesItAndSwapsAgainUnderLoad) {
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  std::string address = daemon.address_of("127.0.0.1:0");
  pid_t old_pid = daemon.server_pids().at(0);
  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options = load_on(address);
  options.on_progress = [&](uint64_t ok, uint64_t) { ok_so_far = ok; };
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  // Mid-swap: the new server holds the socket but is not up when the daemon dies.
  auto swap = daemon.start_deploy({RESUME_SERVER_BIN, "127.0.0.1:0", "--up-on-signal"});
  ASSERT_TRUE(swap->wait_for_output("handed the listening socket", 10s)) << swap->output();
  pid_t new_pid = daemon.server_pids().at(1);
  std::string state_path = daemon.socket() + ".state.json";
  ASSERT_TRUE(eventually(
      [&] {
        std::string state = read_file(state_path);
        return state.find("\"pid\":" + std::to_string(new_pid)) != std::string::npos &&
               state.find("\"ready\"") != std::string::npos;
      },
      5s))
      << read_file(state_path);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  // The deploy that was watching the swap lost its daemon.
  EXPECT_EQ(swap->wait(10s), 3) << swap->output();
  EXPECT_NE(swap->output().find("lost the daemon"), std::string::npos) << swap->output();
  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 100, 10s)) << "servers stopped serving";

  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  ASSERT_TRUE(again->wait_for_output("resumed, still starting", 10s)) << again->output();
  const int fds_resumed = settled_open_fds(again->pid());
  EXPECT_EQ(server_with_pid(daemon, old_pid)["state"], "up");
  // The new server comes up now: the new daemon takes the old one down.
  ASSERT_EQ(kill(new_pid, SIGUSR1), 0);
  ASSERT_TRUE(eventually([&] { return !process_exists(old_pid); }, 10s)) << again->output();
  EXPECT_EQ(daemon.server_pids(), std::vector<pid_t>{new_pid});
  EXPECT_EQ(server_with_pid(daemon, new_pid)["state"], "up");

  // And the next swap is an ordinary one, numbered after the adopted generations.
  auto next = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(next.code, 0) << next.output << again->output();
  EXPECT_NE(next.output.find("(generation 3)"), std::string::npos) << next.output;
  // Exited; reaped by whoever it was reparented to when the first daemon died.
  EXPECT_TRUE(eventually([&] { return !process_exists(new_pid); }, 5s));
  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 200, 10s));
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  EXPECT_GT(report.counts.ok, 300u) << verify::to_text(report);
  EXPECT_LE(settled_open_fds(again->pid()), fds_resumed)
      << "the daemon holds more fds after the swap than after the resume";
  stop_daemon(daemon, *again);
  EXPECT_FALSE(std::filesystem::exists(state_path)) << "a clean stop removes the state file";
}

// A server the state file does not list -- its write failed (disk full), then the daemon was
// killed -- resumes with the next daemon: of the daemon's own uid, it is taken back with its
// command read from /proc, as the newest server, so `status` shows it, the next deploy of
// its command replaces it on its port (no "address in use"), and `stop` reaches it.
TEST(Resume, AServerTheStateFileMissedIsTakenBackWhenItResumes) {
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t unlisted = daemon.server_pids().at(0);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  // As if the write that would have listed it had failed.
  ASSERT_TRUE(std::filesystem::remove(daemon.socket() + ".state.json"));

  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  EXPECT_NE(again->output().find("is not in the state file"), std::string::npos) << again->output();
  EXPECT_EQ(server_with_pid(daemon, unlisted)["state"], "up");
  auto next = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(next.code, 0) << next.output << again->output();
  EXPECT_NE(next.output.find("replac"), std::string::npos) << next.output;
  EXPECT_TRUE(eventually([&] { return !process_exists(unlisted); }, 10s)) << again->output();
  pid_t replacement = daemon.server_pids().at(0);
  stop_daemon(daemon, *again);
  EXPECT_TRUE(eventually([&] { return !process_exists(replacement); }, 10s));
}

TEST(Resume, UpgradeUnderLoadKeepsThePidTheSocketsAndTheServers) {
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t server = daemon.server_pids().at(0);
  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options = load_on(daemon.address_of("127.0.0.1:0"));
  options.on_progress = [&](uint64_t ok, uint64_t) { ok_so_far = ok; };
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";
  const int fds_before = settled_open_fds(daemon.process().pid());

  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << daemon.process().output();
  EXPECT_NE(upgrade.output().find("upgraded: daemon pid " + std::to_string(daemon.process().pid()) +
                                  " runs serverswap"),
            std::string::npos)
      << upgrade.output();
  Child& log = daemon.process();
  ASSERT_TRUE(log.wait_for_output("resumed, up", 10s)) << log.output();
  EXPECT_NE(log.output().find("adopted 127.0.0.1:0"), std::string::npos) << log.output();
  EXPECT_EQ(daemon.server_pids(), std::vector<pid_t>{server});
  // One more while the adopted server lives: the pidfd its exit is watched through.
  EXPECT_LE(settled_open_fds(daemon.process().pid()), fds_before + 1);

  auto next = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(next.code, 0) << next.output << log.output();
  EXPECT_FALSE(process_exists(server));
  // The old server is still the daemon's child: its exit status is the daemon's to read.
  // (Waited for: the line may still be in the pipe to the reader when the deploy returns.)
  EXPECT_TRUE(log.wait_for_output(
      "server " + std::to_string(server) + " (gen 1): exited with status 0", 5s))
      << log.output();
  EXPECT_LE(settled_open_fds(daemon.process().pid()), fds_before) << "a descriptor leaked";
  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 100, 10s));
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
}

// An upgrade asked for while a deploy is in flight waits for it (it is not carried across the
// exec): the deploy's command gets its true outcome, and the upgrade happens after.
TEST(Resume, AnUpgradeWaitsForTheDeployInFlightWhoseCommandGetsItsTrueOutcome) {
  DaemonUnderTest daemon(kDaemonOptions);
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  std::string gate = daemon.dir() + "/gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  auto deploy = daemon.start_deploy(
      {"/bin/sh", "-c", "read go < " + gate + " && exec " + RESUME_SERVER_BIN + " 127.0.0.1:0"});
  ASSERT_TRUE(deploy->wait_for_output("started generation", 10s)) << deploy->output();

  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_TRUE(upgrade.wait_for_output("upgrade: waiting for 1 deploy in flight to end", 10s))
      << upgrade.output();
  EXPECT_FALSE(upgrade.wait(0ms).has_value());
  EXPECT_EQ(daemon.process().output().find("upgrading: executing"), std::string::npos);

  UniqueFd writer(open(gate.c_str(), O_RDWR | O_CLOEXEC));  // kept open: see race_test.cc
  ASSERT_TRUE(writer.valid());
  ASSERT_EQ(write(writer.get(), "go\n", 3), 3);
  ASSERT_EQ(deploy->wait(30s), 0) << deploy->output() << daemon.process().output();
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << daemon.process().output();
  std::string log = daemon.process().output();
  EXPECT_LT(log.find("is up (sent serverUp)"), log.find("upgrading: executing")) << log;
  EXPECT_EQ(daemon.server_pids().size(), 1u) << daemon.status().dump();
}

// The C++ client library (hello_server) reconnects and resumes by itself, after a SIGKILL
// of the daemon and after an upgrade; swaps go on with no failed request.
TEST(Resume, TheClientLibraryResumesAfterKillNineAndAfterAnUpgradeUnderLoad) {
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t server = daemon.server_pids().at(0);
  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options = load_on(daemon.address_of("127.0.0.1:0"));
  options.on_progress = [&](uint64_t ok, uint64_t) { ok_so_far = ok; };
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  EXPECT_EQ(server_with_pid(daemon, server)["state"], "up");

  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << again->output();
  ASSERT_TRUE(resumed_after_upgrade(*again)) << again->output();

  auto next = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(next.code, 0) << next.output << again->output();
  EXPECT_TRUE(eventually([&] { return !process_exists(server); }, 5s));
  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 100, 10s));
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  stop_daemon(daemon, *again);
}

// An app's versions survive a SIGKILL of the daemon and an upgrade (the state file keeps
// them): `rollback web` after each deploys the version before, and no request fails.
TEST(Resume, AnAppsVersionsSurviveKillNineAndAnUpgradeSoRollbackStillWorksUnderLoad) {
  DaemonUnderTest daemon(kDaemonOptions);
  daemon.deploy_options = {"--name", "web"};
  uint16_t port = free_ephemeral_port();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto serves = [&](const std::string& body) {
    return eventually([&] { return http_get(port, "/").find(body) != std::string::npos; }, 10s);
  };
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v1"}).code, 0);
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v2"}).code, 0);
  ASSERT_TRUE(serves("v2"));
  std::string state_path = daemon.socket() + ".state.json";
  ASSERT_TRUE(
      eventually([&] { return read_file(state_path).find("\"v1\"") != std::string::npos; }, 5s))
      << read_file(state_path);
  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options = load_on(address);
  options.on_progress = [&](uint64_t ok, uint64_t) { ok_so_far = ok; };
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  auto back = serverswap(daemon, {"rollback", "web"});
  ASSERT_EQ(back.code, 0) << back.output << again->output();
  EXPECT_TRUE(serves("v1")) << again->output();

  // And across an upgrade: the rollback's version is current, v2 the one before it.
  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << again->output();
  ASSERT_TRUE(resumed_after_upgrade(*again)) << again->output();
  auto forth = serverswap(daemon, {"rollback", "web"});
  ASSERT_EQ(forth.code, 0) << forth.output << again->output();
  EXPECT_TRUE(serves("v2")) << again->output();
  // `status APP` lists the app's versions (plain status leaves them out).
  auto web = serverswap(daemon, {"status", "--json", "web"});
  ASSERT_EQ(web.code, 0) << web.output;
  auto status = nlohmann::json::parse(web.output);
  ASSERT_EQ(status["apps"].size(), 1u) << status.dump();
  EXPECT_EQ(status["apps"][0]["versions"].size(), 2u) << status.dump();

  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 100, 10s));
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  stop_daemon(daemon, *again);
}

// A --listen program has no client library: the new daemon copies its listening socket
// back from its fd 3 with pidfd_getfd (the tests run as root), and the next deploy of the
// same command swaps on that very socket.
TEST(Resume, ListenSocketsOfAProgramWithoutAClientAreTakenBackWithPidfdGetfd) {
  DaemonUnderTest daemon(kDaemonOptions);
  std::string report = daemon.dir() + "/report";
  // --confirm 100ms: READY=1's default window would add 5 s to the swap.
  std::vector<std::string> deploy = {SERVERSWAP_BIN,   "--socket",  daemon.socket(), "--listen",
                                     "127.0.0.1:0",    "--confirm", "100ms",         "--",
                                     LISTEN_PROBE_BIN, report};
  Child first(deploy);
  ASSERT_EQ(first.wait(30s), 0) << first.output();
  std::string address = daemon.address_of("127.0.0.1:0");
  pid_t probe = daemon.server_pids().at(0);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());

  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("took its listening sockets back with pidfd_getfd", 10s))
      << again->output();
  EXPECT_EQ(daemon.address_of("127.0.0.1:0"), address);
  EXPECT_EQ(server_with_pid(daemon, probe)["state"], "up");
  Child next(deploy);
  ASSERT_EQ(next.wait(30s), 0) << next.output() << again->output();
  EXPECT_TRUE(eventually([&] { return !process_exists(probe); }, 10s));
  pid_t replacement = daemon.server_pids().at(0);
  std::string text = read_file(report + "." + std::to_string(replacement));
  EXPECT_NE(text.find("fd 3 name 127.0.0.1_0 address " + address), std::string::npos) << text;
  stop_daemon(daemon, *again);
}

// A server with a client library that got its socket by --listen lists nothing in its resume
// hello (the socket came at spawn, not by readyFor). It still holds the resource after
// resuming, so the next deploy takes it down.
TEST(Resume, AClientLibraryServerWithAListenSocketStillHoldsItAfterResuming) {
  DaemonUnderTest daemon(kDaemonOptions);
  std::vector<std::string> deploy = {SERVERSWAP_BIN,    "--socket", daemon.socket(),  "--listen",
                                     "web=127.0.0.1:0", "--",       HELLO_SERVER_BIN, "web"};
  Child first(deploy);
  ASSERT_EQ(first.wait(30s), 0) << first.output();
  pid_t old = daemon.server_pids().at(0);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());

  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  EXPECT_EQ(server_with_pid(daemon, old)["resources"].size(), 1u) << again->output();
  Child next(deploy);
  ASSERT_EQ(next.wait(30s), 0) << next.output() << again->output();
  EXPECT_TRUE(eventually([&] { return !process_exists(old); }, 10s)) << again->output();
  // Its onTakedown("web") named the socket as LISTEN_FDNAMES does: a takeDown, not a signal.
  EXPECT_NE(again->output().find("sent takeDown"), std::string::npos) << again->output();
  stop_daemon(daemon, *again);
}

// VARIABLE's value in the environment of process `pid`, "" when absent.
std::string environment_of(pid_t pid, const std::string& variable) {
  std::string environ = read_file("/proc/" + std::to_string(pid) + "/environ");
  std::string key = variable + "=";
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    if (end == std::string::npos) end = environ.size();
    if (environ.compare(at, key.size(), key) == 0)
      return environ.substr(at + key.size(), end - at - key.size());
    at = end + 1;
  }
  return "";
}

// The sockets of --user servers (their control socket and NOTIFY_SOCKET) lie in one
// directory of root's, mode 0711, in TMPDIR; a daemon restarted after SIGKILL, and an
// upgraded one, bind them again at the same paths, so the server resumes and is taken down
// by the next deploy; at stop nothing is left in TMPDIR.
TEST(Resume, SocketsOfAUserServerKeepTheirPathsAcrossKillNineAndAnUpgradeAndGoAtStop) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  ScopedTmpdir tmp(0755);
  DaemonUnderTest daemon(kDaemonOptions);
  const std::vector<std::string> deploy = {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"};
  auto first = serverswap(daemon, deploy);
  ASSERT_EQ(first.code, 0) << first.output << daemon.process().output();
  pid_t server = daemon.server_pids().at(0);
  std::string control = environment_of(server, "SERVERSWAP_SOCKET");
  std::string notify = environment_of(server, "NOTIFY_SOCKET");
  std::string dir = std::filesystem::path(control).parent_path();
  EXPECT_EQ(std::filesystem::path(dir).parent_path(), tmp.path()) << control;
  EXPECT_EQ(std::filesystem::path(notify).parent_path(), dir) << notify;
  struct stat st {};
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  auto expect_socket_of_nobody = [](const std::string& path) {
    struct stat s {};
    ASSERT_EQ(lstat(path.c_str(), &s), 0) << path;
    EXPECT_TRUE(S_ISSOCK(s.st_mode)) << path;
    EXPECT_EQ(s.st_uid, 65534u) << path;
    EXPECT_EQ(s.st_mode & 07777, 0600u) << path;
  };
  expect_socket_of_nobody(control);

  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  expect_socket_of_nobody(control);
  EXPECT_EQ(tmp.entries().size(), 1u);  // the same directory, no second one

  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << again->output();
  ASSERT_TRUE(resumed_after_upgrade(*again)) << again->output();
  expect_socket_of_nobody(control);
  EXPECT_EQ(tmp.entries().size(), 1u);

  // The resumed server hears its takeDown from the next deploy, on the same paths.
  auto next = serverswap(daemon, deploy);
  ASSERT_EQ(next.code, 0) << next.output << again->output();
  EXPECT_TRUE(eventually([&] { return !process_exists(server); }, 10s)) << again->output();
  pid_t replacement = daemon.server_pids().at(0);
  EXPECT_EQ(environment_of(replacement, "SERVERSWAP_SOCKET"), control);
  stop_daemon(daemon, *again);
  EXPECT_TRUE(tmp.entries().empty()) << tmp.entries().front();
}

// A Unix socket bound as a --user server's user is recorded with its inode and owner in the
// state file: a daemon restarted after SIGKILL, and an upgraded one, hand it to that user's
// next server (not as root's) and unlink it at stop, as the daemon that bound it would have.
TEST(Resume, AUnixSocketBoundForAUserServerIsHandedOnAndUnlinkedAfterKillNineAndAnUpgrade) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  ScopedTmpdir tmp(0755);
  std::string dir = tmp.path() + "/of-nobody";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  const std::string socket_file = dir + "/app.sock";
  DaemonUnderTest daemon(kDaemonOptions);
  const std::vector<std::string> deploy = {"--user", "nobody", HELLO_SERVER_BIN,
                                           "unix:" + socket_file};
  auto first = serverswap(daemon, deploy);
  ASSERT_EQ(first.code, 0) << first.output << daemon.process().output();
  pid_t server = daemon.server_pids().at(0);
  struct stat bound {};
  ASSERT_EQ(lstat(socket_file.c_str(), &bound), 0);
  EXPECT_EQ(bound.st_uid, 65534u);

  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << again->output();
  ASSERT_TRUE(resumed_after_upgrade(*again)) << again->output();

  // Still nobody's socket: the next server of nobody is handed it and the old one goes.
  auto next = serverswap(daemon, deploy);
  ASSERT_EQ(next.code, 0) << next.output << again->output();
  EXPECT_TRUE(eventually([&] { return !process_exists(server); }, 10s)) << again->output();
  struct stat still {};
  ASSERT_EQ(lstat(socket_file.c_str(), &still), 0);
  EXPECT_EQ(still.st_ino, bound.st_ino) << "the same socket, never bound again";
  stop_daemon(daemon, *again);
  EXPECT_FALSE(std::filesystem::exists(socket_file)) << again->output();
}

// After SIGKILL, a daemon listens again only on the control sockets of users that still have
// a server: with nobody's server gone meanwhile, nothing of nobody's is left in TMPDIR.
TEST(Resume, AControlSocketOfAUserWithNoServerLeftIsNotListenedOnAfterKillNine) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  ScopedTmpdir tmp(0755);
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = serverswap(daemon, {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output << daemon.process().output();
  pid_t server = daemon.server_pids().at(0);
  std::string control = environment_of(server, "SERVERSWAP_SOCKET");
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  ASSERT_EQ(kill(server, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return !process_exists(server); }, 10s));

  auto again = restart_daemon(daemon);
  EXPECT_FALSE(std::filesystem::exists(control)) << again->output();
  EXPECT_TRUE(tmp.entries().empty()) << tmp.entries().front();
  stop_daemon(daemon, *again);
}

// The 4 MiB line limit is for the daemon's own user and root (a deploy carries the whole
// environment); a peer of any other uid -- here a --user server on its control socket --
// keeps the 64 KiB of docs/protocol.md: a longer line gets an error and the connection ends,
// a shorter one is read and answered.
TEST(Resume, AnotherUsersControlConnectionKeepsTheSixtyFourKibLineLimit) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  ScopedTmpdir tmp(0755);
  DaemonUnderTest daemon(kDaemonOptions);
  const char* kSendLongLines = R"(
import os, socket
def send(pad):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ['SERVERSWAP_SOCKET'])
    s.settimeout(10)
    try:
        s.sendall(b'{"hello":{"pad":"' + b'a' * pad + b'"}}\n')
    except OSError:
        pass
    got = b''
    try:
        while b'"error"' not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    return got.decode(errors='replace').replace('\n', ' ')
print('REPLY' + '-UNDER ' + send(60000), flush=True)
print('REPLY' + '-OVER ' + send(70000), flush=True)
)";
  auto sent = serverswap(daemon, {"--ready-timeout", "5s", "--user", "nobody", "--",
                                  "/usr/bin/python3", "-c", kSendLongLines});
  EXPECT_EQ(sent.code, 1) << sent.output;  // it never says it is up
  ASSERT_TRUE(daemon.process().wait_for_output("REPLY-OVER ", 10s)) << daemon.process().output();
  std::string log = daemon.process().output();
  std::string under = log.substr(log.find("REPLY-UNDER "));
  under = under.substr(0, under.find('\n'));
  std::string over = log.substr(log.find("REPLY-OVER "));
  over = over.substr(0, over.find('\n'));
  EXPECT_NE(over.find("line longer than 65536"), std::string::npos) << over;
  EXPECT_EQ(under.find("line longer than"), std::string::npos) << under;
  EXPECT_NE(under.find("\"error\""), std::string::npos) << under;
}

// TMPDIR is the environment's: one that others may write to (not sticky) is passed over for
// /tmp, with a warning; one too long for a socket path fails the deploy with the limit and
// leaves nothing behind, and the daemon still stops.
TEST(Resume, AnUnsafeOrTooLongTmpdirIsNotUsedForUserServersSockets) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  {
    ScopedTmpdir unsafe(0777);
    DaemonUnderTest daemon(kDaemonOptions);
    auto deploy = serverswap(daemon, {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"});
    ASSERT_EQ(deploy.code, 0) << deploy.output << daemon.process().output();
    std::string control = environment_of(daemon.server_pids().at(0), "SERVERSWAP_SOCKET");
    EXPECT_EQ(std::filesystem::path(control).parent_path().parent_path(), "/tmp") << control;
    EXPECT_TRUE(unsafe.entries().empty());
    EXPECT_TRUE(daemon.process().wait_for_output(
        "TMPDIR " + unsafe.path() + " is not used for other users' sockets", 5s))
        << daemon.process().output();
  }
  ScopedTmpdir deep(0755, std::string(80, 'd'));
  DaemonUnderTest daemon(kDaemonOptions);
  auto deploy = serverswap(daemon, {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(deploy.code, 1) << deploy.output;
  EXPECT_NE(deploy.output.find("set TMPDIR to a directory of at most"), std::string::npos)
      << deploy.output;
  EXPECT_TRUE(deep.entries().empty());
  auto stop = serverswap(daemon, {"stop"});
  EXPECT_EQ(stop.code, 0) << stop.output;
  EXPECT_EQ(daemon.process().wait(10s), 0) << daemon.process().output();
}

// The first run of `serverswap COMMAND` is the daemon in the foreground; after an upgrade it
// is `serverswap daemon` in the same process, and Ctrl-C (SIGINT) still stops everything.
TEST(Resume, AFirstRunForegroundDaemonUpgradedStillStopsOnCtrlC) {
  char pattern[] = "/tmp/serverswap-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string dir = pattern, socket = dir + "/control.sock";
  Child foreground({SERVERSWAP_BIN, "--socket", socket, "--", RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_TRUE(foreground.wait_for_output("is up", 10s)) << foreground.output();
  Child upgrade({SERVERSWAP_BIN, "--socket", socket, "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << foreground.output();
  ASSERT_TRUE(foreground.wait_for_output("resumed, up", 10s)) << foreground.output();
  Child status({SERVERSWAP_BIN, "--socket", socket, "status", "--json"});
  ASSERT_EQ(status.wait(10s), 0) << status.output();
  pid_t server = nlohmann::json::parse(status.output())["servers"][0]["pid"];
  foreground.signal(SIGINT);
  EXPECT_EQ(foreground.wait(30s), 0) << foreground.output();
  EXPECT_TRUE(eventually([&] { return !process_exists(server); }, 5s));
  EXPECT_FALSE(std::filesystem::exists(dir + "/control.sock.state.json"));
  std::filesystem::remove_all(dir);
}

TEST(Resume, UpgradeToAProgramThatIsNotServerswapChangesNothing) {
  DaemonUnderTest daemon(kDaemonOptions);
  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade", "--binary", "/bin/true"});
  EXPECT_EQ(upgrade.wait(30s), 1) << upgrade.output();
  EXPECT_NE(upgrade.output().find("upgrade refused"), std::string::npos) << upgrade.output();
  EXPECT_NO_THROW(daemon.status());
}

// `upgrade --binary X` where X prints a version but keeps running, or closes its output and
// keeps running: the daemon answers status meanwhile, kills X within the probe's bound,
// refuses the upgrade and never executes X.
TEST(Resume, UpgradeToAProgramThatDoesNotExitIsRefusedWithinTheBound) {
  DaemonUnderTest daemon(kDaemonOptions);
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"echo 'serverswap 9.9.9'", "printed 'serverswap 9.9.9' but did not exit within 5s"},
      {"exec >&-", "closed its output but did not exit within 5s"}};
  for (const auto& [prologue, refusal] : cases) {
    std::string binary = daemon.dir() + "/hangs.sh";
    std::string pid_file = daemon.dir() + "/hangs.pid";
    std::filesystem::remove(pid_file);
    {
      std::ofstream script(binary);
      script << "#!/bin/sh\necho $$ > " << pid_file << "\n" << prologue << "\nexec sleep 60\n";
    }
    std::filesystem::permissions(binary, std::filesystem::perms::owner_all);
    auto started = std::chrono::steady_clock::now();
    Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade", "--binary", binary});
    ASSERT_TRUE(daemon.process().wait_for_output("upgrade: checking " + binary, 10s));
    // The loop is free while the probe runs.
    Child status({SERVERSWAP_BIN, "--socket", daemon.socket(), "status"});
    EXPECT_EQ(status.wait(3s), 0) << status.output();
    EXPECT_TRUE(http_ok(daemon.address_of("127.0.0.1:0")));
    EXPECT_EQ(upgrade.wait(15s), 1) << upgrade.output();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
    EXPECT_NE(upgrade.output().find("upgrade refused: " + binary + " --version " + refusal),
              std::string::npos)
        << upgrade.output();
    std::ifstream pid_in(pid_file);
    pid_t probe = 0;
    pid_in >> probe;
    ASSERT_GT(probe, 0);
    EXPECT_TRUE(eventually([&] { return !process_exists(probe); }, 5s)) << probe;
    // Still the same daemon: X was never executed.
    EXPECT_EQ(daemon.status()["daemon"].value("pid", 0), daemon.process().pid());
    EXPECT_EQ(daemon.process().output().find("upgrading: executing"), std::string::npos);
  }
}

// A raw peer: sends one line with descriptors, then reads until the daemon closes.
struct ResumeReply {
  std::string text;
  bool closed = false;
};

ResumeReply send_resume(const std::string& socket_path, const std::string& line,
                        const std::vector<int>& fds) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
  iovec iov{const_cast<char*>(line.data()), line.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> space(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = space.data();
    msg.msg_controllen = space.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (sendmsg(fd.get(), &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) return {};
  timeval tv{10, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ResumeReply reply;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n == 0) reply.closed = true;
    if (n <= 0) break;
    reply.text.append(buf, static_cast<size_t>(n));
  }
  return reply;
}

std::string resume_hello(const std::string& id, const std::string& resource) {
  return "{\"hello\":{\"id\":\"" + id + "\",\"pid\":" + std::to_string(getpid()) +
         ",\"protocol\":1,\"upMessage\":true,\"resume\":{\"holding\":[\"" + resource +
         "\"],\"onTakedown\":[\"" + resource + "\"],\"up\":true}}}\n";
}

UniqueFd listener_on_loopback() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(fd.get(), 8);
  return fd;
}

TEST(Resume, BadResumeHellosAreRefusedTheirFdsClosedAndTheDaemonUnharmed) {
  DaemonUnderTest daemon(kDaemonOptions);
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  std::string address = daemon.address_of("127.0.0.1:0");
  nlohmann::json server = daemon.status()["servers"][0];
  pid_t pid = server["pid"];
  std::string id = server["id"];
  // Stopped, it cannot resume before the test has tried the bad hellos with its id.
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  auto again = restart_daemon(daemon);
  ASSERT_TRUE(again->wait_for_output("waiting for it to resume", 10s)) << again->output();
  const int fds_before = settled_open_fds(again->pid());

  UniqueFd other_listener = listener_on_loopback();
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
  struct Case {
    const char* what;
    std::string line;
    std::vector<int> fds;
    const char* error;
  };
  std::vector<Case> cases = {
      {"unknown id",
       resume_hello("9.00000000deadbeef", "127.0.0.1:0"),
       {other_listener.get()},
       "unknown server id"},
      {"two fds for one resource",
       resume_hello(id, "127.0.0.1:0"),
       {other_listener.get(), other_listener.get()},
       "2 descriptor(s) for 1 resource(s)"},
      {"no fd", resume_hello(id, "127.0.0.1:0"), {}, "0 descriptor(s) for 1 resource(s)"},
      {"a pipe", resume_hello(id, "127.0.0.1:0"), {pipe_read.get()}, "not a listening socket"},
      {"another port",
       resume_hello(id, "127.0.0.1:0"),
       {other_listener.get()},
       "is bound to 127.0.0.1:"},
  };
  for (const Case& c : cases) {
    ResumeReply reply = send_resume(daemon.socket(), c.line, c.fds);
    EXPECT_NE(reply.text.find("\"error\""), std::string::npos) << c.what << ": " << reply.text;
    EXPECT_NE(reply.text.find(c.error), std::string::npos) << c.what << ": " << reply.text;
    EXPECT_TRUE(reply.closed) << c.what << ": the daemon kept the connection open";
  }
  EXPECT_TRUE(eventually([&] { return open_fds(again->pid()) <= fds_before; }, 5s))
      << open_fds(again->pid()) << " fds, " << fds_before << " before: a descriptor was kept";

  // A deploy now waits for the adopted server to resume.
  auto waiting = daemon.start_deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_TRUE(again->wait_for_output("deploy waits until", 10s)) << again->output();
  EXPECT_EQ(daemon.server_pids().size(), 1u);
  // The real server resumes: the daemon is unharmed, and the deploy goes ahead.
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  ASSERT_TRUE(again->wait_for_output("resumed, up", 10s)) << again->output();
  EXPECT_TRUE(http_ok(address));
  EXPECT_EQ(waiting->wait(30s), 0) << waiting->output() << again->output();
  EXPECT_NE(waiting->output().find("(generation 2)"), std::string::npos) << waiting->output();
  stop_daemon(daemon, *again);
}

TEST(Resume, AServerThatDoesNotResumeInTimeIsUnmanagedAndStillTakenDown) {
  std::vector<std::string> options = {"--takedown-timeout", "5s", "--adopt-timeout", "300ms"};
  DaemonUnderTest daemon(options);
  auto first = daemon.deploy({RESUME_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t pid = daemon.server_pids().at(0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("daemon");
  Child again(argv);
  ASSERT_TRUE(again.wait_for_output("did not resume within --adopt-timeout", 10s))
      << again.output();
  EXPECT_EQ(server_with_pid(daemon, pid)["state"], "unmanaged") << again.output();
  // Deploys no longer wait, and a stop still takes it down.
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(again.wait(30s), 0) << again.output();
  EXPECT_TRUE(eventually([&] { return !process_exists(pid); }, 5s));
}

}  // namespace
}  // namespace serverswap::testing
