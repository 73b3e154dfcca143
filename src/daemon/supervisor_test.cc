// The supervisor against fakes of its seams (daemon/testing/fake_seams.h): each rule of the
// state table, one scenario per test, with time moved only by the fake clock.
#include "daemon/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "base/log.h"
#include "daemon/testing/fake_seams.h"

namespace serverswap::daemon {
namespace {

using protocol::Json;
using testing::FakeClock;
using testing::FakeListeners;
using testing::FakePeer;
using testing::FakeProcesses;

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() {
    set_log_muted(true);
    SupervisorOptions options;
    options.socket_path = "test.sock";
    options.ready_timeout = Millis(5000);
    options.takedown_timeout = Millis(3000);
    options.settle = Millis(1000);
    options.restart_delay = Millis(100);
    supervisor_ = std::make_unique<Supervisor>(
        SupervisorSeams{clock_, processes_, listeners_}, options, [this](uint64_t id) -> Peer* {
          auto it = peers_.find(id);
          return it == peers_.end() || it->second->closed ? nullptr : it->second.get();
        });
  }
  ~SupervisorTest() override {
    supervisor_.reset();
    set_log_muted(false);
  }

  // Deploys `argv`; the outcomes go to outcomes_[index], the returned index.
  size_t deploy(std::vector<std::string> argv) {
    SpawnSpec spec;
    spec.argv = std::move(argv);
    spec.cwd = "/srv";
    size_t index = outcomes_.size();
    outcomes_.emplace_back();
    supervisor_->deploy(
        spec,
        [this, index](const Json& m) {
          std::string name = m.begin().key();
          if (name == "deployed" || name == "deployFailed") outcomes_[index].push_back(m);
        },
        false);
    return index;
  }
  // Deploys `argv` as a rolling deploy of `workers` workers.
  size_t deploy_workers(std::vector<std::string> argv, int workers) {
    SpawnSpec spec;
    spec.argv = std::move(argv);
    spec.cwd = "/srv";
    spec.workers = workers;
    size_t index = outcomes_.size();
    outcomes_.emplace_back();
    supervisor_->deploy(
        spec,
        [this, index](const Json& m) {
          std::string name = m.begin().key();
          if (name == "deployed" || name == "deployFailed") outcomes_[index].push_back(m);
        },
        false);
    return index;
  }
  pid_t last_pid() const { return processes_.all().rbegin()->first; }
  std::string id_of(pid_t pid) {
    for (const auto& e : processes_.find(pid)->spec.env)
      if (e.starts_with("SERVERSWAP_ID=")) return e.substr(14);
    return "";
  }
  FakePeer& hello(pid_t pid, bool up_message = true) {
    uint64_t id = next_peer_++;
    auto& peer = peers_[id] = std::make_unique<FakePeer>(id, pid);
    send(*peer,
         protocol::make("hello", {{"protocol", 1}, {"id", id_of(pid)}, {"upMessage", up_message}}),
         true);
    return *peer;
  }
  void send(FakePeer& peer, const Json& message, bool first = false) {
    auto decoded = protocol::decode(protocol::encode(message));
    ASSERT_TRUE(decoded.ok());
    if (first)
      supervisor_->hello(peer, *decoded);
    else
      supervisor_->server_message(peer, *decoded);
  }
  // A server that asks for `resource`, subscribes to takeDown and says serverUp.
  FakePeer& bring_up(pid_t pid, const std::string& resource) {
    FakePeer& peer = hello(pid);
    send(peer, protocol::make("onTakedown", resource));
    send(peer, protocol::make("readyFor", resource));
    send(peer, protocol::make("serverUp", true));
    return peer;
  }
  static bool got(const FakePeer& peer, const std::string& name) {
    for (const auto& m : peer.sent)
      if (m.begin().key() == name) return true;
    return false;
  }
  std::string state_of(pid_t pid) {
    for (const auto& s : supervisor_->status())
      if (s["pid"] == pid) return s["state"];
    return "gone";
  }
  std::string outcome(size_t index) {
    if (outcomes_[index].size() != 1) return std::to_string(outcomes_[index].size()) + " outcomes";
    const Json& m = outcomes_[index][0];
    if (m.begin().key() == "deployed") return "deployed";
    return "failed: " + m.begin().value().value("reason", "");
  }

