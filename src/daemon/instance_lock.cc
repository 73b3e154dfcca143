#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace serverswap::daemon {

Result<InstanceLock> try_lock_instance(const std::string& socket_path) {
  std::string path = socket_path + ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Status::system_error("open " + path, errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return InstanceLock{};
    return Status::system_error("flock " + path, errno);
  }
  return InstanceLock{std::move(fd)};
}

}  // namespace serverswap::daemon
