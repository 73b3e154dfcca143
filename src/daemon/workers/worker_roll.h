// WorkerRolls: the Supervisor's collaborator for rolling deploys of `--workers N`
// (docs/architecture.md, "Workers and rolling deploys" and "Collaborators"). It owns every
// roll in progress (the new request, its RolloutPlan, the new workers by index, the old
// copies it took down that are still alive, the old request of each replaced index) and
// its one outcome. The Supervisor calls it at named hooks (start, worker_up, exited, stop);
// it reads the server table and acts on servers only through its narrow Host. Loop thread
// only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/core/crash_restarts.h"
#include "daemon/core/event_kind.h"
#include "daemon/core/server.h"
#include "daemon/workers/rollout.h"
#include "protocol/message.h"
#include "protocol/resource.h"

namespace serverswap::daemon {

class WorkerRolls {
 public:
  using Sink = std::function<void(const protocol::Json&)>;
  using ServerTable = std::map<std::string, std::unique_ptr<Server>>;

  // What the rolls need of their owner, and all they may do to it.
  class Host {
   public:
    // The servers, read only.
    virtual const ServerTable& servers() const = 0;
    // The generation the next server started will have.
    virtual uint64_t next_generation() const = 0;
    // Starts `request` as a deploy of its own whose messages go to `sink`, of deploy order
    // `rank` (0: its own generation); nullptr when it could not start (`sink` has been told
    // why).
    virtual const Server* start(const SpawnSpec& request, Sink sink, uint64_t rank) = 0;
    // Takes server `id` down on `resources` (`by`: the newer server it is replaced by, or
    // nullptr), and lets it drain if it then still serves (it held nothing else the roll
    // shares).
    virtual void retire(const std::string& id, const std::set<std::string>& resources,
                        const std::string& why, const Server* by) = 0;
    // Server `id`, still starting, fails with `why`.
    virtual void fail(const std::string& id, const std::string& why) = 0;
    // Crash loops of servers of deploy order below `rank` on any of `resources` (with
    // `worker` >= 0: of that worker index only) end: their pending restarts are cancelled (the
    // new workers of a failed roll, or the old version started again, serve there instead).
    // `from`: of deploy order `from` or later only.
    virtual void end_crash_loops(const std::set<std::string>& resources, uint64_t rank,
                                 int worker = -1, uint64_t from = 0) = 0;
    // Starts `request`, the old version of worker index `request.worker`, again (deploy order:
    // its own generation) as a restart of that index's crash loop, so that it is started
    // once more by the crash-loop rules if it fails before it is up or crashes
    // (CrashRestarts::restore). `resources`: the canonical names the index serves.
    virtual void restore(const SpawnSpec& request, const std::set<std::string>& resources) = 0;
    // The crash loops that go on.
    virtual std::vector<CrashLoopView> crash_loops() const = 0;
    // Whether a crash loop of deploy order in [`from`, `below`) on any of `resources` goes on
    // (its restart pending or starting).
    virtual bool crash_loops_in(const std::set<std::string>& resources, uint64_t from,
                                uint64_t below) const = 0;
    virtual void emit(const Server& server, EventKind kind, const std::string& text) = 0;

   protected:
    ~Host() = default;
  };

  // `host` must outlive it.
  explicit WorkerRolls(Host& host) : host_(host) {}

  // Hook: deploy() of a request with `workers`. Refused (deployFailed to `sink`) when its
  // limits are invalid. A roll of the same command in progress is superseded by it (the
  // newest deploy wins; docs/architecture.md).
  void start(const SpawnSpec& request, Sink sink, bool follow_exit);
  // The roll of app `app` just started is an automatic rollback (Supervisor::
  // roll_back_if_crash_looping): when it fails, every index it replaced gets the crashing
  // version back, whose crash loop goes on, even where none of that version serves any more.
  void rolling_back(const std::string& app);
  // Whether `server` is a worker of a roll in progress: its coming up is the roll's step,
  // not the ordinary takedown rule.
  bool in_roll(const Server& server) const;
  // Hook: holds(). `server` was handed resource `name`: a roll learns its resources from its
  // workers (old copies of a changed command are recognised by them, and counted against
  // --max-surge).
  void holds(const Server& server, const std::string& name);
  // Hook: become_up() of a server in_roll(): the old copies its batch replaces go, and the
  // next batch starts.
  void worker_up(const Server& server);
  // Hook: supersede(). `older`, still starting, loses to `newer` (`why`: "superseded by
  // generation N"). A roll whose worker (or the crash restart standing in for it) loses is
  // superseded at once; a crash restart of an old copy that a roll's worker supersedes counts as
  // replaced by that roll (a failed roll starts it again).
  void superseded(const Server& older, const Server& newer, const std::string& why);
  // Hook: a crash restart (or a restored old version) `server` has started. A restart of an
  // old copy started during a roll is the old version of its index (a failed roll gives it
  // back).
  void restart_started(const Server& server);
  // Hook: take_down() by a newer server `by`. A roll whose worker (or the restart standing for
  // it) `victim` is taken down by a server that is not its own could never complete: it is
  // superseded.
  void taken_down(const Server& victim, const Server& by);
  // Hook: become_up() of a server not in_roll(). A server that is no worker, of a later deploy
  // than a roll in progress, is up on one of the roll's resources: it stands for every worker
  // index there, so the roll could never complete and is superseded (the newest deploy wins).
  void newer_up(const Server& server);
  // Hook: exited(). `gone` has exited and left the table.
  void exited(const Server& gone);
  // Hook: stop(). Rolls in progress fail ("the daemon is stopping"); no more steps.
  void stop();
  // Hook: stop_app(). The rolls of app `app` end, its servers stopped by `who` ("serverswap
  // stop web"): one without its outcome fails now ("stopped by serverswap stop web"; nothing is
  // started again, the app is being stopped) and takes no more steps; one in deploy mode that
  // was deployed is told who stopped its workers when the last exits (serverExited
  // "stoppedBy"). The caller stops the app's servers, the roll's workers among them.
  void stop_app(const std::string& app, const std::string& who);

