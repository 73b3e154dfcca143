// Processes: the supervisor's seam for everything it does to processes (docs/architecture.md,
// "Seams"): spawn and adopt servers, signal them, ask the kernel who a peer is, and open
// their NOTIFY_SOCKETs. Production: SystemProcesses (system_processes.h) on libuv and /proc;
// the simulator and unit tests: an in-memory fake. Loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/core/spawn_spec.h"
#include "daemon/spawn/notify_socket.h"

namespace serverswap::daemon {

// A server's output pipe (process/output_pipe.h): st_dev and st_ino of its ends, as the
// state file records them so that the next daemon can read it again.
struct PipeId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool empty() const { return ino == 0; }
  bool operator==(const PipeId&) const = default;
};

// A server's main process. Destroying the handle neither signals nor waits for it.
class Process {
 public:
  // status: exit code, or 0 when killed by term_signal; -1 when the status went to another
  // parent (an adopted process).
  using ExitFn = std::function<void(int64_t status, int term_signal)>;

  virtual ~Process() = default;
  virtual pid_t pid() const = 0;
  virtual bool exited() const = 0;
  // Signals the whole process group (what is left of it once the leader has exited).
  virtual void signal_group(int signum) const = 0;
  // The pipe its stdout and stderr write to; empty when none is read (a fake, or an adopted
  // server that no longer holds it).
  virtual PipeId output_pipe() const { return {}; }
  // The directory it was started in, resolved when it was spawned (working_directory.h);
  // nullopt for a fake, or a process of an earlier daemon.
  virtual std::optional<PhysicalDirectory> directory() const { return std::nullopt; }
};

class Processes {
 public:
  using ExitFn = Process::ExitFn;
  // A line the server (or a process that inherited its stdout or stderr) wrote, without its
  // newline; `pid` is the server's main process. May run after on_exit: its descendants
  // can write on.
  using OutputFn = std::function<void(pid_t pid, std::string_view line)>;
  virtual ~Processes() = default;

  // Starts `spec` in a process group of its own, `inherited` at fds 3, 4, ...; on_exit runs
  // once, from the loop, when it has exited and been reaped. Its stdout and stderr go to
  // on_output, line by line (null: dropped).
  virtual Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, ExitFn on_exit,
                                                 const std::vector<int>& inherited,
                                                 OutputFn on_output) = 0;
  // A running process of an earlier daemon (resume after a restart or upgrade); its output
  // pipe `output` (empty: none recorded) is read again when the process still holds it.
  virtual Result<std::unique_ptr<Process>> adopt(pid_t pid, ExitFn on_exit, PipeId output,
                                                 OutputFn on_output) = 0;

  // Field 22 of /proc/PID/stat: tells a process from a later one with a recycled pid.
  virtual Result<uint64_t> start_time(pid_t pid) const = 0;
  // `pid` is `main` or a descendant, and `main` still has `main_start_time` (0: unchecked).
  virtual bool is_process_of(pid_t pid, pid_t main, uint64_t main_start_time) const = 0;
  // The command name ("gunicorn"); "?" when gone.
  virtual std::string comm(pid_t pid) const = 0;
  // What `pid` runs, as a deploy request would say it: argv, working directory and
  // environment, from /proc (a process of the daemon's own uid). An error when unreadable.
  virtual Result<SpawnSpec> command_of(pid_t pid) const = 0;

  // Whether any process is left in process group `group`.
  virtual bool group_alive(pid_t group) const = 0;
  virtual void signal_group(pid_t group, int signum) = 0;
  // Signals `pid` only while it is in session `session` but has left process group
  // `session` (a MAINPID= that moved out of the server's group; a recycled pid elsewhere is
  // never signalled).
  virtual void signal_strayed(pid_t pid, pid_t session, int signum) = 0;

  // A copy of descriptor `target` of process `pid` (pidfd_open + pidfd_getfd): a --listen
  // server's sockets, taken back after a daemon restart. Needs root or ptrace rights over it;
  // the error names the call and errno.
  virtual Result<UniqueFd> copy_fd(pid_t pid, int target) = 0;
  // The resource a listening socket answers for (resource_of_socket: ":8080"); an error when
  // `fd` is no listening socket.
  virtual Result<std::string> listening_resource(int fd) const = 0;

  // Binds a new NOTIFY_SOCKET at `address` for a server run as `uid` (NotifySocket::open),
  // or with fd >= 0 takes the one an earlier image of the daemon kept open (`serverswap
  // upgrade`).
  virtual Result<std::unique_ptr<Notifier>> open_notify(const std::string& address, uid_t uid,
                                                        int fd, NotifySocket::OnMessage on_message,
                                                        NotifySocket::OnRejected on_rejected) = 0;

  // The output budget of `uid` (a user other than root and the daemon's) is spent: the pipes
  // of its servers that have exited are not read for `pause` (what their leftovers write
  // waits in the pipe), so that output nobody will log costs the loop nothing. Pipes of
  // live servers are read on. Idempotent while a pause lasts. Default: nothing.
  virtual void pause_leftover_output(uid_t /*uid*/, Millis /*pause*/) {}
};

}  // namespace serverswap::daemon
