// WorkerRolls: the steps of a rolling deploy of workers (docs/architecture.md, "Workers and
// rolling deploys"): start what RolloutPlan allows, take old copy i down when new worker i's
// batch is up, and on a failure put the old version back on every index already replaced.
#include "daemon/workers/worker_roll.h"

#include <algorithm>
#include <utility>

#include "base/join.h"
#include "base/log.h"
#include "protocol/control_replies.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

std::string worker_text(int index, int workers) {
  std::string text = "worker ";
  text.append(std::to_string(index)).append(" of ").append(std::to_string(workers));
  return text;
}

}  // namespace

void WorkerRolls::start(const SpawnSpec& request, Sink sink, bool follow_exit) {
  int batch = request.batch.value_or(1);
  RolloutLimits limits{*request.workers, batch, request.max_surge.value_or(batch)};
  if (std::string error = rollout_limits_error(limits); !error.empty()) {
    sink(protocol::DeployFailed{std::nullopt, error, std::nullopt, std::nullopt}.encode());
    return;
  }
  std::string key = app_of(request);
  // The newest deploy wins: a rollout of this command still in progress is superseded (its
  // workers not yet up are stopped; what it replaced is started again, and this rollout
  // replaces that in turn).
  std::vector<uint64_t> older;
  for (const auto& [id, roll] : rolls_)
    if (roll->key == key && !roll->reported) older.push_back(id);
  // A superseded roll was never deployed: the old version of each index it met is the old
  // version of this one too, not its workers that replaced it. Found by the simulator (seed
  // 6314 of the worker mix): a roll superseded after its worker replaced an old one, the roll
  // that superseded it failed and took that worker for the old version of its index, beside
  // the old release's worker of the other index (two releases once quiet).
  std::map<int, OldVersion> inherited_old;
  std::map<int, uint64_t> inherited_from;
  for (uint64_t id : older) {
    const Roll* loser = find_roll(id);
    // Only when it knows the old version of every index where a worker of it serves: else its
    // workers stand for the old version as before, all of one release (seed 9112).
    bool known = true;
    for (const auto& [index, worker] : loser->workers) {
      const Server* s = find(worker);
      if (!s || !s->serving()) continue;
      if (auto it = loser->old.find(index); it == loser->old.end() || gone_release(it->second.rank))
        known = false;
    }
    if (!known) continue;
    for (const auto& [index, version] : loser->old) {
      // An old version that is itself an undeployed roll's worker, of which nothing serves any
      // more, is no release to go back to: the loser's workers stand for the index as before
      // (seed 8588). One whose workers still serve is (seed 683: gone_release).
      if (gone_release(version.rank)) continue;
      auto it = inherited_old.find(index);
      if (it != inherited_old.end() && it->second.rank > version.rank) continue;
      inherited_old[index] = version;
      inherited_from[index] = loser->first_generation;
    }
  }
  for (uint64_t id : older)
    failed(id, "superseded by generation " + std::to_string(host_.next_generation()), true);
  auto roll = std::make_unique<Roll>(limits, false);
  roll->old = std::move(inherited_old);
  roll->inherited_from = std::move(inherited_from);
  roll->id = next_roll_++;
  roll->request = request;
  roll->key = key;
  roll->sink = std::move(sink);
  roll->follow_exit = follow_exit;
  roll->first_generation = host_.next_generation();
  for (const auto& listen : request.listen)
    if (auto resource = protocol::parse_resource(listen.resource); resource.ok())
      roll->resources.insert(resource->name());
  for (const auto& [id, s] : host_.servers()) note_old(*roll, *s);
  // An old worker that crashed before the roll, its restart pending, is the old version of its
  // index too. Found by the simulator (seed 2623 of the worker mix): it was not recorded, a new
  // worker of the same command and index took its crash loop over, and when the roll failed
  // nothing started the old version there again (one worker short once quiet).
  for (const auto& loop : host_.crash_loops()) {
    if (loop.rank >= roll->first_generation || app_of(loop.request) != key) continue;
    int index = std::max(loop.request.worker, 0);
    if (auto from = roll->inherited_from.find(index);
        from != roll->inherited_from.end() && from->second == loop.rank)
      continue;  // a superseded roll's worker's crash loop (seed 8655)
    auto it = roll->old.find(index);
    if (it == roll->old.end() || it->second.rank <= loop.rank)
      roll->old[index] = OldVersion{loop.request, loop.rank};
  }
  // Up workers of another command may be old copies too (a changed command): their
  // resources are known once a new worker asks for them, so the roll goes by batch and
  // surge from the start rather than starting every worker at once.
  bool replacing = false;
  for (const auto& [id, s] : host_.servers())
    if (s->serving() && (is_old_copy(*roll, *s) || s->request.worker >= 0)) replacing = true;
  roll->plan = RolloutPlan(limits, replacing);
  uint64_t roll_id = roll->id;
  log_line("rollout of '" + join(request.argv, " ") + "': " + std::to_string(limits.workers) +
           " workers, batch " + std::to_string(batch) + ", max surge " +
           std::to_string(limits.max_surge) + (replacing ? "" : " (nothing to replace)"));
  rolls_.emplace(roll_id, std::move(roll));
  advance(roll_id);
}

