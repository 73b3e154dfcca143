#include "daemon/sockets/socket_file.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/safe_path.h"

namespace serverswap::daemon {

Status check_owned_directory(int dir, const std::string& what, const std::string& path,
                             bool passable) {
  struct stat st {};
  if (::fstat(dir, &st) != 0) return Status::system_error("stat " + path, errno);
  if (st.st_uid != ::geteuid())
    return Status::error(what + " " + path + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not to the daemon's uid " + std::to_string(::geteuid()) +
                         ": another user could bind a server's socket there; remove it (the "
                         "daemon makes it again)");
  if ((st.st_mode & (passable ? 066 : 077)) != 0) {
    std::string wanted = passable ? "0711" : "0700";
    std::string why = passable ? "others may pass, not list or write" : "no access for others";
    return Status::error(what + " " + path + " has mode " + octal_mode(st.st_mode) +
                         "; it must be " + wanted + " (" + why + "): chmod " + wanted + " " + path);
  }
  return {};
}

bool fits_sun_path(const std::string& path) {
  return path.size() < sizeof(sockaddr_un{}.sun_path);
}

Status bind_socket_in(int fd, int dir, const std::string& name, uid_t uid,
                      const std::string& what) {
  // Linux gives the socket file the mode of the socket inode: 0600 from the start, so that
  // no one else can connect or send before the chmod below.
  ::fchmod(fd, 0600);
  if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT)
    return Status::system_error("remove the stale " + what, errno);
  std::string via = "/proc/self/fd/" + std::to_string(dir) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fits_sun_path(via)) return Status::error(what + ": name too long");
  std::memcpy(addr.sun_path, via.data(), via.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::system_error("bind " + what, errno);
  // The server's uid may use it (it owns the file: widening that is its own business; it
  // cannot rename or remove it, the directory is ours). Everyone else: EACCES.
  bool given = uid == ::geteuid() ||
               ::fchownat(dir, name.c_str(), uid, static_cast<gid_t>(-1), AT_SYMLINK_NOFOLLOW) == 0;
  if (!given || ::fchmodat(dir, name.c_str(), 0600, 0) != 0) {
    int err = errno;
    ::unlinkat(dir, name.c_str(), 0);
    return Status::system_error("give " + what + " to uid " + std::to_string(uid), err);
  }
  return {};
}

}  // namespace serverswap::daemon
