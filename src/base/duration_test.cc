#include "base/duration.h"

#include <gtest/gtest.h>

namespace serverswap {
namespace {

TEST(ParseDuration, AcceptsUnits) {
  EXPECT_EQ(parse_duration("30").value(), Millis(30'000));
  EXPECT_EQ(parse_duration("1.5s").value(), Millis(1'500));
  EXPECT_EQ(parse_duration("250ms").value(), Millis(250));
  EXPECT_EQ(parse_duration("2m").value(), Millis(120'000));
  EXPECT_EQ(parse_duration("0").value(), Millis(0));
}

TEST(ParseDuration, RejectsGarbageWithTheInput) {
  for (const char* bad : {"", "s", "-1", "10h", "1e400", "abc", "5 s"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos);
  }
}

TEST(FormatDuration, RoundTrips) {
  EXPECT_EQ(format_duration(Millis(250)), "250ms");
  EXPECT_EQ(format_duration(Millis(1500)), "1.5s");
  EXPECT_EQ(format_duration(Millis(30000)), "30s");
}

}  // namespace
}  // namespace serverswap
