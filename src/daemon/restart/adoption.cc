// Supervisor, continued: restarts of the daemon itself (docs/protocol.md section 11). A
// daemon that was killed or re-executed takes back the servers state.json lists; each
// resumes over a new control connection, handing back its listening sockets.
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "base/join.h"
#include "base/log.h"
#include "daemon/core/supervisor.h"
#include "daemon/process/process_tree.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

constexpr size_t kMaxResumedSockets = 64;

ServerState state_from_name(const std::string& name) {
  if (name == "up") return ServerState::kUp;
  if (name == "draining") return ServerState::kDraining;
  if (name == "failed") return ServerState::kFailed;
  if (name == "connected" || name == "ready") return ServerState::kConnected;
  // In its --confirm window: the window starts again when it resumes (or, for a --listen
  // program, when its sockets are taken back).
  if (name == "confirming") return ServerState::kConfirming;
  return ServerState::kStarting;
}

// Whose process `pid` is (its /proc entry belongs to its effective uid); the daemon's own
// uid when that cannot be read (the process has just gone).
uid_t owner_of(pid_t pid) {
  struct stat owner {};
  std::string proc = "/proc/" + std::to_string(pid);
  return ::stat(proc.c_str(), &owner) == 0 ? owner.st_uid : ::getuid();
}

}  // namespace

void Supervisor::adopt(const DaemonState& state) {
  // The apps' versions first: a server taken back in its --confirm window that comes up later
  // finds the versions before its own (AppHistory::up).
  for (const std::string& why : state.dropped_versions)
    log_line("state.json: an app version is not trusted, dropped (never deployed): " + why);
  history_.restore(state.apps);
  for (const ServerRecord& record : state.servers) {
    auto now = processes_.start_time(record.pid);
    if (!now.ok() || *now != record.start_time) {
      log_line("state.json: server " + std::to_string(record.pid) + " (gen " +
               std::to_string(record.generation) + ") is gone; forgotten");
      if (record.notify_fd >= 0) ::close(record.notify_fd);  // kept across an upgrade
      remove_notify_socket_file(record.notify);
      continue;
    }
    adopt_server(record);
  }
}

void Supervisor::adopt_server(const ServerRecord& record) {
  std::string id = record.id;
  auto process = processes_.adopt(
      record.pid, [this, id](int64_t status, int sig) { exited(id, status, sig); }, record.output,
      output_reader(record.generation, owner_of(record.pid)));
  if (!process.ok()) {
    log_line("state.json: server " + std::to_string(record.pid) + ": " +
             process.status().message());
    if (record.notify_fd >= 0) ::close(record.notify_fd);
    remove_notify_socket_file(record.notify);
    return;
  }
  auto server = std::make_unique<Server>(clock_);
  server->started = clock_.now();
  server->id = id;
  server->generation = record.generation;
  server->rank = record.rank != 0 ? record.rank : record.generation;
  server->argv = record.request.argv;
  server->cwd = record.request.cwd;
  server->request = record.request;
  server->process = std::move(*process);
  server->pid = record.pid;
  server->start_time = record.start_time;
  server->state = state_from_name(record.state);
  server->restarts = record.restarts;
  server->kept = record.kept;
  server->taken_back = true;
  for (const auto& held : record.held) {
    server->held[held.name] = held.spelled;
    if (held.served) server->served.insert(held.name);
    if (held.taken) server->taken.insert(held.name);
    if (held.taken && held.unheard) server->unheard.insert(held.name);
  }
  next_generation_ = std::max(next_generation_, record.generation + 1);
  Server& s = *server;
  servers_.emplace(id, std::move(server));
  // Servers being taken down do not come back: they only have to exit, in bounded time.
  bool leaving = s.state == ServerState::kDraining || s.state == ServerState::kFailed;
  adoptions_.taken_back(record, s.state, !leaving);
  if (leaving) {
    if (record.notify_fd >= 0) ::close(record.notify_fd);
    remove_notify_socket_file(record.notify);
    // A draining server was taken down on everything by newer servers. A failed one was not:
    // when it exits, the servers it took resources from unheard (`serving`) serve them alone
    // again, as without the restart (give_back_unheard; found by the simulator, seed 57125 of
    // the --no-workers mix: nobody was said to serve a resource an older server accepted on).
    if (s.state == ServerState::kDraining)
      for (const auto& [name, spelled] : s.held) s.taken.insert(name);
    emit(s, EventKind::kAdopted,
         "taken back from state.json, " + record.state + "; waiting for it to exit");
    kill_after_grace(s);
    return;
  }
  reopen_notify_socket(s, record);
  emit(s, EventKind::kAdopted,
       "taken back from state.json (" + record.state +
           "); waiting for it to resume: " + join(s.argv, " "));
  if (!s.request.listen.empty()) take_listen_sockets_back(s, record);
}

