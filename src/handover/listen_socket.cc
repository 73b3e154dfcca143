#include "handover/listen_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace serverswap::handover {

void (*unix_bind_test_hook)(int stage) = nullptr;

namespace {

using protocol::Resource;

Status listen_on(int fd, const std::string& what) {
  if (::listen(fd, SOMAXCONN) != 0) return Status::system_error("listen " + what, errno);
  return {};
}

Result<ListenSocket> bind_tcp_family(const Resource& r, int family) {
  const std::string what = r.name();
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::system_error("socket for " + what, errno);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage addr{};
  socklen_t len;
  if (family == AF_INET6) {
    // ":PORT" serves IPv4 too; an explicit IPv6 address serves only itself.
    int v6only = r.host.empty() ? 0 : 1;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(r.port);
    a6->sin6_addr = in6addr_any;
    if (!r.host.empty()) inet_pton(AF_INET6, r.host.c_str(), &a6->sin6_addr);
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(r.port);
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
    if (!r.host.empty()) inet_pton(AF_INET, r.host.c_str(), &a4->sin_addr);
    len = sizeof *a4;
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return Status::system_error("bind " + what, errno);
  if (Status s = listen_on(fd.get(), what); !s.ok()) return s;
  ListenSocket bound;
  bound.address = bound_address(fd.get());
  bound.fd = std::move(fd);
  return bound;
}

Result<ListenSocket> bind_tcp(const Resource& r) {
  if (!r.host.empty()) return bind_tcp_family(r, r.ipv6() ? AF_INET6 : AF_INET);
  auto dual = bind_tcp_family(r, AF_INET6);
  if (dual.ok()) return dual;
  // Kernels booted without IPv6 refuse the socket itself; fall back to IPv4 only then.
  UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT))
    return bind_tcp_family(r, AF_INET);
  return dual;
}

// What binding a Unix socket came to, in plain values: a forked child (bind_listener_as)
// reports it through a socketpair, and computes it with async-signal-safe calls only.
enum class Stage : int { kDone, kSocket, kBind, kInUse, kReplace, kListen, kCredentials };
struct UnixOutcome {
  Stage stage = Stage::kDone;
  int err = 0;
  dev_t dev = 0;
  ino_t ino = 0;
};

// 1 when something accepts on the Unix socket at `addr` (or its backlog is full), 0 when
// nothing does (a stale file), -1 when it cannot tell. Non-blocking: a listener that never
// accepts must not hold up the caller (the daemon's event loop).
int unix_socket_alive(const sockaddr_un& addr) {
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return -1;
  int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = rc == 0 ? 0 : errno;
  ::close(probe);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return 1;
  if (err == ECONNREFUSED) return 0;
  return -1;
}

