// The supervisor against fakes of its seams (daemon/testing/fake_seams.h): each rule of the
// state table, one scenario per test, with time moved only by the fake clock.
#include "daemon/core/supervisor.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "base/log.h"
#include "base/testing/temp_dir.h"
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
    // --user servers: their control socket's path only (the fakes connect nothing).
    options.socket_for_user = [](uid_t, gid_t) -> Result<std::string> {
      return std::string("user.sock");
    };
    options_ = options;
    supervisor_ = make_supervisor();
  }
  std::unique_ptr<Supervisor> make_supervisor() {
    return std::make_unique<Supervisor>(
        SupervisorSeams{clock_, processes_, listeners_}, options_, [this](uint64_t id) -> Peer* {
          auto it = peers_.find(id);
          return it == peers_.end() || it->second->closed ? nullptr : it->second.get();
        });
  }
  // The daemon is killed and started again: a new supervisor takes back what state.json
  // recorded (the servers go on running).
  void restart_daemon() {
    DaemonState state = supervisor_->record();
    supervisor_.reset();
    supervisor_ = make_supervisor();
    supervisor_->adopt(state);
  }
  ~SupervisorTest() override {
    supervisor_.reset();
    set_log_muted(false);
  }

  // Deploys `argv` (as `user`, when given); the outcomes go to outcomes_[index], the returned
  // index.
  size_t deploy(std::vector<std::string> argv, const std::string& user = "") {
    SpawnSpec spec;
    spec.argv = std::move(argv);
    spec.user = user;
    return deploy_spec(std::move(spec));
  }
  // Deploys `argv` as a rolling deploy of `workers` workers.
  size_t deploy_workers(std::vector<std::string> argv, int workers) {
    SpawnSpec spec;
    spec.argv = std::move(argv);
    spec.workers = workers;
    return deploy_spec(std::move(spec));
  }
  // The tests' apps are "srv" (versions "srv v1", "srv v2", ...), "wrk", "alt", "prog"; each may
  // take the others' resources over (--replace), as any command could before apps had names.
  size_t deploy_spec(SpawnSpec spec) {
    spec.cwd = "/srv";
    if (spec.replace.empty() && replace_any_) spec.replace = {"*"};
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
  // The NOTIFY_SOCKET the supervisor gave `pid` ("" when none).
  std::string notify_socket_of(pid_t pid) {
    for (const auto& e : processes_.find(pid)->spec.env)
      if (e.starts_with("NOTIFY_SOCKET=")) return e.substr(14);
    return "";
  }
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
  // The prelude of most tests: `argv` deployed, and its server up on `resource` (bring_up).
  struct UpServer {
    pid_t pid;
    FakePeer& peer;
  };
  UpServer deploy_up(std::vector<std::string> argv, const std::string& resource) {
    deploy(std::move(argv));
    pid_t pid = last_pid();
    return {pid, bring_up(pid, resource)};
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
  SupervisorOptions options_;
  std::unique_ptr<Supervisor> supervisor_;
  bool replace_any_ = true;  // deploy_spec gives a spec without --replace '*'
};

// A server that asks again for what it holds is answered the same (the same socket) and
// nothing else changes: no settle timer started again, no new state. One that says hello
// again each time its connection closes is welcomed 10 times, then refused with a reason it
// can print (its connection closed), while a legitimate client says hello once.
TEST_F(SupervisorTest, ReadyForRepeatsChangeNothingAndHellosInALoopAreRefusedPastTheBurst) {
  deploy({"srv"});
  pid_t pid = last_pid();
  FakePeer* peer = &bring_up(pid, ":8080");
  ASSERT_EQ(state_of(pid), "up");
  const size_t timers = clock_.pending();
  for (int i = 0; i < 50; ++i) send(*peer, protocol::make("readyFor", ":8080"));
  size_t ready = 0;
  for (const auto& m : peer->sent) ready += m.begin().key() == "resourceReady";
  EXPECT_EQ(ready, 51u);
  EXPECT_EQ(clock_.pending(), timers);
  EXPECT_EQ(state_of(pid), "up");

  for (int i = 1; i < kHelloBurst; ++i) {
    peer->close();
    supervisor_->disconnected(*peer);
    peer = &hello(pid);
    ASSERT_TRUE(got(*peer, "welcome")) << i << ": " << peer->sent.back().dump();
  }
  peer->close();
  supervisor_->disconnected(*peer);
  FakePeer& refused = hello(pid);
  ASSERT_FALSE(got(refused, "welcome"));
  ASSERT_TRUE(got(refused, "error"));
  EXPECT_NE(
      refused.sent.back()["error"].get<std::string>().find("too many hellos from this server"),
      std::string::npos)
      << refused.sent.back().dump();
  EXPECT_TRUE(refused.closed);
  EXPECT_EQ(state_of(pid), "up");  // still serving; only its connection was refused
}

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
  auto [old_pid, old_peer] = deploy_up({"srv", "v1"}, ":8080");
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
  auto [old_pid, old_peer] = deploy_up({"srv", "v1"}, ":8080");
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

// A `fail` from a server whose start had failed (here: --ready-timeout) is not "after it was
// up": it never was. Said as what is true, and it changes nothing.
TEST_F(SupervisorTest, AFailFromAServerThatWasNeverUpIsNotSaidToBeAfterItWasUp) {
  std::vector<std::string> texts;
  options_.observer = [&](const Json& line) {
    if (line.contains("event") && line["event"].value("kind", "") == "fail")
      texts.push_back(line["event"].value("text", ""));
  };
  supervisor_ = make_supervisor();
  size_t d = deploy({"srv", "v1"});
  pid_t pid = last_pid();
  FakePeer& peer = hello(pid);
  ASSERT_TRUE(clock_.fire_next());  // --ready-timeout: failed, being stopped
  ASSERT_EQ(state_of(pid), "failed");
  send(peer, protocol::make("fail", "too late"));
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].find("after it was up"), std::string::npos) << texts[0];
  EXPECT_NE(texts[0].find("sent fail after its start had already failed (ignored: it is being "
                          "stopped): too late"),
            std::string::npos)
      << texts[0];
  processes_.exit(pid, 0, SIGTERM);
  EXPECT_EQ(outcome(d).rfind("failed: not up within --ready-timeout 5s", 0), 0u) << outcome(d);
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
  size_t older = deploy({"alt", "v1"});  // another app: a version of "srv" is superseded at once
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
  pid_t v1 = deploy_up({"srv", "v1"}, ":8080").pid;
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

// Found by the simulator (seed 75 of the worker mix): a plain server and a worker share
// a slot, so the newer deploy wins whichever of the two is the worker.
TEST_F(SupervisorTest, ANewerRollsWorkerSupersedesAnOlderPlainServerStillStarting) {
  size_t plain = deploy({"srv", "X", ":3"});
  pid_t x = last_pid();
  FakePeer& x_peer = hello(x);
  send(x_peer, protocol::make("onTakedown", ":3"));
  send(x_peer, protocol::make("readyFor", ":3"));
  size_t roll = deploy_workers({"wrk", "W", ":3"}, 2);
  pid_t w0 = last_pid() - 1, w1 = last_pid();
  bring_up(w0, ":3");
  EXPECT_EQ(state_of(x), "failed") << "the older plain server would come up beside workers";
  EXPECT_TRUE(got(x_peer, "takeDown"));
  processes_.exit(x, 0, 0);
  EXPECT_EQ(outcome(plain), "failed: superseded by generation 2");
  bring_up(w1, ":3");
  EXPECT_EQ(outcome(roll), "deployed");
}

// Found by the simulator (seed 74 of the worker mix): every worker of a roll ranks by the
// roll's deploy order, so a later batch never outranks a newer deploy started meanwhile.
TEST_F(SupervisorTest, ALaterBatchOfARollRanksByTheRollsDeployOrder) {
  pid_t old = deploy_up({"wrk", "v1"}, ":8080").pid;
  SpawnSpec spec;
  spec.argv = {"wrk", "v1"};
  spec.workers = 2;
  spec.batch = 1;
  size_t roll = deploy_spec(spec);
  pid_t w0 = last_pid();
  bring_up(w0, ":8080");  // batch 1 is up: the old server goes, then batch 2 starts
  processes_.exit(old, 0, 0);
  pid_t w1 = last_pid();
  ASSERT_NE(w1, w0) << "the second batch did not start";
  std::map<pid_t, Json> order;
  for (const auto& s : supervisor_->status()) order[s["pid"].get<pid_t>()] = s["deployOrder"];
  EXPECT_EQ(order[w1], order[w0]);
  bring_up(w1, ":8080");
  EXPECT_EQ(outcome(roll), "deployed");
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
  auto process = processes_.spawn(spec, nullptr, {}, nullptr);  // started by the daemon that died
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
  pid_t pid = deploy_up({"srv", "v1"}, ":8080").pid;
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

// Deploys (deploys.h), at its hooks exited() and check(): one outcome per deploy, sent once
// its server is up and every server it replaced has exited, naming them; with follow_exit the
// server's own exit comes after it.
TEST_F(SupervisorTest, DeploysReportOnceTheReplacedServerHasExitedThenFollowTheServersExit) {
  pid_t old_pid = deploy_up({"srv", "v1"}, ":8080").pid;
  std::vector<Json> messages;
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec,
      [&](const Json& m) {
        if (!m.contains("event")) messages.push_back(m);
      },
      /*follow_exit=*/true);
  pid_t new_pid = last_pid();
  bring_up(new_pid, ":8080");
  EXPECT_TRUE(messages.empty()) << "the replaced server still runs";
  EXPECT_EQ(supervisor_->deploys_in_flight(), 1u);
  processes_.exit(old_pid, 0, 0);
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_TRUE(messages[0].contains("deployed"));
  EXPECT_EQ(messages[0]["deployed"]["replaced"], Json::array({old_pid}));
  EXPECT_EQ(supervisor_->deploys_in_flight(), 0u);
  processes_.exit(new_pid, 1, 0);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_TRUE(messages[1].contains("serverExited"));
  EXPECT_EQ(messages[1]["serverExited"]["pid"], new_pid);
}

// CrashRestarts (crash_restarts.h), at its hooks exited() and up(): a restart that fails
// before it is up continues the crash loop with twice the delay; one that stays up for
// --restart-reset ends it.
TEST_F(SupervisorTest, CrashRestartsBackOffWhileTheLoopGoesOnAndEndItOnceARestartStaysUp) {
  pid_t pid = deploy_up({"srv", "v1"}, ":8080").pid;
  processes_.exit(pid, 1, 0);
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u);
  EXPECT_EQ(loops[0].next_restart_ms, 100);
  ASSERT_TRUE(clock_.fire_next());  // the first restart
  pid_t first_restart = last_pid();
  ASSERT_NE(first_restart, pid);
  processes_.exit(first_restart, 1, 0);  // before it was up: the loop goes on
  loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u);
  EXPECT_EQ(loops[0].crashes, 2);
  EXPECT_EQ(loops[0].next_restart_ms, 200);
  ASSERT_TRUE(clock_.fire_next());  // the second restart
  pid_t second_restart = last_pid();
  bring_up(second_restart, ":8080");
  EXPECT_EQ(supervisor_->crash_loops()[0].next_restart_ms, std::nullopt);
  for (int i = 0; i < 5 && !supervisor_->crash_loops().empty(); ++i)
    ASSERT_TRUE(clock_.fire_next());  // --restart-reset
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  EXPECT_EQ(state_of(second_restart), "up");
  for (const auto& s : supervisor_->status()) EXPECT_EQ(s["restarts"], 2);
}

// Adoptions (adoptions.h), at the hooks adopt(), give_up_adoption() and exited(): a server
// taken back that does not resume in time is unmanaged (status says so, state.json still
// records it as it was taken back), and a newer server of its resource takes it down by its
// takedown signal.
TEST_F(SupervisorTest, AServerTakenBackThatDoesNotResumeIsUnmanagedAndSignalledWhenReplaced) {
  pid_t old_pid = deploy_up({"srv", "v1"}, ":8080").pid;
  restart_daemon();
  EXPECT_TRUE(supervisor_->adopting());
  EXPECT_EQ(state_of(old_pid), "up");
  supervisor_->give_up_adoption();
  EXPECT_FALSE(supervisor_->adopting());
  EXPECT_EQ(state_of(old_pid), "unmanaged");
  ASSERT_EQ(supervisor_->record().servers.size(), 1u);
  EXPECT_EQ(supervisor_->record().servers[0].state, "up");
  size_t d = deploy({"srv", "v2"});
  pid_t new_pid = last_pid();
  FakePeer& peer = hello(new_pid);
  send(peer, protocol::make("readyFor", ":8080"));
  EXPECT_TRUE(processes_.find(old_pid)->signals.empty() ||
              processes_.find(old_pid)->signals.back() != SIGTERM)
      << "not before the new one is up";
  send(peer, protocol::make("serverUp", true));
  EXPECT_EQ(processes_.find(old_pid)->signals.back(), SIGTERM);
  EXPECT_EQ(state_of(old_pid), "draining");
  processes_.exit(old_pid, 0, SIGTERM);
  EXPECT_EQ(outcome(d), "deployed");
  EXPECT_TRUE(supervisor_->crash_loops().empty()) << "it was replaced, not crashed";
}

