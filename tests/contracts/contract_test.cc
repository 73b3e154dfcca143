// Contract tests (issue 5): each inherited-socket convention as its own reference library
// reads it (libsystemd's sd_listen_fds_with_names, Server::Starter's server_ports; einhorn has
// no Debian package, so its documented EINHORN_FD_COUNT / EINHORN_FD_n) against what the
// three serverswap clients read from the same environment and descriptors:
//  (a) probes started here with real listening sockets at fds 3, 4, 5 and the variables set
//      as each supervisor sets them (LISTEN_PID set after fork to the probe's own pid);
//  (b) probes started by the real daemon with `serverswap --listen ... -- PROBE`.
// Every probe writes REPORT.<pid> in one format (see client_probe.cc). About 3 s.
//
// The resume contract (issue 12, docs/protocol.md §11), the same scenario for each client:
// a server holding two resources (a TCP port and a Unix socket), subscribed to takeDown on
// the first, with serverUp promised and said, promised and not said, or not promised,
// outlives a SIGKILL of its daemon; a daemon started again on the same socket takes it back
// from the client's resume alone. The new daemon must end with the right descriptor for
// each resource (it refuses a resume whose fd does not match its resource, and a next
// server gets the same sockets), the subscription (the old server gets takeDown, not a
// signal) and the same `up`.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "handover/listen_socket.h"
#include "harness.h"
#include "protocol/resource.h"

namespace serverswap::testing {
namespace {

using Env = std::map<std::string, std::string>;

constexpr int kProbeWaitMs = 20'000;  // only reached when a probe hangs

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The lines of a report that start with `prefix`, in order.
std::vector<std::string> lines_of(const std::string& report, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(report);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(prefix)) out.push_back(line);
  return out;
}

// The fd lines without names (Server::Starter and einhorn name nothing).
std::vector<std::string> unnamed(std::vector<std::string> lines) {
  for (auto& line : lines) {
    size_t name = line.find(" name ");
    size_t address = line.find(" address ");
    if (name != std::string::npos && address != std::string::npos)
      line = line.substr(0, name) + " name -" + line.substr(address);
  }
  return lines;
}

struct Probe {
  std::string label;
  std::vector<std::string> argv;  // REPORT and resources are appended
};

// Whether `program` is on PATH: CI installs python3 and node, a developer may lack node.
bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

std::vector<Probe> client_probes() {
  std::vector<Probe> probes = {{"c++", {CLIENT_PROBE_BIN}}};
  if (on_path("python3"))
    probes.push_back({"python", {"/usr/bin/env", "python3", "-S", PYTHON_PROBE}});
  if (on_path("node"))
    probes.push_back({"node", {"/usr/bin/env", "node", NODE_PROBE, NODE_CLIENT_DIR}});
  return probes;
}

Env client_env() {
  return {{"PYTHONPATH", PYTHON_CLIENT_DIR}};
}

// Runs `argv` with `fds` at 3, 4, ... and `env` added (LISTEN_PID set to its own pid when
// `systemd`), to completion. Returns the exit status, -1 on timeout.
int run_with_fds(std::vector<std::string> argv, const std::vector<int>& fds, const Env& env,
                 bool systemd) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<int> high;
    for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD, 100));  // out of the way of 3, 4..
    for (size_t i = 0; i < high.size(); ++i) ::dup2(high[i], 3 + static_cast<int>(i));
    for (int fd : high) ::close(fd);
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    ::unsetenv("SERVERSWAP_SOCKET");
    if (systemd) ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  pollfd p{pidfd.get(), POLLIN, 0};
  if (::poll(&p, 1, kProbeWaitMs) != 1) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Contracts : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/serverswap-contracts-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    tcp_ = bind("127.0.0.1:0");
    any_ = bind(":0");
    unix_path_ = dir_ + "/app.sock";
    local_ = bind("unix:" + unix_path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  UniqueFd bind(const std::string& resource) {
    auto bound = handover::bind_listener(*protocol::parse_resource(resource));
    EXPECT_TRUE(bound.ok()) << bound.status().message();
    return bound.ok() ? std::move(bound->fd) : UniqueFd();
  }
  std::vector<int> fds() const { return {tcp_.get(), any_.get(), local_.get()}; }
  std::string port(const UniqueFd& fd) const {
    std::string a = handover::bound_address(fd.get());
    return a.substr(a.rfind(':') + 1);
  }

  // Runs `probe` with the sockets and `env`; its report.
  std::string report(const Probe& probe, const Env& env, bool systemd,
                     const std::vector<std::string>& resources = {}) {
    std::string prefix = dir_ + "/" + probe.label + std::to_string(++runs_);
    std::vector<std::string> argv = probe.argv;
    argv.push_back(prefix);
    argv.insert(argv.end(), resources.begin(), resources.end());
    Env all = client_env();
    all.insert(env.begin(), env.end());
    EXPECT_EQ(run_with_fds(argv, fds(), all, systemd), 0) << probe.label;
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
      if (entry.path().filename().string().starts_with(probe.label + std::to_string(runs_) + "."))
        return read_file(entry.path());
    ADD_FAILURE() << probe.label << " wrote no report";
    return "";
  }

  std::string dir_, unix_path_;
  UniqueFd tcp_, any_, local_;
  int runs_ = 0;
};

