// The Supervisor's steps of a rolling deploy of workers (docs/architecture.md, "Workers and
// rolling deploys"): start what RolloutPlan allows, take old copy i down when new worker i's
// batch is up, and on a failure put the old version back on every index already replaced.
#include "daemon/worker_roll.h"

#include "base/join.h"
#include "base/log.h"
#include "daemon/supervisor.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

std::string worker_text(int index, int workers) {
  std::string text = "worker ";
  text.append(std::to_string(index)).append(" of ").append(std::to_string(workers));
  return text;
}

}  // namespace

bool Supervisor::same_slot(const Server& newer, const Server& older) {
  return newer.request.worker < 0 || older.request.worker == newer.request.worker;
}

void Supervisor::start_roll(const SpawnSpec& request, Sink sink, bool follow_exit) {
  int batch = request.batch.value_or(1);
  RolloutLimits limits{*request.workers, batch, request.max_surge.value_or(batch)};
  if (std::string error = rollout_limits_error(limits); !error.empty()) {
    sink(protocol::make("deployFailed", {{"reason", error}}));
    return;
  }
  std::string key = command_key(request);
  // The newest deploy wins: a rollout of this command still in progress is superseded (its
  // workers not yet up are stopped; what it replaced is started again, and this rollout
  // replaces that in turn).
  std::vector<uint64_t> older;
  for (const auto& [id, roll] : rolls_)
    if (roll->key == key && !roll->reported) older.push_back(id);
  for (uint64_t id : older)
    roll_failed(id, "superseded by generation " + std::to_string(next_generation_), true);
  auto roll = std::make_unique<WorkerRoll>(limits, false);
  roll->id = next_roll_++;
  roll->request = request;
  roll->key = key;
  roll->sink = std::move(sink);
  roll->follow_exit = follow_exit;
  roll->first_generation = next_generation_;
  for (const auto& listen : request.listen)
    if (auto resource = protocol::parse_resource(listen.resource); resource.ok())
      roll->resources.insert(resource->name());
  // Up workers of another command may be old copies too (a changed command): their
  // resources are known once a new worker asks for them, so the roll goes by batch and
  // surge from the start rather than starting every worker at once.
  bool replacing = false;
  for (const auto& [id, s] : servers_)
    if (s->state == ServerState::kUp && (is_old_copy(*roll, *s) || s->request.worker >= 0))
      replacing = true;
  roll->plan = RolloutPlan(limits, replacing);
  uint64_t roll_id = roll->id;
  log_line("rollout of '" + join(request.argv, " ") + "': " + std::to_string(limits.workers) +
           " workers, batch " + std::to_string(batch) + ", max surge " +
           std::to_string(limits.max_surge) + (replacing ? "" : " (nothing to replace)"));
  rolls_.emplace(roll_id, std::move(roll));
  roll_advance(roll_id);
}

WorkerRoll* Supervisor::find_roll(uint64_t id) {
  auto it = rolls_.find(id);
  return it == rolls_.end() ? nullptr : it->second.get();
}

WorkerRoll* Supervisor::roll_of(const Server& server) {
  for (auto& [id, roll] : rolls_) {
    if (roll->reported) continue;
    auto worker = roll->workers.find(server.request.worker);
    if (worker == roll->workers.end()) continue;
    if (worker->second == server.id) return roll.get();
    // The roll's worker with this index came up, then crashed, and this is its crash
    // restart: it stands in for it (else the roll would report a worker that is gone, or
    // wait for it forever).
    const Server* was = find(worker->second);
    if ((!was || !was->alive()) && server.rank >= roll->first_generation &&
        command_key(server.request) == roll->key) {
      worker->second = server.id;
      return roll.get();
    }
  }
  return nullptr;
}

// A server the roll replaces: older than it, not one of its workers, and of the same command
// or on the resources its workers hold.
bool Supervisor::is_old_copy(const WorkerRoll& roll, const Server& server) const {
  // By deploy order: a crash restart of an old copy started during the roll is an old copy.
  if (server.rank >= roll.first_generation || roll.concerns(server.id)) return false;
  if (command_key(server.request) == roll.key) return true;
  for (const auto& [name, spelled] : server.held)
    if (roll.resources.count(name)) return true;
  return false;
}

// What --max-surge counts: old copies (draining ones too) and new workers, while alive.
int Supervisor::roll_processes_alive(const WorkerRoll& roll) const {
  int alive = 0;
  for (const auto& [id, s] : servers_)
    if (s->alive() && (roll.concerns(id) || is_old_copy(roll, *s))) ++alive;
  return alive;
}

