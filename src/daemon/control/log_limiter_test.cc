#include "daemon/control/log_limiter.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/control/control_server.h"
#include "observe/counters.h"

namespace serverswap::daemon {
namespace {

class LogLimiterTest : public ::testing::Test {
 protected:
  LogLimiterTest() { uv_loop_init(&loop_); }
  ~LogLimiterTest() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  uv_loop_t loop_;
};

TEST_F(LogLimiterTest, ABurstPerSourceThenSuppressedAndCounted) {
  uint64_t suppressed_before = observe::counted(observe::Refused::kSuppressedLogLine);
  LogLimiter limiter(&loop_, "test lines", /*lines_per_second=*/1, /*burst=*/3);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += limiter.admit("uid 1") ? 1 : 0;
  EXPECT_EQ(admitted, 3);  // the loop's clock does not move in between
  // Another source has a bucket of its own.
  EXPECT_TRUE(limiter.admit("uid 2"));
  EXPECT_EQ(observe::counted(observe::Refused::kSuppressedLogLine) - suppressed_before, 97u);
}

TEST_F(LogLimiterTest, SourcesBeyondTheCapShareOneBucket) {
  LogLimiter limiter(&loop_, "test lines", 1, 1);
  for (size_t i = 0; i < LogLimiter::kMaxSources; ++i)
    EXPECT_TRUE(limiter.admit("uid " + std::to_string(i)));
  EXPECT_TRUE(limiter.admit("uid 100000"));   // the first of the rest
  EXPECT_FALSE(limiter.admit("uid 100001"));  // shares its bucket
}

// A clock that moves when the test says; its alarms never fire (summaries are not tested
// here).
class SteppedClock : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::unique_ptr<Alarm> alarm() override { return std::make_unique<Silent>(); }
  void advance(Millis by) { now_ += by; }

 private:
  struct Silent : Alarm {
    void start(Millis, std::function<void()>) override {}
    void stop() override {}
  };
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

// Sources come and go (servers, uids): once the cap's worth have gone quiet, a new one gets a
// bucket of its own again instead of sharing "other sources" for the daemon's lifetime.
TEST(LogLimiterSources, QuietSourcesAreForgottenSoNewOnesGetTheirOwnBucket) {
  SteppedClock clock;
  LogLimiter limiter(clock, "test lines", /*lines_per_second=*/1, /*burst=*/1);
  for (size_t i = 0; i < LogLimiter::kMaxSources; ++i)
    EXPECT_TRUE(limiter.admit("server " + std::to_string(i)));
  EXPECT_FALSE(limiter.admit("server 0"));  // its line is suppressed: it is remembered
  clock.advance(Millis(2000));
  EXPECT_TRUE(limiter.admit("server 100"));
  EXPECT_TRUE(limiter.admit("server 101"));  // not sharing server 100's bucket
  EXPECT_FALSE(limiter.admit("server 101"));
}

TEST(ConnectionCapsTest, FollowTheFdLimit) {
  ConnectionCaps at_1024 = caps_for_fd_limit(1024);
  EXPECT_EQ(at_1024.total, 512u);
  EXPECT_EQ(at_1024.others, 448u);
  EXPECT_EQ(at_1024.per_uid, 64u);
  EXPECT_EQ(at_1024.pending_fds, 256u);
  ConnectionCaps high = caps_for_fd_limit(1 << 20);
  EXPECT_EQ(high.total, kMaxConnections);
  EXPECT_EQ(high.pending_fds, kMaxPendingFds);
  // A daemon with few fds keeps a reserve for its own user and fits the rest.
  ConnectionCaps low = caps_for_fd_limit(400);
  EXPECT_EQ(low.total, 96u);
  EXPECT_EQ(low.others, 48u);
  EXPECT_EQ(low.per_uid, 48u);
  EXPECT_EQ(low.pending_fds, 48u);
  EXPECT_GT(caps_for_fd_limit(0).total, 0u);
}

TEST(ConnectionCapsTest, RaiseFdLimitReachesTheHardLimit) {
  rlimit limit{};
  uint64_t soft = raise_fd_limit();
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, limit.rlim_max);
  EXPECT_EQ(soft, limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : limit.rlim_cur);
}

}  // namespace
}  // namespace serverswap::daemon
