// The serverswap command line: one function per subcommand, dispatched from the table in
// app.cc. Exit codes are part of the interface (README, "Exit codes").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "daemon/core/supervisor.h"
#include "daemon/daemon.h"
#include "daemon/instance_lock.h"
#include "daemon/process/server_process.h"

namespace serverswap::cli {
class ControlClient;

enum ExitCode : int {
  kOk = 0,
  kFailed = 1,       // the deploy failed (old servers untouched), or the server failed
  kUsage = 2,        // bad command line
  kNoDaemon = 3,     // status/stop: no daemon answers on the socket; a deploy lost the daemon
  kSystemError = 4,  // the socket directory, lock or daemon could not be set up
};

struct GlobalOptions {
  std::string socket;
  std::string ready_timeout = "60s";
  std::string takedown_timeout = "30s";
  std::string takedown_signal = "SIGTERM";
  std::string settle = "1s";
  // A version that crashes twice within this long of its deploy is rolled back (daemon
  // setting; "off": never automatically).
  std::string rollback_window = "60s";
  // Per command, carried by the deploy request (daemon::SpawnSpec): --listen [NAME=]ADDR in
  // order, --ready-after D; --takedown-signal counts for the command too when given.
  std::vector<std::string> listen;
  // --grant RESOURCE (repeatable): what a --user server may get beyond what its user could
  // bind (a privileged port, a socket bound for another user).
  std::vector<std::string> grant;
  std::string ready_after;
  // --name APP: the app this command is a version of (empty: derived from the command);
  // --replace APP (repeatable): apps whose resources this deploy may take over.
  std::string name;
  bool name_given = false;  // --name was given (an empty one is a usage error)
  std::vector<std::string> replace;
  // --confirm D: the confirmation window (daemon/core/confirm_window.h); empty: not given.
  std::string confirm;
  bool takedown_signal_given = false;
  // --workers N copies of COMMAND; a deploy rolls --batch K at a time, at most --max-surge S
  // processes beyond N (0: not given; the daemon remembers the command's last values).
  int workers = 0;
  int batch = 0;
  int max_surge = 0;
  // Run servers as this user/group (per command; given to `serverswap daemon`, the default
  // of every command deployed without one). Names or numbers; the daemon must be root.
  std::string user;
  std::string group;
  std::string adopt_timeout = "10s";  // --adopt-timeout D (daemon setting)
  std::string metrics;                // --metrics ADDR (daemon setting)
  std::string log_format = "text";    // --log-format text|json (daemon setting)
  std::string idle_socket_grace;      // hidden --idle-socket-grace D (daemon; empty: 60s)
  bool quiet = false;
  // The daemon settings given on this command line ("--ready-timeout", ...): a deploy to a
  // daemon that runs already says they do not apply to it.
  std::vector<std::string> daemon_settings_given;
};

// Validated daemon settings; prints the error and returns nullopt on bad values, with
// *exit_code set to kSystemError for an unusable socket path or directory, else kUsage.
std::optional<daemon::SupervisorOptions> daemon_options(const GlobalOptions& options,
                                                        int* exit_code);

// How the daemon takes its servers back and re-executes itself; nullopt (said) on bad values.
// `daemon_command`: it runs as `serverswap daemon` (else as the first-run foreground daemon,
// which an upgrade turns into `serverswap daemon` with the same settings).
std::optional<daemon::RestartSettings> restart_settings(const GlobalOptions& options,
                                                        const daemon::SupervisorOptions& settings,
                                                        bool daemon_command);

// Runs the daemon in the foreground until stopped, starting `first` if given.
int run_daemon(const daemon::SupervisorOptions& options, daemon::InstanceLock lock,
               const std::optional<daemon::SpawnSpec>& first, const GlobalOptions& global);

int start_or_deploy(const GlobalOptions& options, std::vector<std::string> command,
                    bool follow_exit);
// resume_upgrade: executed by `upgrade` (takes the sockets the state file names).
int daemon_command(const GlobalOptions& options, bool resume_upgrade);
// `serverswap upgrade [--binary PATH]`: the daemon re-executes PATH (default: its own binary).
int upgrade_command(const GlobalOptions& options, const std::string& binary);
// `status --watch`: a fresh table every interval, `count` times (0: until interrupted).
struct StatusWatch {
  bool enabled = false;
  std::string interval = "1s";
  int count = 0;
};
// `app`: only that app's servers and crash loops ("" for all; exit 1 when none has them).
int status_command(const GlobalOptions& options, bool json, const StatusWatch& watch,
                   const std::string& app = "");
// `app`: stop only that app ("": every server, and the daemon exits).
int stop_command(const GlobalOptions& options, const std::string& app = "");
// `app`: only that app's up servers ("": every app's).
int reload_command(const GlobalOptions& options, const std::string& app = "");
// `rollback APP`, `restart APP` (a deploy of a version the app had: the deploy's exit codes)
// and `rm APP` (its servers stopped, its versions and settings forgotten: 0, or 1 when the
// daemon refused). `verb` is one of those three. `follow_exit` (serverswap-deploy): a
// rollback or restart stays attached until its server exits, with serverswap-deploy's codes.
int app_command(const GlobalOptions& options, const std::string& verb, const std::string& app,
                bool follow_exit);
// Prints a deploy's progress and outcome as they come; returns the exit code once it is
// decided (0 deployed; 1 failed or refused; 3 the daemon was lost). `what` names it in a
// refusal ("deploy", "rollback").
int follow_deploy(ControlClient& client, bool follow_exit, bool quiet,
                  const std::string& what = "deploy");
int node_relay_command();

// Prints "serverswap: <text>" on stderr, `text` escaped as the log escapes peer text
// (append_printable: no control character, line separator or bidi control reaches the
// terminal raw).
void say(const std::string& text);

}  // namespace serverswap::cli
