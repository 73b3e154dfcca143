// Races: the newest deploy wins (docs/architecture.md, "The newest deploy wins"). Ten
// deploys of one command, or of ten versions of a server on one port, make one swap: the
// newest exits 0, every other exits 1 "superseded by generation N", exactly one server is up
// afterwards and it is the winner's version, and the load never fails. The same with ten
// rolling deploys of workers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>

#include "harness.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::testing {
namespace {

constexpr int kDeploys = 10;

// 500 requests/s on 8 connections; 60 s is an upper bound, each test stops it.
verify::LoadOptions load_on(const std::string& host, uint16_t port, verify::Mode mode) {
  verify::LoadOptions options;
  options.host = host;
  options.port = port;
  options.duration = std::chrono::seconds(60);
  options.connections = 8;
  options.mode = mode;
  options.rate = 500;
  return options;
}

TEST(Race, TenDeploysOfTheSameCommandAtOnceOneWinsUnderLoad) {
  DaemonUnderTest daemon;
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));
  pid_t old_pid = daemon.server_pids().at(0);

  verify::LoadRun load(load_on(host, port, verify::Mode::kClose));
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  // The new server waits at a gate (a FIFO) before it starts, so that every deploy reaches
  // the daemon while the first is still starting, however slow this machine is.
  std::string gate = daemon.dir() + "/gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  const std::vector<std::string> gated = {
      "/bin/sh", "-c", "read go < " + gate + " && exec " + HELLO_SERVER_BIN + " 127.0.0.1:0"};
  std::vector<std::unique_ptr<Child>> deploys;
  for (int i = 0; i < kDeploys; ++i) deploys.push_back(daemon.start_deploy(gated));

  // Each deploy supersedes the one before it, whose server waits at the gate: nine exit 1.
  std::vector<Child*> superseded, waiting;
  auto sort_out = [&] {
    superseded.clear();
    waiting.clear();
    for (auto& d : deploys) (d->wait(0ms).has_value() ? superseded : waiting).push_back(d.get());
    return superseded.size() >= kDeploys - 1u;
  };
  ASSERT_TRUE(eventually(sort_out, 15s)) << superseded.size() << " deploys ended";
  ASSERT_EQ(superseded.size(), kDeploys - 1u);
  ASSERT_EQ(waiting.size(), 1u);
  for (Child* d : superseded) {
    EXPECT_EQ(d->wait(0ms), 1) << d->output();
    EXPECT_NE(d->output().find("superseded by generation "), std::string::npos) << d->output();
  }

  // A deploy of another app is independent of the one in progress.
  daemon.deploy_options = {"--name", "other"};
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

