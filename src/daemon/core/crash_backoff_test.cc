#include "daemon/core/crash_backoff.h"

#include <gtest/gtest.h>

namespace serverswap::daemon {
namespace {

using namespace std::chrono_literals;

TEST(CrashBackoff, DoublesFromTheFirstDelayUpToTheCap) {
  CrashBackoff backoff(Millis(100), Millis(1000));
  auto now = CrashBackoff::Clock::time_point{};
  std::vector<long long> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(backoff.crashed(now).count());
  EXPECT_EQ(delays, (std::vector<long long>{100, 200, 400, 800, 1000, 1000, 1000}));
  EXPECT_EQ(backoff.crashes(), 7);
}

TEST(CrashBackoff, ACapBelowTheFirstDelayWins) {
  CrashBackoff backoff(Millis(500), Millis(200));
  EXPECT_EQ(backoff.crashed({}).count(), 200);
  EXPECT_EQ(backoff.crashed({}).count(), 200);
}

TEST(CrashBackoff, DescribesTheLoopForTheLog) {
  CrashBackoff backoff(Millis(100), Millis(30'000));
  auto start = CrashBackoff::Clock::time_point{} + 1h;
  EXPECT_EQ(backoff.describe(start, backoff.crashed(start)), "crashed once; next restart in 100ms");
  for (int i = 0; i < 3; ++i) backoff.crashed(start + 5s);
  auto now = start + 12s + 300ms;
  EXPECT_EQ(backoff.describe(now, backoff.crashed(now)),
            "crashed 5 times in 12s; next restart in 1.6s");
}

}  // namespace
}  // namespace serverswap::daemon
