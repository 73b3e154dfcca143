#include "daemon/supervisor.h"

#include <signal.h>

#include <random>

#include "base/join.h"
#include "base/log.h"

namespace serverswap::daemon {

using protocol::Json;

const char* state_name(ServerState state) {
  switch (state) {
    case ServerState::kStarting:
      return "starting";
    case ServerState::kConnected:
      return "connected";
    case ServerState::kReady:
      return "ready";
    case ServerState::kUp:
      return "up";
    case ServerState::kDraining:
      return "draining";
    case ServerState::kFailed:
      return "failed";
    case ServerState::kGone:
      return "gone";
  }
  return "?";
}

namespace {

// How long a server that closed its connection before it was up may take to exit by
// itself before it is signalled.
constexpr Millis kExitGrace{1000};

// Generation plus 64 random bits: one server cannot guess another's id.
std::string make_id(uint64_t generation) {
  static std::mt19937_64 random{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%llu.%016llx", static_cast<unsigned long long>(generation),
                static_cast<unsigned long long>(random()));
  return buf;
}

std::string describe_exit(int64_t status, int term_signal) {
  if (term_signal != 0) return "killed by " + signal_name(term_signal);
  return "exited with status " + std::to_string(status);
}

}  // namespace

Supervisor::Supervisor(uv_loop_t* loop, SupervisorOptions options, SocketSet& sockets,
                       FindConnection find_connection)
    : loop_(loop),
      options_(std::move(options)),
      sockets_(sockets),
      find_connection_(std::move(find_connection)) {}

Supervisor::~Supervisor() {
  // Servers still running when the daemon is torn down (only on a fatal error) are killed so
  // that nothing outlives it unsupervised.
  for (auto& [id, server] : servers_)
    if (server->alive()) server->process->signal_group(SIGKILL);
}

// ---- Starting a server -------------------------------------------------------------------

void Supervisor::deploy(const SpawnSpec& request, Sink sink, bool follow_exit) {
  if (stopping()) {
    sink(protocol::make("deployFailed", {{"reason", "the daemon is stopping"}}));
    return;
  }
  uint64_t generation = next_generation_++;
  std::string id = make_id(generation);
  SpawnSpec spec = request;
  // The caller's environment may carry another daemon's values (a deploy run from inside a
  // server); ours must be the only ones, since getenv returns the first match.
  std::erase_if(spec.env, [](const std::string& e) {
    return e.starts_with("SERVERSWAP_SOCKET=") || e.starts_with("SERVERSWAP_ID=") ||
           e.starts_with("SERVERSWAP_RELAY=");
  });
  if (!options_.relay_path.empty()) spec.env.push_back("SERVERSWAP_RELAY=" + options_.relay_path);
  spec.env.push_back("SERVERSWAP_SOCKET=" + options_.socket_path);
  spec.env.push_back("SERVERSWAP_ID=" + id);
  auto process = ServerProcess::spawn(
      loop_, spec, [this, id](int64_t status, int sig) { exited(id, status, sig); });
  if (!process.ok()) {
    log_line("deploy of '" + join(spec.argv, " ") + "' failed: " + process.status().message());
    sink(protocol::make("deployFailed", {{"reason", process.status().message()}}));
    return;
  }
  auto server = std::make_unique<Server>(loop_);
  server->id = id;
  server->generation = generation;
  server->argv = spec.argv;
  server->cwd = spec.cwd;
  server->request = request;
  server->process = std::move(*process);
  server->pid = server->process->pid();
  Server& s = *server;
  servers_.emplace(id, std::move(server));
  Deploy& tracked = deploys_[id];
  tracked.sink = std::move(sink);
  tracked.follow_exit = follow_exit;
  s.ready_timer.start(options_.ready_timeout, [this, id] {
    if (Server* late = find(id); late && late->starting())
      fail(*late, "not up within --ready-timeout " + format_duration(options_.ready_timeout));
  });
  emit(s, "spawned", "started generation " + std::to_string(generation) + ": " + join(s.argv, " "));
}

// ---- Messages from servers ---------------------------------------------------------------

void Supervisor::hello(Connection& connection, const protocol::Message& message) {
  const Json& body = message.body;
  auto error = [&](const std::string& text) {
    reply_error(connection, text, message);
    connection.close();
  };
  if (!body.is_object() || !body.contains("id") || !body["id"].is_string())
    return error("hello needs an object with a string id");
  if (body.value("protocol", 0) != protocol::kVersion)
    return error("unsupported protocol version (this daemon speaks 1)");
  Server* server = find(body["id"].get<std::string>());
  if (!server || !server->alive() || server->connection != 0)
    return error("unknown or already connected server id");
  connection.role = Connection::Role::kServer;
  connection.server_id = server->id;
  server->connection = connection.id();
  server->up_message = body.value("upMessage", false) == true;
  if (server->state == ServerState::kStarting) server->state = ServerState::kConnected;
  connection.send(
      protocol::make("welcome", {{"protocol", protocol::kVersion},
                                 {"id", server->id},
                                 {"version", std::string("serverswap ") + SERVERSWAP_VERSION}}));
  emit(*server, "connected", "connected (pid " + std::to_string(connection.peer_pid()) + ")");
}

void Supervisor::server_message(Connection& connection, const protocol::Message& message) {
  Server* server = server_of(connection);
  if (!server) return;
  const std::string& name = message.name;
  if (name == "readyFor") {
    ready_for(*server, connection, message);
  } else if (name == "onTakedown") {
    on_takedown(*server, connection, message);
  } else if (name == "serverUp") {
    if (server->starting()) become_up(*server, "sent serverUp");
  } else if (name == "fail") {
    std::string why = message.body.is_string() ? message.body.get<std::string>() : "";
    if (server->starting()) {
      fail(*server, "sent fail: " + (why.empty() ? "(no reason given)" : why));
    } else {
      emit(*server, "fail", "sent fail after it was up (ignored): " + why);
    }
  } else if (name == "tookDown") {
    emit(*server, "tookDown", "stopped accepting",
         message.body.is_string() ? message.body.get<std::string>() : "");
  } else if (name == "hello") {
    reply_error(connection, "hello was already said on this connection", message);
  } else {
    reply_error(connection, "unknown message '" + name + "'", message);
  }
}

void Supervisor::ready_for(Server& server, Connection& connection, const protocol::Message& m) {
  if (!m.body.is_string()) return reply_error(connection, "readyFor takes a string", m);
  std::string spelled = m.body.get<std::string>();
  auto resource = protocol::parse_resource(spelled);
  if (!resource.ok()) {
    reply_error(connection, resource.status().message(), m);
    if (server.starting()) fail(server, resource.status().message());
    return;
  }
  if (server.state == ServerState::kDraining || server.state == ServerState::kFailed)
    return reply_error(connection, "this server is being taken down", m);
  auto entry = sockets_.get_or_bind(*resource);
  if (!entry.ok()) {
    reply_error(connection, entry.status().message(), m);
    if (server.starting()) fail(server, entry.status().message());
    return;
  }
  std::string name = resource->name();
  server.held[name] = spelled;
  Json reply = protocol::make("resourceReady", spelled);
  reply["address"] = (*entry)->address;
  connection.send_with_handle(reply, (*entry)->handle);
  emit(server, "resourceReady", "handed the listening socket " + (*entry)->address, name);
  if (server.starting()) {
    server.state = ServerState::kReady;
    if (!server.up_message) {
      std::string id = server.id;
      server.settle_timer.start(options_.settle, [this, id] {
        Server* s = find(id);
        if (s && s->state == ServerState::kReady && s->connection != 0)
          become_up(
              *s, "settled: alive and connected for --settle " + format_duration(options_.settle));
      });
    }
  }
}

void Supervisor::on_takedown(Server& server, Connection& connection, const protocol::Message& m) {
  if (!m.body.is_string()) return reply_error(connection, "onTakedown takes a string", m);
  auto resource = protocol::parse_resource(m.body.get<std::string>());
  if (!resource.ok()) return reply_error(connection, resource.status().message(), m);
  server.subscribed.insert(resource->name());
}

void Supervisor::disconnected(Connection& connection) {
  Server* server = server_of(connection);
  if (!server) return;
  server->connection = 0;
  if (server->starting()) {
    // Usually the process is exiting: give it a moment so that the deploy can report its
    // exit status rather than the closed connection, and so that no signal races its exit.
    server->disconnected_before_up = true;
    fail(*server, "closed its control connection before it was up", kExitGrace);
  } else if (server->state == ServerState::kUp) {
    emit(*server, "disconnected",
         "closed its control connection (a takedown will have to be by signal)");
  } else if (server->alive()) {
    emit(*server, "disconnected", "closed its control connection");
  }
}

// ---- Transitions -------------------------------------------------------------------------

void Supervisor::become_up(Server& server, const std::string& how) {
  server.state = ServerState::kUp;
  server.ready_timer.stop();
  server.settle_timer.stop();
  emit(server, "up", "is up (" + how + ")");
  auto deploy = deploys_.find(server.id);
  for (auto& [id, other] : servers_) {
    if (other.get() == &server || other->generation > server.generation) continue;
    std::set<std::string> shared;
    for (const auto& [name, spelled] : server.held)
      if (other->held.count(name)) shared.insert(name);
    if (shared.empty()) continue;
    if (other->starting()) {
      fail(*other,
           "superseded by generation " + std::to_string(server.generation) + " before it came up");
    } else if (other->state == ServerState::kUp) {
      if (deploy != deploys_.end()) {
        deploy->second.replacing.insert(id);
        deploy->second.replaced.push_back(other->pid);
      }
      take_down(*other, shared, "replaced by generation " + std::to_string(server.generation));
    }
  }
  check_deployed(server.id);
}

void Supervisor::take_down(Server& victim, const std::set<std::string>& resources,
                           const std::string& why) {
  Connection* connection = connection_of(victim);
  for (const auto& name : resources) {
    if (!victim.taken.insert(name).second) continue;
    if (connection && victim.subscribed.count(name)) {
      connection->send(protocol::make("takeDown", victim.held[name]));
      emit(victim, "takeDown", "sent takeDown (" + why + ")", name);
    }
  }
  if (victim.taken.size() == victim.held.size()) begin_draining(victim);
}

void Supervisor::begin_draining(Server& server) {
  server.state = ServerState::kDraining;
  bool all_subscribed = connection_of(server) != nullptr;
  for (const auto& [name, spelled] : server.held)
    if (!server.subscribed.count(name)) all_subscribed = false;
  if (!all_subscribed || server.held.empty())
    signal(server, options_.takedown_signal, "it did not subscribe to takeDown");
  kill_after_grace(server);
}

void Supervisor::fail(Server& server, const std::string& reason, Millis signal_after) {
  if (!server.starting()) return;
  server.state = ServerState::kFailed;
  server.failure = reason;
  server.ready_timer.stop();
  server.settle_timer.stop();
  emit(server, "failed", "failed: " + reason + "; the servers it would replace keep serving");
  if (server.process->exited()) return;
  // Graceful even now: it may already have accepted connections on a shared socket.
  Connection* connection = connection_of(server);
  bool told = false;
  for (const auto& [name, spelled] : server.held) {
    if (connection && server.subscribed.count(name)) {
      connection->send(protocol::make("takeDown", spelled));
      told = true;
    }
  }
  if (!told && signal_after.count() > 0) {
    std::string id = server.id;
    server.exit_grace_timer.start(signal_after, [this, id] {
      if (Server* s = find(id); s && s->alive()) signal(*s, options_.takedown_signal, "it failed");
    });
  } else if (!told) {
    signal(server, options_.takedown_signal, "it failed");
  }
  kill_after_grace(server);
}

void Supervisor::kill_after_grace(Server& server) {
  std::string id = server.id;
  server.kill_timer.start(options_.takedown_timeout, [this, id] {
    if (Server* s = find(id); s && s->alive()) {
      emit(*s, "killed",
           "still running after --takedown-timeout " + format_duration(options_.takedown_timeout) +
               "; sending SIGKILL");
      s->process->signal_group(SIGKILL);
    }
  });
}

void Supervisor::signal(Server& server, int signum, const std::string& why) {
  if (server.signalled) return;
  server.signalled = true;
  server.process->signal_group(signum);
  emit(server, "signalled", "sent " + signal_name(signum) + " (" + why + ")");
}

void Supervisor::exited(const std::string& id, int64_t status, int term_signal) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  Server& server = *it->second;
  ServerState before = server.state;
  std::string description = describe_exit(status, term_signal);
  if (server.starting()) {
    fail(server, description + " before it was up");
  } else if (server.disconnected_before_up) {
    server.failure = description + " before it was up";  // more telling than the disconnect
  }
  server.state = ServerState::kGone;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.kill_timer.stop();
  server.exit_grace_timer.stop();
  if (Connection* c = connection_of(server)) c->close();
  emit(server, "exited",
       before == ServerState::kUp ? description + " while serving (crashed)" : description);
  // Out of the table first, so that deploys waiting for it see it gone. Destroying its
  // process handle from inside that handle's exit callback is safe (uv_close defers).
  std::unique_ptr<Server> gone = std::move(it->second);
  servers_.erase(it);
  report_exit(*gone, description, before == ServerState::kDraining);
  if (servers_.empty() && stop_done_) stop_done_();
}

