// Crash restarts: when the only server of a resource dies, the daemon keeps the listening
// socket open (connections wait in its backlog, none is refused) and starts the last
// command that came up again, with a backoff that grows while it keeps crashing.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The single server in the status once it is up and is not `old_pid`.
std::optional<nlohmann::json> replacement_up(DaemonUnderTest& daemon, pid_t old_pid) {
  nlohmann::json servers = daemon.status()["servers"];
  if (servers.size() != 1 || servers[0]["pid"] == old_pid || servers[0]["state"] != "up")
    return std::nullopt;
  return servers[0];
}

TEST(Restart, KillNineOfTheOnlyServerUnderLoadRefusesNoConnection) {
  DaemonUnderTest daemon;
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));
  pid_t victim = daemon.server_pids().at(0);
  const int fds_before = settled_open_fds(daemon.process().pid());

  std::atomic<uint64_t> ok_so_far{0};
  verify::LoadOptions options;
  options.host = host;
  options.port = port;
  options.duration = std::chrono::seconds(60);  // an upper bound; stopped below
  options.connections = 8;
  options.mode = verify::Mode::kClose;  // a new connection per request: each one is a connect
  options.rate = 500;
  options.on_progress = [&](uint64_t ok, uint64_t) { ok_so_far = ok; };
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  ASSERT_EQ(kill(victim, SIGKILL), 0);
  std::optional<nlohmann::json> restarted;
  ASSERT_TRUE(
      eventually([&] { return (restarted = replacement_up(daemon, victim)).has_value(); }, 10s))
      << daemon.process().output();
  EXPECT_EQ((*restarted)["restarts"], 1);
  // The restarted server serves: 200 more answers after it came up.
  ASSERT_TRUE(load.wait_for_ok(ok_so_far + 200, 10s)) << daemon.process().output();
  load.stop();
  verify::LoadReport report = load.join();

  std::string log = daemon.process().output();
  EXPECT_NE(log.find("killed by SIGKILL while serving (crashed)"), std::string::npos) << log;
  EXPECT_NE(log.find("crashed once; next restart in 100ms"), std::string::npos) << log;
  // Requests in flight inside the killed process are reset (at most one per client); every
  // other connection waited in the backlog and was answered by the restarted server.
  EXPECT_EQ(report.counts.refused, 0u) << verify::to_text(report);
  EXPECT_EQ(report.counts.timeout, 0u) << verify::to_text(report);
  EXPECT_EQ(report.counts.other_status + report.counts.other_error, 0u) << verify::to_text(report);
  EXPECT_LE(report.counts.reset, static_cast<uint64_t>(options.connections))
      << verify::to_text(report);
  EXPECT_TRUE(eventually([&] { return daemon.open_fds() <= fds_before; }, 5s))
      << "open fds before " << fds_before << ", after " << daemon.open_fds();
}

TEST(Restart, CrashLoopBacksOffAndStopCancelsThePendingRestart) {
  DaemonUnderTest daemon({"--takedown-timeout", "2s", "--settle", "200ms"});
  std::string marker = daemon.dir() + "/came-up-once";
  auto first = daemon.deploy({FAULT_SERVER_BIN, "crash-loop", "127.0.0.1:0", marker});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t victim = daemon.server_pids().at(0);
  auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  // Every restart exits 5 at once: 100, 200, 400 and 800 ms apart, then 1.6 s.
  Child& log = daemon.process();
  ASSERT_TRUE(log.wait_for_output("crashed 5 times in", 15s)) << log.output();
  auto elapsed = std::chrono::steady_clock::now() - started;
  // 1500 ms of backoff in all; libuv timers may each fire up to a millisecond early.
  EXPECT_GE(elapsed, 1490ms) << "restarts came faster than the backoff allows";
  std::string text = log.output();
  for (const char* step :
       {"crashed once; next restart in 100ms", "next restart in 200ms", "next restart in 400ms",
        "next restart in 800ms", "next restart in 1.6s"})
    EXPECT_NE(text.find(step), std::string::npos) << step << "\n" << text;
  EXPECT_NE(text.find("exited with status 5 before it was up"), std::string::npos) << text;
  // The first server and four restarts before the fifth crash, no more: no busy loop.
  EXPECT_EQ(count(text.substr(0, text.find("crashed 5 times in")), "started generation"), 5u)
      << text;

  // On a slow machine the loop may have gone one step further by now.
  nlohmann::json loops = daemon.status()["crashLoops"];
  ASSERT_EQ(loops.size(), 1u) << loops.dump();
  EXPECT_GE(loops[0]["crashes"].get<int>(), 5);
  EXPECT_EQ(loops[0]["restarts"].get<int>(), loops[0]["crashes"].get<int>() - 1);
  Child status({SERVERSWAP_BIN, "--socket", daemon.socket(), "status"});
  ASSERT_EQ(status.wait(10s), 0);
  EXPECT_NE(status.output().find("crash loop: "), std::string::npos) << status.output();

  // Stop during a backoff wait: the daemon exits at once and starts nothing after it.
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  ASSERT_EQ(stop.wait(10s), 0) << stop.output();
  ASSERT_EQ(log.wait(10s), 0) << log.output();
  std::string all = log.output();
  size_t stopping = all.find("stopping (");
  ASSERT_NE(stopping, std::string::npos) << all;
  EXPECT_EQ(all.find("started generation", stopping), std::string::npos) << all;
}

}  // namespace
}  // namespace serverswap::testing
