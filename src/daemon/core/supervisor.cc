#include "daemon/core/supervisor.h"

#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <random>

#include "base/join.h"
#include "base/log.h"
#include "daemon/core/apps.h"
#include "daemon/process/process_tree.h"
#include "daemon/spawn/spawn_environment.h"
#include "daemon/workers/worker_roll.h"
#include "observe/counters.h"

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
    case ServerState::kConfirming:
      return "confirming";
    case ServerState::kUp:
      return "up";
    case ServerState::kDraining:
      return "draining";
    case ServerState::kFailed:
      return "failed";
    case ServerState::kUnmanaged:
      return "unmanaged";
    case ServerState::kGone:
      return "gone";
  }
  return "?";
}

namespace {

// How long a server that closed its connection before it was up may take to exit by
// itself before it is signalled.
constexpr Millis kExitGrace{1000};

// Notifications a server's NOTIFY_SOCKET refuses: logged this many times, then counted.
constexpr int kLoggedRefusals = 3;

// --user/--group: the identity it runs as, and a control socket that user can reach in
// place of the daemon's own (in a 0700 directory of the daemon's user).
Status run_as_requested_identity(SpawnSpec& spec, const SupervisorOptions& options) {
  if (spec.user.empty() && spec.group.empty()) return {};
  auto identity = resolve_identity(spec.user, spec.group);
  if (!identity.ok()) return identity.status();
  if (identity->uid == getuid() && identity->gid == getgid()) return {};
  std::optional<std::string> user_socket;  // its own control socket: another uid's
  if (identity->uid != getuid()) {
    if (!options.socket_for_user) return Status::error("--user: no socket for other users");
    auto socket = options.socket_for_user(identity->uid, identity->gid);
    if (!socket.ok()) return socket.status();
    user_socket = *socket;
  }
  spec.env = spec.env.edited([&](Environment::List& env) {
    if (user_socket) {
      std::erase_if(env, [](const std::string& e) { return e.starts_with("SERVERSWAP_SOCKET="); });
      env.push_back("SERVERSWAP_SOCKET=" + *user_socket);
    }
    set_login_environment(*identity, env);
  });
  spec.run_as = *identity;
  return {};
}

// einhorn workers ack on EINHORN_SOCK_PATH: the control socket this server reaches (its
// SERVERSWAP_SOCKET), where a first line {"command": ...} is read as einhorn's.
void add_einhorn_socket(std::vector<std::string>& env) {
  const std::string key = "SERVERSWAP_SOCKET=";
  for (const auto& e : env)
    if (e.starts_with(key)) {
      env.push_back("EINHORN_SOCK_PATH=" + e.substr(key.size()));
      return;
    }
}

// Generation plus 64 bits from the kernel's CSPRNG: the id is what a server proves itself
// with (hello, and a resume after a daemon restart), so one server must not be able to
// guess another's, as it could from a seeded PRNG's earlier outputs.
std::string make_id(uint64_t generation) {
  uint64_t bits = 0;
  ssize_t got = 0;
  do {
    got = ::getrandom(&bits, sizeof bits, 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof bits)) {
    static std::mt19937_64 fallback{std::random_device{}()};  // kernels before 3.17
    bits = fallback();
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%llu.%016llx", static_cast<unsigned long long>(generation),
                static_cast<unsigned long long>(bits));
  return buf;
}

}  // namespace

std::string command_line_key(const SpawnSpec& spec) {
  return join(spec.argv, std::string_view("\0", 1)) + std::string(2, '\0') + spec.cwd;
}

namespace {

std::string describe_exit(int64_t status, int term_signal) {
  if (term_signal != 0) return "killed by " + signal_name(term_signal);
  if (status < 0) return "exited (its status went to its parent, an earlier daemon's)";
  return "exited with status " + std::to_string(status);
}

}  // namespace

Supervisor::Supervisor(SupervisorSeams seams, SupervisorOptions options,
                       FindConnection find_connection)
    : clock_(seams.clock),
      processes_(seams.processes),
      sockets_(seams.sockets),
      options_(std::move(options)),
      find_connection_(std::move(find_connection)) {}

Supervisor::~Supervisor() {
  // Servers still running when the daemon is torn down (only on a fatal error) are killed so
  // that nothing outlives it unsupervised.
  for (auto& [id, server] : servers_)
    if (server->alive()) server->process->signal_group(SIGKILL);
}

// ---- Starting a server -------------------------------------------------------------------

void Supervisor::deploy(const SpawnSpec& request, Sink requester, bool follow_exit) {
  // The observer hears each outcome of a deploy once; events reach it from emit().
  Sink sink = [observer = options_.observer, requester](const Json& message) {
    if (observer && protocol::message_name(message) != protocol::Event::kName) observer(message);
    requester(message);
  };
  if (stopping()) {
    sink(protocol::DeployFailed{std::nullopt, "the daemon is stopping", std::nullopt, std::nullopt}
             .encode());
    return;
  }
  if (Status s = check_replaced_apps(request); !s.ok()) {
    log_line("deploy of '" + join(request.argv, " ") + "' refused: " + s.message());
    sink(protocol::DeployFailed{std::nullopt, s.message(), std::nullopt, std::nullopt}.encode());
    return;
  }
  if (request.workers) return rolls_.start(request, std::move(sink), follow_exit);
  Server* started = start_server(request, std::move(sink), follow_exit);
  if (!started) return;
  // The newest deploy wins: an earlier one of the same command that is not up yet is
  // superseded (a newer deploy of the same resource supersedes it when it asks for it).
  std::string key = app_of(request);
  std::vector<std::string> older;
  for (const auto& [id, s] : servers_)
    if (s.get() != started && s->starting() && s->request.worker < 0 && app_of(s->request) == key)
      older.push_back(id);
  for (const auto& id : older)
    if (Server* s = find(id)) supersede(*s, *started);
}

// Each `--replace APP` names an app the daemon runs or knows ('*': any): a misspelled one
// would otherwise be accepted and replace nothing, and the deploy fail later on the real
// app's resource, or silently take it with '*' in mind.
Status Supervisor::check_replaced_apps(const SpawnSpec& request) const {
  for (const auto& app : request.replace) {
    if (app == "*" || runs_app(app) || history_.knows(app)) continue;
    std::set<std::string> known;
    for (const auto& [id, s] : servers_)
      if (s->alive()) known.insert(app_of(s->request));
    for (const auto& status : history_.status()) known.insert(status.app);
    std::vector<std::string> list(known.begin(), known.end());
    return Status::error("--replace " + app + ": no app named '" + app + "' is known (" +
                         (list.empty() ? std::string("no app is") : "apps: " + join(list, ", ")) +
                         "); nothing was deployed");
  }
  return {};
}

// A server of another deploy order is newer when its deploy came later. A crash restart
// stands for the release it restarts, so it ranks as that server did: it never supersedes
// or replaces a server that a later deploy started.
bool Supervisor::newer(const Server& a, const Server& b) {
  return std::pair(a.rank, a.generation) > std::pair(b.rank, b.generation);
}

// A server that is no worker stands for every slot of its resources, so a newer worker
// replaces (and supersedes) it too: else an older plain server still starting came up beside
// the workers of a later deploy, and both served once quiet (found by the simulator, I3).
// A worker of a deploy of N workers stands for the indices N and beyond too (their old copies
// go once it is all up): found by the simulator (seed 1382 of the worker mix), the crash
// restart of an old worker 2 came up after a roll of 2 workers had deployed, and 3 workers of
// two releases served once quiet.
bool Supervisor::same_slot(const Server& newer, const Server& older) {
  return newer.request.worker < 0 || older.request.worker < 0 ||
         older.request.worker == newer.request.worker ||
         (newer.request.workers && older.request.worker >= *newer.request.workers);
}

// `older` is not up yet and a newer deploy of its command or of one of its resources has
// arrived: it is stopped, and its deploy fails with the reason.
void Supervisor::supersede(Server& older, const Server& newer_server) {
  std::string why = "superseded by generation " + std::to_string(newer_server.generation);
  if (!keep_serving(older, why)) fail_superseded(older, newer_server, why);
  // A roll hears of it at once when the loser is one of its workers (its own deploy record
  // reports only at its exit) or an old copy the winner's roll now replaces.
  rolls_.superseded(older, newer_server, why);
}

// `server`, still starting, would fail for a reason of the daemon's (a newer deploy, the
// ready timeout), but it already serves resources it took over with `serving`, whose older
// holders were taken down there: failing it would leave them unserved. It stays, up on what
// it holds (a newer server replaces it as any up server), and gives back what an older
// holder still serves; its deploy fails with `why`. False (nothing done) when it serves
// nothing it took over: it fails as usual. Found by the simulator (I1).
bool Supervisor::keep_serving(Server& server, const std::string& why) {
  if (!server.starting() || server.request.worker >= 0 || server.process->exited()) return false;
  bool serves = false;
  for (const auto& name : server.served)
    if (server.held.count(name) && !server.taken.count(name)) serves = true;
  if (!serves) return false;
  // Given back before it counts as up, so that it is never up there beside the older holder.
  std::set<std::string> back;
  for (const auto& [name, spelled] : server.held) {
    if (server.served.count(name) || server.taken.count(name)) continue;
    for (const auto& [id, other] : servers_)
      if (other.get() != &server && other->serving() && other->held.count(name) &&
          !other->taken.count(name))
        back.insert(name);
  }
  if (!back.empty()) take_down(server, back, why + "; an older server still serves it", nullptr);
  server.state = ServerState::kUp;
  server.kept = true;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.confirm_timer.stop();
  deploys_.failed(server.id, why + "; it keeps serving what it took over with serving until a " +
                                 "newer server replaces it there");
  emit(server, EventKind::kUp, "is up on what it took over with serving (" + why + ")");
  crash_restarts_.up(server);
  return true;
}

