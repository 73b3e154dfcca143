// LogLimiter: the rate limit of log lines about what others did to the daemon (refused
// connections and notifications, unasked descriptors, connections closed over a limit),
// so that no one can fill the daemon's log or its disk by knocking. Per source (a peer's
// uid), a token bucket admits a burst of lines and then `lines_per_second`; the lines it
// holds back are counted, and within a second one line says how many ("refused control
// connections from uid 65534: 812 more suppressed"). Each suppressed line also counts in
// serverswap_suppressed_log_lines_total; the metric of the refusal itself is the caller's.
// The one place where this is done: every such line goes through a LogLimiter.
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "daemon/control/token_bucket.h"
#include "daemon/core/clock.h"
#include "daemon/uv_handle.h"

namespace serverswap::daemon {

class LogLimiter {
 public:
  // Sources tracked one by one; beyond them, the rest share one bucket ("other sources").
  static constexpr size_t kMaxSources = 64;

  // `what` names the lines in the summary ("refused control connections").
  LogLimiter(uv_loop_t* loop, std::string what, double lines_per_second = 1, int burst = 5);
  // The same on the supervisor's Clock seam (borrowed; must outlive this).
  LogLimiter(Clock& clock, std::string what, double lines_per_second = 1, int burst = 5);
  ~LogLimiter();
  LogLimiter(const LogLimiter&) = delete;
  LogLimiter& operator=(const LogLimiter&) = delete;

  // True when a line about `source` ("uid 65534") may be written now: the caller writes it.
  // False when it is over the rate: the caller writes nothing; it is counted here.
  // `cost`: what the line weighs against `lines_per_second` and `burst`, when they are
  // bytes rather than lines (a server's output: its size as written).
  bool admit(const std::string& source, double cost = 1);
  // True, counting the line as suppressed, when `source` cannot afford even `least` now (a
  // lower bound of the line's cost): the caller then need not make the line at all. False
  // takes nothing; the caller makes the line and asks admit() with its real cost.
  bool refuses(const std::string& source, double least);

 private:
  struct Source {
    TokenBucket bucket;
    uint64_t suppressed = 0;
  };
  LogLimiter(std::unique_ptr<Clock> clock, std::string what, double lines_per_second, int burst);
  // admit() and refuses(): `take` false takes no tokens.
  bool weigh(const std::string& source, double cost, bool take);
  void flush();

  std::unique_ptr<Clock> own_clock_;  // for the loop constructor
  Clock& clock_;
  std::string what_;
  double lines_per_second_;
  int burst_;
  std::map<std::string, Source> sources_;
  Timer flush_timer_;
  bool flush_pending_ = false;
};

}  // namespace serverswap::daemon
