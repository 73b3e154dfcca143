#include "daemon/spawn/notify_socket.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "base/unique_fd.h"
#include "daemon/process/process_tree.h"
#include "daemon/sockets/socket_file.h"
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
  // A path socket: its directory (opened O_NOFOLLOW and checked) and file name, unlinked
  // when the socket is destroyed; the directory too, when it is a shared one left empty.
  UniqueFd dir;
  std::string dir_path;
  std::string name;
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
  std::string name;
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) name.append(1, kHex[b >> 4]).append(1, kHex[b & 15]);
  return name;
}

namespace {

Status check_directory(int dir, const std::string& path, bool private_only) {
  return check_owned_directory(dir, "the NOTIFY_SOCKET directory", path, !private_only);
}

Result<UniqueFd> open_directory(const std::string& path, bool private_only) {
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return Status::system_error("open the NOTIFY_SOCKET directory " + path, errno);
  if (Status s = check_directory(dir.get(), path, private_only); !s.ok()) return s;
  return dir;
}

Result<std::unique_ptr<NotifySocket>> start(
    uv_loop_t* loop, UniqueFd fd, const std::string& address, NotifySocket::OnMessage on_message,
    NotifySocket::OnRejected on_rejected, NotifySocket::Block* block,
    NotifySocket* (*make)(NotifySocket::Block*, std::string)) {
  std::unique_ptr<NotifySocket::Block> owned(block);
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    int err = errno;
    if (owned->dir) ::unlinkat(owned->dir.get(), owned->name.c_str(), 0);
    return Status::system_error("SO_PASSCRED on notify socket " + address, err);
  }
  block->on_message = std::move(on_message);
  block->on_rejected = std::move(on_rejected);
  uv_poll_init(loop, &block->handle, fd.get());
  block->fd = std::move(fd);
  block->handle.data = block;
  uv_poll_start(&block->handle, UV_READABLE, on_readable);
  return std::unique_ptr<NotifySocket>(make(owned.release(), address));
}

}  // namespace

void remove_notify_socket_file(const std::string& address) {
  if (!address.starts_with("/")) return;
  std::filesystem::path path(address);
  std::string dir_path = path.parent_path().string();
  auto dir = open_directory(dir_path, false);
  if (!dir.ok()) return;
  ::unlinkat(dir->get(), path.filename().c_str(), 0);
  if (is_user_directory_name(dir_path))
    ::rmdir(dir_path.c_str());  // ENOTEMPTY while other servers' sockets are in it
}

NotifyDirectory::NotifyDirectory(std::string socket_path, UserDirectory* shared)
    : private_dir_(std::move(socket_path) + ".notify"), shared_(shared) {
  if (!shared_) {
    owned_shared_ = std::make_unique<UserDirectory>();
    shared_ = owned_shared_.get();
  }
}

