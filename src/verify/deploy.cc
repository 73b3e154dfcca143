#include "verify/deploy.h"

#include <signal.h>
#include <uv.h>

#include <cassert>

#include "base/join.h"

namespace serverswap::verify {
namespace {

constexpr uint64_t kKillGraceMs = 5000;  // between SIGTERM and SIGKILL on timeout

uint64_t elapsed_ms_since(uint64_t start_ns) {
  return (uv_hrtime() - start_ns) / 1000000;
}

// One libuv loop with a start timer, a kill timer and the child process.
class DeployRunner {
 public:
  DeployRunner(const std::vector<std::string>& argv, std::chrono::milliseconds timeout)
      : timeout_(timeout) {
    result_.argv = argv;
  }
  ~DeployRunner() {
    if (!loop_ready_) return;
    uv_walk(
        &loop_,
        [](uv_handle_t* handle, void*) {
          if (!uv_is_closing(handle)) uv_close(handle, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    [[maybe_unused]] const int rc = uv_loop_close(&loop_);
    assert(rc == 0);
  }
  DeployRunner(const DeployRunner&) = delete;
  DeployRunner& operator=(const DeployRunner&) = delete;

  DeployResult run(std::chrono::milliseconds delay) {
    start_ns_ = uv_hrtime();
    const int rc = uv_loop_init(&loop_);
    if (rc < 0) {
      result_.error = std::string("uv_loop_init: ") + uv_strerror(rc);
      return result_;
    }
    loop_ready_ = true;
    for (uv_timer_t* timer : {&start_timer_, &kill_timer_}) {
      uv_timer_init(&loop_, timer);
      timer->data = this;
    }
    delay_ns_ = static_cast<uint64_t>(std::chrono::nanoseconds(delay).count());
    spawn_when_due();
    uv_run(&loop_, UV_RUN_DEFAULT);
    return result_;
  }

 private:
  // libuv timers count whole milliseconds of a cached loop clock, so they may fire up to a
  // millisecond early: re-arm until the delay has really passed.
  void spawn_when_due() {
    const uint64_t elapsed = uv_hrtime() - start_ns_;
    if (elapsed >= delay_ns_) return spawn();
    const uint64_t remaining_ms = (delay_ns_ - elapsed + 999999) / 1000000;
    uv_timer_start(
        &start_timer_, [](uv_timer_t* t) { static_cast<DeployRunner*>(t->data)->spawn_when_due(); },
        remaining_ms, 0);
  }

  void spawn() {
    std::vector<char*> args;
    for (const std::string& arg : result_.argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    for (int fd = 0; fd < 3; ++fd) {
      stdio[fd].flags = UV_INHERIT_FD;
      stdio[fd].data.fd = fd;
    }
    uv_process_options_t options{};
    options.file = args[0];
    options.args = args.data();
    options.stdio = stdio;
    options.stdio_count = 3;
    options.exit_cb = [](uv_process_t* process, int64_t status, int signal) {
      static_cast<DeployRunner*>(process->data)->on_exit(status, signal);
    };
    process_.data = this;
    spawned_ns_ = uv_hrtime();
    result_.started_after = std::chrono::milliseconds(elapsed_ms_since(start_ns_));
    const int rc = uv_spawn(&loop_, &process_, &options);
    if (rc < 0) {
      // uv_spawn initialised the handle even on failure; it must still be closed.
      uv_close(reinterpret_cast<uv_handle_t*>(&process_), nullptr);
      result_.error = "spawn " + result_.argv[0] + ": " + uv_strerror(rc);
      return;
    }
    uv_timer_start(
        &kill_timer_, [](uv_timer_t* t) { static_cast<DeployRunner*>(t->data)->on_timeout(); },
        static_cast<uint64_t>(timeout_.count()), 0);
  }

  void on_timeout() {
    result_.timed_out = true;
    const bool first = !sent_term_;
    sent_term_ = true;
    uv_process_kill(&process_, first ? SIGTERM : SIGKILL);
    if (first) {
      uv_timer_start(
          &kill_timer_, [](uv_timer_t* t) { static_cast<DeployRunner*>(t->data)->on_timeout(); },
          kKillGraceMs, 0);
    }
  }

  void on_exit(int64_t status, int signal) {
    result_.exit_status = status;
    result_.term_signal = signal;
    result_.ran_for = std::chrono::milliseconds(elapsed_ms_since(spawned_ns_));
    uv_timer_stop(&kill_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&process_), nullptr);
  }

  std::chrono::milliseconds timeout_;
  DeployResult result_;
  uv_loop_t loop_{};
  bool loop_ready_ = false;
  uv_timer_t start_timer_{};
  uv_timer_t kill_timer_{};
  uv_process_t process_{};
  bool sent_term_ = false;
  uint64_t start_ns_ = 0;
  uint64_t delay_ns_ = 0;
  uint64_t spawned_ns_ = 0;
};

}  // namespace

std::string DeployResult::describe() const {
  std::string text = "deploy `" + join(argv, " ") + "`: ";
  if (!error.empty()) return text + error;
  if (timed_out) text += "timed out, ";
  if (term_signal != 0) {
    text += "killed by signal " + std::to_string(term_signal);
  } else {
    text += "exited with status " + std::to_string(exit_status);
  }
  return text + " after " + std::to_string(ran_for.count()) + " ms (started at " +
         std::to_string(started_after.count()) + " ms)";
}

nlohmann::json DeployResult::to_json() const {
  nlohmann::json json = {{"argv", argv},
                         {"ok", ok()},
                         {"exit_status", exit_status},
                         {"signal", term_signal},
                         {"timed_out", timed_out},
                         {"started_after_ms", started_after.count()},
                         {"ran_for_ms", ran_for.count()}};
  if (!error.empty()) json["error"] = error;
  return json;
}

DeployResult run_deploy(const std::vector<std::string>& argv, std::chrono::milliseconds delay,
                        std::chrono::milliseconds timeout) {
  if (argv.empty()) {
    DeployResult result;
    result.error = "empty deploy command";
    return result;
  }
  DeployRunner runner(argv, timeout);
  return runner.run(delay);
}

}  // namespace serverswap::verify
