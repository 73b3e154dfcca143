#include "observe/counters.h"

#include <array>

namespace serverswap::observe {
namespace {

std::array<uint64_t, static_cast<size_t>(Refused::kCount)> values{};

}  // namespace

void count(Refused what, uint64_t n) {
  values[static_cast<size_t>(what)] += n;
}

uint64_t counted(Refused what) {
  return values[static_cast<size_t>(what)];
}

void render_refusals(std::string& out) {
  auto family = [&](const char* name, const char* help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" counter\n");
  };
  auto sample = [&](const char* name, const char* labels, Refused what) {
    out.append(name);
    if (labels[0]) out.append("{").append(labels).append("}");
    out.append(" ").append(std::to_string(counted(what))).append("\n");
  };
  family("serverswap_refused_connections_total",
         "Control connections refused, by reason (other_user: not the daemon's user nor one of "
         "its servers; quota: over the connections of its uid; capacity: every slot in use; rate: "
         "a uid "
         "connecting faster than its accept rate, counted once per pause of its socket or per "
         "connection closed unread on the main socket).");
  sample("serverswap_refused_connections_total", "reason=\"other_user\"",
         Refused::kConnectionOtherUser);
  sample("serverswap_refused_connections_total", "reason=\"quota\"", Refused::kConnectionQuota);
  sample("serverswap_refused_connections_total", "reason=\"capacity\"",
         Refused::kConnectionCapacity);
  sample("serverswap_refused_connections_total", "reason=\"rate\"", Refused::kConnectionRate);
  family("serverswap_notify_rejected_total",
         "Notification datagrams dropped: a sender the server's socket does not accept, or "
         "truncated.");
  sample("serverswap_notify_rejected_total", "", Refused::kNotifyDatagram);
  family("serverswap_unasked_fds_total",
         "Descriptors peers sent that the daemon closed unread: unasked, or beyond the caps on "
         "descriptors held pending.");
  sample("serverswap_unasked_fds_total", "", Refused::kUnaskedFd);
  family("serverswap_rate_limited_messages_total",
         "Control messages dropped over their connection's rate limit.");
  sample("serverswap_rate_limited_messages_total", "", Refused::kRateLimitedMessage);
  family("serverswap_rate_limit_closes_total",
         "Control connections closed for staying over the rate limit or leaving replies unread.");
  sample("serverswap_rate_limit_closes_total", "", Refused::kRateLimitClose);
  family("serverswap_suppressed_log_lines_total",
         "Log lines about the refusals above not written, over their rate limit.");
  sample("serverswap_suppressed_log_lines_total", "", Refused::kSuppressedLogLine);
}

}  // namespace serverswap::observe