// Its NOTIFY_SOCKET keeps the path state.json recorded, so sd_notify goes on working. Across
// `serverswap upgrade` the socket itself was kept open; after a daemon that died, it is
// bound again at the same path: its directory is ours alone (NotifyDirectory), so no one
// can have taken the path meanwhile. Servers of older versions have an abstract name
// (no '/'): it is bound again, and refused if someone else took it (EADDRINUSE).
void Supervisor::reopen_notify_socket(Server& server, const ServerRecord& record) {
  uid_t uid = owner_of(server.pid);
  // None recorded: lost before this restart, or a state file of a version that derived the
  // name from the id. Not bound again under that name: it would list the id, a credential,
  // in /proc/net/unix.
  if (record.notify.empty()) {
    emit(server, EventKind::kNotifyLost, "NOTIFY_SOCKET not reopened: none is recorded for it");
    return;
  }
  std::string address = record.notify.starts_with("/") ? record.notify : "@" + record.notify;
  auto notify = open_notify_socket(server.id, address, uid, record.notify_fd);
  if (!notify.ok()) {
    emit(server, EventKind::kNotifyLost,
         "NOTIFY_SOCKET not reopened: " + notify.status().message());
    return;
  }
  server.notify = std::move(*notify);
  server.notify->accept_sender(server.pid, uid);
}

Status Supervisor::prepare_notify_directory(const DaemonState* state) {
  std::vector<std::string> keep;
  if (state)
    for (const auto& record : state->servers) keep.push_back(record.notify);
  return notify_dir_.prepare(keep);
}

// A still-starting program without a client library cannot resume: it gets a fresh
// --ready-timeout (and --ready-after) from now, and comes up by READY=1 as before.
void Supervisor::restart_readiness_timers(Server& server) {
  // It had said it was ready and was in its window: the window starts again from now (a
  // program says READY=1 once, so waiting for another would fail it).
  if (server.state == ServerState::kConfirming)
    return begin_confirming(server, "in its --confirm window when the daemon took it back",
                            resumed_confirm_window(server.request.confirm));
  std::string id = server.id;
  server.ready_timer.start(options_.ready_timeout, [this, id] {
    Server* late = find(id);
    if (!late || !late->starting()) return;
    std::string why = "not up within --ready-timeout " + format_duration(options_.ready_timeout) +
                      " after the daemon took it back";
    if (!keep_serving(*late, why)) fail(*late, why);
  });
  if (!server.request.ready_after) return;
  Millis after = *server.request.ready_after;
  server.ready_after_timer.start(after, [this, id, after] {
    if (Server* s = find(id); s && s->starting())
      came_up(*s,
              "alive for --ready-after " + format_duration(after) +
                  " after the daemon took it back, the weaker rule",
              Readiness::kReadyAfter);
  });
}

// A --listen program has no client library to resume with: its listening sockets are at
// fds 3, 4, ... as the daemon passed them, and pidfd_getfd(2) copies them back where the
// kernel allows it (root, or ptrace rights over the server).
void Supervisor::take_listen_sockets_back(Server& server, const ServerRecord& record) {
  for (size_t i = 0; i < server.request.listen.size(); ++i) {
    int target = 3 + static_cast<int>(i);
    auto resource = protocol::parse_resource(server.request.listen[i].resource);
    if (!resource.ok()) return;
    std::string name = resource->name();
    if (sockets_.find(name)) continue;
    auto copied = processes_.copy_fd(server.pid, target);  // the Processes seam
    if (!copied.ok()) {
      emit(server, EventKind::kUnmanaged, copied.status().message(), name);
      return;
    }
    UniqueFd fd = std::move(*copied);
    std::string spelled = server.request.listen[i].resource;
    std::string checked;
    if (Status s = adoptions_.check_socket(sockets_, processes_, fd.get(), spelled, &checked);
        !s.ok()) {
      emit(server, EventKind::kUnmanaged, "its fd " + std::to_string(target) + ": " + s.message(),
           name);
      return;
    }
    if (Status s = sockets_.adopt(name, std::move(fd), "its fd " + std::to_string(target)); !s.ok())
      log_line(s.message());
  }
  (void)record;
  adoptions_.resumed(server.id);
  emit(server, EventKind::kResumed, "took its listening sockets back with pidfd_getfd");
  if (server.starting()) restart_readiness_timers(server);
}

