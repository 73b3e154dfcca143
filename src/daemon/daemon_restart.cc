// Daemon, continued: restarts of the daemon itself (docs/protocol.md section 11). state.json
// is kept current, servers are taken back at start, deploys wait for them to resume, and
// `upgrade` re-executes the daemon's binary in this process.
#include <fcntl.h>
#include <unistd.h>

#include "base/log.h"
#include "daemon/activated_sockets.h"
#include "daemon/daemon.h"
#include "daemon/upgrade.h"

namespace serverswap::daemon {

using protocol::Json;

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
    return Status::error("--resume-upgrade: state.json names no control fd");
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
  state_timer_->start(Millis(0), [this] {
    state_write_pending_ = false;
    if (state_closed_) return;
    if (Status s = state_file_->write(supervisor_->record()); !s.ok()) log_line(s.message());
    // The last adopted server that had not resumed may have exited instead.
    if (!waiting_deploys_.empty() && !supervisor_->adopting())
      adoption_over("no server is left to resume");
  });
}

// ---- Upgrade -----------------------------------------------------------------------------

void Daemon::upgrade_request(Connection& connection, const protocol::Message& message) {
  auto refuse = [&](const std::string& text) {
    log_line("upgrade refused: " + text);
    connection.send(protocol::error_reply(text, message.whole));
  };
  if (stopping_) return refuse("the daemon is stopping");
  if (supervisor_->adopting()) return refuse("servers of the previous daemon are still resuming");
  std::string path = restart_.binary;
  const Json& body = message.body;
  if (body.is_object() && body.contains("path")) {
    if (!body["path"].is_string()) return refuse("upgrade: path must be a string");
    path = body["path"].get<std::string>();
  }
  if (path.empty() || path[0] != '/') return refuse("upgrade: the path must be absolute");
  auto version = binary_version(path);
  if (!version.ok()) return refuse(version.status().message());
  connection.send(
      protocol::make("upgrading", {{"from", std::string("serverswap ") + SERVERSWAP_VERSION},
                                   {"to", *version},
                                   {"path", path}}));
  log_line("upgrading: executing " + path + " (" + *version + ") in this process");
  // On the next loop turn, so that the reply has gone out (libuv writes at once when it can).
  uint64_t requester = connection.id();
  upgrade_timer_->start(Millis(0), [this, path, requester] { exec_upgrade(path, requester); });
}

void Daemon::exec_upgrade(const std::string& path, uint64_t requester) {
  DaemonState state = supervisor_->record();
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
  if (failed.ok()) {
    std::vector<std::string> argv = {path};
    argv.insert(argv.end(), restart_.daemon_args.begin(), restart_.daemon_args.end());
    failed = exec_keeping(path, argv, inherited);  // returns only on failure
  }
  log_line("upgrade failed, the daemon goes on unchanged: " + failed.message());
  if (Status s = state_file_->write(supervisor_->record()); !s.ok()) log_line(s.message());
  if (Connection* c = control_->find(requester))
    c->send(protocol::error_reply("upgrade failed: " + failed.message()));
}

}  // namespace serverswap::daemon
