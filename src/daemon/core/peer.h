// Peer: the supervisor's seam for a control connection (docs/architecture.md, "Seams"):
// what it sends to a server and what it knows of the process at the other end.
// Production: Connection; the simulator: a fake that records what was sent. Loop thread
// only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "protocol/message.h"

namespace serverswap::daemon {

class Peer {
 public:
  virtual ~Peer() = default;

  virtual void send(const protocol::Json& message) = 0;
  // Sends a listening socket with the line (SCM_RIGHTS); `handle` is a Listeners entry's.
  virtual void send_with_handle(const protocol::Json& message, uv_stream_t* handle) = 0;
  // Flushes what was sent, then closes. Idempotent.
  virtual void close() = 0;
  // Descriptors that came with the line being handled (a resume hello's listening sockets).
  virtual std::vector<UniqueFd> take_received_fds() = 0;

  virtual uint64_t id() const = 0;
  // The kernel's word on the process at the other end (SO_PEERCRED).
  virtual pid_t peer_pid() const = 0;
  virtual uid_t peer_uid() const = 0;

  // Set by the supervisor after hello.
  enum class Role { kNew, kServer, kControl };
  Role role = Role::kNew;
  std::string server_id;
};

}  // namespace serverswap::daemon
