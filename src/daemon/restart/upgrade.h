// `serverswap upgrade`: the daemon re-executes a (new) binary of itself in the same process,
// keeping its listening sockets and control socket open across execve (docs/protocol.md,
// "Upgrade"). These are the two steps that touch the operating system.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"

namespace serverswap::daemon {

// How long `path --version` may take to print its version and exit.
inline constexpr Millis kVersionProbeTimeout{5000};

// Runs `path --version` on the loop without blocking it: its stdout through a pipe, stdin
// and stderr /dev/null, in a process group of its own. It must print "serverswap VERSION"
// as its first line and exit 0 within `timeout`; otherwise it is killed (SIGKILL to its
// process group, while its leader is still unreaped) and the probe fails with a message
// saying what it did instead. Loop thread only.
class VersionProbe {
 public:
  // Called once, from the loop (never from inside start()): the first line, or the error.
  using Done = std::function<void(Result<std::string>)>;

  // Errors: the program cannot be run (its errno text).
  static Result<std::unique_ptr<VersionProbe>> start(uv_loop_t* loop, const std::string& path,
                                                     Millis timeout, Done done);
  // Kills the child if it is still running; `done` is not called after this.
  ~VersionProbe();
  VersionProbe(const VersionProbe&) = delete;
  VersionProbe& operator=(const VersionProbe&) = delete;

  struct Block;  // public only for the libuv callbacks in upgrade.cc

 private:
  explicit VersionProbe(Block* block) : block_(block) {}
  Block* block_;  // null once the block is freed (its handles all closed)
  friend struct Block;
};

// Clears close-on-exec on `inherited` and executes `path` with `argv` (argv[0] included) in
// this process. Returns only when the exec failed, with the flags restored.
Status exec_keeping(const std::string& path, const std::vector<std::string>& argv,
                    const std::vector<int>& inherited);

}  // namespace serverswap::daemon