// An unmanaged server that exits on its own was up when taken back: a crash, restarted.
TEST_F(SupervisorTest, AnUnmanagedServerThatCrashesIsRestartedAsAnUpServerWouldBe) {
  pid_t pid = deploy_up({"srv", "v1"}, ":8080").pid;
  restart_daemon();
  supervisor_->give_up_adoption();
  ASSERT_EQ(state_of(pid), "unmanaged");
  processes_.exit(pid, 1, 0);
  EXPECT_EQ(supervisor_->crash_loops().size(), 1u);
  ASSERT_TRUE(clock_.fire_next());  // --restart-delay
  EXPECT_EQ(processes_.alive(), 1u);
  EXPECT_NE(last_pid(), pid);
}

// WorkerRolls (worker_roll.h), at the hooks start(), worker_up() and exited(): the old copy
// goes only once the new worker of its index (its batch) is up, the next batch starts then,
// and the roll is deployed once every old copy it took down has exited.
TEST_F(SupervisorTest, ARollTakesTheOldCopyDownOnlyOnceItsBatchIsUpAndReportsAfterItExited) {
  auto [old_pid, old_peer] = deploy_up({"srv", "v1"}, ":8080");
  std::vector<Json> outcomes;
  SpawnSpec spec;
  spec.argv = {"srv", "v1"};
  spec.cwd = "/srv";
  spec.workers = 2;
  supervisor_->deploy(
      spec,
      [&](const Json& m) {
        if (m.contains("deployed") || m.contains("deployFailed")) outcomes.push_back(m);
      },
      false);
  pid_t worker0 = last_pid();
  ASSERT_NE(worker0, old_pid);
  EXPECT_EQ(processes_.alive(), 2u) << "batch 1 of 2 only";
  FakePeer& peer0 = hello(worker0);
  send(peer0, protocol::make("readyFor", ":8080"));
  EXPECT_FALSE(got(old_peer, "takeDown")) << "worker 0 is only ready";
  send(peer0, protocol::make("serverUp", true));
  EXPECT_TRUE(got(old_peer, "takeDown"));
  pid_t worker1 = last_pid();
  ASSERT_NE(worker1, worker0) << "the next batch starts once the first is up";
  bring_up(worker1, ":8080");
  EXPECT_TRUE(outcomes.empty()) << "the old copy has not exited";
  EXPECT_EQ(supervisor_->deploys_in_flight(), 1u);
  processes_.exit(old_pid, 0, 0);
  ASSERT_EQ(outcomes.size(), 1u);
  ASSERT_TRUE(outcomes[0].contains("deployed")) << outcomes[0].dump();
  EXPECT_EQ(outcomes[0]["deployed"]["workers"], Json::array({worker0, worker1}));
  EXPECT_EQ(outcomes[0]["deployed"]["replaced"], Json::array({old_pid}));
  EXPECT_EQ(supervisor_->deploys_in_flight(), 0u);
}

// Rolls of 2 workers of `argv` on :3, with batch 2 and surge 2 (both workers at once).
static SpawnSpec both_at_once(std::vector<std::string> argv) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.workers = 2;
  spec.batch = 2;
  spec.max_surge = 2;
  return spec;
}

// Found by the simulator (seed 2252 of the worker mix): a roll's new worker that fails before
// it is up is no restart: it neither continues the crash loop of its index nor starts a
// second restart beside the one still starting.
TEST_F(SupervisorTest, ARollsWorkerThatFailsBeforeItIsUpDoesNotContinueTheCrashLoopOfItsIndex) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old1, 1, 0);      // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_NE(restart, old1);
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new1 = last_pid();
  processes_.exit(new1, 1, 0);  // fails before it is up: the roll stops
  EXPECT_NE(outcome(roll).find("the rollout stopped"), std::string::npos) << outcome(roll);
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u);
  EXPECT_EQ(loops[0].crashes, 1) << "the new worker's failure counted as a crash of the loop";
  EXPECT_EQ(loops[0].next_restart_ms, std::nullopt) << "a second restart beside " << restart;
}

// Found by the simulator (seed 620 of the worker mix): a failed roll gives each index its
// old version back. Old worker 1 crashed, its restart failed, and its crash loop ended as
// new worker 1 was up there; when the roll fails, the old version is started again at index
// 1 and new worker 1 goes only once that is up (it used to go at once: one worker short).
TEST_F(SupervisorTest, AFailedRollStartsTheOldVersionAgainWhereItsOldWorkerIsGone) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old1, 1, 0);
  ASSERT_TRUE(clock_.fire_next());  // the restart of worker 1 starts
  pid_t restart = last_pid();
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  ASSERT_NE(new0, restart);
  FakePeer& new1_peer = bring_up(new1, ":3");
  // The restart fails before it is up: its loop ends, as new worker 1 serves index 1.
  processes_.exit(restart, 1, 0);
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  ASSERT_EQ(last_pid(), new1);
  processes_.exit(new0, 1, 0);  // the roll fails
  EXPECT_NE(outcome(roll).find("started again as worker 1"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_NE(again, new1) << "the old version was not started again at index 1";
  const auto& env = processes_.find(again)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=1"), env.end());
  EXPECT_FALSE(got(new1_peer, "takeDown")) << "before the old version is up again";
  EXPECT_EQ(state_of(new1), "up");
  bring_up(again, ":3");
  EXPECT_TRUE(got(new1_peer, "takeDown"));
  EXPECT_EQ(state_of(old0), "up");
  EXPECT_EQ(state_of(again), "up");
}

// Found by the simulator (seed 338 of the worker mix): the old version that a failed roll
// starts again is a restart of its index's crash loop. When it fails before it is up, it is
// started again after the loop's backoff (it was never retried: the failed roll's new worker
// stayed at that index beside the old version on the others), and once it is up the new
// worker of its index goes.
TEST_F(SupervisorTest, TheOldVersionAFailedRollStartsAgainIsRestartedWhenItFailsBeforeItIsUp) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  FakePeer& new1_peer = bring_up(new1, ":3");  // old worker 1 is taken down
  processes_.exit(old1, 0, 0);
  processes_.exit(new0, 1, 0);  // the roll fails
  EXPECT_NE(outcome(roll).find("started again as worker 1"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_NE(again, new1) << "the old version was not started again at index 1";
  hello(again);
  processes_.exit(again, 1, 0);  // fails before it is up
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u) << "nothing starts the old version again";
  EXPECT_EQ(loops[0].worker, 1);
  ASSERT_TRUE(loops[0].next_restart_ms.has_value());
  ASSERT_TRUE(clock_.fire_next());  // the restart starts after its backoff
  pid_t restart = last_pid();
  ASSERT_NE(restart, again);
  const auto& env = processes_.find(restart)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=1"), env.end());
  EXPECT_FALSE(got(new1_peer, "takeDown")) << "before the old version is up again";
  bring_up(restart, ":3");
  EXPECT_TRUE(got(new1_peer, "takeDown"));
  EXPECT_EQ(state_of(old0), "up");
  EXPECT_EQ(state_of(restart), "up");
}

// Found by the simulator (seed 2571 of the worker mix): an old worker's crash restart that
// starts during a roll is the old version of its index, even before it asks for anything.
// When the roll fails, the new worker there stays until the old version is up again (it went
// at once, and the index was left empty when the restart failed).
TEST_F(SupervisorTest, ACrashRestartStartedDuringARollIsTheOldVersionOfItsIndex) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old0, 1, 0);  // crashes while up: its restart is pending
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  ASSERT_TRUE(clock_.fire_next());  // the restart of old worker 0 starts during the roll
  pid_t restart = last_pid();
  ASSERT_NE(restart, new1);
  hello(restart);
  FakePeer& new0_peer = bring_up(new0, ":3");
  processes_.exit(new1, 1, 0);  // the roll fails
  EXPECT_NE(outcome(roll).find("the rollout stopped"), std::string::npos) << outcome(roll);
  EXPECT_FALSE(got(new0_peer, "takeDown")) << "index 0 was left without its old version";
  bring_up(last_pid(), ":3");
  EXPECT_TRUE(got(new0_peer, "takeDown"));
  EXPECT_EQ(state_of(old1), "up");
}

// Found by the simulator (seed 205 of the worker mix): the exit of a superseded restart of an
// old worker does not end the crash loop that a failed roll started for the old version of
// that index: the old version is still started again when it fails before it is up.
TEST_F(SupervisorTest, AnEarlierRestartsExitDoesNotEndTheLoopOfARestoredOldVersion) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old1, 1, 0);
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  ASSERT_TRUE(clock_.fire_next());  // the restart of old worker 1 starts during the roll
  pid_t restart = last_pid();
  bring_up(new1, ":3");
  FakePeer& restart_peer = hello(restart);
  send(restart_peer, protocol::make("readyFor", ":3"));  // superseded by new worker 1
  EXPECT_EQ(state_of(restart), "failed");
  processes_.exit(new0, 1, 0);  // the roll fails: index 1 gets its old version back
  EXPECT_NE(outcome(roll).find("started again as worker 1"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_NE(again, restart);
  processes_.exit(restart, 0, SIGTERM);
  processes_.exit(again, 1, 0);  // fails before it is up
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u) << "the earlier restart's exit ended the loop";
  EXPECT_TRUE(loops[0].next_restart_ms.has_value());
}

// Found by the simulator (seed 3191 of the worker mix): a failed roll gives back what serves
// when it fails. A plain server of an older deploy that came up during the roll replaced the
// old workers; it stands for every index, so nothing is started again (an old worker was, and
// it replaced the plain server: one worker of two once quiet).
TEST_F(SupervisorTest, AFailedRollLeavesAPlainServerThatReplacedTheOldWorkersMeanwhile) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  FakePeer& old0_peer = bring_up(old0, ":3");
  bring_up(old1, ":3");
  deploy({"srv", "X"});
  pid_t plain = last_pid();
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(plain, ":3");  // older than the roll: it replaces the old workers
  EXPECT_TRUE(got(old0_peer, "takeDown"));
  FakePeer& new1_peer = bring_up(new1, ":3");  // its batch is not up yet: it replaces nothing
  processes_.exit(new0, 1, 0);                 // the roll fails
  EXPECT_NE(outcome(roll).find("the rollout stopped"), std::string::npos) << outcome(roll);
  EXPECT_EQ(last_pid(), new1) << "an old worker was started again beside the plain server";
  EXPECT_TRUE(got(new1_peer, "takeDown")) << "the plain server serves every index";
  EXPECT_EQ(state_of(plain), "up");
}

// Found by the simulator (seed 3178 of the worker mix): a failed roll whose new worker came up
// and crashed, its restart starting, keeps it as it would keep an up one when no old copy
// serves: the old worker's crash loop ends (its restart came up beside the new worker's: two
// releases once quiet).
TEST_F(SupervisorTest, AFailedRollKeepsANewWorkerWhoseRestartIsStartingWhenNoOldCopyServes) {
  size_t first = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old1, ":3");
  processes_.exit(old0, 1, 0);  // a first roll fails: its worker 1 keeps serving
  ASSERT_NE(outcome(first).find("keep serving"), std::string::npos) << outcome(first);
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(new0, ":3");
  processes_.exit(new0, 1, 0);      // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_NE(restart, new1);
  processes_.exit(old1, 1, 0);  // the old worker crashes too: its restart is pending
  processes_.exit(new1, 1, 0);  // the roll fails
  EXPECT_NE(outcome(roll).find("the new workers that came up keep serving"), std::string::npos)
      << outcome(roll);
  for (const auto& loop : supervisor_->crash_loops())
    EXPECT_NE(loop.argv, std::vector<std::string>({"wrk", "v1"})) << "v1 comes back beside v2";
  EXPECT_EQ(state_of(restart), "starting") << "the new worker's restart was stopped";
}

