// Whether a socket a server hands the daemon lives in the daemon's network namespace. A
// process that may create a user and network namespace of its own (unprivileged users may,
// on most distributions) can bind any address there, port 80 included, and hand that socket
// back as if it were the resource's: the address reads the same, but no client of the
// daemon's namespace ever reaches it (docs/security.md, "hand the daemon a socket to use").
// Thread-safe.
#pragma once

#include "base/status.h"

namespace serverswap::daemon {

// True when socket `fd` was created in the daemon's network namespace, false when in
// another. Read with SO_NETNS_COOKIE (Linux 5.14), else with SIOCGSKNS, which needs
// CAP_NET_ADMIN (a root daemon has it); when neither can tell (an older kernel and an
// unprivileged daemon, whose servers are all its own uid's) it answers true. Errors: `fd`
// is not a socket ("SO_NETNS_COOKIE: Socket operation on non-socket").
Result<bool> in_daemon_network_namespace(int fd);

}  // namespace serverswap::daemon