// A newer server of the same slot that is a version of the same app, or holds one of
// `server`'s resources, and is starting or up: the server that wins, so `server` may not
// come up.
const Server* Supervisor::newer_holder(const Server& server) const {
  std::string app = app_of(server.request);
  for (const auto& [id, other] : servers_) {
    if (other.get() == &server || !newer(*other, server) || !same_slot(*other, server)) continue;
    if (!other->starting() && !other->serving()) continue;
    if (app_of(other->request) == app) return other.get();  // a newer version of its app
    for (const auto& [name, spelled] : server.held)
      if (other->held.count(name)) return other.get();
  }
  return nullptr;
}

// `server` now holds `name`: of two servers racing for a resource, the newer deploy wins.
// Returns false when `server` lost (it is superseded and failing).
bool Supervisor::settle_race(Server& server, const std::string& name) {
  std::vector<std::string> losers;
  for (const auto& [id, other] : servers_) {
    if (other.get() == &server) continue;
    if (!other->held.count(name) || other->taken.count(name)) continue;
    if (!other->starting() && !other->serving()) continue;
    bool other_newer = newer(*other, server);
    if (!(other_newer ? same_slot(*other, server) : same_slot(server, *other))) continue;
    if (other_newer) {
      if (server.starting()) {
        supersede(server, *other);
        return false;
      }
      // Up already on its other resources: it loses this one to a newer server that is up,
      // and keeps it until then (become_up of the newer one takes it over).
      if (!other->serving()) continue;
      take_down(server, {name},
                "generation " + std::to_string(other->generation) + ", a later deploy, serves it",
                other.get());
      return false;
    }
    if (other->starting()) losers.push_back(id);
  }
  for (const auto& id : losers)
    if (Server* s = find(id)) supersede(*s, server);
  return true;
}

Server* Supervisor::start_server(const SpawnSpec& request, Sink sink, bool follow_exit,
                                 uint64_t rank) {
  uint64_t generation = next_generation_++;
  std::string id = make_id(generation);
  auto refuse = [&](const Status& why) -> Server* {
    log_line("deploy of '" + join(request.argv, " ") + "' failed: " + why.message());
    sink(protocol::DeployFailed{std::nullopt, why.message(), std::nullopt, std::nullopt}.encode());
    return nullptr;
  };
  for (const auto& l : request.listen)
    if (auto parsed = protocol::parse_resource(l.resource); parsed.ok())
      if (const Server* holder = other_apps_holder(servers_, request, parsed->name(), nullptr))
        return refuse(claimed_by(request, *holder).wrap("--listen " + l.resource));
  auto passed = bind_listen_sockets(sockets_, request.listen);
  if (!passed.ok()) return refuse(passed.status());
  std::vector<std::string> daemon_env = {"SERVERSWAP_SOCKET=" + options_.socket_path,
                                         "SERVERSWAP_ID=" + id};
  if (!options_.relay_path.empty()) daemon_env.push_back("SERVERSWAP_RELAY=" + options_.relay_path);
  if (request.worker >= 0)
    daemon_env.push_back("SERVERSWAP_WORKER=" + std::to_string(request.worker));
  SpawnSpec spec = spawned_spec(request, daemon_env, *passed, options_.relay_path);
  if (Status s = run_as_requested_identity(spec, options_); !s.ok()) return refuse(s);
  // A path of its own in a directory only we write (NotifyDirectory), given to its uid.
  uid_t uid = spec.run_as ? spec.run_as->uid : ::getuid();
  auto path = notify_dir_.new_path(uid);
  if (!path.ok()) return refuse(path.status());
  auto notify = open_notify_socket(id, *path, uid);
  if (!notify.ok()) return refuse(notify.status());
  spec.env = spec.env.edited([&](Environment::List& env) {
    env.push_back("NOTIFY_SOCKET=" + (*notify)->address());
    if (!passed->empty()) add_einhorn_socket(env);
    // A rollback runs in the release it ran in (SpawnSpec::pinned), and says so in PWD: the
    // deployer's PWD names the symbolic link, which leads elsewhere now.
    if (spec.pinned && spec.physical) {
      std::erase_if(env, [](const std::string& e) { return e.starts_with("PWD="); });
      env.push_back("PWD=" + spec.physical->path);
    }
  });
  std::vector<int> inherited;
  for (const auto& p : *passed) inherited.push_back(p.daemon_fd);
  auto process = processes_.spawn(
      spec, [this, id](int64_t status, int sig) { exited(id, status, sig); }, inherited,
      output_reader(generation, uid));
  if (!process.ok()) return refuse(process.status());
  auto server = std::make_unique<Server>(clock_);
  server->id = id;
  server->generation = generation;
  server->rank = rank != 0 ? rank : generation;
  server->argv = request.argv;
  server->cwd = spec.cwd;
  server->request = request;
  server->process = std::move(*process);
  // Where it runs, for its version (AppHistory): a rollback goes back there.
  if (auto dir = server->process->directory()) server->request.physical = std::move(*dir);
  server->pid = server->process->pid();
  server->started = clock_.now();
  if (auto started = processes_.start_time(server->pid); started.ok())
    server->start_time = *started;
  server->notify = std::move(*notify);
  // The exec shim execs the program: its pid is the one LISTEN_PID names.
  server->notify->accept_sender(server->pid, uid);
  Server& s = *server;
  servers_.emplace(id, std::move(server));
  deploys_.started(s, std::move(sink), follow_exit);
  s.ready_timer.start(options_.ready_timeout, [this, id] {
    Server* late = find(id);
    if (!late || !late->starting()) return;
    std::string why = never_ready_reason(
        late->state != ServerState::kStarting, !late->request.listen.empty(), late->notified,
        format_duration(options_.ready_timeout), refused_ready_hint(*late));
    if (!keep_serving(*late, why)) fail(*late, why);
  });
  emit(s, EventKind::kSpawned,
       "started generation " + std::to_string(generation) + ": " + join(s.argv, " "));
  hold_listen_sockets(s, *passed);
  // Its resources are known at spawn: an older deploy still starting on them is superseded
  // now, or this one is if a newer server already holds one.
  for (const auto& p : *passed)
    if (!settle_race(s, p.resource.name())) break;
  return &s;
}

// ---- Unmodified programs: --listen sockets, sd_notify, --ready-after ---------------------

// A --listen server holds its sockets from spawn, as if it had asked for each.
void Supervisor::hold_listen_sockets(Server& server, const std::vector<PassedSocket>& passed) {
  for (size_t i = 0; i < passed.size(); ++i) {
    std::string name = passed[i].resource.name();
    server.held[name] = server.request.listen[i].resource;
    emit(server, EventKind::kResourceReady,
         "inherits the listening socket " + passed[i].address + " at fd " +
             std::to_string(passed[i].child_fd) + " (" + passed[i].fd_name + ")",
         name);
  }
  if (!server.request.ready_after) return;
  Millis after = *server.request.ready_after;
  std::string id = server.id;
  server.ready_after_timer.start(after, [this, id, after] {
    if (Server* s = find(id); s && s->starting())
      came_up(*s,
              "alive for --ready-after " + format_duration(after) +
                  ", the weaker rule: it did not say it was ready",
              Readiness::kReadyAfter);
  });
}

// One sd_notify datagram, from a sender NotifySocket has already checked.
void Supervisor::notified(const std::string& id, const NotifyMessage& message) {
  Server* server = find(id);
  if (!server || !server->alive()) return;
  server->notified = true;
  for (const auto& [key, value] : message.fields) {
    if (key == "READY" && value == "1") {
      if (server->starting()) came_up(*server, "sent READY=1 on NOTIFY_SOCKET", Readiness::kNotify);
    } else if (key == "STATUS") {
      emit_said(*server, EventKind::kStatus, "STATUS=" + value);
    } else if (key == "STOPPING" && value == "1") {
      server->said_stopping = true;
      emit_said(*server, EventKind::kStopping, "said STOPPING=1");
    } else if (key == "MAINPID") {
      char* end = nullptr;
      long pid = std::strtol(value.c_str(), &end, 10);
      if (end && *end == '\0' && pid > 0) {
        server->main_pid = static_cast<pid_t>(pid);
        emit_said(*server, EventKind::kMainPid, "MAINPID=" + value);
      }
    }
  }
}

// The server's NOTIFY_SOCKET, bound at `address` (or, after an upgrade, the previous image's
// socket at `fd`); messages and refusals go to the server `id`.
Result<std::unique_ptr<Notifier>> Supervisor::open_notify_socket(const std::string& id,
                                                                 const std::string& address,
                                                                 uid_t uid, int fd) {
  auto on_message = [this, id](const NotifyMessage& message) { notified(id, message); };
  auto on_rejected = [this, id](const NotifyRefusal& refusal) { notify_refused(id, refusal); };
  return processes_.open_notify(address, uid, fd, on_message, on_rejected);
}

