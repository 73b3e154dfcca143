// InheritedSockets: listening sockets a supervisor left open across exec, as the environment
// describes them in one of three conventions (docs/protocol.md, "Inherited sockets and
// unmodified programs"):
//  - systemd socket activation: LISTEN_FDS=n, fds 3..3+n-1, LISTEN_FDNAMES=a:b:...; only when
//    LISTEN_PID is this process (a child that inherited the variables is not addressed);
//  - Server::Starter: SERVER_STARTER_PORT="8080=3;127.0.0.1:8081=4;/run/app.sock=5";
//  - einhorn: EINHORN_FD_COUNT=n, EINHORN_FD_0=fd, ... EINHORN_FD_<n-1>=fd.
// The first convention present wins, in that order: serverswap --listen sets all three, and a
// worker forked by the server (LISTEN_PID is then its parent's) still finds the same fds
// through SERVER_STARTER_PORT.
//
// A resource matches an inherited socket when the socket's own address (getsockname) is the
// resource's address (":8080": any address with port 8080; "unix:/p": the path /p), or when
// its LISTEN_FDNAMES name is the resource string ("web"). Only listening stream sockets match.
//
// Malformed variables are logged and ignored, never fatal: the program then binds or asks the
// daemon as it would without them. The descriptors stay open for the life of the process
// (another client in it may ask again); one that matches is made close-on-exec, as
// sd_listen_fds() does.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace serverswap::client {

struct InheritedSocket {
  int fd = -1;
  std::string name;  // from LISTEN_FDNAMES; "" under the other conventions
};

// How a variable is read: ::getenv, or a table in tests.
using EnvLookup = std::function<const char*(const char* name)>;

// The convention a set of sockets came from, for messages: "LISTEN_FDS", "SERVER_STARTER_PORT",
// "EINHORN_FD_COUNT"; empty when none applies.
struct InheritedSet {
  std::string convention;
  std::vector<InheritedSocket> sockets;
};

// The three parsers, each returning an error for malformed text. `listen_pid` etc. may be null
// (unset). Parsing only: no descriptor is touched.
Result<InheritedSet> parse_systemd(const char* listen_fds, const char* listen_pid,
                                   const char* listen_fdnames, pid_t self);
Result<InheritedSet> parse_server_starter(std::string_view text);
Result<InheritedSet> parse_einhorn(const EnvLookup& env);

// Picks the first convention present in `env` (see the top of this file); a malformed one is
// logged and ignored.
InheritedSet read_inherited(const EnvLookup& env, pid_t self);

// Whether `fd` is a listening stream socket bound to `resource`'s address.
bool listens_on(int fd, std::string_view resource);

class InheritedSockets {
 public:
  // Reads the process environment (no descriptor is touched).
  static InheritedSockets from_environment();
  explicit InheritedSockets(InheritedSet set) : set_(std::move(set)) {}

  bool empty() const { return set_.sockets.empty(); }
  const InheritedSet& set() const { return set_; }

  // The inherited socket for `resource` (now close-on-exec), or nullopt when none matches.
  // An error when a LISTEN_FDNAMES name matches a descriptor that is not a listening stream
  // socket.
  Result<std::optional<InheritedSocket>> find(const std::string& resource) const;

  // "fd 3 [::]:8080 (web), fd 4 unix:/run/a.sock" for messages.
  std::string describe() const;

 private:
  InheritedSet set_;
};

}  // namespace serverswap::client
