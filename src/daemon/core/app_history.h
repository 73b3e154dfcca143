// AppHistory: the Supervisor's collaborator that remembers each app's good versions and
// decides automatic rollbacks (docs/architecture.md, "Apps: versions and rollback").
//
// A version is what a deploy ran (argv, working directory as the user named it, environment,
// settings). It becomes the app's current version when a server of it, started by a deploy
// (not by a crash restart), is up past its confirmation window; the version it followed is
// kept as the previous good one. `rollback APP` deploys the previous version again; and when
// the current version crashes `kCrashesToRollBack` times within the rollback window after it
// was put in place, the Supervisor deploys the previous one on its own (Kubernetes' `rollout
// undo`, made automatic). It owns the versions alone; the Supervisor calls it at named hooks
// and it never calls back. Loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "daemon/core/clock.h"
#include "daemon/core/server.h"
#include "daemon/core/spawn_spec.h"
#include "daemon/restart/state_file.h"
#include "protocol/control_replies.h"

namespace serverswap::daemon {

// Versions kept per app: the current one and two before it (a rollback, and a rollback of
// that). Each keeps its deploy request; its environment is shared with the servers and
// versions that have an equal one.
inline constexpr size_t kVersionsKept = 3;
// Crashes of the current version within the rollback window that roll it back.
inline constexpr int kCrashesToRollBack = 2;

class AppHistory {
 public:
  // `rollback_window`: how long after a version was put in place its crashes count toward an
  // automatic rollback; 0: never roll back automatically. `clock` must outlive it.
  AppHistory(Clock& clock, Millis rollback_window)
      : clock_(clock), rollback_window_(rollback_window) {}

  // What a rollback deploys, and why.
  struct Rollback {
    SpawnSpec to;              // the previous good version's request (worker -1, no --replace)
    uint64_t to_generation;    // the generation that put it in place
    uint64_t from_generation;  // the generation that put the bad version in place
    std::string reason;        // "generation 7 crashed 2 times within 60s of being put in place"
  };

  // Hook: become_up. `server` is up past its window; when a deploy (not a crash restart)
  // started it, its version becomes the app's current one.
  void up(const Server& server);
  // Hook: exited(). `gone` of app A exited: `crashed` when it was up and nobody took it down,
  // or a crash restart that died by itself before it was up. A crash of A's current version
  // within the rollback window counts; at the kCrashesToRollBack'th, when A has a previous
  // version that differs, the current version is dropped from the history and the Rollback
  // returned (the Supervisor deploys it). Otherwise nullopt (`why_not`, when given, says why
  // a due rollback is not done: no earlier version).
  std::optional<Rollback> crashed(const Server& gone, std::string* why_not = nullptr);
  // The deploy of `app`'s last automatic rollback failed (`reason`): status says so.
  void rollback_failed(const std::string& app, const std::string& reason);
  // `rollback APP`: the previous good version, or an error that says why there is none
  // ("app web has one version: nothing to roll back to"). Not removed: once it is up it
  // becomes current again, and a second rollback returns to the version left (kubectl's
  // `rollout undo`).
  Result<Rollback> previous(const std::string& app) const;
  // `restart APP`: the current version, or an error ("no version of app web has been up").
  Result<SpawnSpec> current(const std::string& app) const;
  // Whether `app` has a version (it ran once, and was not removed).
  bool knows(const std::string& app) const { return apps_.count(app) > 0; }
  // `rm APP`: its versions are forgotten.
  void forget(const std::string& app) { apps_.erase(app); }
  // For `status`: each app's current generation and its last rollback, if any, and the
  // versions of `versions_of` (status APP; empty: none).
  std::vector<protocol::AppStatus> status(const std::string& versions_of = "") const;

  // For the state file: each app's versions (oldest first) and its last automatic rollback.
  std::vector<AppRecord> record() const;
  // A daemon that resumes from the state file (restarted after SIGKILL, or `serverswap
  // upgrade`) knows the apps' versions again; called before any server is taken back. Each
  // app's versions replace what it had. A restored version's rollback window is over: the
  // crashes counted and the time its window began stayed with the previous daemon, so this
  // one never rolls it back on its own (docs/architecture.md, "Apps: versions and rollback").
  void restore(const std::vector<AppRecord>& apps);

 private:
  struct Version {
    // Its environment is the one its servers hold (Environment: one copy of equal ones).
    SpawnSpec request;
    // Whether `other` is this version: the same argv, working directory and environment.
    bool is(const SpawnSpec& other) const;
    uint64_t generation = 0;
    std::chrono::steady_clock::time_point since;  // put in place (its first server up)
    int crashes = 0;                              // within the rollback window since `since`
    // It crashed kCrashesToRollBack times within the window: no good version to go back to,
    // by hand or on its own, even where it could not be rolled back itself.
    bool crash_looped = false;
  };
  struct App {
    std::deque<Version> versions;  // oldest first; back() is current
    // The last automatic rollback, for status.
    std::optional<Rollback> last_rollback;
    std::chrono::steady_clock::time_point rolled_back_at;
    std::optional<std::string> rollback_failure;  // why its deploy failed, if it did
    int64_t rolled_back_unix_ms = 0;              // the same moment, for the state file
  };

  // `request` as a version is kept, put in place by `generation` (`since` is the caller's).
  static Version keep(const SpawnSpec& request, uint64_t generation);
  // What a rollback from versions.back() deploys, or nullptr with `none` saying why none.
  static const Version* rollback_target(const std::string& app, const std::deque<Version>& versions,
                                        std::string* none);

  Clock& clock_;
  Millis rollback_window_;
  std::map<std::string, App> apps_;
};

}  // namespace serverswap::daemon
