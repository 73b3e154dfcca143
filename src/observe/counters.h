// Counters of what others did to the daemon and it refused: connections, notifications,
// descriptors, messages over the rate, log lines suppressed. Process-wide, like the limits
// they count: they are incremented deep in the control server and the notify sockets,
// which know nothing of the Daemon, and rendered by Metrics::render (docs/security.md).
// Loop thread only (plain integers).
#pragma once

#include <cstdint>
#include <string>

namespace serverswap::observe {

enum class Refused {
  kConnectionOtherUser,  // a peer of another uid that is not one of its servers
  kConnectionQuota,      // a --user server's uid over its quota (or over the others' share)
  kConnectionCapacity,   // every connection slot in use
  kConnectionRate,       // a uid over its accept rate (a pause of its socket, see AcceptThrottle)
  kNotifyDatagram,       // a notification from a sender the server's socket does not accept
  kUnaskedFd,            // a descriptor sent unasked, or beyond the pending caps (per fd)
  kRateLimitedMessage,   // a message over its connection's rate limit
  kRateLimitClose,       // a connection closed for its rate or for replies left unread
  kSuppressedLogLine,    // a log line about the above not written (LogLimiter)
  kCount
};

// Adds `n` to the counter of `what`.
void count(Refused what, uint64_t n = 1);
// Its value since the process started.
uint64_t counted(Refused what);
// The families in Prometheus text format (HELP, TYPE, samples), appended to `out`.
void render_refusals(std::string& out);

}  // namespace serverswap::observe
