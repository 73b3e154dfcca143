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
// file cannot be opened at all.
Result<InstanceLock> try_lock_instance(const std::string& socket_path);

}  // namespace serverswap::daemon
