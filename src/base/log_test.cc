#include "base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace serverswap {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { set_log_format(LogFormat::kText); }
};

TEST_F(LogTest, TextLineHasTimePidAndText) {
  std::string line = format_log_line("server 7 (gen 2): is up", {{"kind", "up"}});
  EXPECT_NE(line.find(" serverswap[" + std::to_string(getpid()) + "]: server 7 (gen 2): is up\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("kind"), std::string::npos);
}

// A server's fail reason "x\n<time> serverswap[1]: forged" once made a second log line.
TEST_F(LogTest, TextLineEscapesNewlinesAndControlCharacters) {
  std::string line = format_log_line("sent fail: x\nforged\r\x1b[31m\ttab\x7f end", nullptr);
  EXPECT_TRUE(line.ends_with(": sent fail: x\\nforged\\x0d\\x1b[31m\ttab\\x7f end\n")) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST_F(LogTest, JsonLineCarriesTheFields) {
  set_log_format(LogFormat::kJson);
  std::string line = format_log_line("is up", {{"kind", "up"}, {"deploy", "d3"}, {"msg", "no"}});
  ASSERT_TRUE(line.ends_with("\n"));
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["msg"], "is up");  // a field never overrides the message
  EXPECT_EQ(parsed["kind"], "up");
  EXPECT_EQ(parsed["deploy"], "d3");
  EXPECT_EQ(parsed["pid"], getpid());
  EXPECT_TRUE(parsed["time"].get<std::string>().ends_with("Z"));
}

TEST_F(LogTest, JsonLineSurvivesInvalidUtf8) {
  set_log_format(LogFormat::kJson);
  std::string line = format_log_line("bad \xff byte", nullptr);
  EXPECT_NO_THROW(auto parsed = nlohmann::json::parse(line));
}

TEST_F(LogTest, ParsesFormatNames) {
  LogFormat f;
  EXPECT_TRUE(parse_log_format("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_TRUE(parse_log_format("text", &f));
  EXPECT_EQ(f, LogFormat::kText);
  EXPECT_FALSE(parse_log_format("xml", &f));
}

}  // namespace
}  // namespace serverswap
