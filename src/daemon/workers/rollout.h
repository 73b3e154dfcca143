// RolloutPlan: the order of a rolling deploy of N workers (`--workers N --batch K
// --max-surge S`). New worker i replaces old worker i. A batch is K consecutive indices; a
// worker of a batch starts only when every earlier batch is up and the processes of the
// command alive (old ones draining included) leave room under N + S; the old copies of a
// batch go down once the whole batch is up. A pure value: the Supervisor feeds it events
// (docs/architecture.md, "Workers and rolling deploys"). Loop thread only.
#pragma once

#include <string>
#include <vector>

namespace serverswap::daemon {

struct RolloutLimits {
  int workers = 1;
  int batch = 1;
  int max_surge = 1;
};

class RolloutPlan {
 public:
  // `replacing`: older servers of the command are up. Without them there is nothing to
  // keep serving, so every worker starts at once.
  RolloutPlan(RolloutLimits limits, bool replacing);

  // The workers to start now, given how many processes of the command are alive; they are
  // counted as started.
  std::vector<int> starts(int alive);
  // Worker `index` is up. Returns the indices whose old copies go down now: the whole batch
  // once its last worker is up, else none.
  std::vector<int> up(int index);

  bool all_up() const;
  int workers() const { return limits_.workers; }
  // 1-based batch number of a worker, and how many batches there are: "batch 2/4".
  int batch_of(int index) const { return index / batch_ + 1; }
  int batches() const { return (limits_.workers + batch_ - 1) / batch_; }

 private:
  enum class Step { kWaiting, kStarted, kUp };
  int current_batch() const;  // 0-based; batches() when all are up

  RolloutLimits limits_;
  bool replacing_;
  int batch_;  // K, at most S so that a batch can always start (S >= 1)
  std::vector<Step> steps_;
};

// Checks --workers/--batch/--max-surge: "--batch 0: must be at least 1".
std::string rollout_limits_error(const RolloutLimits& limits);

}  // namespace serverswap::daemon