WorkerRolls::Roll* WorkerRolls::find_roll(uint64_t id) {
  auto it = rolls_.find(id);
  return it == rolls_.end() ? nullptr : it->second.get();
}

// `server` is the roll's worker with its index, or stands in for it: that worker came up,
// then crashed, and this is its crash restart (else the roll would report a worker that is
// gone, or wait for it forever).
bool WorkerRolls::is_worker(const Roll& roll, const Server& server) const {
  auto worker = roll.workers.find(server.request.worker);
  if (worker == roll.workers.end()) return false;
  if (worker->second == server.id) return true;
  const Server* was = find(worker->second);
  return (!was || !was->alive()) && server.rank >= roll.first_generation &&
         app_of(server.request) == roll.key;
}

const WorkerRolls::Roll* WorkerRolls::roll_of(const Server& server) const {
  for (const auto& [id, roll] : rolls_)
    if (!roll->reported && is_worker(*roll, server)) return roll.get();
  return nullptr;
}

WorkerRolls::Roll* WorkerRolls::roll_of(const Server& server) {
  Roll* roll = const_cast<Roll*>(std::as_const(*this).roll_of(server));
  if (roll) roll->workers[server.request.worker] = server.id;  // a crash restart stands in
  return roll;
}

void WorkerRolls::holds(const Server& server, const std::string& name) {
  // A crash restart of an old copy started during a roll: the old version of its index.
  for (auto& [id, other] : rolls_)
    if (!other->reported) note_old(*other, server);
  Roll* roll = roll_of(server);
  if (!roll) return;
  roll->resources.insert(name);
  // Two rolls in progress on one resource (of different commands: those of one command
  // meet at start): the newest deploy wins. Found by the simulator: workers race only for
  // their own index, so both rolls went on, each taking the other's workers down, and the
  // older never had an outcome.
  std::vector<std::pair<uint64_t, uint64_t>> losers;  // roll id, the winner's roll id
  for (const auto& [id, other] : rolls_) {
    if (other.get() == roll || other->reported || !other->resources.count(name)) continue;
    if (other->first_generation < roll->first_generation)
      losers.emplace_back(id, roll->id);
    else
      losers.emplace_back(roll->id, id);
  }
  for (const auto& [id, by] : losers) {
    Roll* loser = find_roll(id);
    Roll* winner = find_roll(by);
    if (!loser || !winner || loser->reported) continue;
    inherit(*winner, *loser);
    failed(id, "superseded by generation " + std::to_string(winner->first_generation), true);
  }
}

// As start() does for a roll of the same command: the winner takes over the loser's old
// version of each index, not its workers. Found by the simulator (seed 2572 of the worker mix):
// a roll of another command superseded on their shared resource after its worker replaced an
// old one was taken for the old version of that index by the winner, which then failed and
// started the loser's release again there (two releases once quiet).
void WorkerRolls::inherit(Roll& winner, const Roll& loser) {
  for (const auto& [index, worker] : loser.workers) {
    const Server* s = find(worker);
    if (!s || !s->serving()) continue;
    if (auto it = loser.old.find(index); it == loser.old.end() || gone_release(it->second.rank))
      return;  // its workers stand for the old version as before (seed 9112)
  }
  for (const auto& [index, version] : loser.old) {
    if (gone_release(version.rank)) continue;
    auto it = winner.old.find(index);
    if (it != winner.old.end() && it->second.rank > version.rank &&
        it->second.rank != loser.first_generation)
      continue;  // a newer old copy the winner met itself
    winner.old[index] = version;
    winner.inherited_from[index] = loser.first_generation;
  }
}

// Found by the simulator (seed 683 of the worker mix): a roll superseded while its workers
// served (the release there) was refused as an old version because it never deployed; the roll
// that superseded the one which replaced its worker then failed and kept that worker beside the
// release's others (two releases once quiet).
bool WorkerRolls::gone_release(uint64_t rank) const {
  if (!undeployed_.count(rank)) return false;
  for (const auto& [id, s] : host_.servers())
    if (s->rank == rank && s->serving()) return false;
  return true;
}

void WorkerRolls::rolling_back(const std::string& app) {
  Roll* newest = nullptr;
  for (auto& [id, roll] : rolls_)
    if (roll->key == app && !roll->reported) newest = roll.get();
  if (newest) newest->rollback = true;
}

bool WorkerRolls::in_roll(const Server& server) const {
  return roll_of(server) != nullptr;
}

