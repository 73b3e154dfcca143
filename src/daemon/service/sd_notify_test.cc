#include "daemon/service/sd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "base/unique_fd.h"

namespace serverswap::daemon {
namespace {

// A datagram socket standing in for systemd's notification socket.
UniqueFd bind_datagram(const std::string& address) {
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (address[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << strerror(errno);
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

std::string receive(int fd) {
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

TEST(SdNotify, SendsToAPathSocket) {
  std::string dir = std::filesystem::temp_directory_path() / "sdnotify-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir.data()));
  std::string path = dir + "/notify";
  UniqueFd systemd = bind_datagram(path);
  ASSERT_TRUE(SdNotify(path).send("READY=1").ok());
  EXPECT_EQ(receive(systemd.get()), "READY=1");
  std::filesystem::remove_all(dir);
}

TEST(SdNotify, SendsToAnAbstractSocket) {
  std::string name = "@serverswap-test-" + std::to_string(std::random_device{}());
  UniqueFd systemd = bind_datagram(name);
  ASSERT_TRUE(SdNotify(name).send("STOPPING=1").ok());
  EXPECT_EQ(receive(systemd.get()), "STOPPING=1");
}

TEST(SdNotify, FromEnvironmentTakesTheVariableAway) {
  setenv("NOTIFY_SOCKET", "@x", 1);
  SdNotify notify = SdNotify::from_environment();
  EXPECT_TRUE(notify.active());
  EXPECT_EQ(getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_FALSE(SdNotify::from_environment().active());
  EXPECT_TRUE(SdNotify().send("READY=1").ok());  // inactive: nothing to do
}

TEST(SdNotify, ErrorsNameTheSocketAndErrno) {
  Status s = SdNotify("/nonexistent/notify").send("READY=1");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "sd_notify to /nonexistent/notify: No such file or directory");
  EXPECT_FALSE(SdNotify("relative").send("READY=1").ok());
}

TEST(SdNotify, MonotonicUsecIsTheMonotonicClock) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t before = static_cast<uint64_t>(now.tv_sec) * 1'000'000u;
  uint64_t usec = monotonic_usec();
  EXPECT_GE(usec, before);
  EXPECT_LT(usec - before, 10'000'000u);
}

}  // namespace
}  // namespace serverswap::daemon
