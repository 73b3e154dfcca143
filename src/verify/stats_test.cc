#include "verify/stats.h"

#include <gtest/gtest.h>

namespace serverswap::verify {
namespace {

using std::chrono::milliseconds;

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.percentile(0.5), 0u);
  EXPECT_EQ(histogram.max(), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (uint64_t v = 1; v <= 100; ++v) histogram.record(v);
  EXPECT_EQ(histogram.percentile(0.50), 50u);
  EXPECT_EQ(histogram.percentile(0.99), 99u);
  EXPECT_EQ(histogram.percentile(1.0), 100u);
  EXPECT_EQ(histogram.max(), 100u);
}

TEST(LatencyHistogramTest, LargeValuesWithinTwoPercent) {
  LatencyHistogram histogram;
  for (uint64_t ms = 1; ms <= 1000; ++ms) histogram.record(ms * 1000);  // 1 ms .. 1 s
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.50)), 500000.0, 500000.0 * 0.02);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.99)), 990000.0, 990000.0 * 0.02);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.999)), 999000.0, 999000.0 * 0.02);
  EXPECT_EQ(histogram.max(), 1000000u);
  EXPECT_LE(histogram.percentile(0.999), histogram.max());
}

TEST(LatencyHistogramTest, TailOutlierShowsInHighPercentiles) {
  LatencyHistogram histogram;
  for (int i = 0; i < 998; ++i) histogram.record(200);
  histogram.record(5000000);  // one 5 s straggler
  histogram.record(5000000);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.5)), 200.0, 4.0);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.99)), 200.0, 4.0);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.999)), 5000000.0, 100000.0);
  EXPECT_EQ(histogram.max(), 5000000u);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.record(10);
  b.record(20);
  b.record(1000000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 1000000u);
  EXPECT_EQ(a.percentile(0.5), 20u);
}

TEST(LatencyHistogramTest, HugeValuesDoNotOverflow) {
  LatencyHistogram histogram;
  histogram.record(UINT64_MAX);
  histogram.record(0);
  EXPECT_EQ(histogram.percentile(1.0), UINT64_MAX);
  EXPECT_EQ(histogram.percentile(0.5), 0u);
}

Timeline timeline_with_ok_in(std::initializer_list<std::pair<int, int>> ranges, int buckets) {
  Timeline timeline;
  for (auto [first, last] : ranges) {
    for (int b = first; b <= last; ++b) timeline.record(milliseconds(b * 10 + 5), true);
  }
  timeline.cover(milliseconds(buckets * 10));
  return timeline;
}

TEST(TimelineTest, BucketsByTenMilliseconds) {
  Timeline timeline;
  timeline.record(milliseconds(0), true);
  timeline.record(milliseconds(9), true);
  timeline.record(milliseconds(10), false);
  timeline.record(milliseconds(35), true);
  ASSERT_EQ(timeline.size(), 4u);
  EXPECT_EQ(timeline.ok()[0], 2u);
  EXPECT_EQ(timeline.failed()[1], 1u);
  EXPECT_EQ(timeline.ok()[3], 1u);
}

TEST(TimelineTest, CoverRoundsUpAndKeepsLateRecords) {
  Timeline timeline;
  timeline.cover(milliseconds(101));
  EXPECT_EQ(timeline.size(), 11u);
  timeline.record(milliseconds(200), true);
  timeline.cover(milliseconds(100));
  EXPECT_EQ(timeline.size(), 21u);
}

TEST(OutageTest, GapInTheMiddle) {
  // ok in 0..9, nothing in 10..29, ok in 30..39: a 200 ms outage.
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({{0, 9}, {30, 39}}, 40)), 200u);
}

TEST(OutageTest, SilentTailCountsToTheEndOfTheRun) {
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({{0, 9}}, 50)), 400u);
}

TEST(OutageTest, SlowStartCounts) {
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({{3, 9}}, 10)), 30u);
}

TEST(OutageTest, LongestOfSeveral) {
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({{0, 0}, {3, 3}, {8, 8}, {10, 10}}, 11)), 40u);
}

TEST(OutageTest, NoOutageAndNoSuccess) {
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({{0, 19}}, 20)), 0u);
  EXPECT_EQ(longest_outage_ms(timeline_with_ok_in({}, 20)), 200u);
}

}  // namespace
}  // namespace serverswap::verify
