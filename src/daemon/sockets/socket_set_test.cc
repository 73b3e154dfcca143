#include "daemon/sockets/socket_set.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <vector>

#include "base/testing/temp_dir.h"
#include "daemon/testing/uv_loop.h"

namespace serverswap::daemon {
namespace {

using std::chrono::steady_clock;

// While set, every process this test process forks stops itself at once (SIGSTOP, which
// cannot be blocked), before the child does anything else: a bind child stalled as if its
// path were on a hung file system. SocketSet's code runs unchanged.
std::atomic<bool> g_stall_children{false};

void stall_if_asked() {
  if (g_stall_children) ::raise(SIGSTOP);
}

// The user the socket is bound as must create it there.
struct SharedDir : serverswap::testing::TempDir {
  SharedDir() : TempDir("socket-set-test", 0777) {}
};

using testing::Loop;

using Outcome = std::optional<Result<const SocketSet::Entry*>>;

// Turns the loop until `outcome` is set or `limit` passes.
void run_until(uv_loop_t* loop, const Outcome& outcome, std::chrono::milliseconds limit) {
  auto end = steady_clock::now() + limit;
  uv_timer_t tick;  // bounds each turn: the loop may have nothing else to wake it
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 10, 10);
  while (!outcome && steady_clock::now() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

TEST(SocketSet, AStalledBindAsAnotherUserHoldsNeitherTheCallerNorTheLoopAndTimesOut) {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, stall_if_asked) == 0;
  ASSERT_TRUE(registered);
  SharedDir dir;
  ASSERT_FALSE(dir.path().empty());
  auto resource = protocol::parse_resource("unix:" + dir.path() + "/stalled.sock");
  ASSERT_TRUE(resource.ok());
  Loop l;
  {
    SocketSet set(&l.loop);
    Outcome first, second;
    uv_update_time(&l.loop);  // the timeout counts from the loop's time: now, not its start
    auto started = steady_clock::now();
    g_stall_children = true;
    set.get_or_bind_async(
        *resource, SocketSet::BindAs{65534, 65534}, [&](auto e) { first = e; }, Millis(400));
    g_stall_children = false;
    // The caller was not held: the child is stopped, and the request is pending.
    EXPECT_LT(steady_clock::now() - started, std::chrono::milliseconds(200));
    EXPECT_FALSE(first.has_value());
    EXPECT_EQ(set.binds_pending(), 1u);
    // A second request for the same name waits for the same child.
    set.get_or_bind_async(
        *resource, SocketSet::BindAs{65534, 65534}, [&](auto e) { second = e; }, Millis(400));
    EXPECT_EQ(set.binds_pending(), 1u);
    // The loop goes on meanwhile: a 50 ms timer fires while the bind is still pending.
    struct Tick {
      uv_timer_t handle;
      bool fired = false;
      bool pending_then = false;
      const Outcome* outcome = nullptr;
    } tick;
    tick.outcome = &first;
    uv_timer_init(&l.loop, &tick.handle);
    tick.handle.data = &tick;
    uv_timer_start(
        &tick.handle,
        [](uv_timer_t* t) {
          auto* self = static_cast<Tick*>(t->data);
          self->fired = true;
          self->pending_then = !self->outcome->has_value();
        },
        50, 0);
    run_until(&l.loop, first, std::chrono::seconds(5));
    uv_close(reinterpret_cast<uv_handle_t*>(&tick.handle), nullptr);
    EXPECT_TRUE(tick.fired);
    EXPECT_TRUE(tick.pending_then);
    ASSERT_TRUE(first.has_value());
    ASSERT_FALSE(first->ok());
    EXPECT_NE(first->status().message().find("no answer within 400 ms"), std::string::npos)
        << first->status().message();
    ASSERT_TRUE(second.has_value());
    EXPECT_FALSE(second->ok());
    EXPECT_EQ(set.binds_pending(), 0u);
    EXPECT_GE(steady_clock::now() - started, std::chrono::milliseconds(390));
    EXPECT_FALSE(
        std::filesystem::exists(std::filesystem::symlink_status(dir.path() + "/stalled.sock")));
  }
}

// Beyond eight binds under way for one user, the next waits its turn (it is not refused:
// a server asking for many Unix sockets at once must still come up).
TEST(SocketSet, AUserHasAtMostEightBindsUnderWayAndTheNextWaitsItsTurn) {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, stall_if_asked) == 0;
  ASSERT_TRUE(registered);
  SharedDir dir;
  Loop l;
  {
    SocketSet set(&l.loop);
    std::vector<Outcome> outcomes(kMaxPendingBindsPerUid + 2);
    g_stall_children = true;
    for (size_t i = 0; i < outcomes.size(); ++i) {
      auto resource = protocol::parse_resource("unix:" + dir.path() + "/" + std::to_string(i));
      ASSERT_TRUE(resource.ok());
      // The last one is another user's: not counted against the first.
      uid_t uid = i + 1 == outcomes.size() ? 65533 : 65534;
      set.get_or_bind_async(
          *resource, SocketSet::BindAs{uid, uid}, [&, i](auto e) { outcomes[i] = e; }, Millis(200));
    }
    g_stall_children = false;
    EXPECT_EQ(set.binds_pending(), kMaxPendingBindsPerUid + 1);
    // The ninth of uid 65534 waits, unanswered, until one of the first eight has ended.
    EXPECT_EQ(set.binds_queued(), 1u);
    const Outcome& ninth = outcomes[kMaxPendingBindsPerUid];
    EXPECT_FALSE(ninth.has_value());
    run_until(&l.loop, outcomes.back(), std::chrono::seconds(5));
    run_until(&l.loop, ninth, std::chrono::seconds(5));
    ASSERT_TRUE(ninth.has_value());
    for (size_t i = 0; i < kMaxPendingBindsPerUid; ++i) EXPECT_TRUE(outcomes[i].has_value()) << i;
    // Its child was not stalled: it bound (as root) or says why it could not, not "under way".
    if (!ninth->ok()) {
      EXPECT_EQ(ninth->status().message().find("under way"), std::string::npos)
          << ninth->status().message();
    }
    if (::geteuid() == 0) {
      EXPECT_TRUE(ninth->ok()) << ninth->status().message();
    }
    EXPECT_EQ(set.binds_pending(), 0u);
    EXPECT_EQ(set.binds_queued(), 0u);
  }
}

TEST(SocketSet, ABindAsAnotherUserComesBackBoundAsThatUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to bind as another user";
  SharedDir dir;
  std::string path = dir.path() + "/theirs.sock";
  auto resource = protocol::parse_resource("unix:" + path);
  ASSERT_TRUE(resource.ok());
  Loop l;
  {
    SocketSet set(&l.loop);
    Outcome got;
    set.get_or_bind_async(*resource, SocketSet::BindAs{65534, 65534}, [&](auto e) { got = e; });
    run_until(&l.loop, got, std::chrono::seconds(5));
    ASSERT_TRUE(got.has_value());
    ASSERT_TRUE(got->ok()) << got->status().message();
    EXPECT_EQ((**got)->owner, 65534u);
    EXPECT_EQ((**got)->address, "unix:" + path);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_uid, 65534u);  // bound by that user, not by root
    // Bound now: a further request is answered at once, with the same socket.
    Outcome again;
    set.get_or_bind_async(*resource, SocketSet::BindAs{65534, 65534}, [&](auto e) { again = e; });
    ASSERT_TRUE(again.has_value());
    ASSERT_TRUE(again->ok());
    EXPECT_EQ(**again, **got);
    // A directory that user may not write: the error comes back the same way.
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    auto refused = protocol::parse_resource("unix:" + dir.path() + "/not-theirs.sock");
    Outcome denied;
    set.get_or_bind_async(*refused, SocketSet::BindAs{65534, 65534}, [&](auto e) { denied = e; });
    run_until(&l.loop, denied, std::chrono::seconds(5));
    ASSERT_TRUE(denied.has_value());
    ASSERT_FALSE(denied->ok());
    EXPECT_NE(denied->status().message().find("Permission denied"), std::string::npos)
        << denied->status().message();
  }
}

