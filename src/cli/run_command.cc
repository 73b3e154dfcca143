// `serverswap COMMAND...` and `serverswap-deploy COMMAND...`: deploy COMMAND to the daemon,
// becoming the daemon first when none runs.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/deploy_progress.h"
#include "daemon/spawn/spawn_environment.h"
#include "protocol/app_name.h"
#include "protocol/control_replies.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

extern char** environ;

namespace serverswap::cli {
namespace {

using protocol::Json;

// The directory the command runs in: this shell's, as the user named it ($PWD, with its
// symbolic links: `current`, not `releases/r1`), when $PWD is the directory we are in (the
// rule of glibc's get_current_dir_name); else the physical one. So a later deploy or
// reload from `current` is the same command, and runs in whatever `current` names then.
// A directory that was removed while the shell stood in it (a release tool replaced it)
// has no path: the deploy is refused rather than sent without one, which would run the
// command wherever the daemon stands.
Result<std::string> working_directory() {
  const char* pwd = std::getenv("PWD");
  struct stat by_name {
  }, here{};
  if (pwd && pwd[0] == '/' && ::stat(pwd, &by_name) == 0 && ::stat(".", &here) == 0 &&
      by_name.st_dev == here.st_dev && by_name.st_ino == here.st_ino)
    return std::string(pwd);
  std::error_code ec;
  std::string cwd = std::filesystem::current_path(ec).string();
  if (!ec && !cwd.empty()) return cwd;
  std::string named = pwd && *pwd ? std::string(" (") + pwd + ")" : "";
  if (ec == std::errc::no_such_file_or_directory)
    return Status::error("the working directory" + named +
                         " was removed while this shell was in it (replaced by a release?): cd "
                         "to it again and deploy again; nothing was deployed");
  return Status::error(Status::system_error("the working directory" + named, ec.value()).message() +
                       "; nothing was deployed");
}

Result<daemon::SpawnSpec> spec_for(std::vector<std::string> command, const GlobalOptions& options) {
  // The original tool ran a first argument ending in .js under node; so do we.
  if (command[0].ends_with(".js")) command.insert(command.begin(), "node");
  daemon::SpawnSpec spec;
  spec.argv = std::move(command);
  auto cwd = working_directory();
  if (!cwd.ok()) return cwd.status();
  spec.cwd = *cwd;
  daemon::Environment::List env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  spec.env = std::move(env);
  spec.user = options.user;
  spec.group = options.group;
  return spec;
}

// The settings that belong to the command: --name, --replace, --listen, --grant,
// --ready-after, --confirm, --takedown-signal, --workers, --batch, --max-surge.
Status add_command_settings(const GlobalOptions& options, daemon::SpawnSpec& spec) {
  if (options.name_given || !options.name.empty()) {
    if (Status s = protocol::check_app_name(options.name); !s.ok()) return s.wrap("--name");
    spec.name = options.name;
  }
  for (const auto& app : options.replace) {
    if (app == "*") {  // whoever holds it: the original tool's rule, said explicitly
      spec.replace.push_back(app);
      continue;
    }
    if (Status s = protocol::check_app_name(app); !s.ok()) return s.wrap("--replace");
    spec.replace.push_back(app);
  }
  for (const auto& text : options.listen) {
    auto listen = daemon::parse_listen_option(text);
    if (!listen.ok()) return listen.status();
    spec.listen.push_back(*listen);
  }
  for (const auto& text : options.grant) {
    auto resource = protocol::parse_resource(text);
    if (!resource.ok()) return resource.status().wrap("--grant");
    spec.grants.push_back(text);
  }
  if (!options.ready_after.empty()) {
    auto after = parse_duration(options.ready_after);
    if (!after.ok()) return after.status().wrap("--ready-after");
    spec.ready_after = *after;
  }
  if (!options.confirm.empty()) {
    // 0 is valid: no window (the old version goes as soon as the new one is up).
    auto confirm = parse_duration(options.confirm);
    if (!confirm.ok()) return confirm.status().wrap("--confirm");
    if (confirm->count() > protocol::kMaxReadyAfterMs)
      return Status::error("--confirm " + options.confirm + ": at most " +
                           format_duration(Millis(protocol::kMaxReadyAfterMs)));
    spec.confirm = *confirm;
  }
  if (options.workers > 0) spec.workers = options.workers;
  if (options.batch > 0) spec.batch = options.batch;
  if (options.max_surge > 0) spec.max_surge = options.max_surge;
  if (options.takedown_signal_given) {
    auto signum = daemon::parse_signal(options.takedown_signal);
    if (!signum.ok()) return signum.status();
    spec.takedown_signal = *signum;
  }
  return {};
}

// docs/protocol.md, "Control messages": argv, cwd, env, follow, user, group, and the command's
// settings (listen, readyAfterMs, confirmMs, takedownSignal, workers, batch, maxSurge). Bytes that
// are not UTF-8 (an environment variable, a directory's name) go as base64, unchanged.
Json deploy_request(const daemon::SpawnSpec& spec, bool follow_exit) {
  return daemon::request_from_spec(spec, follow_exit).encode();
}

std::string pids(const std::vector<int64_t>& list) {
  std::vector<std::string> texts;
  for (int64_t p : list) texts.push_back(std::to_string(p));
  return join(texts, ", ");
}

// docs/protocol.md, "deployed": a daemon that cannot write its state file says so on every
// deploy outcome meanwhile.
void warn_state_file(const std::optional<protocol::StateFileWarning>& file) {
  if (!file) return;
  say("warning: the daemon cannot write its state file " + file->path + " (" + file->error +
      "): if the daemon restarts it will not find this server");
}

// What the daemon said, decoded; a reply that does not decode is said as its error.
template <class T>
Result<T> decode_reply(const protocol::Message& message) {
  auto decoded = T::decode(message);
  if (!decoded.ok()) return decoded.status().wrap("a malformed reply from the daemon");
  return decoded;
}

// What a failed deploy says of the servers already running, true when it is said: they keep
// serving only if none was taken down meanwhile (an early readiness let it replace them
// before it failed) and, as the daemon says ("othersServing"), one still serves. Nothing for a
// roll, and for a failure inside the --confirm window: the daemon's reason says it.
std::string failure_suffix(const DeployProgress& progress, std::optional<bool> others_serving) {
  if (progress.rolled() || progress.confirming()) return "";
  if (progress.took_down_others())
    return others_serving.value_or(true)
               ? "; the servers it replaced had already been taken down: see serverswap status"
               : "; the servers it replaced had already been taken down, and nothing serves its "
                 "resources now: see serverswap status";
  if (others_serving && !*others_serving) return "; no server serves its resources now";
  return "; the servers already running keep serving";
}

}  // namespace

int follow_deploy(ControlClient& client, bool follow_exit, bool quiet, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  DeployProgress progress;
  const auto started = Clock::now();
  Millis next_report = DeployProgress::kFirstReport;
  bool outcome_said = false;  // deployed, in deploy mode: no more progress to report
  for (;;) {
    Millis wait = Millis::max();
    if (!quiet && !outcome_said)
      wait = std::max(Millis(0),
                      next_report - std::chrono::duration_cast<Millis>(Clock::now() - started));
    bool timed_out = false;
    auto message = client.next(wait, &timed_out);
    if (timed_out) {
      for (const std::string& line : progress.report(next_report)) say(line);
      next_report += DeployProgress::kReportEvery;
      continue;
    }
    if (!message.ok()) {
      // docs/protocol.md section 11: the server goes on, and the next daemon resumes it.
      say("lost the daemon (" + message.status().message() +
          ") before the deploy's outcome; its server goes on and is resumed by the next daemon");
      return kNoDaemon;
    }
    const std::string& name = message->name;
    if (name == protocol::Event::kName) {
      auto event = protocol::Event::decode(*message);
      if (event.ok()) progress.saw(*event);
      if (!quiet && event.ok()) say(event->text);
    } else if (name == protocol::Deployed::kName) {
      // The outcome is in the name: a body this command cannot read does not undo it.
      auto deployed = decode_reply<protocol::Deployed>(*message);
      if (!deployed.ok()) {
        say("deployed (" + deployed.status().message() + ")");
      } else {
        std::string replaced = deployed->replaced.empty()
                                   ? "nothing to replace"
                                   : "replaced pid " + pids(deployed->replaced) + ", which exited";
        if (deployed->workers)
          say("deployed: " + std::to_string(deployed->workers->size()) + " workers (pid " +
              pids(*deployed->workers) + ") are up; " + replaced);
        else
          say("deployed: pid " + std::to_string(deployed->pid) + " (generation " +
              (deployed->generation ? std::to_string(*deployed->generation) : "?") + ") is up; " +
              replaced);
        warn_state_file(deployed->state_file);
      }
      if (!follow_exit) return kOk;
      outcome_said = true;
    } else if (name == protocol::DeployFailed::kName) {
      auto failed = decode_reply<protocol::DeployFailed>(*message);
      if (failed.ok()) warn_state_file(failed->state_file);
      std::string after =
          failure_suffix(progress, failed.ok() ? failed->others_serving : std::nullopt);
      say("deploy failed: " + (failed.ok() ? failed->reason : failed.status().message()) + after);
      return kFailed;
    } else if (name == protocol::ServerExited::kName) {
      auto exited = decode_reply<protocol::ServerExited>(*message);
      if (!exited.ok()) {
        say(exited.status().message());
        return kFailed;
      }
      // Stopped (serverswap stop APP, or the daemon's stop) is no failure either, and not
      // a replacement: said as what it was (before, "after a newer deploy replaced it").
      if (exited->stopped_by) {
        say("server " + std::to_string(exited->pid) + " " + exited->exit + ": stopped by " +
            *exited->stopped_by);
        return kOk;
      }
      // The events before it said what the daemon does about a crash (a restart, or a
      // rollback: then this version is not started again).
      say("server " + std::to_string(exited->pid) + " " + exited->exit +
          (exited->replaced         ? " after a newer deploy replaced it"
           : progress.rolled_back() ? "; its app is rolled back to its previous version"
                                    : " without being replaced"));
      return exited->replaced ? kOk : kFailed;
    } else if (name == protocol::ErrorReply::kName) {
      say("the daemon refused the " + what + ": " + error_text(*message));
      return kFailed;
    }
  }
}

namespace {

// A daemon in the background for serverswap-deploy, which must outlive this process: its
// own session, stdin from /dev/null, its log appended to <socket>.log (named after the
// socket, so that two daemons in one directory never share one). The log is opened here,
// relative to the socket's directory and O_NOFOLLOW, so that a symbolic link planted in
// its place is refused rather than followed to a file of someone else's choosing.
Status start_background_daemon(const GlobalOptions& options, const std::string& socket) {
  std::string log = socket + ".log";
  auto dir = daemon::open_socket_directory(socket);
  if (!dir.ok()) return dir.status();
  UniqueFd log_fd(::openat(dir->get(), (daemon::socket_file_name(socket) + ".log").c_str(),
                           O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!log_fd) return Status::system_error("open the daemon's log " + log, errno);
  std::vector<std::string> args = {"serverswap",         "daemon",
                                   "--socket",           socket,
                                   "--ready-timeout",    options.ready_timeout,
                                   "--takedown-timeout", options.takedown_timeout,
                                   "--takedown-signal",  options.takedown_signal,
                                   "--settle",           options.settle,
                                   "--adopt-timeout",    options.adopt_timeout};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // dup2 clears FD_CLOEXEC on 1 and 2; the original log_fd stays close-on-exec.
  posix_spawn_file_actions_adddup2(&actions, log_fd.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::system_error("start the daemon", rc);
  say("started a daemon in the background, pid " + std::to_string(pid) + ", logging to " + log);
  return {};
}

// Another process holds the daemon lock and is about to listen: retry, bounded.
Result<ControlClient> wait_for_daemon(const std::string& socket) {
  using namespace std::chrono;
  auto deadline = steady_clock::now() + seconds(10);
  auto pause = milliseconds(5);
  for (;;) {
    bool no_daemon;
    auto client = ControlClient::connect(socket, &no_daemon);
    if (client.ok() || !no_daemon || steady_clock::now() > deadline) return client;
    usleep(static_cast<useconds_t>(duration_cast<microseconds>(pause).count()));
    pause = std::min(pause * 2, milliseconds(200));
  }
}

}  // namespace

int start_or_deploy(const GlobalOptions& options, std::vector<std::string> command,
                    bool follow_exit) {
  int code = kOk;
  auto settings = daemon_options(options, &code);
  if (!settings) return code;
  auto made = spec_for(std::move(command), options);
  if (!made.ok()) {
    say(made.status().message());
    return kFailed;
  }
  daemon::SpawnSpec& spec = *made;
  if (Status s = add_command_settings(options, spec); !s.ok()) {
    say(s.message());
    return kUsage;
  }
  const std::string& socket = settings->socket_path;
  bool no_daemon;
  auto client = ControlClient::connect(socket, &no_daemon);
  if (client.ok() && !options.daemon_settings_given.empty()) {
    std::string given;
    for (const auto& setting : options.daemon_settings_given)
      given += (given.empty() ? "" : ", ") + setting;
    bool one = options.daemon_settings_given.size() == 1;
    say("note: " + given + (one ? " is a daemon setting" : " are daemon settings") +
        "; the daemon runs already, with its own: " + (one ? "it applies" : "they apply") +
        " when the daemon starts (serverswap stop, then deploy again)");
  }
  if (!client.ok() && no_daemon) {
    auto lock = daemon::try_lock_instance(socket);
    if (!lock.ok()) {
      say(lock.status().message());
      return kSystemError;
    }
    if (lock->held() && !follow_exit) {
      say("no daemon on " + socket + "; running one here (Ctrl-C takes every server down)");
      return run_daemon(*settings, std::move(*lock), spec, options);
    }
    if (lock->held()) {
      lock->fd.reset();  // the background daemon takes it
      if (Status s = start_background_daemon(options, socket); !s.ok()) {
        say(s.message());
        return kSystemError;
      }
    }
    client = wait_for_daemon(socket);
  }
  if (!client.ok()) {
    say(client.status().message());
    return kSystemError;
  }
  Json request = deploy_request(spec, follow_exit);
  if (size_t bytes = protocol::encode(request).size(); bytes > protocol::kMaxLineOwnUser) {
    size_t environment = 0;
    for (const auto& variable : spec.env) environment += variable.size() + 1;
    say("the deploy request is " + std::to_string(bytes) + " bytes, more than the " +
        std::to_string(protocol::kMaxLineOwnUser) + " a message may have; the environment is " +
        std::to_string(environment) + " bytes in " + std::to_string(spec.env.size()) +
        " variables: unset the large ones (or deploy with `env -i KEY=VALUE... serverswap`)");
    return kUsage;
  }
  if (Status s = client->send(request); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  return follow_deploy(*client, follow_exit, options.quiet);
}

}  // namespace serverswap::cli
