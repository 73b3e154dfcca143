// Running the deploy command of `serverswap verify` at a set moment, with a deadline.
// Thread-safety: run_deploy blocks the calling thread on a libuv loop of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace serverswap::verify {

struct DeployResult {
  std::vector<std::string> argv;
  std::string error;  // could not start: "spawn ./deploy.sh: no such file or directory"
  bool timed_out = false;
  int64_t exit_status = -1;
  int term_signal = 0;
  std::chrono::milliseconds started_after{0};  // since run_deploy was called
  std::chrono::milliseconds ran_for{0};

  bool ok() const { return error.empty() && !timed_out && term_signal == 0 && exit_status == 0; }
  std::string describe() const;  // one line for the text report
  nlohmann::json to_json() const;
};

// Waits `delay`, runs argv (PATH lookup, stdio inherited, signal mask and dispositions
// reset by libuv in the child) and waits for it to exit. After `timeout` it gets SIGTERM,
// and SIGKILL 5 s later.
DeployResult run_deploy(const std::vector<std::string>& argv, std::chrono::milliseconds delay,
                        std::chrono::milliseconds timeout);

}  // namespace serverswap::verify
