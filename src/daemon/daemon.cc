#include "daemon/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "base/join.h"
#include "base/log.h"
#include "daemon/service/activated_sockets.h"
#include "daemon/service/reload.h"
#include "daemon/spawn/spawn_environment.h"
#include "protocol/status_reply_line.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

// Every descriptor above stderr that the daemon inherited is marked close-on-exec: whatever
// its parent had open (a root-only file, a socket) must not reach the servers it starts,
// least of all those run as another user. The ones it takes on purpose (systemd's
// LISTEN_FDS, an upgrade's sockets) are found by number afterwards, and the upgrade clears
// the flag itself on those it hands on. Its own are close-on-exec already.
void close_inherited_fds_on_exec() {
  if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  // Kernels before 5.11: one by one, from /proc (its own directory fd is marked as well).
  DIR* fds = ::opendir("/proc/self/fd");
  if (!fds) return;
  while (dirent* e = ::readdir(fds)) {
    int fd = std::atoi(e->d_name);
    if (fd > 2) ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
  }
  ::closedir(fds);
}

}  // namespace

Daemon::Daemon(SupervisorOptions options, InstanceLock lock)
    : options_(std::move(options)), lock_(std::move(lock)) {
  fix_heap_thresholds();
  uv_loop_init(&loop_);
  sockets_ = std::make_unique<SocketSet>(&loop_);
  clock_ = std::make_unique<UvClock>(&loop_);
  processes_ = std::make_unique<SystemProcesses>(&loop_);
  control_ = std::make_unique<ControlServer>(
      &loop_, ControlServer::Handlers{
                  [this](Connection& c, const std::string& line) { on_line(c, line); },
                  [this](Connection& c) { supervisor_->disconnected(c); },
                  [this](pid_t pid, uid_t uid) { return supervisor_->is_server_peer(pid, uid); }});
  // The caps on connections and pending descriptors follow the fd limit, raised first.
  control_->set_caps(caps_for_fd_limit(raise_fd_limit()));
  // Servers run as another user (--user) reach the daemon through a socket of their own.
  control_->use_user_directory(&user_directory_);
  options_.socket_for_user = [this](uid_t uid, gid_t) { return control_->listen_for_user(uid); };
  options_.user_directory = &user_directory_;
  options_.observer = [this](const Json& message) {
    metrics_.observe(message);
    state_changed();
  };
  supervisor_ =
      std::make_unique<Supervisor>(SupervisorSeams{*clock_, *processes_, *sockets_}, options_,
                                   [this](uint64_t id) -> Peer* { return control_->find(id); });
  state_timer_ = std::make_unique<Timer>(&loop_);
  adopt_timer_ = std::make_unique<Timer>(&loop_);
  upgrade_timer_ = std::make_unique<Timer>(&loop_);
  reload_timer_ = std::make_unique<Timer>(&loop_);
}

