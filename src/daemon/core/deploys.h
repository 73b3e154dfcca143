// Deploys: the Supervisor's collaborator for deploy bookkeeping (docs/architecture.md,
// "Collaborators"). One record per deploy of one server, by the id of the server it started:
// who is waiting (its sink), which older servers it waits for, and its one outcome
// (`deployed`, `deployFailed`, then with follow_exit `serverExited`). It owns that state
// alone; the Supervisor calls it at named hooks and it never calls back. Its sinks may
// re-enter the Supervisor (a worker's sink is its roll's), so each hook finishes its own
// bookkeeping for one record before the next sink runs. Loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/core/server.h"
#include "protocol/message.h"

namespace serverswap::daemon {

class Deploys {
 public:
  using Sink = std::function<void(const protocol::Json&)>;

  // Hook: start_server spawned `server` (its id, pid and generation are set) for a deploy
  // whose progress goes to `sink`.
  void started(const Server& server, Sink sink, bool follow_exit);
  // Hook: become_up. Its server is up (it may be draining or gone by the time the deploy
  // reports).
  void up(const std::string& server_id);
  // Hook: replace(). The deploy of `deploy_id` (if any) now waits for `victim` to exit.
  // Returns whether it was counted (false: no such deploy, or already counted), so that
  // a victim that does not drain can be uncounted by not_replacing().
  bool replacing(const std::string& deploy_id, const Server& victim);
  void not_replacing(const std::string& deploy_id, const std::string& victim_id);
  // Hook: take_down() by a newer server of generation `by`. A deploy of `server_id` that has
  // not reported yet (the servers it replaced are still draining) never will succeed now: it
  // is failed as superseded.
  void superseded(const std::string& server_id, uint64_t by);
  // Hook: keep_serving(). The deploy of `server_id`, if it has not reported yet, fails with
  // `reason` although its server stays (it serves what it took over with `serving`).
  void failed(const std::string& server_id, const std::string& reason);
  // Hook: stop_app() and stop(). The server of `server_id` is being stopped by `who`
  // ("serverswap stop web"), not replaced by a newer deploy: a deploy without its outcome
  // fails now ("stopped by serverswap stop web", othersServing false: the app's other
  // servers are stopped too), and one in deploy mode is told who stopped its server when it
  // exits (serverExited "stoppedBy", instead of "replaced").
  void stopped(const std::string& server_id, const std::string& who);
  // Hook: exited(). `server` has exited (`description`: how), `replaced`: it was draining.
  // Its deploy reports (failure, or serverExited); deploys that waited for it may be done.
  // `others_serving`: whether an older server serves its resources untouched now (said in a
  // failure, deployFailed's "othersServing"); nullopt when not known.
  void exited(const Server& server, const std::string& description, bool replaced,
              std::optional<bool> others_serving = std::nullopt);
  // Hook: the end of exited(), once crash restarts and rollbacks have decided what follows
  // the exit of `server_id`. A deploy in deploy mode whose server crashed is sent its
  // serverExited now: the events that said what follows went to it first.
  void exit_handled(const std::string& server_id);
  // Sends `deployed` if the deploy of `server_id` is done: its server came up and every server
  // it replaced has exited. Idempotent.
  void check(const std::string& server_id);

  // For emit(): appends the sinks of the deploys an event of `server_id` concerns (the one
  // that started it, the ones replacing it) to `sinks`, and returns the generation of the
  // deploy a log line is about (0: none).
  uint64_t concerned(const std::string& server_id, std::vector<Sink*>* sinks);
  // Deploys that have not sent their outcome yet.
  size_t in_flight() const;

 private:
  enum class Outcome {
    kPending,   // nothing sent yet
    kDeployed,  // `deployed` sent (serverExited may follow)
    kFailed,    // `deployFailed` sent
  };
  struct Record {
    Sink sink;
    bool follow_exit = false;
    std::set<std::string> replacing;  // ids of the older servers it takes down, still alive
    protocol::Json replaced = protocol::Json::array();  // pids of those it took down
    Outcome outcome = Outcome::kPending;
    bool up = false;  // its server came up (it may be draining or gone since)
    pid_t pid = 0;
    uint64_t generation = 0;
    // Its server was replaced and exited before the servers it replaced had: the
    // serverExited to send after `deployed`.
    protocol::Json server_exited;
    std::optional<std::string> stopped_by;  // stopped(): who stopped its server
    // Its server crashed after its outcome: `server_exited` goes at exit_handled().
    bool exit_handled_later = false;
  };

  std::map<std::string, Record> records_;  // by the id of the server it started
};

}  // namespace serverswap::daemon
