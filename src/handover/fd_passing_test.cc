#include "handover/fd_passing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <vector>

namespace serverswap::handover {
namespace {

struct Pair {
  UniqueFd a, b;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

TEST(FdPassing, DeliversTheFdCloseOnExecWithItsLine) {
  Pair p;
  UniqueFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(*send_with_fd(p.a.get(), "hello\n", null.get()), 6u);
  char buf[64];
  auto got = recv_with_fd(p.b.get(), buf, sizeof buf);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(std::string(buf, got->bytes), "hello\n");
  ASSERT_TRUE(got->fd.valid());
  EXPECT_NE(got->fd.get(), null.get());
  EXPECT_TRUE(fcntl(got->fd.get(), F_GETFD) & FD_CLOEXEC);
}

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(FdPassing, SendsSeveralFdsInOrderWithOneMessage) {
  Pair p;
  int pipe_a[2], pipe_b[2];
  ASSERT_EQ(pipe2(pipe_a, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(pipe_b, O_CLOEXEC), 0);
  std::vector<UniqueFd> owned;
  for (int f : {pipe_a[0], pipe_a[1], pipe_b[0], pipe_b[1]}) owned.emplace_back(f);
  const int sent_fds[] = {pipe_b[1], pipe_a[0], pipe_b[0]};
  ASSERT_EQ(*send_with_fds(p.a.get(), "three\n", sent_fds), 6u);

  char data[16];
  iovec iov{data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ASSERT_EQ(recvmsg(p.b.get(), &msg, MSG_CMSG_CLOEXEC), 6);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->cmsg_len, CMSG_LEN(3 * sizeof(int)));
  int got[3];
  std::memcpy(got, CMSG_DATA(c), sizeof got);
  for (int i = 0; i < 3; ++i) {
    UniqueFd received(got[i]);
    EXPECT_EQ(inode_of(received.get()), inode_of(sent_fds[i])) << "fd " << i;
  }
}

TEST(FdPassing, MoreThan64FdsAreRefused) {
  Pair p;
  std::vector<int> fds(65, p.a.get());
  auto sent = send_with_fds(p.a.get(), "x", fds);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().message(), "sendmsg: 65 file descriptors in one message; at most 64");
}

TEST(FdPassing, ExtraFdsAreClosedAndReported) {
  Pair p;
  int fds[3];
  for (int& f : fds) f = open("/dev/null", O_RDONLY | O_CLOEXEC);
  char data[] = "x";
  iovec iov{data, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  ASSERT_EQ(sendmsg(p.a.get(), &msg, 0), 1);
  for (int f : fds) close(f);

  int before = open("/dev/null", O_RDONLY | O_CLOEXEC);
  close(before);
  char buf[8];
  auto got = recv_with_fd(p.b.get(), buf, sizeof buf);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "more than one file descriptor in one message");
  // Nothing leaked: the lowest free fd is the same as before the receive.
  int after = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(after, before);
  close(after);
}

TEST(FdPassing, PeerCloseIsZeroBytes) {
  Pair p;
  p.a.reset();
  char buf[8];
  auto got = recv_with_fd(p.b.get(), buf, sizeof buf);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->bytes, 0u);
}

}  // namespace
}  // namespace serverswap::handover
