#include <filesystem>

#include "base/log.h"
#include "cli/commands.h"
#include "cli/socket_path.h"
#include "daemon/daemon.h"

namespace serverswap::cli {

void say(const std::string& text) {
  std::string line = "serverswap: " + text + "\n";
  fputs(line.c_str(), stderr);
}

std::optional<daemon::SupervisorOptions> daemon_options(const GlobalOptions& options) {
  auto socket = resolve_socket_path(options.socket);
  auto ready = parse_duration(options.ready_timeout);
  auto takedown = parse_duration(options.takedown_timeout);
  auto settle = parse_duration(options.settle);
  auto signum = daemon::parse_signal(options.takedown_signal);
  for (const Status& s :
       {socket.status(), ready.status(), takedown.status(), settle.status(), signum.status()}) {
    if (!s.ok()) {
      say(s.message());
      return std::nullopt;
    }
  }
  std::error_code ec;
  std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  daemon::SupervisorOptions settings;
  settings.socket_path = *socket;
  settings.ready_timeout = *ready;
  settings.takedown_timeout = *takedown;
  settings.settle = *settle;
  settings.takedown_signal = *signum;
  settings.relay_path = self;
  return settings;
}

int run_daemon(const daemon::SupervisorOptions& options, daemon::InstanceLock lock,
               const std::optional<daemon::SpawnSpec>& first, const std::string& metrics) {
  daemon::Daemon d(options, std::move(lock));
  d.serve_metrics(metrics);
  if (Status s = d.start(); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  if (first) d.deploy_first(*first);
  return d.run();
}

int daemon_command(const GlobalOptions& options) {
  auto settings = daemon_options(options);
  if (!settings) return kUsage;
  auto lock = daemon::try_lock_instance(settings->socket_path);
  if (!lock.ok()) {
    say(lock.status().message());
    return kSystemError;
  }
  if (!lock->held()) {
    say("a daemon already runs on " + settings->socket_path);
    return kFailed;
  }
  daemon::Daemon d(*settings, std::move(*lock));
  d.use_service_manager();
  d.run_servers_as(options.user, options.group);
  d.serve_metrics(options.metrics);
  if (Status s = d.start(); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  return d.run();
}

}  // namespace serverswap::cli