// ---- Reporting ---------------------------------------------------------------------------

void Supervisor::emit(const Server& server, const std::string& kind, const std::string& text,
                      const std::string& resource) {
  std::string where =
      "server " + std::to_string(server.pid) + " (gen " + std::to_string(server.generation) + ")";
  if (!resource.empty()) where += " " + resource;
  log_line(where + ": " + text);
  Json event = {{"time", timestamp_now()},
                {"kind", kind},
                {"id", server.id},
                {"pid", server.pid},
                {"generation", server.generation},
                {"text", where + ": " + text}};
  if (!resource.empty()) event["resource"] = resource;
  Json line = protocol::make("event", event);
  for (auto& [deploy_id, deploy] : deploys_) {
    if (deploy_id == server.id || deploy.replacing.count(server.id)) deploy.sink(line);
  }
}

// A deploy has succeeded once its server is up and every server it replaced has exited.
void Supervisor::check_deployed(const std::string& id) {
  auto it = deploys_.find(id);
  if (it == deploys_.end() || it->second.reported) return;
  Server* server = find(id);
  if (!server || server->state != ServerState::kUp) return;
  if (!it->second.replacing.empty()) return;
  Json replaced = it->second.replaced;
  it->second.reported = true;
  it->second.sink(protocol::make("deployed", {{"id", id},
                                              {"pid", server->pid},
                                              {"generation", server->generation},
                                              {"replaced", replaced}}));
  if (!it->second.follow_exit) deploys_.erase(it);
}