// Logged for the first few only (a sender may flood the socket), then counted; a refused
// READY=1 is remembered for the failure message.
void Supervisor::notify_refused(const std::string& id, const NotifyRefusal& refusal) {
  Server* server = find(id);
  if (!server) return;
  int count = ++server->notify_refusals;
  if (count <= kLoggedRefusals) emit(*server, EventKind::kNotifyRejected, refusal.why);
  if (count == kLoggedRefusals + 1)
    emit(*server, EventKind::kNotifyRejected,
         "more notifications dropped; counted, no longer logged");
  if (refusal.ready && refusal.sender > 0) {
    server->refused_ready_pid = refusal.sender;
    server->refused_ready_comm = refusal.comm;
    server->main_comm = processes_.comm(server->pid);
  }
}

std::string Supervisor::refused_ready_hint(const Server& server) const {
  std::string dropped;
  if (server.notify_refusals > kLoggedRefusals)
    dropped = std::to_string(server.notify_refusals) + " notifications were dropped";
  if (server.refused_ready_pid <= 0) return dropped;
  std::string hint = refused_ready_reason(server.refused_ready_pid, server.refused_ready_comm,
                                          server.pid, server.main_comm);
  return dropped.empty() ? hint : hint + " (" + dropped + ")";
}

int Supervisor::takedown_signal(const Server& server) const {
  return server.request.takedown_signal.value_or(options_.takedown_signal);
}

// ---- Messages from servers ---------------------------------------------------------------

void Supervisor::hello(Peer& connection, const protocol::Message& message) {
  const Json& body = message.body;
  if (protocol::is_resume_hello(body)) return resume(connection, message);
  auto error = [&](const std::string& text) {
    reply_error(connection, text, message);
    connection.close();
  };
  auto hello = protocol::decode_hello(body);
  if (!hello.ok()) return error(hello.status().message());
  if (hello->protocol != protocol::kVersion)
    return error("unsupported protocol version (this daemon speaks 1)");
  Server* server = find(hello->id);
  if (!server || !server->alive()) return error("unknown or already connected server id");
  // An id is a credential, but it may leak: it counts only from the server's own processes.
  if (!processes_.is_process_of(connection.peer_pid(), server->pid, server->start_time)) {
    log_refusal(connection, "hello refused: pid " + std::to_string(connection.peer_pid()) +
                                " is not a process of server " + std::to_string(server->pid) +
                                " (gen " + std::to_string(server->generation) + ")");
    return error("this connection is not from a process of that server");
  }
  if (server->connection != 0) return error("unknown or already connected server id");
  if (std::string why; !may_connect_again(*server, &why)) {
    log_refusal(connection, "hello refused: server " + std::to_string(server->pid) + " (gen " +
                                std::to_string(server->generation) + "): " + why);
    return error(why);
  }
  connection.role = Peer::Role::kServer;
  connection.server_id = server->id;
  server->connection = connection.id();
  server->up_message = hello->up_message;
  if (server->state == ServerState::kStarting) server->state = ServerState::kConnected;
  bool inherited_only = server->state == ServerState::kConnected && !server->held.empty();
  connection.send(protocol::Welcome{protocol::kVersion, server->id,
                                    std::string("serverswap ") + SERVERSWAP_VERSION, false}
                      .encode());
  emit_connection(*server, EventKind::kConnected,
                  "connected (pid " + std::to_string(connection.peer_pid()) + ")");
  // Taken back before it had said hello to the daemon that died, it says it to this one: it
  // is managed again, as if it had resumed (found by the simulator: it was made unmanaged
  // at --adopt-timeout while connected, and then took nothing over).
  std::string id = server->id;
  if (adoptions_.adopted(id) && adoptions_.resumed(id)) adoption_over();
  server = find(id);
  // A --listen server with a client library has its sockets already and asks for none.
  if (server && inherited_only) become_ready(*server);
}

// What a `fail` from a server no longer starting is said to be (it changes nothing): the
// truth for its state, for it may never have been up (failed, or superseded, before).
static std::string late_fail(const Server& server) {
  switch (server.state) {
    case ServerState::kUp:
      return "sent fail after it was up (ignored): ";
    case ServerState::kDraining:
      return "sent fail while being taken down (ignored): ";
    case ServerState::kFailed:
      return "sent fail after its start had already failed (ignored: it is being stopped): ";
    default:
      return std::string("sent fail while ") + state_name(server.state) + " (ignored): ";
  }
}

void Supervisor::server_message(Peer& connection, const protocol::Message& message) {
  Server* server = server_of(connection);
  if (!server) return;
  const std::string& name = message.name;
  if (name == "readyFor") {
    ready_for(*server, connection, message);
  } else if (name == "onTakedown") {
    on_takedown(*server, connection, message);
  } else if (name == "serverUp") {
    auto up = protocol::ServerUp::decode(message);
    if (!up.ok()) return reply_error(connection, up.status().message(), message);
    if (server->starting()) came_up(*server, "sent serverUp", Readiness::kServerUp);
  } else if (name == "fail") {
    auto reason = protocol::decode_string_body(name, message.body);
    if (!reason.ok()) return reply_error(connection, reason.status().message(), message);
    const std::string& why = *reason;
    if (server->state == ServerState::kConfirming) {
      fail(*server, window_failure(
                        *server, "sent fail (" +
                                     (why.empty() ? "no reason given" : clip_for_log(why)) + ")"));
    } else if (server->starting()) {
      // Once per server (it fails): only the length is the server's to choose.
      fail(*server, "sent fail: " + (why.empty() ? "(no reason given)" : clip_for_log(why)));
    } else {
      emit_said(*server, EventKind::kFail, late_fail(*server) + why);
    }
  } else if (name == "serving") {
    serving(*server, connection, message);
  } else if (name == "tookDown") {
    auto resource = protocol::decode_string_body(name, message.body);
    if (!resource.ok()) return reply_error(connection, resource.status().message(), message);
    emit_said(*server, EventKind::kTookDown, "stopped accepting", *resource);
  } else if (name == "hello") {
    reply_error(connection, "hello was already said on this connection", message);
  } else {
    reply_error(connection, "unknown message '" + name + "'", message);
  }
}

void Supervisor::ready_for(Server& server, Peer& connection, const protocol::Message& m) {
  auto body = protocol::decode_string_body(m.name, m.body);
  if (!body.ok()) return reply_error(connection, body.status().message(), m);
  std::string spelled = *body;
  auto resource = protocol::parse_resource(spelled);
  if (!resource.ok()) {
    reply_error(connection, resource.status().message(), m);
    if (server.starting()) fail(server, resource.status().message());
    return;
  }
  std::string name = resource->name();
  // Every error answering a readyFor names it ("readyFor NAME: …"), as the clients show the
  // daemon's text as it is (the C++ client used to add its own prefix: "readyFor X: readyFor
  // X: …").
  if (server.state == ServerState::kDraining || server.state == ServerState::kFailed)
    return reply_error(connection, "readyFor " + name + ": this server is being taken down", m);
  // Its deploy failed: it keeps what it took over with `serving`, and gets nothing more.
  if (server.kept && !server.held.count(name))
    return reply_error(connection,
                       "readyFor " + name +
                           ": this server's deploy failed; it only keeps serving what it took "
                           "over with serving",
                       m);
  // A starting server that already serves what it took over with `serving` keeps it.
  auto refused = [&](const Status& why) {
    reply_error(connection, why.message(), m);
    if (server.starting() && !keep_serving(server, why.message())) fail(server, why.message());
  };
  if (!server.held.count(name) && !server.asking.count(name) &&
      server.held.size() + server.asking.size() >= kMaxResourcesPerServer)
    return refused(Status::error("readyFor " + name + ": a server may hold at most " +
                                 std::to_string(kMaxResourcesPerServer) + " resources"));
  if (const Server* holder = other_apps_holder(servers_, server.request, name, &server)) {
    server.lost_to_app = app_of(holder->request);
    return refused(claimed_by(server.request, *holder).wrap("readyFor " + name));
  }
  std::optional<Listeners::BindAs> bind_as;
  if (Status s = may_hold(server, *resource, &bind_as); !s.ok()) return refused(s);
  // A Unix socket bound as another user (--user) comes back later, from a child that binds
  // as that user: the loop does not wait for it, and the reply goes out when it has come (if
  // the server and its connection are still there, and it is not being taken down).
  std::string id = server.id;
  uint64_t connection_id = connection.id();
  server.asking.insert(name);
  sockets_.get_or_bind_async(
      *resource, bind_as,
      [this, id, connection_id, spelled, name, m, r = *resource,
       checked = bind_as.has_value()](Result<const Listeners::Entry*> entry) {
        Server* s = find(id);
        if (s) s->asking.erase(name);
        Peer* c = find_connection_(connection_id);
        // A socket bound for no one who holds it now is closed after the grace.
        if (!s || !c) return close_idle_sockets();
        if (s->state == ServerState::kDraining || s->state == ServerState::kFailed) {
          close_idle_sockets();
          return reply_error(*c, "readyFor " + name + ": this server is being taken down", m);
        }
        // Asked for others meanwhile: the cap holds for what came back later too.
        if (entry.ok() && !s->held.count(name) && s->held.size() >= kMaxResourcesPerServer)
          entry = Status::error("readyFor " + name + ": a server may hold at most " +
                                std::to_string(kMaxResourcesPerServer) + " resources");
        // Checked again now that the socket exists: another user's bind of the same name
        // may have made it meanwhile, and it is theirs.
        std::optional<Listeners::BindAs> again;
        if (Status may = checked && entry.ok() ? may_hold(*s, r, &again) : Status(); !may.ok())
          entry = may;
        // Another app may have claimed it meanwhile.
        if (const Server* holder =
                entry.ok() ? other_apps_holder(servers_, s->request, name, s) : nullptr) {
          s->lost_to_app = app_of(holder->request);
          entry = claimed_by(s->request, *holder).wrap("readyFor " + name);
        }
        if (!entry.ok()) {
          close_idle_sockets();
          reply_error(*c, entry.status().message(), m);
          if (s->starting() && !keep_serving(*s, entry.status().message()))
            fail(*s, entry.status().message());
          return;
        }
        // Asked again for what it holds: answered the same (docs/protocol.md, section 5: the
        // same socket), and no state change (before, each one started the settle timer
        // again); said once per resource (askedAgain), so that a deploy waiting for it can
        // say "asked for :8080 twice" and a server repeating readyFor in a loop makes one
        // log line.
        bool held_already = s->held.count(name) > 0;
        s->held[name] = spelled;
        c->send_with_handle(protocol::ResourceReady{spelled, (*entry)->address}.encode(),
                            (*entry)->handle);
        if (held_already) {
          if (s->asked_again.insert(name).second)
            emit(*s, EventKind::kAskedAgain,
                 "asked again for what it holds (readyFor " + spelled +
                     " twice); handed the same socket, a second descriptor of it",
                 name);
          return;
        }
        emit(*s, EventKind::kResourceReady, "handed the listening socket " + (*entry)->address,
             name);
        holds(*s, name);
      });
}

