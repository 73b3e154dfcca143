// InstanceLock: at most one daemon per control socket. An flock(2) on "<socket>.lock" is
// held for the daemon's lifetime; the kernel drops it when the daemon dies, however it
// dies, so a stale socket file can be replaced safely and no daemon ever kills another.
#pragma once

#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace serverswap::daemon {

struct InstanceLock {
  UniqueFd fd;
  bool held() const { return fd.valid(); }
};

// An InstanceLock that is not held() when another process holds it; an error when the lock
// file cannot be opened at all (or is a symbolic link).
Result<InstanceLock> try_lock_instance(const std::string& socket_path);

// The files the daemon keeps beside its control socket DIR/NAME are named after the socket,
// so that two daemons in one directory never share one: DIR/NAME.lock, DIR/NAME.state.json,
// DIR/NAME.log. Each is opened relative to the directory, O_NOFOLLOW, through this:
// the directory itself opened O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC (a symbolic link in its
// place is refused with ELOOP). The caller owns the fd.
Result<UniqueFd> open_socket_directory(const std::string& socket_path);

// The name of the socket's file within its directory ("control.sock").
std::string socket_file_name(const std::string& socket_path);

}  // namespace serverswap::daemon
