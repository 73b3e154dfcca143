#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "base/log.h"
#include "cli/commands.h"
#include "daemon/spawn/spawn_environment.h"
#include "protocol/app_name.h"
#include "verify/verify_command.h"

namespace serverswap::cli {
namespace {

const char* kDescription =
    "serverswap: zero-downtime restarts for any server.\n"
    "\n"
    "  serverswap [OPTIONS] COMMAND [ARGS...]   start COMMAND; run it again to swap in new code\n"
    "  serverswap-deploy [OPTIONS] COMMAND...   the same, then stay until that server exits\n"
    "                                           (0: replaced by a later deploy, 1: it failed)\n"
    "  serverswap -- COMMAND...                 COMMAND even if it is named like a subcommand\n"
    "\n"
    "The first run becomes the daemon in the foreground (Ctrl-C takes every server down).\n"
    "Exit codes: 0 ok, 1 deploy or server failed (running servers untouched), 2 usage,\n"
    "3 no daemon running, 4 system error.";

void add_global_options(CLI::App& app, GlobalOptions& o) {
  app.add_option("--socket", o.socket,
                 "control socket (default: $SERVERSWAP_SOCKET, else "
                 "$XDG_RUNTIME_DIR/serverswap/control.sock, else /tmp/serverswap-UID/)");
  app.add_option("--ready-timeout", o.ready_timeout,
                 "a new server not up in this time is killed (daemon setting)")
      ->capture_default_str();
  app.add_option("--takedown-timeout", o.takedown_timeout,
                 "grace before SIGKILL for a server taken down (daemon setting)")
      ->capture_default_str();
  app.add_option("--takedown-signal", o.takedown_signal,
                 "signal for servers that did not subscribe to takeDown (daemon default; "
                 "with COMMAND, that command's)")
      ->capture_default_str();
  app.add_option("--settle", o.settle,
                 "a server that never sends serverUp is up once alive this long after its "
                 "last resource (daemon setting)")
      ->capture_default_str();
  app.add_option("--rollback-window", o.rollback_window,
                 "a version that crashes twice within this long of its deploy is replaced by "
                 "the app's previous version; 'off': never automatically (daemon setting)")
      ->capture_default_str();
  app.add_option("--name", o.name,
                 "APP: the app COMMAND is a version of; a deploy of the same APP replaces "
                 "its servers and keeps its settings (default: the script's name under an "
                 "interpreter, else the program's: `node server.js` is server)");
  app.add_option("--replace", o.replace,
                 "APP: this deploy may take over resources that APP serves (else another "
                 "app's resource fails the deploy); repeatable; '*': any app's")
      ->allow_extra_args(false);
  app.add_option("--user", o.user,
                 "run the server as this user (name or uid; the daemon must run as root)");
  app.add_option("--group", o.group, "run the server with this group (default: the user's)");
  app.add_option("--listen", o.listen,
                 "[NAME=]ADDR: bind ADDR once and give it to COMMAND at fd 3, 4, ... with "
                 "LISTEN_FDS, SERVER_STARTER_PORT and EINHORN_FD_* (repeatable)");
  app.add_option("--grant", o.grant,
                 "RESOURCE: a server run with --user may be handed it though its user could "
                 "not bind it (a port below 1024, a socket bound for another user); "
                 "repeatable, remembered for the command")
      ->allow_extra_args(false);  // one each: `--grant :80 ./server` leaves the command alone
  app.add_option("--ready-after", o.ready_after,
                 "COMMAND is up once alive this long (for programs that cannot say so)");
  app.add_option("--confirm", o.confirm,
                 "D: once up, the new server must stay alive this long before the old one is "
                 "taken down; an exit meanwhile fails the deploy, the old one untouched (0: "
                 "none; default 5s after READY=1 or worker:ack, else 0); remembered");
  app.add_option("--workers", o.workers,
                 "run N copies of COMMAND on the same sockets (SERVERSWAP_WORKER=0..N-1), each "
                 "restarted on its own; remembered for the command")
      ->check(CLI::Range(1, 1024));
  app.add_option("--batch", o.batch,
                 "with --workers: a deploy replaces K workers at a time (default 1)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-surge", o.max_surge,
                 "with --workers: at most S processes of the command beyond N during a deploy "
                 "(default: --batch)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--adopt-timeout", o.adopt_timeout,
                 "a restarted daemon waits this long for the servers it took back to resume "
                 "before it deploys (daemon setting)")
      ->capture_default_str();
  app.add_option("--metrics", o.metrics,
                 "serve Prometheus metrics at ADDR/metrics: 127.0.0.1:PORT or unix:PATH "
                 "(daemon setting)");
  app.add_option("--log-format", o.log_format, "log lines as text or json (daemon setting)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.quiet, "print only the outcome of a deploy");
  // For tests: how long a socket no server holds stays bound (daemon setting).
  app.add_option("--idle-socket-grace", o.idle_socket_grace)->group("");
}

}  // namespace

int run(int argc, char** argv) {
  // The exec shim the daemon puts in front of a --listen command
  // (daemon/spawn/spawn_environment.h).
  if (argc >= 2 && std::string_view(argv[1]) == daemon::kExecShimArg)
    return daemon::exec_shim(argc - 2, argv + 2);
  std::string self = argc > 0 ? argv[0] : "serverswap";
  bool deploy_mode = self.ends_with("serverswap-deploy");

  CLI::App app{kDescription, deploy_mode ? "serverswap-deploy" : "serverswap"};
  app.set_version_flag("--version", std::string("serverswap ") + SERVERSWAP_VERSION);
  app.get_formatter()->column_width(34);
  GlobalOptions options;
  add_global_options(app, options);
  // Everything from the first word that is not an option or a subcommand is COMMAND, with
  // its own flags left alone: `serverswap ./my-server --port 8080`.
  app.prefix_command();
  app.fallthrough();

  bool json = false;
  CLI::App* status = app.add_subcommand("status", "show the daemon's servers and sockets");
  status->add_flag("--json", json, "machine-readable output");
  StatusWatch watch;
  status->add_flag("-w,--watch", watch.enabled, "refresh until interrupted (Ctrl-C)");
  status->add_option("--interval", watch.interval, "time between refreshes with --watch")
      ->capture_default_str();
  status->add_option("--count", watch.count, "with --watch, stop after this many refreshes");
  std::string status_app;
  status->add_option("APP", status_app,
                     "only this app's servers and crash loops, and its versions");
  CLI::App* stop = app.add_subcommand(
      "stop", "take every server down gracefully and exit the daemon; with APP, only that app");
  std::string stop_app;
  bool stop_all = false;
  stop->add_option("APP", stop_app,
                   "the app to stop (the daemon and other apps go on; a deploy of it in flight "
                   "fails, \"stopped by serverswap stop APP\")");
  stop->add_flag("--all", stop_all, "every app, then the daemon exits (the default)");
  CLI::App* reload = app.add_subcommand(
      "reload", "redeploy every up server's command (also: SIGHUP); with APP, only that app's");
  std::string reload_app;
  reload->add_option("APP", reload_app, "the app to reload (default: every app)");
  // Requests about one app: APP is required (`rollback -x` says the unexpected word first).
  std::string rollback_app, restart_app, rm_app;
  CLI::App* rollback = app.add_subcommand(
      "rollback",
      "deploy APP's previous good version again (zero downtime, as a deploy); a second "
      "rollback returns to the version left, as kubectl rollout undo");
  rollback->add_option("APP", rollback_app, "the app to roll back")->required();
  CLI::App* restart = app.add_subcommand(
      "restart", "deploy APP's current version again, whether it runs or was stopped");
  restart->add_option("APP", restart_app, "the app to restart")->required();
  CLI::App* rm = app.add_subcommand(
      "rm", "stop APP's servers and forget its versions and remembered settings");
  rm->add_option("APP", rm_app, "the app to remove")->required();
  CLI::App* daemon = app.add_subcommand("daemon", "run only the daemon, in the foreground");
  bool resume_upgrade = false;
  daemon
      ->add_flag("--resume-upgrade", resume_upgrade,
                 "executed by `upgrade`: inherit the sockets state.json names")
      ->group("");
  CLI::App* upgrade = app.add_subcommand(
      "upgrade", "the daemon re-executes a new binary of itself, keeping sockets and servers");
  std::string upgrade_binary;
  upgrade->add_option("--binary", upgrade_binary,
                      "the binary to execute (default: the one the daemon was started from)");
  verify::VerifyArgs verify_args;
  CLI::App* verify = verify::add_verify_command(app, verify_args);
  CLI::App* relay = app.add_subcommand("node-relay", "bridge for the Node.js client (internal)");
  relay->group("");  // started by the Node.js client, not by people
  for (CLI::App* sub : {status, stop, reload, rollback, restart, rm, daemon, upgrade})
    sub->fallthrough();

  // A subcommand takes only its own options: `status --jsn` or `stop web` is a mistake to
  // say, not something to ignore (CLI11 leaves what it does not know in remaining()).
  auto said_unexpected = [&] {
    for (CLI::App* sub : {status, stop, reload, rollback, restart, rm, daemon, upgrade}) {
      if (!sub->parsed()) continue;
      std::vector<std::string> extra = sub->remaining();
      for (const auto& word : app.remaining()) extra.push_back(word);
      if (extra.empty()) continue;
      std::string words;
      for (const auto& word : extra) words += (words.empty() ? "'" : " '") + word + "'";
      std::fprintf(stderr, "%s %s: unexpected argument%s %s; see %s %s --help\n",
                   app.get_name().c_str(), sub->get_name().c_str(), extra.size() > 1 ? "s" : "",
                   words.c_str(), app.get_name().c_str(), sub->get_name().c_str());
      return true;
    }
    return false;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // `rollback -x`: the word it did not expect is the mistake, not the APP it displaced.
    if (dynamic_cast<const CLI::RequiredError*>(&e) && said_unexpected()) return kUsage;
    int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  if (said_unexpected()) return kUsage;
  // Options of a deployed COMMAND mean nothing to a subcommand (`--workers 2 restart web`
  // restarts with the remembered settings): said, not ignored.
  for (CLI::App* sub : {status, stop, reload, rollback, restart, rm, upgrade}) {
    if (!sub->parsed()) continue;
    for (const char* option : {"--listen", "--grant", "--ready-after", "--workers", "--batch",
                               "--max-surge", "--name", "--replace", "--confirm"})
      if (app.count(option) > 0) {
        std::fprintf(stderr,
                     "%s %s: %s is for deploying a COMMAND, not for %s (an app's settings are "
                     "remembered from its deploys)\n",
                     app.get_name().c_str(), sub->get_name().c_str(), option,
                     sub->get_name().c_str());
        return kUsage;
      }
  }
  options.takedown_signal_given = app.count("--takedown-signal") > 0;
  for (const char* setting : {"--ready-timeout", "--takedown-timeout", "--settle",
                              "--rollback-window", "--adopt-timeout", "--metrics", "--log-format"})
    if (app.count(setting) > 0) options.daemon_settings_given.push_back(setting);
  LogFormat format;
  if (parse_log_format(options.log_format, &format)) set_log_format(format);
  // An empty APP (`stop "$APP"` with APP unset) is a mistake, never "everything".
  for (auto [sub, given] : {std::pair{status, &status_app}, std::pair{stop, &stop_app},
                            std::pair{reload, &reload_app}, std::pair{rollback, &rollback_app},
                            std::pair{restart, &restart_app}, std::pair{rm, &rm_app}})
    if (sub->parsed() && sub->count("APP") > 0)
      if (Status s = protocol::check_app_name(*given); !s.ok()) {
        std::fprintf(stderr, "%s %s: %s\n", app.get_name().c_str(), sub->get_name().c_str(),
                     s.message().c_str());
        return kUsage;
      }
  options.name_given = app.count("--name") > 0;
  if (status->parsed()) return status_command(options, json, watch, status_app);
  if (stop->parsed()) {
    if (stop_all && !stop_app.empty()) {
      std::fprintf(stderr, "%s stop: APP and --all exclude each other\n", app.get_name().c_str());
      return kUsage;
    }
    return stop_command(options, stop_app);
  }
  if (reload->parsed()) return reload_command(options, reload_app);
  if (rollback->parsed()) return app_command(options, "rollback", rollback_app, deploy_mode);
  if (restart->parsed()) return app_command(options, "restart", restart_app, deploy_mode);
  if (rm->parsed()) return app_command(options, "rm", rm_app, false);
  if (daemon->parsed()) return daemon_command(options, resume_upgrade);
  if (upgrade->parsed()) return upgrade_command(options, upgrade_binary);
  if (relay->parsed()) return node_relay_command();
  if (verify->parsed()) return verify::verify_main(verify_args);

  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (command.empty()) {
    std::fputs(app.help().c_str(), stderr);
    return kUsage;
  }
  return start_or_deploy(options, std::move(command), deploy_mode);
}

}  // namespace serverswap::cli