// Found by the simulator (seed 2623 of the worker mix): an old worker that crashed before the
// roll, its restart pending, is the old version of its index. A new worker of the same
// command and index took its crash loop over (came up, crashed); when the roll fails, the old
// version is started again there (nothing did: one worker short once quiet).
TEST_F(SupervisorTest, AFailedRollStartsAgainAnOldWorkerWhoseCrashLoopANewWorkerTookOver) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old0, 1, 0);  // crashes while up: its restart is pending
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(new0, ":3");         // the same command and index: the old loop's restart stops
  processes_.exit(new0, 1, 0);  // and the loop now stands for the new worker
  processes_.exit(new1, 1, 0);  // the roll fails
  EXPECT_NE(outcome(roll).find("started again as worker 0"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_GT(again, new1);
  const auto& env = processes_.find(again)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=0"), env.end());
  EXPECT_EQ(state_of(old1), "up");
}

// Found by the simulator (seed 6314 of the worker mix): a roll superseded by a newer roll of its
// command after its worker had replaced an old one was never deployed, so when the newer roll
// fails, the old version of that index is the one the superseded roll replaced, not its worker
// (which was kept, and served beside the old release's other worker: two releases once quiet).
TEST_F(SupervisorTest, ARollThatSupersededAnotherGivesBackTheOldVersionTheOtherReplaced) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  SpawnSpec one_by_one;
  one_by_one.argv = {"wrk", "v0"};
  one_by_one.workers = 2;
  one_by_one.batch = 1;
  one_by_one.max_surge = 1;
  size_t superseded = deploy_spec(one_by_one);
  pid_t b0 = last_pid();
  FakePeer& b0_peer = bring_up(b0, ":3");  // replaces old worker 0
  processes_.exit(old0, 0, 0);
  pid_t b1 = last_pid();
  ASSERT_NE(b1, b0) << "worker 1 starts once old worker 0 has exited";
  size_t roll = deploy_spec(one_by_one);  // supersedes the roll in progress
  EXPECT_EQ(outcome(superseded).rfind("failed: superseded", 0), 0u) << outcome(superseded);
  // Versions of one app: the superseded roll's worker still starting is stopped, and the
  // new roll starts once it has exited (--max-surge 1).
  EXPECT_EQ(state_of(b1), "failed");
  processes_.exit(b1, 0, SIGTERM);
  pid_t c0 = last_pid();
  ASSERT_GT(c0, b1);
  processes_.exit(c0, 1, 0);  // the newer roll fails
  EXPECT_NE(outcome(roll).find("started again as worker 0"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_GT(again, c0) << "the old version of index 0 was not started again";
  const auto& spec = processes_.find(again)->spec;
  EXPECT_EQ(spec.argv.back(), "v1");
  EXPECT_NE(std::find(spec.env.begin(), spec.env.end(), "SERVERSWAP_WORKER=0"), spec.env.end());
  bring_up(again, ":3");
  EXPECT_TRUE(got(b0_peer, "takeDown")) << "the superseded roll's worker goes";
  EXPECT_EQ(state_of(old1), "up");
}

// Found by the simulator (seed 6517 of the worker mix): the exit of an older deploy's restart,
// superseded, does not end the crash loop that a later deploy's worker of the same command and
// index started when it crashed (that index was left empty).
TEST_F(SupervisorTest, AnOlderDeploysRestartsExitDoesNotEndALaterWorkersCrashLoop) {
  deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  processes_.exit(old0, 1, 0);
  ASSERT_TRUE(clock_.fire_next());  // the restart of old worker 0 starts
  pid_t restart = last_pid();
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  FakePeer& restart_peer = hello(restart);
  bring_up(new0, ":3");
  send(restart_peer, protocol::make("readyFor", ":3"));  // superseded by new worker 0
  EXPECT_EQ(state_of(restart), "failed");
  bring_up(new1, ":3");
  processes_.exit(old1, 0, 0);
  ASSERT_EQ(outcome(roll), "deployed");
  processes_.exit(new0, 1, 0);  // crashes while up: the loop stands for the roll's release now
  processes_.exit(restart, 0, SIGTERM);
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u) << "the older restart's exit ended the loop";
  EXPECT_TRUE(loops[0].next_restart_ms.has_value());
}

// Found by the simulator (seed 8954 of the worker mix): a plain server of a later deploy that
// comes up on a roll's resource stands for every worker index there: the roll is superseded.
// It used to wait for ever when its other worker's crash restart was dropped (a later deploy
// serves there) and the up worker it replaced had reported to its own record already.
TEST_F(SupervisorTest, ALaterPlainServerUpOnARollsResourceSupersedesTheRoll) {
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(new0, ":3");
  processes_.exit(new0, 1, 0);  // crashes while up: its restart is pending
  ASSERT_EQ(supervisor_->crash_loops().size(), 1u);
  FakePeer& new1_peer = bring_up(new1, ":3");
  size_t plain = deploy({"srv", "X"});
  bring_up(last_pid(), ":3");
  EXPECT_TRUE(got(new1_peer, "takeDown"));
  EXPECT_EQ(outcome(roll), "failed: superseded by generation 3") << "the roll waited for ever";
  processes_.exit(new1, 0, 0);
  EXPECT_EQ(outcome(plain), "deployed");
  while (clock_.fire_next()) {
  }
  EXPECT_EQ(processes_.alive(), 1u) << "the dropped restart of worker 0 came back";
  EXPECT_EQ(supervisor_->deploys_in_flight(), 0u);
}

// Found by the simulator (seed 812 of the worker mix): a failed roll's new worker that came
// up, replaced nothing and crashed goes as an up one would while the old version serves: its
// crash loop ends (its restart came up beside the old version: two releases once quiet).
TEST_F(SupervisorTest, AFailedRollsWorkerThatCrashedIsNotRestartedBesideTheOldVersion) {
  size_t first = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old1, ":3");
  processes_.exit(old0, 1, 0);  // a first roll fails: its worker 1 keeps serving
  ASSERT_NE(outcome(first).find("keep serving"), std::string::npos) << outcome(first);
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(new0, ":3");
  processes_.exit(new0, 1, 0);  // crashes while up: its restart is pending
  ASSERT_EQ(supervisor_->crash_loops().size(), 1u);
  processes_.exit(new1, 1, 0);  // the roll fails; the old version serves index 1
  EXPECT_NE(outcome(roll).find("the old version keeps serving"), std::string::npos)
      << outcome(roll);
  EXPECT_TRUE(supervisor_->crash_loops().empty()) << "v2 would come back beside v1";
  EXPECT_EQ(state_of(old1), "up");
}

static SpawnSpec all_at_once(std::vector<std::string> argv, int workers) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.workers = workers;
  spec.batch = workers;
  spec.max_surge = workers;
  return spec;
}

// A daemon death ends a roll in flight: the next daemon knows no roll of the workers it takes
// back. Found by the simulator (seed 4 of the full mix): worker 0 of a first deploy of 3 was
// still starting when the daemon died, did not resume within --adopt-timeout and failed; the
// others came up, and nothing ever started index 0 again (2 of 3 workers for good). Its index
// is started again with the same command, as a crash restart would be.
TEST_F(SupervisorTest, ATakenBackWorkerThatFailsBeforeItIsUpHasItsIndexStartedAgain) {
  deploy_spec(all_at_once({"wrk", "v1"}, 3));
  pid_t w0 = last_pid() - 2, w1 = last_pid() - 1, w2 = last_pid();
  bring_up(w1, ":3");
  bring_up(w2, ":3");
  restart_daemon();  // worker 0 has not said hello yet: its roll dies with the daemon
  supervisor_->give_up_adoption();
  ASSERT_EQ(state_of(w0), "failed");
  processes_.exit(w0, 0, 15);
  ASSERT_TRUE(clock_.fire_next());  // --restart-delay
  pid_t again = last_pid();
  ASSERT_NE(again, w2) << "index 0 was never started again";
  const auto& env = processes_.find(again)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=0"), env.end());
  EXPECT_EQ(processes_.find(again)->spec.argv, (std::vector<std::string>{"wrk", "v1"}));
  EXPECT_EQ(processes_.alive(), 3u);
}

// Crash loops are not in state.json: a worker whose crash restart was pending when the daemon
// died is missing from it. Found by the simulator (seed 92 of the full mix): the next daemon
// started no one at that index. Once adoption is over, each index of a worker app of one
// command line that no worker covers is started again.
TEST_F(SupervisorTest, AWorkerWhoseRestartWasPendingWhenTheDaemonDiedIsStartedAgainAfterAdoption) {
  size_t roll = deploy_spec(all_at_once({"wrk", "v1"}, 3));
  pid_t w0 = last_pid() - 2, w1 = last_pid() - 1, w2 = last_pid();
  bring_up(w0, ":3");
  bring_up(w1, ":3");
  bring_up(w2, ":3");
  ASSERT_EQ(outcome(roll), "deployed");
  processes_.exit(w1, 1, 0);  // crashes while up: its restart is pending
  ASSERT_EQ(processes_.alive(), 2u);
  restart_daemon();
  supervisor_->give_up_adoption();
  ASSERT_EQ(processes_.alive(), 3u) << "index 1 was never started again";
  pid_t again = last_pid();
  const auto& env = processes_.find(again)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=1"), env.end());
  EXPECT_EQ(processes_.find(again)->spec.argv, (std::vector<std::string>{"wrk", "v1"}));
}

// Found by the simulator (seed 1382 of the worker mix): a worker of a deploy of N workers
// stands for the indices N and beyond too (their old copies go once it is all up), so an
// older worker of such an index, still starting, loses to it as to a newer worker of its own
// index. The crash restart of an old worker 2 used to come up after a roll of 2 workers had
// deployed: 3 workers of two releases once quiet.
TEST_F(SupervisorTest, AWorkerOfANewerDeployOfFewerWorkersSupersedesAnOldWorkerBeyondItsCount) {
  deploy_spec(all_at_once({"wrk", "v1"}, 3));
  pid_t old0 = last_pid() - 2, old1 = last_pid() - 1, old2 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  bring_up(old2, ":3");
  processes_.exit(old2, 1, 0);      // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_NE(restart, old2);
  FakePeer& restart_peer = hello(restart);
  send(restart_peer, protocol::make("readyFor", ":3"));
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid();
  ASSERT_GT(new0, restart);
  bring_up(new0, ":3");
  EXPECT_EQ(state_of(restart), "failed") << "an old worker 2 would come up beside 2 new workers";
  processes_.exit(restart, 0, 0);
  bring_up(last_pid(), ":3");
  processes_.exit(old0, 0, 0);
  processes_.exit(old1, 0, 0);
  EXPECT_EQ(outcome(roll), "deployed");
  EXPECT_EQ(processes_.alive(), 2u);
}

// Found by the simulator (seed 5034 of the worker mix): once a roll of N workers is deployed,
// the crash loop of an old worker of an index N or beyond ends (its old copy would have gone
// too). It went on, and a later roll that failed took it for the old version of that index
// and started it again beside the N workers of the deployed release.
TEST_F(SupervisorTest, ADeployedRollEndsTheCrashLoopsOfOldWorkersBeyondItsCount) {
  deploy_spec(all_at_once({"wrk", "v1"}, 3));
  pid_t old0 = last_pid() - 2, old1 = last_pid() - 1, old2 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  bring_up(old2, ":3");
  processes_.exit(old2, 1, 0);  // crashes while up: its restart is pending
  ASSERT_EQ(supervisor_->crash_loops().size(), 1u);
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  bring_up(new0, ":3");
  bring_up(new1, ":3");
  processes_.exit(old0, 0, 0);
  processes_.exit(old1, 0, 0);
  ASSERT_EQ(outcome(roll), "deployed");
  EXPECT_TRUE(supervisor_->crash_loops().empty()) << "old worker 2 would be started again";
}

// Found by the simulator (seed 7220 of the worker mix): a crash restart superseded by a newer
// plain server that is still starting does not end its crash loop, as that server may yet
// fail; the loop goes on (a later restart is dropped once a later deploy is up there). It
// used to end, and when the newer server failed, the index was left empty.
TEST_F(SupervisorTest, ARestartSupersededByANewerServerStillStartingContinuesItsCrashLoop) {
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t w0 = last_pid() - 1, w1 = last_pid();
  bring_up(w0, ":3");
  bring_up(w1, ":3");
  ASSERT_EQ(outcome(roll), "deployed");
  processes_.exit(w0, 1, 0);        // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_NE(restart, w1);
  size_t plain = deploy({"srv", "X"});
  pid_t newer = last_pid();
  FakePeer& newer_peer = hello(newer);
  send(newer_peer, protocol::make("readyFor", ":3"));
  FakePeer& restart_peer = hello(restart);
  send(restart_peer, protocol::make("readyFor", ":3"));  // superseded by the newer server
  EXPECT_EQ(state_of(restart), "failed");
  processes_.exit(restart, 0, 0);
  ASSERT_EQ(supervisor_->crash_loops().size(), 1u) << "index 0 would be left empty";
  processes_.exit(newer, 1, 0);  // the newer server fails
  EXPECT_EQ(outcome(plain).rfind("failed: exited with status 1", 0), 0u) << outcome(plain);
  ASSERT_TRUE(clock_.fire_next());  // the next restart of worker 0
  pid_t again = last_pid();
  ASSERT_GT(again, newer);
  const auto& env = processes_.find(again)->spec.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SERVERSWAP_WORKER=0"), env.end());
  bring_up(again, ":3");
  EXPECT_EQ(state_of(again), "up");
  EXPECT_EQ(state_of(w1), "up");
}

