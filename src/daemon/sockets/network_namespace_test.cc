#include "daemon/sockets/network_namespace.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/unique_fd.h"
#include "handover/fd_passing.h"

namespace serverswap::daemon {
namespace {

// A listening TCP socket on 127.0.0.1:0, in this process's network namespace.
UniqueFd listening_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd.get(), 1) != 0)
    return UniqueFd();
  return fd;
}

// The same made by a child in a network namespace of its own (as a server of another user
// could, in a user namespace of its own), sent back over a socketpair; none when the
// machine allows no new network namespace here.
UniqueFd listening_socket_of_another_namespace() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) != 0) return UniqueFd();
  UniqueFd ours(pair[0]), theirs(pair[1]);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(1);
    UniqueFd fd = listening_socket();  // its own loopback is down: bind still works
    _exit(fd && handover::send_with_fd(theirs.get(), "x", fd.get()).ok() ? 0 : 2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return UniqueFd();
  char byte;
  auto received = handover::recv_with_fd(ours.get(), &byte, 1);
  if (!received.ok()) return UniqueFd();
  return std::move(received->fd);
}

TEST(NetworkNamespace, ASocketOfOursIsInOurs) {
  UniqueFd fd = listening_socket();
  ASSERT_TRUE(fd);
  auto ours = in_daemon_network_namespace(fd.get());
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  EXPECT_TRUE(*ours);
}

TEST(NetworkNamespace, ASocketBoundInAnotherNamespaceIsTold) {
  UniqueFd fd = listening_socket_of_another_namespace();
  if (!fd) GTEST_SKIP() << "no network namespace can be made here (needs CAP_SYS_ADMIN)";
  auto ours = in_daemon_network_namespace(fd.get());
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  EXPECT_FALSE(*ours);
}

TEST(NetworkNamespace, ADescriptorThatIsNoSocketIsAnError) {
  UniqueFd file(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto result = in_daemon_network_namespace(file.get());
  EXPECT_FALSE(result.ok());
}

}  // namespace
}  // namespace serverswap::daemon
