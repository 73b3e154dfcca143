#include "daemon/process/working_directory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace serverswap::daemon {

namespace {

std::string dev_ino(uint64_t dev, uint64_t ino) {
  return std::to_string(dev) + ":" + std::to_string(ino);
}

// Why a pinned spec's directory cannot be used, saying which version it was and what to do.
std::string not_there(const SpawnSpec& spec, const std::string& what) {
  return "the directory this version ran in, " + spec.physical->path + " (what " + spec.cwd +
         " named when it was started), " + what +
         ": it is not started there again (deploy the release from where it is now)";
}

}  // namespace

Result<WorkingDirectory> open_working_directory(const SpawnSpec& spec, int min_fd) {
  bool pinned = spec.pinned && spec.physical;
  std::string path = pinned ? spec.physical->path : spec.cwd.empty() ? "/" : spec.cwd;
  UniqueFd opened(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!opened) {
    int error = errno;
    if (pinned)
      return Status::error(
          not_there(spec, std::string("cannot be opened (") + std::strerror(error) + ")"));
    return Status::system_error("working directory " + path, error);
  }
  WorkingDirectory dir;
  dir.fd = UniqueFd(::fcntl(opened.get(), F_DUPFD_CLOEXEC, min_fd));
  if (!dir.fd) return Status::system_error("dup of working directory " + path, errno);
  struct stat st {};
  if (::fstat(dir.fd.get(), &st) != 0)
    return Status::system_error("fstat working directory " + path, errno);
  dir.physical.dev = st.st_dev;
  dir.physical.ino = st.st_ino;
  char resolved[PATH_MAX];
  ssize_t n = ::readlink(dir.chdir_path().c_str(), resolved, sizeof resolved - 1);
  if (n < 0) return Status::system_error("readlink " + dir.chdir_path() + " (" + path + ")", errno);
  dir.physical.path.assign(resolved, static_cast<size_t>(n));
  if (pinned && !dir.physical.same_as(*spec.physical))
    return Status::error(not_there(
        spec, "is another directory now (device:inode " +
                  dev_ino(spec.physical->dev, spec.physical->ino) + " then, " +
                  dev_ino(dir.physical.dev, dir.physical.ino) + " now: replaced by a release?)"));
  return dir;
}

}  // namespace serverswap::daemon
