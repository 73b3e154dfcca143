#include "handover/listen_socket.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>

namespace serverswap::handover {
namespace {

protocol::Resource parse(std::string_view text) {
  return *protocol::parse_resource(text);
}

TEST(BindListener, EphemeralLoopbackPortIsReported) {
  auto s = bind_listener(parse("127.0.0.1:0"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->address.starts_with("127.0.0.1:"));
  EXPECT_NE(s->address, "127.0.0.1:0");
}

TEST(BindListener, AddressInUseNamesTheResourceAndErrno) {
  auto first = bind_listener(parse("127.0.0.1:0"));
  ASSERT_TRUE(first.ok());
  auto again = bind_listener(parse(first->address));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(), "bind " + first->address + ": Address already in use");
}

TEST(BindListener, DualStackAnyAddress) {
  auto s = bind_listener(parse(":0"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  // Either dual-stack IPv6 or the IPv4 fallback on kernels without IPv6.
  EXPECT_TRUE(s->address.starts_with("[::]:") || s->address.starts_with("0.0.0.0:")) << s->address;
}

TEST(BindListener, UnixSocketReplacesAStaleFileButNotALiveOne) {
  auto dir = std::filesystem::temp_directory_path() / ("ss-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "a.sock").string();
  auto resource = parse("unix:" + path);
  {
    auto live = bind_listener(resource);
    ASSERT_TRUE(live.ok()) << live.status().message();
    auto second = bind_listener(resource);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos);
  }
  // The first socket is closed now; its file is stale and gets replaced.
  auto replaced = bind_listener(resource);
  EXPECT_TRUE(replaced.ok()) << replaced.status().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace serverswap::handover