// Found by the simulator (seed 4818 of the worker mix): a crash restart that has failed and not
// exited yet stands for its index no more. Here it is the restart of a superseded roll's worker
// that replaced nothing (stopped, its loop ended); a later roll took it for the old version of
// that index and, when it failed, started that release again beside the old one.
TEST_F(SupervisorTest, ARestartThatFailedIsNotTheOldVersionOfALaterRoll) {
  deploy_spec(all_at_once({"wrk", "v1"}, 1));
  pid_t old0 = last_pid();
  bring_up(old0, ":3");
  deploy_spec(both_at_once({"alt", "v2"}));  // three apps, as three commands were
  pid_t b0 = last_pid() - 1, b1 = last_pid();
  FakePeer& b0_peer = hello(b0);
  send(b0_peer, protocol::make("readyFor", ":3"));
  bring_up(b1, ":3");               // index 1: it replaces nothing
  processes_.exit(b1, 1, 0);        // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_GT(restart, b1);
  FakePeer& restart_peer = hello(restart);
  send(restart_peer, protocol::make("readyFor", ":3"));
  deploy({"srv", "X"});
  FakePeer& newer_peer = hello(last_pid());
  send(newer_peer, protocol::make("readyFor", ":3"));  // supersedes the v2 roll
  ASSERT_EQ(state_of(restart), "failed");
  size_t roll = deploy_spec(both_at_once({"prog", "v3"}));
  pid_t c0 = last_pid() - 1, c1 = last_pid();
  FakePeer& c1_peer = hello(c1);
  send(c1_peer, protocol::make("readyFor", ":3"));  // the roll learns its resource
  processes_.exit(c0, 1, 0);                        // the v3 roll fails
  EXPECT_NE(outcome(roll).find("the old version keeps serving"), std::string::npos)
      << outcome(roll);
  EXPECT_EQ(outcome(roll).find("started again"), std::string::npos)
      << "v2 would come back beside v1: " << outcome(roll);
  EXPECT_EQ(state_of(old0), "up");
}

// Found by the simulator (seed 3047 of the worker mix): a roll superseded because the old
// version a failed roll started again replaced its worker counts that server as an old copy
// serving: its worker that came up, replaced nothing and crashed is not restarted. Its
// restart came up beside the old version (two releases once quiet).
TEST_F(SupervisorTest,
       ARollSupersededByARestoredOldVersionDropsItsCrashedWorkerThatReplacedNothing) {
  deploy_spec(all_at_once({"wrk", "W"}, 1));
  pid_t a0 = last_pid();
  bring_up(a0, ":3");
  SpawnSpec one_by_one;
  one_by_one.argv = {"alt", "v0"};  // another app, as another command was
  one_by_one.workers = 2;
  one_by_one.batch = 1;
  one_by_one.max_surge = 1;
  size_t rolling = deploy_spec(one_by_one);
  pid_t b0 = last_pid();
  size_t failing = deploy_spec(all_at_once({"wrk", "W"}, 1));  // a0 is its old version
  pid_t c0 = last_pid();
  FakePeer& b0_peer = bring_up(b0, ":3");  // replaces a0 (which drains on)
  pid_t b1 = last_pid();
  ASSERT_GT(b1, c0);
  bring_up(b1, ":3");         // index 1: it replaces nothing
  processes_.exit(b1, 1, 0);  // crashes while up: its restart is pending
  processes_.exit(c0, 1, 0);  // the W roll fails: its old version is started again
  EXPECT_NE(outcome(failing).find("started again as worker 0"), std::string::npos)
      << outcome(failing);
  pid_t again = last_pid();
  ASSERT_GT(again, c0);
  bring_up(again, ":3");  // replaces b0: the v0 roll is superseded
  EXPECT_TRUE(got(b0_peer, "takeDown"));
  EXPECT_EQ(outcome(rolling).rfind("failed: superseded", 0), 0u) << outcome(rolling);
  for (const auto& loop : supervisor_->crash_loops())
    EXPECT_NE(loop.worker, 1) << "v0 would come back at index 1 beside W";
}

// Found by the simulator (seed 2572 of the worker mix): a roll that supersedes a roll of another
// command on their shared resource takes over the loser's old version of each index, as a roll
// of the same command does: the loser's worker that replaced an old one is not the old version
// of that index (the winner failed and kept it beside the old release: two releases once quiet).
TEST_F(SupervisorTest, ARollThatSupersedesAnotherOnItsResourceGivesBackWhatTheOtherReplaced) {
  deploy_spec(both_at_once({"wrk", "W"}));
  pid_t old0 = last_pid() - 1, old1 = last_pid();
  bring_up(old0, ":3");
  bring_up(old1, ":3");
  SpawnSpec one_by_one;
  one_by_one.argv = {"wrk", "v1"};
  one_by_one.workers = 2;
  one_by_one.batch = 1;
  one_by_one.max_surge = 1;
  size_t superseded = deploy_spec(one_by_one);
  pid_t b0 = last_pid();
  FakePeer& b0_peer = bring_up(b0, ":3");  // replaces old worker 0
  processes_.exit(old0, 0, 0);
  size_t roll = deploy_spec(both_at_once({"wrk", "W"}));
  pid_t c0 = last_pid() - 1, c1 = last_pid();
  ASSERT_GT(c0, b0);
  FakePeer& c0_peer = hello(c0);
  send(c0_peer, protocol::make("readyFor", ":3"));  // the v1 roll is superseded on :3
  EXPECT_EQ(outcome(superseded).rfind("failed: superseded", 0), 0u) << outcome(superseded);
  processes_.exit(c1, 1, 0);  // the W roll fails
  EXPECT_NE(outcome(roll).find("started again as worker 0"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_GT(again, c1) << "the old version of index 0 was not started again";
  const auto& spec = processes_.find(again)->spec;
  EXPECT_EQ(spec.argv.back(), "W");
  EXPECT_NE(std::find(spec.env.begin(), spec.env.end(), "SERVERSWAP_WORKER=0"), spec.env.end());
  bring_up(again, ":3");
  EXPECT_TRUE(got(b0_peer, "takeDown")) << "the superseded roll's worker goes";
  EXPECT_EQ(state_of(old1), "up");
}

// Found by the simulator (seed 683 of the worker mix): a roll that was superseded before it could
// report (here: the server it replaced had not exited yet) but whose workers still serve is the
// release to go back to. A roll that supersedes one which replaced such a worker takes over that
// old version (it used to refuse: "an undeployed roll's worker"), so when it fails the index
// gets that release back rather than keeping the loser's worker beside it (two releases).
TEST_F(SupervisorTest, AnUndeployedReleaseThatStillServesIsTheOldVersionAWinnerTakesOver) {
  auto plain = deploy_up({"srv", "P"}, ":3");
  deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t a0 = last_pid() - 1, a1 = last_pid();
  bring_up(a0, ":3");
  bring_up(a1, ":3");  // the plain server drains on: the v2 roll has not reported
  EXPECT_TRUE(got(plain.peer, "takeDown"));
  SpawnSpec one_by_one;
  one_by_one.argv = {"wrk", "v0"};
  one_by_one.workers = 2;
  one_by_one.batch = 1;
  one_by_one.max_surge = 1;
  deploy_spec(one_by_one);
  pid_t b0 = last_pid();
  FakePeer& b0_peer = bring_up(b0, ":3");  // supersedes the v2 roll on :3, replaces a0
  processes_.exit(a0, 0, 0);
  size_t roll = deploy_spec(one_by_one);  // supersedes the v0 roll
  pid_t c0 = last_pid();
  ASSERT_GT(c0, b0);
  processes_.exit(c0, 1, 0);  // and fails
  EXPECT_NE(outcome(roll).find("started again as worker 0"), std::string::npos) << outcome(roll);
  pid_t again = last_pid();
  ASSERT_GT(again, c0) << "the old version of index 0 was not started again";
  EXPECT_EQ(processes_.find(again)->spec.argv.back(), "v2");
  bring_up(again, ":3");
  EXPECT_TRUE(got(b0_peer, "takeDown")) << "v0 would serve beside v2";
  EXPECT_EQ(state_of(a1), "up");
}

// Found by the simulator (seed 1414 of the worker mix): a failed roll that keeps its new workers
// (no old copy serves) ends the old crash loops on its resources and stops their restarts, also
// a restart of another command that has not asked for the roll's resources yet (it was no old
// copy, went on, and came up beside the new workers: two releases once quiet).
TEST_F(SupervisorTest, AFailedRollThatKeepsItsWorkersStopsAnOldRestartThatHoldsNothingYet) {
  deploy_spec(all_at_once({"wrk", "v0"}, 1));
  pid_t old0 = last_pid();
  bring_up(old0, ":3");
  processes_.exit(old0, 1, 0);  // crashes while up: its restart is pending
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  ASSERT_TRUE(clock_.fire_next());  // the old worker's restart starts
  pid_t restart = last_pid();
  ASSERT_GT(restart, new1);
  hello(restart);
  bring_up(new0, ":3");
  processes_.exit(new1, 1, 0);  // the roll fails; nothing old serves
  EXPECT_NE(outcome(roll).find("keep serving"), std::string::npos) << outcome(roll);
  EXPECT_EQ(state_of(restart), "failed") << "v0 would come up beside v2";
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  EXPECT_EQ(state_of(new0), "up");
}

// Found by the simulator (seed 5286 of the worker mix): a superseded roll's worker that came
// up, replaced nothing and crashed goes as an up one does while an old copy serves: its
// restart stops and its crash loop ends. It used to come back (its loop going on) beside the
// old release once the deploy that superseded the roll failed: two releases once quiet.
TEST_F(SupervisorTest, ASupersededRollsWorkerThatCrashedIsNotRestartedBesideTheOldVersion) {
  deploy_spec(all_at_once({"wrk", "v1"}, 1));
  pid_t old0 = last_pid();
  bring_up(old0, ":3");
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t new0 = last_pid() - 1, new1 = last_pid();
  FakePeer& new0_peer = hello(new0);
  send(new0_peer, protocol::make("readyFor", ":3"));
  bring_up(new1, ":3");             // index 1: it replaces nothing
  processes_.exit(new1, 1, 0);      // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t restart = last_pid();
  ASSERT_GT(restart, new1);
  size_t plain = deploy({"srv", "X"});
  pid_t newer = last_pid();
  FakePeer& newer_peer = hello(newer);
  send(newer_peer, protocol::make("readyFor", ":3"));  // supersedes the roll
  EXPECT_EQ(outcome(roll).rfind("failed: superseded", 0), 0u) << outcome(roll);
  EXPECT_EQ(state_of(restart), "failed") << "v2 would come back beside v1";
  EXPECT_TRUE(supervisor_->crash_loops().empty()) << "v2 would come back beside v1";
  processes_.exit(newer, 1, 0);  // the newer server fails
  EXPECT_EQ(outcome(plain).rfind("failed", 0), 0u) << outcome(plain);
  processes_.exit(restart, 0, 0);
  processes_.exit(new0, 0, 0);
  while (clock_.fire_next()) {
  }
  EXPECT_EQ(processes_.alive(), 1u);
  EXPECT_EQ(state_of(old0), "up");
}

// Found by the simulator (seed 9114 of the worker mix): an old worker's crash restart started
// before a newer roll's worker of the same command and index came up and crashed (its loop taken
// over by the newer deploy) does not stand for that loop when it comes up: the newer deploy's
// restart is still owed. It used to cancel that restart and end the loop, and the roll waited
// for its crashed worker for ever (no outcome, I4).
TEST_F(SupervisorTest, AnOlderRestartThatComesUpDoesNotCancelTheRestartOfANewerRollsWorker) {
  deploy_spec(both_at_once({"wrk", "v0"}));
  pid_t a0 = last_pid() - 1, a1 = last_pid();
  bring_up(a0, ":3");
  bring_up(a1, ":3");
  processes_.exit(a1, 1, 0);        // crashes while up
  ASSERT_TRUE(clock_.fire_next());  // its restart starts
  pid_t old_restart = last_pid();
  ASSERT_GT(old_restart, a1);
  FakePeer& old_peer = hello(old_restart);
  size_t roll = deploy_spec(both_at_once({"wrk", "v0"}));
  pid_t b0 = last_pid() - 1, b1 = last_pid();
  bring_up(b0, ":3");
  bring_up(b1, ":3");         // the batch is up: a0 goes
  processes_.exit(b1, 1, 0);  // crashes while up: the loop of index 1 is the roll's now
  send(old_peer, protocol::make("onTakedown", ":3"));
  send(old_peer, protocol::make("readyFor", ":3"));
  send(old_peer, protocol::make("serverUp", true));  // the older restart comes up
  processes_.exit(a0, 0, 0);
  EXPECT_EQ(outcomes_[roll].size(), 0u);
  ASSERT_TRUE(clock_.fire_next()) << "the restart of the roll's worker 1 was cancelled";
  pid_t restart = last_pid();
  ASSERT_GT(restart, old_restart) << "the roll's worker 1 was not restarted";
  bring_up(restart, ":3");
  EXPECT_TRUE(got(old_peer, "takeDown"));
  processes_.exit(old_restart, 0, 0);
  EXPECT_EQ(outcome(roll), "deployed");
}

// Found by the simulator (seed 5364 of the worker mix): a plain server of an older deploy than a
// roll, which replaced the old workers during the roll and then crashed (its crash loop going
// on), stands for every index when the roll fails, as it would while up: nothing is started
// again. The failed roll used to start the old workers again, and one of them superseded the
// plain server's restart (one worker of two once quiet).
TEST_F(SupervisorTest, AFailedRollLeavesTheCrashLoopOfAPlainServerThatReplacedTheOldWorkers) {
  deploy_spec(both_at_once({"wrk", "v0"}));
  pid_t a0 = last_pid() - 1, a1 = last_pid();
  bring_up(a0, ":3");
  bring_up(a1, ":3");
  deploy({"srv", "X"});
  pid_t plain = last_pid();
  FakePeer& plain_peer = hello(plain);
  send(plain_peer, protocol::make("onTakedown", ":3"));
  send(plain_peer, protocol::make("readyFor", ":3"));
  size_t roll = deploy_spec(both_at_once({"wrk", "v1"}));
  pid_t b0 = last_pid() - 1, b1 = last_pid();
  send(plain_peer, protocol::make("serverUp", true));  // replaces the old workers
  processes_.exit(a0, 0, 0);
  processes_.exit(a1, 0, 0);
  processes_.exit(plain, 1, 0);  // crashes while up: its restart is pending
  FakePeer& b0_peer = hello(b0);
  send(b0_peer, protocol::make("readyFor", ":3"));  // the roll learns its resource
  processes_.exit(b0, 1, 0);                        // the roll fails
  EXPECT_EQ(outcome(roll).rfind("failed: the rollout stopped", 0), 0u) << outcome(roll);
  EXPECT_EQ(last_pid(), b1) << "the old workers were started again";
  processes_.exit(b1, 0, 0);
  ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "X"}));
}