Status NotifyDirectory::prepare(const std::vector<std::string>& keep) {
  auto parent = std::filesystem::path(private_dir_).parent_path().string();
  UniqueFd up(::open(parent.empty() ? "." : parent.c_str(),
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!up) return Status::system_error("open the directory " + parent, errno);
  std::string base = std::filesystem::path(private_dir_).filename().string();
  if (::mkdirat(up.get(), base.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::system_error("create the NOTIFY_SOCKET directory " + private_dir_, errno);
  UniqueFd dir(::openat(up.get(), base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir)
    return Status::system_error("open the NOTIFY_SOCKET directory " + private_dir_ +
                                    " (remove what is there: the daemon creates it)",
                                errno);
  if (Status s = check_directory(dir.get(), private_dir_, true); !s.ok()) return s;
  std::set<std::string> kept;
  for (const auto& path : keep)
    if (std::filesystem::path(path).parent_path() == private_dir_)
      kept.insert(std::filesystem::path(path).filename().string());
  DIR* listing = ::fdopendir(::dup(dir.get()));
  if (!listing) return Status::system_error("list " + private_dir_, errno);
  std::vector<std::string> stale;
  while (dirent* entry = ::readdir(listing)) {
    std::string name = entry->d_name;
    if (name != "." && name != ".." && !kept.contains(name)) stale.push_back(name);
  }
  ::closedir(listing);
  // Sockets of servers that are gone (no directory is ours to remove here: unlinkat without
  // AT_REMOVEDIR leaves them).
  for (const auto& name : stale) ::unlinkat(dir.get(), name.c_str(), 0);
  return {};
}

Result<std::string> NotifyDirectory::new_path(uid_t uid) {
  std::string name = NotifySocket::random_name();
  std::string path = private_dir_ + "/" + name;
  if (uid == ::geteuid() && fits_sun_path(path)) return path;
  auto shared = shared_->path();
  if (!shared.ok()) return shared.status().wrap("a NOTIFY_SOCKET for uid " + std::to_string(uid));
  std::string in_shared = *shared + "/" + name;
  if (!fits_sun_path(in_shared))
    return Status::error("the NOTIFY_SOCKET path " + in_shared + " is " +
                         std::to_string(in_shared.size()) +
                         " bytes; a Unix socket path holds at most " +
                         std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                         " bytes: set TMPDIR to a shorter directory" +
                         (uid == ::geteuid() ? " or choose a shorter --socket path" : ""));
  return in_shared;
}

Result<std::unique_ptr<NotifySocket>> NotifySocket::open(uv_loop_t* loop,
                                                         const std::string& address, uid_t uid,
                                                         OnMessage on_message,
                                                         OnRejected on_rejected) {
  const std::string what = "notify socket " + address;
  auto make = [](Block* b, std::string a) { return new NotifySocket(b, std::move(a)); };
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::system_error(what, errno);
  auto block = std::make_unique<Block>();
  if (address.starts_with("@")) {
    std::string name = address.substr(1);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name.size() + 1 > sizeof addr.sun_path) return Status::error(what + ": name too long");
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
      return Status::system_error("bind " + what, errno);
  } else {
    std::filesystem::path path(address);
    if (!path.is_absolute() || !fits_sun_path(address) || path.filename().empty())
      return Status::error(what + ": not an absolute path of at most " +
                           std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
    block->dir_path = path.parent_path().string();
    block->name = path.filename().string();
    auto dir = open_directory(block->dir_path, false);
    if (!dir.ok()) return dir.status();
    block->dir = std::move(*dir);
    if (Status s = bind_socket_in(fd.get(), block->dir.get(), block->name, uid, what); !s.ok())
      return s;
  }
  return start(loop, std::move(fd), address, std::move(on_message), std::move(on_rejected),
               block.release(), make);
}

Result<std::unique_ptr<NotifySocket>> NotifySocket::adopt(uv_loop_t* loop, int raw_fd,
                                                          const std::string& address,
                                                          OnMessage on_message,
                                                          OnRejected on_rejected) {
  UniqueFd fd(raw_fd);
  const std::string what =
      "notify socket " + address + " inherited at fd " + std::to_string(raw_fd);
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &type_len) != 0)
    return Status::system_error(what, errno);
  size_t path_len =
      len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
  std::string bound(addr.sun_path, std::min(path_len, sizeof addr.sun_path));
  auto block = std::make_unique<Block>();
  bool same = false;
  if (address.starts_with("@")) {
    same = !bound.empty() && bound[0] == '\0' && bound.substr(1) == address.substr(1);
  } else {
    // Bound through /proc/self/fd/N/NAME (bind_in): the file name is what can be compared.
    bound = bound.substr(0, bound.find('\0'));
    std::filesystem::path path(address);
    block->dir_path = path.parent_path().string();
    block->name = path.filename().string();
    same = !block->name.empty() && bound.ends_with("/" + block->name);
    // To unlink it when the server is gone; without it the file is left for prepare().
    if (auto dir = open_directory(block->dir_path, false); dir.ok()) block->dir = std::move(*dir);
  }
  if (addr.sun_family != AF_UNIX || type != SOCK_DGRAM || !same)
    return Status::error(what + ": not that socket");
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  return start(loop, std::move(fd), address, std::move(on_message), std::move(on_rejected),
               block.release(),
               [](Block* b, std::string a) { return new NotifySocket(b, std::move(a)); });
}

NotifySocket::~NotifySocket() {
  uv_poll_stop(&block_->handle);
  if (block_->dir) {
    ::unlinkat(block_->dir.get(), block_->name.c_str(), 0);
    // A shared directory (TMPDIR/serverswap-notify-*) goes with its last socket; while
    // another is in it, ENOTEMPTY. It is ours (mode 0711 in a sticky TMPDIR): no one else
    // can have put anything at that name.
    if (is_user_directory_name(block_->dir_path)) ::rmdir(block_->dir_path.c_str());
    block_->dir.reset();
  }
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
