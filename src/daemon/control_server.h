// ControlServer: the daemon's Unix stream control socket. Creates the socket 0600 (the
// directory is the caller's business, see cli/socket_path.h), refuses peers of another
// uid (SO_PEERCRED; root is let in), and owns every Connection. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/status.h"
#include "daemon/connection.h"

namespace serverswap::daemon {

class ControlServer {
 public:
  struct Handlers {
    std::function<void(Connection&, const std::string& line)> on_line;
    std::function<void(Connection&)> on_disconnect;
  };

  ControlServer(uv_loop_t* loop, Handlers handlers);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  Status listen(const std::string& path);
  // Stops accepting and removes the socket file; open connections stay.
  void stop_listening();
  // Starts closing every connection (flushing what was sent to each).
  void close_all();

  Connection* find(uint64_t id);

 private:
  void on_connection();

  uv_loop_t* loop_;
  Handlers handlers_;
  uv_pipe_t* listener_ = nullptr;
  std::string path_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
};

}  // namespace serverswap::daemon