// Found by the simulator (seed 9107 of the worker mix): a plain server that replaced the old
// workers during a roll, and that the roll then replaced, stands for every index when the roll
// fails: only it is started again, not also the old worker it had replaced at another index
// (which it took down once up: one worker of two once quiet).
TEST_F(SupervisorTest, AFailedRollGivesBackOnlyThePlainServerThatReplacedTheOldWorkers) {
  deploy_spec(both_at_once({"wrk", "v0"}));
  pid_t a0 = last_pid() - 1, a1 = last_pid();
  bring_up(a0, ":3");
  bring_up(a1, ":3");
  deploy({"srv", "X"});
  pid_t plain = last_pid();
  FakePeer& plain_peer = hello(plain);
  send(plain_peer, protocol::make("onTakedown", ":3"));
  send(plain_peer, protocol::make("readyFor", ":3"));
  SpawnSpec one_by_one;
  one_by_one.argv = {"wrk", "v1"};
  one_by_one.workers = 2;
  one_by_one.batch = 1;
  one_by_one.max_surge = 1;
  size_t roll = deploy_spec(one_by_one);  // meets the v0 workers as the old versions
  pid_t b0 = last_pid();
  send(plain_peer, protocol::make("serverUp", true));  // replaces the v0 workers
  processes_.exit(a0, 0, 0);
  processes_.exit(a1, 0, 0);
  bring_up(b0, ":3");  // replaces the plain server
  EXPECT_TRUE(got(plain_peer, "takeDown"));
  processes_.exit(plain, 0, 0);
  pid_t b1 = last_pid();
  ASSERT_GT(b1, b0) << "worker 1 did not start";
  processes_.exit(b0, 1, 0);  // crashes while up: nothing of the roll is up
  processes_.exit(b1, 1, 0);  // the roll fails
  EXPECT_EQ(outcome(roll).rfind("failed: the rollout stopped", 0), 0u) << outcome(roll);
  ASSERT_EQ(last_pid(), b1 + 1) << "the plain server was not started again, or more was";
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "X"}));
}

// Adoptions, at the hook resumed(): an unmanaged server that resumes late is taken back all
// the same, and the state file records it as it is now.
TEST_F(SupervisorTest, AnUnmanagedServerThatResumesLateIsUpAgain) {
  pid_t pid = deploy_up({"srv", "v1"}, ":8080").pid;
  restart_daemon();
  supervisor_->give_up_adoption();
  ASSERT_EQ(state_of(pid), "unmanaged");
  uint64_t id = next_peer_++;
  auto& peer = peers_[id] = std::make_unique<FakePeer>(id, pid);
  send(*peer,
       protocol::make("hello", {{"protocol", 1},
                                {"id", id_of(pid)},
                                {"upMessage", true},
                                {"resume", {{"holding", Json::array()}, {"up", true}}}}),
       true);
  ASSERT_TRUE(got(*peer, "welcome"));
  EXPECT_EQ(peer->sent.back()["welcome"]["resumed"], true);
  EXPECT_EQ(state_of(pid), "up");
  EXPECT_EQ(supervisor_->record().servers[0].state, "up");
  EXPECT_FALSE(supervisor_->adopting());
}

// Adoptions: a server of another user that resumes vouches only for what state.json
// recorded it holding. One claiming another server's resource, with a socket bound to its
// address (in a network namespace of its own, the re-attack's F1), gets nothing of it: the
// resource stays the other server's, which stays up, and its socket is not the daemon's.
TEST_F(SupervisorTest, AResumeOfAnotherUsersServerGetsOnlyWhatItWasRecordedHolding) {
  pid_t root_server = deploy_up({"srv", "root"}, ":8080").pid;
  pid_t theirs = deploy_up({"alt", "nobody"}, ":9090").pid;
  restart_daemon();
  auto resume = [&](pid_t pid, uid_t uid, const std::vector<std::string>& holding) {
    uint64_t id = next_peer_++;
    auto& peer = peers_[id] = std::make_unique<FakePeer>(id, pid);
    peer->uid = uid;
    for (const auto& r : holding) peer->fds.push_back(processes_.make_socket(r));
    send(*peer,
         protocol::make("hello", {{"protocol", 1},
                                  {"id", id_of(pid)},
                                  {"upMessage", true},
                                  {"resume", {{"holding", holding}, {"up", true}}}}),
         true);
    return peer.get();
  };
  FakePeer* peer = resume(theirs, 65534, {":8080", ":9090"});
  ASSERT_TRUE(got(*peer, "welcome"));
  resume(root_server, ::getuid(), {":8080"});
  EXPECT_EQ(state_of(root_server), "up");
  EXPECT_EQ(state_of(theirs), "up");
  for (const auto& s : supervisor_->server_status()) {
    std::vector<std::string> names;
    for (const auto& r : s.resources) names.push_back(r.name);
    if (s.pid == theirs) {
      EXPECT_EQ(names, std::vector<std::string>{":9090"});
    }
    if (s.pid == root_server) {
      EXPECT_EQ(names, std::vector<std::string>{":8080"});
      for (const auto& r : s.resources) EXPECT_FALSE(r.taken_down) << r.name;
    }
  }
}

// A fresh TMPDIR for the test's duration: the NOTIFY_SOCKET paths of --user servers are
// made there (daemon/sockets/user_directory.h).
using serverswap::testing::ScopedTmpdir;

// The error texts `peer` was sent.
std::vector<std::string> errors_sent(const FakePeer& peer) {
  std::vector<std::string> errors;
  for (const auto& m : peer.sent)
    if (m.begin().key() == "error") errors.push_back(m["error"].get<std::string>());
  return errors;
}

// Two servers run as two other users (--user) whose readyFor for one Unix socket are both
// under way: the socket is bound for the first, and the second, checked again when its
// answer comes, is refused, not handed the other user's socket.
TEST_F(SupervisorTest, ASocketBoundForAnotherUserMeanwhileIsNotHandedToAUserServer) {
  if (::getpwnam("nobody") == nullptr || ::getpwnam("daemon") == nullptr)
    GTEST_SKIP() << "needs the users nobody and daemon";
  if (::getuid() == ::getpwnam("nobody")->pw_uid || ::getuid() == ::getpwnam("daemon")->pw_uid)
    GTEST_SKIP() << "runs as one of the two users";
  ScopedTmpdir tmp;
  listeners_.defer_async = true;
  const std::string resource = "unix:/srv/theirs.sock";
  deploy({"srv", "a"}, "nobody");
  FakePeer& first = hello(last_pid());
  send(first, protocol::make("readyFor", resource));
  deploy({"alt", "b"}, "daemon");
  FakePeer& second = hello(last_pid());
  send(second, protocol::make("readyFor", resource));
  ASSERT_EQ(listeners_.deferred(), 2u);
  while (listeners_.answer_deferred()) {
  }
  EXPECT_TRUE(got(first, "resourceReady"));
  EXPECT_FALSE(got(second, "resourceReady")) << "handed a socket bound for nobody";
  auto errors = errors_sent(second);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("the daemon holds it for another user"), std::string::npos) << errors[0];
}

// readyFor still unanswered count against the 64 resources a server may hold: a burst of
// them cannot have the daemon bind more than that.
TEST_F(SupervisorTest, UnansweredReadyForCountAgainstTheCapOfResourcesPerServer) {
  if (::getpwnam("nobody") == nullptr || ::getuid() == ::getpwnam("nobody")->pw_uid)
    GTEST_SKIP() << "needs a user nobody that is not the test's";
  ScopedTmpdir tmp;
  listeners_.defer_async = true;
  deploy({"srv"}, "nobody");
  FakePeer& peer = hello(last_pid());
  for (int i = 0; i <= 64; ++i)
    send(peer, protocol::make("readyFor", "unix:/srv/s" + std::to_string(i) + ".sock"));
  EXPECT_EQ(listeners_.deferred(), 64u) << "the 65th was asked for too";
  auto errors = errors_sent(peer);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("a server may hold at most 64 resources"), std::string::npos)
      << errors[0];
}

// A staggered server (it says `serving` on each resource as it takes it over) that the
// daemon would fail after it took a resource over is kept up there: its older holder was
// taken down on it, and killing it would leave the resource unserved (simulator, I1).
TEST_F(SupervisorTest, AServerThatTookAResourceOverWithServingIsKeptThereAtTheReadyTimeout) {
  deploy({"srv", "v1"});
  pid_t old_pid = last_pid();
  FakePeer& old_peer = hello(old_pid);
  for (const char* r : {":1", ":2"}) {
    send(old_peer, protocol::make("onTakedown", r));
    send(old_peer, protocol::make("readyFor", r));
  }
  send(old_peer, protocol::make("serverUp", true));
  size_t d = deploy({"srv", "v2"});
  pid_t new_pid = last_pid();
  FakePeer& new_peer = hello(new_pid);
  send(new_peer, protocol::make("onTakedown", ":1"));
  send(new_peer, protocol::make("readyFor", ":1"));
  send(new_peer, protocol::make("serving", ":1"));
  EXPECT_TRUE(got(old_peer, "takeDown"));
  ASSERT_TRUE(clock_.fire_next());  // --ready-timeout of the new server
  EXPECT_EQ(outcome(d).rfind("failed: not up within --ready-timeout 5s", 0), 0u) << outcome(d);
  EXPECT_NE(outcome(d).find("it keeps serving what it took over"), std::string::npos);
  EXPECT_TRUE(processes_.find(new_pid)->signals.empty());
  EXPECT_EQ(state_of(new_pid), "up");
  EXPECT_EQ(state_of(old_pid), "up");  // still serving :2
  // It gets nothing more: its deploy failed.
  send(new_peer, protocol::make("readyFor", ":2"));
  EXPECT_TRUE(got(new_peer, "error"));
}

TEST_F(SupervisorTest, AServerThatTookAResourceOverWithServingIsKeptThereWhenSuperseded) {
  pid_t old_pid = deploy_up({"srv", "v1"}, ":1").pid;
  size_t d = deploy({"srv", "v2"});
  pid_t kept_pid = last_pid();
  FakePeer& kept = hello(kept_pid);
  send(kept, protocol::make("onTakedown", ":1"));
  send(kept, protocol::make("readyFor", ":1"));
  send(kept, protocol::make("serving", ":1"));
  size_t newest = deploy({"srv", "v2"});  // the same command: supersedes the one not up yet
  EXPECT_EQ(outcome(d).rfind("failed: superseded by generation 3", 0), 0u) << outcome(d);
  EXPECT_TRUE(processes_.find(kept_pid)->signals.empty());
  EXPECT_EQ(state_of(kept_pid), "up");
  EXPECT_FALSE(got(kept, "takeDown"));
  bring_up(last_pid(), ":1");  // a newer server up there replaces it as any up server
  EXPECT_TRUE(got(kept, "takeDown"));
  processes_.exit(old_pid, 0, 0);
  processes_.exit(kept_pid, 0, 0);
  EXPECT_EQ(outcome(newest), "deployed");
}

