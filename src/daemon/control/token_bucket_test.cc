#include "daemon/control/token_bucket.h"

#include <gtest/gtest.h>

namespace serverswap::daemon {
namespace {

int taken(TokenBucket& bucket, uint64_t now_ms, int tries) {
  int count = 0;
  for (int i = 0; i < tries; ++i) count += bucket.take(now_ms);
  return count;
}

TEST(TokenBucket, AdmitsABurstThenTheRate) {
  TokenBucket bucket(/*rate_per_second=*/100, /*burst=*/200);
  EXPECT_EQ(taken(bucket, 5000, 1000), 200);
  EXPECT_EQ(taken(bucket, 5000, 10), 0);
  EXPECT_EQ(taken(bucket, 5100, 1000), 10);  // 100 ms at 100/s
  EXPECT_EQ(taken(bucket, 6100, 1000), 100);
}

TEST(TokenBucket, IsFullOnlyOnceRefilled) {
  TokenBucket bucket(/*rate_per_second=*/10, /*burst=*/2);
  EXPECT_TRUE(bucket.full(0));  // untouched
  EXPECT_TRUE(bucket.take(1000));
  EXPECT_FALSE(bucket.full(1000));
  EXPECT_FALSE(bucket.full(1050));  // half a token back
  EXPECT_TRUE(bucket.full(1100));
}

TEST(TokenBucket, NeverHoldsMoreThanTheBurst) {
  TokenBucket bucket(100, 20);
  EXPECT_TRUE(bucket.take(0));
  EXPECT_EQ(taken(bucket, 3'600'000, 1000), 20);
}

TEST(TokenBucket, ToleratesAClockThatGoesBack) {
  TokenBucket bucket(10, 2);
  EXPECT_EQ(taken(bucket, 1000, 5), 2);
  EXPECT_EQ(taken(bucket, 500, 5), 0);
  EXPECT_EQ(taken(bucket, 1100, 5), 1);
}

}  // namespace
}  // namespace serverswap::daemon