TEST_F(Contracts, SystemdAsLibsystemdReadsIt) {
  Env env = {{"LISTEN_FDS", "3"}, {"LISTEN_FDNAMES", "web:any:local"}};
  std::string reference = report({"libsystemd", {SYSTEMD_PROBE_BIN}}, env, true);
  auto expected = lines_of(reference, "fd ");
  ASSERT_EQ(expected.size(), 3u) << reference;
  EXPECT_EQ(expected[0], "fd 3 name web address 127.0.0.1:" + port(tcp_) + " listening 1");
  EXPECT_EQ(expected[2], "fd 5 name local address unix:" + unix_path_ + " listening 1");
  const std::vector<std::string> resources = {"web", ":" + port(any_), "unix:" + unix_path_,
                                              "127.0.0.1:" + port(any_)};
  for (const Probe& probe : client_probes()) {
    std::string ours = report(probe, env, true, resources);
    EXPECT_EQ(lines_of(ours, "fd "), expected) << probe.label << "\n" << ours;
    EXPECT_EQ(lines_of(ours, "match "),
              (std::vector<std::string>{"match web 3", "match :" + port(any_) + " 4",
                                        "match unix:" + unix_path_ + " 5",
                                        "match 127.0.0.1:" + port(any_) + " -"}))
        << probe.label << "\n"
        << ours;
  }
}

TEST_F(Contracts, SystemdVariablesForAnotherPidAreNotOurs) {
  Env env = {{"LISTEN_FDS", "3"}, {"LISTEN_PID", "1"}};
  std::string reference = report({"libsystemd", {SYSTEMD_PROBE_BIN}}, env, false);
  EXPECT_TRUE(lines_of(reference, "fd ").empty()) << reference;
  for (const Probe& probe : client_probes()) {
    std::string ours = report(probe, env, false);
    EXPECT_TRUE(lines_of(ours, "fd ").empty()) << probe.label << "\n" << ours;
    EXPECT_EQ(lines_of(ours, "convention "), std::vector<std::string>{"convention -"});
  }
}

TEST_F(Contracts, ServerStarterAsServerPortsReadsIt) {
  // As start_server spells it: port only, host:port, unix path.
  const std::string value = port(any_) + "=4;127.0.0.1:" + port(tcp_) + "=3;" + unix_path_ + "=5";
  Env env = {{"SERVER_STARTER_PORT", value}};
  std::string reference = report({"server_starter", {SERVER_STARTER_PROBE}}, env, false);
  EXPECT_EQ(lines_of(reference, "port "),
            (std::vector<std::string>{"port 127.0.0.1:" + port(tcp_) + " 3",
                                      "port " + port(any_) + " 4", "port " + unix_path_ + " 5"}))
      << reference;
  auto expected = lines_of(reference, "fd ");
  ASSERT_EQ(expected.size(), 3u) << reference;
  const std::vector<std::string> resources = {"127.0.0.1:" + port(tcp_), ":" + port(any_),
                                              "unix:" + unix_path_};
  for (const Probe& probe : client_probes()) {
    std::string ours = report(probe, env, false, resources);
    EXPECT_EQ(lines_of(ours, "convention "),
              std::vector<std::string>{"convention SERVER_STARTER_PORT"});
    // Ours lists in SERVER_STARTER_PORT's order (4, 3, 5); the reference sorted by fd.
    auto fd_lines = lines_of(ours, "fd ");
    std::sort(fd_lines.begin(), fd_lines.end());
    EXPECT_EQ(fd_lines, expected) << probe.label << "\n" << ours;
    EXPECT_EQ(lines_of(ours, "match "),
              (std::vector<std::string>{"match 127.0.0.1:" + port(tcp_) + " 3",
                                        "match :" + port(any_) + " 4",
                                        "match unix:" + unix_path_ + " 5"}))
        << probe.label << "\n"
        << ours;
  }
}

