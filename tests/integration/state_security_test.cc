// The files the daemon keeps (docs/security.md, "Files the daemon keeps"): a state file it
// did not write is never trusted, the socket's directory must be the user's own, two
// daemons in one directory never share a file, and a state file that cannot be written is
// said on every channel until it can be again.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/process/process_tree.h"
#include "daemon/restart/state_file.h"
#include "harness.h"

namespace serverswap::testing {
namespace {

constexpr const char* kSetpriv = "/usr/bin/setpriv";

// Root, setpriv, and uid 65534 able to run programs: needed to play another user.
bool can_act_as_another_user() {
  if (geteuid() != 0 || access(kSetpriv, X_OK) != 0) return false;
  Child probe({kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true"});
  return probe.wait(10s) == 0;
}

std::vector<std::string> as_nobody(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups"});
  return argv;
}

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

// `serverswap --socket SOCKET ARGS...` to completion (bounded).
DaemonUnderTest::Outcome serverswap(const std::string& socket, std::vector<std::string> args,
                                    const std::map<std::string, std::string>& env = {}) {
  args.insert(args.begin(), {SERVERSWAP_BIN, "--socket", socket});
  Child child(args, env);
  auto code = child.wait(30s);
  return {code.value_or(-1), child.output()};
}

// A daemon on `socket`, in the foreground of a Child; stopped (by its socket) at the end.
class Daemon {
 public:
  explicit Daemon(std::string socket, std::vector<std::string> options = {})
      : socket_(std::move(socket)) {
    std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", socket_, "--takedown-timeout",
                                     "5s"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("daemon");
    child_ = std::make_unique<Child>(argv);
    started_ = child_->wait_for_output("daemon listening on", 10s);
  }
  ~Daemon() {
    if (!child_->wait(0ms)) {
      serverswap(socket_, {"stop"});
      child_->wait(30s);
    }
  }
  bool started() const { return started_; }
  Child& process() { return *child_; }
  nlohmann::json status() {
    auto outcome = serverswap(socket_, {"status", "--json"});
    if (outcome.code != 0) throw std::runtime_error("status failed: " + outcome.output);
    return nlohmann::json::parse(outcome.output);
  }

 private:
  std::string socket_;
  std::unique_ptr<Child> child_;
  bool started_ = false;
};

// A state file naming `pid` (with its true start time) as a server whose command is
// `argv`: what a daemon killed while that server ran would have left.
std::string state_naming(pid_t pid, const std::vector<std::string>& argv) {
  auto start_time = daemon::process_start_time(pid);
  if (!start_time.ok()) throw std::runtime_error(start_time.status().message());
  daemon::DaemonState state;
  daemon::ServerRecord record;
  record.id = "1.00000000deadbeef";
  record.pid = pid;
  record.start_time = *start_time;
  record.generation = 1;
  record.state = "up";
  record.request.argv = argv;
  record.request.cwd = "/";
  state.servers.push_back(record);
  return daemon::state_to_json(state).dump() + "\n";
}

// The state file was refused, said so, and nothing in it was taken back.
void expect_refused(Daemon& daemon, const std::string& state_path) {
  ASSERT_TRUE(daemon.process().wait_for_output("no server is taken back", 5s))
      << daemon.process().output();
  std::string log = daemon.process().output();
  EXPECT_NE(log.find(state_path), std::string::npos) << log;
  EXPECT_NE(log.find("not trusted"), std::string::npos) << log;
  EXPECT_EQ(log.find("taken back from"), std::string::npos) << log;
  EXPECT_TRUE(daemon.status()["servers"].empty());
}

// The planted-state attack: another user's file in the daemon's directory names a process
// of theirs and a command; when the process dies the daemon must not run the command.
TEST(StateSecurity, StateFileOfAnotherUserIsNeverTrustedNorRun) {
  if (!can_act_as_another_user()) GTEST_SKIP() << "needs root and setpriv to act as uid 65534";
  TempDir dir;
  std::string socket = dir.path() + "/c.sock";
  std::string state_path = socket + ".state.json";
  std::string created = dir.path() + "/created-by-daemon";
  Child sleeper(as_nobody({"/bin/sleep", "30"}));
  // setpriv executes sleep in the same process: wait until it has.
  ASSERT_TRUE(eventually(
      [&] { return read_file("/proc/" + std::to_string(sleeper.pid()) + "/comm") == "sleep\n"; },
      5s));
  write_text(state_path, state_naming(sleeper.pid(), {"/usr/bin/touch", created}), 0600);
  ASSERT_EQ(chown(state_path.c_str(), 65534, 65534), 0);
  Daemon daemon(socket);
  ASSERT_TRUE(daemon.started()) << daemon.process().output();
  expect_refused(daemon, state_path);
  EXPECT_NE(daemon.process().output().find("uid 65534"), std::string::npos)
      << daemon.process().output();
  sleeper.signal(SIGKILL);
  ASSERT_TRUE(sleeper.wait(5s));
  // A real server deployed and taken down: the daemon has handled exits since the sleep's.
  auto first = serverswap(socket, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto second = serverswap(socket, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(second.code, 0) << second.output;
  ASSERT_NE(second.output.find("which exited"), std::string::npos) << second.output;
  EXPECT_FALSE(std::filesystem::exists(created)) << daemon.process().output();
}

// Our own file, but readable by others (not what the daemon writes), and a symbolic link
// in place of the file: refused, and `daemon --resume-upgrade` fails with exit 4.
TEST(StateSecurity, StateFileOpenToOthersOrASymbolicLinkIsRefused) {
  for (bool symlink : {false, true}) {
    SCOPED_TRACE(symlink ? "symbolic link" : "mode 0644");
    TempDir dir;
    std::string socket = dir.path() + "/c.sock";
    std::string state_path = socket + ".state.json";
    Child sleeper({"/bin/sleep", "30"});
    ASSERT_TRUE(eventually(
        [&] { return read_file("/proc/" + std::to_string(sleeper.pid()) + "/comm") == "sleep\n"; },
        5s));
    std::string text = state_naming(sleeper.pid(), {"/bin/sleep", "30"});
    if (symlink) {
      write_text(dir.path() + "/real.json", text, 0600);
      std::filesystem::create_symlink(dir.path() + "/real.json", state_path);
    } else {
      write_text(state_path, text, 0644);
    }
    auto resume = serverswap(socket, {"daemon", "--resume-upgrade"});
    EXPECT_EQ(resume.code, 4) << resume.output;
    EXPECT_NE(resume.output.find("not trusted"), std::string::npos) << resume.output;
    Daemon daemon(socket);
    ASSERT_TRUE(daemon.started()) << daemon.process().output();
    expect_refused(daemon, state_path);
    EXPECT_NE(daemon.process().output().find(symlink ? "symbolic link" : "mode 0644"),
              std::string::npos)
        << daemon.process().output();
  }
}

// The directory of the socket: anyone who may write to it could plant the state file.
TEST(StateSecurity, SocketDirectoryOthersMayWriteIsRefused) {
  TempDir dir;
  std::string socket = dir.path() + "/c.sock";
  auto expect_exit_4 = [&](const std::string& why) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"daemon"}, {"status"}, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"}}) {
      auto outcome = serverswap(socket, args);
      EXPECT_EQ(outcome.code, 4) << args[0] << ": " << outcome.output;
      EXPECT_NE(outcome.output.find(why), std::string::npos) << outcome.output;
      EXPECT_NE(outcome.output.find("mkdir -m 0700"), std::string::npos) << outcome.output;
    }
    EXPECT_FALSE(std::filesystem::exists(socket + ".lock")) << "a file was made there";
  };
  ASSERT_EQ(chmod(dir.path().c_str(), 01777), 0);
  expect_exit_4("has mode 1777");
  // An ancestor others may write to (not sticky): they could rename the directory away.
  ASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  std::filesystem::create_directory(dir.path() + "/sub");
  ASSERT_EQ(chmod((dir.path() + "/sub").c_str(), 0700), 0);
  socket = dir.path() + "/sub/c.sock";
  expect_exit_4("which has mode 0777");
  socket = dir.path() + "/c.sock";
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give directories away";
  ASSERT_EQ(chmod(dir.path().c_str(), 0770), 0);
  ASSERT_EQ(chown(dir.path().c_str(), 0, 65534), 0);
  expect_exit_4("has mode 0770");
  ASSERT_EQ(chmod(dir.path().c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.path().c_str(), 65534, 65534), 0);
  expect_exit_4("belongs to uid 65534");
}

// /tmp/serverswap-UID (here $XDG_RUNTIME_DIR/serverswap) made first by another user: exit 4
// (a system error, not a usage error), for the daemon and for every command.
TEST(StateSecurity, DefaultDirectoryOfAnotherUserExits4) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the directory away";
  TempDir runtime;
  std::string dir = runtime.path() + "/serverswap";
  std::filesystem::create_directory(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {SERVERSWAP_BIN, "status"}, {SERVERSWAP_BIN, "--", HELLO_SERVER_BIN, "127.0.0.1:0"}}) {
    Child child(args, {{"XDG_RUNTIME_DIR", runtime.path()}});
    EXPECT_EQ(child.wait(10s), 4) << child.output();
    EXPECT_NE(child.output().find("belongs to uid 65534"), std::string::npos) << child.output();
  }
}

// Stops the daemon on `socket` at the end of a test, however it ends.
struct StopAtEnd {
  std::string socket;
  ~StopAtEnd() { serverswap(socket, {"stop"}); }
};

// Two daemons in one directory: each has its own lock, state and log, so neither takes the
// other's servers back, and stopping one leaves the other's servers serving.
TEST(StateSecurity, TwoDaemonsInOneDirectoryShareNoFile) {
  TempDir dir;
  std::string a = dir.path() + "/a.sock", b = dir.path() + "/b.sock";
  Daemon daemon_a(a);
  ASSERT_TRUE(daemon_a.started()) << daemon_a.process().output();
  auto deployed = serverswap(a, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deployed.code, 0) << deployed.output;
  nlohmann::json status_a = daemon_a.status();
  ASSERT_EQ(status_a["servers"].size(), 1u);
  pid_t server_a = status_a["servers"][0]["pid"];
  std::string address_a = status_a["servers"][0]["resources"][0]["address"];
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(a + ".state.json"); }, 5s));

  StopAtEnd stop_b{b};
  Child deploy_b({std::string(SERVERSWAP_BIN) + "-deploy", "--socket", b, "--takedown-timeout",
                  "5s", "--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_TRUE(deploy_b.wait_for_output("deployed", 30s)) << deploy_b.output();
  EXPECT_NE(deploy_b.output().find("logging to " + b + ".log"), std::string::npos)
      << deploy_b.output();
  auto status_b = serverswap(b, {"status", "--json"});
  ASSERT_EQ(status_b.code, 0) << status_b.output;
  nlohmann::json servers_b = nlohmann::json::parse(status_b.output)["servers"];
  ASSERT_EQ(servers_b.size(), 1u) << status_b.output;
  EXPECT_NE(servers_b[0]["pid"].get<pid_t>(), server_a) << "B took A's server";
  EXPECT_TRUE(eventually([&] { return std::filesystem::exists(b + ".state.json"); }, 5s));
  EXPECT_NE(read_file(a + ".state.json").find("\"pid\":" + std::to_string(server_a)),
            std::string::npos);
  EXPECT_EQ(read_file(b + ".state.json").find("\"pid\":" + std::to_string(server_a)),
            std::string::npos);

  auto stopped = serverswap(b, {"stop"});
  ASSERT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_TRUE(deploy_b.wait(10s)) << deploy_b.output();
  EXPECT_TRUE(process_exists(server_a)) << "stopping B took A's server down";
  EXPECT_TRUE(http_ok(address_a));
  nlohmann::json again = daemon_a.status();
  ASSERT_EQ(again["servers"].size(), 1u);
  EXPECT_EQ(again["servers"][0]["pid"].get<pid_t>(), server_a);
  EXPECT_NE(read_file(b + ".log").find("daemon listening on " + b), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/state.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/daemon.log"));
}

// The value of series `name` in a scrape of the --metrics endpoint at `address`, or -1.
double metric(const std::string& address, const std::string& name) {
  return metric_value(http_get(split_address(address).second), name);
}

// A state file that cannot be written (a directory where its tmp file goes: even root
// cannot open that for writing) is said in the log, in every deploy's output, in status
// and in the metrics, and written as soon as it can be.
TEST(StateSecurity, StateWriteFailureIsSaidUntilItRecovers) {
  TempDir dir;
  std::string socket = dir.path() + "/c.sock";
  std::string state_path = socket + ".state.json";
  Daemon daemon(socket, {"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(daemon.started()) << daemon.process().output();
  std::string metrics = daemon.status()["daemon"]["metrics"];
  EXPECT_EQ(metric(metrics, "serverswap_state_file_ok"), 1);
  std::filesystem::create_directory(state_path + ".tmp");

  auto deployed = serverswap(socket, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deployed.code, 0) << deployed.output;
  EXPECT_NE(deployed.output.find("warning: the daemon cannot write its state file " + state_path),
            std::string::npos)
      << deployed.output;
  EXPECT_NE(deployed.output.find("if the daemon restarts it will not find this server"),
            std::string::npos)
      << deployed.output;
  nlohmann::json file = daemon.status()["daemon"]["stateFile"];
  EXPECT_EQ(file["path"], state_path);
  EXPECT_EQ(file["ok"], false) << file.dump();
  EXPECT_NE(file.value("error", "").find("Is a directory"), std::string::npos) << file.dump();
  auto table = serverswap(socket, {"status"});
  EXPECT_NE(table.output.find("warning: the daemon cannot write its state file"), std::string::npos)
      << table.output;
  EXPECT_EQ(metric(metrics, "serverswap_state_file_ok"), 0);
  EXPECT_GE(metric(metrics, "serverswap_state_write_failures_total"), 1);
  pid_t server = daemon.status()["servers"][0]["pid"];

  std::filesystem::remove(state_path + ".tmp");
  // Retried with a backoff of at most 5 s.
  EXPECT_TRUE(eventually(
      [&] {
        return read_file(state_path).find("\"pid\":" + std::to_string(server)) != std::string::npos;
      },
      10s))
      << daemon.process().output();
  EXPECT_TRUE(daemon.process().wait_for_output("is written again", 5s));
  EXPECT_EQ(daemon.status()["daemon"]["stateFile"]["ok"], true);
  EXPECT_EQ(metric(metrics, "serverswap_state_file_ok"), 1);
  std::string log = daemon.process().output();
  size_t first = log.find("cannot write the state file");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("cannot write the state file", first + 1), std::string::npos)
      << "said once, not once per retry: " << log;
  auto again = serverswap(socket, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(again.output.find("warning"), std::string::npos) << again.output;
}

// `serverswap upgrade` from a version that wrote DIR/state.json (simulated by a wrapper that
// moves the file there before executing this serverswap): the new image resumes from it,
// keeps the server, and then writes its own SOCKET.state.json only.
TEST(StateSecurity, UpgradeFromAVersionThatWroteStateJsonKeepsItsServers) {
  TempDir dir;
  std::string socket = dir.path() + "/control.sock";
  Daemon daemon(socket);
  ASSERT_TRUE(daemon.started()) << daemon.process().output();
  auto deployed = serverswap(socket, {"--", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deployed.code, 0) << deployed.output;
  pid_t server = daemon.status()["servers"][0]["pid"];
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(socket + ".state.json"); }, 5s));
  std::string wrapper = dir.path() + "/old-image";
  {
    std::ofstream script(wrapper);
    script << "#!/bin/sh\n"
           << "if [ \"$1\" = --version ]; then exec " << SERVERSWAP_BIN << " --version; fi\n"
           << "mv " << socket << ".state.json " << dir.path() << "/state.json || exit 9\n"
           << "exec " << SERVERSWAP_BIN << " \"$@\"\n";
  }
  ASSERT_EQ(chmod(wrapper.c_str(), 0700), 0);
  auto upgraded = serverswap(socket, {"upgrade", "--binary", wrapper});
  ASSERT_EQ(upgraded.code, 0) << upgraded.output << daemon.process().output();
  EXPECT_TRUE(daemon.process().wait_for_output("resuming from " + dir.path() + "/state.json", 5s))
      << daemon.process().output();
  nlohmann::json status = daemon.status();
  ASSERT_EQ(status["servers"].size(), 1u) << status.dump();
  EXPECT_EQ(status["servers"][0]["pid"].get<pid_t>(), server);
  EXPECT_TRUE(eventually(
      [&] {
        return std::filesystem::exists(socket + ".state.json") &&
               !std::filesystem::exists(dir.path() + "/state.json");
      },
      5s))
      << daemon.process().output();
}

}  // namespace
}  // namespace serverswap::testing
