// Daemon, continued: restarts of the daemon itself (docs/protocol.md section 11). The state
// file (<socket>.state.json) is kept current, servers are taken back at start, deploys wait for
// them to resume, and `upgrade` re-executes the daemon's binary in this process.
#include <fcntl.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <filesystem>
#include <set>

#include "base/log.h"
#include "daemon/daemon.h"
#include "daemon/process/process_tree.h"
#include "daemon/restart/upgrade.h"
#include "daemon/service/activated_sockets.h"
#include "daemon/service/identity.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

// A state text this large (about 25 servers with a shell's environment each) is worth giving
// its memory back after: malloc_trim walks the free heap, a fraction of the write's cost.
constexpr size_t kTrimAfterStateBytes = 64 * 1024;

}  // namespace

void release_free_heap() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

void fix_heap_thresholds() {
#if defined(__GLIBC__)
  ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

// The sockets the previous image kept open across execve, at the numbers it wrote down.
Status Daemon::inherit_upgraded_sockets(const DaemonState& state) {
  for (const SocketRecord& socket : state.sockets) {
    ::fcntl(socket.fd, F_SETFD, FD_CLOEXEC);
    auto resource = resource_of_socket(socket.fd);
    if (!resource.ok()) return resource.status().wrap("inherited fd " + std::to_string(socket.fd));
    if (Status s = sockets_->adopt(socket.name, UniqueFd(socket.fd), "the previous image"); !s.ok())
      return s;
  }
  if (state.control_fd < 0)
    return Status::error("--resume-upgrade: " + state_file_->path() + " names no control fd");
  ::fcntl(state.control_fd, F_SETFD, FD_CLOEXEC);
  return control_->listen_inherited(options_.socket_path, state.control_fd);
}

void Daemon::adopt_servers(const DaemonState& recorded) {
  DaemonState state = recorded;
  // Descriptor numbers mean something only to the image that inherited them over execve.
  if (!restart_.resuming_upgrade)
    for (auto& server : state.servers) server.notify_fd = -1;
  supervisor_->adopt(state);
  // The settings that belong to each command (--listen, ...) as its deploys gave them.
  for (const ServerRecord& record : state.servers) {
    SpawnSpec request = record.request;
    remembered_.apply(request);
  }
  if (!supervisor_->adopting()) return;
  log_line("waiting up to --adopt-timeout " + format_duration(restart_.adopt_timeout) +
           " for the servers of the previous daemon to resume; deploys wait meanwhile");
  supervisor_->on_adoption_done([this] { adoption_over("every server took back has resumed"); });
  adopt_timer_->start(restart_.adopt_timeout, [this] { adoption_over("--adopt-timeout passed"); });
}

void Daemon::take_back_user_directory(const DaemonState* state) {
  if (!state || state->user_directory.empty()) return;
  if (Status s = user_directory_.reuse(state->user_directory); !s.ok()) {
    log_line("warning: not reusing the directory for other users' sockets: " + s.message() +
             "; servers run as another user by the previous daemon cannot reach this one");
    return;
  }
  const std::string& dir = user_directory_.current();
  std::set<std::string> keep;
  for (const ServerRecord& server : state->servers) {
    std::filesystem::path notify(server.notify);
    if (notify.parent_path() == dir) keep.insert(notify.filename().string());
  }
  // The uids of the servers taken back: only their control sockets are listened on again (a
  // uid whose servers are all gone has no one to reconnect).
  std::set<uid_t> of_servers;
  for (const ServerRecord& server : state->servers) {
    if (server.request.user.empty() && server.request.group.empty()) continue;
    auto started = process_start_time(server.pid);
    if (!started.ok() || *started != server.start_time) continue;  // gone meanwhile
    if (auto identity = resolve_identity(server.request.user, server.request.group); identity.ok())
      of_servers.insert(identity->uid);
  }
  // The control socket of each such uid, at the same path: its servers reconnect there.
  std::vector<uid_t> uids;
  for (const std::string& name : user_directory_.names()) {
    auto uid = uid_of_control_socket(name);
    if (uid && of_servers.count(*uid)) {
      keep.insert(name);
      uids.push_back(*uid);
    }
  }
  user_directory_.remove_except(keep);
  for (uid_t uid : uids) {
    if (auto path = control_->listen_for_user(uid); !path.ok()) log_line(path.status().message());
  }
  user_directory_.remove_if_empty();
}

DaemonState Daemon::record_state() const {
  DaemonState state = supervisor_->record();
  state.user_directory = user_directory_.current();
  for (const auto& [name, entry] : sockets_->entries())
    if (entry.bound_here && !entry.unix_path.empty() && entry.ino != 0)
      state.socket_files.push_back({name, entry.unix_path, entry.dev, entry.ino, entry.owner});
  for (const auto& [name, file] : sockets_->unclaimed_socket_files())
    state.socket_files.push_back({name, file.unix_path, file.dev, file.ino, file.owner});
  return state;
}

// Deploys go ahead: every adopted server resumed, or the wait is over.
void Daemon::adoption_over(const std::string& why) {
  adopt_timer_->stop();
  if (supervisor_->adopting()) supervisor_->give_up_adoption();
  if (waiting_deploys_.empty()) return;
  log_line("adoption over (" + why + "): " + std::to_string(waiting_deploys_.size()) +
           " waiting deploy(s) go ahead");
  auto waiting = std::move(waiting_deploys_);
  waiting_deploys_.clear();
  for (auto& deploy : waiting) deploy();
}

void Daemon::when_adopted(std::function<void()> deploy) {
  log_line("deploy waits until the servers of the previous daemon have resumed");
  waiting_deploys_.push_back(std::move(deploy));
}

// Written once per loop turn, after the event's whole transition (an event is emitted
// before the supervisor's tables are updated).
void Daemon::state_changed() {
  if (state_write_pending_ || state_closed_ || !state_file_) return;
  state_write_pending_ = true;
  state_timer_->start(Millis(0), [this] { write_state(); });
}

void Daemon::write_state() {
  state_write_pending_ = false;
  if (state_closed_) return;
  Status written = state_file_->write(record_state());
  // The record and its text (a few KiB per server) were freed above, but glibc keeps freed
  // heap for reuse: with 1,000 apps each rewrite left ~30 MB of the daemon's memory free and
  // resident (issue 13's memory per app). Given back to the kernel when it was large.
  if (state_file_->last_text_bytes() >= kTrimAfterStateBytes) release_free_heap();
  state_write_outcome(written);
  if (!written.ok()) {
    // Retried until it succeeds: a daemon restarted meanwhile would not find the servers
    // the file lacks. Changes meanwhile ride on the retry (it records the state anew).
    state_write_pending_ = true;
    state_timer_->start(state_retry_delay_, [this] { write_state(); });
    state_retry_delay_ = std::min(state_retry_delay_ * 2, Millis(5'000));
  }
  // The last adopted server that had not resumed may have exited instead.
  if (!waiting_deploys_.empty() && !supervisor_->adopting())
    adoption_over("no server is left to resume");
}

// Said once when writes start failing and once when they recover, not once per retry.
void Daemon::state_write_outcome(const Status& written) {
  metrics_.state_write(written.ok());
  if (written.ok() && legacy_state_file_) {
    legacy_state_file_->remove();
    legacy_state_file_.reset();
  }
  if (written.ok()) {
    if (state_error_.empty()) return;
    log_line("the state file " + state_file_->path() + " is written again (it failed for " +
             format_duration(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() -
                                                                state_failing_since_)) +
             ")");
    state_error_.clear();
    state_retry_delay_ = Millis(100);
    return;
  }
  if (state_error_.empty()) {
    state_failing_since_ = std::chrono::steady_clock::now();
    log_line("warning: cannot write the state file " + state_file_->path() + " (" +
             written.message() +
             "); retrying until it succeeds; if the daemon restarts meanwhile it will not find "
             "the servers started since");
  }
  state_error_ = written.message();
}

protocol::StateFileStatus Daemon::state_file_status() const {
  protocol::StateFileStatus file;
  file.path = state_file_ ? state_file_->path() : "";
  file.ok = state_error_.empty();
  if (!state_error_.empty()) {
    file.error = state_error_;
    file.since_ms =
        std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - state_failing_since_)
            .count();
  }
  return file;
}

void Daemon::annotate_outcome(Json& message) const {
  if (state_error_.empty()) return;
  auto outcome = protocol::as_message(message);
  if (!outcome.ok()) return;
  protocol::StateFileWarning warning{state_file_->path(), state_error_};
  if (outcome->name == protocol::Deployed::kName) {
    auto deployed = protocol::Deployed::decode(*outcome);
    if (!deployed.ok()) return;
    deployed->state_file = warning;
    message = deployed->encode();
  } else if (outcome->name == protocol::DeployFailed::kName) {
    auto failed = protocol::DeployFailed::decode(*outcome);
    if (!failed.ok()) return;
    failed->state_file = warning;
    message = failed->encode();
  }
}

// ---- Upgrade -----------------------------------------------------------------------------

void Daemon::upgrade_request(Connection& connection, const protocol::Message& message) {
  auto refuse = [&](const std::string& text) {
    log_line("upgrade refused: " + text);
    connection.send(protocol::error_reply(text, message.whole));
  };
  if (stopping_) return refuse("the daemon is stopping");
  if (supervisor_->adopting()) return refuse("servers of the previous daemon are still resuming");
  auto upgrade = protocol::decode_upgrade(message.body);
  if (!upgrade.ok()) return refuse(upgrade.status().message());
  std::string path = upgrade->path.value_or(restart_.binary);
  if (path.empty() || path[0] != '/') return refuse("upgrade: the path must be absolute");
  if (upgrade_probe_) return refuse("upgrade: another upgrade is being checked; try again later");
  // `path --version` runs beside the loop, bounded: status, deploys and servers go on
  // meanwhile, and a binary that hangs is killed and never executed.
  log_line("upgrade: checking " + path + " --version (at most " +
           format_duration(kVersionProbeTimeout) + "); the daemon goes on meanwhile");
  uint64_t requester = connection.id();
  protocol::Json whole = message.whole;
  auto probe = VersionProbe::start(
      &loop_, path, kVersionProbeTimeout,
      [this, path, requester, whole](Result<std::string> version) {
        upgrade_probe_.reset();
        Connection* c = control_->find(requester);
        auto refuse_later = [&](const std::string& text) {
          log_line("upgrade refused: " + text);
          if (c) c->send(protocol::error_reply(text, whole));
        };
        if (!version.ok()) return refuse_later(version.status().message());
        if (stopping_) return refuse_later("the daemon is stopping");
        if (supervisor_->adopting())
          return refuse_later("servers of the previous daemon are still resuming");
        Millis bound = options_.ready_timeout + options_.takedown_timeout;
        upgrade_when_quiet(path, *version, requester, whole, clock_->now() + bound, false);
      });
  if (!probe.ok()) return refuse(probe.status().message());
  upgrade_probe_ = std::move(*probe);
}

// Deploys and rolls in flight are not carried across the exec (their commands would lose
// the connection that reports their outcome), so an upgrade waits until none is, checking
// every 100 ms, at most `deadline` (--ready-timeout plus --takedown-timeout: a deploy
// started now has ended by then); the requester is told it waits, and why.
void Daemon::upgrade_when_quiet(const std::string& path, const std::string& version,
                                uint64_t requester, const protocol::Json& whole,
                                std::chrono::steady_clock::time_point deadline, bool told) {
  Connection* c = control_->find(requester);
  auto refuse = [&](const std::string& text) {
    log_line("upgrade refused: " + text);
    if (c) c->send(protocol::error_reply(text, whole));
  };
  if (stopping_) return refuse("the daemon is stopping");
  if (size_t deploys = supervisor_->deploys_in_flight(); deploys > 0) {
    std::string counted = std::to_string(deploys) + (deploys == 1 ? " deploy" : " deploys");
    if (clock_->now() >= deadline)
      return refuse("upgrade: " + counted + " still in flight; try again once they have ended");
    if (!told) {
      std::string why = counted + " in flight";
      log_line("upgrade: waiting until no deploy is in flight (" + why + ")");
      if (c)
        c->send(protocol::UpgradeWaiting{
            why, std::chrono::duration_cast<Millis>(deadline - clock_->now()).count()}
                    .encode());
    }
    upgrade_timer_->start(Millis(100), [this, path, version, requester, whole, deadline] {
      upgrade_when_quiet(path, version, requester, whole, deadline, true);
    });
    return;
  }
  if (c)
    c->send(protocol::Upgrading{std::string("serverswap ") + SERVERSWAP_VERSION, version, path}
                .encode());
  log_line("upgrading: executing " + path + " (" + version + ") in this process");
  // On the next loop turn, so that the reply has gone out (libuv writes at once when it can).
  upgrade_timer_->start(Millis(0), [this, path, requester] { exec_upgrade(path, requester); });
}

void Daemon::exec_upgrade(const std::string& path, uint64_t requester) {
  DaemonState state = record_state();
  std::vector<int> inherited;
  for (const auto& [name, entry] : sockets_->entries()) {
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(entry.handle), &fd) != 0) continue;
    state.sockets.push_back({name, entry.address, fd});
    inherited.push_back(fd);
  }
  state.control_fd = control_->listener_fd();
  inherited.push_back(state.control_fd);
  // Servers' NOTIFY_SOCKETs stay bound across the exec: no one can take a name meanwhile.
  for (auto& server : state.servers) {
    server.notify_fd = supervisor_->notify_fd(server.id);
    if (server.notify_fd >= 0) inherited.push_back(server.notify_fd);
  }
  Status failed = state_file_->write(state);
  state_write_outcome(failed);
  if (failed.ok()) {
    std::vector<std::string> argv = {path};
    argv.insert(argv.end(), restart_.daemon_args.begin(), restart_.daemon_args.end());
    processes_->flush_output();  // the next image cannot read what this one has read
    failed = exec_keeping(path, argv, inherited);  // returns only on failure
  }
  log_line("upgrade failed, the daemon goes on unchanged: " + failed.message());
  state_write_outcome(state_file_->write(record_state()));
  if (Connection* c = control_->find(requester))
    c->send(protocol::error_reply("upgrade failed: " + failed.message()));
}

}  // namespace serverswap::daemon