// Another user's bind of the same name under way is not joined: its outcome (here a stalled
// child's timeout; a socket bound as them, or their "Permission denied") is not this user's.
// This one asks again once it is over, and binds as itself.
TEST(SocketSet, AnotherUsersBindOfTheSameNameIsNotJoined) {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, stall_if_asked) == 0;
  ASSERT_TRUE(registered);
  SharedDir dir;
  auto resource = protocol::parse_resource("unix:" + dir.path() + "/contended.sock");
  ASSERT_TRUE(resource.ok());
  Loop l;
  {
    SocketSet set(&l.loop);
    Outcome first, second;
    g_stall_children = true;
    set.get_or_bind_async(
        *resource, SocketSet::BindAs{65534, 65534}, [&](auto e) { first = e; }, Millis(200));
    g_stall_children = false;
    set.get_or_bind_async(
        *resource, SocketSet::BindAs{65533, 65533}, [&](auto e) { second = e; }, Millis(2000));
    run_until(&l.loop, second, std::chrono::seconds(5));
    ASSERT_TRUE(first.has_value());
    EXPECT_FALSE(first->ok());
    ASSERT_TRUE(second.has_value());
    if (!second->ok()) {
      EXPECT_EQ(second->status().message().find("no answer within"), std::string::npos)
          << "given the other user's outcome: " << second->status().message();
    }
    if (::geteuid() == 0) {
      ASSERT_TRUE(second->ok()) << second->status().message();
      EXPECT_EQ((**second)->owner, 65533u);
    }
    EXPECT_EQ(set.binds_pending(), 0u);
  }
}

