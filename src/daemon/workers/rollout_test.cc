#include "daemon/workers/rollout.h"

#include <gtest/gtest.h>

namespace serverswap::daemon {
namespace {

using Indices = std::vector<int>;

TEST(RolloutPlan, FirstDeployStartsEveryWorkerAtOnce) {
  RolloutPlan plan({4, 1, 1}, /*replacing=*/false);
  EXPECT_EQ(plan.starts(0), (Indices{0, 1, 2, 3}));
  EXPECT_EQ(plan.starts(4), Indices{});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(plan.up(i), Indices{});
  EXPECT_FALSE(plan.all_up());
  EXPECT_EQ(plan.up(3), (Indices{0, 1, 2, 3}));
  EXPECT_TRUE(plan.all_up());
}

TEST(RolloutPlan, BatchOfOneRollsWorkerByWorkerWithinTheSurge) {
  RolloutPlan plan({4, 1, 1}, true);
  EXPECT_EQ(plan.starts(4), Indices{0});
  EXPECT_EQ(plan.starts(5), Indices{});  // worker 0 is not up yet
  EXPECT_EQ(plan.up(0), Indices{0});     // old worker 0 goes down now
  EXPECT_EQ(plan.starts(5), Indices{});  // old worker 0 is still draining: no room
  EXPECT_EQ(plan.starts(4), Indices{1});
  EXPECT_EQ(plan.up(1), Indices{1});
  EXPECT_EQ(plan.starts(4), Indices{2});
  EXPECT_EQ(plan.up(2), Indices{2});
  EXPECT_EQ(plan.starts(4), Indices{3});
  EXPECT_EQ(plan.up(3), Indices{3});
  EXPECT_TRUE(plan.all_up());
  EXPECT_EQ(plan.starts(4), Indices{});
  EXPECT_EQ(plan.batch_of(3), 4);
  EXPECT_EQ(plan.batches(), 4);
}

TEST(RolloutPlan, OldCopiesOfABatchGoDownWhenTheWholeBatchIsUp) {
  RolloutPlan plan({5, 2, 2}, true);
  EXPECT_EQ(plan.starts(5), (Indices{0, 1}));
  EXPECT_EQ(plan.up(1), Indices{});
  EXPECT_EQ(plan.starts(7), Indices{});  // batch 1 waits for batch 0
  EXPECT_EQ(plan.up(0), (Indices{0, 1}));
  EXPECT_EQ(plan.starts(6), Indices{2});  // one old copy has exited so far
  EXPECT_EQ(plan.starts(6), Indices{3});
  EXPECT_EQ(plan.up(2), Indices{});
  EXPECT_EQ(plan.up(3), (Indices{2, 3}));
  EXPECT_EQ(plan.starts(5), Indices{4});  // the last batch is one worker
  EXPECT_EQ(plan.batch_of(4), 3);
  EXPECT_EQ(plan.batches(), 3);
  EXPECT_EQ(plan.up(4), Indices{4});
  EXPECT_TRUE(plan.all_up());
}

TEST(RolloutPlan, ABatchLargerThanTheSurgeShrinksToIt) {
  RolloutPlan plan({4, 3, 1}, true);
  EXPECT_EQ(plan.starts(4), Indices{0});
  EXPECT_EQ(plan.up(0), Indices{0});
  EXPECT_EQ(plan.batches(), 4);
}

TEST(RolloutPlan, GrowingFromFewerOldServersUsesTheRoom) {
  RolloutPlan plan({4, 1, 2}, true);
  EXPECT_EQ(plan.starts(1), Indices{0});
  EXPECT_EQ(plan.up(0), Indices{0});
  EXPECT_EQ(plan.starts(1), Indices{1});
}

TEST(RolloutLimits, SaysWhichOptionIsOutOfRange) {
  EXPECT_EQ(rollout_limits_error({4, 1, 1}), "");
  EXPECT_EQ(rollout_limits_error({0, 1, 1}), "--workers must be 1 to 1024");
  EXPECT_EQ(rollout_limits_error({2, 0, 1}), "--batch must be at least 1");
  EXPECT_EQ(rollout_limits_error({2, 1, 0}), "--max-surge must be at least 1");
}

}  // namespace
}  // namespace serverswap::daemon