  // For emit(): appends the sinks of the rolls an event of `server_id` concerns.
  void concerned(const std::string& server_id, std::vector<Sink*>* sinks);
  // Rolls that have not sent their outcome yet.
  size_t in_flight() const;

 private:
  // The old version of one worker index (docs/architecture.md, "Workers and rolling
  // deploys"): the request of the newest old copy that served there, or stood for it as a
  // crash restart, when the roll met it (a newer old copy met later replaces it).
  struct OldVersion {
    SpawnSpec request;
    uint64_t rank = 0;
  };

  // One rolling deploy in progress; the order comes from RolloutPlan.
  struct Roll {
    Roll(RolloutLimits limits, bool replacing) : plan(limits, replacing) {}

    uint64_t id = 0;
    SpawnSpec request;  // the new version; each worker gets `worker` set
    std::string key;    // app_of(request): the app it rolls
    Sink sink;
    bool follow_exit = false;
    RolloutPlan plan;
    uint64_t first_generation = 0;       // servers older than this may be its old copies
    std::set<std::string> resources;     // canonical names its workers hold
    std::map<int, std::string> workers;  // index -> id of the new worker
    std::set<std::string> draining;      // old copies it took down, still alive
    std::map<int, SpawnSpec> replaced;   // index -> request of the old copy taken down
    std::map<int, OldVersion> old;       // index -> its old version, given back on a failure
    // index -> deploy order of a superseded roll of its command whose old version of the index
    // it took over: that roll's workers there are not the old version.
    std::map<int, uint64_t> inherited_from;
    protocol::Json replaced_pids = protocol::Json::array();
    bool rollback = false;                  // an automatic rollback (rolling_back())
    bool reported = false;                  // deployed or deployFailed sent
    std::optional<std::string> stopped_by;  // stop_app(): who stopped its workers

    bool concerns(const std::string& server_id) const {
      if (draining.count(server_id)) return true;
      for (const auto& [index, worker_id] : workers)
        if (worker_id == server_id) return true;
      return false;
    }
  };

  Roll* find_roll(uint64_t id);
  Roll* roll_of(const Server& server);
  const Roll* roll_of(const Server& server) const;
  bool is_worker(const Roll& roll, const Server& server) const;
  const Server* find(const std::string& id) const;
  // A server the roll replaces: older than it, not one of its workers, and of the same
  // command or on the resources its workers hold.
  bool is_old_copy(const Roll& roll, const Server& server) const;
  // What --max-surge counts: old copies (draining ones too) and new workers, while alive.
  int processes_alive(const Roll& roll) const;
  void advance(uint64_t roll_id);
  void worker_message(uint64_t roll_id, int index, const protocol::Json& message);
  void take_down_old_copy(Roll& roll, int index, const Server& newer);
  // `superseded`: a newer deploy won (docs/architecture.md, "The newest deploy wins").
  void failed(uint64_t roll_id, const std::string& reason, bool superseded = false);
  bool old_copy_serves(const Roll& roll) const;
  // `server` runs the version an automatic rollback `roll` goes back to: no old version of it.
  bool rolled_back_to(const Roll& roll, const Server& server) const;
  // `winner` supersedes `loser` on a shared resource: it takes over the loser's old version of
  // each index when the loser knows the old version of every index where a worker of it serves.
  void inherit(Roll& winner, const Roll& loser);
  // Deploy order `rank` is a roll that failed or was superseded and none of whose servers
  // serves any more: no release to go back to. One whose workers still serve is the release
  // there (seed 683 of the worker mix).
  bool gone_release(uint64_t rank) const;
  // Records `server` as the old version of its index when it is an old copy that serves (or
  // a crash restart standing for one) and newer than what was recorded.
  void note_old(Roll& roll, const Server& server);
  // A crash loop of an old copy (deploy order below the roll's) goes on at index `index`, of
  // the old version's command or on the roll's resources: it brings the old version back.
  bool old_loop_goes_on(const Roll& roll, int index) const;
  // An up old copy running the old version's command serves index `index`.
  bool old_version_serves(const Roll& roll, int index) const;
  // Some up server of the roll, or an old copy, serves index `index` (not the old version
  // when old_version_serves() is false).
  bool other_serves(const Roll& roll, int index) const;
  void check_done(uint64_t roll_id);

  Host& host_;
  bool stopped_ = false;
  std::map<uint64_t, std::unique_ptr<Roll>> rolls_;  // by their id
  uint64_t next_roll_ = 1;
  // Deploy orders of the rolls that failed or were superseded (never deployed).
  std::set<uint64_t> undeployed_;
};

}  // namespace serverswap::daemon