// `server` was handed `name`: of two servers racing for it the newer deploy wins, and a
// server that is up already (it settled between two readyFor) takes it over now.
void Supervisor::holds(Server& server, const std::string& name) {
  rolls_.holds(server, name);
  if (!settle_race(server, name)) return;
  // In its window it is up already: what it holds when the window has passed is taken over.
  if (server.state == ServerState::kConfirming) return;
  if (server.starting()) return become_ready(server);
  if (server.state != ServerState::kUp || server.kept) return;
  // Up already (it settled between two readyFor): it takes this one over once it has held it
  // for --settle too, as the settle rule asks of any resource, and not before its --confirm
  // window has passed since it came up (it had none when it replaced no one then: found by
  // the simulator, I6).
  std::string id = server.id;
  Millis wait = options_.settle;
  if (server.up_at) {
    auto window_left =
        std::chrono::duration_cast<Millis>(*server.up_at + server.confirm_window - clock_.now());
    wait = std::max(wait, window_left);
  }
  server.settle_timer.start(wait, [this, id] {
    Server* s = find(id);
    if (!s || s->state != ServerState::kUp) return;
    std::vector<std::string> names;
    for (const auto& [held, spelled] : s->held)
      if (!s->taken.count(held)) names.push_back(held);
    for (const auto& n : names)
      if (Server* again = find(id); again && again->state == ServerState::kUp)
        take_over(*again, n,
                  "generation " + std::to_string(again->generation) + " holds it too, settled");
  });
}

