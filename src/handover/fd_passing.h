// Sending file descriptors with a message, receiving one (SCM_RIGHTS), with the strict
// checks of docs/protocol.md: received fds are close-on-exec, a truncated control message
// is an error, and any fd beyond the one expected is closed at once.
#pragma once

#include <sys/types.h>

#include <span>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"

namespace serverswap::handover {

// sendmsg of `data` with `fd` attached (fd < 0: none). Returns the bytes sent, which may be
// fewer than data.size() on a non-blocking socket; the fd went with the first byte.
Result<size_t> send_with_fd(int sock, std::string_view data, int fd);

// At most this many descriptors in one message (docs/protocol.md §11: a resume hello).
inline constexpr size_t kMaxFdsPerMessage = 64;

// sendmsg of `data` with every fd of `fds` attached, in order, as one SCM_RIGHTS message
// (none when empty; more than kMaxFdsPerMessage is an error). Partial sends as above.
Result<size_t> send_with_fds(int sock, std::string_view data, std::span<const int> fds);

struct Received {
  size_t bytes = 0;  // 0 means the peer closed the connection
  UniqueFd fd;       // the fd that came with these bytes, if any
};

// recvmsg into buf with MSG_CMSG_CLOEXEC. EINTR is retried; EAGAIN is returned as an error
// with that errno text, and `errno` is left set.
Result<Received> recv_with_fd(int sock, char* buf, size_t len);

}  // namespace serverswap::handover