// The report: ten versions of a server on one port deployed at once. Whatever order their
// servers come up in, the newest deploy wins. Here the newest comes up first, so that every
// other one comes up after a newer server is already up (where two versions once stayed up
// side by side): each is superseded at once.
TEST(Race, TenVersionsOnOnePortTheNewestWinsWhateverComesUpFirst) {
  DaemonUnderTest daemon;
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0", "--body", "gen0"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));
  pid_t old_pid = daemon.server_pids().at(0);

  verify::LoadRun load(load_on(host, port, verify::Mode::kKeepAlive));
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  // Version i waits at gate i before it starts. Each deploy is seen started before the next
  // is sent, so that generations follow i.
  std::vector<std::unique_ptr<Child>> deploys;
  std::vector<std::string> gates;
  for (int i = 1; i <= kDeploys; ++i) {
    gates.push_back(daemon.dir() + "/gate" + std::to_string(i));
    ASSERT_EQ(mkfifo(gates.back().c_str(), 0600), 0);
    deploys.push_back(
        daemon.start_deploy({"/bin/sh", "-c",
                             "read go < " + gates.back() + " && exec " + HELLO_SERVER_BIN +
                                 " 127.0.0.1:0 --body gen" + std::to_string(i)}));
    ASSERT_TRUE(deploys.back()->wait_for_output("started generation", 10s))
        << deploys.back()->output();
  }
  // The writers stay open until the end: a FIFO's data is dropped when its last end closes,
  // and the shell may not have opened its gate yet.
  std::vector<UniqueFd> writers;
  auto open_gate = [&](int i) {
    writers.emplace_back(open(gates[i].c_str(), O_RDWR | O_CLOEXEC));  // O_RDWR: never blocks
    ASSERT_TRUE(writers.back().valid());
    ASSERT_EQ(write(writers.back().get(), "go\n", 3), 3);
  };
  // The newest first: it replaces generation 0 and exits 0.
  open_gate(kDeploys - 1);
  ASSERT_EQ(deploys.back()->wait(20s), 0) << deploys.back()->output();
  EXPECT_NE(deploys.back()->output().find("replaced pid " + std::to_string(old_pid)),
            std::string::npos)
      << deploys.back()->output();
  // Then all the older ones at once: each comes up after a newer one is up.
  for (int i = 0; i < kDeploys - 1; ++i) open_gate(i);
  for (int i = 0; i < kDeploys - 1; ++i) {
    EXPECT_EQ(deploys[i]->wait(20s), 1) << deploys[i]->output();
    EXPECT_NE(deploys[i]->output().find("superseded by generation "), std::string::npos)
        << deploys[i]->output();
  }

  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_GT(report.counts.ok, 100u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  // Exactly one server, the winner's version, serves.
  ASSERT_TRUE(eventually([&] { return daemon.server_pids().size() == 1u; }, 20s))
      << daemon.status().dump();
  EXPECT_NE(http_get(port, "/").find("gen10"), std::string::npos);
}

// The same with workers: ten rolling deploys (`--workers 2`) of one command, each a new
// VERSION, at once. Each supersedes the roll before it (the newest deploy wins, also against
// a roll in progress); the winner rolls its two workers over the old ones under load.
TEST(Race, TenRollingDeploysOfWorkersAtOnceTheNewestWinsUnderLoad) {
  DaemonUnderTest daemon;
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  auto deploy_workers = [&](const std::vector<std::string>& command, const std::string& version) {
    std::vector<std::string> argv = {
        SERVERSWAP_BIN, "--socket", daemon.socket(), "--name", "web", "--workers", "2", "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    return std::make_unique<Child>(argv, std::map<std::string, std::string>{{"VERSION", version}});
  };
  auto first = deploy_workers({WORKER_SERVER_BIN, "127.0.0.1:0"}, "v0");
  ASSERT_EQ(first->wait(30s), 0) << first->output() << daemon.process().output();
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));

  verify::LoadRun load(load_on(host, port, verify::Mode::kClose));
  ASSERT_TRUE(load.wait_for_ok(100, 10s)) << "the load never got going";

  // Every worker waits at one gate (a FIFO) before it starts; each deploy is seen starting a
  // worker before the next is sent, so that generations follow the versions.
  std::string gate = daemon.dir() + "/gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  const std::vector<std::string> gated = {
      "/bin/sh", "-c", "read go < " + gate + " && exec " + WORKER_SERVER_BIN + " 127.0.0.1:0"};
  std::vector<std::unique_ptr<Child>> deploys;
  for (int i = 1; i <= kDeploys; ++i) {
    deploys.push_back(deploy_workers(gated, "v" + std::to_string(i)));
    ASSERT_TRUE(deploys.back()->wait_for_output("started generation", 10s))
        << deploys.back()->output() << daemon.process().output();
  }
  for (int i = 0; i < kDeploys - 1; ++i) {
    EXPECT_EQ(deploys[i]->wait(20s), 1) << deploys[i]->output();
    EXPECT_NE(deploys[i]->output().find("superseded by generation "), std::string::npos)
        << deploys[i]->output();
    EXPECT_EQ(deploys[i]->output().find("the rollout stopped"), std::string::npos)
        << "superseded, not failed: " << deploys[i]->output();
  }

  // Open the gate for the winner's workers (one line each; the writer stays open).
  UniqueFd writer(open(gate.c_str(), O_RDWR | O_CLOEXEC));  // O_RDWR: never blocks on a FIFO
  ASSERT_TRUE(writer.valid());
  ASSERT_EQ(write(writer.get(), "go\ngo\n", 6), 6);
  ASSERT_EQ(deploys.back()->wait(30s), 0) << deploys.back()->output() << daemon.process().output();

  load.stop();
  verify::LoadReport report = load.join();
  EXPECT_GT(report.counts.ok, 100u);
  EXPECT_EQ(report.counts.failed(), 0u) << verify::to_text(report);
  // Exactly two workers, both of the winner's version, serve.
  nlohmann::json status;
  ASSERT_TRUE(eventually(
      [&] {
        status = daemon.status();
        return status["servers"].size() == 2u;
      },
      20s))
      << status.dump(1);
  std::set<int> indices;
  for (const auto& s : status["servers"]) {
    EXPECT_EQ(s["state"], "up") << status.dump(1);
    if (s["worker"].is_number()) indices.insert(s["worker"].get<int>());
  }
  EXPECT_EQ(indices, (std::set<int>{0, 1})) << status.dump(1);
  for (int i = 0; i < 4; ++i)
    EXPECT_NE(http_get(port, "/").find("version=v" + std::to_string(kDeploys)), std::string::npos);
}

