// Third-party servers from Debian's packages, unmodified, swapped 20 times each under a
// new-connection-per-request load with zero failed requests: gunicorn (systemd socket
// activation, READY=1 on NOTIFY_SOCKET, graceful stop on SIGTERM) and lighttpd
// (server.systemd-socket-activation; it sends no READY=1, so --ready-after; graceful stop
// on SIGINT). Each is skipped when not installed. About 30 s together.
#include <gtest/gtest.h>
#include <unistd.h>

#include "unmodified.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

// 20 swaps is the bar, checked in the plain build. Under ASan the same test proves
// memory safety, not the count, and each gunicorn start costs seconds there: 5 swaps.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kSwaps = 5;
#else
constexpr int kSwaps = 20;
#endif

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

uint16_t port_of(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// The first deploy gives the per-command options; every swap runs the same command again
// without them, as a user would.
void swap_under_load(DaemonUnderTest& daemon, const std::vector<std::string>& options,
                     const std::vector<std::string>& command, const std::string& resource) {
  auto first = deploy_with(daemon, options, command);
  ASSERT_EQ(first.code, 0) << first.output;
  uint16_t port = port_of(daemon.address_of(resource));
  ASSERT_NE(port, 0);

  verify::LoadOptions load_options;
  load_options.port = port;
  load_options.duration = std::chrono::seconds(120);  // an upper bound; stopped after the swaps
  load_options.connections = 4;
  load_options.mode = verify::Mode::kClose;
  load_options.rate = 300;
  load_options.request_timeout = std::chrono::seconds(5);
  verify::LoadRun load(load_options);
  ASSERT_TRUE(load.wait_for_ok(50, 10s)) << "the load never got going";

  std::vector<pid_t> replaced;
  for (int i = 0; i < kSwaps; ++i) {
    std::vector<pid_t> before = daemon.server_pids();
    auto outcome = deploy_with(daemon, {}, command);
    ASSERT_EQ(outcome.code, 0) << "swap " << i << ":\n" << outcome.output;
    replaced.insert(replaced.end(), before.begin(), before.end());
  }
  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_GT(report.counts.ok, 50u + kSwaps);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  for (pid_t pid : replaced) EXPECT_FALSE(process_exists(pid)) << "pid " << pid << " survived";
  EXPECT_EQ(daemon.server_pids().size(), 1u);
}

TEST(ThirdParty, GunicornThroughSocketActivationTwentySwapsLoseNoRequest) {
  if (access("/usr/bin/gunicorn", X_OK) != 0) GTEST_SKIP() << "gunicorn is not installed";
  DaemonUnderTest daemon;
  write_file(daemon.dir() + "/app.py",
             "def app(environ, start_response):\n"
             "    body = b'hello from gunicorn\\n'\n"
             "    start_response('200 OK', [('Content-Type', 'text/plain'),\n"
             "                              ('Content-Length', str(len(body)))])\n"
             "    return [body]\n");
  // gunicorn 20 takes LISTEN_FDS/LISTEN_PID, says READY=1 once its sockets are set up, and
  // stops gracefully on SIGTERM (the default takedown signal). READY=1's default --confirm
  // window (5 s) would make 20 swaps 100 s longer: a short one, remembered for the command,
  // still runs every swap through the window (confirm_test.cc tests the default).
  swap_under_load(daemon, {"--listen", "127.0.0.1:0", "--confirm", "200ms"},
                  {"/usr/bin/gunicorn", "--chdir", daemon.dir(), "--workers", "1",
                   "--graceful-timeout", "5", "app:app"},
                  "127.0.0.1:0");
}

TEST(ThirdParty, LighttpdThroughSocketActivationTwentySwapsLoseNoRequest) {
  if (access("/usr/sbin/lighttpd", X_OK) != 0) GTEST_SKIP() << "lighttpd is not installed";
  DaemonUnderTest daemon;
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  // lighttpd uses an inherited socket only where its configuration names that address, and
  // binds the configured one itself otherwise; so the daemon binds the port first (a silent
  // probe holding it), and the configuration is written with it. lighttpd then replaces
  // the probe as a newer server on the same socket.
  auto holder = deploy_with(daemon, {"--listen", "127.0.0.1:0", "--ready-after", "100ms"},
                            {LISTEN_PROBE_BIN, daemon.dir() + "/report", "silent"});
  ASSERT_EQ(holder.code, 0) << holder.output;
  uint16_t port = port_of(daemon.address_of("127.0.0.1:0"));
  std::filesystem::create_directory(daemon.dir() + "/www");
  write_file(daemon.dir() + "/www/index.html", "hello from lighttpd\n");
  std::string config = daemon.dir() + "/lighttpd.conf";
  write_file(config, "server.document-root = \"" + daemon.dir() +
                         "/www\"\n"
                         "server.systemd-socket-activation = \"enable\"\n"
                         "server.bind = \"127.0.0.1\"\n"
                         "server.port = " +
                         std::to_string(port) +
                         "\n"
                         "index-file.names = (\"index.html\")\n");
  // lighttpd sends no READY=1: --ready-after, the weaker rule. Its graceful stop is SIGINT
  // (SIGTERM stops at once, dropping connections it has accepted).
  swap_under_load(
      daemon, {"--listen", "127.0.0.1:0", "--ready-after", "300ms", "--takedown-signal", "SIGINT"},
      {"/usr/sbin/lighttpd", "-D", "-f", config}, "127.0.0.1:0");
}

}  // namespace
}  // namespace serverswap::testing
