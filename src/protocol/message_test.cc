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
