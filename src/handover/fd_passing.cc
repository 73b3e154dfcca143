#include "handover/fd_passing.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace serverswap::handover {

Result<size_t> send_with_fd(int sock, std::string_view data, int fd) {
  if (fd < 0) return send_with_fds(sock, data, {});
  return send_with_fds(sock, data, std::span<const int>(&fd, 1));
}

Result<size_t> send_with_fds(int sock, std::string_view data, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    std::string text = "sendmsg: ";
    text.append(std::to_string(fds.size())).append(" file descriptors in one message; at most 64");
    return Status::error(text);
  }
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))] = {};
  if (!fds.empty()) {
    const size_t bytes = fds.size() * sizeof(int);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(cmsg), fds.data(), bytes);
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Status::system_error("sendmsg", errno);
  }
}

namespace {

// Takes every fd out of the control messages: the first SCM_RIGHTS fd is kept, all others
// are closed. Returns an error when the message was malformed.
Status collect_fds(msghdr& msg, UniqueFd& kept) {
  Status status;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!kept) {
        kept.reset(fd);
      } else {
        ::close(fd);
        status = Status::error("more than one file descriptor in one message");
      }
    }
  }
  return status;
}

}  // namespace

Result<Received> recv_with_fd(int sock, char* buf, size_t len) {
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for a few fds so that a misbehaving peer's extras are received and closed rather
  // than leaving MSG_CTRUNC as the only trace.
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::system_error("recvmsg", errno);
  Received received;
  received.bytes = static_cast<size_t>(n);
  Status fds = collect_fds(msg, received.fd);
  if (msg.msg_flags & MSG_CTRUNC) return Status::error("recvmsg: control data truncated");
  if (!fds.ok()) return fds;
  return received;
}

}  // namespace serverswap::handover
