#include "verify/address.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

namespace serverswap::verify {
namespace {

TEST(ParseHostPortTest, AcceptsTheThreeForms) {
  std::string error;
  auto v4 = parse_host_port("10.0.0.1:8080", &error);
  ASSERT_TRUE(v4) << error;
  EXPECT_EQ(v4->host, "10.0.0.1");
  EXPECT_EQ(v4->port, 8080);
  auto v6 = parse_host_port("[::1]:443", &error);
  ASSERT_TRUE(v6) << error;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 443);
  auto bare = parse_host_port(":9000", &error);
  ASSERT_TRUE(bare) << error;
  EXPECT_EQ(bare->host, "127.0.0.1");
  EXPECT_EQ(bare->port, 9000);
  auto named = parse_host_port("localhost:65535", &error);
  ASSERT_TRUE(named) << error;
  EXPECT_EQ(named->host, "localhost");
}

TEST(ParseHostPortTest, RejectsBadInput) {
  for (const char* bad : {"", "8080", "1.2.3.4", "::1:80", "[::1]", "[::1]80", ":0", ":65536",
                          "host:", "host:http", ":80x", "[]:80", ":-1"}) {
    std::string error;
    EXPECT_FALSE(parse_host_port(bad, &error)) << bad;
    EXPECT_NE(error.find("bad address"), std::string::npos) << bad << ": " << error;
  }
}

TEST(FormatHostPortTest, BracketsIpv6) {
  EXPECT_EQ(format_host_port("127.0.0.1", 80), "127.0.0.1:80");
  EXPECT_EQ(format_host_port("::1", 80), "[::1]:80");
}

TEST(ResolveEndpointTest, ResolvesLiterals) {
  std::string error;
  auto v4 = resolve_endpoint("127.0.0.1", 8080, &error);
  ASSERT_TRUE(v4) << error;
  EXPECT_EQ(v4->address.ss_family, AF_INET);
  EXPECT_EQ(v4->length, sizeof(sockaddr_in));
  EXPECT_EQ(v4->text, "127.0.0.1:8080");
  auto v6 = resolve_endpoint("::1", 8080, &error);
  ASSERT_TRUE(v6) << error;
  EXPECT_EQ(v6->address.ss_family, AF_INET6);
  EXPECT_EQ(v6->text, "[::1]:8080");
}

TEST(ResolveEndpointTest, ReportsFailureWithTheName) {
  std::string error;
  EXPECT_FALSE(resolve_endpoint("no such host.invalid", 80, &error));
  EXPECT_NE(error.find("resolve no such host.invalid"), std::string::npos) << error;
}

}  // namespace
}  // namespace serverswap::verify
