// `serverswap COMMAND...` and `serverswap-deploy COMMAND...`: deploy COMMAND to the daemon,
// becoming the daemon first when none runs.
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "daemon/spawn_environment.h"

extern char** environ;

namespace serverswap::cli {
namespace {

using protocol::Json;

daemon::SpawnSpec spec_for(std::vector<std::string> command, const GlobalOptions& options) {
  // The original tool ran a first argument ending in .js under node; so do we.
  if (command[0].ends_with(".js")) command.insert(command.begin(), "node");
  daemon::SpawnSpec spec;
  spec.argv = std::move(command);
  std::error_code ec;
  spec.cwd = std::filesystem::current_path(ec).string();
  for (char** e = environ; *e; ++e) spec.env.emplace_back(*e);
  spec.user = options.user;
  spec.group = options.group;
  return spec;
}

// The settings that belong to the command: --listen, --grant, --ready-after, --takedown-signal,
// --workers, --batch, --max-surge.
Status add_command_settings(const GlobalOptions& options, daemon::SpawnSpec& spec) {
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
// settings (listen, readyAfterMs, takedownSignal, workers, batch, maxSurge). Bytes that are
// not UTF-8 (an environment variable, a directory's name) go as base64, unchanged.
Json deploy_request(const daemon::SpawnSpec& spec, bool follow_exit) {
  return protocol::make("deploy",
                        protocol::encode_deploy(daemon::request_from_spec(spec, follow_exit)));
}

std::string pids(const Json& list) {
  std::vector<std::string> texts;
  for (const auto& p : list) texts.push_back(p.dump());
  return join(texts, ", ");
}

// docs/protocol.md, "deployed": a daemon that cannot write its state file says so on every
// deploy outcome meanwhile.
void warn_state_file(const Json& body) {
  if (!body.contains("stateFile") || !body["stateFile"].is_object()) return;
  const Json& file = body["stateFile"];
  say("warning: the daemon cannot write its state file " + file.value("path", "") + " (" +
      file.value("error", "") + "): if the daemon restarts it will not find this server");
}

// Prints the deploy's progress; returns the exit code once it is decided.
int follow_deploy(ControlClient& client, bool follow_exit, bool quiet) {
  for (;;) {
    auto message = client.next();
    if (!message.ok()) {
      // docs/protocol.md section 11: the server goes on, and the next daemon resumes it.
      say("lost the daemon (" + message.status().message() +
          ") before the deploy's outcome; its server goes on and is resumed by the next daemon");
      return kNoDaemon;
    }
    const Json& body = message->body;
    if (message->name == "event") {
      if (!quiet) say(reply_string(body, "text"));
    } else if (message->name == "deployed") {
      const Json& replaced_pids = reply_array(body, "replaced");
      std::string replaced = replaced_pids.empty()
                                 ? "nothing to replace"
                                 : "replaced pid " + pids(replaced_pids) + ", which exited";
      if (body.is_object() && body.contains("workers"))
        say("deployed: " + std::to_string(reply_array(body, "workers").size()) + " workers (pid " +
            pids(reply_array(body, "workers")) + ") are up; " + replaced);
      else
        say("deployed: pid " + reply_text(body, "pid") + " (generation " +
            reply_text(body, "generation") + ") is up; " + replaced);
      warn_state_file(body);
      if (!follow_exit) return kOk;
    } else if (message->name == "deployFailed") {
      warn_state_file(body);
      say("deploy failed: " + reply_string(body, "reason") +
          "; the servers already running keep serving");
      return kFailed;
    } else if (message->name == "serverExited") {
      bool replaced = reply_bool(body, "replaced", false);
      say("server " + reply_text(body, "pid") + " " + reply_string(body, "exit") +
          (replaced ? " after a newer deploy replaced it" : " without being replaced"));
      return replaced ? kOk : kFailed;
    } else if (message->name == "error") {
      say("the daemon refused the deploy: " +
          (body.is_string() ? body.get<std::string>() : reply_text(message->whole, "error")));
      return kFailed;
    }
  }
}

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
  daemon::SpawnSpec spec = spec_for(std::move(command), options);
  if (Status s = add_command_settings(options, spec); !s.ok()) {
    say(s.message());
    return kUsage;
  }
  const std::string& socket = settings->socket_path;
  bool no_daemon;
  auto client = ControlClient::connect(socket, &no_daemon);
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
