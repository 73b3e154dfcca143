#include "daemon/control/accept_throttle.h"

#include <gtest/gtest.h>

namespace serverswap::daemon {
namespace {

// How many of `tries` connections at `now_ms` are served at once.
int served(AcceptThrottle& throttle, uint64_t now_ms, int tries) {
  int count = 0;
  for (int i = 0; i < tries; ++i) count += throttle.admit(now_ms) == 0;
  return count;
}

TEST(AcceptThrottle, ServesABurstThenAsksForAPause) {
  AcceptThrottle throttle;
  EXPECT_EQ(served(throttle, 1000, 64), 64);
  EXPECT_EQ(throttle.admit(1000), AcceptThrottle::kFirstPauseMs);
  // After the pause, the rate: 100/s is 5 in 50 ms.
  EXPECT_EQ(served(throttle, 1050, 5), 5);
  EXPECT_GT(throttle.admit(1050), 0u);
}

TEST(AcceptThrottle, PausesGrowWhileTheFloodGoesOnUpToTheMaximum) {
  AcceptThrottle throttle;
  uint64_t now = 0;
  served(throttle, now, 64);
  uint64_t pause = throttle.admit(now);
  EXPECT_EQ(pause, AcceptThrottle::kFirstPauseMs);
  for (int i = 0; i < 10; ++i) {
    now += pause;
    served(throttle, now, 1000);  // the flood takes whatever came back, then is paused again
    uint64_t next = throttle.admit(now);
    EXPECT_EQ(next, std::min(AcceptThrottle::kMaxPauseMs, pause * 2));
    pause = next;
  }
  EXPECT_EQ(pause, AcceptThrottle::kMaxPauseMs);
}

TEST(AcceptThrottle, AQuietSourceStartsAgainAtTheFirstPause) {
  AcceptThrottle throttle;
  served(throttle, 0, 64);
  throttle.admit(0);
  served(throttle, 50, 1000);
  EXPECT_EQ(throttle.admit(50), 2 * AcceptThrottle::kFirstPauseMs);
  uint64_t later = 50 + 2 * AcceptThrottle::kFirstPauseMs + AcceptThrottle::kCalmMs;
  EXPECT_EQ(served(throttle, later, 64), 64);
  EXPECT_EQ(throttle.admit(later), AcceptThrottle::kFirstPauseMs);
}

TEST(AcceptThrottle, KeepingToTheRateIsNeverPaused) {
  AcceptThrottle throttle;
  for (uint64_t ms = 0; ms < 60'000; ms += 20) EXPECT_EQ(throttle.admit(ms), 0u) << ms;
}

}  // namespace
}  // namespace serverswap::daemon
