// Daemon: the event loop with its control socket, listening sockets, supervisor and signal
// watches. SIGINT/SIGTERM (or a `stop` request) take every server down gracefully and end
// run(); a second SIGINT/SIGTERM kills what is left at once. SIGHUP (or a `reload` request)
// redeploys every up server's command. Under a service manager it speaks sd_notify and
// takes the listening sockets of systemd's socket units. Loop thread only.
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "daemon/control/control_server.h"
#include "daemon/core/supervisor.h"
#include "daemon/instance_lock.h"
#include "daemon/process/system_processes.h"
#include "daemon/restart/state_file.h"
#include "daemon/restart/upgrade.h"
#include "daemon/service/orphan_reaper.h"
#include "daemon/service/sd_notify.h"
#include "daemon/sockets/socket_set.h"
#include "daemon/spawn/spawn_environment.h"
#include "daemon/uv_handle.h"
#include "observe/metrics.h"
#include "observe/metrics_endpoint.h"

namespace serverswap::daemon {

// How the daemon takes back its servers after a restart, and how it re-executes itself
// (docs/protocol.md section 11).
struct RestartSettings {
  Millis adopt_timeout{10'000};  // --adopt-timeout: deploys wait this long for resumes
  // The binary the daemon was started from, resolved at start (after a package upgrade
  // /proc/self/exe says "(deleted)"): what `upgrade` executes by default.
  std::string binary;
  // The daemon's settings as options, ending "daemon --resume-upgrade": the command line
  // of the new image (a first-run foreground daemon goes on as `serverswap daemon`).
  std::vector<std::string> daemon_args;
  // This image was executed by `upgrade`: inherit the sockets the state file names.
  bool resuming_upgrade = false;
};

// The daemon's memory per app (issue 13): transient work that grows with the number of
// servers (a state.json rewrite, a `status` reply) frees megabytes that glibc would keep,
// free but resident, for reuse. release_free_heap() gives the heap's free pages back to the
// kernel (malloc_trim); fix_heap_thresholds(), once at start, keeps blocks of 128 KiB and
// more in mappings of their own, returned when freed (glibc otherwise raises that threshold
// to the largest block freed, up to 32 MiB). Elsewhere than glibc, both do nothing.
void release_free_heap();
void fix_heap_thresholds();

class Daemon {
 public:
  Daemon(SupervisorOptions options, InstanceLock lock);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // `serverswap daemon` under systemd or another service manager: start() takes the
  // sockets passed in LISTEN_FDS and says READY=1 (RELOADING=1, STOPPING=1) to NOTIFY_SOCKET.
  void use_service_manager() { service_manager_ = true; }
  // `serverswap daemon --user U --group G`: how servers whose deploy names neither run.
  void run_servers_as(std::string user, std::string group) {
    default_user_ = std::move(user);
    default_group_ = std::move(group);
  }
  // `--metrics ADDR`: serve Prometheus metrics there (bound by start()).
  void serve_metrics(std::string address) { metrics_address_ = std::move(address); }
  void restart_settings(RestartSettings settings) { restart_ = std::move(settings); }
  // Binds the control socket (or inherits it after an upgrade), takes back the servers
  // the state file (<socket>.state.json) lists (only when it is trusted: StateFile::read), and
  // watches signals.
  Status start();
  // The command given on the daemon's own command line (first run): if it fails before any
  // server is up, the daemon stops and run() returns 1.
  void deploy_first(const SpawnSpec& spec);
  // Runs until stopped; the exit code for the process.
  int run();

