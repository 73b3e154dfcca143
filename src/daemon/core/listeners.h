// Listeners: the supervisor's seam for the listening sockets it owns and hands to servers
// (docs/architecture.md, "Seams"). Production: SocketSet; the simulator: an in-memory fake
// that can refuse a bind. Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "protocol/resource.h"

namespace serverswap::daemon {

class Listeners {
 public:
  // Who a socket is bound for: a server run as another user (--user) binds its Unix
  // sockets as that user (handover::bind_listener_as).
  struct BindAs {
    uid_t uid = 0;
    gid_t gid = 0;
  };

  struct Entry {
    std::string address;  // as bound: "[::]:8080"
    std::string unix_path;
    uv_stream_t* handle = nullptr;  // owns the fd; what uv_write2 sends
    // The uid it was bound for (the daemon's own for its own servers and for sockets it
    // adopted): a server of another user is handed it only if it is that user's, or granted.
    uid_t owner = 0;
    // Its Unix socket file (unlinked only while it is still this inode), and whether the
    // daemon bound it itself (only those are closed when idle: an adopted socket unit's is
    // its service manager's).
    dev_t dev = 0;
    ino_t ino = 0;
    bool bound_here = false;
    // The directory it was bound in (the SocketSet's own binds; none after a daemon restart)
    // and the file's name there: it is unlinked relative to that directory, never by
    // resolving unix_path again (which shows that directory's path as it was at bind).
    std::shared_ptr<UniqueFd> dir;
    std::string unix_name;
  };

  virtual ~Listeners() = default;

  // The socket for `resource`, bound now if no entry has it: by the daemon itself, or with
  // `as`, a Unix socket by a child running as that user (bounded by `bind_timeout`). The
  // entry stays owned by this object.
  virtual Result<const Entry*> get_or_bind(const protocol::Resource& resource,
                                           std::optional<BindAs> as = std::nullopt,
                                           Millis bind_timeout = Millis(2000)) = 0;
  // What get_or_bind_async reports: the entry, or why there is none.
  using BindDone = std::function<void(Result<const Entry*>)>;
  // get_or_bind without waiting: `done` is called from the loop when the socket is bound (a
  // Unix socket bound as another user comes from a child), or before this returns when
  // nothing has to be waited for. Not called if this object is destroyed first.
  virtual void get_or_bind_async(const protocol::Resource& resource, std::optional<BindAs> as,
                                 BindDone done, Millis bind_timeout = Millis(2000)) = 0;
  // Takes a socket bound by someone else for resource `name`.
  virtual Status adopt(const std::string& name, UniqueFd fd,
                       const std::string& from = "the service manager") = 0;
  virtual const Entry* find(const std::string& name) const = 0;
  virtual const std::map<std::string, Entry>& entries() const = 0;
  // After `grace`, closes the socket of `name` unless `in_use(name)` says it is wanted.
  virtual void close_when_idle(const std::string& name, Millis grace,
                               std::function<bool(const std::string&)> in_use) = 0;
};

}  // namespace serverswap::daemon
