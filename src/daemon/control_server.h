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
#include "daemon/connection.h"

namespace serverswap::daemon {

// Connections at once, servers and commands together (docs/protocol.md, "Limits"): well
// under the default 1024-fd limit, so the daemon keeps fds for sockets and children.
inline constexpr size_t kMaxConnections = 512;

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
  // A second socket only `uid` (and root) can reach, for servers started as that user: in
  // a fresh 0700 directory of theirs under $TMPDIR or /tmp. Made once per uid; its path.
  Result<std::string> listen_for_user(uid_t uid, gid_t gid);
  // Stops accepting and removes the socket files; open connections stay.
  void stop_listening();
  // Starts closing every connection (flushing what was sent to each).
  void close_all();

  Connection* find(uint64_t id);

 private:
  struct Listener {
    uv_pipe_t* pipe = nullptr;
    std::string path;
    std::string directory;  // removed with it (per-user sockets only)
  };

  Result<uv_pipe_t*> open_listener(const std::function<int(uv_pipe_t*)>& attach,
                                   const std::string& what);
  Result<uv_pipe_t*> bind_listener(const std::string& path);
  void on_connection(uv_stream_t* listener);
  bool peer_allowed(const Connection& connection) const;

  uv_loop_t* loop_;
  Handlers handlers_;
  uv_pipe_t* listener_ = nullptr;
  std::string path_;
  std::map<uid_t, Listener> user_listeners_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
};

}  // namespace serverswap::daemon