 private:
  // One line from a peer: handle_line inside a catch-all (an exception is a bug, counted in
  // internal_errors_ and logged, never the end of the daemon).
  void on_line(Connection& connection, const std::string& line);
  void handle_line(Connection& connection, const std::string& line);
  void control_request(Connection& connection, const protocol::Message& message);
  void deploy_request(Connection& connection, const protocol::Message& message);
  // `app`: only that app's servers (nullopt: every app's).
  void reload(const std::string& why, uint64_t requester,
              const std::optional<std::string>& app = std::nullopt);
  void run_queued_reload();
  void start_reload(const std::string& why, const std::vector<uint64_t>& requesters,
                    const std::optional<std::set<std::string>>& apps);
  // `status`; with `app`, that app's versions are listed too (`status APP`).
  void status_request(Connection& connection, const std::optional<std::string>& app);
  void stop_request(Connection& connection, const std::optional<std::string>& app,
                    const protocol::Message& message);
  // rollback, restart and rm APP (docs/protocol.md section 7).
  enum class AppRedeploy { kRollback, kRestart };
  void redeploy_app(Connection& connection, AppRedeploy kind, const std::string& app,
                    bool follow_exit, const protocol::Message& message);
  void remove_app(Connection& connection, const std::string& app, const protocol::Message& message);
  void reloaded(const protocol::Reloaded& outcome, const std::vector<uint64_t>& requesters);
  Status adopt_activated_sockets();
  bool may_control(const Connection& connection) const;
  SpawnSpec with_default_identity(SpawnSpec spec) const;
  void stop(const std::string& why);
  // Restarts of the daemon itself (daemon_restart.cc).
  Status inherit_upgraded_sockets(const DaemonState& state);
  void adopt_servers(const DaemonState& state);
  // Reuses the UserDirectory `state` names (if still ours), removes the files in it that no
  // recorded server needs, and binds the per-uid control sockets in it again.
  void take_back_user_directory(const DaemonState* state);
  // What the state file records now: the supervisor's servers and the UserDirectory.
  DaemonState record_state() const;
  void adoption_over(const std::string& why);
  void when_adopted(std::function<void()> deploy);
  void state_changed();
  void write_state();
  void state_write_outcome(const Status& written);
  // {"path", "ok", and while writes fail "error", "since_ms"}: status's daemon.stateFile.
  protocol::StateFileStatus state_file_status() const;
  // A deploy outcome while the state cannot be written carries "stateFile" {"path",
  // "error"}: the deploy command warns that a restarted daemon would not find the server.
  void annotate_outcome(protocol::Json& message) const;
  void upgrade_request(Connection& connection, const protocol::Message& message);
  void upgrade_when_quiet(const std::string& path, const std::string& version, uint64_t requester,
                          const protocol::Json& whole,
                          std::chrono::steady_clock::time_point deadline, bool told);
  void exec_upgrade(const std::string& path, uint64_t requester);
  void finish();
  Supervisor::Sink sink_for(uint64_t connection_id);

  uv_loop_t loop_;
  SupervisorOptions options_;
  InstanceLock lock_;
  std::unique_ptr<SocketSet> sockets_;
  std::unique_ptr<UvClock> clock_;
  std::unique_ptr<SystemProcesses> processes_;
  // Before control_ and supervisor_, which borrow it.
  UserDirectory user_directory_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<std::unique_ptr<SignalWatch>> signals_;
  std::vector<uint64_t> stop_requesters_;
  std::unique_ptr<OrphanReaper> reaper_;
  SdNotify notify_;
  bool service_manager_ = false;
  std::string default_user_, default_group_;
  int reloads_in_flight_ = 0;
  // A reload waiting for the deploys in flight to end (at most one; requesters join it).
  struct QueuedReload {
    std::string why;
    std::vector<uint64_t> requesters;  // control connections; 0 for SIGHUP
    // The apps the requesters named; nullopt once one asked for every app.
    std::optional<std::set<std::string>> apps;
  };
  std::optional<QueuedReload> queued_reload_;
  int exit_code_ = 0;
  bool stopping_ = false;
  observe::Metrics metrics_;
  std::string metrics_address_;
  std::unique_ptr<observe::MetricsEndpoint> metrics_endpoint_;
  RememberedSettings remembered_;  // --listen, --ready-after, --takedown-signal by command
  RestartSettings restart_;
  std::unique_ptr<StateFile> state_file_;
  // DIR/state.json of a previous version, read by --resume-upgrade; removed after our write.
  std::unique_ptr<StateFile> legacy_state_file_;
  bool state_write_pending_ = false;
  bool state_closed_ = false;  // removed at a clean stop: nothing writes it again
  // Writes that fail are retried after state_retry_delay_ (100 ms doubling to 5 s) until
  // one succeeds; meanwhile state_error_ says why, since state_failing_since_.
  std::string state_error_;  // empty: the last write succeeded
  std::chrono::steady_clock::time_point state_failing_since_;
  Millis state_retry_delay_{100};
  std::unique_ptr<Timer> state_timer_, adopt_timer_, upgrade_timer_, reload_timer_;
  std::vector<std::function<void()>> waiting_deploys_;  // until adoption is over
  uint64_t internal_errors_ = 0;  // exceptions on_line caught: each one a decoder bug
  std::unique_ptr<VersionProbe> upgrade_probe_;  // `path --version` of an upgrade
};

}  // namespace serverswap::daemon
