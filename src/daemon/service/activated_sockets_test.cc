#include "daemon/service/activated_sockets.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "handover/listen_socket.h"
#include "protocol/resource.h"

namespace serverswap::daemon {
namespace {

// Binds `resource` the way the daemon would, and names it back from the socket alone.
std::string round_trip(const std::string& resource) {
  auto parsed = protocol::parse_resource(resource);
  EXPECT_TRUE(parsed.ok());
  auto bound = handover::bind_listener(*parsed);
  EXPECT_TRUE(bound.ok()) << bound.status().message();
  auto name = resource_of_socket(bound->fd.get());
  EXPECT_TRUE(name.ok()) << name.status().message();
  return name.ok() ? *name : "";
}

TEST(ActivatedSockets, NamesTheResourceASocketAnswersFor) {
  std::string v4 = round_trip("127.0.0.1:0");
  EXPECT_TRUE(v4.starts_with("127.0.0.1:")) << v4;
  EXPECT_NE(v4, "127.0.0.1:0");
  std::string any = round_trip(":0");
  EXPECT_TRUE(any.starts_with(":")) << any;
  std::string path = "/tmp/serverswap-activated-test-" + std::to_string(getpid()) + ".sock";
  EXPECT_EQ(round_trip("unix:" + path), "unix:" + path);
  unlink(path.c_str());
}

TEST(ActivatedSockets, TheIpv4WildcardIsEveryInterface) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  EXPECT_EQ(*resource_of_socket(fd), ":" + std::to_string(ntohs(addr.sin_port)));
  close(fd);
}

TEST(ActivatedSockets, NothingWhenTheVariablesAreForAnotherProcess) {
  setenv("LISTEN_PID", "1", 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "web", 1);
  auto sockets = take_activated_sockets();
  ASSERT_TRUE(sockets.ok());
  EXPECT_TRUE(sockets->empty());
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"})
    EXPECT_EQ(getenv(name), nullptr) << name;
}

}  // namespace
}  // namespace serverswap::daemon