void Supervisor::report_exit(const Server& server, const std::string& description, bool replaced) {
  if (auto it = deploys_.find(server.id); it != deploys_.end()) {
    Deploy& deploy = it->second;
    if (!deploy.reported && !server.failure.empty()) {
      deploy.sink(protocol::make("deployFailed", {{"id", server.id}, {"reason", server.failure}}));
    } else if (deploy.follow_exit) {
      deploy.sink(protocol::make(
          "serverExited",
          {{"id", server.id}, {"pid", server.pid}, {"exit", description}, {"replaced", replaced}}));
    }
    deploys_.erase(it);
  }
  std::vector<std::string> waiting;
  for (auto& [deploy_id, deploy] : deploys_)
    if (deploy.replacing.erase(server.id)) waiting.push_back(deploy_id);
  for (const auto& w : waiting) check_deployed(w);
}

// ---- Status and stop ---------------------------------------------------------------------

Json Supervisor::status() const {
  Json servers = Json::array();
  auto now = std::chrono::steady_clock::now();
  for (const auto& [id, s] : servers_) {
    Json resources = Json::array();
    for (const auto& [name, spelled] : s->held) {
      const SocketSet::Entry* entry = sockets_.find(name);
      resources.push_back({{"name", name},
                           {"address", entry ? entry->address : ""},
                           {"takenDown", s->taken.count(name) > 0}});
    }
    servers.push_back(
        {{"id", id},
         {"pid", s->pid},
         {"generation", s->generation},
         {"state", state_name(s->state)},
         {"argv", s->argv},
         {"cwd", s->cwd},
         {"resources", resources},
         {"uptime_ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(now - s->started).count()}});
  }
  return servers;
}

void Supervisor::stop(std::function<void()> done) {
  stop_done_ = std::move(done);
  if (servers_.empty()) {
    stop_done_();
    return;
  }
  std::vector<std::string> ids;
  for (auto& [id, s] : servers_) ids.push_back(id);
  for (const auto& id : ids) {
    Server* s = find(id);
    if (!s) continue;
    if (s->starting()) {
      fail(*s, "the daemon is stopping");
    } else if (s->state == ServerState::kUp) {
      std::set<std::string> all;
      for (const auto& [name, spelled] : s->held) all.insert(name);
      take_down(*s, all, "the daemon is stopping");
      if (s->state != ServerState::kDraining) begin_draining(*s);
    }
  }
}

void Supervisor::kill_all() {
  for (auto& [id, s] : servers_) {
    if (!s->alive()) continue;
    emit(*s, "killed", "sending SIGKILL");
    s->process->signal_group(SIGKILL);
  }
}

// ---- Lookups -----------------------------------------------------------------------------

Server* Supervisor::find(const std::string& id) {
  auto it = servers_.find(id);
  return it == servers_.end() ? nullptr : it->second.get();
}

Server* Supervisor::server_of(const Connection& connection) {
  if (connection.role != Connection::Role::kServer) return nullptr;
  Server* server = find(connection.server_id);
  return server && server->connection == connection.id() ? server : nullptr;
}

Connection* Supervisor::connection_of(const Server& server) {
  return server.connection ? find_connection_(server.connection) : nullptr;
}

void Supervisor::reply_error(Connection& connection, const std::string& text,
                             const protocol::Message& m) {
  connection.send(protocol::error_reply(text, m.whole));
}

}  // namespace serverswap::daemon
