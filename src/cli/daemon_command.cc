#include <filesystem>

#include "base/log.h"
#include "cli/commands.h"
#include "cli/socket_path.h"
#include "daemon/daemon.h"

namespace serverswap::cli {

// Escaped as the log escapes it: what the CLI says often carries text a server chose (a
// STATUS=, a fail reason, a resource, an error the daemon quotes), which must not drive the
// terminal of whoever deployed (docs/security.md, "drive the terminal of whoever deploys"). One
// write of the whole line, so that a NUL cannot cut it.
void say(const std::string& text) {
  std::string line = "serverswap: ";
  append_printable(line, text);
  line.push_back('\n');
  fwrite(line.data(), 1, line.size(), stderr);
}

namespace {

// A timeout flag's duration. Zero is refused: it would fail every deploy (or skip every
// grace) at once, which no one means; systemd reads 0 as "no limit", which for these would
// let a hung server block deploys for ever.
Result<Millis> timeout_option(const std::string& flag, const std::string& text) {
  auto d = parse_duration(text);
  if (!d.ok()) return d.status().wrap(flag);
  if (d->count() == 0)
    return Status::error(flag + " 0: must be more than 0 (a limit of 0 would fail or cut short " +
                         "every server at once)");
  return d;
}

}  // namespace

std::optional<daemon::SupervisorOptions> daemon_options(const GlobalOptions& options,
                                                        int* exit_code) {
  // The socket's directory is the system's, not the command line's: kSystemError (4).
  auto socket = resolve_socket_path(options.socket);
  if (!socket.ok()) {
    say(socket.status().message());
    *exit_code = kSystemError;
    return std::nullopt;
  }
  *exit_code = kUsage;
  auto ready = timeout_option("--ready-timeout", options.ready_timeout);
  auto takedown = timeout_option("--takedown-timeout", options.takedown_timeout);
  auto settle = parse_duration(options.settle);
  if (!settle.ok()) settle = settle.status().wrap("--settle");
  auto signum = daemon::parse_signal(options.takedown_signal);
  // 0 would roll back nothing (no crash is within it) or everything (no limit): neither is
  // what anyone means, so it is a usage error; "off" says the one that is meant.
  Result<Millis> rollback_window = Millis(0);
  if (options.rollback_window != "off") {
    rollback_window = parse_duration(options.rollback_window);
    if (rollback_window.ok() && *rollback_window == Millis(0))
      rollback_window = Status::error("must be more than 0 (or 'off': never automatically)");
    if (!rollback_window.ok()) rollback_window = rollback_window.status().wrap("--rollback-window");
  }
  for (const Status& s : {ready.status(), takedown.status(), settle.status(), signum.status(),
                          rollback_window.status()}) {
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
  settings.rollback_window = *rollback_window;
  settings.takedown_signal = *signum;
  settings.relay_path = self;
  if (!options.idle_socket_grace.empty()) {
    auto grace = parse_duration(options.idle_socket_grace);
    if (!grace.ok()) {
      say(grace.status().wrap("--idle-socket-grace").message());
      return std::nullopt;
    }
    settings.idle_socket_grace = *grace;
  }
  return settings;
}

std::optional<daemon::RestartSettings> restart_settings(const GlobalOptions& options,
                                                        const daemon::SupervisorOptions& settings,
                                                        bool daemon_command) {
  auto adopt_timeout = parse_duration(options.adopt_timeout);
  if (!adopt_timeout.ok()) {
    say(adopt_timeout.status().wrap("--adopt-timeout").message());
    return std::nullopt;
  }
  daemon::RestartSettings restart;
  restart.adopt_timeout = *adopt_timeout;
  restart.binary = settings.relay_path;  // /proc/self/exe, resolved at start
  restart.daemon_args = {
      "--socket",           settings.socket_path,     "--ready-timeout",   options.ready_timeout,
      "--takedown-timeout", options.takedown_timeout, "--takedown-signal", options.takedown_signal,
      "--settle",           options.settle,           "--adopt-timeout",   options.adopt_timeout,
      "--log-format",       options.log_format,       "--rollback-window", options.rollback_window};
  auto add = [&](const char* flag, const std::string& value) {
    if (value.empty()) return;
    restart.daemon_args.push_back(flag);
    restart.daemon_args.push_back(value);
  };
  add("--metrics", options.metrics);
  add("--idle-socket-grace", options.idle_socket_grace);
  // The first-run daemon's --user/--group belong to its command, not to the daemon.
  if (daemon_command) {
    add("--user", options.user);
    add("--group", options.group);
  }
  restart.daemon_args.push_back("daemon");
  restart.daemon_args.push_back("--resume-upgrade");
  return restart;
}

int run_daemon(const daemon::SupervisorOptions& options, daemon::InstanceLock lock,
               const std::optional<daemon::SpawnSpec>& first, const GlobalOptions& global) {
  auto restart = restart_settings(global, options, /*daemon_command=*/false);
  if (!restart) return kUsage;
  daemon::Daemon d(options, std::move(lock));
  d.serve_metrics(global.metrics);
  d.restart_settings(*restart);
  if (Status s = d.start(); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  if (first) d.deploy_first(*first);
  return d.run();
}

int daemon_command(const GlobalOptions& options, bool resume_upgrade) {
  int code = kOk;
  auto settings = daemon_options(options, &code);
  if (!settings) return code;
  auto restart = restart_settings(options, *settings, /*daemon_command=*/true);
  if (!restart) return kUsage;
  restart->resuming_upgrade = resume_upgrade;
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
  d.restart_settings(*restart);
  if (Status s = d.start(); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  return d.run();
}

}  // namespace serverswap::cli
