// Races: ten deploys of the same command at once make one swap. The first wins; the others
// are refused at once with exit code 1, and the load on the old server never fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

constexpr int kDeploys = 10;

TEST(Race, TenDeploysOfTheSameCommandAtOnceOneWinsUnderLoad) {
  DaemonUnderTest daemon;
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));
  pid_t old_pid = daemon.server_pids().at(0);

  verify::LoadOptions options;
  options.host = host;
  options.port = port;
  options.duration = std::chrono::seconds(60);  // an upper bound; stopped below
  options.connections = 8;
  options.mode = verify::Mode::kClose;
  options.rate = 500;
  verify::LoadRun load(options);
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  // The new server waits at a gate (a FIFO) before it starts, so that every deploy reaches
  // the daemon while the first is still starting, however slow this machine is.
  std::string gate = daemon.dir() + "/gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  const std::vector<std::string> gated = {
      "/bin/sh", "-c", "read go < " + gate + " && exec " + HELLO_SERVER_BIN + " 127.0.0.1:0"};
  std::vector<std::unique_ptr<Child>> deploys;
  for (int i = 0; i < kDeploys; ++i) deploys.push_back(daemon.start_deploy(gated));

  // Nine are refused while the first waits at the gate.
  std::vector<Child*> refused, waiting;
  auto sort_out = [&] {
    refused.clear();
    waiting.clear();
    for (auto& d : deploys) (d->wait(0ms).has_value() ? refused : waiting).push_back(d.get());
    return refused.size() >= kDeploys - 1u;
  };
  ASSERT_TRUE(eventually(sort_out, 15s)) << refused.size() << " deploys ended";
  ASSERT_EQ(refused.size(), kDeploys - 1u);
  ASSERT_EQ(waiting.size(), 1u);
  for (Child* d : refused) {
    EXPECT_EQ(d->wait(0ms), 1) << d->output();
    EXPECT_NE(d->output().find("another deploy of this command is in progress (generation "),
              std::string::npos)
        << d->output();
  }

  // A deploy of another command is independent of the one in progress.
  auto other = daemon.deploy({HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/other.sock"});
  EXPECT_EQ(other.code, 0) << other.output;

  // Open the gate: the winner comes up, replaces the old server, and exits 0.
  UniqueFd writer(open(gate.c_str(), O_RDWR | O_CLOEXEC));  // O_RDWR: never blocks on a FIFO
  ASSERT_TRUE(writer.valid());
  ASSERT_EQ(write(writer.get(), "go\n", 3), 3);
  ASSERT_EQ(waiting[0]->wait(20s), 0) << waiting[0]->output();
  EXPECT_NE(waiting[0]->output().find("replaced pid " + std::to_string(old_pid)), std::string::npos)
      << waiting[0]->output();

  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_GT(report.counts.ok, 100u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  EXPECT_EQ(daemon.server_pids().size(), 2u) << daemon.status().dump();  // winner + other
}

}  // namespace
}  // namespace serverswap::testing
