// `serverswap upgrade`: the daemon re-executes a (new) binary of itself in the same process,
// keeping its listening sockets and control socket open across execve (docs/protocol.md,
// "Upgrade"). These are the two steps that touch the operating system.
#pragma once

#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"

namespace serverswap::daemon {

// Runs `path --version` (at most `timeout`); its first line, which must name serverswap.
Result<std::string> binary_version(const std::string& path, Millis timeout = Millis(5000));

// Clears close-on-exec on `inherited` and executes `path` with `argv` (argv[0] included) in
// this process. Returns only when the exec failed, with the flags restored.
Status exec_keeping(const std::string& path, const std::vector<std::string>& argv,
                    const std::vector<int>& inherited);

}  // namespace serverswap::daemon
