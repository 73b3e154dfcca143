// A Unix socket bound at a name in a directory the daemon owns, reached through the
// directory's descriptor: whatever happens meanwhile to the path that names the directory,
// the socket file lands in the directory that was opened and checked. Used for NOTIFY_SOCKETs
// and for the control sockets of servers run as another user. Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/status.h"

namespace serverswap::daemon {

// `dir` (opened O_DIRECTORY|O_NOFOLLOW) must be a directory of the daemon's effective uid
// that no group or other may list or write: then no one else can create, replace or remove
// a socket file in it. `passable`: others may pass through it (0711 at most); else not even
// that (0700 at most). Errors name `what` ("the NOTIFY_SOCKET directory") and `path`, the
// owner or mode found, and the fix.
Status check_owned_directory(int dir, const std::string& what, const std::string& path,
                             bool passable);

// True when `path` fits in sockaddr_un.sun_path with its terminating NUL (107 bytes on Linux).
bool fits_sun_path(const std::string& path);

// Binds the Unix socket `fd` to `name` in the directory `dir` (an O_DIRECTORY descriptor),
// through /proc/self/fd/DIR/NAME. A file already at `name` is replaced first: the caller owns
// the directory, so only it can have put one there (a socket of an earlier run). The file is
// made mode 0600 and, when `uid` is not the daemon's, given to `uid`: that user may connect
// or send, no one else but root. `what` names the socket in errors, which carry the errno
// text. On error nothing is left at `name`.
Status bind_socket_in(int fd, int dir, const std::string& name, uid_t uid, const std::string& what);

}  // namespace serverswap::daemon
