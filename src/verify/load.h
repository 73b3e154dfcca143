// The HTTP load generator: N client connections sending GET requests to one address for a
// bounded time, classifying every outcome (ok, refused, reset, timeout, other status,
// other error) and timing the successes. serverswap's tests, its benchmark and
// `serverswap verify` all measure "did any request fail during a swap?" with it.
//
// The load runs on its own libuv loop (one thread, non-blocking sockets), so it holds
// 10,000 keep-alive connections without a thread per connection.
//
// Thread-safety: run_load() runs the whole load on the calling thread; it may be called
// from several threads at once (no shared state). LoadRun runs it on a background thread;
// its methods may be called from any one controlling thread.
//
// Typical use in a test:
//   LoadRun load({.host = "127.0.0.1", .port = port, .duration = 5s});
//   ASSERT_TRUE(load.wait_for_ok(100, 2s));   // load is flowing
//   ... swap servers ...
//   load.stop();
//   LoadReport report = load.join();
//   EXPECT_EQ(report.counts.failed(), 0u) << to_text(report);
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "verify/stats.h"

namespace serverswap::verify {

enum class Mode {
  // One connection per request; the request says `Connection: close`. We close as soon as
  // the response is complete, so TIME_WAIT lands on this side; Linux reuses those ports
  // for loopback connections (tcp_tw_reuse=2), elsewhere long runs can exhaust them.
  kClose,
  kKeepAlive,  // connections are reused; a new one is opened after an error or a close
};

const char* mode_name(Mode mode);
std::optional<Mode> parse_mode(std::string_view name);

// One judged request, for callers that need more than the report's aggregates (the
// benchmark splits latency into "during a swap" and "steady" windows with these).
struct RequestSample {
  std::chrono::nanoseconds completed{0};  // since the start of the run
  uint64_t latency_us = 0;                // request start to completion (success or failure)
  const char* outcome = "ok";             // "ok", "refused", "reset", "timeout", ...
};

struct LoadOptions {
  std::string host = "127.0.0.1";  // IPv4/IPv6 literal (no brackets) or a name
  uint16_t port = 0;
  std::chrono::milliseconds duration{std::chrono::seconds(10)};  // the run never exceeds it
  int connections = 50;  // concurrent clients, each with at most one request in flight
  Mode mode = Mode::kKeepAlive;
  double rate = 0;  // total requests per second; 0 = closed loop, as fast as answers come
  std::chrono::milliseconds request_timeout{std::chrono::seconds(2)};
  std::string path = "/";
  // Called on the load thread about every 10 ms, and once at the end, with the counts so
  // far. Must be quick and must not call back into the load.
  std::function<void(uint64_t ok, uint64_t failed)> on_progress;
  // Called on the load thread for every judged request (not the unfinished ones). Must be
  // quick and must not call back into the load.
  std::function<void(const RequestSample&)> on_sample;
};

struct Counts {
  uint64_t ok = 0;            // 200 with the complete body
  uint64_t refused = 0;       // ECONNREFUSED on connect
  uint64_t reset = 0;         // ECONNRESET / EPIPE, or EOF before the full response
  uint64_t timeout = 0;       // no full response within request_timeout
  uint64_t other_status = 0;  // a complete response that was not 200
  uint64_t other_error = 0;   // anything else (malformed response, EMFILE, ...)

  uint64_t failed() const { return refused + reset + timeout + other_status + other_error; }
  uint64_t total() const { return ok + failed(); }
};

struct LoadReport {
  std::string target;  // "127.0.0.1:8080"
  Mode mode = Mode::kKeepAlive;
  int connections = 0;
  double target_rate = 0;
  std::chrono::nanoseconds elapsed{0};  // actual run length
  // CLOCK_MONOTONIC at the start of the run (uv_hrtime), so that other processes can place
  // their events (a deploy's start, a server's exit) on the run's timeline.
  uint64_t started_monotonic_ns = 0;
  Counts counts;
  // Requests still in flight when the run ended: neither success nor failure, since they
  // were cut short by us, not by the server.
  uint64_t unfinished = 0;
  LatencyHistogram latency_us;  // of successful requests, connect time included in close mode
  Timeline timeline;
  // Distinct failure messages ("connect 127.0.0.1:8080: connection refused") and how often
  // each happened; at most kMaxDistinctErrors kinds are kept.
  static constexpr size_t kMaxDistinctErrors = 16;
  std::map<std::string, uint64_t> errors;
  // Non-empty when the load could not run at all (bad options, unresolvable host).
  std::string setup_error;

  double achieved_rate() const;  // judged requests per second of elapsed time
  uint64_t longest_outage_ms() const { return verify::longest_outage_ms(timeline); }
  bool clean() const { return setup_error.empty() && counts.failed() == 0; }
};

// Runs the load on the calling thread until options.duration has passed or *stop becomes
// true (checked every 10 ms). Never throws for network errors: they are counted.
LoadReport run_load(const LoadOptions& options, std::atomic<bool>* stop = nullptr);

// run_load on a background thread, for tests that swap servers while load runs.
class LoadRun {
 public:
  explicit LoadRun(LoadOptions options);
  ~LoadRun();  // stops the load and joins
  LoadRun(const LoadRun&) = delete;
  LoadRun& operator=(const LoadRun&) = delete;

  // Ends the load early (within about 10 ms). Safe to call more than once.
  void stop();
  // Waits until at least `ok` successful responses were counted; false on timeout or if
  // the run ended first.
  bool wait_for_ok(uint64_t ok, std::chrono::milliseconds timeout);
  // Waits for the run to end; false on timeout.
  bool wait_done(std::chrono::milliseconds timeout);
  // Waits for the end of the run (at most its duration) and returns the report. Once.
  LoadReport join();

 private:
  void on_progress(uint64_t ok);

  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t ok_ = 0;
  bool done_ = false;
  LoadReport report_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace serverswap::verify
