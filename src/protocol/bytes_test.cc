#include "protocol/bytes.h"

#include <gtest/gtest.h>

#include <random>

namespace serverswap::protocol {
namespace {

TEST(Utf8, AcceptsWellFormedAndRefusesEveryKindOfIllFormed) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9"));        // é
  EXPECT_TRUE(is_valid_utf8("\xe2\x82\xac"));       // €
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80"));   // U+1F600
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("caf\xe9"));           // Latin-1 é
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong, 3 bytes
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\x80"));      // a lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));  // truncated at the end
}

TEST(Utf8, AgreesWithWhatJsonDumpAccepts) {
  std::mt19937 random(42);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(1 + random() % 4, '\0');
    for (char& c : bytes) c = static_cast<char>(random() % 256);
    bool dumped = true;
    try {
      Json(bytes).dump();
    } catch (const Json::exception&) {
      dumped = false;
    }
    EXPECT_EQ(is_valid_utf8(bytes), dumped) << testing::PrintToString(bytes);
  }
}

TEST(Base64, EncodesTheRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("LEGACY=caf\xe9"), "TEVHQUNZPWNhZuk=");
}

TEST(Base64, DecodesWhatItEncodesForEveryByte) {
  std::mt19937 random(7);
  for (int length = 0; length < 40; ++length) {
    std::string bytes(static_cast<size_t>(length), '\0');
    for (char& c : bytes) c = static_cast<char>(random() % 256);
    auto back = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, bytes);
  }
}

TEST(Base64, RefusesWhatIsNotStrictStandardBase64) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v!A==", "Zm-v", "Zm_v",
                          "Zh==", "Zm9=", "=Zg=", "Zg==Zg==", "Zm 9v"}) {
    EXPECT_FALSE(base64_decode(bad).ok()) << bad;
  }
}

TEST(Bytes, Utf8GoesAsAStringAndOtherBytesAsBase64) {
  EXPECT_EQ(encode_bytes("caf\xc3\xa9"), Json("caf\xc3\xa9"));
  EXPECT_EQ(encode_bytes("caf\xe9"), (Json{{"base64", "Y2Fm6Q=="}}));
  EXPECT_EQ(*decode_bytes(encode_bytes("caf\xe9"), "x"), "caf\xe9");
  EXPECT_EQ(*decode_bytes(Json("plain"), "x"), "plain");
}

TEST(Bytes, DecodingNamesTheFieldForEveryWrongShape) {
  for (const Json& bad :
       {Json(5), Json(nullptr), Json::array(), Json{{"base64", 5}}, Json{{"b64", "Zg=="}},
        Json{{"base64", "Zg=="}, {"x", 1}}, Json{{"base64", "!!!!"}}}) {
    auto decoded = decode_bytes(bad, "deploy.cwd");
    ASSERT_FALSE(decoded.ok()) << bad.dump();
    EXPECT_EQ(decoded.status().message().rfind("deploy.cwd", 0), 0u) << decoded.status().message();
  }
  auto nul = decode_bytes(Json(std::string("a\0b", 3)), "deploy.argv[0]");
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.status().message(), "deploy.argv[0] must not contain a NUL byte");
  EXPECT_FALSE(decode_bytes(Json{{"base64", "YQBi"}}, "x").ok());  // "a\0b"
}

TEST(Bytes, EnvKeepsUtf8EntriesReadableAndTheOthersExact) {
  Json body = Json::object();
  encode_env({"A=1", "LEGACY=caf\xe9", "caf\xe9=x", "NOEQUALS"}, body);
  EXPECT_EQ(body["env"], (Json{{"A", "1"}}));
  EXPECT_EQ(body["envBase64"], (Json{base64_encode("LEGACY=caf\xe9"), base64_encode("caf\xe9=x")}));
  EXPECT_NO_THROW(body.dump());
  Json plain = Json::object();
  encode_env({"A=1"}, plain);
  EXPECT_FALSE(plain.contains("envBase64"));
}

}  // namespace
}  // namespace serverswap::protocol
