#include "protocol/indented_body.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/message.h"

namespace serverswap::protocol {
namespace {

// What `status --json` printed before: the decoded message's body, dumped from its tree.
std::string tree_printed(const std::string& line) {
  auto message = decode(line);
  EXPECT_TRUE(message.ok()) << line;
  return message.ok() ? message->body.dump(2, ' ', true) : std::string();
}

void expect_same_as_tree(const std::string& line) {
  auto text = indented_body(line, "status");
  ASSERT_TRUE(text.has_value()) << line;
  EXPECT_EQ(*text, tree_printed(line)) << line;
}

TEST(IndentedBody, PrintsWhatTheTreesDumpPrinted) {
  expect_same_as_tree(
      R"({"status":{"daemon":{"pid":1,"resources":[],"stateFile":{"ok":true}},)"
      R"("servers":[{"argv":["a","b c"],"worker":null,"resources":[{"name":)"
      R"(":8080","takenDown":false}],"uptime_ms":12}],"crashLoops":[],"apps":[]}})");
  // Whitespace and number spellings the daemon never sends: printed as the tree printed them.
  expect_same_as_tree(
      " { \"status\" : [ 1.50 , -0 , 1E3 , 18446744073709551615 , -1e-7 , "
      "123456789012345678901234567890 , 0.1 , {} , [ ] ] } ");
  expect_same_as_tree(R"({"status":true})");
  expect_same_as_tree(R"({"status":"only a string"})");
  expect_same_as_tree(R"({"status":{}})");
  expect_same_as_tree(R"({"status":[[[]]]})");
}

// Only the first key's value is printed; the fields after it are checked, not printed.
TEST(IndentedBody, LaterTopLevelFieldsAreLeftOut) {
  expect_same_as_tree(R"({"status":{"a":1},"extra":{"b":[2]},"more":3})");
}

// Escapes and text beyond ASCII: \uXXXX in the output (a bidi control or line separator
// must not reach the terminal), as the tree's dump with ensure_ascii wrote them.
TEST(IndentedBody, NonAsciiAndEscapesAsTheTreePrintedThem) {
  expect_same_as_tree(
      "{\"status\":{\"caf\xc3\xa9\":\"\xe2\x80\xae rtl \xf0\x9f\x98\x80 "
      "\\u2028 \\ud83d\\ude00 \\t\\n\\u0000\\u007f \\/ \\\"\",\"\\u00e9\":1}}");
}

// The replacement character the daemon writes for bytes that are not UTF-8 comes out as
// the tree printed it, an escape.
TEST(IndentedBody, ReplacementCharacterEscaped) {
  std::string line = R"({"status":{"argv":[")" + std::string("\xef\xbf\xbd") + R"(x"]}})";
  expect_same_as_tree(line);
  EXPECT_NE(indented_body(line, "status")->find("\\ufffd"), std::string::npos);
}

// Lines decode() refuses, other messages and repeated keys are the caller's to decode.
TEST(IndentedBody, LeavesToDecodeWhatItWouldNotPrintTheSame) {
  for (std::string line :
       {std::string(R"({"error":"no","status":{}})"), std::string(R"({"stat":{}})"),
        std::string("{}"), std::string("[]"), std::string("5"), std::string(""),
        std::string("{nope"), std::string(R"({"status":{}} trailing)"),
        std::string(R"({"status":{"a":1,"a":2}})"), std::string(R"({"status":1,"status":2})"),
        std::string(R"({"status":[{"x":{"k":1,"k":1}}]})"), std::string("{\"status\":\"\xff\"}"),
        std::string(R"({"status":1e999})")})
    EXPECT_FALSE(indented_body(line, "status").has_value()) << line;
}

// A key repeated only across different objects is no repeat.
TEST(IndentedBody, SameKeyInSiblingObjectsIsFine) {
  expect_same_as_tree(R"({"status":[{"a":1,"b":{"a":2}},{"a":3,"b":[{"a":4}]}],"a":5})");
}

TEST(IndentedBody, DepthLimitAsDecodes) {
  std::string at_limit =
      "{\"status\":" + std::string(kMaxDepth - 1, '[') + std::string(kMaxDepth - 1, ']') + "}";
  expect_same_as_tree(at_limit);
  std::string over =
      "{\"status\":" + std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']') + "}";
  EXPECT_FALSE(decode(over).ok());
  EXPECT_FALSE(indented_body(over, "status").has_value());
}

}  // namespace
}  // namespace serverswap::protocol
