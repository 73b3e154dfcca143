// The confirmation window (--confirm, docs/architecture.md "The confirmation window"): a new
// release that dies in its first seconds fails its deploy, and the old version, never
// touched, serves every request made meanwhile. Real processes on loopback, under a bounded
// new-connection-per-request load. A few seconds each.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "unmodified.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

// New connections on `port` while a test deploys, stopped by the test (bounded: 30 s).
verify::LoadOptions load_on(uint16_t port) {
  verify::LoadOptions options;
  options.port = port;
  options.duration = std::chrono::seconds(30);
  options.connections = 4;
  options.mode = verify::Mode::kClose;
  options.rate = 200;
  options.request_timeout = std::chrono::seconds(5);
  return options;
}

// A client-library server deployed with --confirm 2s comes up, then exits with status 3
// half a second later: the deploy exits 1 saying so, the old hello_server was never sent
// takeDown and answered every request made during the deploy.
TEST(Confirm, AServerThatCrashesInsideItsWindowFailsItsDeployAndTheOldOneServesThrough) {
  DaemonUnderTest daemon;
  daemon.deploy_options = {"--name", "web"};  // the crashing server is a release of the app
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  std::vector<pid_t> old = daemon.server_pids();
  ASSERT_EQ(old.size(), 1u);
  uint16_t port = port_of(daemon.address_of("127.0.0.1:0"));
  ASSERT_NE(port, 0);

  verify::LoadRun load(load_on(port));
  ASSERT_TRUE(load.wait_for_ok(20, 10s)) << "the load never got going";
  auto started = std::chrono::steady_clock::now();
  auto deploy =
      deploy_with(daemon, {"--confirm", "2s"}, {FAULT_SERVER_BIN, "crash-after-up", "127.0.0.1:0"});
  auto took = std::chrono::steady_clock::now() - started;
  load.stop();
  verify::LoadReport report = load.join();

  EXPECT_EQ(deploy.code, 1) << deploy.output;
  EXPECT_TRUE(contains(deploy.output, "exited with status 3")) << deploy.output;
  EXPECT_TRUE(contains(deploy.output, "after it was up, inside its --confirm 2s window"))
      << deploy.output;
  EXPECT_TRUE(contains(deploy.output, "was never touched and keeps serving")) << deploy.output;
  EXPECT_FALSE(contains(deploy.output, "takeDown")) << deploy.output;
  // It failed when it died, not at the end of the window.
  EXPECT_LT(took, 2s) << deploy.output;
  EXPECT_GT(report.counts.ok, 20u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  EXPECT_EQ(daemon.server_pids(), old);
  EXPECT_TRUE(http_ok(port));
}

void write_app(const std::string& dir, const std::string& text) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/app.py") << text;
}

// Two gunicorn releases in the daemon's directory: r1 answers "hello from r1", r2's app.py
// fails at import (as a release with a broken dependency). Returns the command of a release
// by its name.
std::function<std::vector<std::string>(const std::string&)> gunicorn_releases(
    DaemonUnderTest& daemon) {
  write_app(daemon.dir() + "/r1",
            "def app(environ, start_response):\n"
            "    body = b'hello from r1\\n'\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain'),\n"
            "                              ('Content-Length', str(len(body)))])\n"
            "    return [body]\n");
  write_app(daemon.dir() + "/r2", "raise ImportError('r2 is broken')\n");
  return [dir = daemon.dir()](const std::string& name) {
    return std::vector<std::string>{
        "/usr/bin/gunicorn",  "--chdir", dir + "/" + name, "--workers", "1",
        "--graceful-timeout", "5",       "app:app"};
  };
}

