// Metrics: the daemon's counters in Prometheus' text exposition format (version 0.0.4).
// Fed by the same messages the supervisor sends to deploys (events, deployed,
// deployFailed), so that what a scrape reports and what a deploy was told cannot differ.
// Loop thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "protocol/control_replies.h"
#include "protocol/message.h"

namespace serverswap::observe {

class Metrics {
 public:
  using Clock = std::chrono::steady_clock;

  // One supervisor message: {"event": {...}}, {"deployed": {...}} or {"deployFailed": {...}}.
  void observe(const protocol::Json& message, Clock::time_point now = Clock::now());

  // One attempt to write the daemon's state file: failures are counted, and the last
  // outcome is the serverswap_state_file_ok gauge (1 until a write fails).
  void state_write(bool ok);

  // The exposition text; `servers` as `status` lists them (Supervisor::server_status()).
  std::string render(const std::vector<protocol::ServerStatus>& servers) const;

  // Upper bounds of the deploy duration histogram, in seconds (+Inf is implied).
  static constexpr std::array<double, 10> kDurationBuckets = {0.05, 0.1, 0.25, 0.5, 1,
                                                              2.5,  5,   10,   30,  60};

 private:
  void deploy_finished(const std::string& id, bool ok, size_t replaced, Clock::time_point now);

  uint64_t deploys_ok_ = 0;
  uint64_t deploys_failed_ = 0;
  uint64_t swaps_ = 0;
  uint64_t restarts_ = 0;
  uint64_t crashes_ = 0;
  uint64_t kills_ = 0;
  uint64_t state_write_failures_ = 0;
  bool state_file_ok_ = true;
  std::array<uint64_t, kDurationBuckets.size()> duration_counts_{};  // per bucket, cumulative
  uint64_t duration_count_ = 0;
  double duration_sum_ = 0;
  std::map<std::string, Clock::time_point> started_;  // deploy (server id) -> spawn time
};

}  // namespace serverswap::observe