// Whether uid/gid may create a file in the directory `dir` by its mode bits (ACLs not
// read: a directory they open only by an ACL counts as not theirs, so nothing is recorded
// for it, and its file is not unlinked at stop; never the reverse). Async-signal-safe.
bool may_write_directory(int dir, uid_t uid, gid_t gid) {
  if (uid == 0) return true;
  struct stat st {};
  if (::fstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  if (st.st_uid == uid) return (st.st_mode & S_IWUSR) != 0;
  if (st.st_gid == gid) return (st.st_mode & S_IWGRP) != 0;
  return (st.st_mode & S_IWOTH) != 0;
}

// socket + bind + listen at addr.sun_path, replacing a stale socket file, and the file bound
// recorded relative to ONE directory fd: its parent, opened before the bind (following
// symlinks with the caller's permissions, so a trusted /var/run -> /run works). The bind
// itself goes by the path, so that the server sees the address it asked for (getsockname);
// if a directory on the path was swapped meanwhile the file may have been made elsewhere,
// so the inode recorded is the one in that directory only if it is a socket owned by the
// caller's euid in a directory the caller may write: the only places its bind can have
// created a file. Otherwise nothing is recorded (dev = ino = 0) and the file is never
// unlinked for it. `in_child`: in the forked child of bind_listener_as, running as the
// server's user, which unlinks a stale file with that user's permissions. Async-signal-safe,
// no allocation. On success *fd_out is the socket, *dir_out the directory (both
// close-on-exec).
UnixOutcome bind_unix_raw(const sockaddr_un& addr, int* fd_out, int* dir_out, bool in_child) {
  UnixOutcome out;
  int dir = -1;
  auto fail = [&](Stage stage, int err) {
    if (dir >= 0) ::close(dir);
    out.stage = stage;
    out.err = err;
    return out;
  };
  // The parent directory and the last component, split in a copy of sun_path.
  char parent[sizeof addr.sun_path];
  std::memcpy(parent, addr.sun_path, sizeof parent);
  parent[sizeof parent - 1] = '\0';
  const char* slash = std::strrchr(addr.sun_path, '/');
  const char* name = slash ? slash + 1 : addr.sun_path;
  if (*name == '\0') return fail(Stage::kBind, EISDIR);
  if (!slash)
    std::memcpy(parent, ".", 2);
  else if (slash == addr.sun_path)
    parent[1] = '\0';
  else
    parent[slash - addr.sun_path] = '\0';
  dir = ::open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail(Stage::kBind, errno);
  if (!in_child && unix_bind_test_hook) unix_bind_test_hook(0);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Stage::kSocket, errno);
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (::bind(fd, sa, sizeof addr) != 0) {
    int err = errno;
    struct stat st {};
    if (err != EADDRINUSE || ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISSOCK(st.st_mode)) {
      ::close(fd);
      return fail(Stage::kBind, err);
    }
    int alive = unix_socket_alive(addr);
    if (alive != 0) {
      ::close(fd);
      return fail(alive == 1 ? Stage::kInUse : Stage::kBind, err);
    }
    // Relative to the directory opened above, and (as the daemon) only that inode.
    int unlinked = 0;
    if (!in_child)
      unlinked = unlink_socket_at(dir, name, st.st_dev, st.st_ino);
    else if (::unlinkat(dir, name, 0) != 0 && errno != ENOENT)
      unlinked = errno;
    if (unlinked != 0) {
      ::close(fd);
      return fail(Stage::kReplace, unlinked);
    }
    if (::bind(fd, sa, sizeof addr) != 0) {
      err = errno;
      ::close(fd);
      return fail(Stage::kBind, err);
    }
  }
  if (!in_child && unix_bind_test_hook) unix_bind_test_hook(1);
  // The inode bound, so that only this file is ever unlinked for it (unlink_socket_at).
  struct stat st {};
  if (::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_uid == ::geteuid() && may_write_directory(dir, ::geteuid(), ::getegid())) {
    out.dev = st.st_dev;
    out.ino = st.st_ino;
  }
  if (::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    return fail(Stage::kListen, err);
  }
  *fd_out = fd;
  *dir_out = dir;
  return out;
}

// The absolute path of `dir` (as this process sees it) + "/" + name, taken once: what is
// shown and recorded in the state file. Empty when /proc cannot tell.
std::string path_in_directory(int dir, const std::string& name) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", dir);
  char target[PATH_MAX];
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0 || target[0] != '/') return "";
  std::string out(target, static_cast<size_t>(n));
  if (out.ends_with(" (deleted)")) return "";
  if (out != "/") out += "/";
  return out + name;
}