// gunicorn sends READY=1 when its arbiter starts, before its worker imports the app: a
// release whose app.py fails at import says "ready" and exits (status 3) a moment later.
// With READY=1's default window (5 s) that deploy exits 1, and the old release served every
// request.
TEST(Confirm, GunicornWithABrokenImportFailsInsideTheDefaultWindowAndTheOldOneServes) {
  if (access("/usr/bin/gunicorn", X_OK) != 0) GTEST_SKIP() << "gunicorn is not installed";
  DaemonUnderTest daemon;
  auto release = gunicorn_releases(daemon);
  auto first = deploy_with(daemon, {"--listen", "127.0.0.1:0"}, release("r1"));
  ASSERT_EQ(first.code, 0) << first.output;
  std::vector<pid_t> old = daemon.server_pids();
  ASSERT_EQ(old.size(), 1u);
  uint16_t port = port_of(daemon.address_of("127.0.0.1:0"));
  ASSERT_NE(port, 0);

  verify::LoadRun load(load_on(port));
  ASSERT_TRUE(load.wait_for_ok(20, 10s)) << "the load never got going";
  auto broken = deploy_with(daemon, {"--listen", "127.0.0.1:0"}, release("r2"));
  load.stop();
  verify::LoadReport report = load.join();

  EXPECT_EQ(broken.code, 1) << broken.output;
  EXPECT_TRUE(contains(broken.output, "inside its --confirm 5s window")) << broken.output;
  EXPECT_TRUE(contains(broken.output, "was never touched and keeps serving")) << broken.output;
  EXPECT_FALSE(contains(broken.output, "the servers already running keep serving"))
      << "said twice: " << broken.output;
  EXPECT_GT(report.counts.ok, 20u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  EXPECT_EQ(daemon.server_pids(), old);
  EXPECT_TRUE(http_ok(port));
}

// The same broken release deployed with --confirm 0 (no window: as a release that crashes
// only after its window would): the deploy succeeds at READY=1 and the old release is taken
// down; the new one crashes, its crash restart crashes, and the daemon rolls the app back to
// the good release on its own. Requests wait in the daemon's backlog meanwhile (the socket
// stays bound): none fails. The log and `status` say "rolled back".
TEST(Confirm, GunicornWithABrokenImportAfterItsWindowIsRolledBackAutomatically) {
  if (access("/usr/bin/gunicorn", X_OK) != 0) GTEST_SKIP() << "gunicorn is not installed";
  DaemonUnderTest daemon({"--rollback-window", "60s"});
  daemon.deploy_options = {"--name", "web", "--listen", "127.0.0.1:0"};
  auto release = gunicorn_releases(daemon);
  auto first = daemon.deploy(release("r1"));
  ASSERT_EQ(first.code, 0) << first.output;
  uint16_t port = port_of(daemon.address_of("127.0.0.1:0"));
  ASSERT_NE(port, 0);

  verify::LoadRun load(load_on(port));
  ASSERT_TRUE(load.wait_for_ok(20, 10s)) << "the load never got going";
  auto broken = deploy_with(daemon, {"--confirm", "0"}, release("r2"));
  // Up at READY=1, with no window to fail in: the old release is taken down at once. Whether
  // the deploy reports before the crash depends on how fast the old gunicorn drains: 0 once
  // it has exited, else 1 saying truly what happened.
  if (broken.code != 0) {
    EXPECT_EQ(broken.code, 1) << broken.output;
    EXPECT_TRUE(contains(broken.output, "it was up, then exited with status 3")) << broken.output;
  }
  EXPECT_TRUE(contains(broken.output, "is up (sent READY=1")) << broken.output;
  Child& log = daemon.process();
  EXPECT_TRUE(log.wait_for_output("rolling back to generation 1's version", 30s)) << log.output();
  EXPECT_TRUE(log.wait_for_output("app web rolled back: the previous version is up", 30s))
      << log.output();
  EXPECT_TRUE(eventually([&] { return contains(http_get(port, "/"), "hello from r1"); }, 10s));
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_GT(report.counts.ok, 20u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  auto status = serverswap(daemon, {"status"});
  EXPECT_TRUE(contains(status.output, "rolled back")) << status.output;
  auto servers = daemon.status()["servers"];
  ASSERT_EQ(servers.size(), 1u) << servers.dump();
  EXPECT_EQ(servers[0]["argv"][2], daemon.dir() + "/r1") << servers.dump();
}

}  // namespace
}  // namespace serverswap::testing
