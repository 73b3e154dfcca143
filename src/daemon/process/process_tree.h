// Process tree: whether a process (a control connection's SO_PEERCRED pid) belongs to a
// server, i.e. is the server's main process or one of its descendants, whatever session or
// process group it moved to. Read from /proc/PID/stat; thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"

namespace serverswap::daemon {

// How many parents are followed at most: deeper trees are not a server's (the walk must
// stay bounded whatever a peer does).
inline constexpr int kMaxProcessDepth = 64;

// Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, it names one process
// (a recycled pid has another). An error naming the file when the process is gone or the
// file is unreadable.
Result<uint64_t> process_start_time(pid_t pid);

// The parent pid of `pid` (field 4 of /proc/PID/stat); -1 when the process is gone or
// unreadable.
pid_t parent_pid(pid_t pid);

// True when `pid` is `ancestor` or a descendant of it (at most kMaxProcessDepth parents up),
// and `ancestor` still has `ancestor_start_time` (field 22 of /proc/PID/stat, so that a
// recycled pid does not count; 0 skips that check). False for pid <= 0 or a process that is
// gone.
bool is_process_of(pid_t pid, pid_t ancestor, uint64_t ancestor_start_time);

// /proc/PID/comm without the newline ("gunicorn"); "?" when the process is gone.
std::string process_comm(pid_t pid);

}  // namespace serverswap::daemon
