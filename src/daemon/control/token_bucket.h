// TokenBucket: admits `rate` events per second on average and bursts of up to `burst`;
// the daemon's per-connection message rate limit (docs/protocol.md, "Limits"). Time comes
// from the caller (libuv's loop clock), so tests need no clock. Not thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>

namespace serverswap::daemon {

class TokenBucket {
 public:
  TokenBucket(double rate_per_second, double burst)
      : rate_per_ms_(rate_per_second / 1000), burst_(burst), tokens_(burst) {}

  // Whether the bucket would be full at `now_ms`: nothing taken from it matters any more,
  // so a holder of many buckets may forget this one and start a new one later.
  bool full(uint64_t now_ms) const {
    if (!started_) return true;
    double refilled =
        tokens_ + static_cast<double>(now_ms > last_ms_ ? now_ms - last_ms_ : 0) * rate_per_ms_;
    return refilled >= burst_;
  }

  // Takes `cost` tokens (one event, or its size in bytes) at `now_ms` (monotonic
  // milliseconds); false, taking nothing, when fewer are left.
  bool take(uint64_t now_ms, double cost = 1) {
    if (!affords(now_ms, cost)) return false;
    tokens_ -= cost;
    return true;
  }

  // Whether `cost` tokens are left at `now_ms`, taking none.
  bool affords(uint64_t now_ms, double cost) {
    if (started_ && now_ms > last_ms_)
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_per_ms_);
    started_ = true;
    last_ms_ = std::max(last_ms_, now_ms);
    return tokens_ >= cost;
  }

 private:
  double rate_per_ms_;
  double burst_;
  double tokens_;
  uint64_t last_ms_ = 0;
  bool started_ = false;
};

}  // namespace serverswap::daemon
