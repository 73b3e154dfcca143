// Binding the listening socket behind a resource. The daemon does this once per resource
// and keeps the socket for as long as it runs; the client library does it itself when a
// program runs outside serverswap.
#pragma once

#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "protocol/resource.h"

namespace serverswap::handover {

struct ListenSocket {
  UniqueFd fd;
  std::string address;  // what was bound, port included: "[::]:8080", "unix:/run/a.sock"
};

// socket + SO_REUSEADDR + bind + listen(SOMAXCONN), close-on-exec. ":PORT" is dual-stack,
// falling back to IPv4 only where the kernel has no IPv6. A stale Unix socket file (no
// one accepting on it) is replaced; a live one is "Address already in use".
Result<ListenSocket> bind_listener(const protocol::Resource& resource);

// The address a listening socket is bound to, as bind_listener reports it.
std::string bound_address(int fd);

}  // namespace serverswap::handover
