// CrashBackoff: when to restart a server that keeps crashing. The first restart waits
// `first`, each further one of the same crash loop twice the last, at most `max`, so that
// a server that dies at once costs a few spawns a minute, not a busy loop. A pure value:
// the Supervisor owns one per crash loop and drops it once a restart has stayed up.
// Thread-safety: none (loop thread only, like its owner).
#pragma once

#include <chrono>
#include <string>

#include "base/duration.h"

namespace serverswap::daemon {

class CrashBackoff {
 public:
  using Clock = std::chrono::steady_clock;

  CrashBackoff(Millis first, Millis max) : first_(first), max_(max) {}

  // Records a crash at `now`; returns the delay before the next restart.
  Millis crashed(Clock::time_point now);

  int crashes() const { return crashes_; }
  Clock::time_point first_crash() const { return first_crash_; }
  // "crashed once; next restart in 100ms", "crashed 5 times in 12s; next restart in 3.2s".
  std::string describe(Clock::time_point now, Millis delay) const;

 private:
  Millis first_;
  Millis max_;
  Millis next_{0};
  int crashes_ = 0;
  Clock::time_point first_crash_;
};

}  // namespace serverswap::daemon
