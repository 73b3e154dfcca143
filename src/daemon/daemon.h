// Daemon: the event loop with its control socket, listening sockets, supervisor and signal
// watches. SIGINT/SIGTERM (or a `stop` request) take every server down gracefully and end
// run(); a second SIGINT/SIGTERM kills what is left at once. Loop thread only.
#pragma once

#include <uv.h>

#include <memory>
#include <optional>

#include "daemon/control_server.h"
#include "daemon/instance_lock.h"
#include "daemon/socket_set.h"
#include "daemon/supervisor.h"
#include "daemon/uv_handle.h"

namespace serverswap::daemon {

class Daemon {
 public:
  Daemon(SupervisorOptions options, InstanceLock lock);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds the control socket and watches signals.
  Status start();
  // The command given on the daemon's own command line (first run): if it fails before any
  // server is up, the daemon stops and run() returns 1.
  void deploy_first(const SpawnSpec& spec);
  // Runs until stopped; the exit code for the process.
  int run();

 private:
  void on_line(Connection& connection, const std::string& line);
  void control_request(Connection& connection, const protocol::Message& message);
  void deploy_request(Connection& connection, const protocol::Message& message);
  void stop(const std::string& why);
  void finish();
  Supervisor::Sink sink_for(uint64_t connection_id);

  uv_loop_t loop_;
  SupervisorOptions options_;
  InstanceLock lock_;
  std::unique_ptr<SocketSet> sockets_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<std::unique_ptr<SignalWatch>> signals_;
  std::vector<uint64_t> stop_requesters_;
  int exit_code_ = 0;
  bool stopping_ = false;
};

}  // namespace serverswap::daemon
