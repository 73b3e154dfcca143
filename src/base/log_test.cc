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

// What a --user server sent in {"fail": ...} and STATUS=: line separators, NEL and other C1
// controls, bidi overrides and bytes that are not UTF-8 reach the text log escaped.
TEST_F(LogTest, TextLineEscapesC1LineSeparatorsBidiAndInvalidUtf8) {
  auto printable = [](std::string_view text) {
    std::string out;
    append_printable(out, text);
    return out;
  };
  EXPECT_EQ(printable("a\u2028b\u2029c\u0085d\u009be\u0080"),
            "a\\u{2028}b\\u{2029}c\\u{0085}d\\u{009b}e\\u{0080}");
  EXPECT_EQ(printable("\u202eevil\u2066x\u2069"), "\\u{202e}evil\\u{2066}x\\u{2069}");
  EXPECT_EQ(printable("\u200ea\u200fb\u061cc\ufeff"), "\\u{200e}a\\u{200f}b\\u{061c}c\\u{feff}");
  // Every Default_Ignorable_Code_Point shows, at the ends of its ranges, and the format
  // controls beyond it; the characters next to them pass.
  EXPECT_EQ(printable("soft\u00adhyphen zero\u200bwidth join\u200d wj\u2060 \u2064"),
            "soft\\u{00ad}hyphen zero\\u{200b}width join\\u{200d} wj\\u{2060} \\u{2064}");
  EXPECT_EQ(printable("\u034f\u115f\u1160\u17b4\u180b\u180f\u3164\ufe00\ufe0f\uffa0"),
            "\\u{034f}\\u{115f}\\u{1160}\\u{17b4}\\u{180b}\\u{180f}\\u{3164}\\u{fe00}\\u{fe0f}"
            "\\u{ffa0}");
  EXPECT_EQ(printable("\ufff0\ufff9\ufffb\U00013430\U0001bca3\U0001d173\U000e0001\U000e0fff"),
            "\\u{fff0}\\u{fff9}\\u{fffb}\\u{13430}\\u{1bca3}\\u{1d173}\\u{e0001}"
            "\\u{e0fff}");
  EXPECT_EQ(printable("\u00ac\u00ae\u2027\u2070\ufffc\ufffd\U0001f600"),
            "\u00ac\u00ae\u2027\u2070\ufffc\ufffd\U0001f600");
  // Invalid bytes one by one: a lone continuation byte, a truncated sequence, an overlong
  // form, a surrogate, beyond U+10FFFF, and 0xff.
  EXPECT_EQ(printable("\x85\xff"), "\\x85\\xff");
  EXPECT_EQ(printable("caf\xe9!"), "caf\\xe9!");
  EXPECT_EQ(printable("\xe2\x80"), "\\xe2\\x80");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
  // Well-formed text passes as it is, from two to four bytes.
  EXPECT_EQ(printable("caf\u00e9 \u2192 \u00a0 \U0001F600 \u2027\u202f"),
            "caf\u00e9 \u2192 \u00a0 \U0001F600 \u2027\u202f");
  std::string line = format_log_line("sent fail: \u2028forged\xff", nullptr);
  EXPECT_TRUE(line.ends_with(": sent fail: \\u{2028}forged\\xff\n")) << line;
}

TEST_F(LogTest, PeerTextIsClippedAtACharacterBoundary) {
  EXPECT_EQ(clip_for_log("short"), "short");
  EXPECT_EQ(clip_for_log(std::string(512, 'a')), std::string(512, 'a'));
  EXPECT_EQ(clip_for_log(std::string(65536, 'a')), std::string(512, 'a') + "\u2026(65536 bytes)");
  // "é" is 2 bytes: cut after 4 bytes, "aaé" would split it; the whole "é" goes.
  EXPECT_EQ(clip_for_log("aaa\u00e9bbb", 4), "aaa\u2026(8 bytes)");
  EXPECT_EQ(clip_for_log("aa\u00e9bbb", 4), "aa\u00e9\u2026(7 bytes)");
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

TEST_F(LogTest, JsonLineWritesEverythingBeyondAsciiEscaped) {
  set_log_format(LogFormat::kJson);
  std::string line = format_log_line("a\u2028b\u0085c\u202e\u00e9", nullptr);
  for (char c : line) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << line;
  EXPECT_EQ(nlohmann::json::parse(line)["msg"], "a\u2028b\u0085c\u202e\u00e9");
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
