// Clock: the supervisor's seam for time (docs/architecture.md, "Seams"). Production wraps
// the libuv loop (UvClock, uv_handle.h); the simulator and the unit tests drive a fake
// whose time moves only when they say. Loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "base/duration.h"

namespace serverswap::daemon {

// One one-shot timer. start() replaces a pending expiry; stop() cancels it (idempotent).
// Destroying it cancels it too; `fire` is never called after that.
class Alarm {
 public:
  virtual ~Alarm() = default;
  virtual void start(Millis after, std::function<void()> fire) = 0;
  virtual void stop() = 0;
  // It no longer keeps the event loop running by itself (uv_unref); no-op where there is
  // no loop to keep alive.
  virtual void unref() {}
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time (steady_clock's epoch in production, an arbitrary one in fakes).
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // A new, stopped timer on this clock; owned by the caller, which must not outlive the
  // clock.
  virtual std::unique_ptr<Alarm> alarm() = 0;
};

}  // namespace serverswap::daemon
