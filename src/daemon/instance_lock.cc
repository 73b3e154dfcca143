#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <filesystem>

namespace serverswap::daemon {

Result<UniqueFd> open_socket_directory(const std::string& socket_path) {
  std::string dir = std::filesystem::path(socket_path).parent_path().string();
  if (dir.empty()) dir = ".";
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::system_error("open the directory " + dir, errno);
  return fd;
}

std::string socket_file_name(const std::string& socket_path) {
  return std::filesystem::path(socket_path).filename().string();
}

Result<InstanceLock> try_lock_instance(const std::string& socket_path) {
  std::string path = socket_path + ".lock";
  auto dir = open_socket_directory(socket_path);
  if (!dir.ok()) return dir.status();
  // O_NOFOLLOW: a symbolic link planted in its place would make us create or lock another file.
  UniqueFd fd(::openat(dir->get(), (socket_file_name(socket_path) + ".lock").c_str(),
                       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Status::system_error("open " + path, errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return InstanceLock{};
    return Status::system_error("flock " + path, errno);
  }
  return InstanceLock{std::move(fd)};
}

}  // namespace serverswap::daemon
