// The daemon's replies to control requests (docs/protocol.md section 7 and 11): deploy
// progress and outcomes, status, reload, stop and upgrade. Each is a typed struct with its
// encoder and its total decoder side by side, as in protocol/requests.h: `encode()` is the
// whole message in the daemon's key order (so the bytes on the wire are the daemon's),
// `decode(message)` never throws and names the wrong field ("deployed.pid must be an
// integer"). Fields a daemon of another version may leave out are optional. Nested parts
// (a server of `status`) have to_json()/from_json(value, where). Pure, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "protocol/message.h"

namespace serverswap::protocol {

// ---- Deploy progress and outcomes --------------------------------------------------------

// {"event": {"time", "kind", "id", "pid", "generation", "text", "resource", "worker",
// "crashed"}}: `resource` and `worker` when they apply, `crashed` only when true.
struct Event {
  std::string time;  // ISO 8601, UTC, milliseconds
  std::string kind;  // daemon/core/event_kind.h; readers act on it, never on the text
  std::optional<std::string> id;
  std::optional<int64_t> pid;
  std::optional<int64_t> generation;
  std::string text;
  std::optional<std::string> resource;
  std::optional<int64_t> worker;
  bool crashed = false;

  static constexpr const char* kName = "event";
  Json encode() const;
  static Result<Event> decode(const Message& message);
  bool operator==(const Event&) const = default;
};

// "stateFile" of a deploy outcome while the daemon cannot write its state file.
struct StateFileWarning {
  std::string path;
  std::string error;

  Json to_json() const;
  static Result<StateFileWarning> from_json(const Json& value, const std::string& where);
  bool operator==(const StateFileWarning&) const = default;
};

// {"deployed": {"id", "pid", "generation", "workers" (a roll), "replaced", "stateFile"}}.
struct Deployed {
  std::string id;  // worker 0's for a roll
  int64_t pid = 0;
  std::optional<int64_t> generation;
  std::optional<std::vector<int64_t>> workers;  // pids by worker index
  std::vector<int64_t> replaced;                // pids taken down
  std::optional<StateFileWarning> state_file;

  static constexpr const char* kName = "deployed";
  Json encode() const;
  static Result<Deployed> decode(const Message& message);
  bool operator==(const Deployed&) const = default;
};

// {"deployFailed": {"id" (absent for a roll), "reason", "stateFile"}}.
struct DeployFailed {
  std::optional<std::string> id;
  std::string reason;
  std::optional<StateFileWarning> state_file;
  // "othersServing": whether, when it is sent, an older server still serves the failed
  // server's resources untouched (true), or none does (false). Absent: not known (a roll, a
  // server that held nothing, a daemon that predates the field).
  std::optional<bool> others_serving;

  static constexpr const char* kName = "deployFailed";
  Json encode() const;
  static Result<DeployFailed> decode(const Message& message);
  bool operator==(const DeployFailed&) const = default;
};

// {"serverExited": {"id", "pid", "exit", "replaced"}} for "follow": "exit".
struct ServerExited {
  std::string id;
  int64_t pid = 0;
  std::string exit;       // how it ended, for people: "exited with status 0"
  bool replaced = false;  // it was taken down by a newer deploy
  // Who stopped it, when it was no newer deploy: "serverswap stop web", "the daemon, which is
  // stopping" (then `replaced` is false). Absent from daemons before it was added.
  std::optional<std::string> stopped_by;

  static constexpr const char* kName = "serverExited";
  Json encode() const;
  static Result<ServerExited> decode(const Message& message);
  bool operator==(const ServerExited&) const = default;
};

// ---- status ------------------------------------------------------------------------------

struct StateFileStatus {
  std::string path;
  bool ok = true;
  std::optional<std::string> error;  // while writes fail
  std::optional<int64_t> since_ms;   // while writes fail

  Json to_json() const;
  static Result<StateFileStatus> from_json(const Json& value, const std::string& where);
  bool operator==(const StateFileStatus&) const = default;
};

struct ResourceAddress {
  std::string name;
  std::string address;
  bool operator==(const ResourceAddress&) const = default;
};

struct DaemonStatus {
  int64_t pid = 0;
  std::string version;  // without "serverswap "
  std::string socket;
  bool stopping = false;
  std::vector<ResourceAddress> resources;
  std::optional<std::string> metrics;  // the --metrics endpoint's address
  StateFileStatus state_file;

  Json to_json() const;
  static Result<DaemonStatus> from_json(const Json& value, const std::string& where);
  bool operator==(const DaemonStatus&) const = default;
};

struct HeldResource {
  std::string name;
  std::string address;
  bool taken_down = false;
  bool operator==(const HeldResource&) const = default;
};

struct ServerStatus {
  std::string app;  // the app it is a version of ("" from a daemon older than app names)
  std::string id;
  int64_t pid = 0;
  int64_t generation = 0;
  int64_t deploy_order = 0;
  std::string state;  // docs/architecture.md's state table, or "unmanaged"
  std::vector<std::string> argv;
  std::string cwd;
  std::optional<int64_t> worker;  // null on the wire when not a worker
  std::vector<HeldResource> resources;
  int64_t restarts = 0;
  int64_t uptime_ms = 0;

