// ServerProcess: one child the daemon started, in a process group of its own so that a
// wrapper (`sh -c`, `npm start`) and what it starts are signalled together. libuv reaps it
// and resets its signal mask and dispositions before exec. Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace serverswap::daemon {

struct SpawnSpec {
  std::vector<std::string> argv;
  std::string cwd;
  std::vector<std::string> env;  // "K=V"
};

class ServerProcess {
 public:
  // status: exit code, or 0 when killed by term_signal.
  using ExitFn = std::function<void(int64_t status, int term_signal)>;

  static Result<std::unique_ptr<ServerProcess>> spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                      ExitFn on_exit);
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
