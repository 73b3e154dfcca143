#include "daemon/notify_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "daemon/log_limiter.h"
#include "daemon/uv_handle.h"
#include "observe/counters.h"

namespace serverswap::daemon {

struct NotifySocket::Block {
  uv_poll_t handle;
  UniqueFd fd;
  pid_t session = 0;
  uid_t uid = 0;
  OnMessage on_message;
  OnRejected on_rejected;
  // Anyone who can find the socket's name may send to it: what they make the daemon log
  // is rate-limited by sender uid, and every datagram refused is counted.
  std::unique_ptr<LogLimiter> rejected_log;
};

namespace {

// systemd reads at most this much of one notification; so do we.
constexpr size_t kMaxDatagram = 8192;

void close_passed_fds(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      ::close(fd);
    }
  }
}

const ucred* credentials_of(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
      return reinterpret_cast<const ucred*>(CMSG_DATA(c));
  return nullptr;
}

// Empty when the sender may speak for the server, else why not. A sender that has already
// exited (`systemd-notify READY=1` does) cannot be placed; its uid was checked, and only the
// server's environment names this socket.
std::string refusal(const ucred* cred, pid_t session, uid_t uid) {
  if (!cred) return "no sender credentials";
  if (cred->uid != uid && cred->uid != ::getuid() && cred->uid != 0)
    return "sender uid " + std::to_string(cred->uid) + " is not the server's";
  pid_t sid = ::getsid(cred->pid);
  if (sid < 0 && errno == ESRCH) return "";
  if (sid != session)
    return "sender pid " + std::to_string(cred->pid) + " is not in the server's session";
  return "";
}

// Reads one datagram (skipping refused ones); false when none was left.
bool read_one(NotifySocket::Block* block) {
  for (;;) {
    char data[kMaxDatagram];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 16)];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(block->fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;  // EAGAIN: drained
    close_passed_fds(msg);
    const ucred* cred = credentials_of(msg);
    auto rejected = [&](const std::string& why) {
      observe::count(observe::Refused::kNotifyDatagram);
      if (block->rejected_log->admit(cred ? "uid " + std::to_string(cred->uid) : "unknown senders"))
        block->on_rejected(why);
    };
    if (static_cast<size_t>(n) > sizeof data || (msg.msg_flags & MSG_CTRUNC)) {
      rejected("dropped a truncated notification");
      continue;
    }
    if (std::string why = refusal(cred, block->session, block->uid); !why.empty()) {
      rejected("dropped a notification: " + why);
      continue;
    }
    NotifyMessage message{cred->pid, parse_notify_fields({data, static_cast<size_t>(n)})};
    block->on_message(message);  // may destroy this socket: touch nothing after
    return true;
  }
}

void on_readable(uv_poll_t* handle, int status, int) {
  if (status >= 0) read_one(static_cast<NotifySocket::Block*>(handle->data));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_notify_fields(std::string_view datagram) {
  std::vector<std::pair<std::string, std::string>> fields;
  while (!datagram.empty()) {
    size_t end = datagram.find('\n');
    std::string_view line = datagram.substr(0, end);
    datagram = end == std::string_view::npos ? std::string_view() : datagram.substr(end + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    fields.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
  }
  return fields;
}

Result<std::unique_ptr<NotifySocket>> NotifySocket::open(uv_loop_t* loop, const std::string& name,
                                                         OnMessage on_message,
                                                         OnRejected on_rejected) {
  const std::string what = "notify socket @" + name;
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::system_error(what, errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof addr.sun_path) return Status::error(what + ": name too long");
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return Status::system_error("bind " + what, errno);
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    return Status::system_error("SO_PASSCRED on " + what, errno);
  auto* block = new Block;
  block->on_message = std::move(on_message);
  block->on_rejected = std::move(on_rejected);
  block->rejected_log = std::make_unique<LogLimiter>(loop, what + ": refused notifications");
  uv_poll_init(loop, &block->handle, fd.get());
  block->fd = std::move(fd);
  block->handle.data = block;
  uv_poll_start(&block->handle, UV_READABLE, on_readable);
  return std::unique_ptr<NotifySocket>(new NotifySocket(block, "@" + name));
}

NotifySocket::~NotifySocket() {
  uv_poll_stop(&block_->handle);
  close_block(block_, reinterpret_cast<uv_handle_t*>(&block_->handle));
}

void NotifySocket::read_pending() {
  while (read_one(block_)) {
  }
}

void NotifySocket::accept_sender(pid_t session, uid_t uid) {
  block_->session = session;
  block_->uid = uid;
}

}  // namespace serverswap::daemon
