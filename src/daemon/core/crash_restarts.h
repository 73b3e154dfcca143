// CrashRestarts: the Supervisor's collaborator for crash restarts and crash loops
// (docs/architecture.md, "Collaborators" and the fault "The only server crashes"). An up
// server that exits without being taken down, and whose resources no other up server
// serves, is started again after a CrashBackoff; restarts of one command (and worker index)
// form a crash loop, which a restart that stays up for `reset` ends. It owns the crash loops
// (their backoff, restart count and timers) alone. The Supervisor calls it at named hooks;
// it reads the server table and starts a restart only through its narrow Host. Loop thread
// only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/duration.h"
#include "daemon/core/clock.h"
#include "daemon/core/crash_backoff.h"
#include "daemon/core/event_kind.h"
#include "daemon/core/server.h"
#include "protocol/control_replies.h"
#include "protocol/message.h"

namespace serverswap::daemon {

// A crash loop is per command (argv and cwd) and, for workers, per worker index.
std::string crash_key(const SpawnSpec& request);

// What a crash loop stands for (CrashRestarts::loops()).
struct CrashLoopView {
  SpawnSpec request;                // what it starts again
  uint64_t rank = 0;                // the deploy order its restarts rank by
  std::set<std::string> resources;  // canonical names the crashed server held
};

class CrashRestarts {
 public:
  using ServerTable = std::map<std::string, std::unique_ptr<Server>>;

  // What the crash restarts need of their owner, and all they may do to it.
  class Host {
   public:
    // The servers, read only.
    virtual const ServerTable& servers() const = 0;
    // Starts `request` again, ranked `rank` (the crashed server's deploy order), as the
    // `number`th restart of its loop; nullptr when it could not even be spawned.
    virtual const Server* start_restart(const SpawnSpec& request, uint64_t rank, int number) = 0;
    virtual void emit(const Server& server, EventKind kind, const std::string& text) = 0;

   protected:
    ~Host() = default;
  };

  // Delays in milliseconds: the first restart after `first`, each further one of a loop after
  // twice the last, at most `max`; a restart up for `reset` ends its loop. `clock` and `host`
  // must outlive it.
  CrashRestarts(Clock& clock, Host& host, Millis first, Millis max, Millis reset);

  // Hook: exited(). `gone` has exited and left the table; `before`: its state until then. An
  // up server (a crash), or a failed restart of a loop, is restarted after its backoff unless
  // another up server serves every resource it held.
  void exited(const Server& gone, ServerState before);
  // Hook: become_up(). A server of a crash-looping command is up: once it has stayed up for
  // `reset`, the loop is over and the next crash starts the backoff afresh; at once when a
  // deploy (not a restart) started it, and it is no worker.
  void up(const Server& server);
  // Hook: stop(). Pending restarts are cancelled, and no crash is restarted any more.
  void stop();
  // `stop APP`: whether `app` has a crash loop, and ending its loops (pending restarts
  // cancelled).
  bool has_loop_of(const std::string& app) const;
  void end_app(const std::string& app);
  // The loops of deploy order below `rank` on any of `resources` are over (their pending
  // restarts cancelled): a newer release serves there (WorkerRolls, a failed roll that keeps
  // its workers, or starts the old version again on an index); `worker` >= 0: only the loops
  // of that worker index; `from`: of deploy order `from` or later only.
  void end_loops(const std::set<std::string>& resources, uint64_t rank, int worker = -1,
                 uint64_t from = 0);

  // A failed roll gives worker index `request.worker` its old version back (WorkerRolls): it
  // starts `request` now, ranked `rank` (its own generation), as the first restart of a crash
  // loop of its own that replaces the loop of its command and index (the start stands for
  // it). So if it fails before it is up, or crashes, it is restarted by the rules of any crash
  // loop. `resources`: the canonical names the index serves.
  void restore(const SpawnSpec& request, const std::set<std::string>& resources, uint64_t rank);

  // The crash loops that go on.
  std::vector<CrashLoopView> loops() const;
  // Whether a loop of deploy order in [`from`, `below`) on any of `resources` goes on.
  bool loops_in(const std::set<std::string>& resources, uint64_t from, uint64_t below) const;

  // Whether a pending restart, or a restart started and not yet asking again, wants the
  // listening socket `name` kept open.
  bool wants(const std::string& name) const;
  // `status`'s crashLoops: the command, its crashes, restarts, and the pending restart if any.
  std::vector<protocol::CrashLoopStatus> status() const;

 private:
  // A crash loop of one command: restarts of the last command that came up on resources
  // that nothing else serves, spaced by a CrashBackoff.
  struct Loop {
    Loop(Clock& clock, Millis first, Millis max)
        : backoff(first, max), restart_timer(clock), reset_timer(clock) {}
    SpawnSpec request;
    uint64_t rank = 0;                // the crashed server's: its restarts rank as it did
    std::set<std::string> resources;  // canonical names the crashed server held
    CrashBackoff backoff;
    int restarts = 0;
    // The server that stands for the loop now (its last restart, or the deploy in progress it
    // was left to): only its failure continues the loop, not that of a restart of an earlier
    // loop of the same key that restore() replaced.
    std::string member;
    std::chrono::steady_clock::time_point next_restart;
    bool restart_pending = false;
    Timer restart_timer;  // the next restart
    Timer reset_timer;    // a restart stayed up for `reset`: the loop is over
  };

  void crashed(const Server& gone);
  bool orphaned_worker(const Server& gone) const;
  void restart(const std::string& key);
  void schedule(Loop& loop, const std::string& key, Millis delay);
  void back_off_unspawned(Loop& loop, const std::string& key, const std::string& what);
  // Every one of `resources` is held, not yet handed over, by an up server other than
  // `except` of deploy order `rank` or later (for a worker: with the same index; its
  // siblings do not stand in for it, nor does an older release for a newer one that crashed).
  bool served_elsewhere(const std::set<std::string>& resources, const std::string& except,
                        int worker, uint64_t rank) const;
  // A server of the same command, started by a deploy (not by a crash restart), not up yet.
  const Server* deploy_in_progress(const SpawnSpec& request) const;
  const Server* find(const std::string& id) const;
  // Whether the server of `generation` (the deploy that superseded a restart) is no worker
  // and still starting.
  bool winner_starting(uint64_t generation) const;

  Clock& clock_;
  Host& host_;
  Millis first_;
  Millis max_;
  Millis reset_;
  bool stopped_ = false;
  std::map<std::string, std::unique_ptr<Loop>> loops_;  // by crash_key()
};

}  // namespace serverswap::daemon
