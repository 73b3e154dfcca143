#include "daemon/sockets/network_namespace.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "base/unique_fd.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // Linux 5.14; older C libraries lack the name
#endif

namespace serverswap::daemon {
namespace {

// The cookie of `fd`'s namespace, or the errno (ENOPROTOOPT on kernels before 5.14).
bool netns_cookie(int fd, uint64_t* cookie, int* err) {
  socklen_t len = sizeof *cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) == 0) return true;
  *err = errno;
  return false;
}

// The namespace's inode through SIOCGSKNS (CAP_NET_ADMIN), compared with our own; true
// when it cannot be asked (no CAP_NET_ADMIN: an unprivileged daemon runs its own servers).
Result<bool> same_namespace_by_inode(int fd) {
  UniqueFd ns(::ioctl(fd, SIOCGSKNS));
  if (!ns) {
    if (errno == EPERM || errno == ENOTTY || errno == EINVAL) return true;
    return Status::system_error("SIOCGSKNS", errno);
  }
  struct stat theirs {
  }, ours{};
  if (::fstat(ns.get(), &theirs) != 0) return Status::system_error("fstat the namespace", errno);
  if (::stat("/proc/self/ns/net", &ours) != 0)
    return Status::system_error("stat /proc/self/ns/net", errno);
  return theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino;
}

}  // namespace

Result<bool> in_daemon_network_namespace(int fd) {
  uint64_t cookie = 0;
  int err = 0;
  if (!netns_cookie(fd, &cookie, &err)) {
    if (err == ENOPROTOOPT) return same_namespace_by_inode(fd);
    return Status::system_error("SO_NETNS_COOKIE", err);
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe) return Status::system_error("socket", errno);
  uint64_t ours = 0;
  if (!netns_cookie(probe.get(), &ours, &err)) return Status::system_error("SO_NETNS_COOKIE", err);
  return cookie == ours;
}

}  // namespace serverswap::daemon