// A server taken back before it had said hello says it to the new daemon: it is managed
// again (it was made unmanaged at --adopt-timeout while connected; found by the simulator).
TEST_F(SupervisorTest, AServerTakenBackBeforeItsHelloThatSaysHelloToTheNewDaemonIsManaged) {
  deploy({"srv", "v1"});
  pid_t pid = last_pid();
  restart_daemon();
  EXPECT_TRUE(supervisor_->adopting());
  hello(pid);
  EXPECT_FALSE(supervisor_->adopting());
  EXPECT_EQ(state_of(pid), "connected");
}

// ---- The confirmation window (--confirm) ---------------------------------------------------

// A new server that exits inside its --confirm window fails its deploy with a message that
// says how long after it was up, and what serves; the old version was never signalled or sent
// takeDown, and still serves.
TEST_F(SupervisorTest, AServerThatExitsInsideItsConfirmWindowFailsItsDeployAndTouchesNothing) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  ASSERT_EQ(state_of(old.pid), "up");
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.confirm = Millis(2000);
  size_t d = deploy_spec(spec);
  pid_t fresh = last_pid();
  bring_up(fresh, ":8080");
  EXPECT_EQ(state_of(fresh), "confirming");
  EXPECT_TRUE(outcomes_[d].empty());
  // 1.2 s later (another server's timer moves the fake clock), it exits with status 3.
  SpawnSpec timer;
  timer.argv = {"other"};
  timer.ready_after = Millis(1200);
  timer.listen = {{"", ":9090"}};
  deploy_spec(timer);
  ASSERT_EQ(clock_.next_in(), Millis(1200));
  ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(state_of(fresh), "confirming");
  processes_.exit(fresh, 3, 0);
  EXPECT_EQ(outcome(d),
            "failed: generation 2 exited with status 3 1.2s after it was up, inside its --confirm "
            "2s window; generation 1 was never touched and keeps serving");
  EXPECT_EQ(outcomes_[d][0]["deployFailed"].value("othersServing", false), true);
  EXPECT_FALSE(got(old.peer, "takeDown"));
  EXPECT_TRUE(processes_.find(old.pid)->signals.empty());
  EXPECT_EQ(state_of(old.pid), "up");
  // Nothing left to fire takes it down either.
  while (clock_.fire_next()) {
  }
  EXPECT_FALSE(got(old.peer, "takeDown"));
  EXPECT_TRUE(processes_.find(old.pid)->signals.empty());
}

// One that stays alive through its window replaces the old version then, and not before: the
// takeDown goes out exactly when the fake clock reaches the end of the window, and the deploy
// is deployed once the old one has exited.
TEST_F(SupervisorTest, AServerThatSurvivesItsConfirmWindowReplacesTheOldOneOnlyAfterIt) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.confirm = Millis(2000);
  size_t d = deploy_spec(spec);
  pid_t fresh = last_pid();
  bring_up(fresh, ":8080");
  ASSERT_EQ(state_of(fresh), "confirming");
  auto window_start = clock_.now();
  while (state_of(fresh) == "confirming") {
    EXPECT_FALSE(got(old.peer, "takeDown"));
    ASSERT_TRUE(clock_.fire_next());
  }
  EXPECT_EQ(state_of(fresh), "up");
  EXPECT_EQ(clock_.now() - window_start, Millis(2000));
  EXPECT_TRUE(got(old.peer, "takeDown"));
  EXPECT_TRUE(outcomes_[d].empty());  // the old one has not exited yet
  processes_.exit(old.pid, 0, 0);
  EXPECT_EQ(outcome(d), "deployed");
}

// READY=1 is a weak promise (a pre-forking master sends it before its workers import the
// app): without --confirm, a program that says it gets a 5 s window; a client library's
// serverUp gets none (the tests above: --confirm 0 would be the same as not giving it).
TEST_F(SupervisorTest, ReadyOnNotifySocketGetsADefaultWindowAndServerUpNone) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  SpawnSpec spec;
  spec.argv = {"prog"};
  spec.listen = {{"", ":8080"}};
  deploy_spec(spec);
  pid_t fresh = last_pid();
  std::string notify = notify_socket_of(fresh);
  NotifyMessage ready;
  ready.sender = fresh;
  ready.fields = {{"READY", "1"}};
  ASSERT_TRUE(processes_.notify(notify, ready));
  ASSERT_EQ(state_of(fresh), "confirming");
  auto window_start = clock_.now();
  while (state_of(fresh) == "confirming") ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(clock_.now() - window_start, kWeakReadinessConfirm);
  EXPECT_EQ(state_of(fresh), "up");
  EXPECT_TRUE(got(old.peer, "takeDown"));

  // A client library's serverUp: up at once, the --listen program taken down at once.
  UpServer next = deploy_up({"srv", "v3"}, ":8080");
  EXPECT_EQ(state_of(next.pid), "up");
  EXPECT_FALSE(processes_.find(fresh)->signals.empty());
}

// A newer deploy that arrives while a server is in its window supersedes it as any server
// not yet up: the one in its window fails, the old version is untouched until the newest is
// up.
TEST_F(SupervisorTest, ANewerDeploySupersedesAServerInItsConfirmWindow) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.confirm = Millis(2000);
  size_t d = deploy_spec(spec);
  pid_t confirming = last_pid();
  bring_up(confirming, ":8080");
  ASSERT_EQ(state_of(confirming), "confirming");
  size_t newest = deploy({"srv", "v3"});
  pid_t fresh = last_pid();
  FakePeer& peer = hello(fresh);
  send(peer, protocol::make("readyFor", ":8080"));
  EXPECT_EQ(state_of(confirming), "failed");
  processes_.exit(confirming, 0, 0);  // it was sent takeDown, and goes
  EXPECT_EQ(outcome(d), "failed: superseded by generation 3");
  EXPECT_FALSE(got(old.peer, "takeDown"));
  send(peer, protocol::make("serverUp", true));
  EXPECT_TRUE(got(old.peer, "takeDown"));
  processes_.exit(old.pid, 0, 0);
  EXPECT_EQ(outcome(newest), "deployed");
}

// A daemon that restarts while a server is in its window takes it back in its window, and
// the window starts again from when its sockets are back (the new daemon saw none of it): the
// old version is taken down only a whole window after the restart.
TEST_F(SupervisorTest, ADaemonRestartInsideTheWindowStartsTheWindowAgain) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  SpawnSpec spec;
  spec.argv = {"prog"};
  spec.listen = {{"", ":8080"}};
  spec.confirm = Millis(2000);
  deploy_spec(spec);
  pid_t fresh = last_pid();
  std::string notify = notify_socket_of(fresh);
  NotifyMessage ready;
  ready.sender = fresh;
  ready.fields = {{"READY", "1"}};
  ASSERT_TRUE(processes_.notify(notify, ready));
  ASSERT_EQ(state_of(fresh), "confirming");
  ASSERT_EQ(supervisor_->record().servers.size(), 2u);
  processes_.inherited[fresh] = {":8080"};  // its fd 3, copied back with pidfd_getfd
  processes_.frozen = true;                 // the dying daemon's destructor kills nothing
  restart_daemon();
  processes_.frozen = false;
  EXPECT_EQ(state_of(fresh), "confirming");
  EXPECT_EQ(clock_.next_in(), Millis(2000));
  auto restarted = clock_.now();
  // Signals the dying daemon's destructor sent while frozen were recorded, not delivered.
  const size_t signalled = processes_.find(old.pid)->signals.size();
  while (state_of(fresh) == "confirming") {
    EXPECT_EQ(processes_.find(old.pid)->signals.size(), signalled);
    ASSERT_TRUE(clock_.fire_next());
  }
  EXPECT_EQ(state_of(fresh), "up");
  EXPECT_EQ(clock_.now() - restarted, Millis(2000));
  EXPECT_GT(processes_.find(old.pid)->signals.size(), signalled) << "taken down after it";
}

// A failed deploy says whether anything still serves its resources ("othersServing"), so
// that the command line never says "the servers already running keep serving" when none
// does: after the only server of :8080 crashed, a deploy that fails there says false; one
// that fails while an old server serves says true; one that held nothing says nothing.
TEST_F(SupervisorTest, AFailedDeploySaysWhetherAnotherServerServesItsResources) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  size_t beside = deploy({"srv", "v2"});
  pid_t second = last_pid();
  send(hello(second), protocol::make("readyFor", ":8080"));
  processes_.exit(second, 1, 0);
  EXPECT_EQ(outcomes_[beside][0]["deployFailed"].value("othersServing", false), true);
  processes_.exit(old.pid, 1, 0);  // crashed: nothing serves :8080 now
  size_t alone = deploy({"srv", "v3"});
  pid_t third = last_pid();
  send(hello(third), protocol::make("readyFor", ":8080"));
  processes_.exit(third, 1, 0);
  ASSERT_EQ(outcomes_[alone].size(), 1u);
  EXPECT_EQ(outcomes_[alone][0]["deployFailed"].value("othersServing", true), false);
  size_t nothing = deploy({"srv", "v4"});
  processes_.exit(last_pid(), 1, 0);
  ASSERT_EQ(outcomes_[nothing].size(), 1u);
  EXPECT_FALSE(outcomes_[nothing][0]["deployFailed"].contains("othersServing"));
}

// ---- Apps (docs/architecture.md, "Apps") ---------------------------------------------------

// The issue's "same command moved to a new port": a new version of an app that serves
// elsewhere retires the old one there after --settle (not at once: an up server may still
// ask for the rest of what it serves), and its deploy waits for the old one to exit.
TEST_F(SupervisorTest, ANewVersionOfAnAppOnAnotherPortRetiresTheOldOneAfterSettle) {
  UpServer old = deploy_up({"srv", "v1"}, ":8080");
  size_t moved = deploy({"srv", "v2"});
  bring_up(last_pid(), ":9090");
  EXPECT_FALSE(got(old.peer, "takeDown")) << "taken down before --settle";
  EXPECT_TRUE(outcomes_[moved].empty());
  while (!got(old.peer, "takeDown")) ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(state_of(old.pid), "draining");
  processes_.exit(old.pid, 0, 0);
  EXPECT_EQ(outcome(moved), "deployed");
}

// An up server that asks for another of the old version's resources within --settle takes
// it over by the usual rule; the old version goes only once nothing of it is left alone.
TEST_F(SupervisorTest, AnAppsNewVersionThatAsksForTheRestWithinSettleTakesItOver) {
  deploy({"srv", "v1"});
  pid_t old = last_pid();
  FakePeer& old_peer = hello(old);
  for (const char* r : {":1", ":2"}) {
    send(old_peer, protocol::make("onTakedown", r));
    send(old_peer, protocol::make("readyFor", r));
  }
  send(old_peer, protocol::make("serverUp", true));
  deploy({"srv", "v2"});
  pid_t fresh = last_pid();
  FakePeer& peer = bring_up(fresh, ":1");
  send(peer, protocol::make("readyFor", ":2"));  // later, within --settle
  for (int i = 0; i < 10 && state_of(old) != "draining"; ++i) ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(state_of(old), "draining");
  EXPECT_EQ(state_of(fresh), "up");
}

// Two apps may not take one resource by accident: the second is refused with the way out,
// and the first is untouched; with --replace it takes over as before.
TEST_F(SupervisorTest, AnotherAppsResourceIsRefusedUnlessTheDeploySaysReplace) {
  UpServer web = deploy_up({"web"}, ":8080");
  SpawnSpec api;
  api.argv = {"api"};
  replace_any_ = false;  // api may take over no other app's resources
  size_t refused = deploy_spec(api);
  pid_t api_pid = last_pid();
  FakePeer& peer = hello(api_pid);
  send(peer, protocol::make("readyFor", ":8080"));
  EXPECT_EQ(state_of(api_pid), "failed");
  processes_.exit(api_pid, 0, SIGTERM);
  EXPECT_NE(outcome(refused).find("app 'web' serves it"), std::string::npos) << outcome(refused);
  EXPECT_NE(outcome(refused).find("--replace web"), std::string::npos) << outcome(refused);
  EXPECT_FALSE(got(web.peer, "takeDown"));
  EXPECT_EQ(state_of(web.pid), "up");

  api.replace = {"web"};
  size_t replacing = deploy_spec(api);
  bring_up(last_pid(), ":8080");
  EXPECT_TRUE(got(web.peer, "takeDown"));
  processes_.exit(web.pid, 0, 0);
  EXPECT_EQ(outcome(replacing), "deployed");
}

