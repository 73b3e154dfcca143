// AcceptThrottle: the accept rate limit of one control listener source (a per-user
// listener, or one other uid on the main listener). A token bucket admits a burst of
// connections and then `rate_per_second`; once it is empty the caller stops accepting for
// pause_ms(), which doubles at each pause in a row (up to kMaxPauseMs) and starts again at
// kFirstPauseMs once the source has kept to the rate for kCalmMs. So a uid that churns
// connect()/close() costs the loop a bounded amount of work per second, whatever its rate,
// and root's commands on the main socket are still answered (docs/security.md, "Limits
// against other users"). Time comes from the caller (libuv's loop clock). Not thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>

#include "daemon/control/token_bucket.h"

namespace serverswap::daemon {

class AcceptThrottle {
 public:
  // Far above what the servers of one uid need (a roll of 64 workers connects 64 times),
  // far below what a connect()/close() loop does (tens of thousands per second).
  static constexpr double kRatePerSecond = 100;
  static constexpr double kBurst = 64;
  static constexpr uint64_t kFirstPauseMs = 50;
  static constexpr uint64_t kMaxPauseMs = 2000;
  static constexpr uint64_t kCalmMs = 10'000;

  AcceptThrottle() : bucket_(kRatePerSecond, kBurst) {}

  // One connection at `now_ms` (monotonic milliseconds): 0 when it may be served now, else
  // how long (ms) the caller should stop accepting from this source before serving it.
  // Within a pause (a caller that does not stop, as the main socket's), the time left of
  // it: the pause grows only when the source is over the rate again after it.
  uint64_t admit(uint64_t now_ms) {
    if (bucket_.take(now_ms)) return 0;
    if (paused_ && now_ms < pause_end_ms_) return pause_end_ms_ - now_ms;
    if (!paused_ || now_ms >= pause_end_ms_ + kCalmMs)
      pause_ms_ = kFirstPauseMs;
    else
      pause_ms_ = std::min(kMaxPauseMs, pause_ms_ * 2);
    paused_ = true;
    pause_end_ms_ = now_ms + pause_ms_;
    return pause_ms_;
  }

 private:
  TokenBucket bucket_;
  bool paused_ = false;
  uint64_t pause_ms_ = kFirstPauseMs;
  uint64_t pause_end_ms_ = 0;
};

}  // namespace serverswap::daemon
