// Workers: N copies of a server on the same listening sockets, each with SERVERSWAP_WORKER;
// rolling deploys (--batch, --max-surge) under load, a roll that stops on a failed worker
// and puts the old version back, per-worker crash restarts, and the staggered handover of
// a server that takes its resources over one at a time (`serving`).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <sstream>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

using nlohmann::json;

// `serverswap --socket S OPTIONS... -- worker_server RESOURCES...` with VERSION=version.
std::unique_ptr<Child> start_workers(DaemonUnderTest& daemon,
                                     const std::vector<std::string>& options,
                                     const std::vector<std::string>& resources,
                                     std::map<std::string, std::string> env) {
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.push_back(WORKER_SERVER_BIN);
  argv.insert(argv.end(), resources.begin(), resources.end());
  return std::make_unique<Child>(argv, env);
}

// The body of one `GET /` on a new connection to "HOST:PORT" (IPv4), "" on failure.
std::string http_body(const std::string& address) {
  auto [host, port] = split_address(address);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return "";
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  const char request[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd.get(), request, sizeof request - 1) < 0) return "";
  std::string response;
  char buf[1024];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof buf)) > 0;) response.append(buf, size_t(n));
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// pid -> worker index of the servers in the status that are up.
std::map<pid_t, int> up_workers(const json& status) {
  std::map<pid_t, int> workers;
  for (const auto& s : status["servers"])
    if (s["state"] == "up" && s["worker"].is_number())
      workers[s["pid"].get<pid_t>()] = s["worker"].get<int>();
  return workers;
}

// Each of `workers` said on start that it is that worker of `version` (SERVERSWAP_WORKER).
void expect_version(DaemonUnderTest& daemon, const std::map<pid_t, int>& workers,
                    const std::string& version) {
  for (const auto& [pid, worker] : workers) {
    std::string line = "worker_server pid " + std::to_string(pid) + " worker " +
                       std::to_string(worker) + " version " + version + " up";
    // It prints the line right after serverUp: it may reach the log just after the status.
    EXPECT_TRUE(daemon.process().wait_for_output(line, 5s)) << line << "\n"
                                                            << daemon.process().output();
  }
}

std::set<int> indices(const std::map<pid_t, int>& workers) {
  std::set<int> result;
  for (const auto& [pid, worker] : workers) result.insert(worker);
  return result;
}

// The most processes of the command alive at once during a deploy, from its event lines:
// `before` at the start, one more per spawn, one fewer per exit.
int most_alive(const std::string& deploy_output, int before) {
  int alive = before, most = before;
  std::istringstream lines(deploy_output);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(": started generation") != std::string::npos) most = std::max(most, ++alive);
    if (line.find("): exited with status") != std::string::npos ||
        line.find("): killed by") != std::string::npos)
      --alive;
  }
  return most;
}

struct Load {
  explicit Load(const std::string& address) {
    auto [host, port] = split_address(address);
    options.host = host;
    options.port = port;
    options.duration = std::chrono::seconds(90);  // an upper bound; stopped by the test
    options.connections = 6;
    options.mode = verify::Mode::kClose;
    options.rate = 300;
    options.on_progress = [this](uint64_t ok, uint64_t) { ok_so_far = ok; };
    run = std::make_unique<verify::LoadRun>(options);
  }
  // 100 more answers, then the report.
  verify::LoadReport finish() {
    EXPECT_TRUE(run->wait_for_ok(ok_so_far + 100, 20s));
    run->stop();
    return run->join();
  }
  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options;
  std::unique_ptr<verify::LoadRun> run;
};

constexpr const char* kResource = "127.0.0.1:0";

// Four workers of v1 up; returns them (pid -> index).
std::map<pid_t, int> deploy_four(DaemonUnderTest& daemon, std::vector<std::string> extra = {}) {
  std::vector<std::string> options = {"--workers", "4"};
  options.insert(options.end(), extra.begin(), extra.end());
  auto first = start_workers(daemon, options, {kResource}, {{"VERSION", "v1"}});
  EXPECT_EQ(first->wait(30s), 0) << first->output() << daemon.process().output();
  auto workers = up_workers(daemon.status());
  EXPECT_EQ(indices(workers), (std::set<int>{0, 1, 2, 3}));
  return workers;
}

