#include "daemon/notify_socket.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "base/unique_fd.h"
#include "daemon/process_tree.h"
#include "daemon/state_file.h"
#include "daemon/uv_handle.h"
#include "observe/counters.h"

namespace serverswap::daemon {

struct NotifySocket::Block {
  uv_poll_t handle;
  UniqueFd fd;
  pid_t main_pid = 0;
  uid_t uid = 0;
  // MAINPID= from the main process: that pid may speak too, while it has this start time.
  pid_t declared = 0;
  uint64_t declared_start = 0;
  OnMessage on_message;
  OnRejected on_rejected;
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

// Empty when the sender may speak for the server, else why not. As systemd's
// NotifyAccess=main: the main process, or the pid it declared with MAINPID=. A sender that
// has already exited cannot be placed (its pid may even be another process's by now), so it
// is refused: `systemd-notify READY=1` from a script is a wrapper's child, not the server.
std::string refusal(const ucred* cred, const NotifySocket::Block& block) {
  if (!cred) return "no sender credentials";
  if (cred->uid != block.uid && cred->uid != ::getuid() && cred->uid != 0)
    return "sender uid " + std::to_string(cred->uid) + " is not the server's";
  if (cred->pid <= 0) return "the sender has exited (no pid)";
  // The main process is the daemon's child: its pid is not reused before it is reaped.
  if (cred->pid == block.main_pid) return "";
  auto started = process_start_time(cred->pid);
  if (!started.ok())
    return "sender pid " + std::to_string(cred->pid) +
           " has exited; only the main process may notify";
  if (block.declared > 0 && cred->pid == block.declared && *started == block.declared_start)
    return "";
  return "sender pid " + std::to_string(cred->pid) + " (" + process_comm(cred->pid) +
         ") is not the server's main process " + std::to_string(block.main_pid) +
         " (nor a MAINPID= it declared)";
}

bool says_ready(const std::vector<std::pair<std::string, std::string>>& fields) {
  for (const auto& [key, value] : fields)
    if (key == "READY" && value == "1") return true;
  return false;
}

// MAINPID= from the main process: remembered here (with its start time, so that a recycled
// pid does not inherit the right); from any other sender it is dropped.
void apply_main_pid(NotifySocket::Block& block, pid_t sender,
                    std::vector<std::pair<std::string, std::string>>& fields) {
  if (sender != block.main_pid) {
    std::erase_if(fields, [](const auto& field) { return field.first == "MAINPID"; });
    return;
  }
  for (const auto& [key, value] : fields) {
    if (key != "MAINPID") continue;
    char* end = nullptr;
    long pid = std::strtol(value.c_str(), &end, 10);
    if (!end || *end != '\0' || pid <= 0 || pid == block.main_pid) {
      block.declared = 0;
      continue;
    }
    auto started = process_start_time(static_cast<pid_t>(pid));
    block.declared = started.ok() ? static_cast<pid_t>(pid) : 0;
    block.declared_start = started.ok() ? *started : 0;
  }
}

// Reads one datagram (skipping refused ones, at most kMaxSkipped per call, so that a
// sender flooding the socket cannot hold the loop: the poll handle fires again); false when
// none was left or that many were refused.
constexpr int kMaxSkipped = 64;

bool read_one(NotifySocket::Block* block) {
  for (int skipped = 0; skipped < kMaxSkipped; ++skipped) {
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
    pid_t sender = cred ? cred->pid : 0;
    // Anyone who can find the socket's name may send to it: every datagram refused is
    // counted; the supervisor logs the first few per server only (Supervisor::notify_refused).
    auto rejected = [&](bool says_ready, const std::string& why) {
      observe::count(observe::Refused::kNotifyDatagram);
      block->on_rejected({sender, process_comm(sender), says_ready, why});
    };
    if (static_cast<size_t>(n) > sizeof data || (msg.msg_flags & MSG_CTRUNC)) {
      rejected(false, "dropped a truncated notification");
      continue;
    }
    auto fields = parse_notify_fields({data, static_cast<size_t>(n)});
    if (std::string why = refusal(cred, *block); !why.empty()) {
      rejected(says_ready(fields), "dropped a notification: " + why);
      continue;
    }
    apply_main_pid(*block, sender, fields);
    NotifyMessage message{sender, std::move(fields)};
    block->on_message(message);  // may destroy this socket: touch nothing after
    return true;
  }
  return false;
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

std::string NotifySocket::random_name() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof bytes) {
    static std::mt19937_64 fallback{std::random_device{}()};  // kernels before 3.17
    for (auto& b : bytes) b = static_cast<unsigned char>(fallback());
  }
  std::string name = "serverswap-notify-";
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) name.append(1, kHex[b >> 4]).append(1, kHex[b & 15]);
  return name;
}

namespace {

Result<std::unique_ptr<NotifySocket>> start(uv_loop_t* loop, UniqueFd fd, const std::string& name,
                                            NotifySocket::OnMessage on_message,
                                            NotifySocket::OnRejected on_rejected,
                                            NotifySocket* (*make)(NotifySocket::Block*,
                                                                  std::string)) {
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    return Status::system_error("SO_PASSCRED on notify socket @" + name, errno);
  auto* block = new NotifySocket::Block;
  block->on_message = std::move(on_message);
  block->on_rejected = std::move(on_rejected);
  uv_poll_init(loop, &block->handle, fd.get());
  block->fd = std::move(fd);
  block->handle.data = block;
  uv_poll_start(&block->handle, UV_READABLE, on_readable);
  return std::unique_ptr<NotifySocket>(make(block, "@" + name));
}

}  // namespace

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
  return start(loop, std::move(fd), name, std::move(on_message), std::move(on_rejected),
               [](Block* b, std::string a) { return new NotifySocket(b, std::move(a)); });
}

Result<std::unique_ptr<NotifySocket>> NotifySocket::adopt(uv_loop_t* loop, int raw_fd,
                                                          const std::string& name,
                                                          OnMessage on_message,
                                                          OnRejected on_rejected) {
  UniqueFd fd(raw_fd);
  const std::string what = "notify socket @" + name + " inherited at fd " + std::to_string(raw_fd);
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &type_len) != 0)
    return Status::system_error(what, errno);
  size_t name_len =
      len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
  if (addr.sun_family != AF_UNIX || type != SOCK_DGRAM || name_len != name.size() + 1 ||
      addr.sun_path[0] != '\0' || std::memcmp(addr.sun_path + 1, name.data(), name.size()) != 0)
    return Status::error(what + ": not that socket");
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  return start(loop, std::move(fd), name, std::move(on_message), std::move(on_rejected),
               [](Block* b, std::string a) { return new NotifySocket(b, std::move(a)); });
}

NotifySocket::~NotifySocket() {
  uv_poll_stop(&block_->handle);
  close_block(block_, reinterpret_cast<uv_handle_t*>(&block_->handle));
}

void NotifySocket::read_pending() {
  while (read_one(block_)) {
  }
}

int NotifySocket::fd() const {
  return block_->fd.get();
}

void NotifySocket::accept_sender(pid_t main_pid, uid_t uid) {
  block_->main_pid = main_pid;
  block_->uid = uid;
}

}  // namespace serverswap::daemon