  Json to_json() const;
  static Result<ServerStatus> from_json(const Json& value, const std::string& where);
  bool operator==(const ServerStatus&) const = default;
};

struct CrashLoopStatus {
  std::string app;
  std::vector<std::string> argv;
  std::string cwd;
  int64_t crashes = 0;
  int64_t restarts = 0;
  int64_t since_ms = 0;
  std::optional<int64_t> worker;
  std::optional<int64_t> next_restart_ms;  // when a restart is pending

  Json to_json() const;
  static Result<CrashLoopStatus> from_json(const Json& value, const std::string& where);
  bool operator==(const CrashLoopStatus&) const = default;
};

// An app the daemon knows (it had a version up, and was not removed): the generation of its
// current version, its versions (newest last; only in the reply to `status` of this app: a
// list of commands per app made plain `status` a third longer), and its last automatic
// rollback.
struct AppStatus {
  struct Version {
    std::vector<std::string> argv;
    std::string cwd;
    int64_t generation = 0;  // the generation that put it in place
    bool operator==(const Version&) const = default;
  };
  struct Rollback {
    int64_t from_generation = 0;
    int64_t to_generation = 0;
    std::string reason;
    int64_t since_ms = 0;                // how long ago
    std::optional<std::string> failure;  // why the deploy of the version went back to failed
    bool operator==(const Rollback&) const = default;
  };
  std::string app;
  int64_t generation = 0;         // the current version's
  std::vector<Version> versions;  // empty: not asked for (not on the wire)
  std::optional<Rollback> rolled_back;

  Json to_json() const;
  static Result<AppStatus> from_json(const Json& value, const std::string& where);
  bool operator==(const AppStatus&) const = default;
};

// {"status": {"daemon", "servers", "crashLoops", "apps"}}.
struct StatusReply {
  DaemonStatus daemon;
  std::vector<ServerStatus> servers;
  std::vector<CrashLoopStatus> crash_loops;
  std::vector<AppStatus> apps;

  static constexpr const char* kName = "status";
  Json encode() const;
  static Result<StatusReply> decode(const Message& message);
  bool operator==(const StatusReply&) const = default;
};

// ---- stop, reload, upgrade ---------------------------------------------------------------

// {"removed": {"app": "web", "servers": N}}: `rm web` is done: its N servers have exited, and
// its versions and settings are forgotten.
struct Removed {
  std::string app;
  int64_t servers = 0;

  static constexpr const char* kName = "removed";
  Json encode() const { return make(kName, {{"app", app}, {"servers", servers}}); }
  static Result<Removed> decode(const Message& message);
  bool operator==(const Removed&) const = default;
};

// {"stopped": true}: the daemon has taken every server down and exits. {"stopped": {"app":
// "web", "servers": N}}: the N servers of app web have exited (stop of one app).
struct Stopped {
  std::optional<std::string> app;
  int64_t servers = 0;

  static constexpr const char* kName = "stopped";
  Json encode() const {
    return app ? make(kName, {{"app", *app}, {"servers", servers}}) : make(kName, true);
  }
  static Result<Stopped> decode(const Message& message);
  bool operator==(const Stopped&) const = default;
};

// One redeploy of a reload: {"argv", "ok", "pid", "replaced"} or {"argv", "ok", "reason"}.
struct ReloadedDeploy {
  std::vector<std::string> argv;
  bool ok = false;
  std::optional<int64_t> pid;
  std::optional<std::vector<int64_t>> replaced;
  std::optional<std::string> reason;
  bool operator==(const ReloadedDeploy&) const = default;
};

// {"reloaded": {"ok", "deploys"}}.
struct Reloaded {
  bool ok = true;
  std::vector<ReloadedDeploy> deploys;

  static constexpr const char* kName = "reloaded";
  Json encode() const;
  static Result<Reloaded> decode(const Message& message);
  bool operator==(const Reloaded&) const = default;
};

// {"reloadQueued": {"reason", "joined"}}.
struct ReloadQueued {
  std::string reason;  // "2 deploys in flight"
  bool joined = false;

  static constexpr const char* kName = "reloadQueued";
  Json encode() const;
  static Result<ReloadQueued> decode(const Message& message);
  bool operator==(const ReloadQueued&) const = default;
};

// {"upgradeWaiting": {"reason", "withinMs"}}.
struct UpgradeWaiting {
  std::string reason;
  int64_t within_ms = 0;

  static constexpr const char* kName = "upgradeWaiting";
  Json encode() const;
  static Result<UpgradeWaiting> decode(const Message& message);
  bool operator==(const UpgradeWaiting&) const = default;
};

// {"upgrading": {"from", "to", "path"}}.
struct Upgrading {
  std::string from;  // "serverswap 0.1.0"
  std::string to;    // what PATH --version printed
  std::string path;

  static constexpr const char* kName = "upgrading";
  Json encode() const;
  static Result<Upgrading> decode(const Message& message);
  bool operator==(const Upgrading&) const = default;
};

}  // namespace serverswap::protocol