void Supervisor::roll_advance(uint64_t roll_id) {
  WorkerRoll* roll = find_roll(roll_id);
  if (!roll || roll->reported || stopping()) return;
  for (int index : roll->plan.starts(roll_processes_alive(*roll))) {
    SpawnSpec request = roll->request;
    request.worker = index;
    Server* server = start_server(
        request,
        [this, roll_id, index](const Json& message) {
          roll_worker_message(roll_id, index, message);
        },
        /*follow_exit=*/false);
    roll = find_roll(roll_id);  // a worker that could not start ends the roll
    if (!roll || !server) return;
    roll->workers[index] = server->id;
    emit(*server, EventKind::kRollout,
         "starting " + worker_text(index, roll->plan.workers()) + " (batch " +
             std::to_string(roll->plan.batch_of(index)) + "/" +
             std::to_string(roll->plan.batches()) + ")");
  }
}

// What a worker's own deploy record reports. Its events reach the roll's requester through
// emit() once the roll knows the worker (before that: its spawn, forwarded here); of the
// outcomes only a failure matters to the roll.
void Supervisor::roll_worker_message(uint64_t roll_id, int index, const Json& message) {
  WorkerRoll* roll = find_roll(roll_id);
  if (!roll || roll->reported) return;
  if (message.contains("event") && !roll->concerns(message["event"].value("id", "")))
    return roll->sink(message);
  if (!message.contains("deployFailed")) return;
  std::string why = message["deployFailed"].value("reason", "");
  // A newer deploy of its resources: the rollout is superseded, not failed.
  if (why.starts_with("superseded by generation ")) {
    size_t end = why.find(' ', std::string("superseded by generation ").size());
    return roll_failed(roll_id, why.substr(0, end), true);
  }
  roll_failed(roll_id, worker_text(index, roll->plan.workers()) + " failed: " + why);
}

void Supervisor::roll_worker_up(WorkerRoll& roll, Server& server) {
  int index = server.request.worker;
  for (const auto& [name, spelled] : server.held) roll.resources.insert(name);
  emit(server, EventKind::kRollout,
       worker_text(index, roll.plan.workers()) + " is up (batch " +
           std::to_string(roll.plan.batch_of(index)) + "/" + std::to_string(roll.plan.batches()) +
           ")");
  for (int replaced : roll.plan.up(index)) take_down_old_copy(roll, replaced, server);
  // Old servers beyond the new count (or a single server before workers) go last.
  if (roll.plan.all_up()) take_down_old_copy(roll, -1, server);
  uint64_t roll_id = roll.id;
  roll_advance(roll_id);
  roll_check_done(roll_id);
}

// Takes down the old copy with worker index `index` (a server that was no worker counts as
// copy 0), or with `index` -1 every old copy still up.
void Supervisor::take_down_old_copy(WorkerRoll& roll, int index, const Server& newer) {
  for (auto& [id, s] : servers_) {
    if (s->state != ServerState::kUp || !is_old_copy(roll, *s)) continue;
    if (index >= 0 && std::max(s->request.worker, 0) != index) continue;
    std::set<std::string> remaining;
    for (const auto& [name, spelled] : s->held)
      if (!s->taken.count(name)) remaining.insert(name);
    if (index >= 0) roll.replaced.emplace(index, s->request);
    roll.draining.insert(id);
    roll.replaced_pids.push_back(s->pid);
    take_down(*s, remaining,
              index >= 0 ? "replaced by the new worker " + std::to_string(index) + " (batch " +
                               std::to_string(roll.plan.batch_of(index)) + " is up)"
                         : "not needed by the " + std::to_string(roll.plan.workers()) +
                               " new workers of generation " + std::to_string(newer.generation) +
                               " and later",
              &newer);
    if (s->state == ServerState::kUp) begin_draining(*s);  // it held nothing the roll shares
  }
}