// A --listen program's resource is known at deploy: another app's is refused before spawn.
TEST_F(SupervisorTest, AnotherAppsListenResourceIsRefusedBeforeSpawn) {
  deploy_up({"web"}, ":8080");
  pid_t before = last_pid();
  SpawnSpec lsn;
  lsn.argv = {"lsn"};
  lsn.listen = {{"", ":8080"}};
  replace_any_ = false;
  size_t refused = deploy_spec(lsn);
  EXPECT_EQ(last_pid(), before) << "spawned";
  EXPECT_NE(outcome(refused).find("--listen :8080: app 'web' serves it"), std::string::npos)
      << outcome(refused);
}

// ---- Versions and rollback (app_history.h) ------------------------------------------------

// The issue's "a release that crashes after the window": v2 is up and has replaced v1, then
// crashes; its crash restart crashes too, within --rollback-window: v1's version is deployed
// again (a new generation of the same argv), v2's crash loop ends, and status says so.
TEST_F(SupervisorTest, AVersionThatCrashesTwiceAfterItsDeployIsRolledBackToThePreviousOne) {
  UpServer v1 = deploy_up({"srv", "v1"}, ":8080");
  UpServer v2 = deploy_up({"srv", "v2"}, ":8080");
  ASSERT_TRUE(got(v1.peer, "takeDown"));
  processes_.exit(v1.pid, 0, 0);
  processes_.exit(v2.pid, 1, 0);  // crash 1: restarted after the delay
  ASSERT_TRUE(clock_.fire_next());
  pid_t restart = last_pid();
  ASSERT_EQ(processes_.find(restart)->spec.argv, (std::vector<std::string>{"srv", "v2"}));
  bring_up(restart, ":8080");
  processes_.exit(restart, 1, 0);  // crash 2: rolled back, not restarted
  pid_t back = last_pid();
  ASSERT_NE(back, restart) << "nothing was started";
  EXPECT_EQ(processes_.find(back)->spec.argv, (std::vector<std::string>{"srv", "v1"}));
  bring_up(back, ":8080");
  EXPECT_EQ(state_of(back), "up");
  for (int i = 0; i < 5; ++i) clock_.fire_next();  // no pending restart of v2 starts
  EXPECT_EQ(processes_.alive(), 1u);
  EXPECT_EQ(last_pid(), back);
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  auto apps = supervisor_->app_status("srv");
  ASSERT_EQ(apps.size(), 1u);
  ASSERT_TRUE(apps[0].rolled_back.has_value());
  EXPECT_NE(apps[0].rolled_back->reason.find("crashed 2 times"), std::string::npos);
  // v2 is no good version any more: the history is v1 only, so nothing to roll back to.
  EXPECT_EQ(apps[0].versions.size(), 1u);
  EXPECT_FALSE(supervisor_
                   ->roll_back(
                       "srv", [](const Json&) {}, /*follow_exit=*/false, "a test")
                   .ok());
}

// Crashes of a version long after its deploy, or of an app's first version, are restarted as
// before: a rollback needs a recent deploy and a version to go back to.
TEST_F(SupervisorTest, CrashesOutsideTheRollbackWindowOrOfAFirstVersionAreOnlyRestarted) {
  pid_t first = deploy_up({"srv", "v1"}, ":8080").pid;
  processes_.exit(first, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  pid_t again = last_pid();
  bring_up(again, ":8080");
  processes_.exit(again, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v1"}));
  bring_up(last_pid(), ":8080");

  UpServer v2 = deploy_up({"srv", "v2"}, ":8080");
  processes_.exit(last_pid() - 1, 0, 0);  // the v1 restart it replaced
  clock_.advance(options_.rollback_window + Millis(1));
  processes_.exit(v2.pid, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  pid_t restart = last_pid();
  bring_up(restart, ":8080");
  processes_.exit(restart, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v2"}));
  EXPECT_FALSE(supervisor_->app_status()[0].rolled_back.has_value());
}

// `rollback APP` deploys the previous version; a second rollback returns to the one left
// (kubectl's rollout undo); `restart APP` deploys the current version, also after stop APP.
TEST_F(SupervisorTest, RollbackGoesToThePreviousVersionAndRestartStartsTheCurrentOne) {
  UpServer v1 = deploy_up({"srv", "v1"}, ":8080");
  UpServer v2 = deploy_up({"srv", "v2"}, ":8080");
  processes_.exit(v1.pid, 0, 0);
  std::vector<Json> said;
  ASSERT_TRUE(
      supervisor_
          ->roll_back(
              "srv", [&](const Json& m) { said.push_back(m); }, /*follow_exit=*/false, "a test")
          .ok());
  pid_t back = last_pid();
  EXPECT_EQ(processes_.find(back)->spec.argv, (std::vector<std::string>{"srv", "v1"}));
  bring_up(back, ":8080");
  EXPECT_TRUE(got(v2.peer, "takeDown"));
  processes_.exit(v2.pid, 0, 0);
  ASSERT_FALSE(said.empty());
  EXPECT_EQ(said.back().begin().key(), "deployed");
  ASSERT_TRUE(supervisor_
                  ->roll_back(
                      "srv", [](const Json&) {}, /*follow_exit=*/false, "a test")
                  .ok());
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v2"}));

  EXPECT_FALSE(supervisor_
                   ->restart(
                       "nope", [](const Json&) {}, /*follow_exit=*/false, "a test")
                   .ok());
  EXPECT_FALSE(supervisor_
                   ->roll_back(
                       "nope", [](const Json&) {}, /*follow_exit=*/false, "a test")
                   .ok());
  EXPECT_TRUE(supervisor_->forget_app("srv"));
  EXPECT_FALSE(supervisor_
                   ->restart(
                       "srv", [](const Json&) {}, /*follow_exit=*/false, "a test")
                   .ok());
}

// The pid of the live server of `argv` at worker index `index`, 0 when there is none.
pid_t worker_of(const FakeProcesses& processes, const std::vector<std::string>& argv, int index) {
  pid_t found = 0;
  std::string worker = "SERVERSWAP_WORKER=" + std::to_string(index);
  for (const auto& [pid, record] : processes.all())
    if (!record->exited && record->spec.argv == argv &&
        std::find(record->spec.env.begin(), record->spec.env.end(), worker) !=
            record->spec.env.end())
      found = pid;
  return found;
}

// A worker app's version that crashes twice within --rollback-window of its roll is rolled back
// as a roll of the app's worker count: each index keeps its server until the previous version's
// worker there is up, and the crashing version's crash loop ends.
TEST_F(SupervisorTest, AWorkerVersionThatCrashesTwiceIsRolledBackAsARollOfItsWorkerCount) {
  SpawnSpec v1 = both_at_once({"wrk", "v1"});
  v1.workers = 3;  // the rollback rolls as many as v2 runs, not v1's 3
  v1.batch = v1.max_surge = 3;
  deploy_spec(v1);
  for (int i = 0; i < 3; ++i) bring_up(worker_of(processes_, {"wrk", "v1"}, i), ":3");
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t b0 = worker_of(processes_, {"wrk", "v2"}, 0), b1 = worker_of(processes_, {"wrk", "v2"}, 1);
  FakePeer& b0_peer = bring_up(b0, ":3");
  bring_up(b1, ":3");
  for (int i = 0; i < 3; ++i)
    if (pid_t old = worker_of(processes_, {"wrk", "v1"}, i)) processes_.exit(old, 0, 0);
  ASSERT_EQ(outcome(roll), "deployed");
  processes_.exit(b1, 1, 0);  // crash 1: restarted after the delay
  ASSERT_TRUE(clock_.fire_next());
  pid_t restart = worker_of(processes_, {"wrk", "v2"}, 1);
  ASSERT_NE(restart, 0);
  bring_up(restart, ":3");
  processes_.exit(restart, 1, 0);  // crash 2: rolled back, not restarted
  auto apps = supervisor_->app_status();
  ASSERT_EQ(apps.size(), 1u);
  ASSERT_TRUE(apps[0].rolled_back.has_value()) << "no rollback";
  for (int i = 0; i < 2; ++i) {
    pid_t back = worker_of(processes_, {"wrk", "v1"}, i);
    ASSERT_NE(back, 0) << "v1's worker " << i << " was not started";
    EXPECT_EQ(state_of(b0), "up") << "v2's worker 0 goes only once v1's is up";
    bring_up(back, ":3");
  }
  EXPECT_EQ(worker_of(processes_, {"wrk", "v1"}, 2), 0) << "the rollback rolls 2 workers";
  EXPECT_TRUE(got(b0_peer, "takeDown"));
  processes_.exit(b0, 0, 0);
  for (int i = 0; i < 5; ++i) clock_.fire_next();  // no pending restart of v2 starts
  EXPECT_EQ(processes_.alive(), 2u);
  EXPECT_EQ(worker_of(processes_, {"wrk", "v2"}, 1), 0);
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  EXPECT_EQ(supervisor_->deploys_in_flight(), 0u);
}

// Found by the simulator (seed 607 of the worker mix): a worker rollback's roll whose worker
// superseded the crash restart of its index and then failed gives the crashing version back at
// every index it replaced, whose crash loop goes on (as a failed rollback of one server does):
// it kept its worker 0 that came up, and index 1 was left empty.
TEST_F(SupervisorTest, AFailedWorkerRollbackGivesTheCrashingVersionBackAtEveryIndexItReplaced) {
  SpawnSpec v1 = both_at_once({"wrk", "v1"});
  v1.batch = v1.max_surge = 1;  // the rollback rolls one worker at a time, as v1 did
  deploy_spec(v1);
  bring_up(worker_of(processes_, {"wrk", "v1"}, 0), ":3");
  bring_up(worker_of(processes_, {"wrk", "v1"}, 1), ":3");
  size_t roll = deploy_spec(both_at_once({"wrk", "v2"}));
  pid_t b0 = worker_of(processes_, {"wrk", "v2"}, 0), b1 = worker_of(processes_, {"wrk", "v2"}, 1);
  FakePeer& b0_peer = bring_up(b0, ":3");
  bring_up(b1, ":3");
  for (int i = 0; i < 2; ++i) processes_.exit(worker_of(processes_, {"wrk", "v1"}, i), 0, 0);
  ASSERT_EQ(outcome(roll), "deployed");
  processes_.exit(b1, 1, 0);  // crash 1
  ASSERT_TRUE(clock_.fire_next());
  pid_t r1 = worker_of(processes_, {"wrk", "v2"}, 1);
  ASSERT_NE(r1, 0);
  hello(r1);
  processes_.exit(r1, 1, 0);  // crash 2, before it was up: rolled back
  ASSERT_TRUE(supervisor_->app_status().at(0).rolled_back.has_value());
  pid_t c0 = worker_of(processes_, {"wrk", "v1"}, 0);
  ASSERT_NE(c0, 0) << "the rollback started no worker 0";
  while (worker_of(processes_, {"wrk", "v2"}, 1) == 0) ASSERT_TRUE(clock_.fire_next());
  pid_t r2 = worker_of(processes_, {"wrk", "v2"}, 1);  // the crash loop's next restart
  bring_up(c0, ":3");
  ASSERT_TRUE(got(b0_peer, "takeDown"));
  processes_.exit(b0, 0, 0);
  pid_t c1 = worker_of(processes_, {"wrk", "v1"}, 1);
  ASSERT_NE(c1, 0) << "the rollback started no worker 1";
  FakePeer& r2_peer = hello(r2);
  send(r2_peer, protocol::make("readyFor", ":3"));
  send(r2_peer, protocol::make("serverUp", true));
  ASSERT_EQ(state_of(r2), "failed") << "the restart is superseded by the rollback's worker 1";
  processes_.exit(r2, 0, SIGTERM);
  processes_.exit(c1, 1, 0);  // the rollback's worker 1 fails: its roll fails
  auto apps = supervisor_->app_status();
  ASSERT_TRUE(apps.at(0).rolled_back && apps[0].rolled_back->failure) << "no failure said";
  pid_t again0 = worker_of(processes_, {"wrk", "v2"}, 0);
  pid_t again1 = worker_of(processes_, {"wrk", "v2"}, 1);
  ASSERT_NE(again1, 0) << "index 1 was left empty";
  ASSERT_NE(again0, 0) << "v2 was not started again at index 0";
  EXPECT_EQ(state_of(c0), "up") << "the rollback's worker 0 goes only once v2's is up again";
  bring_up(again0, ":3");
  bring_up(again1, ":3");
  EXPECT_NE(state_of(c0), "up");
}

// ---- True outcomes (issue 13) ----------------------------------------------------------

// A failed roll of the same command line (argv and working directory) as the old version's:
// what starts again runs the files on disk now (after an in-place update, the failed
// release's), so the outcome says "the same command is started again", never "the old
// version ... is started again". A changed command line still gets the old version back.
class FailedRollOutcomeTest : public SupervisorTest {
 protected:
  // Two workers of "wrk v1" up on :3; a roll of `argv` whose worker 1 comes up (old worker 1
  // exits) and whose worker 0 fails: the roll's outcome.
  std::string failed_roll(std::vector<std::string> argv) {
    deploy_spec(both_at_once({"wrk", "v1"}));
    pid_t old0 = last_pid() - 1, old1 = last_pid();
    bring_up(old0, ":3");
    bring_up(old1, ":3");
    size_t roll = deploy_spec(both_at_once(std::move(argv)));
    pid_t new0 = last_pid() - 1, new1 = last_pid();
    bring_up(new1, ":3");  // old worker 1 is taken down
    processes_.exit(old1, 0, 0);
    processes_.exit(new0, 1, 0);  // the roll fails
    return outcome(roll);
  }
};

TEST_F(FailedRollOutcomeTest, TheSameCommandLineIsTheSameCommandStartedAgain) {
  std::string said = failed_roll({"wrk", "v1"});
  EXPECT_NE(said.find("; the old version keeps serving; the same command is started again as "
                      "worker 1 (the old version's argv and working directory are this "
                      "deploy's): it runs the files on disk now"),
            std::string::npos)
      << said;
  EXPECT_EQ(said.find("old version keeps serving and is started again"), std::string::npos) << said;
}

TEST_F(FailedRollOutcomeTest, AChangedCommandLineIsTheOldVersionStartedAgain) {
  std::string said = failed_roll({"wrk", "v2"});
  EXPECT_NE(said.find("; the old version keeps serving and is started again as worker 1"),
            std::string::npos)
      << said;
  EXPECT_EQ(said.find("the same command"), std::string::npos) << said;
}

// `stop APP` while a deploy of the app is in flight (before: refused until the deploy had its
// outcome): the deploy fails saying who stopped it, with othersServing false, and every
// server of the app goes, the starting one and the one it would have replaced.
TEST_F(SupervisorTest, StopAppDuringItsDeployFailsTheDeployAndStopsEveryServerOfTheApp) {
  auto old = deploy_up({"srv", "v1"}, ":8080");
  std::vector<Json> told;
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec, [&](const Json& m) { told.push_back(m); }, false);
  pid_t starting = last_pid();
  hello(starting);
  std::optional<size_t> stopped;
  Status s = supervisor_->stop_app("srv", [&](size_t n) { stopped = n; });
  ASSERT_TRUE(s.ok()) << s.message();
  const Json* failed = nullptr;
  for (const auto& m : told)
    if (m.begin().key() == "deployFailed") failed = &m;
  ASSERT_NE(failed, nullptr) << Json(told).dump();
  EXPECT_EQ((*failed)["deployFailed"]["reason"], "stopped by serverswap stop srv");
  EXPECT_EQ((*failed)["deployFailed"]["othersServing"], false);
  EXPECT_TRUE(got(old.peer, "takeDown"));
  EXPECT_EQ(state_of(starting), "failed");
  processes_.exit(old.pid, 0, 0);
  EXPECT_FALSE(stopped.has_value()) << "done before the starting server exited";
  processes_.exit(starting, 0, SIGTERM);
  EXPECT_EQ(stopped, std::optional<size_t>(2));
  EXPECT_TRUE(supervisor_->status().empty());
  EXPECT_TRUE(supervisor_->crash_loops().empty());
}

// A deploy in deploy mode (serverswap-deploy attached) whose server `stop APP` takes down is
// told so (serverExited "stoppedBy"), not that a newer deploy replaced it.
TEST_F(SupervisorTest, ADeployModeDeployHearsWhoStoppedItsServer) {
  std::vector<Json> told;
  SpawnSpec spec;
  spec.argv = {"srv", "v1"};
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec, [&](const Json& m) { told.push_back(m); }, true);
  pid_t pid = last_pid();
  bring_up(pid, ":8080");
  ASSERT_TRUE(supervisor_->stop_app("srv", [](size_t) {}).ok());
  processes_.exit(pid, 0, 0);
  ASSERT_FALSE(told.empty());
  const Json& last = told.back();
  ASSERT_EQ(last.begin().key(), "serverExited") << last.dump();
  EXPECT_EQ(last["serverExited"]["replaced"], false) << last.dump();
  EXPECT_EQ(last["serverExited"]["stoppedBy"], "serverswap stop srv") << last.dump();
}

// The same for a rolling deploy in deploy mode: once its last worker has exited it is told
// who stopped them.
TEST_F(SupervisorTest, ADeployModeRollHearsWhoStoppedItsWorkers) {
  std::vector<Json> told;
  SpawnSpec spec = both_at_once({"wrk", "v1"});
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec, [&](const Json& m) { told.push_back(m); }, true);
  pid_t worker0 = last_pid() - 1, worker1 = last_pid();
  bring_up(worker0, ":3");
  bring_up(worker1, ":3");
  ASSERT_TRUE(supervisor_->stop_app("wrk", [](size_t) {}).ok());
  processes_.exit(worker0, 0, 0);
  processes_.exit(worker1, 0, 0);
  ASSERT_FALSE(told.empty());
  const Json& last = told.back();
  ASSERT_EQ(last.begin().key(), "serverExited") << last.dump();
  EXPECT_EQ(last["serverExited"]["replaced"], false) << last.dump();
  EXPECT_EQ(last["serverExited"]["stoppedBy"], "serverswap stop wrk") << last.dump();
}

// A readyFor of what the server holds already is said once per resource (askedAgain, with
// the resource), so that a waiting deploy can say "asked for :8080 twice"; a loop of them
// makes no more events.
TEST_F(SupervisorTest, AReadyForOfAHeldResourceIsSaidOnceAsAskedAgain) {
  std::vector<Json> told;
  SpawnSpec spec;
  spec.argv = {"srv", "v1"};
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec, [&](const Json& m) { told.push_back(m); }, false);
  FakePeer& peer = hello(last_pid(), true);
  for (int i = 0; i < 5; ++i) send(peer, protocol::make("readyFor", ":8080"));
  size_t asked_again = 0;
  for (const auto& m : told)
    if (m.begin().key() == "event" && m["event"]["kind"] == "askedAgain") {
      ++asked_again;
      EXPECT_EQ(m["event"]["resource"], ":8080") << m.dump();
    }
  EXPECT_EQ(asked_again, 1u);
}

