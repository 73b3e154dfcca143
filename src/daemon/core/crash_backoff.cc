#include "daemon/core/crash_backoff.h"

#include <algorithm>

namespace serverswap::daemon {

Millis CrashBackoff::crashed(Clock::time_point now) {
  if (crashes_++ == 0) {
    first_crash_ = now;
    next_ = first_;
  } else {
    next_ = std::min(next_ * 2, max_);
  }
  return std::min(next_, max_);
}

std::string CrashBackoff::describe(Clock::time_point now, Millis delay) const {
  std::string text = "crashed ";
  if (crashes_ == 1) {
    text += "once";
  } else {
    // Whole seconds are enough to see how fast it crashes; a loop shorter than one says "0s".
    auto span = std::chrono::duration_cast<std::chrono::seconds>(now - first_crash_);
    text += std::to_string(crashes_) + " times in " + std::to_string(span.count()) + "s";
  }
  return text + "; next restart in " + format_duration(delay);
}

}  // namespace serverswap::daemon
