// Supervisor: the one owner of the server table and its transitions. It starts servers,
// hands them listening sockets, decides when a server is up, takes the older holders of its
// resources down, kills what fails, and reports each step to the deploy that asked for it.
// Every transition is a small method named for its event; docs/architecture.md has the
// state table. What it keeps beside the table is in collaborators it calls at named hooks,
// each owning its own state (docs/architecture.md, "Collaborators"): Deploys (outcomes),
// CrashRestarts (crash loops), Adoptions (servers taken back), WorkerRolls (rolls).
// Loop thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/duration.h"
#include "daemon/control/log_limiter.h"
#include "daemon/core/app_history.h"
#include "daemon/core/clock.h"
#include "daemon/core/confirm_window.h"
#include "daemon/core/crash_restarts.h"
#include "daemon/core/deploys.h"
#include "daemon/core/event_kind.h"
#include "daemon/core/listeners.h"
#include "daemon/core/peer.h"
#include "daemon/core/processes.h"
#include "daemon/core/server.h"
#include "daemon/restart/adoptions.h"
#include "daemon/restart/state_file.h"
#include "daemon/spawn/spawn_environment.h"
#include "daemon/workers/worker_roll.h"
#include "protocol/control_replies.h"
#include "protocol/message.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

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
  // Where a server run as another user (--user) connects: a socket that user can reach.
  std::function<Result<std::string>(uid_t uid, gid_t gid)> socket_for_user;
  // Where NOTIFY_SOCKETs of servers run as another user are bound (borrowed; must outlive
  // the Supervisor); null: a UserDirectory of the Supervisor's own.
  UserDirectory* user_directory = nullptr;
  // Sees every event, and every deploy's outcome (deployed, deployFailed): the metrics.
  std::function<void(const protocol::Json&)> observer;
  // Crash restarts (an up server exited, taken down by nobody, and no other up server holds
  // its resources): the first after restart_delay, each further one of the same crash loop
  // after twice the last, at most restart_delay_max; a restart that stays up for
  // restart_reset ends the loop (the next crash starts again at restart_delay).
  Millis restart_delay{100};
  Millis restart_delay_max{30'000};
  Millis restart_reset{10'000};
  // A socket no server has held for this long (and that no crash restart or live server's
  // --listen waits for) is closed; a later readyFor binds it again.
  Millis idle_socket_grace{60'000};
  // A version that crashes kCrashesToRollBack times within this long of being put in place is
  // rolled back to the app's previous version (app_history.h); 0: never automatically.
  Millis rollback_window{60'000};
};

// How many resources one server may hold (readyFor beyond: refused, and a starting server
// fails): each is a socket the daemon keeps open.
inline constexpr size_t kMaxResourcesPerServer = 64;

// Everything the supervisor does to the world goes through these (docs/architecture.md,
// "Seams"): production passes libuv- and kernel-backed ones (daemon.cc), the simulator fakes.
struct SupervisorSeams {
  Clock& clock;
  Processes& processes;
  Listeners& sockets;
};

class Supervisor {
 public:
  // Where a deploy's progress goes: event lines, then deployed/deployFailed, and with
  // follow_exit, serverExited.
  using Sink = std::function<void(const protocol::Json&)>;
  using FindConnection = std::function<Peer*(uint64_t id)>;

  // `seams` must outlive the supervisor.
  Supervisor(SupervisorSeams seams, SupervisorOptions options, FindConnection find_connection);
  ~Supervisor();

  void deploy(const SpawnSpec& spec, Sink sink, bool follow_exit);

  // Messages from servers, already decoded. `hello` binds the connection to a server.
  void hello(Peer& connection, const protocol::Message& message);
  void server_message(Peer& connection, const protocol::Message& message);
  void disconnected(Peer& connection);
  // einhorn's `{"command":"worker:ack","pid":N}` from a process in a starting server's
  // session: that server is up (docs/protocol.md, "Inherited sockets and unmodified programs").
  void einhorn_command(Peer& connection, const protocol::Message& message);

  // Restarts of the daemon itself (adoption.cc, docs/protocol.md section 11).
  // Takes back the servers of `state` that still run (same pid and start time); the
  // listening sockets of --listen servers are taken with pidfd_getfd where the kernel lets us.
  void adopt(const DaemonState& state);
  // At start, before adopt(): SOCKET.notify/ made or checked, and the sockets in it that
  // `state` (null: none) does not record removed (NotifyDirectory::prepare).
  Status prepare_notify_directory(const DaemonState* state);
  // A hello with a `resume` field: the descriptors came with it on `connection`.
  void resume(Peer& connection, const protocol::Message& message);
  // Some adopted server has neither resumed nor been given up on: deploys wait.
  bool adopting() const;
  // --adopt-timeout passed: servers that did not resume are `unmanaged`.
  void give_up_adoption();
  // Called once when adopting() turns false by a resume (not by give_up_adoption).
  void on_adoption_done(std::function<void()> done) { adoption_done_ = std::move(done); }
  // The servers as state.json records them.
  DaemonState record() const;
  bool is_server_pid(pid_t pid) const;
  // The descriptor of a server's NOTIFY_SOCKET (-1 when it has none), to keep open across
  // `serverswap upgrade`; still owned by the server.
  int notify_fd(const std::string& id) const;

  // The servers as `status` lists them; status() is the same as JSON (metrics, tests).
  std::vector<protocol::ServerStatus> server_status() const;
  protocol::Json status() const;
  // Crash loops: the command, its crashes, restarts, and the pending restart if any.
  std::vector<protocol::CrashLoopStatus> crash_loops() const;
  // Takes every server down gracefully; `done` runs once the last one has exited.
  void stop(std::function<void()> done);
  // `stop APP`: every server of `app` is taken down gracefully (as stop() does) and its crash
  // loops end; `done(n)` runs once its n servers have exited. A deploy of the app in flight
  // fails ("stopped by serverswap stop APP") and its servers are stopped too. An error, and
  // nothing done, when no server or crash loop of the app exists (it names the apps that
  // do), or when the daemon is stopping. `who`: what stops it, as deploys are told ("stopped
  // by <who>"); empty: "serverswap stop APP" (give "serverswap rm APP" for another command).
  Status stop_app(const std::string& app, std::function<void(size_t)> done,
                  const std::string& who = "");
  // `rollback APP`: the app's previous good version deployed again (progress and outcome to
  // `sink`, as a deploy's; `follow_exit`: up to its server's exit, as serverswap-deploy's).
  // `who` asked, for the log. An error, and nothing done, when it has none or the daemon
  // stops.
  Status roll_back(const std::string& app, Sink sink, bool follow_exit, const std::string& who);
  // `restart APP`: the app's current version deployed again, whether or not it runs (after
  // `stop APP`, it starts it); as roll_back. An error when no version of it has been up.
  Status restart(const std::string& app, Sink sink, bool follow_exit, const std::string& who);
  // `rm APP`: its versions are forgotten (the caller stops its servers first). Whether it had
  // any.
  bool forget_app(const std::string& app);
  bool knows_app(const std::string& app) const { return history_.knows(app); }
  // Whether `app` has a live server or a crash loop.
  bool runs_app(const std::string& app) const;
  // OK when each of `request`'s --replace apps runs or is known ('*' is any app).
  Status check_replaced_apps(const SpawnSpec& request) const;
  // `status`'s apps: each app's versions and its last automatic rollback.
  // Each app's current generation and last rollback; the versions of `versions_of` only.
  std::vector<protocol::AppStatus> app_status(const std::string& versions_of = "") const {
    return history_.status(versions_of);
  }
  // SIGKILL to every server's process group (a second Ctrl-C).
  void kill_all();
  bool stopping() const { return static_cast<bool>(stop_done_); }
  size_t server_count() const { return servers_.size(); }
  // Deploys (and rolls) that have not sent their outcome yet.
  size_t deploys_in_flight() const;
  // The requests of the servers that are up (not taken down): what a reload deploys again.
  std::vector<SpawnSpec> up_requests() const;
  // Whether `pid` is a process of a live server running as `uid` (its main process or a
  // descendant, whatever session it moved to: a server started with --user, or its Node.js
  // relay, connecting to the daemon).
  bool is_server_peer(pid_t pid, uid_t uid) const;

 private:
  // `rank`: the deploy order it stands for (0: its own generation; a crash restart passes
  // the crashed server's).
  Server* start_server(const SpawnSpec& request, Sink sink, bool follow_exit, uint64_t rank = 0);
  // Racing deploys (docs/architecture.md, "The newest deploy wins").
  static bool newer(const Server& a, const Server& b);
  void supersede(Server& older, const Server& newer_server);
  bool keep_serving(Server& server, const std::string& why);
  const Server* newer_holder(const Server& server) const;
  bool settle_race(Server& server, const std::string& name);
  void holds(Server& server, const std::string& name);
  void adopt_server(const ServerRecord& record);
  // A resume of a server the state file missed, from the daemon's own uid: taken back (see
  // adoption.cc); nullptr when it is not (then the resume is refused as unknown).
  Server* take_back_unrecorded(const Peer& connection, const protocol::HelloRequest& hello,
                               const std::vector<UniqueFd>& fds);
  void take_listen_sockets_back(Server& server, const ServerRecord& record);
  void reopen_notify_socket(Server& server, const ServerRecord& record);
  void restart_readiness_timers(Server& server);
  void resumed(Server& server, Peer& connection, bool up);
  void resettle_resumed(Server& server);
  // Adoption is over (every server taken back resumed or was given up on).
  void adoption_over();
  void start_missing_workers();
  // Unmodified programs (docs/protocol.md, "Inherited sockets and unmodified programs").
  void hold_listen_sockets(Server& server, const std::vector<PassedSocket>& passed);
  void notified(const std::string& id, const NotifyMessage& message);
  void notify_refused(const std::string& id, const NotifyRefusal& refusal);
  // `address`: a NOTIFY_SOCKET value (NotifySocket::open); `uid`: the server's.
  Result<std::unique_ptr<Notifier>> open_notify_socket(const std::string& id,
                                                       const std::string& address, uid_t uid,
                                                       int fd = -1);
  // The likely cause when a READY=1 was refused (a wrapper without exec); "" when none was.
  std::string refused_ready_hint(const Server& server) const;
  int takedown_signal(const Server& server) const;  // its command's, else the daemon's

  Server* find(const std::string& id);
  Server* server_of(const Peer& connection);
  Peer* connection_of(const Server& server);
  void reply_error(Peer& connection, const std::string& text, const protocol::Message& m);

  // Messages.
  void ready_for(Server& server, Peer& connection, const protocol::Message& message);
  // Resources (docs/security.md, "Servers run as another user"): whether `server` may be
  // handed `resource`, and who binds it.
  Status may_hold(const Server& server, const protocol::Resource& resource,
                  std::optional<Listeners::BindAs>* bind_as) const;
  bool socket_wanted(const std::string& name) const;
  void close_idle_sockets();
  void on_takedown(Server& server, Peer& connection, const protocol::Message& message);
  bool subscribe_by_listen_name(Server& server, const std::string& name);

  // Transitions.
  void become_ready(Server& server);
  // `server` said it is up by `kind` (serverUp, settled, READY=1, ...): up now when its
  // --confirm window is 0 or it replaces no one, else it enters that window first
  // (confirm_window.h).
  void came_up(Server& server, const std::string& how, Readiness kind);
  bool replaces_someone(const Server& server) const;
  // The confirmation window: `server` is up but replaces no one until it has stayed alive for
  // `window`; then become_up. Also after a daemon restart (the window starts again).
  void begin_confirming(Server& server, const std::string& how, Millis window);
  // Why a server in its window failed, true at this moment: "generation 7 exited with status
  // 3 1.2s after it was up, inside its --confirm 5s window; generation 6 was never touched
  // and keeps serving". `what`: what it did ("exited with status 3").
  std::string window_failure(const Server& server, const std::string& what) const;
  // The takeover: older holders of its resources go down now.
  void become_up(Server& server, const std::string& how);
  // `by`: the newer server it is replaced by (nullptr when the daemon stops).
  void take_down(Server& victim, const std::set<std::string>& resources, const std::string& why,
                 const Server* by);
  // `by` takes `victim` down on `shared`; its deploy waits for the victim if it drains.
  void replace(Server& victim, const std::set<std::string>& shared, const std::string& why,
               const Server& by);
  void retire_older_versions(Server& server);
  // `gone` crashed (or a restart of it died before it was up): when that is its app's
  // current version's kCrashesToRollBack'th crash within the rollback window, the previous
  // version is deployed (AppHistory::crashed).
  std::set<std::string> app_resources(const std::string& app,
                                      const std::vector<std::string>& ids) const;
  void roll_back_if_crash_looping(const Server& gone, ServerState before);
  void begin_draining(Server& server);
  // fail() as superseded by `newer` (Server::superseded_by), with `reason`.
  void fail_superseded(Server& server, const Server& newer, const std::string& reason);
  void fail(Server& server, const std::string& reason, Millis signal_after = Millis(0));
  void exited(const std::string& id, int64_t status, int term_signal);
  void kill_after_grace(Server& server);
  void signal(Server& server, int signum, const std::string& why);
  void reap_leftovers(const Server& server);
  void kill_leftovers();

  // Staggered handover (staggered_handover.cc): `serving` takes the older holders of one
  // resource down before the server is up on all of them.
  void serving(Server& server, Peer& connection, const protocol::Message& message);
  void take_over(Server& server, const std::string& name, const std::string& why);
  // A worker replaces only the older copies with its own index, and servers that are no
  // worker; other servers replace all.
  static bool same_slot(const Server& newer, const Server& older);

  void give_back_unheard(const Server& gone);
  std::optional<bool> served_by_others(const Server& gone) const;

  // Reporting.
  // `kind` is what readers act on (the JSON "kind", plus "crashed" for kCrashed); `text`
  // is for people only.
  void emit(const Server& server, EventKind kind, const std::string& text,
            const std::string& resource = "");
  // emit() for what the server chose to say, as often as it chose to (STATUS=, fail after
  // it was up, tookDown, MAINPID=, STOPPING=1): within server_lines_'s rate for that server,
  // else counted and left out (the log line and the event alike).
  void emit_said(const Server& server, EventKind kind, const std::string& text,
                 const std::string& resource = "");
  // emit() for a server's connections (connected, disconnected, resumed): as often as it
  // connects, so within connection_lines_'s rate for that server.
  void emit_connection(const Server& server, EventKind kind, const std::string& text);
  // log_line() for a refusal of a peer's message (hello, resume, einhorn command), within
  // server_lines_'s rate for the peer's uid.
  void log_refusal(const Peer& from, const std::string& text);
  // A hello or resume of `server` from its own process: false (and the reason in `why`)
  // when it has reconnected more often than Server::hellos allows.
  bool may_connect_again(Server& server, std::string* why);
  // What reads the output of the server of `generation` (Processes::OutputFn): each line
  // is logged as that server's ("server 42 (gen 3) | text"), within output_lines_'s rate.
  // `uid`: whose the server is. Lines are charged to a budget per server when it is root's
  // or the daemon's own uid, and to one budget per uid otherwise: processes a server of
  // another user leaves behind (setsid, crash restarts) share its user's budget rather
  // than each adding one (docs/security.md, "Server output").
  Processes::OutputFn output_reader(uint64_t generation, uid_t uid);

  Clock& clock_;
  Processes& processes_;
  Listeners& sockets_;
  SupervisorOptions options_;
  FindConnection find_connection_;
  NotifyDirectory notify_dir_{options_.socket_path, options_.user_directory};
  uint64_t next_generation_ = 1;
  std::map<std::string, std::unique_ptr<Server>> servers_;
  Deploys deploys_;  // deploy bookkeeping and outcomes (deploys.h)
  AppHistory history_{clock_, options_.rollback_window};  // apps' versions (app_history.h)
  std::function<void()> stop_done_;
  // stop_app() requests waiting for their servers to exit.
  struct AppStop {
    std::set<std::string> waiting;  // server ids
    size_t servers = 0;
    std::function<void(size_t)> done;
  };
  std::vector<AppStop> app_stops_;
  void app_stop_exited(const std::string& id);
  std::function<void()> adoption_done_;
  Adoptions adoptions_;  // what is remembered of the servers taken back (adoptions.h)
  // Process groups of servers that exited while processes they forked kept running: sent
  // the takedown signal, then SIGKILL after --takedown-timeout (or when the daemon stops).
  std::map<pid_t, std::unique_ptr<Timer>> leftover_groups_;
  // Lines whose rate a server or peer controls, per server ("server 42 (gen 3)") and for
  // refused peers by uid ("uid 65534"): a burst of 10, then 1 a second (docs/security.md).
  LogLimiter server_lines_{clock_, "log lines", 1, 10};
  // What servers write on stdout and stderr, per server, in bytes of log written (the
  // escaped line and its prefix): a burst of 1 MiB, then 64 KiB a second -- a server that
  // logs a line of 200 bytes for each of 300 requests a second, and a bound (5.4 GB a day)
  // on one that writes without end; the lines held back are counted (journald's
  // RateLimitBurst= is the precedent, by lines; bytes here, as escaping can quadruple them).
  LogLimiter output_lines_{clock_, "lines of output", 64 * 1024, 1024 * 1024};
  // A server's connections and disconnections, per server: apart from server_lines_, so that
  // a server chatty on NOTIFY_SOCKET does not lose the lines saying it connected.
  LogLimiter connection_lines_{clock_, "connection lines", 1, 10};

  // The collaborators' narrow views of the supervisor.
  class CrashHost final : public CrashRestarts::Host {
   public:
    explicit CrashHost(Supervisor& owner) : owner_(owner) {}
    const CrashRestarts::ServerTable& servers() const override { return owner_.servers_; }
    const Server* start_restart(const SpawnSpec& request, uint64_t rank, int number) override;
    void emit(const Server& server, EventKind kind, const std::string& text) override {
      owner_.emit(server, kind, text);
    }

   private:
    Supervisor& owner_;
  };
  class RollHost final : public WorkerRolls::Host {
   public:
    explicit RollHost(Supervisor& owner) : owner_(owner) {}
    const WorkerRolls::ServerTable& servers() const override { return owner_.servers_; }
    uint64_t next_generation() const override { return owner_.next_generation_; }
    const Server* start(const SpawnSpec& request, WorkerRolls::Sink sink, uint64_t rank) override {
      return owner_.start_server(request, std::move(sink), /*follow_exit=*/false, rank);
    }
    void retire(const std::string& id, const std::set<std::string>& resources,
                const std::string& why, const Server* by) override;
    void fail(const std::string& id, const std::string& why) override {
      if (Server* s = owner_.find(id)) owner_.fail(*s, why);
    }
    void end_crash_loops(const std::set<std::string>& resources, uint64_t rank, int worker,
                         uint64_t from) override {
      owner_.crash_restarts_.end_loops(resources, rank, worker, from);
    }
    std::vector<CrashLoopView> crash_loops() const override {
      return owner_.crash_restarts_.loops();
    }
    bool crash_loops_in(const std::set<std::string>& resources, uint64_t from,
                        uint64_t below) const override {
      return owner_.crash_restarts_.loops_in(resources, from, below);
    }
    void restore(const SpawnSpec& request, const std::set<std::string>& resources) override {
      owner_.crash_restarts_.restore(request, resources, owner_.next_generation_);
    }
    void emit(const Server& server, EventKind kind, const std::string& text) override {
      owner_.emit(server, kind, text);
    }

   private:
    Supervisor& owner_;
  };
  CrashHost crash_host_{*this};
  CrashRestarts crash_restarts_{clock_, crash_host_, options_.restart_delay,
                                options_.restart_delay_max, options_.restart_reset};
  RollHost roll_host_{*this};
  WorkerRolls rolls_{roll_host_};  // rolling deploys of workers (worker_roll.h)
};

}  // namespace serverswap::daemon
