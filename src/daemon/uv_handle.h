// RAII owners for libuv handles. libuv frees a handle only after uv_close's callback, so
// each owner keeps its handle in a heap block that the close callback deletes; the owner
// itself can then be destroyed at any time, like any other C++ object. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <utility>

#include "base/duration.h"
#include "daemon/core/clock.h"

namespace serverswap::daemon {

// Closes and frees a handle whose data field points at the heap block T owning it.
template <class Block>
void close_block(Block* block, uv_handle_t* handle) {
  handle->data = block;
  uv_close(handle, [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
}

// A one-shot libuv timer (uv_timer_t).
class UvAlarm : public Alarm {
 public:
  explicit UvAlarm(uv_loop_t* loop) : block_(new Block) {
    uv_timer_init(loop, &block_->handle);
    block_->handle.data = block_;
  }
  ~UvAlarm() override { close_block(block_, reinterpret_cast<uv_handle_t*>(&block_->handle)); }
  UvAlarm(const UvAlarm&) = delete;
  UvAlarm& operator=(const UvAlarm&) = delete;

  void start(Millis after, std::function<void()> fn) override {
    block_->fn = std::move(fn);
    uv_timer_start(
        &block_->handle, [](uv_timer_t* t) { static_cast<Block*>(t->data)->fn(); },
        static_cast<uint64_t>(after.count()), 0);
  }
  void stop() override { uv_timer_stop(&block_->handle); }
  void unref() override { uv_unref(reinterpret_cast<uv_handle_t*>(&block_->handle)); }

 private:
  struct Block {
    uv_timer_t handle;
    std::function<void()> fn;
  };
  Block* block_;
};

// The production Clock: steady_clock and the loop's timers.
class UvClock : public Clock {
 public:
  explicit UvClock(uv_loop_t* loop) : loop_(loop) {}
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::unique_ptr<Alarm> alarm() override { return std::make_unique<UvAlarm>(loop_); }

 private:
  uv_loop_t* loop_;
};

// A one-shot timer as a plain member: on a libuv loop, or on any Clock (the supervisor's
// seam). Destroying it cancels it. The loop's timer is made at the first start(): a Server
// has seven Timers and most are never started, and each made one costs a heap block
// (about 250 bytes) for as long as the server lives (issue 13: the daemon's memory per app).
// The loop or clock must outlive the Timer.
class Timer {
 public:
  explicit Timer(uv_loop_t* loop) : loop_(loop) {}
  explicit Timer(Clock& clock) : clock_(&clock) {}

  void start(Millis after, std::function<void()> fn) { made().start(after, std::move(fn)); }
  // A Timer never started has nothing to stop.
  void stop() {
    if (alarm_) alarm_->stop();
  }
  // It no longer keeps the loop running by itself (uv_unref): for housekeeping that must not
  // delay the daemon's exit. Remembered until the timer is made.
  void unref() {
    unref_ = true;
    if (alarm_) alarm_->unref();
  }

 private:
  Alarm& made() {
    if (!alarm_) {
      alarm_ = clock_ ? clock_->alarm() : std::make_unique<UvAlarm>(loop_);
      if (unref_) alarm_->unref();
    }
    return *alarm_;
  }

  uv_loop_t* loop_ = nullptr;
  Clock* clock_ = nullptr;
  bool unref_ = false;
  std::unique_ptr<Alarm> alarm_;
};

// Delivers a signal as an event in the loop (never work inside a signal handler).
class SignalWatch {
 public:
  SignalWatch(uv_loop_t* loop, int signum, std::function<void()> fn) : block_(new Block) {
    block_->fn = std::move(fn);
    uv_signal_init(loop, &block_->handle);
    block_->handle.data = block_;
    uv_signal_start(
        &block_->handle, [](uv_signal_t* s, int) { static_cast<Block*>(s->data)->fn(); }, signum);
    // A pending signal watcher must not keep the loop alive on its own.
    uv_unref(reinterpret_cast<uv_handle_t*>(&block_->handle));
  }
  ~SignalWatch() { close_block(block_, reinterpret_cast<uv_handle_t*>(&block_->handle)); }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

 private:
  struct Block {
    uv_signal_t handle;
    std::function<void()> fn;
  };
  Block* block_;
};

}  // namespace serverswap::daemon
