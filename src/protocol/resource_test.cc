#include "protocol/resource.h"

#include <gtest/gtest.h>

namespace serverswap::protocol {
namespace {

std::string canonical(std::string_view text) {
  auto r = parse_resource(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.status().message());
  return r.ok() ? r->name() : "";
}

TEST(Resource, ParsesEveryForm) {
  EXPECT_EQ(canonical(":8080"), ":8080");
  EXPECT_EQ(canonical("127.0.0.1:80"), "127.0.0.1:80");
  EXPECT_EQ(canonical("localhost:80"), "127.0.0.1:80");
  EXPECT_EQ(canonical("[::1]:443"), "[::1]:443");
  EXPECT_EQ(canonical("[0:0::1]:443"), "[::1]:443");
  EXPECT_EQ(canonical("0.0.0.0:0"), "0.0.0.0:0");
  EXPECT_EQ(canonical("unix:/run/app.sock"), "unix:/run/app.sock");
  auto r = parse_resource("[::1]:9");
  EXPECT_TRUE(r->ipv6());
  EXPECT_EQ(r->port, 9);
}

TEST(Resource, RejectsBadInputSayingWhy) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"8080", "no port"},
      {":65536", "port must be a number"},
      {":80x", "port must be a number"},
      {":", "port must be a number"},
      {"example.com:80", "numeric IPv4"},
      {"[::1:80", "unbalanced"},
      {"[zz]:80", "not an IPv6"},
      {"unix:relative.sock", "absolute"},
      {"", "no port"},
  };
  for (const auto& c : cases) {
    auto r = parse_resource(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.why), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.text), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(parse_resource("unix:/" + std::string(200, 'a')).ok());
}

// inet_pton stops at a NUL, so "127.0.0.1\0junk" once parsed as 127.0.0.1.
TEST(Resource, RejectsANulByteInTheHost) {
  using namespace std::string_view_literals;
  for (auto text : {"127.0.0.1\0junk:80"sv, "[::1\0x]:80"sv}) {
    auto r = parse_resource(text);
    ASSERT_FALSE(r.ok()) << r->name();
    EXPECT_NE(r.status().message().find("NUL byte"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace serverswap::protocol
