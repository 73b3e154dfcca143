// Where the daemon's control socket lives: --socket, else $SERVERSWAP_SOCKET (set inside
// every server, so `serverswap status` run by a server finds its own daemon), else
// $XDG_RUNTIME_DIR/serverswap/control.sock, else /tmp/serverswap-<uid>/control.sock.
#pragma once

#include <string>

#include "base/status.h"

namespace serverswap::cli {

// An absolute path. Creates the default directory 0700 and refuses one that belongs to
// another user or that anyone but its owner may enter. The directory of ANY control socket
// (default, $SERVERSWAP_SOCKET or --socket) must then be safe for the files the daemon keeps
// beside it (lock, state, log): see check_socket_directory(). Every error says what is wrong
// and how to fix it; callers exit kSystemError (4) on it.
Result<std::string> resolve_socket_path(const std::string& flag);

// Refuses `dir` unless it is a real directory (not a symbolic link) owned by the effective
// uid that no one else may write to, and every directory the kernel passes through to reach
// it is owned by root or the effective uid and writable by no one else unless sticky
// (OpenSSH's safe_path rule, with the sticky exception so that a directory in /tmp
// qualifies), each symbolic link on the way (also one met in another link's target) being
// root's or the effective uid's (find_unsafe_component). `dir` must be absolute.
Status check_socket_directory(const std::string& dir);

}  // namespace serverswap::cli
