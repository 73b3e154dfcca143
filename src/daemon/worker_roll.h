// WorkerRoll: one rolling deploy of `--workers N` in progress, as the Supervisor tracks it
// (its steps are Supervisor methods in worker_roll.cc; the order comes from RolloutPlan).
// Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "daemon/rollout.h"
#include "daemon/server_process.h"
#include "protocol/message.h"

namespace serverswap::daemon {

// Deploys of the same command are recognised by argv and working directory (not the
// environment, which differs between shells); the worker index is not part of it.
std::string command_key(const SpawnSpec& request);

struct WorkerRoll {
  WorkerRoll(RolloutLimits limits, bool replacing) : plan(limits, replacing) {}

  uint64_t id = 0;
  SpawnSpec request;  // the new version; each worker gets `worker` set
  std::string key;    // command_key(request)
  std::function<void(const protocol::Json&)> sink;
  bool follow_exit = false;
  RolloutPlan plan;
  uint64_t first_generation = 0;       // servers older than this may be its old copies
  std::set<std::string> resources;     // canonical names its workers hold
  std::map<int, std::string> workers;  // index -> id of the new worker
  std::set<std::string> draining;      // old copies it took down, still alive
  std::map<int, SpawnSpec> replaced;   // index -> request of the old copy taken down
  protocol::Json replaced_pids = protocol::Json::array();
  bool reported = false;  // deployed or deployFailed sent

  bool concerns(const std::string& server_id) const {
    if (draining.count(server_id)) return true;
    for (const auto& [index, worker_id] : workers)
      if (worker_id == server_id) return true;
    return false;
  }
};

}  // namespace serverswap::daemon