const Server* WorkerRolls::find(const std::string& id) const {
  auto it = host_.servers().find(id);
  return it == host_.servers().end() ? nullptr : it->second.get();
}

bool WorkerRolls::is_old_copy(const Roll& roll, const Server& server) const {
  // By deploy order: a crash restart of an old copy started during the roll is an old copy.
  if (server.rank >= roll.first_generation || roll.concerns(server.id)) return false;
  if (app_of(server.request) == roll.key) return true;
  for (const auto& [name, spelled] : server.held)
    if (roll.resources.count(name)) return true;
  return false;
}

int WorkerRolls::processes_alive(const Roll& roll) const {
  int alive = 0;
  for (const auto& [id, s] : host_.servers()) {
    if (!s->alive()) continue;
    // An up old copy of an index beyond the new count goes only once every new worker is up
    // (take_down_old_copy(-1)): counted, it could hold the surge full, and the roll waited
    // for an exit that never came (found by the simulator: no outcome, I4). It was there
    // before the roll, as the old version's own excess.
    if (!roll.concerns(id) && s->serving() && std::max(s->request.worker, 0) >= roll.plan.workers())
      continue;
    if (roll.concerns(id) || is_old_copy(roll, *s)) ++alive;
  }
  return alive;
}

void WorkerRolls::advance(uint64_t roll_id) {
  Roll* roll = find_roll(roll_id);
  if (!roll || roll->reported || stopped_) return;
  for (int index : roll->plan.starts(processes_alive(*roll))) {
    SpawnSpec request = roll->request;
    request.worker = index;
    // Every worker ranks by the roll's deploy order, the batches started late too: else a
    // later batch outranked a newer deploy started meanwhile, which then neither replaced
    // nor superseded it (found by the simulator: two rolls' workers served once quiet).
    const Server* server = host_.start(
        request,
        [this, roll_id, index](const Json& message) { worker_message(roll_id, index, message); },
        roll->first_generation);
    roll = find_roll(roll_id);  // a worker that could not start ends the roll
    if (!roll || !server) return;
    roll->workers[index] = server->id;
    host_.emit(*server, EventKind::kRollout,
               "starting " + worker_text(index, roll->plan.workers()) + " (batch " +
                   std::to_string(roll->plan.batch_of(index)) + "/" +
                   std::to_string(roll->plan.batches()) + ")");
  }
}

// What a worker's own deploy record reports. Its events reach the roll's requester through
// emit() once the roll knows the worker (before that: its spawn, forwarded here); of the
// outcomes only a failure matters to the roll.
void WorkerRolls::worker_message(uint64_t roll_id, int index, const Json& message) {
  Roll* roll = find_roll(roll_id);
  if (!roll || roll->reported) return;
  auto m = protocol::as_message(message);
  if (!m.ok()) return;
  if (m->name == protocol::Event::kName) {
    auto event = protocol::Event::decode(*m);
    if (event.ok() && !roll->concerns(event->id.value_or(""))) roll->sink(message);
    return;
  }
  if (m->name != protocol::DeployFailed::kName) return;
  auto outcome = protocol::DeployFailed::decode(*m);
  std::string why = outcome.ok() ? outcome->reason : outcome.status().message();
  // A newer deploy of its resources: the rollout is superseded, not failed.
  const std::string superseded = "superseded by generation ";
  if (why.starts_with(superseded)) {
    size_t end = why.find(' ', superseded.size());
    return failed(roll_id, why.substr(0, end), true);
  }
  failed(roll_id, worker_text(index, roll->plan.workers()) + " failed: " + why);
}

void WorkerRolls::superseded(const Server& older, const Server& newer, const std::string& why) {
  // Found by the simulator: a roll whose worker lost went on until that worker exited (its
  // other batches came up beside the newer deploy's workers), and one whose worker's crash
  // restart lost waited for it forever (no outcome).
  if (Roll* roll = roll_of(older)) return failed(roll->id, why, true);
  // A crash restart of an old copy superseded by a newer roll's worker was not started again
  // when that roll failed (one worker short once quiet).
  if (older.restarts == 0) return;
  Roll* winner = roll_of(newer);
  if (winner && is_old_copy(*winner, older)) {
    note_old(*winner, older);
    winner->replaced.emplace(std::max(older.request.worker, 0), older.request);
  }
}

// Found by the simulator (seed 2571 of the worker mix): an old worker's crash restart that
// started during a roll and failed before it asked for anything was never recorded as the old
// version of its index; when the roll failed, its new worker there went while old copies
// served elsewhere, and the index was left empty (one worker short once quiet).
void WorkerRolls::restart_started(const Server& server) {
  for (auto& [id, roll] : rolls_)
    if (!roll->reported) note_old(*roll, server);
}