Daemon::~Daemon() {
  signals_.clear();
  state_timer_.reset();
  adopt_timer_.reset();
  upgrade_timer_.reset();
  reload_timer_.reset();
  upgrade_probe_.reset();
  reaper_.reset();
  metrics_endpoint_.reset();
  supervisor_.reset();
  control_.reset();
  processes_.reset();  // its output readers, after the supervisor and control that borrow it
  sockets_.reset();
  // Let libuv run the close callbacks of everything just released.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

Status Daemon::start() {
  close_inherited_fds_on_exec();
  // A peer that vanishes mid-write must cost an EPIPE, not the daemon.
  ::signal(SIGPIPE, SIG_IGN);
  state_file_ = std::make_unique<StateFile>(state_path_for(options_.socket_path));
  bool refused = false;
  auto previous = state_file_->read(&refused);
  // A refused file says loudly why and that nothing is taken back (planted by someone else?).
  if (!previous.ok())
    log_line(refused ? "warning: " + previous.status().message()
                     : previous.status().message() + "; no server is taken back");
  if (restart_.resuming_upgrade && previous.ok() && !previous->has_value()) {
    // Executed by an image of a version that wrote DIR/state.json: without it, this upgrade
    // would lose the control socket. Removed once our own file is written.
    legacy_state_file_ = std::make_unique<StateFile>(legacy_state_path_for(options_.socket_path));
    previous = legacy_state_file_->read(&refused);
    if (!previous.ok() && refused) log_line("warning: " + previous.status().message());
    if (previous.ok() && previous->has_value())
      log_line("resuming from " + legacy_state_file_->path() + ", written by the previous version");
  }
  bool have_state = previous.ok() && previous->has_value();
  if (restart_.resuming_upgrade && !have_state)
    return Status::error("--resume-upgrade: " + (previous.ok()
                                                     ? "no state file " + state_file_->path()
                                                     : previous.status().message()));
  // The socket files the previous image bound: unlinked by this one when it is done with them.
  if (have_state)
    for (const SocketFileRecord& file : (*previous)->socket_files) {
      SocketSet::Entry entry;
      entry.unix_path = file.path;
      entry.dev = static_cast<dev_t>(file.dev);
      entry.ino = static_cast<ino_t>(file.ino);
      entry.owner = file.owner;
      sockets_->expect_socket_file(file.name, std::move(entry));
    }
  if (service_manager_) {
    notify_ = SdNotify::from_environment();
    if (Status s = adopt_activated_sockets(); !s.ok()) return s;
  }
  if (restart_.resuming_upgrade) {
    // The control socket never closed: connections made during the exec wait in its backlog.
    if (Status s = inherit_upgraded_sockets(**previous); !s.ok()) return s;
  } else {
    // Holding the instance lock means any socket file there is stale: replace it.
    if (lock_.held()) ::unlink(options_.socket_path.c_str());
    if (Status s = control_->listen(options_.socket_path); !s.ok()) return s;
  }
  if (!metrics_address_.empty()) {
    auto endpoint = observe::MetricsEndpoint::start(
        &loop_, metrics_address_, [this] { return metrics_.render(supervisor_->server_status()); });
    if (!endpoint.ok()) return endpoint.status();
    metrics_endpoint_ = std::move(*endpoint);
  }
  reaper_ = std::make_unique<OrphanReaper>(
      &loop_, [this](pid_t pid) { return supervisor_->is_server_pid(pid); },
      [this](pid_t pid) { return sockets_->reaped_binding_child(pid); });
  take_back_user_directory(have_state ? &**previous : nullptr);
  if (Status s = supervisor_->prepare_notify_directory(have_state ? &**previous : nullptr); !s.ok())
    return s;
  if (have_state) adopt_servers(**previous);
  state_changed();
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
  signals_.push_back(
      std::make_unique<SignalWatch>(&loop_, SIGHUP, [this] { reload("received SIGHUP", 0); }));
  log_line(std::string("serverswap ") + SERVERSWAP_VERSION + " daemon listening on " +
           options_.socket_path);
  if (Status s = notify_.send("READY=1\nSTATUS=listening on " + options_.socket_path); !s.ok())
    log_line(s.message());
  return {};
}

Status Daemon::adopt_activated_sockets() {
  auto sockets = take_activated_sockets();
  if (!sockets.ok()) return sockets.status();
  for (auto& socket : *sockets) {
    if (Status s = sockets_->adopt(socket.resource, std::move(socket.fd)); !s.ok()) return s;
  }
  return {};
}

void Daemon::deploy_first(const SpawnSpec& spec) {
  if (supervisor_->adopting()) return when_adopted([this, spec] { deploy_first(spec); });
  SpawnSpec first = spec;
  remembered_.apply(first);
  supervisor_->deploy(
      with_default_identity(first),
      [this](const Json& message) {
        auto outcome = protocol::as_message(message);
        if (outcome.ok() && outcome->name == protocol::DeployFailed::kName &&
            supervisor_->server_count() == 0) {
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
  // Defence in depth: every decoder is total (protocol/requests.h), so no exception is
  // expected here; one that escapes anyway costs this message, not the daemon and every
  // server it supervises. Each is counted and logged: it is a bug to fix.
  try {
    handle_line(connection, line);
  } catch (const std::exception& e) {
    ++internal_errors_;
    log_line("internal error #" + std::to_string(internal_errors_) +
             " handling a message from pid " + std::to_string(connection.peer_pid()) + ": " +
             e.what());
    connection.send(protocol::error_reply("internal error handling this message"));
  }
}

void Daemon::handle_line(Connection& connection, const std::string& line) {
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
  if (message->name == "command") {
    // einhorn's command socket (EINHORN_SOCK_PATH is this socket): {"command":"worker:ack"}.
    supervisor_->einhorn_command(connection, *message);
    connection.close();
    return;
  }
  if (message->name != "hello") {
    connection.send(protocol::error_reply("the first message must be hello", message->whole));
    connection.close();
    return;
  }
  auto hello = protocol::decode_hello(message->body);
  if (!hello.ok()) {
    connection.send(protocol::error_reply(hello.status().message(), message->whole));
    connection.close();
  } else if (hello->control && hello->protocol != protocol::kVersion) {
    connection.send(protocol::error_reply("unsupported protocol version (this daemon speaks 1)",
                                          message->whole));
    connection.close();
  } else if (hello->control) {
    if (!may_control(connection)) {
      connection.send(protocol::error_reply(
          "permission denied: a server of another user may not send control requests"));
      connection.close();
      return;
    }
    connection.role = Connection::Role::kControl;
    connection.send(protocol::Welcome{protocol::kVersion, std::nullopt,
                                      std::string("serverswap ") + SERVERSWAP_VERSION, false}
                        .encode());
  } else {
    supervisor_->hello(connection, *message);
  }
}

namespace {

// The request, decoded once; nullopt after an `error` reply saying what is wrong with it
// (nothing is done).
template <typename Request>
std::optional<Request> decoded_or_refused(Connection& connection,
                                          const protocol::Message& message) {
  auto decoded = Request::decode(message);
  if (decoded.ok()) return std::move(*decoded);
  connection.send(protocol::error_reply(decoded.status().message(), message.whole));
  return std::nullopt;
}

// A `status` of this many servers is worth giving its memory back after (release_free_heap).
constexpr size_t kTrimAfterStatusServers = 32;

}  // namespace

void Daemon::control_request(Connection& connection, const protocol::Message& message) {
  using namespace protocol;
  const std::string& name = message.name;
  if (name == DeployRequest::kName) {
    deploy_request(connection, message);
  } else if (name == UpgradeRequest::kName) {
    upgrade_request(connection, message);
  } else if (name == StatusRequest::kName) {
    if (auto asked = decoded_or_refused<StatusRequest>(connection, message))
      status_request(connection, asked->app);
  } else if (name == StopRequest::kName) {
    if (auto stop = decoded_or_refused<StopRequest>(connection, message))
      stop_request(connection, stop->app, message);
  } else if (name == ReloadRequest::kName) {
    if (auto asked = decoded_or_refused<ReloadRequest>(connection, message))
      reload("asked by serverswap reload" + (asked->app ? " " + *asked->app : std::string()) +
                 " (pid " + std::to_string(connection.peer_pid()) + ")",
             connection.id(), asked->app);
  } else if (name == RollbackRequest::kName) {
    if (auto asked = decoded_or_refused<RollbackRequest>(connection, message))
      redeploy_app(connection, AppRedeploy::kRollback, asked->app, asked->follow_exit, message);
  } else if (name == RestartRequest::kName) {
    if (auto asked = decoded_or_refused<RestartRequest>(connection, message))
      redeploy_app(connection, AppRedeploy::kRestart, asked->app, asked->follow_exit, message);
  } else if (name == RmRequest::kName) {
    if (auto asked = decoded_or_refused<RmRequest>(connection, message))
      remove_app(connection, asked->app, message);
  } else {
    connection.send(error_reply("unknown control request '" + name + "'", message.whole));
  }
}

void Daemon::status_request(Connection& connection, const std::optional<std::string>& app) {
  protocol::StatusReply status;
  status.daemon.pid = getpid();
  status.daemon.version = SERVERSWAP_VERSION;
  status.daemon.socket = options_.socket_path;
  status.daemon.stopping = stopping_;
  for (const auto& [name, entry] : sockets_->entries())
    status.daemon.resources.push_back({name, entry.address});
  if (metrics_endpoint_) status.daemon.metrics = metrics_endpoint_->address();
  status.daemon.state_file = state_file_status();
  status.servers = supervisor_->server_status();
  status.crash_loops = supervisor_->crash_loops();
  status.apps = supervisor_->app_status(app.value_or(""));
  // Written as text directly: the JSON tree of 1,000 apps was most of this call's CPU.
  connection.send_line(protocol::status_reply_line(status));
  // Its records are freed, then given back; the text, once large, is
  // in a mapping of its own (fix_heap_thresholds), unmapped when sent.
  size_t servers = status.servers.size();
  status = {};
  if (servers >= kTrimAfterStatusServers) release_free_heap();
}

// `stop`: every server and the daemon; `stop APP`: that app's servers, the daemon goes on.
void Daemon::stop_request(Connection& connection, const std::optional<std::string>& app,
                          const protocol::Message& message) {
  if (!app) {
    stop_requesters_.push_back(connection.id());
    stop("asked by serverswap stop (pid " + std::to_string(connection.peer_pid()) + ")");
    return;
  }
  log_line("stopping app " + *app + " (asked by serverswap stop, pid " +
           std::to_string(connection.peer_pid()) + ")");
  Status s = supervisor_->stop_app(*app, [this, app = *app, id = connection.id()](size_t n) {
    log_line("app " + app + " stopped: " + std::to_string(n) + " server" + (n == 1 ? "" : "s") +
             " exited");
    if (Connection* c = control_->find(id))
      c->send(protocol::Stopped{app, static_cast<int64_t>(n)}.encode());
  });
  if (!s.ok()) connection.send(protocol::error_reply(s.message(), message.whole));
}

void Daemon::deploy_request(Connection& connection, const protocol::Message& message) {
  auto decoded = protocol::decode_deploy(message.body);
  Result<SpawnSpec> spec =
      decoded.ok() ? spec_from_request(*decoded) : Result<SpawnSpec>(decoded.status());
  if (!spec.ok()) {
    connection.send(protocol::error_reply(spec.status().message(), message.whole));
    return;
  }
  spec->worker = -1;  // which copy a server is, is the daemon's to say
  remembered_.apply(*spec);
  bool follow_exit = decoded->follow_exit;
  SpawnSpec request = with_default_identity(*spec);
  auto go = [this, request, follow_exit, id = connection.id()] {
    supervisor_->deploy(request, sink_for(id), follow_exit);
  };
  if (supervisor_->adopting()) return when_adopted(go);
  go();
}

// rollback and restart APP deploy a version the app had; the replies are a deploy's (with
// `follow_exit`, up to `serverExited`). The supervisor logs what it deploys, with who asked.
void Daemon::redeploy_app(Connection& connection, AppRedeploy kind, const std::string& app,
                          bool follow_exit, const protocol::Message& message) {
  std::string who = "serverswap " +
                    std::string(kind == AppRedeploy::kRollback ? "rollback" : "restart") +
                    ", pid " + std::to_string(connection.peer_pid());
  auto go = [this, kind, app, follow_exit, who, id = connection.id(), whole = message.whole] {
    Status s = kind == AppRedeploy::kRollback
                   ? supervisor_->roll_back(app, sink_for(id), follow_exit, who)
                   : supervisor_->restart(app, sink_for(id), follow_exit, who);
    if (!s.ok())
      if (Connection* c = control_->find(id)) c->send(protocol::error_reply(s.message(), whole));
  };
  if (supervisor_->adopting()) return when_adopted(go);
  go();
}

// rm APP: its servers are stopped as by `stop APP`, then its versions and remembered settings
// are forgotten: a later deploy of the name starts afresh.
void Daemon::remove_app(Connection& connection, const std::string& app,
                        const protocol::Message& message) {
  uint64_t id = connection.id();
  auto forget = [this, app, id](size_t servers) {
    supervisor_->forget_app(app);
    remembered_.forget(app);
    state_changed();  // a daemon restarted now must not know its versions again
    log_line("app " + app + " removed: " + std::to_string(servers) + " server" +
             (servers == 1 ? "" : "s") + " exited; its versions and settings are forgotten");
    if (Connection* c = control_->find(id))
      c->send(protocol::Removed{app, static_cast<int64_t>(servers)}.encode());
  };
  if (!supervisor_->runs_app(app)) {
    if (!supervisor_->knows_app(app) && !remembered_.knows(app)) {
      connection.send(protocol::error_reply("no app named '" + app + "' is known", message.whole));
      return;
    }
    return forget(0);
  }
  log_line("removing app " + app + " (asked by serverswap rm, pid " +
           std::to_string(connection.peer_pid()) + ")");
  if (Status s = supervisor_->stop_app(app, forget, "serverswap rm " + app); !s.ok())
    connection.send(protocol::error_reply(s.message(), message.whole));
}

// The request keeps the identity it ran with, so a reload or restart runs it the same way.
SpawnSpec Daemon::with_default_identity(SpawnSpec spec) const {
  if (spec.user.empty() && spec.group.empty()) {
    spec.user = default_user_;
    spec.group = default_group_;
  }
  return spec;
}

Supervisor::Sink Daemon::sink_for(uint64_t connection_id) {
  // The requester may hang up; the deploy goes on without it.
  return [this, connection_id](const Json& message) {
    Connection* c = control_->find(connection_id);
    if (!c) return;
    if (state_error_.empty()) return c->send(message);
    Json annotated = message;
    annotate_outcome(annotated);
    c->send(annotated);
  };
}

// Servers run as another user are let in to speak for themselves, never to deploy (which
// would run commands as the daemon's user).
bool Daemon::may_control(const Connection& connection) const {
  return connection.peer_uid() == getuid() || connection.peer_uid() == 0;
}

// ---- Reloading ---------------------------------------------------------------------------

// A reload redeploys the commands that are up. During a deploy that would be the old
// version, superseding the new one in flight: so a reload that arrives while deploys are in
// flight waits for them to end (checked every 100 ms). At most one waits; later requests
// join it, and every requester is told (`reloadQueued`) and gets its outcome.
void Daemon::reload(const std::string& why, uint64_t requester,
                    const std::optional<std::string>& app) {
  if (stopping_) {
    if (Connection* c = control_->find(requester))
      c->send(protocol::error_reply("the daemon is stopping; nothing to reload"));
    return;
  }
  if (app && !supervisor_->runs_app(*app)) {
    if (Connection* c = control_->find(requester))
      c->send(protocol::error_reply("no server of app '" + *app + "' runs; nothing to reload"));
    return;
  }
  if (size_t deploys = supervisor_->deploys_in_flight(); deploys > 0 || queued_reload_) {
    std::string reason =
        std::to_string(deploys) + (deploys == 1 ? " deploy" : " deploys") + " in flight";
    bool joined = queued_reload_.has_value();
    if (!joined)
      queued_reload_.emplace(QueuedReload{
          why,
          {},
          app ? std::optional<std::set<std::string>>(std::set<std::string>{}) : std::nullopt});
    queued_reload_->requesters.push_back(requester);
    // Joined, it reloads what each requester named (every app once one named none).
    if (!app) queued_reload_->apps.reset();
    if (app && queued_reload_->apps) queued_reload_->apps->insert(*app);
    log_line("reload (" + why + ") queued until no deploy is in flight (" + reason + ")" +
             (joined ? ": joins the reload already queued" : ""));
    if (Connection* c = control_->find(requester))
      c->send(protocol::ReloadQueued{reason, joined}.encode());
    if (!joined) reload_timer_->start(Millis(100), [this] { run_queued_reload(); });
    return;
  }
  start_reload(why, {requester}, app ? std::optional<std::set<std::string>>({*app}) : std::nullopt);
}

void Daemon::run_queued_reload() {
  if (!queued_reload_) return;
  if (!stopping_ && supervisor_->deploys_in_flight() > 0) {
    reload_timer_->start(Millis(100), [this] { run_queued_reload(); });
    return;
  }
  QueuedReload queued = std::move(*queued_reload_);
  queued_reload_.reset();
  if (stopping_) {
    for (uint64_t id : queued.requesters)
      if (Connection* c = control_->find(id))
        c->send(protocol::error_reply("the daemon is stopping; nothing to reload"));
    return;
  }
  start_reload(queued.why + ", queued behind a deploy", queued.requesters, queued.apps);
}

void Daemon::start_reload(const std::string& why, const std::vector<uint64_t>& requesters,
                          const std::optional<std::set<std::string>>& apps) {
  log_line("reloading (" + why + "): redeploying " +
           (apps ? "the up servers' commands of app " +
                       join(std::vector<std::string>(apps->begin(), apps->end()), ", ")
                 : std::string("every up server's command")));
  ++reloads_in_flight_;
  std::string state = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec());
  if (Status s = notify_.send(state); !s.ok()) log_line(s.message());
  std::vector<Supervisor::Sink> sinks;
  for (uint64_t id : requesters) sinks.push_back(sink_for(id));
  reload_servers(
      *supervisor_, apps,
      [sinks](const Json& message) {
        for (const auto& sink : sinks) sink(message);
      },
      [this, requesters](const protocol::Reloaded& outcome) { reloaded(outcome, requesters); });
}

void Daemon::reloaded(const protocol::Reloaded& outcome, const std::vector<uint64_t>& requesters) {
  size_t failed = 0;
  for (const auto& d : outcome.deploys) failed += d.ok ? 0 : 1;
  log_line("reload done: " + std::to_string(outcome.deploys.size()) + " redeployed, " +
           std::to_string(failed) + " failed");
  Json reply = outcome.encode();
  for (uint64_t id : requesters)
    if (Connection* c = control_->find(id)) c->send(reply);
  // systemd waits for READY=1 after RELOADING=1, whatever the outcome: the old servers of a
  // failed redeploy are still serving.
  if (--reloads_in_flight_ == 0 && !stopping_) {
    if (Status s = notify_.send("READY=1"); !s.ok()) log_line(s.message());
  }
}

// ---- Stopping ----------------------------------------------------------------------------

void Daemon::stop(const std::string& why) {
  if (stopping_) return;
  stopping_ = true;
  if (Status s = notify_.send("STOPPING=1"); !s.ok()) log_line(s.message());
  log_line("stopping (" + why + "): taking every server down");
  supervisor_->stop([this] { finish(); });
  adoption_over("the daemon is stopping");  // waiting deploys are refused now
}

void Daemon::finish() {
  // A clean stop: no server is left to take back.
  state_closed_ = true;
  state_timer_->stop();  // a pending retry of a failed write would keep the loop alive
  if (state_file_) state_file_->remove();
  for (uint64_t id : stop_requesters_)
    if (Connection* c = control_->find(id)) c->send(protocol::Stopped{}.encode());
  log_line("every server has exited; the daemon exits");
  control_->stop_listening();
  control_->close_all();
  metrics_endpoint_.reset();  // an open listener would keep the loop, and the daemon, alive
  upgrade_probe_.reset();     // a version probe too (for up to its timeout)
  signals_.clear();
}

}  // namespace serverswap::daemon