// A new worker failed: the roll stops, its workers go, and the old version is started again
// on the indices already replaced, so that N old workers serve. A new worker that is up goes
// when the old copy with its index is up again (the ordinary rule for a worker's index);
// the others go now while an old copy serves, and stay when none does (a first roll).
// `superseded`: a newer deploy of its command or resources wins instead: the workers not yet
// up are stopped, and the rest (new workers up, old copies) stay until the newer deploy
// replaces them; nothing is started again.
void Supervisor::roll_failed(uint64_t roll_id, const std::string& reason, bool superseded) {
  WorkerRoll* roll = find_roll(roll_id);
  if (!roll || roll->reported) return;
  roll->reported = true;
  std::string why = superseded ? reason : "the rollout stopped: " + reason;
  std::vector<std::string> restored;
  if (!superseded)
    for (const auto& [index, request] : roll->replaced) {
      restored.push_back(std::to_string(index));
      start_server(
          request, [](const Json&) {}, /*follow_exit=*/false);
    }
  for (const auto& [index, id] : roll->workers) {
    Server* s = find(id);
    if (!s || !s->alive()) continue;
    if (s->starting()) {
      fail(*s, why);
    } else if (!superseded && s->state == ServerState::kUp && !roll->replaced.count(index) &&
               old_copy_serves(*roll)) {
      std::set<std::string> all;
      for (const auto& [name, spelled] : s->held) all.insert(name);
      take_down(*s, all, why, nullptr);
      if (s->state == ServerState::kUp) begin_draining(*s);
    }
  }
  std::string text = why;
  if (!superseded) {
    text += "; the old version keeps serving";
    if (!restored.empty()) text += " and is started again as worker " + join(restored, ", ");
  }
  log_line("rollout of '" + join(roll->request.argv, " ") + "' " +
           (superseded ? "superseded: " : "failed: ") + text);
  roll->sink(protocol::make("deployFailed", {{"reason", text}}));
  rolls_.erase(roll_id);
}

// Some up old copy still serves: the new workers of a failed roll may go (the old version
// serves with its own count of workers). Without one (nothing was there to replace) they
// stay: nothing else would serve.
bool Supervisor::old_copy_serves(const WorkerRoll& roll) const {
  for (const auto& [id, s] : servers_)
    if (s->state == ServerState::kUp && is_old_copy(roll, *s) && s->taken.size() < s->held.size())
      return true;
  return false;
}

void Supervisor::roll_server_exited(const Server& gone) {
  std::vector<uint64_t> affected;
  // Any exit may make room under --max-surge (an old copy that crashed, the workers of a
  // superseded roll): every roll in progress looks again.
  for (auto& [id, roll] : rolls_)
    if (roll->concerns(gone.id) || !roll->reported) affected.push_back(id);
  for (uint64_t id : affected) {
    WorkerRoll* roll = find_roll(id);
    if (!roll) continue;
    roll->draining.erase(gone.id);
    if (!roll->reported) {
      roll_advance(id);
      roll_check_done(id);
      continue;
    }
    // serverswap-deploy stays until the last of its workers has exited.
    bool any_alive = false;
    for (const auto& [index, worker] : roll->workers)
      if (const Server* s = find(worker); s && s->alive()) any_alive = true;
    if (any_alive) continue;
    bool replaced = gone.state == ServerState::kGone && gone.taken.size() == gone.held.size() &&
                    !gone.held.empty();
    roll->sink(protocol::make("serverExited", {{"id", gone.id},
                                               {"pid", gone.pid},
                                               {"exit", "every worker has exited"},
                                               {"replaced", replaced}}));
    rolls_.erase(id);
  }
}

// Done once every new worker is up and every old copy it took down has exited.
void Supervisor::roll_check_done(uint64_t roll_id) {
  WorkerRoll* roll = find_roll(roll_id);
  if (!roll || roll->reported || !roll->plan.all_up() || !roll->draining.empty()) return;
  // A worker that was up and crashed: done once its crash restart is up (roll_of).
  for (const auto& [index, id] : roll->workers)
    if (const Server* s = find(id); !s || s->state != ServerState::kUp) return;
  roll->reported = true;
  Json pids = Json::array();
  const Server* first = nullptr;
  for (const auto& [index, id] : roll->workers) {
    const Server* s = find(id);
    pids.push_back(s ? s->pid : 0);
    if (!first && s) first = s;
  }
  roll->sink(protocol::make("deployed", {{"id", first ? first->id : ""},
                                         {"pid", first ? first->pid : 0},
                                         {"generation", first ? first->generation : 0},
                                         {"workers", pids},
                                         {"replaced", roll->replaced_pids}}));
  if (!roll->follow_exit) rolls_.erase(roll_id);
}

void Supervisor::stop_rolls() {
  for (auto& [id, roll] : rolls_)
    if (!roll->reported) {
      roll->reported = true;
      roll->sink(protocol::make("deployFailed", {{"reason", "the daemon is stopping"}}));
    }
  rolls_.clear();
}

}  // namespace serverswap::daemon