// A rollback whose deploy fails (the old release was deleted) leaves the crash loop going:
// the app is never left with nothing that restarts it, and status says the rollback failed.
TEST_F(SupervisorTest, AFailedRollbackLeavesTheCrashLoopGoingAndStatusSaysSo) {
  UpServer v1 = deploy_up({"srv", "v1"}, ":8080");
  UpServer v2 = deploy_up({"srv", "v2"}, ":8080");
  processes_.exit(v1.pid, 0, 0);
  processes_.exit(v2.pid, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  pid_t restart = last_pid();
  bring_up(restart, ":8080");
  processes_.fail_next_spawn = "no such file or directory";  // the rollback's spawn
  processes_.exit(restart, 1, 0);
  EXPECT_EQ(last_pid(), restart) << "something was spawned";
  auto apps = supervisor_->app_status();
  ASSERT_TRUE(apps.at(0).rolled_back && apps[0].rolled_back->failure) << "no failure said";
  ASSERT_TRUE(clock_.fire_next());  // the crash loop's restart
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v2"}));
}

// A version that crash-looped is no good version: neither an automatic rollback nor
// `rollback APP` goes back to it.
TEST_F(SupervisorTest, AVersionThatCrashLoopedIsNoVersionToRollBackTo) {
  pid_t a = deploy_up({"srv", "a"}, ":8080").pid;
  processes_.exit(a, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  pid_t again = last_pid();
  bring_up(again, ":8080");
  processes_.exit(again, 1, 0);  // a crash-loops: its first version, nothing to go back to
  ASSERT_TRUE(clock_.fire_next());
  bring_up(last_pid(), ":8080");
  pid_t a_last = last_pid();
  UpServer b = deploy_up({"srv", "b"}, ":8080");
  processes_.exit(a_last, 0, 0);
  EXPECT_FALSE(supervisor_
                   ->roll_back(
                       "srv", [](const Json&) {}, /*follow_exit=*/false, "a test")
                   .ok());
  processes_.exit(b.pid, 1, 0);
  ASSERT_TRUE(clock_.fire_next());
  pid_t b_again = last_pid();
  bring_up(b_again, ":8080");
  processes_.exit(b_again, 1, 0);
  EXPECT_FALSE(supervisor_->app_status().at(0).rolled_back.has_value());
  ASSERT_TRUE(clock_.fire_next());
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "b"}));
}

// The kind of each message a deploy's sink was sent: "deployed", "serverExited", or an
// event's kind ("restarting").
std::vector<std::string> kinds_of(const std::vector<Json>& messages) {
  std::vector<std::string> kinds;
  for (const auto& m : messages)
    kinds.push_back(m.contains("event") ? m["event"]["kind"].get<std::string>() : m.begin().key());
  return kinds;
}

// serverswap-deploy whose server crashes hears what the daemon does about it (a crash
// restart; an automatic rollback) before serverExited ends it: before, serverExited went
// first and the connection closed, so it never learnt of the restart or the rollback.
TEST_F(SupervisorTest, ADeployModeDeployHearsWhatFollowsItsServersCrashBeforeServerExited) {
  UpServer v1 = deploy_up({"srv", "v1"}, ":8080");
  std::vector<Json> said;
  SpawnSpec spec;
  spec.argv = {"srv", "v2"};
  spec.cwd = "/srv";
  supervisor_->deploy(
      spec, [&](const Json& m) { said.push_back(m); }, /*follow_exit=*/true);
  pid_t v2 = last_pid();
  bring_up(v2, ":8080");
  processes_.exit(v1.pid, 0, 0);
  processes_.exit(v2, 1, 0);
  auto kinds = kinds_of(said);
  auto restarting = std::find(kinds.begin(), kinds.end(), "restarting");
  ASSERT_NE(restarting, kinds.end());
  ASSERT_EQ(kinds.back(), "serverExited");
  EXPECT_LT(restarting - kinds.begin(), static_cast<long>(kinds.size()) - 1);

  // `restart srv` in deploy mode: the same version again, whose crash is its second within
  // the rollback window; the follower hears the rollback, then serverExited.
  ASSERT_TRUE(clock_.fire_next());
  bring_up(last_pid(), ":8080");  // the crash restart
  said.clear();
  ASSERT_TRUE(supervisor_
                  ->restart(
                      "srv", [&](const Json& m) { said.push_back(m); },
                      /*follow_exit=*/true, "a test")
                  .ok());
  pid_t again = last_pid();
  bring_up(again, ":8080");
  processes_.exit(again - 1, 0, 0);  // the restart it replaced
  processes_.exit(again, 1, 0);
  kinds = kinds_of(said);
  auto rolled_back = std::find(kinds.begin(), kinds.end(), "rolledBack");
  ASSERT_NE(rolled_back, kinds.end()) << ::testing::PrintToString(kinds);
  EXPECT_EQ(kinds.back(), "serverExited");
  EXPECT_EQ(processes_.find(last_pid())->spec.argv, (std::vector<std::string>{"srv", "v1"}));
}

// A deploy of a crash-looping command that comes up ends the loop: its own crash starts with
// the first delay, not with the old loop's count and backoff (found by a new user: "crashed 5
// times in 15s; next restart in 1.6s" at the first crash of a new release).
TEST_F(SupervisorTest, ADeployThatComesUpEndsItsCommandsCrashLoop) {
  pid_t pid = deploy_up({"srv", "v1"}, ":8080").pid;
  processes_.exit(pid, 1, 0);
  ASSERT_TRUE(clock_.fire_next());  // restart 1
  bring_up(last_pid(), ":8080");
  processes_.exit(last_pid(), 1, 0);
  ASSERT_EQ(supervisor_->crash_loops().size(), 1u);
  EXPECT_EQ(supervisor_->crash_loops()[0].next_restart_ms, 200);
  ASSERT_TRUE(clock_.fire_next());  // restart 2, up
  pid_t restarted = last_pid();
  bring_up(restarted, ":8080");
  UpServer again = deploy_up({"srv", "v1"}, ":8080");  // the same command, deployed
  EXPECT_TRUE(supervisor_->crash_loops().empty());
  processes_.exit(restarted, 0, 0);  // replaced
  processes_.exit(again.pid, 1, 0);
  auto loops = supervisor_->crash_loops();
  ASSERT_EQ(loops.size(), 1u);
  EXPECT_EQ(loops[0].crashes, 1);
  EXPECT_EQ(loops[0].next_restart_ms, 100);
}

}  // namespace
}  // namespace serverswap::daemon