namespace {

// Ports below this need CAP_NET_BIND_SERVICE (net.ipv4.ip_unprivileged_port_start).
int unprivileged_port_start() {
  std::ifstream in("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  int start = 1024;
  if (!(in >> start)) start = 1024;
  return start;
}

bool names_resource(const std::string& spelled, const std::string& name) {
  auto parsed = protocol::parse_resource(spelled);
  return parsed.ok() && parsed->name() == name;
}

}  // namespace

// A server run as another user (--user) gets what that user could bind itself, plus what
// its command line grants (--listen, --grant); same-user and root servers get anything.
// `bind_as` is set to whom a new socket is bound for.
Status Supervisor::may_hold(const Server& server, const protocol::Resource& resource,
                            std::optional<Listeners::BindAs>* bind_as) const {
  const SpawnSpec& request = server.request;
  if (request.user.empty() && request.group.empty()) return {};
  auto identity = resolve_identity(request.user, request.group);
  if (!identity.ok()) return identity.status();
  if (identity->uid == ::getuid()) return {};
  *bind_as = Listeners::BindAs{identity->uid, identity->gid};
  std::string name = resource.name();
  bool granted =
      std::any_of(request.grants.begin(), request.grants.end(),
                  [&](const std::string& g) { return names_resource(g, name); }) ||
      std::any_of(request.listen.begin(), request.listen.end(),
                  [&](const ListenAddress& l) { return names_resource(l.resource, name); });
  if (granted) return {};
  std::string who =
      identity->user.empty() ? "uid " + std::to_string(identity->uid) : identity->user;
  std::string how = "; grant it with --grant " + name + " (or --listen " + name +
                    ") on the command line that deploys it";
  if (const Listeners::Entry* existing = sockets_.find(name)) {
    if (existing->owner == identity->uid) return {};
    // Taken over from an earlier daemon (upgrade, resume): who it was bound for is not
    // recorded; a live server of the same --user/--group holding it vouches for it.
    if (!existing->bound_here &&
        std::any_of(servers_.begin(), servers_.end(), [&](const auto& entry) {
          const Server& s = *entry.second;
          return s.alive() && s.held.count(name) && s.request.user == request.user &&
                 s.request.group == request.group;
        }))
      return {};
    return Status::error("readyFor " + name + ": the daemon holds it for another user (uid " +
                         std::to_string(existing->owner) + "), not for " + who + how);
  }
  if (resource.kind == protocol::Resource::Kind::kTcp && resource.port != 0 &&
      resource.port < unprivileged_port_start())
    return Status::error("readyFor " + name + ": port " + std::to_string(resource.port) +
                         " is privileged and " + who + " may not bind it" + how);
  return {};
}

// Whether a server, a crash restart or a live server's --listen still wants `name`.
bool Supervisor::socket_wanted(const std::string& name) const {
  for (const auto& [id, s] : servers_) {
    if (!s->alive()) continue;
    if (s->held.count(name)) return true;
    for (const auto& l : s->request.listen)
      if (names_resource(l.resource, name)) return true;
  }
  // A crash restart waiting for its delay, or started and not yet asking again.
  return crash_restarts_.wants(name);
}

// After a server exits: the sockets nobody wants any more are closed after a grace, so that
// what servers once asked for does not stay bound for the daemon's lifetime.
void Supervisor::close_idle_sockets() {
  if (stopping()) return;
  for (const auto& [name, entry] : sockets_.entries())
    if (!socket_wanted(name))
      sockets_.close_when_idle(name, options_.idle_socket_grace, [this](const std::string& n) {
        return stopping() || socket_wanted(n);
      });
}

// It holds every resource it asked for (or inherited): up after --settle unless it
// promised serverUp.
void Supervisor::become_ready(Server& server) {
  server.state = ServerState::kReady;
  if (server.up_message) return;
  std::string id = server.id;
  server.settle_timer.start(options_.settle, [this, id] {
    Server* s = find(id);
    if (s && s->state == ServerState::kReady && s->connection != 0)
      came_up(*s, "settled: alive and connected for --settle " + format_duration(options_.settle),
              Readiness::kSettled);
  });
}

void Supervisor::on_takedown(Server& server, Peer& connection, const protocol::Message& m) {
  auto body = protocol::decode_string_body(m.name, m.body);
  if (!body.ok()) return reply_error(connection, body.status().message(), m);
  if (subscribe_by_listen_name(server, *body)) return;
  auto resource = protocol::parse_resource(*body);
  if (!resource.ok()) return reply_error(connection, resource.status().message(), m);
  server.subscribed.insert(resource->name());
}

// A --listen socket may go by its name (LISTEN_FDNAMES, "web"), which is how a client library
// that found it inherited knows it: takeDown then names it the same way.
bool Supervisor::subscribe_by_listen_name(Server& server, const std::string& name) {
  for (const auto& listen : server.request.listen) {
    if (listen.name.empty() || listen.name != name) continue;
    auto resource = protocol::parse_resource(listen.resource);
    if (!resource.ok()) return false;
    server.subscribed.insert(resource->name());
    if (auto it = server.held.find(resource->name()); it != server.held.end()) it->second = name;
    return true;
  }
  return false;
}

void Supervisor::disconnected(Peer& connection) {
  Server* server = server_of(connection);
  if (!server) return;
  server->connection = 0;
  if (server->starting()) {
    // Usually the process is exiting: give it a moment so that the deploy can report its
    // exit status rather than the closed connection, and so that no signal races its exit.
    server->disconnected_before_up = true;
    fail(*server,
         server->state == ServerState::kConfirming
             ? window_failure(*server, "closed its control connection")
             : "closed its control connection before it was up",
         kExitGrace);
  } else if (server->state == ServerState::kUp) {
    emit_connection(*server, EventKind::kDisconnected,
                    "closed its control connection (a takedown will have to be by signal)");
  } else if (server->alive()) {
    emit_connection(*server, EventKind::kDisconnected, "closed its control connection");
  }
}

// ---- Transitions -------------------------------------------------------------------------

void Supervisor::came_up(Server& server, const std::string& how, Readiness kind) {
  if (server.state == ServerState::kConfirming) return;  // said again, or another way
  Millis window = confirm_window(server.request.confirm, kind);
  // Remembered even when it needs no window now: a resource it asks for later is taken over
  // only once the window has passed (holds).
  server.up_at = clock_.now();
  server.confirm_window = window;
  // The window guards a takeover: with no older server serving its resources (a first
  // deploy, a crash restart while nothing serves) there is nothing to wait for.
  if (window.count() <= 0 || !replaces_someone(server)) return become_up(server, how);
  begin_confirming(server, how, window);
}

// Whether an older server of its slot serves one of its resources, or is an older version
// of its app that serves: what become_up would take down.
bool Supervisor::replaces_someone(const Server& server) const {
  std::string app = app_of(server.request);
  for (const auto& [id, other] : servers_) {
    if (other.get() == &server || newer(*other, server) || !same_slot(server, *other)) continue;
    if (!other->serving()) continue;
    if (app_of(other->request) == app) return true;
    for (const auto& [name, spelled] : server.held)
      if (other->held.count(name) && !other->taken.count(name)) return true;
  }
  return false;
}

// Up, but the servers it replaces stay untouched until it has stayed alive for `window`: an
// exit, a crash, `fail` or a closed connection meanwhile fails its deploy (it is still
// starting for every rule), and a newer deploy supersedes it as any server not yet up.
void Supervisor::begin_confirming(Server& server, const std::string& how, Millis window) {
  // It came up after a newer deploy of one of its resources started: that one wins.
  if (const Server* winner = newer_holder(server)) return supersede(server, *winner);
  server.state = ServerState::kConfirming;
  server.up_at = clock_.now();
  server.confirm_window = window;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.ready_after_timer.stop();
  emit(server, EventKind::kConfirming,
       "is up (" + how + "); its --confirm " + format_duration(window) +
           " window starts: the servers it replaces are taken down once it has stayed alive "
           "that long");
  std::string id = server.id;
  server.confirm_timer.start(window, [this, id, how, window] {
    Server* s = find(id);
    if (!s || s->state != ServerState::kConfirming) return;
    become_up(*s,
              how + ", and stayed alive for its --confirm " + format_duration(window) + " window");
  });
}

std::string Supervisor::window_failure(const Server& server, const std::string& what) const {
  std::string text = "generation " + std::to_string(server.generation) + " " + what;
  if (server.up_at)
    text += " " +
            format_duration(std::chrono::duration_cast<Millis>(clock_.now() - *server.up_at)) +
            " after it was up";
  text += ", inside its --confirm " + format_duration(server.confirm_window) + " window";
  // The older servers of its slot on its resources: what it would have replaced.
  std::vector<std::string> untouched;
  std::vector<std::string> touched;
  for (const auto& [id, other] : servers_) {
    if (other.get() == &server || newer(*other, server) || !same_slot(server, *other)) continue;
    if (!other->serving()) continue;
    std::vector<std::string> shared;
    std::vector<std::string> taken;
    for (const auto& [name, spelled] : server.held) {
      if (!other->held.count(name)) continue;
      shared.push_back(name);
      if (other->taken.count(name)) taken.push_back(name);
    }
    if (shared.empty()) continue;
    std::string gen = std::to_string(other->generation);
    if (taken.empty())
      untouched.push_back(gen);
    else
      touched.push_back(gen + " had already been taken down on " + join(taken, ", "));
  }
  if (untouched.empty() && touched.empty()) return text + "; there was nothing for it to replace";
  if (!untouched.empty())
    text += untouched.size() == 1
                ? "; generation " + untouched[0] + " was never touched and keeps serving"
                : "; generations " + join(untouched, ", ") + " were never touched and keep serving";
  for (const auto& t : touched) text += "; generation " + t;
  return text;
}

void Supervisor::become_up(Server& server, const std::string& how) {
  // It came up after a newer deploy of one of its resources started: that one wins.
  if (const Server* winner = newer_holder(server)) return supersede(server, *winner);
  server.state = ServerState::kUp;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.confirm_timer.stop();
  emit(server, EventKind::kUp, "is up (" + how + ")");
  crash_restarts_.up(server);
  history_.up(server);
  deploys_.up(server.id);
  if (rolls_.in_roll(server)) {
    deploys_.check(server.id);
    return rolls_.worker_up(server);
  }
  std::string app = app_of(server.request);
  std::vector<std::string> older_versions;
  for (auto& [id, other] : servers_) {
    if (other.get() == &server || newer(*other, server)) continue;
    if (!same_slot(server, *other)) continue;
    // Where they share a resource, the older server is replaced now; an older version of its
    // app also on the rest, after --settle (retire_older_versions).
    bool same_app = app_of(other->request) == app;
    std::set<std::string> shared;
    for (const auto& [name, spelled] : server.held)
      if (other->held.count(name)) shared.insert(name);
    if (same_app) older_versions.push_back(id);
    if (shared.empty()) continue;
    if (other->starting()) {
      std::string why =
          "superseded by generation " + std::to_string(server.generation) + " before it came up";
      if (!keep_serving(*other, why)) fail_superseded(*other, server, why);
    }
    if (other->serving()) {
      replace(*other, shared, "replaced by generation " + std::to_string(server.generation),
              server);
    }
  }
  rolls_.newer_up(server);
  // Those that still serve elsewhere go after --settle; the deploy waits for them to exit,
  // as for any server it replaces.
  bool retiring = false;
  for (const auto& id : older_versions)
    if (Server* other = find(id); other && other->serving()) {
      deploys_.replacing(server.id, *other);
      retiring = true;
    }
  if (retiring) {
    std::string id = server.id;
    server.retire_timer.start(options_.settle, [this, id] {
      if (Server* s = find(id); s && s->state == ServerState::kUp) retire_older_versions(*s);
    });
  }
  deploys_.check(server.id);
}

// Apps (docs/architecture.md, "Apps"): a new version replaces its app's older servers even
// where its resources changed (an app moved to a new port), once it has been up for
// --settle: the time an up server is given to ask for the rest of what it serves (holds()),
// so that an old version is never taken down on a resource the new one takes over a moment
// later. Other apps are replaced only where they share a resource.
void Supervisor::retire_older_versions(Server& server) {
  std::string app = app_of(server.request);
  std::vector<std::string> older;
  for (const auto& [id, other] : servers_)
    if (other.get() != &server && !newer(*other, server) && same_slot(server, *other) &&
        other->serving() && app_of(other->request) == app)
      older.push_back(id);
  for (const auto& id : older) {
    Server* other = find(id);
    if (!other || !other->serving()) continue;
    // What the new version holds too is taken over by the usual rules (holds(), after its
    // window); the rest it left.
    std::set<std::string> rest;
    for (const auto& [name, spelled] : other->held)
      if (!other->taken.count(name) && !server.held.count(name)) rest.insert(name);
    if (rest.empty() && !other->held.empty()) continue;
    replace(*other, rest,
            "replaced by generation " + std::to_string(server.generation) +
                ", a newer version of app " + app,
            server);
  }
}

void Supervisor::take_down(Server& victim, const std::set<std::string>& resources,
                           const std::string& why, const Server* by) {
  // Its deploy has not reported yet (the servers it replaced are still draining): it never
  // will succeed now, as its server no longer serves everything it asked for.
  if (by) deploys_.superseded(victim.id, by->generation);
  if (by) rolls_.taken_down(victim, *by);
  Peer* connection = connection_of(victim);
  std::vector<std::string> unheard;
  for (const auto& name : resources) {
    if (!victim.taken.insert(name).second) continue;
    if (connection && victim.subscribed.count(name)) {
      connection->send(protocol::TakeDown{victim.held[name]}.encode());
      emit(victim, EventKind::kTakeDown, "sent takeDown (" + why + ")", name);
    } else {
      unheard.push_back(name);
      victim.unheard.insert(name);
    }
  }
  if (victim.taken.size() == victim.held.size()) return begin_draining(victim);
  // Only a signal reaches a server that did not subscribe, and a signal takes it down on
  // everything: while it still serves a resource no newer server holds, it keeps accepting
  // here too, beside the newer one (docs/architecture.md, "Partial takedowns").
  for (const auto& name : unheard)
    emit(victim, EventKind::kPartialTakedown,
         "did not subscribe to takeDown here, and still serves other resources alone: it keeps "
         "accepting here beside the newer server until it is replaced on all of them",
         name);
}

// Takes `victim` down on `shared` for the deploy of `by` (if any). The deploy waits for the
// victim's exit only when the victim drains: one that keeps serving other resources does not
// exit for it.
void Supervisor::replace(Server& victim, const std::set<std::string>& shared,
                         const std::string& why, const Server& by) {
  bool counted = deploys_.replacing(by.id, victim);
  take_down(victim, shared, why, &by);
  if (counted && victim.state != ServerState::kDraining) deploys_.not_replacing(by.id, victim.id);
}

void Supervisor::begin_draining(Server& server) {
  server.state = ServerState::kDraining;
  bool all_subscribed = connection_of(server) != nullptr;
  for (const auto& [name, spelled] : server.held)
    if (!server.subscribed.count(name)) all_subscribed = false;
  if (!all_subscribed || server.held.empty())
    signal(server, takedown_signal(server), "it did not subscribe to takeDown");
  kill_after_grace(server);
}

void Supervisor::fail_superseded(Server& server, const Server& newer, const std::string& reason) {
  if (!server.starting()) return;
  fail(server, reason);
  server.superseded_by = newer.generation;
}

void Supervisor::fail(Server& server, const std::string& reason, Millis signal_after) {
  if (!server.starting()) return;
  // True when said: a failure inside the window says what serves itself (window_failure).
  std::string serves;
  if (server.state != ServerState::kConfirming)
    if (auto others = served_by_others(server))
      serves = *others ? "; the servers already serving its resources keep serving"
                       : "; no other server serves its resources";
  server.failed_in_window = server.state == ServerState::kConfirming;
  server.state = ServerState::kFailed;
  server.failure = reason;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.confirm_timer.stop();
  emit(server, EventKind::kFailed, "failed: " + reason + serves);
  if (server.process->exited()) return;
  // Graceful even now: it may already have accepted connections on a shared socket.
  Peer* connection = connection_of(server);
  bool told = false;
  for (const auto& [name, spelled] : server.held) {
    if (connection && server.subscribed.count(name)) {
      connection->send(protocol::TakeDown{spelled}.encode());
      told = true;
    }
  }
  if (!told && signal_after.count() > 0) {
    std::string id = server.id;
    server.exit_grace_timer.start(signal_after, [this, id] {
      if (Server* s = find(id); s && s->alive()) signal(*s, takedown_signal(*s), "it failed");
    });
  } else if (!told) {
    signal(server, takedown_signal(server), "it failed");
  }
  kill_after_grace(server);
}

void Supervisor::kill_after_grace(Server& server) {
  std::string id = server.id;
  server.kill_timer.start(options_.takedown_timeout, [this, id] {
    if (Server* s = find(id); s && s->alive()) {
      emit(*s, EventKind::kKilled,
           "still running after --takedown-timeout " + format_duration(options_.takedown_timeout) +
               "; sending SIGKILL");
      s->signalled = Signalled::kKilled;
      s->process->signal_group(SIGKILL);
    }
  });
}

void Supervisor::signal(Server& server, int signum, const std::string& why) {
  if (server.signalled != Signalled::kNone) return;  // the takedown signal goes once
  server.signalled = Signalled::kTakedown;
  server.process->signal_group(signum);
  // MAINPID= named the process that stands for the server; it may have left the group.
  // Only within its session, so that a reused pid is never signalled.
  processes_.signal_strayed(server.main_pid, server.pid, signum);
  emit(server, EventKind::kSignalled, "sent " + signal_name(signum) + " (" + why + ")");
}

void Supervisor::exited(const std::string& id, int64_t status, int term_signal) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  Server& server = *it->second;
  if (server.notify) server.notify->read_pending();  // STOPPING=1 or STATUS= sent just before
  ServerState before = server.state;
  // An unmanaged server exits as what state.json recorded it: a crash if it was up.
  if (before == ServerState::kUnmanaged) before = adoptions_.recorded_state(id);
  std::string description = describe_exit(status, term_signal);
  if (server.state == ServerState::kConfirming) {
    fail(server, window_failure(server, description));
  } else if (server.starting()) {
    std::string hint = refused_ready_hint(server);
    fail(server, description + " before it was up" + (hint.empty() ? "" : "; " + hint));
  } else if (server.disconnected_before_up) {
    // More telling than the disconnect (said as a window's failure when it was in one).
    server.superseded_by = 0;
    server.failure = server.failed_in_window ? window_failure(server, description)
                                             : description + " before it was up";
  }
  server.state = ServerState::kGone;
  server.ready_timer.stop();
  server.settle_timer.stop();
  server.kill_timer.stop();
  server.exit_grace_timer.stop();
  server.confirm_timer.stop();
  if (Peer* c = connection_of(server)) c->close();
  emit(server, before == ServerState::kUp ? EventKind::kCrashed : EventKind::kExited,
       before == ServerState::kUp ? description + " while serving (crashed)" : description);
  // Out of the table first, so that deploys waiting for it see it gone. Destroying its
  // process handle from inside that handle's exit callback is safe (uv_close defers).
  std::unique_ptr<Server> gone = std::move(it->second);
  servers_.erase(it);
  adoptions_.exited(gone->id);
  reap_leftovers(*gone);
  give_back_unheard(*gone);
  deploys_.exited(*gone, description, before == ServerState::kDraining, served_by_others(*gone));
  crash_restarts_.exited(*gone, before);
  rolls_.exited(*gone);
  roll_back_if_crash_looping(*gone, before);
  deploys_.exit_handled(gone->id);
  close_idle_sockets();
  app_stop_exited(gone->id);
  if (servers_.empty() && stop_done_) {
    kill_leftovers();
    stop_done_();
  }
}