TEST_F(Contracts, EinhornAsDocumented) {
  // einhorn's documented contract: EINHORN_FD_COUNT, and EINHORN_FD_<i> the i-th fd. The
  // reference here is libsystemd's view of the same fds (what each fd is).
  Env env = {{"EINHORN_FD_COUNT", "2"}, {"EINHORN_FD_0", "5"}, {"EINHORN_FD_1", "3"}};
  std::string reference = report({"libsystemd", {SYSTEMD_PROBE_BIN}}, {{"LISTEN_FDS", "3"}}, true);
  auto all = unnamed(lines_of(reference, "fd "));
  ASSERT_EQ(all.size(), 3u) << reference;
  for (const Probe& probe : client_probes()) {
    std::string ours = report(probe, env, false, {"127.0.0.1:" + port(tcp_)});
    EXPECT_EQ(lines_of(ours, "fd "), (std::vector<std::string>{all[2], all[0]}))
        << probe.label << "\n"
        << ours;
    EXPECT_EQ(lines_of(ours, "match "),
              std::vector<std::string>{"match 127.0.0.1:" + port(tcp_) + " 3"})
        << probe.label;
  }
}

// (b) The real daemon: `serverswap --listen web=127.0.0.1:0 --listen unix:P -- PROBE`.
// libsystemd must accept LISTEN_PID (the probe's own pid) and see the daemon's sockets; our
// clients must read the same, answer readyFor from fd 3 and become up through serverUp.
std::string default_name(const std::string& resource) {
  std::string name = resource;
  for (char& c : name)
    if (c == ':' || c == '/' || c == '[' || c == ']') c = '_';
  return name.substr(name.find_first_not_of('_'));
}

TEST(ContractsUnderTheDaemon, EachProbeSeesTheDaemonsSockets) {
  DaemonUnderTest daemon;
  const std::string unix_resource = "unix:" + daemon.dir() + "/app.sock";
  std::vector<Probe> probes = {{"libsystemd", {SYSTEMD_PROBE_BIN}}};
  for (const Probe& p : client_probes()) probes.push_back(p);
  std::string reference;
  for (const Probe& probe : probes) {
    const std::string prefix = daemon.dir() + "/" + probe.label;
    // Every probe is a version of one app (the probes are different programs).
    std::vector<std::string> argv = {
        SERVERSWAP_BIN, "--socket", daemon.socket(),   "--name",
        "probe",        "--listen", "web=127.0.0.1:0", "--listen",
        unix_resource,  "--",       "/usr/bin/env",    "PYTHONPATH=" PYTHON_CLIENT_DIR};
    argv.insert(argv.end(), probe.argv.begin(), probe.argv.end());
    argv.push_back(prefix);
    argv.push_back("web");
    Child deploy(argv);
    ASSERT_EQ(deploy.wait(30s), 0) << probe.label << "\n" << deploy.output();
    auto pids = daemon.server_pids();
    ASSERT_FALSE(pids.empty());
    std::string report = read_file(prefix + "." + std::to_string(pids.back()));
    // The report of the newest server: its pid is the one LISTEN_PID named.
    EXPECT_EQ(lines_of(report, "pid "),
              std::vector<std::string>{"pid " + std::to_string(pids.back())})
        << probe.label << "\n"
        << report;
    auto fd_lines = lines_of(report, "fd ");
    ASSERT_EQ(fd_lines.size(), 2u) << probe.label << "\n" << report;
    EXPECT_EQ(fd_lines[0],
              "fd 3 name web address " + daemon.address_of("127.0.0.1:0") + " listening 1");
    EXPECT_EQ(fd_lines[1], "fd 4 name " + default_name(unix_resource) + " address " +
                               unix_resource + " listening 1");
    if (probe.label != "libsystemd") {
      EXPECT_EQ(lines_of(report, "match "), std::vector<std::string>{"match web 3"}) << probe.label;
    }
  }
}

// ---- the resume contract ------------------------------------------------------------

const std::vector<std::string> kResumeDaemonOptions = {"--takedown-timeout", "5s",
                                                       "--adopt-timeout", "10s"};

// The resume probe of `label`, or an empty argv when its interpreter is missing.
std::vector<std::string> resume_probe(const std::string& label) {
  if (label == "c++") return {RESUME_PROBE_BIN};
  if (label == "python" && on_path("python3"))
    return {"/usr/bin/env", "PYTHONPATH=" PYTHON_CLIENT_DIR, "python3", "-S", RESUME_PROBE_PY};
  if (label == "node" && on_path("node"))
    return {"/usr/bin/env", "node", RESUME_PROBE_JS, NODE_CLIENT_DIR};
  return {};
}

// The one report under `prefix` (REPORT.<pid> of the probe with `pid`) once it has `line`.
std::string report_with(const std::string& prefix, pid_t pid, const std::string& line) {
  const std::string path = prefix + "." + std::to_string(pid);
  std::string text;
  eventually(
      [&] {
        text = read_file(path);
        return text.find(line) != std::string::npos;
      },
      20s);
  return text;
}

