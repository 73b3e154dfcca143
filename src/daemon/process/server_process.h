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
#include "daemon/core/processes.h"
#include "daemon/core/spawn_spec.h"
#include "daemon/process/output_pipe.h"

namespace serverswap::daemon {

class ServerProcess : public Process {
 public:
  using ExitFn = Process::ExitFn;

  // `inherited` are placed at fds 3, 4, ... in the child, in order, their flags (O_NONBLOCK
  // included) unchanged; every other descriptor of the daemon is close-on-exec. With
  // `output`, the child's stdout and stderr are its write end, and the child keeps a copy of
  // its read end at an fd >= 100 (output_pipe.h); without, the daemon's own (tests).
  static Result<std::unique_ptr<ServerProcess>> spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                      ExitFn on_exit,
                                                      const std::vector<int>& inherited = {},
                                                      const OutputPipe* output = nullptr);
  // A server of an earlier daemon (docs/protocol.md, "Restarts of the daemon itself"):
  // there is no uv_process_t for it, so its exit is noticed through a pidfd (pidfd_open(2))
  // polled on the loop. It is reaped with waitpid when it is this process's child (after
  // `serverswap upgrade`); otherwise its parent reaps it and on_exit gets status -1.
  // `output`: its output pipe as recorded (output_pipe() says it again; read elsewhere).
  static Result<std::unique_ptr<ServerProcess>> adopt(uv_loop_t* loop, pid_t pid, ExitFn on_exit,
                                                      PipeId output = {});
  ~ServerProcess() override;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const override { return pid_; }
  bool exited() const override;
  void signal_group(int signum) const override;
  PipeId output_pipe() const override { return output_; }
  std::optional<PhysicalDirectory> directory() const override { return directory_; }

 private:
  struct Block;
  explicit ServerProcess(Block* block) : block_(block) {}
  Block* block_;
  pid_t pid_ = 0;
  PipeId output_;
  std::optional<PhysicalDirectory> directory_;  // spawned: where it was started
};

// "SIGTERM", "TERM", "15" -> 15; error on anything else.
Result<int> parse_signal(const std::string& text);
std::string signal_name(int signum);

}  // namespace serverswap::daemon