void Supervisor::resume(Peer& connection, const protocol::Message& message) {
  std::vector<UniqueFd> fds = connection.take_received_fds();  // closed on every refusal
  auto refuse = [&](const std::string& text) {
    log_refusal(connection, "resume refused (pid " + std::to_string(connection.peer_pid()) + ", " +
                                std::to_string(fds.size()) + " descriptor(s) closed): " + text);
    fds.clear();
    reply_error(connection, text, message);
    connection.close();
  };
  auto hello = protocol::decode_hello(message.body);
  if (!hello.ok()) return refuse(hello.status().message());
  if (hello->protocol != protocol::kVersion)
    return refuse("unsupported protocol version (this daemon speaks 1)");
  if (!hello->resume) return refuse("hello.resume must be an object");
  const std::vector<std::string>& holding = hello->resume->holding;
  if (holding.size() > kMaxResumedSockets) return refuse("resume: more than 64 resources");
  Server* server = find(hello->id);
  if (!server) server = take_back_unrecorded(connection, *hello, fds);
  if (!server || !adoptions_.adopted(server->id) || !server->alive() || server->connection != 0 ||
      server->state == ServerState::kDraining || server->state == ServerState::kFailed)
    return refuse("resume: unknown server id (not a server this daemon took back)");
  if (fds.size() != holding.size())
    return refuse("resume: " + std::to_string(fds.size()) + " descriptor(s) for " +
                  std::to_string(holding.size()) + " resource(s) in holding");
  std::vector<std::string> names(holding.size());
  for (size_t i = 0; i < holding.size(); ++i)
    if (Status s =
            adoptions_.check_socket(sockets_, processes_, fds[i].get(), holding[i], &names[i]);
        !s.ok())
      return refuse("resume: " + s.message());
  // An id is a credential, but it may leak: a resume counts only from the server's processes.
  if (!processes_.is_process_of(connection.peer_pid(), server->pid, server->start_time))
    return refuse("this connection is not from a process of that server");
  if (std::string why; !may_connect_again(*server, &why)) return refuse(why);
  // Every check passed: the first descriptor per resource becomes the daemon's own. A
  // server of another user vouches only for what state.json recorded it holding: a socket
  // it bound itself to a resource's address (in a network namespace of its own, where any
  // port is free) would otherwise become root's resource, take root's server down there,
  // and be what the next readyFor hands out. What it was not recorded holding is left out
  // (its own descriptor stays its own; the daemon neither keeps it nor counts it held).
  const bool vouched_by_record = connection.peer_uid() != ::getuid() && connection.peer_uid() != 0;
  std::map<std::string, std::string> held;
  for (size_t i = 0; i < holding.size(); ++i) {
    if (vouched_by_record && !server->held.count(names[i])) {
      log_refusal(connection, "resume of server " + std::to_string(server->pid) + " (uid " +
                                  std::to_string(connection.peer_uid()) +
                                  "): " + clip_for_log(holding[i]) +
                                  " left out: state.json does not record it holding that");
      continue;
    }
    held[names[i]] = holding[i];
    if (sockets_.find(names[i])) continue;
    if (Status s = sockets_.adopt(names[i], std::move(fds[i]),
                                  "server " + std::to_string(server->pid) + " (resume)");
        !s.ok())
      log_refusal(connection, s.message());  // as often as it resumes: within the rate
  }
  fds.clear();
  // Its --listen sockets came at spawn, not by readyFor, so a client library does not list
  // them (they were taken back with pidfd_getfd at adoption); the server still holds them.
  for (const auto& listen : server->request.listen) {
    auto resource = protocol::parse_resource(listen.resource);
    if (!resource.ok()) continue;
    auto it = server->held.find(resource->name());
    if (it != server->held.end() && !server->taken.contains(it->first)) held.insert(*it);
  }
  server->held = std::move(held);
  // What it still holds of what it was taken down on unheard (recorded in state.json) stays
  // taken: it was handed to another server.
  std::erase_if(server->taken, [&](const std::string& n) { return !server->held.count(n); });
  std::erase_if(server->unheard, [&](const std::string& n) { return !server->taken.count(n); });
  server->subscribed.clear();
  for (const auto& t : hello->resume->on_takedown) {
    if (subscribe_by_listen_name(*server, t)) continue;
    if (auto r = protocol::parse_resource(t); r.ok()) server->subscribed.insert(r->name());
  }
  server->up_message = hello->up_message;
  std::string id = server->id;
  resumed(*server, connection, hello->resume->up);
  // Taken down here unheard (it had not subscribed), it subscribes now: it is told (found by
  // the simulator: it kept accepting there, draining, until its SIGKILL).
  server = find(id);
  if (!server || !server->alive()) return;
  for (auto it = server->unheard.begin(); it != server->unheard.end();) {
    if (!server->subscribed.count(*it)) {
      ++it;
      continue;
    }
    connection.send(protocol::TakeDown{server->held[*it]}.encode());
    emit(*server, EventKind::kTakeDown, "sent takeDown (it subscribes now)", *it);
    it = server->unheard.erase(it);
  }
}