// Found by the simulator (seed 3047 of the worker mix): the old version a failed roll started
// again (it ranks by its own generation) replaced the up worker of an older roll still in
// progress, which then waited for ever (no outcome, I4).
void WorkerRolls::taken_down(const Server& victim, const Server& by) {
  Roll* roll = roll_of(victim);
  if (!roll || roll->reported || roll->concerns(by.id) || is_worker(*roll, by)) return;
  failed(roll->id, "superseded by generation " + std::to_string(by.generation), true);
}

// Found by the simulator (seed 8954 of the worker mix): a later plain server came up on a
// roll's resource while the roll's worker 0 waited for its crash restart; it replaced the up
// worker 1, whose own deploy record had reported already, the restart was dropped (a later
// deploy serves there), and the roll waited for ever (no outcome, I4).
void WorkerRolls::newer_up(const Server& server) {
  if (server.request.worker >= 0) return;
  std::vector<uint64_t> losers;
  for (const auto& [id, roll] : rolls_) {
    if (roll->reported || server.rank <= roll->first_generation) continue;
    for (const auto& [name, spelled] : server.held)
      if (roll->resources.count(name) && !server.taken.count(name)) {
        losers.push_back(id);
        break;
      }
  }
  for (uint64_t id : losers)
    failed(id, "superseded by generation " + std::to_string(server.generation), true);
}

void WorkerRolls::worker_up(const Server& server) {
  Roll* roll = roll_of(server);
  if (!roll) return;
  int index = server.request.worker;
  for (const auto& [name, spelled] : server.held) roll->resources.insert(name);
  host_.emit(server, EventKind::kRollout,
             worker_text(index, roll->plan.workers()) + " is up (batch " +
                 std::to_string(roll->plan.batch_of(index)) + "/" +
                 std::to_string(roll->plan.batches()) + ")");
  for (int replaced : roll->plan.up(index)) take_down_old_copy(*roll, replaced, server);
  // Old servers beyond the new count (or a single server before workers) go last.
  if (roll->plan.all_up()) take_down_old_copy(*roll, -1, server);
  uint64_t roll_id = roll->id;
  advance(roll_id);
  check_done(roll_id);
}

// Takes down the old copy with worker index `index` (a server that was no worker counts as
// copy 0), or with `index` -1 every old copy still up.
void WorkerRolls::take_down_old_copy(Roll& roll, int index, const Server& newer) {
  std::vector<std::string> ids;
  for (const auto& [id, s] : host_.servers()) {
    if (!s->serving() || !is_old_copy(roll, *s)) continue;
    if (index >= 0 && std::max(s->request.worker, 0) != index) continue;
    ids.push_back(id);
  }
  for (const auto& id : ids) {
    const Server* s = find(id);
    if (!s || !s->serving()) continue;
    std::set<std::string> remaining;
    for (const auto& [name, spelled] : s->held)
      if (!s->taken.count(name)) remaining.insert(name);
    note_old(roll, *s);
    if (index >= 0) roll.replaced.emplace(index, s->request);
    roll.draining.insert(id);
    roll.replaced_pids.push_back(s->pid);
    host_.retire(id, remaining,
                 index >= 0 ? "replaced by the new worker " + std::to_string(index) + " (batch " +
                                  std::to_string(roll.plan.batch_of(index)) + " is up)"
                            : "not needed by the " + std::to_string(roll.plan.workers()) +
                                  " new workers of generation " + std::to_string(newer.generation) +
                                  " and later",
                 &newer);
  }
}

