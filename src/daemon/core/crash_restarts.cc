#include "daemon/core/crash_restarts.h"

#include <algorithm>
#include <cstdlib>

#include "base/join.h"
#include "base/log.h"
#include "daemon/core/apps.h"
#include "daemon/workers/worker_roll.h"

namespace serverswap::daemon {

using protocol::Json;

std::string crash_key(const SpawnSpec& request) {
  std::string key = app_of(request);
  if (request.worker >= 0) key.append(1, '\0').append(std::to_string(request.worker));
  return key;
}

CrashRestarts::CrashRestarts(Clock& clock, Host& host, Millis first, Millis max, Millis reset)
    : clock_(clock), host_(host), first_(first), max_(max), reset_(reset) {}

// An up server that exits without being taken down (a crash, or a clean exit nobody asked
// for), or a restart of a crash loop that failed, may leave its resources unserved.
void CrashRestarts::exited(const Server& gone, ServerState before) {
  bool crashed_while_up = before == ServerState::kUp;
  // A roll's new worker that failed before it was up is no restart and never served: it
  // neither continues the loop of its index nor takes it over (found by the simulator: it
  // did, and the loop started a second restart beside the one still starting, one release too
  // many once quiet). Its roll decides what serves there (WorkerRolls::failed).
  bool fresh_worker = gone.request.worker >= 0 && gone.restarts == 0;
  // Found by the simulator (seed 205 of the worker mix): a restart of an old worker,
  // superseded, ended the loop that a failed roll had just started for the old version of its
  // index (restore()), which then was not retried when it failed.
  auto loop = loops_.find(crash_key(gone.request));
  // Nor, before its first restart, a server of an older loop of the same key that failed
  // (seed 6517 of the worker mix: an old loop's superseded restart dropped the loop a later
  // deploy's crashed worker had just started, and that index was left empty).
  bool member =
      loop != loops_.end() && (loop->second->member.empty() ? gone.rank >= loop->second->rank
                                                            : loop->second->member == gone.id);
  bool loop_goes_on = !gone.failure.empty() && !fresh_worker && member;
  if (crashed_while_up || loop_goes_on || orphaned_worker(gone)) crashed(gone);
}

// A worker taken back from state.json that failed before it was up (it did not resume
// within --adopt-timeout, or was not up in time after it did), superseded by nothing: its
// roll died with the daemon, so nothing else would ever start its index again, and the app
// would stay a worker short for good (found by the simulator, seed 4 of the full mix). Its
// index is started again with the same command, as a crash restart would, unless another
// server (of any deploy) serves that index: a roll interrupted half-way keeps the old worker
// it had not replaced yet.
bool CrashRestarts::orphaned_worker(const Server& gone) const {
  if (!gone.taken_back || gone.request.worker < 0 || gone.failure.empty() ||
      gone.superseded_by != 0 || !gone.lost_to_app.empty())
    return false;
  // A loop of its index already goes on (Supervisor::start_missing_workers started it, or a
  // crash of it did): its own rules decide.
  if (loops_.count(crash_key(gone.request))) return false;
  std::set<std::string> resources;
  for (const auto& [name, spelled] : gone.held) resources.insert(name);
  return !served_elsewhere(resources, gone.id, gone.request.worker, 0);
}

// Restarts the command after its backoff unless another up server serves every resource it
// held. The listening sockets stay open meanwhile: new connections wait in their backlog.
void CrashRestarts::crashed(const Server& gone) {
  if (stopped_) return;
  std::string key = crash_key(gone.request);
  auto& loop = loops_[key];
  if (!loop) {
    loop = std::make_unique<Loop>(clock_, first_, max_);
    loop->request = gone.request;
    loop->rank = gone.rank;
    for (const auto& [name, spelled] : gone.held) loop->resources.insert(name);
  } else if (gone.rank > loop->rank) {
    // A later deploy of the same command line (and worker index) crashed while an older
    // one's loop went on: the restarts stand for the later deploy now. Found by the
    // simulator: a roll's worker crashed, its restart kept the older deploy order, and the
    // roll never counted it as its worker (no outcome, I4).
    loop->request = gone.request;
    loop->rank = gone.rank;
    loop->member.clear();  // the older deploy's restart no longer stands for it
    for (const auto& [name, spelled] : gone.held) loop->resources.insert(name);
  }
  // A restart lost its resources to a later deploy (the newest deploy wins): so would every
  // further one (found by the simulator: a loop without end, its resources unknown). Unless
  // it lost to a plain server still starting, which may yet fail: the loop goes on, and its
  // next restart is dropped if a later deploy is up there by then (restart()). Found by the
  // simulator (seed 7220 of the worker mix): the loop ended, the newer server failed, and the
  // index was left empty. A worker that wins stands for its index in its roll, which gives
  // the old version back if it fails (WorkerRolls::failed).
  // Likewise a restart refused a resource that another app serves now (--replace).
  if (gone.restarts > 0 && !gone.lost_to_app.empty()) {
    log_line("restart of '" + join(gone.request.argv, " ") + "' dropped: app " + gone.lost_to_app +
             " serves its resources now");
    loops_.erase(key);
    return;
  }
  if (gone.restarts > 0 && gone.superseded_by != 0 && !winner_starting(gone.superseded_by)) {
    log_line("restart of '" + join(gone.request.argv, " ") + "' dropped: " + gone.failure);
    loops_.erase(key);
    return;
  }
  if (served_elsewhere(loop->resources, gone.id, gone.request.worker, loop->rank)) {
    log_line("server " + std::to_string(gone.pid) +
             " exited; newer servers hold its resources, so it is not restarted");
    loops_.erase(key);
    return;
  }
  loop->reset_timer.stop();
  if (loop->restart_pending) return;  // a crash of an overtaking deploy: one restart is enough
  auto now = clock_.now();
  Millis delay = loop->backoff.crashed(now);
  host_.emit(gone, EventKind::kRestarting,
             join(gone.request.argv, " ") + " " + loop->backoff.describe(now, delay));
  schedule(*loop, key, delay);
}

void CrashRestarts::schedule(Loop& loop, const std::string& key, Millis delay) {
  loop.restart_pending = true;
  loop.next_restart = clock_.now() + delay;
  loop.restart_timer.start(delay, [this, key] { restart(key); });
}

void CrashRestarts::restart(const std::string& key) {
  auto it = loops_.find(key);
  if (it == loops_.end() || stopped_) return;
  Loop& loop = *it->second;
  loop.restart_pending = false;
  if (served_elsewhere(loop.resources, "", loop.request.worker, loop.rank)) {
    log_line("restart of '" + join(loop.request.argv, " ") + "' dropped: a newer server is up");
    loops_.erase(it);
    return;
  }
  // Another app serves one of its resources now (a deploy with --replace took it): the
  // restart would be refused it, so the loop is over.
  for (const auto& name : loop.resources)
    if (const Server* holder = other_apps_holder(host_.servers(), loop.request, name, nullptr)) {
      log_line("restart of '" + join(loop.request.argv, " ") + "' dropped: app " +
               app_of(holder->request) + " serves " + name + " now");
      loops_.erase(it);
      return;
    }
  // A later deploy is up on one of its resources: the restart could never come up (the
  // newest deploy wins), so the loop is over.
  for (const auto& entry : host_.servers()) {
    const Server& s = *entry.second;
    if (s.serving() && s.rank > loop.rank &&
        (s.request.worker < 0 || s.request.worker == loop.request.worker) &&
        std::any_of(loop.resources.begin(), loop.resources.end(),
                    [&s](const std::string& name) { return s.held.count(name) > 0; })) {
      log_line("restart of '" + join(loop.request.argv, " ") + "' dropped: generation " +
               std::to_string(s.generation) + ", a later deploy, serves its resources");
      loops_.erase(it);
      return;
    }
  }
  const Server* deploying = loop.request.worker < 0 ? deploy_in_progress(loop.request) : nullptr;
  if (deploying) {
    // Its failure comes back here through exited(), its success ends the loop.
    log_line("restart of '" + join(loop.request.argv, " ") +
             "' left to the deploy in progress (pid " + std::to_string(deploying->pid) + ")");
    loop.member = deploying->id;
    return;
  }
  // Copied: a restart that fails at once may come back here through exited().
  SpawnSpec request = loop.request;
  const Server* started = host_.start_restart(request, loop.rank, loop.restarts + 1);
  if (!started) {
    it = loops_.find(key);
    if (it == loops_.end()) return;
    back_off_unspawned(*it->second, key, "restart");
    return;
  }
  if (it = loops_.find(key); it != loops_.end()) {
    ++it->second->restarts;
    it->second->member = started->id;
  }
}

// Found by the simulator (seed 338 of the worker mix): the old version started again by a
// failed roll failed before it was up and nothing started it again; the failed roll's new
// worker stayed at that index beside the old version on the others (two releases once quiet).
void CrashRestarts::restore(const SpawnSpec& request, const std::set<std::string>& resources,
                            uint64_t rank) {
  if (stopped_) return;
  std::string key = crash_key(request);
  auto loop = std::make_unique<Loop>(clock_, first_, max_);
  loop->request = request;
  loop->rank = rank;
  loop->resources = resources;
  loops_[key] = std::move(loop);
  SpawnSpec copy = request;  // a start that fails at once may come back here through exited()
  const Server* started = host_.start_restart(copy, rank, 1);
  auto it = loops_.find(key);
  if (it == loops_.end()) return;
  if (started) {
    it->second->restarts = 1;
    it->second->member = started->id;
    return;
  }
  // Not "of the old version": with the roll's own command line it runs what is on disk now.
  back_off_unspawned(*it->second, key, "start again");
}

// Not even spawned (the program is gone): backs off as for a crash, and says so.
void CrashRestarts::back_off_unspawned(Loop& loop, const std::string& key,
                                       const std::string& what) {
  auto now = clock_.now();
  Millis delay = loop.backoff.crashed(now);
  // Said as what happened: it was never started, so it did not crash (it is counted as one).
  log_line("could not " + what + " '" + join(loop.request.argv, " ") +
           "' (counted as a crash: " + loop.backoff.describe(now, delay) + ")");
  schedule(loop, key, delay);
}

void CrashRestarts::up(const Server& server) {
  std::string key = crash_key(server.request);
  auto it = loops_.find(key);
  if (it == loops_.end()) return;
  // A deploy (not a restart) of the command is up: whatever it runs now, the loop of the
  // earlier crashes is over, and a crash of it starts with the first delay again. Before, a
  // release that crashed after a crash-looping one was deployed over met the old loop's
  // count and backoff ("crashed 5 times in 15s; next restart in 1.6s"). Workers keep the
  // rule of --restart-reset: their rolls hand loops over between indexes (restore()).
  if (server.restarts == 0 && server.request.worker < 0) {
    host_.emit(server, EventKind::kStable,
               "a deploy of it is up: the crash loop of its command is over");
    loops_.erase(it);
    return;
  }
  // A restart of an older deploy, started before a later deploy's worker of the command and
  // index crashed and took the loop over, does not stand for the loop: the later deploy's
  // restart is still owed (its roll counts it as its worker). Found by the simulator (seed 9114
  // of the worker mix): the old restart came up, cancelled that restart and ended the loop, and
  // the roll waited for its crashed worker for ever (no outcome, I4).
  if (server.rank < it->second->rank) return;
  it->second->restart_timer.stop();
  it->second->restart_pending = false;
  std::string id = server.id;
  it->second->reset_timer.start(reset_, [this, key, id] {
    const Server* s = find(id);
    if (!s || s->state != ServerState::kUp) return;
    host_.emit(*s, EventKind::kStable,
               "stayed up for " + format_duration(reset_) + ": the crash loop is over");
    loops_.erase(key);  // destroys this timer; its handle closes later
  });
}

bool CrashRestarts::has_loop_of(const std::string& app) const {
  return std::any_of(loops_.begin(), loops_.end(),
                     [&](const auto& entry) { return app_of(entry.second->request) == app; });
}

void CrashRestarts::end_app(const std::string& app) {
  std::erase_if(loops_, [&](const auto& entry) { return app_of(entry.second->request) == app; });
}

void CrashRestarts::stop() {
  stopped_ = true;
  loops_.clear();  // cancels pending restarts
}

void CrashRestarts::end_loops(const std::set<std::string>& resources, uint64_t rank, int worker,
                              uint64_t from) {
  std::erase_if(loops_, [&](const auto& entry) {
    const Loop& loop = *entry.second;
    if (loop.rank >= rank || loop.rank < from) return false;
    if (worker >= 0 && std::max(loop.request.worker, 0) != worker) return false;
    for (const auto& name : loop.resources)
      if (resources.count(name)) {
        log_line("crash loop of '" + join(loop.request.argv, " ") +
                 "' ended: a newer release serves its resources");
        return true;
      }
    return false;
  });
}

bool CrashRestarts::served_elsewhere(const std::set<std::string>& resources,
                                     const std::string& except, int worker, uint64_t rank) const {
  if (resources.empty()) return false;
  for (const auto& name : resources) {
    bool served = false;
    for (const auto& [id, s] : host_.servers())
      if (id != except && s->serving() && s->held.count(name) && !s->taken.count(name) &&
          (worker < 0 || s->request.worker == worker) && s->rank >= rank)
        served = true;
    if (!served) return false;
  }
  return true;
}

const Server* CrashRestarts::deploy_in_progress(const SpawnSpec& request) const {
  std::string key = app_of(request);
  for (const auto& [id, s] : host_.servers())
    if (s->starting() && s->restarts == 0 && app_of(s->request) == key) return s.get();
  return nullptr;
}

bool CrashRestarts::winner_starting(uint64_t generation) const {
  for (const auto& [id, s] : host_.servers())
    if (s->generation == generation) return s->starting() && s->request.worker < 0;
  return false;
}

const Server* CrashRestarts::find(const std::string& id) const {
  auto it = host_.servers().find(id);
  return it == host_.servers().end() ? nullptr : it->second.get();
}

std::vector<CrashLoopView> CrashRestarts::loops() const {
  std::vector<CrashLoopView> views;
  for (const auto& [key, loop] : loops_)
    views.push_back({loop->request, loop->rank, loop->resources});
  return views;
}

bool CrashRestarts::loops_in(const std::set<std::string>& resources, uint64_t from,
                             uint64_t below) const {
  for (const auto& [key, loop] : loops_)
    if (loop->rank >= from && loop->rank < below)
      for (const auto& name : loop->resources)
        if (resources.count(name)) return true;
  return false;
}

bool CrashRestarts::wants(const std::string& name) const {
  for (const auto& [key, loop] : loops_) {
    if (!loop->resources.count(name)) continue;
    if (loop->restart_pending) return true;
    for (const auto& [id, s] : host_.servers())
      if (s->alive() && crash_key(s->request) == key) return true;
  }
  return false;
}

std::vector<protocol::CrashLoopStatus> CrashRestarts::status() const {
  std::vector<protocol::CrashLoopStatus> loops;
  auto now = clock_.now();
  for (const auto& [key, loop] : loops_) {
    protocol::CrashLoopStatus entry;
    entry.app = app_of(loop->request);
    entry.argv = loop->request.argv;
    entry.cwd = loop->request.cwd;
    entry.crashes = loop->backoff.crashes();
    entry.restarts = loop->restarts;
    // No crash yet (the old version a failed roll started again): no first crash to count
    // from (it was the clock's epoch: "crashed 0 times in 23h12m").
    entry.since_ms = entry.crashes == 0 ? 0
                                        : std::chrono::duration_cast<std::chrono::milliseconds>(
                                              now - loop->backoff.first_crash())
                                              .count();
    if (loop->request.worker >= 0) entry.worker = loop->request.worker;
    if (loop->restart_pending)
      entry.next_restart_ms = std::max<long long>(
          0,
          std::chrono::duration_cast<std::chrono::milliseconds>(loop->next_restart - now).count());
    loops.push_back(entry);
  }
  return loops;
}

}  // namespace serverswap::daemon
