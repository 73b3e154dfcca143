#include "daemon/control/log_limiter.h"

#include "base/log.h"
#include "daemon/uv_handle.h"
#include "observe/counters.h"

namespace serverswap::daemon {

// How long suppressed lines wait for their summary.
constexpr uint64_t kFlushAfterMs = 1000;

struct LogLimiter::Flush {
  uv_timer_t handle;
  LogLimiter* owner;
};

LogLimiter::LogLimiter(uv_loop_t* loop, std::string what, double lines_per_second, int burst)
    : loop_(loop),
      what_(std::move(what)),
      lines_per_second_(lines_per_second),
      burst_(burst),
      flush_(new Flush) {
  uv_timer_init(loop, &flush_->handle);
  flush_->owner = this;
  flush_->handle.data = flush_;
  // A summary still due must not keep a stopping daemon's loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(&flush_->handle));
}

LogLimiter::~LogLimiter() {
  // What is still suppressed is said now rather than never.
  flush();
  close_block(flush_, reinterpret_cast<uv_handle_t*>(&flush_->handle));
}

bool LogLimiter::admit(const std::string& source) {
  auto it = sources_.find(source);
  if (it == sources_.end()) {
    const std::string& key = sources_.size() < kMaxSources ? source : "other sources";
    it = sources_.try_emplace(key, Source{TokenBucket(lines_per_second_, burst_)}).first;
  }
  if (it->second.bucket.take(uv_now(loop_))) return true;
  ++it->second.suppressed;
  observe::count(observe::Refused::kSuppressedLogLine);
  if (!flush_pending_) {
    flush_pending_ = true;
    uv_timer_start(
        &flush_->handle, [](uv_timer_t* t) { static_cast<Flush*>(t->data)->owner->flush(); },
        kFlushAfterMs, 0);
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
