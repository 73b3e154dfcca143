// ServerProcess: one child the daemon started, in a process group of its own so that a
// wrapper (`sh -c`, `npm start`) and what it starts are signalled together. libuv reaps it
// and resets its signal mask and dispositions before exec. Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "daemon/identity.h"

namespace serverswap::daemon {

// One `--listen [NAME=]ADDR`: a listening socket the daemon binds and passes to the server
// at spawn (fd 3 + its index), for programs that take sockets the systemd, Server::Starter
// or einhorn way instead of asking with readyFor.
struct ListenAddress {
  std::string name;      // its LISTEN_FDNAMES entry; empty: derived from the resource
  std::string resource;  // as given: ":8080", "unix:/run/app.sock"
  bool operator==(const ListenAddress&) const = default;
};

// A command as deployed, with the settings that belong to it (not to the daemon): a later
// deploy, reload or restart of the same command starts it with the same ones.
struct SpawnSpec {
  std::vector<std::string> argv;
  std::string cwd;
  std::vector<std::string> env;  // "K=V"
  std::vector<ListenAddress> listen;
  // --grant RESOURCE, as given: what a server run as another user may be handed beyond what
  // that user could bind itself (a privileged port, a socket bound for someone else).
  std::vector<std::string> grants;
  std::optional<Millis> ready_after;   // alive this long after spawn = up (the weak rule)
  std::optional<int> takedown_signal;  // else the daemon's --takedown-signal
  // --workers N: N copies share the resources and a deploy rolls through them
  // (daemon/rollout.h); --batch K and --max-surge S (default K) pace the roll.
  std::optional<int> workers;
  std::optional<int> batch;
  std::optional<int> max_surge;
  int worker = -1;  // which copy this is (SERVERSWAP_WORKER); -1: not a worker
  // --user/--group as given (names or numbers; empty: the daemon's own), and what they
  // resolved to when the supervisor started it.
  std::string user;
  std::string group;
  std::optional<Identity> run_as;
};

class ServerProcess {
 public:
  // status: exit code, or 0 when killed by term_signal.
  using ExitFn = std::function<void(int64_t status, int term_signal)>;

  // `inherited` are placed at fds 3, 4, ... in the child, in order, their flags (O_NONBLOCK
  // included) unchanged; every other descriptor of the daemon is close-on-exec.
  static Result<std::unique_ptr<ServerProcess>> spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                      ExitFn on_exit,
                                                      const std::vector<int>& inherited = {});
  // A server of an earlier daemon (docs/protocol.md, "Restarts of the daemon itself"):
  // there is no uv_process_t for it, so its exit is noticed through a pidfd (pidfd_open(2))
  // polled on the loop. It is reaped with waitpid when it is this process's child (after
  // `serverswap upgrade`); otherwise its parent reaps it and on_exit gets status -1.
  static Result<std::unique_ptr<ServerProcess>> adopt(uv_loop_t* loop, pid_t pid, ExitFn on_exit);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool exited() const;
  // Signals the whole process group (what is left of it once the leader has exited).
  void signal_group(int signum) const;

 private:
  struct Block;
  explicit ServerProcess(Block* block) : block_(block) {}
  Block* block_;
  pid_t pid_ = 0;
};

// "SIGTERM", "TERM", "15" -> 15; error on anything else.
Result<int> parse_signal(const std::string& text);
std::string signal_name(int signum);

}  // namespace serverswap::daemon