// A new worker failed: the roll stops, its workers go, and the old version is started again
// on the indices already replaced, so that N old workers serve. A new worker that is up goes
// when the old copy with its index is up again (the ordinary rule for a worker's index);
// the others go now while an old copy serves, and stay when none does (a first roll).
// `superseded`: a newer deploy of its command or resources wins instead: the workers not yet
// up are stopped, and the rest (new workers up, old copies) stay until the newer deploy
// replaces them; nothing is started again.
void WorkerRolls::failed(uint64_t roll_id, const std::string& reason, bool superseded) {
  Roll* roll = find_roll(roll_id);
  if (!roll || roll->reported) return;
  roll->reported = true;
  undeployed_.insert(roll->first_generation);
  std::string why = superseded ? reason : "the rollout stopped: " + reason;
  if (superseded) {
    // Told first: its workers that came up may go next, while the old version serves (the
    // roll is undone), and the deployer hears why before it hears of them.
    log_line("rollout of '" + join(roll->request.argv, " ") + "' superseded: " + why);
    roll->sink(protocol::DeployFailed{std::nullopt, why, std::nullopt, std::nullopt}.encode());
    roll = find_roll(roll_id);
    if (!roll) return;
  }
  // No old copy serves and new workers came up: they stay, and the old release is not
  // started again beside them (found by the simulator: a restored old copy, newer by
  // generation, replaced one new worker and two releases served once quiet).
  // Each index gets its old version back (docs/architecture.md, "Workers and rolling
  // deploys"): where it no longer serves (taken down by this roll or one it superseded, or
  // crashed, its crash loop ended by a new worker up there), it is started again, and its
  // crash loop ends (the new start stands for it). Found by the simulator: an index whose
  // old worker had crashed was left to a new worker that then went (one worker short), or
  // to a superseded roll's worker (two releases once quiet).
  bool up = false;
  for (const auto& [index, id] : roll->workers)
    if (const Server* s = find(id); s && s->state == ServerState::kUp) up = true;
  // What serves now is what the roll gives back: an old copy that came up during the roll (a
  // server of an older deploy that replaced the old workers) is newer than what the roll met.
  // When it is no worker, it stands for every index: nothing is started again, and the new
  // workers go. Found by the simulator (seed 3191 of the worker mix): a plain server older
  // than the roll replaced the old workers while the roll went on; the failed roll started an
  // old worker again, which replaced the plain server (one worker of two once quiet).
  bool plain_serves = false;
  if (!superseded) {
    for (const auto& [id, s] : host_.servers()) note_old(*roll, *s);
    uint64_t newest = 0;
    for (const auto& [index, old] : roll->old) newest = std::max(newest, old.rank);
    for (const auto& [id, s] : host_.servers())
      if (s->serving() && is_old_copy(*roll, *s) && s->request.worker < 0 &&
          s->taken.size() < s->held.size() && s->rank >= newest)
        plain_serves = true;
    // Such a server that crashed, its crash loop going on, stands for every index as well: its
    // restart serves there next. Found by the simulator (seed 5364 of the worker mix): the
    // failed roll started an old worker again, which superseded the plain server's restart
    // (one worker of two once quiet).
    for (const auto& loop : host_.crash_loops())
      if (loop.request.worker < 0 && loop.rank >= newest && loop.rank < roll->first_generation &&
          std::any_of(loop.resources.begin(), loop.resources.end(),
                      [&](const std::string& name) { return roll->resources.count(name) > 0; }))
        plain_serves = true;
  }
  // An automatic rollback is undone to the crashing version wherever it knows it (its workers
  // or crash loops met at start, its restarts superseded since), even where none of that
  // version serves any more: its crash loop goes on, as after a failed rollback of one server.
  // Kept, what came up would leave the indices it failed at empty. Found by the simulator
  // (seeds 607 and 5134 of the worker mix): the rollback's worker superseded the crash restart
  // of its index, or started beside it, and failed; its worker that came up stayed, and the
  // other index was left empty.
  // Only where it knows the crashing version of every index where a worker of it came up: else
  // the indices it does not know would keep the rollback's workers beside the crashing
  // version's (seed 514), and it is undone as any roll.
  bool undo_rollback = roll->rollback && !roll->old.empty();
  for (const auto& [index, id] : roll->workers)
    if (const Server* s = find(id); s && s->state == ServerState::kUp && !roll->old.count(index))
      undo_rollback = false;
  bool restore = !superseded && !plain_serves && (old_copy_serves(*roll) || !up || undo_rollback);
  std::vector<std::string> restored;
  // Of `restored`, the indices whose old version has this roll's command line (argv and
  // working directory): what starts there runs the files on disk now, and after an in-place
  // update those are the failed release's, so it is not known to be the old version.
  std::vector<std::string> restarted_same;
  std::set<int> restoring;
  if (restore) {
    std::vector<std::pair<int, OldVersion>> todo;
    // An index where nothing serves (its old worker crashed, and its crash loop goes on) is
    // left to that loop: a restart of it may be starting already.
    // An index whose old worker's crash loop no longer goes on (a new worker of its command
    // and index took it over, or ended it) is started again too.
    // A server that is no worker stands for every index, and the old versions older than it
    // are what it replaced: only it is given back. Found by the simulator (seed 9107 of the
    // worker mix): a roll replaced a plain server that had replaced the old workers, failed, and
    // started both the plain server (index 0) and an old worker of index 1 again: one worker of
    // two once quiet, after the plain server came up and went.
    uint64_t plain_rank = 0;
    for (const auto& [index, old] : roll->old)
      if (old.request.worker < 0) plain_rank = std::max(plain_rank, old.rank);
    for (const auto& [index, old] : roll->old)
      if (old.rank >= plain_rank && !old_version_serves(*roll, index) &&
          (roll->replaced.count(index) || other_serves(*roll, index) ||
           !old_loop_goes_on(*roll, index)))
        todo.emplace_back(index, old);
    std::set<std::string> resources = roll->resources;
    uint64_t rank = roll->first_generation;
    for (const auto& [index, old] : todo) {
      bool same = old.request.argv == roll->request.argv && old.request.cwd == roll->request.cwd;
      (same ? restarted_same : restored).push_back(std::to_string(index));
      restoring.insert(index);
      host_.end_crash_loops(resources, rank, index);
      host_.restore(old.request, resources);
    }
  }
  // Starting servers may have changed the table; the roll itself is still there (reported).
  roll = find_roll(roll_id);
  if (!roll) return;
  // Superseded too: a new worker that came up and replaced nothing goes while an old copy
  // serves (found by the simulator: it stayed beside the old version, and when the deploy
  // that superseded the roll failed, two releases served once quiet).
  bool old_serves = old_copy_serves(*roll);
  // Superseded: a newer server that serves there (the old version a failed roll started again)
  // stands for the old release as an old copy would. Found by the simulator (seed 3047 of the
  // worker mix): a roll superseded when such a server replaced its worker 0 kept the crash loop
  // of its worker 1, which had replaced nothing: two releases once quiet.
  if (superseded && !old_serves)
    for (const auto& [id, s] : host_.servers())
      if (s->serving() && s->rank > roll->first_generation && !roll->concerns(id) &&
          !is_worker(*roll, *s) && s->taken.size() < s->held.size())
        for (const auto& [name, spelled] : s->held)
          if (roll->resources.count(name) && !s->taken.count(name)) old_serves = true;
  std::vector<std::pair<int, std::string>> workers(roll->workers.begin(), roll->workers.end());
  // The crash restarts of its workers that came up stand for them (not in `workers` yet).
  for (const auto& [id, s] : host_.servers())
    if (s->alive() && s->restarts > 0 && s->rank == roll->first_generation &&
        app_of(s->request) == roll->key && roll->workers.count(s->request.worker) &&
        roll->workers.at(s->request.worker) != id && !find(roll->workers.at(s->request.worker)))
      workers.emplace_back(s->request.worker, id);
  // Those still starting fail first (a crash restart of one that came up, as it would if up):
  // the roll is seen failing before any of its workers that came up goes. Superseded too:
  // found by the simulator (seed 5286 of the worker mix), the restart of a superseded roll's
  // worker that had replaced nothing came up beside the old release once the deploy that
  // superseded the roll failed (two releases once quiet).
  for (const auto& [index, id] : workers) {
    const Server* s = find(id);
    if (!s || !s->starting()) continue;
    bool goes =
        old_serves && (plain_serves || (!restoring.count(index) && !roll->replaced.count(index)));
    bool stand_in = roll->workers.count(index) && roll->workers.at(index) != id;
    if (!stand_in || goes) host_.fail(id, why);
  }
  for (const auto& [index, id] : workers) {
    const Server* s = find(id);
    if (!s || !s->alive()) continue;
    if (old_serves && s->state == ServerState::kUp &&
        (plain_serves || (!restoring.count(index) && !roll->replaced.count(index)))) {
      std::set<std::string> all;
      for (const auto& [name, spelled] : s->held) all.insert(name);
      host_.retire(id, all, why, nullptr);
    }
  }
  roll = find_roll(roll_id);
  if (!roll) return;
  // A new worker that came up and crashed goes as one that is up would (superseded too): its
  // crash loop ends (found by the simulator: its restart came up beside the old version, two
  // releases once quiet).
  if (old_serves)
    for (int index = 0; index < roll->plan.workers(); ++index)
      if (!restoring.count(index) && !roll->replaced.count(index))
        host_.end_crash_loops(roll->resources, roll->first_generation + 1, index,
                              roll->first_generation);
  // No old copy serves, and new workers that came up stay: the old version must not come
  // back beside them by a crash restart (found by the simulator: an old worker crashed
  // during the roll, and its restart served beside the new workers once quiet).
  // A new worker that came up and crashed, and whose crash loop goes on, is kept as an up one
  // would be. Found by the simulator (seed 3178 of the worker mix): its restart came up beside
  // the restart of an old worker that had crashed too (two releases once quiet).
  bool kept = false;
  for (const auto& [index, id] : workers)
    if (const Server* s = find(id); s && (s->state == ServerState::kUp || s->restarts > 0))
      kept = true;
  if (!superseded && !old_serves &&
      host_.crash_loops_in(roll->resources, roll->first_generation, roll->first_generation + 1))
    kept = true;
  if (!superseded && !old_serves && kept && restoring.empty()) {
    // The restarts of the loops it ends stop too, those that have not asked for the roll's
    // resources yet included. Found by the simulator (seed 1414 of the worker mix): an old
    // worker's restart of another command, started during the roll and holding nothing yet,
    // was no old copy, so it went on and came up beside the new workers (two releases).
    std::set<std::string> ended;
    for (const auto& loop : host_.crash_loops())
      if (loop.rank < roll->first_generation)
        for (const auto& name : loop.resources)
          if (roll->resources.count(name)) ended.insert(crash_key(loop.request));
    host_.end_crash_loops(roll->resources, roll->first_generation);
    std::vector<std::string> restarts;
    for (const auto& [id, s] : host_.servers())
      if (s->starting() && s->restarts > 0 &&
          (is_old_copy(*roll, *s) ||
           (s->rank < roll->first_generation && ended.count(crash_key(s->request)))))
        restarts.push_back(id);
    for (const auto& id : restarts) host_.fail(id, why);
    roll = find_roll(roll_id);
    if (!roll) return;
  }
  // True when said (issue 13, "True outcomes"): "the old version is started again" only for
  // an old version whose command line differs from this roll's; one with the same command
  // line is "the same command, started again", as its files may have changed in place.
  std::string text = why;
  if (!superseded && !old_serves && kept && restoring.empty()) {
    text += "; no old version serves, so the new workers that came up keep serving";
  } else if (!superseded) {
    // Old copies that serve (restored ones are still starting) run what they loaded.
    if (old_serves) text += "; the old version keeps serving";
    if (!restored.empty())
      text += std::string(old_serves ? " and" : "; the old version") +
              " is started again as worker " + join(restored, ", ");
    if (!restarted_same.empty())
      text += "; the same command is started again as worker " + join(restarted_same, ", ") +
              " (the old version's argv and working directory are this deploy's): it runs the "
              "files on disk now, which may be the new release's";
    if (!old_serves && restored.empty() && restarted_same.empty())
      text += "; no server of the old version serves now";
  }
  if (!superseded) {
    log_line("rollout of '" + join(roll->request.argv, " ") + "' failed: " + text);
    roll->sink(protocol::DeployFailed{std::nullopt, text, std::nullopt, std::nullopt}.encode());
  }
  rolls_.erase(roll_id);
}

