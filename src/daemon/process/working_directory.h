// WorkingDirectory: the directory a server is started in, opened by the daemon and held from
// the moment it is checked until the child's chdir, so that what is recorded (and, for a
// rollback, checked) is exactly where the server runs: a symbolic link switched in between
// (`current` repointed by a release tool) changes nothing.
//
// The daemon opens it as spawn's chdir would run it: as the daemon's user, before a --user
// server's setuid (libuv's order), and only the daemon's user or root may deploy
// (docs/security.md, "Working directories and rollbacks").
#pragma once

#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/core/spawn_spec.h"

namespace serverswap::daemon {

struct WorkingDirectory {
  UniqueFd fd;  // O_PATH|O_DIRECTORY, close-on-exec (open in the child until its exec)
  PhysicalDirectory physical;
  // What the child chdirs to: the held directory itself, through its descriptor.
  std::string chdir_path() const { return "/proc/self/fd/" + std::to_string(fd.get()); }
};

// `spec`'s directory: its `cwd` ("/" when empty), or for a pinned spec its recorded
// physical directory, refused when that is gone or is no longer the same directory (device
// and inode). The descriptor is at `min_fd` or above, clear of the fds the child's stdio and
// inherited sockets are placed at before it chdirs.
Result<WorkingDirectory> open_working_directory(const SpawnSpec& spec, int min_fd);

}  // namespace serverswap::daemon
