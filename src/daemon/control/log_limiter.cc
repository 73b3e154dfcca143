#include "daemon/control/log_limiter.h"

#include "base/log.h"
#include "daemon/uv_handle.h"
#include "observe/counters.h"

namespace serverswap::daemon {

// How long suppressed lines wait for their summary.
constexpr uint64_t kFlushAfterMs = 1000;

LogLimiter::LogLimiter(uv_loop_t* loop, std::string what, double lines_per_second, int burst)
    : LogLimiter(std::make_unique<UvClock>(loop), std::move(what), lines_per_second, burst) {}

LogLimiter::LogLimiter(Clock& clock, std::string what, double lines_per_second, int burst)
    : clock_(clock),
      what_(std::move(what)),
      lines_per_second_(lines_per_second),
      burst_(burst),
      flush_timer_(clock) {
  // A summary still due must not keep a stopping daemon's loop alive.
  flush_timer_.unref();
}

LogLimiter::LogLimiter(std::unique_ptr<Clock> clock, std::string what, double lines_per_second,
                       int burst)
    : LogLimiter(*clock, std::move(what), lines_per_second, burst) {
  own_clock_ = std::move(clock);
}

LogLimiter::~LogLimiter() {
  // What is still suppressed is said now rather than never.
  flush();
}

bool LogLimiter::admit(const std::string& source, double cost) {
  return weigh(source, cost, true);
}

bool LogLimiter::refuses(const std::string& source, double least) {
  return !weigh(source, least, false);
}

bool LogLimiter::weigh(const std::string& source, double cost, bool take) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch());
  const auto now_ms = static_cast<uint64_t>(now.count());
  auto it = sources_.find(source);
  if (it == sources_.end()) {
    // Sources come and go (servers, uids): one that has been quiet long enough for its
    // bucket to refill, and has nothing left to summarise, is as good as new and is
    // forgotten, so that a long-lived daemon does not put every later source in one shared
    // bucket.
    if (sources_.size() >= kMaxSources)
      std::erase_if(sources_, [&](const auto& entry) {
        return entry.second.suppressed == 0 && entry.second.bucket.full(now_ms);
      });
    const std::string& key = sources_.size() < kMaxSources ? source : "other sources";
    it = sources_.try_emplace(key, Source{TokenBucket(lines_per_second_, burst_)}).first;
  }
  if (take ? it->second.bucket.take(now_ms, cost) : it->second.bucket.affords(now_ms, cost))
    return true;
  ++it->second.suppressed;
  observe::count(observe::Refused::kSuppressedLogLine);
  if (!flush_pending_) {
    flush_pending_ = true;
    flush_timer_.start(Millis(kFlushAfterMs), [this] { flush(); });
  }
  return false;
}

// The summaries are not rate-limited themselves: one per source per second at most.
void LogLimiter::flush() {
  flush_pending_ = false;
  for (auto& [source, state] : sources_) {
    if (state.suppressed == 0) continue;
    log_line(what_ + " from " + source + ": " + std::to_string(state.suppressed) +
             " more suppressed");
    state.suppressed = 0;
  }
}

}  // namespace serverswap::daemon