// Some up old copy still serves: the new workers of a failed roll may go (the old version
// serves with its own count of workers). Without one (nothing was there to replace) they
// stay: nothing else would serve.
bool WorkerRolls::old_copy_serves(const Roll& roll) const {
  for (const auto& [id, s] : host_.servers())
    if (s->serving() && is_old_copy(roll, *s) && s->taken.size() < s->held.size() &&
        !rolled_back_to(roll, *s))
      return true;
  return false;
}

// Found by the simulator (seeds 736, 8877, 9690 of the worker mix): a rollback to the release
// of a superseded roll whose worker still served took that worker for the old version when it
// failed, and took its own workers of that same release down before anything newer was up.
bool WorkerRolls::rolled_back_to(const Roll& roll, const Server& server) const {
  return roll.rollback && server.request.argv == roll.request.argv &&
         server.request.cwd == roll.request.cwd && server.request.env == roll.request.env;
}

void WorkerRolls::note_old(Roll& roll, const Server& server) {
  if (!is_old_copy(roll, server)) return;
  // A crash restart stands for its index only while it may still come up: one that failed
  // (superseded, its loop ended) and has not exited yet is no old version. Found by the
  // simulator (seed 4818 of the worker mix): a later roll took such a restart of a superseded
  // roll's worker for the old version of its index and, when it failed, started that release
  // again beside the old one (two releases once quiet).
  if (!server.serving() && !(server.restarts > 0 && server.starting())) return;
  int index = std::max(server.request.worker, 0);
  // A worker of a superseded roll (or its crash restart) whose old version this roll inherited.
  if (auto from = roll.inherited_from.find(index);
      from != roll.inherited_from.end() && from->second == server.rank)
    return;
  auto it = roll.old.find(index);
  if (it != roll.old.end() && it->second.rank > server.rank) return;
  roll.old[index] = OldVersion{server.request, server.rank};
}