std::string last_component(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The ListenSocket for a Unix socket bound by bind_unix_raw (here or in a child): the
// inode is kept only while that directory still holds it, as a socket of `owner`.
ListenSocket unix_listen_socket(const Resource& r, UniqueFd fd, UniqueFd dir,
                                const UnixOutcome& out, uid_t owner) {
  ListenSocket s;
  s.fd = std::move(fd);
  s.address = r.name();
  s.name = last_component(r.path);
  struct stat st {};
  if (dir && out.ino != 0 && ::fstatat(dir.get(), s.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISSOCK(st.st_mode) && st.st_dev == out.dev && st.st_ino == out.ino && st.st_uid == owner) {
    s.dev = out.dev;
    s.ino = out.ino;
  }
  if (dir) s.path = path_in_directory(dir.get(), s.name);
  if (s.path.empty()) s.path = r.path;
  s.dir = std::move(dir);
  return s;
}

Status outcome_status(const UnixOutcome& out, const std::string& what, const std::string& path) {
  switch (out.stage) {
    case Stage::kDone:
      return {};
    case Stage::kSocket:
      return Status::system_error("socket for " + what, out.err);
    case Stage::kBind:
      return Status::system_error("bind " + what, out.err);
    case Stage::kInUse:
      return Status::error("bind " + what + ": Address already in use: something accepts on " +
                           path);
    case Stage::kReplace:
      return Status::system_error("bind " + what + ": replace the stale socket file", out.err);
    case Stage::kListen:
      return Status::system_error("listen " + what, out.err);
    case Stage::kCredentials:
      return Status::system_error("bind " + what + ": switch to the server's user", out.err);
  }
  return Status::error("bind " + what + ": ?");
}

Result<sockaddr_un> unix_address(const Resource& r) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (r.path.size() >= sizeof addr.sun_path)
    return Status::error("bind " + r.name() + ": path too long");
  std::memcpy(addr.sun_path, r.path.c_str(), r.path.size() + 1);
  return addr;
}

Result<ListenSocket> bind_unix(const Resource& r) {
  auto addr = unix_address(r);
  if (!addr.ok()) return addr.status();
  int fd = -1, dir = -1;
  UnixOutcome out = bind_unix_raw(*addr, &fd, &dir, /*in_child=*/false);
  if (Status s = outcome_status(out, r.name(), r.path); !s.ok()) return s;
  return unix_listen_socket(r, UniqueFd(fd), UniqueFd(dir), out, ::geteuid());
}

// The child of bind_unix_as: drops to uid/gid with no supplementary groups (as the server
// runs), binds, and sends the outcome with the descriptor. Async-signal-safe only: the
// daemon may have other threads.
[[noreturn]] void bind_as_child(int channel, const sockaddr_un& addr, uid_t uid, gid_t gid) {
  // The daemon's handlers (libuv's signal pipe) must not run here: it is not the daemon.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  UnixOutcome out;
  int fd = -1, dir = -1;
  // Raw syscalls: they change this thread's credentials only, and it is the only one.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, gid, gid, gid) != 0 ||
      ::syscall(SYS_setresuid, uid, uid, uid) != 0) {
    out.stage = Stage::kCredentials;
    out.err = errno;
  } else {
    out = bind_unix_raw(addr, &fd, &dir, /*in_child=*/true);
  }
  // The socket and the directory it was bound in: the daemon unlinks relative to that one.
  iovec iov{&out, sizeof out};
  int fds[2] = {fd, dir};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  }
  _exit(::sendmsg(channel, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof out) ? 0 : 1);
}

}  // namespace

int unlink_socket_at(int dir, const char* name, dev_t dev, ino_t ino, uid_t owner) {
  struct stat st {};
  if (::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISSOCK(st.st_mode) || st.st_dev != dev || st.st_ino != ino ||
      (owner != kAnyOwner && st.st_uid != owner))
    return EEXIST;  // someone else's file now: left alone
  if (::unlinkat(dir, name, 0) != 0 && errno != ENOENT) return errno;
  return 0;
}

