// ControlServer: the daemon's Unix stream control socket. Creates the socket 0600 (the
// directory is the caller's business, see cli/socket_path.h), refuses peers of another
// uid (SO_PEERCRED; root is let in) unless they are servers the daemon started as that
// uid (`--user`), and owns every Connection. Such servers cannot reach the daemon's 0700
// directory, so they connect through a socket of their own user (listen_for_user).
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/status.h"
#include "daemon/control/accept_throttle.h"
#include "daemon/control/connection.h"
#include "daemon/control/log_limiter.h"
#include "daemon/sockets/user_directory.h"
#include "observe/counters.h"

namespace serverswap::daemon {

// Connections at once, servers and commands together (docs/protocol.md, "Limits"): well
// under the default 1024-fd limit, so the daemon keeps fds for sockets and children.
inline constexpr size_t kMaxConnections = 512;
// Of those, peers of another uid (servers run with --user) may hold at most this many per
// uid, and all of them together at most kMaxConnections less kReservedConnections: the
// reserve is for the daemon's own user and root, so that `status`, `stop` and deploys
// work while other users hold their whole quota.
inline constexpr size_t kMaxConnectionsPerUid = 64;
inline constexpr size_t kReservedConnections = 64;

// The caps for a daemon allowed `fd_limit` descriptors (RLIMIT_NOFILE): what is left
// after kReservedFds (listening, notify and metrics sockets, children's pipes, files) is
// shared two to one between connections and descriptors held pending (connection.h),
// each at most its maximum above. At 1024 fds: 512 connections, 256 pending fds.
struct ConnectionCaps {
  size_t total = kMaxConnections;
  size_t others = kMaxConnections - kReservedConnections;  // all other uids together
  size_t per_uid = kMaxConnectionsPerUid;                  // each other uid
  size_t pending_fds = kMaxPendingFds;
};
inline constexpr uint64_t kReservedFds = 256;
ConnectionCaps caps_for_fd_limit(uint64_t fd_limit);

// Raises this process's soft RLIMIT_NOFILE to its hard limit, as daemons commonly do (the
// default soft limit, 1024, is kept low for programs that use select(2)); its servers
// inherit the raised limit. The soft limit in force afterwards (unchanged if that failed).
uint64_t raise_fd_limit();

class ControlServer {
 public:
  struct Handlers {
    std::function<void(Connection&, const std::string& line)> on_line;
    std::function<void(Connection&)> on_disconnect;
    // A peer of another uid is let in when this says it is a process of a server running as
    // that uid (its main process or a descendant).
    std::function<bool(pid_t pid, uid_t uid)> is_server_peer;
  };

  ControlServer(uv_loop_t* loop, Handlers handlers);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  Status listen(const std::string& path);
  // `serverswap upgrade`: the listener the previous image bound at `path`, inherited as `fd`.
  Status listen_inherited(const std::string& path, int fd);
  // The control listener's descriptor (-1 when not listening), to keep across an upgrade.
  int listener_fd() const;
  // Where listen_for_user() binds (borrowed; must outlive this). Before the first call.
  void use_user_directory(UserDirectory* directory) { user_directory_ = directory; }
  // A second socket only `uid` (and root) can reach, for servers started as that user:
  // control-uid<UID>.sock in the UserDirectory, the file `uid`'s, mode 0600. Made once per
  // uid (again at the same path by a restarted daemon: the name depends on the uid only);
  // its path. Errors name the path and the cause (a path too long for sun_path, no safe
  // temporary directory, the errno text of socket, bind or chown).
  Result<std::string> listen_for_user(uid_t uid);
  // Stops accepting and removes the socket files; open connections stay.
  void stop_listening();
  // Starts closing every connection (flushing what was sent to each).
  void close_all();

  Connection* find(uint64_t id);
  // The caps on connections and pending descriptors (before listening; the default is
  // kMaxConnections and its shares, for a 1024-fd limit).
  void set_caps(const ConnectionCaps& caps);

 private:
  struct Listener {
    uv_pipe_t* pipe = nullptr;
    std::string path;
    std::string name;  // in the UserDirectory
    // Connections per second on this listener (any peer: only `uid` and root can reach it).
    AcceptThrottle throttle;
    // Serves the connection held back while the listener is paused (heap; closed with it).
    uv_timer_t* resume = nullptr;
    ControlServer* owner = nullptr;
  };

  Result<uv_pipe_t*> open_listener(const std::function<int(uv_pipe_t*)>& attach,
                                   const std::string& what);
  Result<uv_pipe_t*> bind_listener(const std::string& path);
  void on_connection(uv_stream_t* listener);
  // Accepts the connection pending on `listener` and admits or refuses it; `main` for the
  // daemon's own control socket. False when uv_accept failed.
  bool accept_connection(uv_stream_t* listener, bool main);
  static void on_listener_readable(uv_stream_t* listener, int status);
  static constexpr int kBacklog = 128;
  // Stops accepting on a per-user listener for `pause_ms` (see on_connection).
  void pause(Listener& listener, uint64_t pause_ms);
  bool peer_allowed(const Connection& connection) const;
  // Empty when `connection` (of another uid than the daemon's and root) fits its quota.
  std::string over_quota(uid_t uid) const;
  void refuse(Connection& connection, observe::Refused why, const std::string& log,
              const std::string& reply);

  uv_loop_t* loop_;
  Handlers handlers_;
  uv_pipe_t* listener_ = nullptr;
  std::string path_;
  UserDirectory* user_directory_ = nullptr;
  std::map<uid_t, Listener> user_listeners_;
  // Connections per second on the main control socket from each uid other than the
  // daemon's and root (all of them refused unless servers): over the rate, closed unread.
  std::map<uid_t, AcceptThrottle> main_throttles_;
  uint64_t next_id_ = 1;
  ConnectionCaps caps_;
  ConnectionShared shared_;
  // Lines about refused connections, by peer uid (LogLimiter).
  LogLimiter refused_log_;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  // Connections let in (refused ones are closing already), by id: their peer's uid; and
  // how many each uid holds, and all uids but the daemon's and root together.
  std::map<uint64_t, uid_t> admitted_;
  std::map<uid_t, size_t> admitted_by_uid_;
  size_t admitted_others_ = 0;
};

}  // namespace serverswap::daemon