bool WorkerRolls::old_loop_goes_on(const Roll& roll, int index) const {
  auto old = roll.old.find(index);
  std::string key = old == roll.old.end() ? "" : command_line_key(old->second.request);
  for (const auto& loop : host_.crash_loops()) {
    if (loop.rank >= roll.first_generation || std::max(loop.request.worker, 0) != index) continue;
    // The crash loop of a superseded roll's worker whose old version this roll inherited
    // brings back that roll's release, not the old version (seed 8655).
    if (auto from = roll.inherited_from.find(index);
        from != roll.inherited_from.end() && from->second == loop.rank)
      continue;
    if (command_line_key(loop.request) == key) return true;
    for (const auto& name : loop.resources)
      if (roll.resources.count(name)) return true;
  }
  return false;
}

bool WorkerRolls::old_version_serves(const Roll& roll, int index) const {
  auto old = roll.old.find(index);
  if (old == roll.old.end()) return false;
  std::string key = command_line_key(old->second.request);
  for (const auto& [id, s] : host_.servers())
    if (s->serving() && is_old_copy(roll, *s) && std::max(s->request.worker, 0) == index &&
        command_line_key(s->request) == key && s->taken.size() < s->held.size())
      return true;
  return false;
}

bool WorkerRolls::other_serves(const Roll& roll, int index) const {
  for (const auto& [id, s] : host_.servers())
    if (s->serving() && (roll.concerns(id) || is_old_copy(roll, *s)) &&
        std::max(s->request.worker, 0) == index && s->taken.size() < s->held.size())
      return true;
  return false;
}