  FakeClock clock_;
  FakeProcesses processes_;
  FakeListeners listeners_;
  std::map<uint64_t, std::unique_ptr<FakePeer>> peers_;
  uint64_t next_peer_ = 1;
  std::vector<std::vector<Json>> outcomes_;
  std::unique_ptr<Supervisor> supervisor_;
};

TEST_F(SupervisorTest, ADeployIsDeployedOnceItsServerSaysItIsUp) {
  size_t d = deploy({"srv", "v1"});
  pid_t pid = last_pid();
  FakePeer& peer = hello(pid);
  EXPECT_TRUE(got(peer, "welcome"));
  send(peer, protocol::make("readyFor", ":8080"));
  EXPECT_TRUE(got(peer, "resourceReady"));
  EXPECT_TRUE(outcomes_[d].empty()) << "ready is not up";
  send(peer, protocol::make("serverUp", true));
  EXPECT_EQ(outcome(d), "deployed");
  EXPECT_EQ(state_of(pid), "up");
}

TEST_F(SupervisorTest, TheOldServerGoesDownOnlyOnceTheNewOneIsUpAndTheDeployWaitsForItsExit) {
  deploy({"srv", "v1"});
  pid_t old_pid = last_pid();
  FakePeer& old_peer = bring_up(old_pid, ":8080");
  size_t d = deploy({"srv", "v2"});
  pid_t new_pid = last_pid();
  FakePeer& new_peer = hello(new_pid);
  send(new_peer, protocol::make("readyFor", ":8080"));
  EXPECT_FALSE(got(old_peer, "takeDown")) << "the new one is only ready";
  send(new_peer, protocol::make("serverUp", true));
  EXPECT_TRUE(got(old_peer, "takeDown"));
  EXPECT_TRUE(outcomes_[d].empty()) << "the old one has not exited yet";
  processes_.exit(old_pid, 0, 0);
  EXPECT_EQ(outcome(d), "deployed");
}

TEST_F(SupervisorTest, ANewServerThatFailsLeavesTheOldOneServingUntouched) {
  deploy({"srv", "v1"});
  pid_t old_pid = last_pid();
  FakePeer& old_peer = bring_up(old_pid, ":8080");
  size_t d = deploy({"srv", "v2"});
  pid_t new_pid = last_pid();
  FakePeer& new_peer = hello(new_pid);
  send(new_peer, protocol::make("readyFor", ":8080"));
  send(new_peer, protocol::make("fail", "bad config"));
  processes_.exit(new_pid, 1, 0);
  EXPECT_EQ(outcome(d), "failed: sent fail: bad config");
  EXPECT_FALSE(got(old_peer, "takeDown"));
  EXPECT_TRUE(processes_.find(old_pid)->signals.empty());
  EXPECT_EQ(state_of(old_pid), "up");
}

TEST_F(SupervisorTest, AServerNotUpWithinTheReadyTimeoutFailsAndIsSignalled) {
  size_t d = deploy({"srv", "v1"});
  pid_t pid = last_pid();
  hello(pid);
  ASSERT_TRUE(clock_.fire_next());  // --ready-timeout
  EXPECT_EQ(processes_.find(pid)->signals, std::vector<int>{SIGTERM});
  processes_.exit(pid, 0, SIGTERM);
  EXPECT_EQ(outcome(d).rfind("failed: not up within --ready-timeout 5s", 0), 0u) << outcome(d);
}

TEST_F(SupervisorTest, TheNewestDeployOfACommandSupersedesOneThatIsNotUpYet) {
  size_t first = deploy({"srv", "v1"});
  pid_t first_pid = last_pid();
  size_t second = deploy({"srv", "v1"});
  EXPECT_EQ(processes_.find(first_pid)->signals, std::vector<int>{SIGTERM});
  processes_.exit(first_pid, 0, SIGTERM);
  EXPECT_EQ(outcome(first), "failed: superseded by generation 2");
  bring_up(last_pid(), ":8080");
  EXPECT_EQ(outcome(second), "deployed");
}

TEST_F(SupervisorTest, AServerThatComesUpAfterANewerOneOfItsResourceIsSuperseded) {
  size_t older = deploy({"srv", "v1"});
  pid_t older_pid = last_pid();
  size_t newer = deploy({"srv", "v2"});
  bring_up(last_pid(), ":8080");
  EXPECT_EQ(outcome(newer), "deployed");
  FakePeer& late = hello(older_pid);
  send(late, protocol::make("onTakedown", ":8080"));
  send(late, protocol::make("readyFor", ":8080"));
  EXPECT_TRUE(got(late, "takeDown"));
  processes_.exit(older_pid, 0, 0);
  EXPECT_EQ(outcome(older), "failed: superseded by generation 2");
  EXPECT_EQ(supervisor_->status().size(), 1u);
}

TEST_F(SupervisorTest, ADeployWhoseServerIsReplacedBeforeItsPredecessorExitedIsSuperseded) {
  deploy({"srv", "v1"});
  pid_t v1 = last_pid();
  bring_up(v1, ":8080");
  size_t second = deploy({"srv", "v2"});
  bring_up(last_pid(), ":8080");  // v1 drains
  size_t third = deploy({"srv", "v3"});
  bring_up(last_pid(), ":8080");
  EXPECT_EQ(outcome(second),
            "failed: superseded by generation 3 before the servers it replaced "
            "had exited");
  processes_.exit(v1, 0, 0);
  EXPECT_TRUE(outcomes_[third].empty()) << "v2 has not exited";
}

TEST_F(SupervisorTest, ANewerRollingDeployOfACommandSupersedesOneInProgress) {
  size_t first = deploy_workers({"wrk", "v1"}, 2);
  pid_t a0 = last_pid() - 1, a1 = last_pid();
  bring_up(a0, ":8080");
  EXPECT_EQ(state_of(a0), "up");
  size_t second = deploy_workers({"wrk", "v1"}, 2);
  // The newest deploy wins: the first roll exits superseded (not "failed"), its worker not
  // yet up is stopped, and its up worker keeps serving until the new roll replaces it.
  EXPECT_EQ(outcome(first), "failed: superseded by generation 3");
  EXPECT_EQ(state_of(a1), "failed");
  EXPECT_EQ(state_of(a0), "up");
  processes_.exit(a1, 0, SIGTERM);
  // Under --max-surge (default 1) the new workers start one by one as room is made.
  std::set<pid_t> brought;
  for (int round = 0; round < 4 && outcomes_[second].empty(); ++round) {
    for (const auto& [pid, record] : processes_.all())
      if (pid > a1 && !record->exited && brought.insert(pid).second) bring_up(pid, ":8080");
    if (state_of(a0) == "draining") processes_.exit(a0, 0, 0);
  }
  EXPECT_EQ(brought.size(), 2u);
  EXPECT_EQ(outcome(second), "deployed");
}

TEST_F(SupervisorTest, AnAdoptedServerThatWasStartingAndDoesNotResumeFailsAtTheAdoptTimeout) {
  SpawnSpec spec;
  spec.argv = {"srv"};
  spec.cwd = "/srv";
  auto process = processes_.spawn(spec, nullptr, {});  // started by the daemon that died
  ASSERT_TRUE(process.ok());
  pid_t pid = (*process)->pid();
  DaemonState state;
  ServerRecord record;
  record.id = "1.00000000000000ab";
  record.pid = pid;
  record.start_time = static_cast<uint64_t>(pid);  // the fake's start time
  record.generation = 1;
  record.state = "connected";
  record.request = spec;
  state.servers.push_back(record);
  supervisor_->adopt(state);
  EXPECT_TRUE(supervisor_->adopting());
  // It cannot come up without its connection: it fails (and is signalled), rather than
  // staying "connected" for good.
  supervisor_->give_up_adoption();
  EXPECT_EQ(state_of(pid), "failed");
  EXPECT_FALSE(processes_.find(pid)->signals.empty());
}

TEST_F(SupervisorTest, AnUpServerThatCrashesIsRestartedAfterTheDelay) {
  deploy({"srv", "v1"});
  pid_t pid = last_pid();
  bring_up(pid, ":8080");
  processes_.exit(pid, 1, 0);
  EXPECT_EQ(processes_.alive(), 0u);
  ASSERT_TRUE(clock_.fire_next());  // --restart-delay
  EXPECT_EQ(processes_.alive(), 1u);
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v1"}));
  for (const auto& s : supervisor_->status()) EXPECT_EQ(s["restarts"], 1);
}

TEST_F(SupervisorTest, StopTakesEveryServerDownAndKillsWhatIgnoresItAfterTheGrace) {
  deploy({"srv", "v1"});
  pid_t pid = last_pid();
  hello(pid, false);
  send(*peers_.rbegin()->second, protocol::make("readyFor", ":8080"));
  ASSERT_TRUE(clock_.fire_next());  // --settle: up
  ASSERT_EQ(state_of(pid), "up");
  bool done = false;
  supervisor_->stop([&] { done = true; });
  EXPECT_EQ(processes_.find(pid)->signals, std::vector<int>{SIGTERM});
  ASSERT_TRUE(clock_.fire_next());  // --takedown-timeout: it ignored SIGTERM
  EXPECT_EQ(processes_.find(pid)->signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_FALSE(done);
  processes_.exit(pid, 0, SIGKILL);
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace serverswap::daemon
