// Where the daemon's control socket lives: --socket, else $SERVERSWAP_SOCKET (set inside
// every server, so `serverswap status` run by a server finds its own daemon), else
// $XDG_RUNTIME_DIR/serverswap/control.sock, else /tmp/serverswap-<uid>/control.sock.
#pragma once

#include <string>

#include "base/status.h"

namespace serverswap::cli {

// An absolute path. Creates the default directory 0700 and refuses one that belongs to
// another user or that others may write to (someone could plant a socket there).
Result<std::string> resolve_socket_path(const std::string& flag);

}  // namespace serverswap::cli