// A server the state file does not list (its write failed, and then the daemon died) that
// resumes: left out, it would serve unseen, hold its port against every later deploy, and
// outlive `stop`. One of the daemon's own uid (a process that could have deployed it) is
// taken back as if recorded: the newest by deploy order (it was deployed after the last
// write), its command read from /proc, so that the next deploy of that command replaces it
// and `stop` reaches it, provided its environment says a daemon on this socket started it
// under that id. Another uid's is refused: only its command line could vouch for it.
Server* Supervisor::take_back_unrecorded(const Peer& connection,
                                         const protocol::HelloRequest& hello,
                                         const std::vector<UniqueFd>& fds) {
  if (hello.id.empty() || !hello.pid || *hello.pid <= 0 || !hello.resume || find(hello.id))
    return nullptr;
  if (connection.peer_uid() != ::getuid()) return nullptr;
  const pid_t pid = static_cast<pid_t>(*hello.pid);
  auto started = processes_.start_time(pid);
  if (!started.ok() || !processes_.is_process_of(connection.peer_pid(), pid, *started))
    return nullptr;
  auto command = processes_.command_of(pid);
  if (!command.ok()) {
    log_refusal(connection, "a server unknown to this daemon (pid " + std::to_string(pid) +
                                ") asked to resume; not taken back: " + command.status().message());
    return nullptr;
  }
  // Started by a daemon on this socket under that id: the environment the daemon gave it.
  // (A process run by hand with a made-up id, or with a server's id copied, is not one.)
  auto has = [&](const std::string& entry) {
    return std::find(command->env.begin(), command->env.end(), entry) != command->env.end();
  };
  if (!has("SERVERSWAP_ID=" + hello.id) || !has("SERVERSWAP_SOCKET=" + options_.socket_path))
    return nullptr;
  ServerRecord record;
  record.id = hello.id;
  record.pid = pid;
  record.start_time = *started;
  record.generation = next_generation_;
  record.state = hello.resume && hello.resume->up ? "up" : "connected";
  record.request = std::move(*command);
  // What it holds is bound where its descriptors say (a ":0" resource's port included).
  const std::vector<std::string>& holding = hello.resume->holding;
  for (size_t i = 0; i < holding.size() && i < fds.size(); ++i) {
    auto resource = protocol::parse_resource(holding[i]);
    auto address = processes_.listening_resource(fds[i].get());
    if (resource.ok() && address.ok())
      record.held.push_back({resource->name(), holding[i], *address});
  }
  log_line("warning: server " + std::to_string(pid) +
           " is not in the state file (a write failed before the daemon restarted); taken back "
           "from its resume: " +
           join(record.request.argv, " "));
  adopt_server(record);
  return find(hello.id);
}

