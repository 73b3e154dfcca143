// Text a server chose reaches the deploying user's terminal only escaped, as the log writes
// it (docs/security.md, "drive the terminal of whoever deploys"): its STATUS=, its fail reason and
// the Unix socket path it asked for carry terminal escapes, a carriage return, a newline, a C1
// control and a bidi override, and neither a deploy nor `status` prints any of them raw.
// About 2 s.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"
#include "unmodified.h"

namespace serverswap::testing {
namespace {

// OSC 0 (the terminal's title), clear screen, a colour, U+202E (right-to-left override),
// U+009B (the C1 CSI) and a carriage return.
const std::string kEvil =
    "\x1b]0;TITLE\x07\x1b[2J\x1b[31mRED\x1b[0m \xe2\x80\xaeREVERSED\xe2\x80\xac \xc2\x9b"
    "31m C1 \rCR";

// What may never reach a terminal raw from a peer; the name of the first one in `out`.
std::string raw_control_in(const std::string& out) {
  for (char c : out) {
    auto byte = static_cast<unsigned char>(c);
    if (byte == 0x1b) return "ESC";
    if (byte == '\r') return "CR";
    if (byte == 0x07) return "BEL";
  }
  if (out.find("\xe2\x80\xae") != std::string::npos) return "U+202E";
  if (out.find("\xc2\x9b") != std::string::npos) return "U+009B";
  return "";
}

TEST(CliEscapes, AServersStatusAndFailReasonReachTheDeployEscaped) {
  DaemonUnderTest daemon;
  auto up = serverswap(daemon, {"--listen", "127.0.0.1:0", "--", FAULT_SERVER_BIN, "say", kEvil});
  ASSERT_EQ(up.code, 0) << up.output;
  EXPECT_EQ(raw_control_in(up.output), "") << up.output;
  EXPECT_TRUE(contains(up.output,
                       "STATUS=\\x1b]0;TITLE\\x07\\x1b[2J\\x1b[31mRED\\x1b[0m "
                       "\\u{202e}REVERSED\\u{202c} \\u{009b}31m C1 \\x0dCR"))
      << up.output;

  // A newline in a reason must not start a line of its own in the deploy's output.
  auto failed = serverswap(daemon, {"--ready-timeout", "5s", "--", FAULT_SERVER_BIN, "fail-with",
                                    kEvil + "\r\nFORGED line"});
  EXPECT_EQ(failed.code, 1) << failed.output;
  EXPECT_EQ(raw_control_in(failed.output), "") << failed.output;
  EXPECT_TRUE(contains(failed.output, "\\x0dCR\\x0d\\nFORGED line")) << failed.output;
  EXPECT_FALSE(contains(failed.output, "\nFORGED")) << failed.output;
}

TEST(CliEscapes, AUnixSocketPathAServerAskedForCannotForgeAStatusRow) {
  DaemonUnderTest daemon;
  // Any byte but NUL may name a file: this one has a newline and a whole forged row.
  const std::string path =
      daemon.dir() + "/a\x1b[31m\xe2\x80\xae\n4242     1    -      up  9d 0 :443 sshd";
  auto deploy = serverswap(daemon, {FAULT_SERVER_BIN, "claim", "unix:" + path});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  EXPECT_EQ(raw_control_in(deploy.output), "") << deploy.output;

  auto table = serverswap(daemon, {"status"});
  ASSERT_EQ(table.code, 0) << table.output;
  EXPECT_EQ(raw_control_in(table.output), "") << table.output;
  EXPECT_FALSE(contains(table.output, "\n4242 ")) << table.output;
  EXPECT_TRUE(contains(table.output, "/a\\x1b[31m\\u{202e}\\n4242 ")) << table.output;

  // JSON stays JSON, and ASCII: every control and every character beyond is a \u escape.
  auto json = serverswap(daemon, {"status", "--json"});
  ASSERT_EQ(json.code, 0) << json.output;
  for (char c : json.output) {
    auto byte = static_cast<unsigned char>(c);
    ASSERT_TRUE(byte == '\n' || (byte >= 0x20 && byte < 0x7f))
        << "byte " << int(byte) << " in " << json.output;
  }
  auto parsed = nlohmann::json::parse(json.output);
  std::string address = parsed["servers"][0]["resources"][0]["address"];
  EXPECT_EQ(address, "unix:" + path);
}

}  // namespace
}  // namespace serverswap::testing
