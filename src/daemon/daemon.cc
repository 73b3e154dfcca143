#include "daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include "base/log.h"

namespace serverswap::daemon {

using protocol::Json;

Daemon::Daemon(SupervisorOptions options, InstanceLock lock)
    : options_(std::move(options)), lock_(std::move(lock)) {
  uv_loop_init(&loop_);
  sockets_ = std::make_unique<SocketSet>(&loop_);
  control_ = std::make_unique<ControlServer>(
      &loop_,
      ControlServer::Handlers{[this](Connection& c, const std::string& line) { on_line(c, line); },
                              [this](Connection& c) { supervisor_->disconnected(c); }});
  supervisor_ = std::make_unique<Supervisor>(&loop_, options_, *sockets_,
                                             [this](uint64_t id) { return control_->find(id); });
}

Daemon::~Daemon() {
  signals_.clear();
  supervisor_.reset();
  control_.reset();
  sockets_.reset();
  // Let libuv run the close callbacks of everything just released.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

Status Daemon::start() {
  // A peer that vanishes mid-write must cost an EPIPE, not the daemon.
  ::signal(SIGPIPE, SIG_IGN);
  // Holding the instance lock means any socket file there is stale: replace it.
  if (lock_.held()) ::unlink(options_.socket_path.c_str());
  if (Status s = control_->listen(options_.socket_path); !s.ok()) return s;
  for (int signum : {SIGINT, SIGTERM}) {
    signals_.push_back(std::make_unique<SignalWatch>(&loop_, signum, [this, signum] {
      if (stopping_) {
        log_line("second " + signal_name(signum) + ": killing every server now");
        supervisor_->kill_all();
        return;
      }
      stop("received " + signal_name(signum));
    }));
  }
  signals_.push_back(std::make_unique<SignalWatch>(
      &loop_, SIGHUP, [] { log_line("received SIGHUP: ignored (servers keep running)"); }));
  log_line(std::string("serverswap ") + SERVERSWAP_VERSION + " daemon listening on " +
           options_.socket_path);
  return {};
}

void Daemon::deploy_first(const SpawnSpec& spec) {
  supervisor_->deploy(
      spec,
      [this](const Json& message) {
        if (message.contains("deployFailed") && supervisor_->server_count() == 0) {
          log_line("the first server failed; nothing is serving, so the daemon stops");
          exit_code_ = 1;
          stop("the first server failed");
        }
      },
      /*follow_exit=*/false);
}

int Daemon::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

// ---- Control socket ----------------------------------------------------------------------

void Daemon::on_line(Connection& connection, const std::string& line) {
  auto message = protocol::decode(line);
  if (!message.ok()) {
    connection.send(protocol::error_reply(message.status().message() + ": " + line.substr(0, 200)));
    if (connection.role == Connection::Role::kNew) connection.close();
    return;
  }
  switch (connection.role) {
    case Connection::Role::kServer:
      return supervisor_->server_message(connection, *message);
    case Connection::Role::kControl:
      return control_request(connection, *message);
    case Connection::Role::kNew:
      break;
  }
  if (message->name != "hello") {
    connection.send(protocol::error_reply("the first message must be hello", message->whole));
    connection.close();
  } else if (message->body.is_object() && message->body.value("role", "") == "control") {
    connection.role = Connection::Role::kControl;
    connection.send(
        protocol::make("welcome", {{"protocol", protocol::kVersion},
                                   {"version", std::string("serverswap ") + SERVERSWAP_VERSION}}));
  } else {
    supervisor_->hello(connection, *message);
  }
}

void Daemon::control_request(Connection& connection, const protocol::Message& message) {
  if (message.name == "deploy") {
    deploy_request(connection, message);
  } else if (message.name == "status") {
    Json daemon = {{"pid", getpid()},
                   {"version", SERVERSWAP_VERSION},
                   {"socket", options_.socket_path},
                   {"stopping", stopping_}};
    Json resources = Json::array();
    for (const auto& [name, entry] : sockets_->entries())
      resources.push_back({{"name", name}, {"address", entry.address}});
    daemon["resources"] = resources;
    connection.send(
        protocol::make("status", {{"daemon", daemon}, {"servers", supervisor_->status()}}));
  } else if (message.name == "stop") {
    stop_requesters_.push_back(connection.id());
    stop("asked by serverswap stop (pid " + std::to_string(connection.peer_pid()) + ")");
  } else {
    connection.send(
        protocol::error_reply("unknown control request '" + message.name + "'", message.whole));
  }
}

namespace {

Result<SpawnSpec> parse_deploy(const Json& body) {
  if (!body.is_object()) return Status::error("deploy takes an object");
  SpawnSpec spec;
  const Json& argv = body.value("argv", Json::array());
  if (!argv.is_array() || argv.empty()) return Status::error("deploy needs a non-empty argv");
  for (const auto& a : argv) {
    if (!a.is_string()) return Status::error("argv must hold strings");
    spec.argv.push_back(a.get<std::string>());
  }
  if (body.contains("cwd")) {
    if (!body["cwd"].is_string()) return Status::error("cwd must be a string");
    spec.cwd = body["cwd"].get<std::string>();
  }
  const Json& env = body.value("env", Json::object());
  if (!env.is_object()) return Status::error("env must be an object of strings");
  for (const auto& [key, value] : env.items()) {
    if (!value.is_string()) return Status::error("env must be an object of strings");
    spec.env.push_back(key + "=" + value.get<std::string>());
  }
  return spec;
}

}  // namespace

void Daemon::deploy_request(Connection& connection, const protocol::Message& message) {
  auto spec = parse_deploy(message.body);
  if (!spec.ok()) {
    connection.send(protocol::error_reply(spec.status().message(), message.whole));
    return;
  }
  bool follow_exit = message.body.value("follow", "up") == "exit";
  supervisor_->deploy(*spec, sink_for(connection.id()), follow_exit);
}

Supervisor::Sink Daemon::sink_for(uint64_t connection_id) {
  // The requester may hang up; the deploy goes on without it.
  return [this, connection_id](const Json& message) {
    if (Connection* c = control_->find(connection_id)) c->send(message);
  };
}

// ---- Stopping ----------------------------------------------------------------------------

void Daemon::stop(const std::string& why) {
  if (stopping_) return;
  stopping_ = true;
  log_line("stopping (" + why + "): taking every server down");
  supervisor_->stop([this] { finish(); });
}

void Daemon::finish() {
  for (uint64_t id : stop_requesters_)
    if (Connection* c = control_->find(id)) c->send(protocol::make("stopped", true));
  log_line("every server has exited; the daemon exits");
  control_->stop_listening();
  control_->close_all();
  signals_.clear();
}

}  // namespace serverswap::daemon