void Supervisor::resumed(Server& server, Peer& connection, bool up) {
  connection.role = Peer::Role::kServer;
  connection.server_id = server.id;
  server.connection = connection.id();
  bool adoption_over = adoptions_.resumed(server.id);
  connection.send(protocol::Welcome{protocol::kVersion, server.id,
                                    std::string("serverswap ") + SERVERSWAP_VERSION, true}
                      .encode());
  std::string holds = std::to_string(server.held.size()) + " listening socket(s)";
  if (up && server.state == ServerState::kConfirming) {
    // It was in its --confirm window when the daemon went away: the window starts again.
    emit_connection(server, EventKind::kResumed,
                    "resumed in its --confirm window, holding " + holds);
    begin_confirming(server, "resumed in its --confirm window after the daemon restarted",
                     resumed_confirm_window(server.request.confirm));
  } else if (up) {
    server.state = ServerState::kUp;
    emit_connection(server, EventKind::kResumed, "resumed, up, holding " + holds);
    resettle_resumed(server);
  } else {
    // Still starting: it goes on as a starting server with a fresh --ready-timeout.
    server.state = ServerState::kConnected;
    emit_connection(server, EventKind::kResumed, "resumed, still starting, holding " + holds);
    std::string id = server.id;
    server.ready_timer.start(options_.ready_timeout, [this, id] {
      Server* late = find(id);
      if (!late || !late->starting()) return;
      std::string why = "not up within --ready-timeout " + format_duration(options_.ready_timeout) +
                        " after it resumed";
      if (!keep_serving(*late, why)) fail(*late, why);
    });
    if (!server.held.empty()) become_ready(server);
  }
  if (adoption_over) this->adoption_over();
}

// state.json does not record which resources an up server had already been taken down on:
// of two up servers that both hold a resource after a resume (an older one that did not
// subscribe kept accepting there beside the newer), the older is taken down on it again
// (found by the simulator: two generations serving once quiet).
void Supervisor::resettle_resumed(Server& server) {
  std::vector<std::string> names;
  // Not where it was taken down itself (a server kept up on what it took over with `serving`
  // gave the rest back to their older holders).
  for (const auto& [name, spelled] : server.held)
    if (!server.taken.count(name)) names.push_back(name);
  for (const auto& name : names) {
    std::vector<std::string> older;
    const Server* newest = nullptr;
    for (auto& [id, other] : servers_) {
      if (other.get() == &server || !other->serving()) continue;
      if (!other->held.count(name) || other->taken.count(name)) continue;
      if (newer(*other, server) && same_slot(*other, server)) newest = other.get();
      if (newer(server, *other) && same_slot(server, *other)) older.push_back(id);
    }
    if (newest) {
      if (!server.taken.count(name) && server.serving())
        take_down(
            server, {name},
            "generation " + std::to_string(newest->generation) + ", a later deploy, serves it",
            newest);
      continue;
    }
    for (const auto& id : older)
      if (Server* s = find(id); s && s->serving())
        take_down(*s, {name},
                  "generation " + std::to_string(server.generation) + ", a later deploy, serves it",
                  &server);
  }
}

bool Supervisor::adopting() const {
  return adoptions_.adopting();
}

void Supervisor::give_up_adoption() {
  std::vector<std::string> starting;
  for (const auto& id : adoptions_.give_up()) {
    Server* s = find(id);
    if (!s) continue;
    // One that was still starting cannot come up without its connection: it fails (found by
    // the simulator: it stayed `connected`, accepting, never up, for good).
    if (s->starting()) {
      starting.push_back(id);
      continue;
    }
    // One being taken down meanwhile (the daemon is stopping) stays draining or failed.
    if (s->state == ServerState::kUp) {
      adoptions_.unmanaged_as(id, s->state);
      s->state = ServerState::kUnmanaged;
    }
    emit(*s, EventKind::kUnmanaged,
         "did not resume within --adopt-timeout; it is taken down by signal when replaced");
  }
  const std::string why =
      "did not resume within --adopt-timeout, and was not up: it cannot come up now";
  for (const auto& id : starting) {
    Server* s = find(id);
    if (!s) continue;
    // It took resources over with `serving`: it serves them, unmanaged, as an up server would.
    if (keep_serving(*s, why)) {
      adoptions_.unmanaged_as(id, s->state);
      s->state = ServerState::kUnmanaged;
      emit(*s, EventKind::kUnmanaged,
           "did not resume within --adopt-timeout; it is taken down by signal when replaced");
    } else {
      fail(*s, why);
    }
  }
  // Which of them a newer one had replaced where is not recorded (resettle_resumed).
  std::vector<std::string> unmanaged;
  for (const auto& [id, s] : servers_)
    if (s->state == ServerState::kUnmanaged) unmanaged.push_back(id);
  for (const auto& id : unmanaged)
    if (Server* s = find(id); s && s->serving()) resettle_resumed(*s);
  start_missing_workers();
}

