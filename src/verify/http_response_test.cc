#include "verify/http_response.h"

#include <gtest/gtest.h>

namespace serverswap::verify {
namespace {

using Result = ResponseParser::Result;

constexpr std::string_view kSimple = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

TEST(ResponseParserTest, ContentLengthInOneRead) {
  ResponseParser parser;
  EXPECT_FALSE(parser.started());
  EXPECT_EQ(parser.feed(kSimple), Result::kDone);
  EXPECT_TRUE(parser.started());
  EXPECT_EQ(parser.status(), 200);
  EXPECT_TRUE(parser.keep_alive());
}

TEST(ResponseParserTest, ByteByByte) {
  ResponseParser parser;
  for (size_t i = 0; i + 1 < kSimple.size(); ++i) {
    ASSERT_EQ(parser.feed(kSimple.substr(i, 1)), Result::kNeedMore) << "at byte " << i;
  }
  EXPECT_EQ(parser.feed(kSimple.substr(kSimple.size() - 1)), Result::kDone);
}

TEST(ResponseParserTest, ResetAllowsTheNextResponse) {
  ResponseParser parser;
  ASSERT_EQ(parser.feed(kSimple), Result::kDone);
  parser.reset();
  EXPECT_FALSE(parser.started());
  EXPECT_EQ(parser.feed("HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n"), Result::kDone);
  EXPECT_EQ(parser.status(), 503);
}

TEST(ResponseParserTest, ConnectionCloseAndHttp10) {
  ResponseParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"),
            Result::kDone);
  EXPECT_FALSE(parser.keep_alive());
  parser.reset();
  EXPECT_EQ(parser.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), Result::kDone);
  EXPECT_FALSE(parser.keep_alive());
  parser.reset();
  EXPECT_EQ(parser.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
            Result::kDone);
  EXPECT_TRUE(parser.keep_alive());
}

TEST(ResponseParserTest, BodyUntilEof) {
  ResponseParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\n\r\nsome body"), Result::kNeedMore);
  EXPECT_EQ(parser.feed(" more"), Result::kNeedMore);
  EXPECT_EQ(parser.eof(), Result::kDone);
  EXPECT_FALSE(parser.keep_alive());
}

TEST(ResponseParserTest, Chunked) {
  const std::string_view response =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
  ResponseParser whole;
  EXPECT_EQ(whole.feed(response), Result::kDone);
  ResponseParser split;
  for (size_t i = 0; i + 1 < response.size(); ++i) {
    ASSERT_EQ(split.feed(response.substr(i, 1)), Result::kNeedMore) << "at byte " << i;
  }
  EXPECT_EQ(split.feed(response.substr(response.size() - 1)), Result::kDone);
  EXPECT_TRUE(split.keep_alive());
}

TEST(ResponseParserTest, NoBodyStatusesAndInterimResponses) {
  ResponseParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 204 No Content\r\n\r\n"), Result::kDone);
  parser.reset();
  EXPECT_EQ(
      parser.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
      Result::kDone);
  EXPECT_EQ(parser.status(), 200);
}

TEST(ResponseParserTest, EofBeforeTheEnd) {
  ResponseParser nothing;
  EXPECT_EQ(nothing.eof(), Result::kError);
  EXPECT_EQ(nothing.error(), "connection closed before any response");
  ResponseParser headers;
  headers.feed("HTTP/1.1 200 OK\r\nContent-");
  EXPECT_EQ(headers.eof(), Result::kError);
  EXPECT_EQ(headers.error(), "connection closed in the response headers");
  ResponseParser body;
  body.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(body.eof(), Result::kError);
  EXPECT_EQ(body.error(), "connection closed in the response body");
}

TEST(ResponseParserTest, MalformedResponses) {
  for (const char* bad :
       {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "hello\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    ResponseParser parser;
    EXPECT_EQ(parser.feed(bad), Result::kError) << bad;
    EXPECT_FALSE(parser.error().empty()) << bad;
  }
}

TEST(ResponseParserTest, ExtraBytesAreAnError) {
  ResponseParser parser;
  EXPECT_EQ(parser.feed(std::string(kSimple) + "junk"), Result::kError);
  EXPECT_EQ(parser.error(), "unexpected bytes after the response");
}

TEST(ResponseParserTest, HeadersHaveALimit) {
  ResponseParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\n"), Result::kNeedMore);
  const std::string filler = "X: " + std::string(1000, 'y') + "\r\n";
  Result result = Result::kNeedMore;
  for (int i = 0; i < 100 && result == Result::kNeedMore; ++i) result = parser.feed(filler);
  EXPECT_EQ(result, Result::kError);
  EXPECT_EQ(parser.error(), "response headers longer than 64 KiB");
}

}  // namespace
}  // namespace serverswap::verify