// ---- Versions and rollback (app_history.h) ----------------------------------------------

void Supervisor::roll_back_if_crash_looping(const Server& gone, ServerState before) {
  if (stopping()) return;
  // A crash: it was up and nobody took it down; or a crash restart of it died by itself
  // before it was up (one the daemon failed or superseded was signalled).
  bool restart_died = gone.restarts > 0 && gone.signalled == Signalled::kNone &&
                      before != ServerState::kDraining && before != ServerState::kUp;
  if (before != ServerState::kUp && !restart_died) return;
  std::string app = app_of(gone.request);
  // A deploy of the app in progress replaces the crashing version anyway; a rollback now
  // would supersede it.
  for (const auto& [id, s] : servers_)
    if (s->alive() && s->starting() && s->restarts == 0 && app_of(s->request) == app &&
        s->rank > gone.rank)
      return;
  std::string why_not;
  auto rollback = history_.crashed(gone, &why_not);
  if (!rollback) {
    if (!why_not.empty())
      log_line("app " + app + " crash-loops within --rollback-window of its deploy, but " +
               why_not);
    return;
  }
  // Its crash loop goes on meanwhile: once the previous version is up there, the loop's next
  // restart is dropped (a later deploy serves its resources); if the rollback fails (the old
  // release was deleted), the loop keeps restarting what it can.
  emit(gone, EventKind::kRolledBack,
       "app " + app + ": " + rollback->reason + "; rolling back to generation " +
           std::to_string(rollback->to_generation) + "'s version ('" +
           join(rollback->to.argv, " ") + "' in " + directory_said(rollback->to) + ")");
  Sink outcome = [this, app, from = rollback->from_generation](const Json& message) {
    auto name = protocol::message_name(message);
    if (name == protocol::Deployed::kName) {
      // The crashing version's loop stood for a restart left to this deploy: over now, not
      // after --restart-reset (status listed it as crash-looping meanwhile).
      crash_restarts_.end_app(app);
      log_line("app " + app + " rolled back: the previous version is up and generation " +
               std::to_string(from) + "'s version is dropped from its history");
    }
    if (name == protocol::DeployFailed::kName) {
      auto as = protocol::as_message(message);
      auto failed = as.ok() ? protocol::DeployFailed::decode(*as)
                            : Result<protocol::DeployFailed>(as.status());
      std::string reason = failed.ok() ? failed->reason : failed.status().message();
      history_.rollback_failed(app, reason);
      log_line("app " + app + ": the rollback failed (" + reason +
               "); its crash loop goes on, restarting the version that crashed");
    }
  };
  // Workers: the previous version is rolled as the app runs now, N workers of it.
  if (gone.request.workers && rollback->to.workers) rollback->to.workers = gone.request.workers;
  deploy(rollback->to, std::move(outcome), /*follow_exit=*/false);
  if (rollback->to.workers) rolls_.rolling_back(app);
}

Status Supervisor::roll_back(const std::string& app, Sink sink, bool follow_exit,
                             const std::string& who) {
  if (stopping()) return Status::error("the daemon is stopping");
  auto rollback = history_.previous(app);
  if (!rollback.ok()) return rollback.status();
  log_line("rolling back app " + app + " to generation " + std::to_string(rollback->to_generation) +
           "'s version ('" + join(rollback->to.argv, " ") + "' in " + directory_said(rollback->to) +
           "), asked by " + who);
  deploy(rollback->to, std::move(sink), follow_exit);
  return {};
}

Status Supervisor::restart(const std::string& app, Sink sink, bool follow_exit,
                           const std::string& who) {
  if (stopping()) return Status::error("the daemon is stopping");
  auto current = history_.current(app);
  if (!current.ok()) return current.status();
  log_line("restarting app " + app + ": '" + join(current->argv, " ") + "' in " + current->cwd +
           ", asked by " + who);
  deploy(*current, std::move(sink), follow_exit);
  return {};
}

