// SocketSet: the daemon's listening sockets, keyed by resource name. A resource is bound
// the first time a server asks for it and kept while servers use it, so that successive
// servers share one kernel socket and one accept queue; one that no server has used for a
// grace is closed (close_when_idle). Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/core/listeners.h"
#include "daemon/uv_handle.h"
#include "handover/listen_socket.h"
#include "protocol/resource.h"

namespace serverswap::daemon {

// Binds as another user under way at once, per uid (get_or_bind_async; each is a process):
// more wait in a queue, in the order asked, of at most kMaxQueuedBindsPerUid; beyond that
// they are refused.
inline constexpr size_t kMaxPendingBindsPerUid = 8;
inline constexpr size_t kMaxQueuedBindsPerUid = 1024;

class SocketSet : public Listeners {
 public:
  explicit SocketSet(uv_loop_t* loop);
  ~SocketSet() override;
  SocketSet(const SocketSet&) = delete;
  SocketSet& operator=(const SocketSet&) = delete;

  // The socket for `resource`, bound now if no entry has it: by the daemon itself, or with
  // `as`, a Unix socket by a child running as that user (bounded by `bind_timeout`).
  Result<const Entry*> get_or_bind(const protocol::Resource& resource,
                                   std::optional<BindAs> as = std::nullopt,
                                   Millis bind_timeout = Millis(2000)) override;
  // get_or_bind without waiting on the loop: a Unix socket bound `as` another user is bound
  // by a forked child whose answer is read when it comes (uv_poll), and `done` is called then
  // from the loop, or with an error after `bind_timeout` (the child killed). Requests for a
  // name whose bind is under way or queued wait for that one; beyond kMaxPendingBindsPerUid
  // under way for that uid, a request is queued and started when one of them ends (beyond
  // kMaxQueuedBindsPerUid queued, `done` gets an error at once). In every other case (an entry
  // exists, TCP, the daemon's own user) `done` is called before this returns. A SocketSet destroyed
  // meanwhile kills the child and calls no `done`.
  void get_or_bind_async(const protocol::Resource& resource, std::optional<BindAs> as,
                         BindDone done, Millis bind_timeout = Millis(2000)) override;
  // Binds under way and queued (get_or_bind_async), for tests and status.
  size_t binds_pending() const { return pending_.size(); }
  size_t binds_queued() const { return queued_.size(); }
  // Whether `pid`, just reaped by the daemon's OrphanReaper, was a child of this set's that
  // bound as another user and was killed after its answer (or timeout) before it had exited;
  // it is forgotten then. Such a child is no server's orphan: nothing is logged for it.
  bool reaped_binding_child(pid_t pid);

  // Takes a socket bound by someone else (systemd's socket units) for resource `name`,
  // which get_or_bind then returns. Its Unix socket file, if any, is left for its owner.
  Status adopt(const std::string& name, UniqueFd fd,
               const std::string& from = "the service manager") override;
  // A Unix socket file an earlier image of the daemon bound for `name` (its state file's
  // socketFiles): when the socket of `name` is adopted (from that image over execve, or from
  // a server that resumes), its entry gets this path, inode and owner, so that it is handed
  // to the same user and unlinked as if bound here. One never adopted is unlinked (by inode)
  // when this set is destroyed, and recorded again meanwhile (unclaimed_socket_files).
  void expect_socket_file(const std::string& name, Entry file);
  const std::map<std::string, Entry>& unclaimed_socket_files() const { return expected_files_; }
  const Entry* find(const std::string& name) const override;
  const std::map<std::string, Entry>& entries() const override { return entries_; }

  // After `grace`, closes the socket of `name` (unlinking its file by its inode) unless
  // `in_use(name)` says a server still wants it; nothing if one is already pending for it
  // (unless `grace` is 0: that one replaces it), or the daemon did not bind it. Logs "closed NAME:
  // no server has held it for GRACE".
  void close_when_idle(const std::string& name, Millis grace,
                       std::function<bool(const std::string&)> in_use) override;

 private:
  void close_entry(const std::string& name);
  // A socket bound for `resource` (by us or for `as`) made an entry.
  Result<const Entry*> add_bound(const protocol::Resource& resource, std::optional<BindAs> as,
                                 handover::ListenSocket bound);
  struct PendingBind;
  std::map<std::string, Entry> expected_files_;  // expect_socket_file; handle unused
  std::set<pid_t> binding_children_;             // killed, not yet reaped (reaped_binding_child)
  struct QueuedBind {
    protocol::Resource resource;
    BindAs as;
    std::vector<BindDone> waiting;
    Millis timeout;
  };
  // Forks the child that binds `resource` as `as` and polls for its answer.
  void start_bind(const protocol::Resource& resource, const BindAs& as,
                  std::vector<BindDone> waiting, Millis bind_timeout);
  void bind_answered(const std::string& name, bool timed_out);
  // Starts the oldest queued bind of `uid`, if any.
  void start_queued(uid_t uid);

  uv_loop_t* loop_;
  std::map<std::string, std::unique_ptr<PendingBind>> pending_;
  std::deque<QueuedBind> queued_;  // all uids, oldest first
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::unique_ptr<Timer>> idle_timers_;
};

}  // namespace serverswap::daemon
