// The core promise: under a load of new-connection-per-request HTTP clients, 20 swaps of
// the real example server lose no request, every replaced server exits, and the daemon
// leaks no descriptor.
#include <gtest/gtest.h>
#include <signal.h>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

constexpr int kSwaps = 20;

void swap_under_load(verify::Mode mode) {
  DaemonUnderTest daemon;
  const std::vector<std::string> server = {HELLO_SERVER_BIN, "127.0.0.1:0"};
  auto first = daemon.deploy(server);
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));
  ASSERT_NE(port, 0);
  const int fds_before = settled_open_fds(daemon.process().pid());

  verify::LoadOptions options;
  options.host = host;
  options.port = port;
  options.duration = std::chrono::seconds(120);  // an upper bound; stopped after the swaps
  options.connections = 8;
  options.mode = mode;
  options.rate = 1000;
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  std::vector<pid_t> replaced;
  for (int i = 0; i < kSwaps; ++i) {
    std::vector<pid_t> before = daemon.server_pids();
    auto outcome = daemon.deploy(server);
    ASSERT_EQ(outcome.code, 0) << "swap " << i << ":\n" << outcome.output;
    EXPECT_NE(outcome.output.find("deployed: pid"), std::string::npos) << outcome.output;
    replaced.insert(replaced.end(), before.begin(), before.end());
  }
  load.stop();
  verify::LoadReport report = load.join();

  // At least the 100 seen before the first swap, and more while swapping.
  EXPECT_GT(report.counts.ok, 100u + kSwaps);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  for (pid_t pid : replaced) EXPECT_FALSE(process_exists(pid)) << "pid " << pid << " survived";
  EXPECT_EQ(daemon.server_pids().size(), 1u);
  // Connections of the deploy commands close asynchronously in the daemon.
  EXPECT_TRUE(eventually([&] { return daemon.open_fds() <= fds_before; }, 5s))
      << "open fds before " << fds_before << ", after " << daemon.open_fds();
}

TEST(Swap, TwentySwapsUnderLoadLoseNoRequestNewConnectionEach) {
  swap_under_load(verify::Mode::kClose);
}

TEST(Swap, TwentySwapsUnderLoadLoseNoRequestKeepAlive) {
  swap_under_load(verify::Mode::kKeepAlive);
}

TEST(Swap, FirstRunBecomesTheDaemonAndCtrlCTakesEverythingDown) {
  char pattern[] = "/tmp/serverswap-test-XXXXXX";
  ASSERT_TRUE(mkdtemp(pattern));
  std::string socket = std::string(pattern) + "/control.sock";
  Child first({SERVERSWAP_BIN, "--socket", socket, HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_TRUE(first.wait_for_output("is up", 10s)) << first.output();
  Child status({SERVERSWAP_BIN, "--socket", socket, "status"});
  ASSERT_EQ(status.wait(10s), 0);
  EXPECT_NE(status.output().find("up"), std::string::npos) << status.output();
  first.signal(SIGINT);
  ASSERT_EQ(first.wait(10s), 0) << first.output();
  EXPECT_NE(first.output().find("every server has exited"), std::string::npos);
  Child after({SERVERSWAP_BIN, "--socket", socket, "status"});
  EXPECT_EQ(after.wait(10s), 3) << after.output();  // no daemon any more
  std::filesystem::remove_all(pattern);
}

TEST(Swap, DeployModeExitsZeroWhenReplacedAndOneWhenItsServerFails) {
  DaemonUnderTest daemon;
  auto attached = daemon.start_deploy({HELLO_SERVER_BIN, "127.0.0.1:0"},
                                      std::string(SERVERSWAP_BIN) + "-deploy");
  ASSERT_TRUE(attached->wait_for_output("deployed:", 10s)) << attached->output();
  EXPECT_FALSE(attached->wait(0ms)) << "deploy mode must stay attached";
  auto swap = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(swap.code, 0) << swap.output;
  EXPECT_EQ(attached->wait(10s), 0) << attached->output();
  EXPECT_NE(attached->output().find("after a newer deploy replaced it"), std::string::npos);

  auto crashing =
      daemon.start_deploy({"/bin/sh", "-c", "exit 7"}, std::string(SERVERSWAP_BIN) + "-deploy");
  EXPECT_EQ(crashing->wait(10s), 1) << crashing->output();
  EXPECT_NE(crashing->output().find("exited with status 7"), std::string::npos);
}

}  // namespace
}  // namespace serverswap::testing
