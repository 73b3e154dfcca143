#include "protocol/line_framer.h"

#include <gtest/gtest.h>

namespace serverswap::protocol {
namespace {

TEST(LineFramer, JoinsLinesSplitAcrossReads) {
  LineFramer f;
  f.append("{\"a\":");
  EXPECT_FALSE(f.next_line());
  f.append("1}\n{\"b\":2}\n{\"c\"");
  EXPECT_EQ(*f.next_line(), "{\"a\":1}");
  EXPECT_EQ(*f.next_line(), "{\"b\":2}");
  EXPECT_FALSE(f.next_line());
  f.append(":3}\n");
  EXPECT_EQ(*f.next_line(), "{\"c\":3}");
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(LineFramer, AcceptsALineOfExactlyTheMaximum) {
  LineFramer f;
  f.append(std::string(kMaxLine - 1, 'x') + "\n");
  auto line = f.next_line();
  ASSERT_TRUE(line);
  EXPECT_EQ(line->size(), kMaxLine - 1);
  EXPECT_FALSE(f.overflowed());
}

TEST(LineFramer, RejectsAnOverlongLineWithOrWithoutItsNewline) {
  LineFramer complete;
  complete.append(std::string(kMaxLine, 'x') + "\n");
  EXPECT_FALSE(complete.next_line());
  EXPECT_TRUE(complete.overflowed());

  LineFramer partial;
  for (int i = 0; i < 20; ++i) partial.append(std::string(kMaxLine / 8, 'y'));
  EXPECT_FALSE(partial.next_line());
  EXPECT_TRUE(partial.overflowed());
}

TEST(LineFramer, ByteAtATime) {
  LineFramer f;
  std::string input = "one\ntwo\n";
  std::vector<std::string> lines;
  for (char c : input) {
    f.append(std::string_view(&c, 1));
    while (auto l = f.next_line()) lines.push_back(*l);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
}

TEST(LineFramer, StopsBufferingOnceOverflowed) {
  LineFramer f(/*max_line=*/8);
  f.append("0123456789");
  EXPECT_FALSE(f.next_line());
  EXPECT_TRUE(f.overflowed());
  f.append(std::string(1000, 'y') + "\n");
  EXPECT_FALSE(f.next_line());
  EXPECT_LE(f.buffered(), 10u);
}

}  // namespace
}  // namespace serverswap::protocol
