#include "protocol/message.h"

#include <gtest/gtest.h>

namespace serverswap::protocol {
namespace {

TEST(Message, FirstKeyNamesItAndExtraFieldsStay) {
  auto m = decode(R"({"resourceReady": ":8080", "address": "[::]:8080"})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->name, "resourceReady");
  EXPECT_EQ(m->body, ":8080");
  EXPECT_EQ(m->whole["address"], "[::]:8080");
}

TEST(Message, RejectsWhatIsNotAnObject) {
  EXPECT_EQ(decode("{nope").status().message(), "malformed JSON");
  EXPECT_EQ(decode("[1,2]").status().message(), "a message must be a JSON object");
  EXPECT_EQ(decode("{}").status().message(), "a message must have at least one key");
  EXPECT_FALSE(decode("").ok());
}

// A 64 KiB line of brackets once parsed into a value whose copy and dump recursed 32,000
// frames deep: a stack overflow under ASan.
TEST(Message, RejectsNestingDeeperThanTheLimit) {
  std::string deep = "{\"bogus\":" + std::string(30'000, '[') + std::string(30'000, ']') + "}";
  EXPECT_EQ(decode(deep).status().message(), "JSON nested deeper than 32 levels");
  std::string limit =
      "{\"a\":" + std::string(kMaxDepth - 1, '[') + std::string(kMaxDepth - 1, ']') + "}";
  EXPECT_TRUE(decode(limit).ok());
  // Brackets inside strings, escaped quotes included, are not nesting.
  std::string quoted = "{\"a\":\"\\\"" + std::string(100, '[') + "\"}";
  EXPECT_TRUE(decode(quoted).ok()) << decode(quoted).status().message();
}

TEST(Message, EncodeIsOneLineAndKeepsKeyOrder) {
  Json m = make("takeDown", ":8080");
  m["zeta"] = 1;
  m["alpha"] = "x\ny";
  std::string line = encode(m);
  EXPECT_EQ(line, "{\"takeDown\":\":8080\",\"zeta\":1,\"alpha\":\"x\\ny\"}\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(Message, EncodeSurvivesInvalidUtf8) {
  std::string line = encode(make("fail", std::string("bad \xff byte")));
  EXPECT_EQ(line.back(), '\n');
  EXPECT_TRUE(decode(line.substr(0, line.size() - 1)).ok());
}

TEST(Message, ErrorReplyQuotesTheRequest) {
  Json request = make("readyFor", 5);
  Json reply = error_reply("readyFor takes a string", request);
  EXPECT_EQ(encode(reply),
            "{\"error\":\"readyFor takes a string\",\"request\":{\"readyFor\":5}}\n");
  EXPECT_FALSE(error_reply("x").contains("request"));
}

}  // namespace
}  // namespace serverswap::protocol