bool Supervisor::runs_app(const std::string& app) const {
  for (const auto& [id, s] : servers_)
    if (s->alive() && app_of(s->request) == app) return true;
  return crash_restarts_.has_loop_of(app);
}

bool Supervisor::forget_app(const std::string& app) {
  bool known = history_.knows(app);
  history_.forget(app);
  return known;
}

// Whether another server serves one of the resources `gone` held or was to inherit (--listen)
// and was not taken down there: what a failed deploy may say of the servers already running
// (deployFailed's "othersServing", true at the moment it is sent). nullopt when it had none.
std::optional<bool> Supervisor::served_by_others(const Server& gone) const {
  std::set<std::string> resources;
  for (const auto& [name, spelled] : gone.held) resources.insert(name);
  for (const auto& l : gone.request.listen)
    if (auto parsed = protocol::parse_resource(l.resource); parsed.ok())
      resources.insert(parsed->name());
  if (resources.empty()) return std::nullopt;
  for (const auto& [id, other] : servers_) {
    if (other.get() == &gone || !other->serving()) continue;
    for (const auto& name : resources)
      if (other->held.count(name) && !other->taken.count(name)) return true;
  }
  return false;
}

// `gone` held resources that older servers were taken down on without being told (no
// onTakedown): they never stopped accepting there, and now serve them alone again, so they
// hold them again (a later takedown of everything else then leaves them up).
void Supervisor::give_back_unheard(const Server& gone) {
  for (const auto& [name, spelled] : gone.held) {
    if (gone.taken.count(name)) continue;
    bool served = false;
    for (const auto& [id, s] : servers_)
      if (s->serving() && s->held.count(name) && !s->taken.count(name)) served = true;
    if (served) continue;
    for (auto& [id, s] : servers_) {
      if (!s->serving() || !s->unheard.erase(name)) continue;
      s->taken.erase(name);
      emit(*s, EventKind::kRestored,
           "serves it alone again: generation " + std::to_string(gone.generation) +
               ", which replaced it here, is gone",
           name);
    }
  }
}

// The leader has exited; processes it forked may still run in its group (workers, or a
// child that was meant to be short-lived). Unsupervised, they would serve old code forever
// on a duplicate of the listening socket: they get the takedown signal, then SIGKILL.
void Supervisor::reap_leftovers(const Server& server) {
  pid_t group = server.pid;
  if (!processes_.group_alive(group)) return;
  log_line("server " + std::to_string(group) + " (gen " + std::to_string(server.generation) +
           "): processes it started still run in its process group; sending " +
           signal_name(options_.takedown_signal) + ", SIGKILL after --takedown-timeout " +
           format_duration(options_.takedown_timeout));
  processes_.signal_group(group, options_.takedown_signal);
  auto timer = std::make_unique<Timer>(clock_);
  timer->start(options_.takedown_timeout, [this, group] {
    bool alive = processes_.group_alive(group);
    processes_.signal_group(group, SIGKILL);
    if (alive)
      log_line("process group " + std::to_string(group) + " outlived --takedown-timeout: SIGKILL");
    leftover_groups_.erase(group);  // destroys this timer; its handle closes later
  });
  leftover_groups_[group] = std::move(timer);
}

// The daemon is about to exit: nothing may outlive it unsupervised.
void Supervisor::kill_leftovers() {
  for (auto& [group, timer] : leftover_groups_) processes_.signal_group(group, SIGKILL);
  leftover_groups_.clear();
}

// ---- Worker rolls (worker_roll.cc) -------------------------------------------------------

void Supervisor::RollHost::retire(const std::string& id, const std::set<std::string>& resources,
                                  const std::string& why, const Server* by) {
  Server* s = owner_.find(id);
  if (!s) return;
  owner_.take_down(*s, resources, why, by);
  if (s->serving()) owner_.begin_draining(*s);
}

// ---- Crash restarts (crash_restarts.cc) -------------------------------------------------

const Server* Supervisor::CrashHost::start_restart(const SpawnSpec& request, uint64_t rank,
                                                   int number) {
  Server* server = owner_.start_server(
      request, [](const Json&) {}, /*follow_exit=*/false, rank);
  if (!server) return nullptr;
  server->restarts = number;
  owner_.rolls_.restart_started(*server);
  return server;
}

std::vector<protocol::CrashLoopStatus> Supervisor::crash_loops() const {
  return crash_restarts_.status();
}

// ---- Reporting ---------------------------------------------------------------------------

void Supervisor::emit(const Server& server, EventKind kind, const std::string& text,
                      const std::string& resource) {
  std::string where =
      "server " + std::to_string(server.pid) + " (gen " + std::to_string(server.generation);
  if (server.request.worker >= 0)
    where.append(", worker ").append(std::to_string(server.request.worker));
  where += ")";
  if (!resource.empty()) where += " " + resource;
  protocol::Event event;
  event.time = timestamp_now();
  event.kind = event_kind_name(kind);
  event.id = server.id;
  event.pid = server.pid;
  event.generation = server.generation;
  event.text = where + ": " + text;
  if (!resource.empty()) event.resource = resource;
  if (server.request.worker >= 0) event.worker = server.request.worker;
  // Readers count crashes by this field, never by the text (docs/protocol.md, "event").
  event.crashed = kind == EventKind::kCrashed;
  // The deploy a line is about: the one that started this server, else the one replacing
  // it, so that one number follows a swap through every line (docs/architecture.md,
  // "Logs"): the generation of the server it started, never an id (ids are credentials, and
  // logs are often readable by others).
  std::vector<Sink*> sinks;
  uint64_t about = deploys_.concerned(server.id, &sinks);
  rolls_.concerned(server.id, &sinks);
  if (!log_muted()) {
    Json fields = {{"kind", event_kind_name(kind)},
                   {"serverPid", server.pid},
                   {"generation", server.generation}};
    if (kind == EventKind::kCrashed) fields["crashed"] = true;
    if (!resource.empty()) fields["resource"] = resource;
    if (server.request.worker >= 0) fields["worker"] = server.request.worker;
    if (about != 0) fields["deploy"] = about;
    log_event(where + ": " + text, fields);
  }
  Json line = event.encode();
  if (options_.observer) options_.observer(line);
  for (Sink* sink : sinks) (*sink)(line);
}

void Supervisor::emit_said(const Server& server, EventKind kind, const std::string& text,
                           const std::string& resource) {
  std::string source =
      "server " + std::to_string(server.pid) + " (gen " + std::to_string(server.generation) + ")";
  if (!server_lines_.admit(source)) return;
  emit(server, kind, clip_for_log(text), clip_for_log(resource));
}

Processes::OutputFn Supervisor::output_reader(uint64_t generation, uid_t uid) {
  bool own_budget = uid == 0 || uid == ::getuid();
  return [this, generation, uid, own_budget](pid_t pid, std::string_view line) {
    if (log_muted()) return;
    // Named by pid and generation, not by table entry: descendants of a server can write
    // after it has left the table.
    std::string source =
        "server " + std::to_string(pid) + " (gen " + std::to_string(generation) + ")";
    std::string budget = own_budget ? source : "uid " + std::to_string(uid);
    // A line never weighs less than its bytes: while the budget cannot afford those, the
    // line is counted and dropped unformatted, so that output over the budget costs the
    // loop a read and a split, not an escape and a format per line (docs/architecture.md,
    // "Server output").
    if (output_lines_.refuses(budget, static_cast<double>(line.size()))) {
      // Another user's leftovers are not read until about 16 KiB of budget is back (1/4 s
      // at 64 KiB/s): what they write waits in their pipes, and costs the loop nothing.
      if (!own_budget) processes_.pause_leftover_output(uid, Millis(250));
      return;
    }
    // Formatted once, and weighed as written (escapes and the JSON fields included).
    std::string formatted =
        format_log_line(source + " | " + std::string(line),
                        {{"kind", "output"}, {"serverPid", pid}, {"generation", generation}});
    if (output_lines_.admit(budget, static_cast<double>(formatted.size())))
      write_log_line(formatted);
  };
}

void Supervisor::emit_connection(const Server& server, EventKind kind, const std::string& text) {
  if (connection_lines_.admit("server " + std::to_string(server.pid) + " (gen " +
                              std::to_string(server.generation) + ")"))
    emit(server, kind, text);
}

void Supervisor::log_refusal(const Peer& from, const std::string& text) {
  if (server_lines_.admit("uid " + std::to_string(from.peer_uid())))
    log_line(clip_for_log(text, 2 * kMaxPeerTextInLog));
}

bool Supervisor::may_connect_again(Server& server, std::string* why) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch());
  if (server.hellos.take(static_cast<uint64_t>(now.count()))) return true;
  // A connection refused for its rate, as the accept throttle counts them.
  observe::count(observe::Refused::kConnectionRate);
  *why = "too many hellos from this server: at most " + std::to_string(kHelloBurst) +
         " at once, then " + std::to_string(static_cast<int>(kHellosPerSecond)) +
         " a second (is it reconnecting in a loop?); try again later";
  return false;
}

// ---- Status and stop ---------------------------------------------------------------------

