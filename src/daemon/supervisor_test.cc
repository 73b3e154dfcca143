// The supervisor against fakes of its seams (daemon/testing/fake_seams.h): each rule of the
// state table, one scenario per test, with time moved only by the fake clock.
#include "daemon/supervisor.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

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
    // --user servers: their control socket's path only (the fakes connect nothing).
    options.socket_for_user = [](uid_t, gid_t) -> Result<std::string> {
      return std::string("user.sock");
    };
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

  // Deploys `argv` (as `user`, when given); the outcomes go to outcomes_[index], the returned
  // index.
  size_t deploy(std::vector<std::string> argv, const std::string& user = "") {
    SpawnSpec spec;
    spec.argv = std::move(argv);
    spec.user = user;
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

// TMPDIR pointed at a fresh directory for the test's duration, removed after it: the
// NOTIFY_SOCKET paths of --user servers are made there (daemon/user_directory.h).
struct PrivateTmpdir {
  PrivateTmpdir() {
    char pattern[] = "/tmp/serverswap-suptest-XXXXXX";
    if (::mkdtemp(pattern)) path = pattern;
    if (const char* old = std::getenv("TMPDIR")) previous = old;
    ::setenv("TMPDIR", path.c_str(), 1);
  }
  ~PrivateTmpdir() {
    if (previous)
      ::setenv("TMPDIR", previous->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string path;
  std::optional<std::string> previous;
};

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
  PrivateTmpdir tmp;
  listeners_.defer_async = true;
  const std::string resource = "unix:/srv/theirs.sock";
  deploy({"srv", "a"}, "nobody");
  FakePeer& first = hello(last_pid());
  send(first, protocol::make("readyFor", resource));
  deploy({"srv", "b"}, "daemon");
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
  PrivateTmpdir tmp;
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

}  // namespace
}  // namespace serverswap::daemon