TEST(Workers, FourWorkersRollOneAtATimeUnderLoadWithoutAFailedRequest) {
  DaemonUnderTest daemon;
  auto old_workers = deploy_four(daemon);
  expect_version(daemon, old_workers, "v1");
  Child status({SERVERSWAP_BIN, "--socket", daemon.socket(), "status"});
  ASSERT_EQ(status.wait(10s), 0);
  EXPECT_NE(status.output().find("WORKER"), std::string::npos) << status.output();

  Load load(daemon.address_of(kResource));
  ASSERT_TRUE(load.run->wait_for_ok(100, 10s)) << "the load never got going";
  // No --workers: the command's last count (4) is remembered.
  auto roll = start_workers(daemon, {"--batch", "1"}, {kResource}, {{"VERSION", "v2"}});
  ASSERT_EQ(roll->wait(60s), 0) << roll->output() << daemon.process().output();
  verify::LoadReport report = load.finish();

  auto new_workers = up_workers(daemon.status());
  EXPECT_EQ(indices(new_workers), (std::set<int>{0, 1, 2, 3}));
  for (const auto& [pid, worker] : new_workers) EXPECT_EQ(old_workers.count(pid), 0u) << pid;
  expect_version(daemon, new_workers, "v2");
  std::string output = roll->output();
  EXPECT_NE(output.find("worker 3 of 4 is up (batch 4/4)"), std::string::npos) << output;
  EXPECT_NE(output.find("deployed: 4 workers"), std::string::npos) << output;
  EXPECT_LE(most_alive(output, 4), 5) << output;  // --max-surge defaults to --batch
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  EXPECT_GT(report.counts.ok, 100u);
}

TEST(Workers, AWorkerThatFailsStopsTheRollAndFourOldWorkersServe) {
  DaemonUnderTest daemon;
  auto old_workers = deploy_four(daemon);
  Load load(daemon.address_of(kResource));
  ASSERT_TRUE(load.run->wait_for_ok(100, 10s)) << "the load never got going";

  auto roll = start_workers(daemon, {"--workers", "4"}, {kResource},
                            {{"VERSION", "v2"}, {"WORKER_FAIL", "2"}});
  ASSERT_EQ(roll->wait(60s), 1) << roll->output() << daemon.process().output();
  EXPECT_NE(roll->output().find("worker 2 of 4 failed: exited with status 1 before it was up"),
            std::string::npos)
      << roll->output();
  EXPECT_NE(roll->output().find("started again as worker 0, 1"), std::string::npos)
      << roll->output();
  // Workers 0 and 1 were replaced: v1 comes back on them and the v2 ones go.
  std::map<pid_t, int> now;
  ASSERT_TRUE(eventually(
      [&] {
        json s = daemon.status();
        now = up_workers(s);
        return s["servers"].size() == 4 && now.size() == 4;
      },
      20s))
      << daemon.status().dump(1) << daemon.process().output();
  EXPECT_EQ(indices(now), (std::set<int>{0, 1, 2, 3}));
  expect_version(daemon, now, "v1");
  EXPECT_EQ(now.size(), 4u);
  for (const auto& [pid, worker] : old_workers)
    if (worker >= 2) {
      EXPECT_EQ(now.count(pid), 1u) << "old worker " << worker << " was not kept";
    }
  verify::LoadReport report = load.finish();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
}

// Automatic rollback of a --workers 2 app, with real processes: v2's workers come up (serverUp:
// no confirmation window), replace v1's, and crash 1.5 s later, each within the rollback
// window. The daemon rolls v1's version back as a roll of 2 workers; under load no request
// fails (the listening socket stays the daemon's: clients wait in its backlog).
TEST(Rollback, AWorkersAppWhoseNewVersionCrashesIsRolledBackToTwoWorkersUnderLoad) {
  DaemonUnderTest daemon;
  auto first = start_workers(daemon, {"--workers", "2"}, {kResource}, {{"VERSION", "v1"}});
  ASSERT_EQ(first->wait(30s), 0) << first->output() << daemon.process().output();
  auto v1 = up_workers(daemon.status());
  ASSERT_EQ(indices(v1), (std::set<int>{0, 1}));
  expect_version(daemon, v1, "v1");

  Load load(daemon.address_of(kResource));
  ASSERT_TRUE(load.run->wait_for_ok(100, 10s)) << "the load never got going";
  // Another release of the program (another path, the same app): the same command line in
  // the same directory would be no version to roll back to (it runs the files on disk now).
  const std::string release = daemon.dir() + "/r2/worker_server";
  std::filesystem::create_directories(daemon.dir() + "/r2");
  std::filesystem::create_symlink(WORKER_SERVER_BIN, release);
  Child bad({SERVERSWAP_BIN, "--socket", daemon.socket(), "--", release, kResource},
            {{"VERSION", "v2"}, {"CRASH_AFTER_UP_MS", "1500"}});
  ASSERT_EQ(bad.wait(30s), 0) << bad.output() << daemon.process().output();
  Child& log = daemon.process();
  EXPECT_TRUE(log.wait_for_output("rolling back to generation", 20s)) << log.output();
  EXPECT_TRUE(log.wait_for_output("app worker_server rolled back: the previous version is up", 30s))
      << log.output();
  std::map<pid_t, int> now;
  ASSERT_TRUE(eventually(
      [&] {
        json s = daemon.status();
        now = up_workers(s);
        return s["servers"].size() == 2 && now.size() == 2 && s["crashLoops"].empty();
      },
      20s))
      << daemon.status().dump(1) << log.output();
  EXPECT_EQ(indices(now), (std::set<int>{0, 1}));
  for (const auto& [pid, worker] : now) EXPECT_EQ(v1.count(pid), 0u) << "a new process: " << pid;
  expect_version(daemon, now, "v1");
  for (int i = 0; i < 4; ++i)  // what answers now is v1
    EXPECT_NE(http_body(daemon.address_of(kResource)).find("version=v1"), std::string::npos);
  verify::LoadReport report = load.finish();
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  json status = daemon.status();
  ASSERT_EQ(status["apps"].size(), 1u) << status.dump();
  EXPECT_TRUE(status["apps"][0]["rolledBack"].is_object()) << status.dump();
}

