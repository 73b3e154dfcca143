#include "verify/load.h"

// LoadRun: run_load on a background thread, with progress a test can wait on.

namespace serverswap::verify {

LoadRun::LoadRun(LoadOptions options) {
  auto user_progress = std::move(options.on_progress);
  options.on_progress = [this, user_progress](uint64_t ok, uint64_t failed) {
    on_progress(ok);
    if (user_progress) user_progress(ok, failed);
  };
  thread_ = std::thread([this, options = std::move(options)] {
    LoadReport report = run_load(options, &stop_);
    std::lock_guard lock(mutex_);
    report_ = std::move(report);
    done_ = true;
    changed_.notify_all();
  });
}

LoadRun::~LoadRun() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void LoadRun::stop() {
  stop_ = true;
}

void LoadRun::on_progress(uint64_t ok) {
  std::lock_guard lock(mutex_);
  ok_ = ok;
  changed_.notify_all();
}

bool LoadRun::wait_for_ok(uint64_t ok, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return ok_ >= ok || done_; });
  return ok_ >= ok;
}

bool LoadRun::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return done_; });
}

LoadReport LoadRun::join() {
  if (thread_.joinable()) thread_.join();
  return std::move(report_);
}

}  // namespace serverswap::verify