int unlink_socket_file(const char* path, dev_t dev, ino_t ino, uid_t owner) {
  char buf[PATH_MAX];
  size_t len = std::strlen(path);
  if (path[0] != '/' || len >= sizeof buf) return EINVAL;
  std::memcpy(buf, path, len + 1);
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return errno;
  char* part = buf + 1;
  // Each directory on the way is opened without following a symlink: whoever controls one
  // of them cannot send this unlink elsewhere.
  for (char* slash; (slash = std::strchr(part, '/')) != nullptr; part = slash + 1) {
    *slash = '\0';
    if (*part == '\0') continue;  // "//"
    int next = ::openat(dir, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    ::close(dir);
    if (next < 0) return err == ENOENT ? 0 : err;
    dir = next;
  }
  int err = unlink_socket_at(dir, part, dev, ino, owner);
  ::close(dir);
  return err;
}

Result<BindAsChild> start_bind_as(const Resource& resource, uid_t uid, gid_t gid) {
  auto addr = unix_address(resource);
  if (!addr.ok()) return addr.status();
  const std::string what = resource.name();
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    return Status::system_error("bind " + what + ": socketpair", errno);
  UniqueFd mine(pair[0]);
  UniqueFd theirs(pair[1]);
  pid_t pid = ::fork();
  if (pid < 0) return Status::system_error("bind " + what + ": fork", errno);
  if (pid == 0) bind_as_child(theirs.get(), *addr, uid, gid);
  BindAsChild child;
  child.pid = pid;
  child.channel = std::move(mine);
  child.resource = resource;
  child.uid = uid;
  return child;
}

Result<ListenSocket> finish_bind_as(BindAsChild& child) {
  const std::string what = child.resource.name();
  UnixOutcome out;
  UniqueFd fd, dir;
  iovec iov{&out, sizeof out};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = ::recvmsg(child.channel.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); got > 0 && c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int received[2] = {-1, -1};
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      std::memcpy(received, CMSG_DATA(c), std::min<size_t>(n, 2) * sizeof(int));
      fd.reset(received[0]);
      if (n >= 2) dir.reset(received[1]);
    }
  child.channel.reset();
  // It has answered (or died: end of file): reaped now if it has exited already; one that
  // has not yet is left to the caller's reaper (the daemon's OrphanReaper), not waited for.
  int status;
  if (child.pid > 0 && ::waitpid(child.pid, &status, WNOHANG) == 0)
    ::kill(child.pid, SIGKILL);
  else
    child.pid = -1;
  if (got != static_cast<ssize_t>(sizeof out))
    return Status::error("bind " + what + " as uid " + std::to_string(child.uid) +
                         ": the binding process failed");
  if (Status s = outcome_status(out, what, child.resource.path); !s.ok()) return s;
  if (!fd || !dir) return Status::error("bind " + what + ": no socket came back");
  // Checked again here: the child's word on the inode is taken only for a socket of its
  // user still in the directory it sent.
  return unix_listen_socket(child.resource, std::move(fd), std::move(dir), out, child.uid);
}

Status abandon_bind_as(BindAsChild& child, Millis waited) {
  if (child.pid > 0) {
    ::kill(child.pid, SIGKILL);
    int status;
    // One stuck in the kernel: the caller's reaper's, so its pid is kept.
    if (::waitpid(child.pid, &status, WNOHANG) != 0) child.pid = -1;
  }
  child.channel.reset();
  return Status::error("bind " + child.resource.name() + " as uid " + std::to_string(child.uid) +
                       ": no answer within " + std::to_string(waited.count()) + " ms");
}

Result<ListenSocket> bind_listener_as(const Resource& resource, uid_t uid, gid_t gid,
                                      Millis timeout) {
  if (resource.kind != Resource::Kind::kUnix) return bind_tcp(resource);
  auto child = start_bind_as(resource, uid, gid);
  if (!child.ok()) return child.status();
  // Bounded: a path on a hung file system must not stall the caller for long.
  pollfd p{child->channel.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return abandon_bind_as(*child, timeout);
  return finish_bind_as(*child);
}

Result<ListenSocket> bind_listener(const Resource& resource) {
  return resource.kind == Resource::Kind::kUnix ? bind_unix(resource) : bind_tcp(resource);
}

std::string bound_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
    // Appended piecewise: GCC 12's -Wrestrict misfires on "[" + std::string(...) at -O2.
    std::string out = "[";
    out.append(host).append("]:").append(std::to_string(ntohs(a6->sin6_port)));
    return out;
  }
  if (addr.ss_family == AF_INET) {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a4->sin_port));
  }
  if (addr.ss_family == AF_UNIX) {
    return "unix:" + std::string(reinterpret_cast<sockaddr_un*>(&addr)->sun_path);
  }
  return "?";
}

}  // namespace serverswap::handover