TEST(Workers, KillNineOfOneWorkerRestartsOnlyIt) {
  DaemonUnderTest daemon;
  auto workers = deploy_four(daemon);
  pid_t victim = 0;
  for (const auto& [pid, worker] : workers)
    if (worker == 1) victim = pid;
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  json restarted;
  ASSERT_TRUE(eventually(
      [&] {
        json s = daemon.status();
        for (const auto& server : s["servers"])
          if (server["worker"] == 1 && server["state"] == "up" && server["pid"] != victim)
            restarted = server;
        return !restarted.is_null() && s["servers"].size() == 4;
      },
      15s))
      << daemon.process().output();
  EXPECT_EQ(restarted["restarts"], 1);
  auto now = up_workers(daemon.status());
  for (const auto& [pid, worker] : workers)
    if (pid != victim) {
      EXPECT_EQ(now.count(pid), 1u) << "worker " << worker << " was touched";
    }
  expect_version(daemon, {{restarted["pid"].get<pid_t>(), 1}}, "v1");
}

TEST(Workers, MaxSurgeBoundsTheProcessesOfARoll) {
  DaemonUnderTest daemon;
  deploy_four(daemon, {"--batch", "2", "--max-surge", "2"});
  // Remembered: batch 2, surge 2. Sampled from the events and from status as it runs.
  auto roll = start_workers(daemon, {}, {kResource}, {{"VERSION", "v2"}});
  size_t most_in_status = 0;
  while (!roll->wait(0ms)) {
    json s = daemon.status();
    most_in_status = std::max(most_in_status, s["servers"].size());
    if (roll->wait(50ms)) break;
  }
  ASSERT_EQ(roll->wait(60s), 0) << roll->output();
  EXPECT_LE(most_in_status, 6u);
  int most = most_alive(roll->output(), 4);
  EXPECT_LE(most, 6) << roll->output();
  EXPECT_GT(most, 4) << roll->output();
  EXPECT_NE(roll->output().find("(batch 2/2)"), std::string::npos) << roll->output();
  EXPECT_EQ(up_workers(daemon.status()).size(), 4u);
}

TEST(StaggeredHandover, TheOldServerGoesDownOnOneResourceAtATime) {
  DaemonUnderTest daemon;
  const std::string a = "127.0.0.1:0", b = "127.0.0.2:0";
  auto first = start_workers(daemon, {}, {a, b}, {{"VERSION", "old"}});
  ASSERT_EQ(first->wait(30s), 0) << first->output();
  pid_t old_pid = daemon.server_pids().at(0);
  std::string address_a = daemon.address_of(a), address_b = daemon.address_of(b);

  auto swap = start_workers(daemon, {}, {a, b}, {{"VERSION", "new"}, {"STAGGER", "1"}});
  // The new server says `serving` for A: the old one is taken down on A alone.
  json old_server, new_server;
  ASSERT_TRUE(eventually(
      [&] {
        json status = daemon.status();
        for (const auto& s : status["servers"]) {
          if (s["pid"] == old_pid)
            old_server = s;
          else
            new_server = s;
        }
        return !old_server.is_null() && !old_server["resources"].empty() &&
               old_server["resources"][0]["takenDown"] == true;
      },
      15s))
      << daemon.process().output();
  ASSERT_EQ(old_server["resources"].size(), 2u);
  EXPECT_EQ(old_server["resources"][1]["takenDown"], false);
  EXPECT_EQ(old_server["state"], "up");
  EXPECT_NE(new_server["state"], "up");
  std::string old_body = "pid=" + std::to_string(old_pid);
  std::string new_body = "pid=" + new_server["pid"].dump();
  EXPECT_NE(http_body(address_b).find(old_body), std::string::npos) << "B: the old one serves";
  EXPECT_NE(http_body(address_a).find(new_body), std::string::npos) << "A: the new one serves";

  // Let it ask for B: the old server loses B too, so it drains and exits.
  ASSERT_EQ(kill(new_server["pid"].get<pid_t>(), SIGUSR1), 0);
  ASSERT_EQ(swap->wait(30s), 0) << swap->output() << daemon.process().output();
  EXPECT_FALSE(process_exists(old_pid));
  EXPECT_NE(http_body(address_b).find(new_body), std::string::npos);
  EXPECT_NE(swap->output().find("replaced pid " + std::to_string(old_pid)), std::string::npos)
      << swap->output();
}

}  // namespace
}  // namespace serverswap::testing
