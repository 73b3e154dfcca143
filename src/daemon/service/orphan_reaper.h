// OrphanReaper: makes the daemon the reaper of its servers' orphans. A server's descendant
// whose parent exits (a daemonizing child, a Node.js relay outliving node) is reparented to
// the nearest subreaper, or to PID 1 -- which, in a container, is often the daemon itself
// and never reaps it, leaving a zombie. As a subreaper (PR_SET_CHILD_SUBREAPER) the daemon
// gets them in every setting, and reaps each on SIGCHLD. Its own servers are left to libuv,
// which waits for each by pid. Each orphan reaped is logged ("reaped orphan pid N"), at
// most at LogLimiter's rate for the uid it ran as (a server can fork without end, and
// hides no other user's lines by it); children the daemon forked
// itself and left to be reaped here (`was_helper`) are reaped silently. Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <optional>
#include <set>
#include <vector>

#include "daemon/control/log_limiter.h"
#include "daemon/uv_handle.h"

namespace serverswap::daemon {

class OrphanReaper {
 public:
  // `is_server`: servers adopted from an earlier image of the daemon after an upgrade are
  // its children with no uv_process_t; their ServerProcess reaps them, not this.
  // `was_helper`: asked of each pid reaped; true for a process the daemon forked for its own
  // work (SocketSet::reaped_binding_child), which is not logged.
  OrphanReaper(uv_loop_t* loop, std::function<bool(pid_t)> is_server,
               std::function<bool(pid_t)> was_helper = {});
  OrphanReaper(const OrphanReaper&) = delete;
  OrphanReaper& operator=(const OrphanReaper&) = delete;

  // Reaps every exited child of the daemon that no uv_process_t of the loop waits for.
  void reap();

 private:
  std::set<pid_t> spawned_by_the_loop() const;

  uv_loop_t* loop_;
  std::function<bool(pid_t)> is_server_;
  std::function<bool(pid_t)> was_helper_;
  LogLimiter log_;
  SignalWatch sigchld_;
};

// The current children of this process (every thread's), from /proc.
std::vector<pid_t> children_of_self();

// The real uid of process `pid` (a zombie's too), from /proc/PID/status; none when it
// cannot be read.
std::optional<uid_t> real_uid_of(pid_t pid);

}  // namespace serverswap::daemon