void WorkerRolls::exited(const Server& gone) {
  std::vector<uint64_t> affected;
  // Any exit may make room under --max-surge (an old copy that crashed, the workers of a
  // superseded roll): every roll in progress looks again.
  for (auto& [id, roll] : rolls_)
    if (roll->concerns(gone.id) || !roll->reported) affected.push_back(id);
  for (uint64_t id : affected) {
    Roll* roll = find_roll(id);
    if (!roll) continue;
    roll->draining.erase(gone.id);
    if (!roll->reported) {
      advance(id);
      check_done(id);
      continue;
    }
    // serverswap-deploy stays until the last of its workers has exited.
    bool any_alive = false;
    for (const auto& [index, worker] : roll->workers)
      if (const Server* s = find(worker); s && s->alive()) any_alive = true;
    if (any_alive) continue;
    bool replaced = gone.state == ServerState::kGone && gone.taken.size() == gone.held.size() &&
                    !gone.held.empty();
    roll->sink(protocol::ServerExited{gone.id, gone.pid, "every worker has exited",
                                      replaced && !roll->stopped_by, roll->stopped_by}
                   .encode());
    rolls_.erase(id);
  }
}

// Done once every new worker is up and every old copy it took down has exited.
void WorkerRolls::check_done(uint64_t roll_id) {
  Roll* roll = find_roll(roll_id);
  if (!roll || roll->reported || !roll->plan.all_up() || !roll->draining.empty()) return;
  // A worker that was up and crashed: done once its crash restart is up (roll_of).
  for (const auto& [index, id] : roll->workers)
    if (const Server* s = find(id); !s || s->state != ServerState::kUp) return;
  roll->reported = true;
  // Deployed: an old worker index beyond the new count is served by no one any more (its old
  // copy went with take_down_old_copy(-1)), so its crash loop ends too. Found by the simulator
  // (seed 5034 of the worker mix): the loop of an old worker 2 that crashed during a roll of 2
  // workers went on, and a later roll that failed took it for the old version of index 2 and
  // started it again beside the 2 workers of the deployed release (3 once quiet).
  std::set<int> beyond;
  for (const auto& loop : host_.crash_loops())
    if (loop.rank < roll->first_generation && loop.request.worker >= roll->plan.workers())
      for (const auto& name : loop.resources)
        if (roll->resources.count(name)) beyond.insert(loop.request.worker);
  for (int index : beyond) host_.end_crash_loops(roll->resources, roll->first_generation, index);
  std::vector<int64_t> pids;
  const Server* first = nullptr;
  for (const auto& [index, id] : roll->workers) {
    const Server* s = find(id);
    pids.push_back(s ? s->pid : 0);
    if (!first && s) first = s;
  }
  roll->sink(protocol::Deployed{first ? first->id : "", first ? first->pid : 0,
                                first ? static_cast<int64_t>(first->generation) : 0, pids,
                                roll->replaced_pids.get<std::vector<int64_t>>(), std::nullopt}
                 .encode());
  if (!roll->follow_exit) rolls_.erase(roll_id);
}

void WorkerRolls::stop() {
  stopped_ = true;
  for (auto& [id, roll] : rolls_)
    if (!roll->reported) {
      roll->reported = true;
      roll->sink(
          protocol::DeployFailed{std::nullopt, "the daemon is stopping", std::nullopt, std::nullopt}
              .encode());
    }
  rolls_.clear();
}

void WorkerRolls::stop_app(const std::string& app, const std::string& who) {
  std::vector<uint64_t> ended;
  for (auto& [id, roll] : rolls_) {
    if (roll->key != app) continue;
    roll->stopped_by = who;
    if (roll->reported) continue;
    roll->reported = true;
    undeployed_.insert(roll->first_generation);
    log_line("rollout of '" + join(roll->request.argv, " ") + "' stopped by " + who);
    roll->sink(
        protocol::DeployFailed{std::nullopt, "stopped by " + who, std::nullopt, false}.encode());
    ended.push_back(id);
  }
  for (uint64_t id : ended) rolls_.erase(id);
}

void WorkerRolls::concerned(const std::string& server_id, std::vector<Sink*>* sinks) {
  for (auto& [roll_id, roll] : rolls_)
    if (roll->concerns(server_id)) sinks->push_back(&roll->sink);
}

size_t WorkerRolls::in_flight() const {
  size_t n = 0;
  for (const auto& [id, roll] : rolls_) n += !roll->reported;
  return n;
}

}  // namespace serverswap::daemon