std::vector<protocol::ServerStatus> Supervisor::server_status() const {
  std::vector<protocol::ServerStatus> servers;
  auto now = clock_.now();
  for (const auto& [id, s] : servers_) {
    std::vector<protocol::HeldResource> resources;
    for (const auto& [name, spelled] : s->held) {
      const Listeners::Entry* entry = sockets_.find(name);
      resources.push_back({name, entry ? entry->address : "", s->taken.count(name) > 0});
    }
    protocol::ServerStatus server;
    server.app = app_of(s->request);
    server.id = id;
    server.pid = s->pid;
    server.generation = s->generation;
    server.deploy_order = s->rank;
    server.state = state_name(s->state);
    server.argv = s->argv;
    server.cwd = s->cwd;
    if (s->request.worker >= 0) server.worker = s->request.worker;
    server.resources = std::move(resources);
    server.restarts = s->restarts;
    server.uptime_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - s->started).count();
    servers.push_back(std::move(server));
  }
  return servers;
}

Json Supervisor::status() const {
  Json servers = Json::array();
  for (const auto& server : server_status()) servers.push_back(server.to_json());
  return servers;
}

void Supervisor::stop(std::function<void()> done) {
  stop_done_ = std::move(done);
  crash_restarts_.stop();  // cancels pending restarts
  rolls_.stop();
  if (servers_.empty()) {
    kill_leftovers();
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
    } else if (s->serving()) {
      // Its deploy (serverswap-deploy attached) hears that the daemon stopped it, not that a
      // newer deploy replaced it.
      deploys_.stopped(id, "the daemon, which is stopping");
      std::set<std::string> all;
      for (const auto& [name, spelled] : s->held) all.insert(name);
      take_down(*s, all, "the daemon is stopping", nullptr);
      if (s->state != ServerState::kDraining) begin_draining(*s);
    }
  }
}

// `stop APP` (docs/protocol.md, "stop"): the app's servers go the graceful way the daemon's
// stop takes them, and nothing restarts them; the daemon and other apps go on.
// A deploy of the app in flight (a starting server, a roll) fails, "stopped by serverswap
// stop APP", and its servers are stopped with the rest: per-app control must work while a
// deploy hangs (refusing sent the operator to wait up to --ready-timeout, or to stop every
// app). It is safe as the daemon's own stop is: what is starting fails (the way a failed
// deploy's server goes), what serves is taken down, nothing restarts any of them (crash loops
// and rolls of the app end first, and a failed roll starts nothing again), and the app's
// deploys and rolls say who stopped them rather than "a newer deploy replaced it".
Status Supervisor::stop_app(const std::string& app, std::function<void(size_t)> done,
                            const std::string& who_stops) {
  if (stopping()) return Status::error("the daemon is stopping");
  std::vector<std::string> ids;
  std::set<std::string> apps;
  for (const auto& [id, s] : servers_) {
    if (!s->alive()) continue;
    apps.insert(app_of(s->request));
    if (app_of(s->request) != app) continue;
    ids.push_back(id);
  }
  if (ids.empty() && !crash_restarts_.has_loop_of(app)) {
    std::vector<std::string> known(apps.begin(), apps.end());
    return Status::error(
        "no app named '" + app + "' runs" +
        (known.empty() ? std::string(" (no app runs)") : " (apps: " + join(known, ", ") + ")"));
  }
  // Its sockets close as soon as its servers have exited (not after --idle-socket-grace):
  // a client of a stopped app is refused, rather than left waiting in a backlog no one reads.
  // Those of its crash loops too (a loop waiting for its next restart holds no server).
  std::set<std::string> resources = app_resources(app, ids);
  crash_restarts_.end_app(app);
  auto close_then_done = [this, resources, done = std::move(done)](size_t n) {
    for (const auto& name : resources)
      sockets_.close_when_idle(
          name, Millis(0), [this](const std::string& r) { return stopping() || socket_wanted(r); });
    done(n);
  };
  if (ids.empty()) {
    close_then_done(0);
    return {};
  }
  app_stops_.push_back(
      {std::set<std::string>(ids.begin(), ids.end()), ids.size(), std::move(close_then_done)});
  const std::string who = who_stops.empty() ? "serverswap stop " + app : who_stops;
  rolls_.stop_app(app, who);
  for (const auto& id : ids) deploys_.stopped(id, who);
  // What serves is taken down first, so that what is starting fails saying truly that no
  // other server serves its resources.
  for (const auto& id : ids) {
    Server* s = find(id);
    if (!s || !s->serving()) continue;  // draining or failing already: it is waited for
    std::set<std::string> all;
    for (const auto& [name, spelled] : s->held) all.insert(name);
    take_down(*s, all, who, nullptr);
    if (s->state != ServerState::kDraining) begin_draining(*s);
  }
  for (const auto& id : ids)
    if (Server* s = find(id); s && s->starting()) fail(*s, "stopped by " + who);
  return {};
}

// The resources app `app`'s servers `ids` hold or inherit (--listen), and those its crash
// loops hold open for their next restart: canonical names.
std::set<std::string> Supervisor::app_resources(const std::string& app,
                                                const std::vector<std::string>& ids) const {
  std::set<std::string> resources;
  for (const auto& id : ids) {
    const Server& s = *servers_.at(id);
    for (const auto& [name, spelled] : s.held) resources.insert(name);
    for (const auto& l : s.request.listen)
      if (auto parsed = protocol::parse_resource(l.resource); parsed.ok())
        resources.insert(parsed->name());
  }
  for (const auto& loop : crash_restarts_.loops())
    if (app_of(loop.request) == app) resources.insert(loop.resources.begin(), loop.resources.end());
  return resources;
}

void Supervisor::app_stop_exited(const std::string& id) {
  std::vector<std::function<void()>> finished;
  std::erase_if(app_stops_, [&](AppStop& stop) {
    if (!stop.waiting.erase(id) || !stop.waiting.empty()) return false;
    finished.push_back([done = std::move(stop.done), n = stop.servers] { done(n); });
    return true;
  });
  for (auto& f : finished) f();
}

void Supervisor::kill_all() {
  for (auto& [id, s] : servers_) {
    if (!s->alive()) continue;
    emit(*s, EventKind::kKilled, "sending SIGKILL");
    s->signalled = Signalled::kKilled;
    s->process->signal_group(SIGKILL);
  }
}

// ---- Lookups -----------------------------------------------------------------------------

size_t Supervisor::deploys_in_flight() const {
  size_t n = 0;
  n += deploys_.in_flight();
  n += rolls_.in_flight();
  return n;
}

std::vector<SpawnSpec> Supervisor::up_requests() const {
  std::vector<SpawnSpec> requests;
  std::set<std::string> rolled;  // workers of one command: one redeploy rolls them all
  for (const auto& [id, s] : servers_) {
    if (!s->serving() || !s->taken.empty()) continue;
    if (s->request.worker >= 0 && !rolled.insert(app_of(s->request)).second) continue;
    requests.push_back(s->request);
  }
  return requests;
}

void Supervisor::einhorn_command(Peer& connection, const protocol::Message& m) {
  auto refuse = [&](const std::string& text) {
    log_refusal(connection, "einhorn command from pid " + std::to_string(connection.peer_pid()) +
                                " refused: " + text);
    connection.send(protocol::error_reply(text, m.whole));
  };
  auto command = protocol::decode_einhorn_command(m.whole);
  if (!command.ok()) return refuse(command.status().message());
  if (command->command != "worker:ack")
    return refuse("the only einhorn command understood is worker:ack");
  // The sender, as the kernel reports it (SO_PEERCRED), must be a process of a server (its
  // main process or a descendant): the pid in the message is the worker's word only.
  Server* server = nullptr;
  for (auto& [id, s] : servers_)
    if (s->alive() && processes_.is_process_of(connection.peer_pid(), s->pid, s->start_time))
      server = s.get();
  if (!server) return refuse("the sender is not a process of a server this daemon started");
  if (!server->starting()) return;  // a second ack, or one after it came up another way
  if (server->held.empty())
    return refuse("worker:ack from a server without --listen sockets (nothing to serve yet)");
  if (server->state == ServerState::kConfirming) return;  // a second ack, in its window
  came_up(*server, "einhorn worker:ack from pid " + std::to_string(connection.peer_pid()),
          Readiness::kEinhorn);
}

bool Supervisor::is_server_peer(pid_t pid, uid_t uid) const {
  for (const auto& [id, s] : servers_) {
    if (!s->alive() || !processes_.is_process_of(pid, s->pid, s->start_time)) continue;
    struct stat main {};
    std::string proc = "/proc/" + std::to_string(s->pid);
    return ::stat(proc.c_str(), &main) == 0 && main.st_uid == uid;
  }
  return false;
}

Server* Supervisor::find(const std::string& id) {
  auto it = servers_.find(id);
  return it == servers_.end() ? nullptr : it->second.get();
}

Server* Supervisor::server_of(const Peer& connection) {
  if (connection.role != Peer::Role::kServer) return nullptr;
  Server* server = find(connection.server_id);
  return server && server->connection == connection.id() ? server : nullptr;
}

Peer* Supervisor::connection_of(const Server& server) {
  return server.connection ? find_connection_(server.connection) : nullptr;
}

void Supervisor::reply_error(Peer& connection, const std::string& text,
                             const protocol::Message& m) {
  connection.send(protocol::error_reply(text, m.whole));
}

}  // namespace serverswap::daemon