// A queued bind whose socket was made meanwhile needs no child, and does not use up its
// user's turn: the binds queued behind it still start (they used to wait forever).
TEST(SocketSet, AQueuedBindAnsweredWithoutAChildPassesTheTurnOn) {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, stall_if_asked) == 0;
  ASSERT_TRUE(registered);
  SharedDir dir;
  Loop l;
  {
    SocketSet set(&l.loop);
    auto unix_resource = [&](const std::string& name) {
      return *protocol::parse_resource("unix:" + dir.path() + "/" + name);
    };
    std::vector<Outcome> stalled(kMaxPendingBindsPerUid);
    g_stall_children = true;
    for (size_t i = 0; i < stalled.size(); ++i)
      set.get_or_bind_async(
          unix_resource("stalled" + std::to_string(i)), SocketSet::BindAs{65534, 65534},
          [&, i](auto e) { stalled[i] = e; }, Millis(200));
    g_stall_children = false;
    // Queued: eight whose sockets the daemon's own user then binds, and one more behind them.
    std::vector<Outcome> made_meanwhile(kMaxPendingBindsPerUid);
    for (size_t i = 0; i < made_meanwhile.size(); ++i)
      set.get_or_bind_async(
          unix_resource("shared" + std::to_string(i)), SocketSet::BindAs{65534, 65534},
          [&, i](auto e) { made_meanwhile[i] = e; }, Millis(2000));
    Outcome last;
    set.get_or_bind_async(
        unix_resource("last"), SocketSet::BindAs{65534, 65534}, [&](auto e) { last = e; },
        Millis(2000));
    EXPECT_EQ(set.binds_queued(), kMaxPendingBindsPerUid + 1);
    for (size_t i = 0; i < made_meanwhile.size(); ++i) {
      Outcome own;
      set.get_or_bind_async(unix_resource("shared" + std::to_string(i)), std::nullopt,
                            [&](auto e) { own = e; });
      ASSERT_TRUE(own.has_value() && own->ok());
    }
    run_until(&l.loop, last, std::chrono::seconds(5));
    ASSERT_TRUE(last.has_value()) << "the bind queued behind them never started";
    for (const auto& o : made_meanwhile) EXPECT_TRUE(o.has_value() && o->ok());
    EXPECT_EQ(set.binds_queued(), 0u);
  }
}

}  // namespace
}  // namespace serverswap::daemon
