#include "daemon/workers/rollout.h"

#include <algorithm>

namespace serverswap::daemon {

RolloutPlan::RolloutPlan(RolloutLimits limits, bool replacing)
    : limits_(limits),
      replacing_(replacing),
      // A batch larger than the surge could never be all up before its old copies go down.
      batch_(replacing ? std::max(1, std::min(limits.batch, limits.max_surge)) : limits.workers),
      steps_(static_cast<size_t>(limits.workers), Step::kWaiting) {}

int RolloutPlan::current_batch() const {
  for (int i = 0; i < limits_.workers; ++i)
    if (steps_[static_cast<size_t>(i)] != Step::kUp) return i / batch_;
  return batches();
}

std::vector<int> RolloutPlan::starts(int alive) {
  std::vector<int> started;
  int batch = current_batch();
  int first = batch * batch_;
  int last = std::min(first + batch_, limits_.workers);
  for (int i = first; i < last; ++i) {
    if (steps_[static_cast<size_t>(i)] != Step::kWaiting) continue;
    if (replacing_ && alive >= limits_.workers + limits_.max_surge) break;
    steps_[static_cast<size_t>(i)] = Step::kStarted;
    started.push_back(i);
    ++alive;
  }
  return started;
}

std::vector<int> RolloutPlan::up(int index) {
  if (index < 0 || index >= limits_.workers) return {};
  steps_[static_cast<size_t>(index)] = Step::kUp;
  int first = index / batch_ * batch_;
  int last = std::min(first + batch_, limits_.workers);
  std::vector<int> batch;
  for (int i = first; i < last; ++i) {
    if (steps_[static_cast<size_t>(i)] != Step::kUp) return {};
    batch.push_back(i);
  }
  return batch;
}

bool RolloutPlan::all_up() const {
  return current_batch() == batches();
}

std::string rollout_limits_error(const RolloutLimits& limits) {
  if (limits.workers < 1 || limits.workers > 1024) return "--workers must be 1 to 1024";
  if (limits.batch < 1) return "--batch must be at least 1";
  if (limits.max_surge < 1) return "--max-surge must be at least 1";
  return "";
}

}  // namespace serverswap::daemon