// Found by trying the README as a user: `serverswap reload` (or SIGHUP, ExecReload=) while a
// deploy of a new version was starting redeployed the OLD version's command (the up
// server's), which superseded the deploy in flight: a reload rolled the deploy back. Now the
// reload waits for the deploy (one follow-up, its requester told), then redeploys the new
// version.
TEST(Race, AReloadDuringADeployWaitsForItInsteadOfRollingItBack) {
  DaemonUnderTest daemon;
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0", "--body", "old"});
  ASSERT_EQ(first.code, 0) << first.output;
  auto [host, port] = split_address(daemon.address_of("127.0.0.1:0"));

  std::string gate = daemon.dir() + "/gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  auto deploy = daemon.start_deploy(
      {"/bin/sh", "-c",
       "read go < " + gate + " && exec " + HELLO_SERVER_BIN + " 127.0.0.1:0 --body new"});
  ASSERT_TRUE(deploy->wait_for_output("started generation", 10s)) << deploy->output();
  auto reload = std::make_unique<Child>(
      std::vector<std::string>{SERVERSWAP_BIN, "--socket", daemon.socket(), "reload"});
  ASSERT_TRUE(reload->wait_for_output("reload queued until no deploy is in flight (1 deploy", 10s))
      << reload->output();
  EXPECT_EQ(daemon.server_pids().size(), 2u)
      << "nothing redeployed yet: " << daemon.status().dump();
  // Two lines: one for the deploy's server, one for the reload's (the same command).
  UniqueFd writer(open(gate.c_str(), O_RDWR | O_CLOEXEC));  // kept open: see above
  ASSERT_TRUE(writer.valid());
  ASSERT_EQ(write(writer.get(), "go\ngo\n", 6), 6);

  EXPECT_EQ(deploy->wait(20s), 0) << deploy->output();
  EXPECT_EQ(reload->wait(20s), 0) << reload->output() << daemon.process().output();
  EXPECT_NE(reload->output().find("reloaded '"), std::string::npos) << reload->output();
  ASSERT_TRUE(eventually([&] { return daemon.server_pids().size() == 1u; }, 20s))
      << daemon.status().dump();
  EXPECT_NE(http_get(port, "/").find("new"), std::string::npos)
      << reload->output() << daemon.status().dump() << daemon.process().output();
}

}  // namespace
}  // namespace serverswap::testing
