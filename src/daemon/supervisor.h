// Supervisor: the one owner of all swap state. It starts servers, hands them listening
// sockets, decides when a server is up, takes the older holders of its resources down,
// kills what fails, and reports each step to the deploy that asked for it.
// Every transition is a small method named for its event; docs/architecture.md has the
// state table. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/duration.h"
#include "daemon/connection.h"
#include "daemon/server.h"
#include "daemon/socket_set.h"
#include "protocol/message.h"

namespace serverswap::daemon {

struct SupervisorOptions {
  std::string socket_path;
  Millis ready_timeout{60'000};
  Millis takedown_timeout{30'000};
  Millis settle{1'000};
  int takedown_signal = 15;  // SIGTERM
  // This program, given to servers as SERVERSWAP_RELAY (the Node.js client runs its
  // node-relay subcommand).
  std::string relay_path;
};

class Supervisor {
 public:
  // Where a deploy's progress goes: event lines, then deployed/deployFailed, and with
  // follow_exit, serverExited.
  using Sink = std::function<void(const protocol::Json&)>;
  using FindConnection = std::function<Connection*(uint64_t id)>;

  Supervisor(uv_loop_t* loop, SupervisorOptions options, SocketSet& sockets,
             FindConnection find_connection);
  ~Supervisor();

  void deploy(const SpawnSpec& spec, Sink sink, bool follow_exit);

  // Messages from servers, already decoded. `hello` binds the connection to a server.
  void hello(Connection& connection, const protocol::Message& message);
  void server_message(Connection& connection, const protocol::Message& message);
  void disconnected(Connection& connection);

  protocol::Json status() const;
  // Takes every server down gracefully; `done` runs once the last one has exited.
  void stop(std::function<void()> done);
  // SIGKILL to every server's process group (a second Ctrl-C).
  void kill_all();
  bool stopping() const { return static_cast<bool>(stop_done_); }
  size_t server_count() const { return servers_.size(); }

 private:
  struct Deploy {
    Sink sink;
    bool follow_exit = false;
    std::set<std::string> replacing;  // ids of the older servers it takes down, still alive
    protocol::Json replaced = protocol::Json::array();  // pids of those it took down
    bool reported = false;                              // deployed or deployFailed sent
  };

  Server* find(const std::string& id);
  Server* server_of(const Connection& connection);
  Connection* connection_of(const Server& server);
  void reply_error(Connection& connection, const std::string& text, const protocol::Message& m);

  // Messages.
  void ready_for(Server& server, Connection& connection, const protocol::Message& message);
  void on_takedown(Server& server, Connection& connection, const protocol::Message& message);

  // Transitions.
  void become_up(Server& server, const std::string& how);
  void take_down(Server& victim, const std::set<std::string>& resources, const std::string& why);
  void begin_draining(Server& server);
  void fail(Server& server, const std::string& reason, Millis signal_after = Millis(0));
  void exited(const std::string& id, int64_t status, int term_signal);
  void kill_after_grace(Server& server);
  void signal(Server& server, int signum, const std::string& why);

  // Reporting.
  void emit(const Server& server, const std::string& kind, const std::string& text,
            const std::string& resource = "");
  void check_deployed(const std::string& id);
  void report_exit(const Server& server, const std::string& description, bool replaced);

  uv_loop_t* loop_;
  SupervisorOptions options_;
  SocketSet& sockets_;
  FindConnection find_connection_;
  uint64_t next_generation_ = 1;
  std::map<std::string, std::unique_ptr<Server>> servers_;
  std::map<std::string, Deploy> deploys_;  // by the id of the server it started
  std::function<void()> stop_done_;
};

}  // namespace serverswap::daemon
