// Listening sockets handed to the daemon itself by a service manager (systemd socket
// activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, fds from 3). The daemon keys each by
// the resource its bound address answers for, so that a server asking readyFor(":8080")
// gets the socket systemd bound for ListenStream=8080, privileged ports included.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace serverswap::daemon {

struct ActivatedSocket {
  UniqueFd fd;           // close-on-exec from now on
  std::string resource;  // canonical resource name: ":8080", "127.0.0.1:80", "unix:/run/a"
  std::string fd_name;   // its LISTEN_FDNAMES entry ("" when none was given)
};

// Takes the sockets passed to this process and removes the three variables from the
// environment, so that no server inherits a description of fds it does not have. Nothing
// when LISTEN_PID names another process (the variables were inherited, not meant for us).
// An fd that is not a listening stream socket is an error.
Result<std::vector<ActivatedSocket>> take_activated_sockets();

// The canonical resource a listening socket answers for (getsockname): the IPv6 wildcard
// without IPV6_V6ONLY, or the IPv4 wildcard, is ":PORT", as when the daemon binds ":PORT".
Result<std::string> resource_of_socket(int fd);

}  // namespace serverswap::daemon