void Supervisor::adoption_over() {
  start_missing_workers();
  if (adoption_done_) adoption_done_();
}

// A worker app taken back from state.json stands for --workers N copies, one per index, but
// a worker missing from the state file (its crash restart was pending when the daemon died:
// crash loops are not recorded) is started by no one: the roll that would have died with the
// daemon, and the next daemon knows no loop (found by the simulator, seed 92 of the full
// mix). Once adoption is over, each index of such an app that no worker covers is started
// again with the app's command, as the first restart of a crash loop of its own. Only when
// every worker of the app runs one command line of one worker count: a roll interrupted
// half-way (two releases) is left as it is.
void Supervisor::start_missing_workers() {
  if (stopping()) return;
  struct WorkerApp {
    const Server* newest = nullptr;
    std::set<std::string> commands;
    std::set<int> counts;
    std::set<int> covered;
    std::set<std::string> resources;
  };
  std::map<std::string, WorkerApp> apps;
  for (const auto& [id, s] : servers_) {
    if (!s->alive() || s->request.worker < 0) continue;
    // Being taken down: it covers its index only if its exit restarts it (a failed worker
    // taken back, CrashRestarts::exited).
    bool leaving = s->state == ServerState::kDraining || s->state == ServerState::kFailed;
    if (leaving && !(s->state == ServerState::kFailed && s->taken_back && s->superseded_by == 0))
      continue;
    WorkerApp& app = apps[app_of(s->request)];
    app.commands.insert(command_line_key(s->request));
    app.counts.insert(s->request.workers.value_or(0));
    app.covered.insert(s->request.worker);
    for (const auto& [name, spelled] : s->held) app.resources.insert(name);
    if (!app.newest || newer(*s, *app.newest)) app.newest = s.get();
  }
  for (const auto& loop : crash_restarts_.loops())
    if (loop.request.worker >= 0)
      if (auto it = apps.find(app_of(loop.request)); it != apps.end())
        it->second.covered.insert(loop.request.worker);
  for (auto& [name, app] : apps) {
    if (app.commands.size() != 1 || app.counts.size() != 1 || !app.newest->taken_back) continue;
    SpawnSpec request = app.newest->request;
    uint64_t rank = app.newest->rank;
    std::set<std::string> resources = app.resources;
    for (int index = 0; index < *app.counts.begin(); ++index) {
      if (app.covered.count(index)) continue;
      log_line("app " + name + ": worker " + std::to_string(index) +
               " is missing after the daemon restarted; started again");
      request.worker = index;
      crash_restarts_.restore(request, resources, rank);
    }
  }
}

DaemonState Supervisor::record() const {
  DaemonState state;
  for (const auto& [id, s] : servers_) {
    if (!s->alive()) continue;
    ServerRecord r;
    r.id = id;
    r.pid = s->pid;
    r.start_time = s->start_time;
    r.generation = s->generation;
    // An unmanaged server is recorded as it was taken back: the next daemon waits for it again.
    r.state =
        state_name(s->state == ServerState::kUnmanaged ? adoptions_.recorded_state(id) : s->state);
    r.request = s->request;
    for (const auto& [name, spelled] : s->held)
      r.held.push_back({name, spelled, adoptions_.address_of(sockets_, name),
                        s->served.count(name) > 0, s->serving() && s->taken.count(name) > 0,
                        s->serving() && s->unheard.count(name) > 0});
    r.restarts = s->restarts;
    r.rank = s->rank;
    r.kept = s->kept;
    if (s->process) r.output = s->process->output_pipe();
    // A path; an abstract name of an older version's server without the '@', as it wrote it.
    if (s->notify)
      r.notify = s->notify->address().starts_with("@") ? s->notify->address().substr(1)
                                                       : s->notify->address();
    state.servers.push_back(std::move(r));
  }
  state.apps = history_.record();
  return state;
}

int Supervisor::notify_fd(const std::string& id) const {
  auto it = servers_.find(id);
  return it != servers_.end() && it->second->notify ? it->second->notify->fd() : -1;
}

bool Supervisor::is_server_pid(pid_t pid) const {
  for (const auto& [id, s] : servers_)
    if (s->pid == pid && s->alive()) return true;
  return false;
}

}  // namespace serverswap::daemon