std::string state_of(DaemonUnderTest& daemon, pid_t pid) {
  const nlohmann::json status = daemon.status();
  for (const auto& s : status["servers"])
    if (s["pid"] == pid) return s["state"].get<std::string>();
  return "(no server " + std::to_string(pid) + " in " + status.dump() + ")";
}

// The probes ignore SIGTERM and outlive their daemon: whatever a failing test left alive is
// killed (by pid) at its end, so that it does not hold the test's output open.
struct KillAtEnd {
  std::vector<pid_t> pids;
  ~KillAtEnd() {
    for (pid_t pid : pids)
      if (process_exists(pid)) ::kill(pid, SIGKILL);
  }
};

// `up`: "1", serverUp promised and said; "0", promised and never said; "auto", not
// promised (upMessage absent: the up rule's second half; Node says serverUp by itself).
class ResumeContract : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ResumeContract, ARestartedDaemonGetsTheRightSocketPerResourceTheSubscriptionAndUp) {
  const auto& [label, up_mode] = GetParam();
  const bool up = up_mode != "0";
  std::vector<std::string> argv = resume_probe(label);
  if (argv.empty()) GTEST_SKIP() << label << " is not installed";
  DaemonUnderTest daemon(kResumeDaemonOptions);
  const std::string a = "127.0.0.1:0", b = "unix:" + daemon.dir() + "/b.sock";
  const std::string prefix = daemon.dir() + "/" + label;
  for (const std::string& arg : {prefix, a, b, up_mode}) argv.push_back(arg);

  auto deploy = daemon.start_deploy(argv);
  ASSERT_TRUE(eventually([&] { return daemon.server_pids().size() == 1; }, 20s))
      << deploy->output();
  const pid_t server = daemon.server_pids()[0];
  // Declared before the probes' killer, so destroyed after it: it reads output they may hold.
  std::unique_ptr<Child> again;
  KillAtEnd probes{{server}};  // from here on, a failing assertion leaves no probe behind
  std::string report = report_with(prefix, server, "ready ");
  if (up) {
    ASSERT_EQ(deploy->wait(30s), 0) << deploy->output();
  }
  const std::string address_a = daemon.address_of(a), address_b = daemon.address_of(b);
  ASSERT_EQ(address_b, b);
  ASSERT_EQ(lines_of(report, "ready "),
            std::vector<std::string>{"ready " + address_a + " " + address_b})
      << label << "\n"
      << report << deploy->output();

  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  if (!up) {
    EXPECT_EQ(deploy->wait(10s), 3) << deploy->output();  // it lost the daemon
  }

  std::vector<std::string> again_argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  again_argv.insert(again_argv.end(), kResumeDaemonOptions.begin(), kResumeDaemonOptions.end());
  again_argv.push_back("daemon");
  again = std::make_unique<Child>(again_argv);
  // Said only once the daemon checked each descriptor against its resource (fd pairing).
  const std::string resumed = std::string(up ? "resumed, up" : "resumed, still starting") +
                              ", holding 2 listening socket(s)";
  ASSERT_TRUE(again->wait_for_output(resumed, 15s)) << label << "\n" << again->output();
  EXPECT_EQ(state_of(daemon, server), up ? "up" : "ready") << label;
  // The daemon's socket for each resource is the one the server handed back.
  EXPECT_EQ(daemon.address_of(a), address_a) << label;
  EXPECT_EQ(daemon.address_of(b), address_b) << label;

  if (up) {
    // A next server gets those sockets, and the old one is told by takeDown on A: its
    // subscription came back with the resume.
    auto next = daemon.deploy(argv);
    ASSERT_EQ(next.code, 0) << label << "\n" << next.output << again->output();
    const pid_t next_pid = daemon.server_pids().back();
    probes.pids.push_back(next_pid);
    ASSERT_NE(next_pid, server);
    EXPECT_EQ(lines_of(report_with(prefix, next_pid, "ready "), "ready "),
              std::vector<std::string>{"ready " + address_a + " " + address_b})
        << label;
    EXPECT_EQ(lines_of(report_with(prefix, server, "takeDown "), "takeDown "),
              std::vector<std::string>{"takeDown " + a})
        << label << "\n"
        << again->output();
  }
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(again->wait(30s), 0) << again->output();
}

INSTANTIATE_TEST_SUITE_P(Clients, ResumeContract,
                         ::testing::Combine(::testing::Values("c++", "python", "node"),
                                            ::testing::Values("1", "0", "auto")),
                         [](const auto& param_info) {
                           std::string label = std::get<0>(param_info.param);
                           if (label == "c++") label = "cpp";
                           const std::string& up_mode = std::get<1>(param_info.param);
                           return label + (up_mode == "1"   ? "_up"
                                           : up_mode == "0" ? "_not_up"
                                                            : "_auto_up");
                         });

}  // namespace
}  // namespace serverswap::testing
