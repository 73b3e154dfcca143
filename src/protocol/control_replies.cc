#include "protocol/control_replies.h"

#include <limits>

#include "protocol/requests.h"

namespace serverswap::protocol {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// The elements of the array `key` (when present), each through T::from_json. The first
// error wins, as in FieldReader.
template <class T>
Status objects(FieldReader& r, const char* key, bool required, std::vector<T>& out) {
  const Json* array = r.array(key, required);
  if (!r.ok()) return r.status();
  if (!array) return {};
  for (size_t i = 0; i < array->size(); ++i) {
    auto item = T::from_json((*array)[i], r.where() + "." + key + "[" + std::to_string(i) + "]");
    if (!item.ok()) return item.status();
    out.push_back(std::move(*item));
  }
  return {};
}

template <class T>
Status optional_object(FieldReader& r, const char* key, std::optional<T>& out) {
  const Json* value = r.object(key, false);
  if (!r.ok()) return r.status();
  if (!value) return {};
  auto item = T::from_json(*value, r.where() + "." + key);
  if (!item.ok()) return item.status();
  out = std::move(*item);
  return {};
}

std::optional<std::vector<int64_t>> optional_integers(FieldReader& r, const char* key) {
  if (!r.has(key)) return std::nullopt;
  std::vector<int64_t> out = r.integers(key, true);
  if (!r.ok()) return std::nullopt;
  return out;
}

}  // namespace

// ---- Deploy progress and outcomes --------------------------------------------------------

Json Event::encode() const {
  Json body = {{"time", time}, {"kind", kind}};
  if (id) body["id"] = *id;
  if (pid) body["pid"] = *pid;
  if (generation) body["generation"] = *generation;
  body["text"] = text;
  if (resource) body["resource"] = *resource;
  if (worker) body["worker"] = *worker;
  if (crashed) body["crashed"] = true;
  return make(kName, body);
}

Result<Event> Event::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Event event;
  event.time = r.string("time", true);
  event.kind = r.string("kind", true);
  event.id = r.optional_string("id");
  event.pid = r.optional_integer("pid", kMin, kMax);
  event.generation = r.optional_integer("generation", kMin, kMax);
  event.text = r.string("text", true);
  event.resource = r.optional_string("resource");
  event.worker = r.optional_integer("worker", kMin, kMax);
  event.crashed = r.boolean("crashed", false);
  if (!r.ok()) return r.status();
  return event;
}

Json StateFileWarning::to_json() const {
  return {{"path", path}, {"error", error}};
}

Result<StateFileWarning> StateFileWarning::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  StateFileWarning warning;
  warning.path = r.string("path", true);
  warning.error = r.string("error", true);
  if (!r.ok()) return r.status();
  return warning;
}

Json Deployed::encode() const {
  Json body = {{"id", id}, {"pid", pid}};
  if (generation) body["generation"] = *generation;
  if (workers) body["workers"] = *workers;
  body["replaced"] = replaced;
  if (state_file) body["stateFile"] = state_file->to_json();
  return make(kName, body);
}

Result<Deployed> Deployed::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Deployed deployed;
  deployed.id = r.string("id", true);
  deployed.pid = r.integer("pid", true, kMin, kMax);
  deployed.generation = r.optional_integer("generation", kMin, kMax);
  deployed.workers = optional_integers(r, "workers");
  deployed.replaced = r.integers("replaced", true);
  if (Status s = optional_object(r, "stateFile", deployed.state_file); !s.ok()) return s;
  if (!r.ok()) return r.status();
  return deployed;
}

Json DeployFailed::encode() const {
  Json body = Json::object();
  if (id) body["id"] = *id;
  body["reason"] = reason;
  if (state_file) body["stateFile"] = state_file->to_json();
  if (others_serving) body["othersServing"] = *others_serving;
  return make(kName, body);
}

Result<DeployFailed> DeployFailed::decode(const Message& message) {
  FieldReader r(message.body, kName);
  DeployFailed failed;
  failed.id = r.optional_string("id");
  failed.reason = r.string("reason", true);
  if (Status s = optional_object(r, "stateFile", failed.state_file); !s.ok()) return s;
  if (r.has("othersServing")) failed.others_serving = r.boolean("othersServing", true);
  if (!r.ok()) return r.status();
  return failed;
}

Json ServerExited::encode() const {
  Json body = {{"id", id}, {"pid", pid}, {"exit", exit}, {"replaced", replaced}};
  if (stopped_by) body["stoppedBy"] = *stopped_by;
  return make(kName, body);
}

Result<ServerExited> ServerExited::decode(const Message& message) {
  FieldReader r(message.body, kName);
  ServerExited exited;
  exited.id = r.string("id", true);
  exited.pid = r.integer("pid", true, kMin, kMax);
  exited.exit = r.string("exit", true);
  exited.replaced = r.boolean("replaced", true);
  exited.stopped_by = r.optional_string("stoppedBy");
  if (!r.ok()) return r.status();
  return exited;
}

// ---- status ------------------------------------------------------------------------------

Json StateFileStatus::to_json() const {
  Json file = {{"path", path}, {"ok", ok}};
  if (error) file["error"] = *error;
  if (since_ms) file["since_ms"] = *since_ms;
  return file;
}

Result<StateFileStatus> StateFileStatus::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  StateFileStatus file;
  file.path = r.string("path", true);
  file.ok = r.boolean("ok", true);
  file.error = r.optional_string("error");
  file.since_ms = r.optional_integer("since_ms", kMin, kMax);
  if (!r.ok()) return r.status();
  return file;
}

namespace {

Result<ResourceAddress> resource_address(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  ResourceAddress resource;
  resource.name = r.string("name", true);
  resource.address = r.string("address", true);
  if (!r.ok()) return r.status();
  return resource;
}

Result<HeldResource> held_resource(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  HeldResource resource;
  resource.name = r.string("name", true);
  resource.address = r.string("address", true);
  resource.taken_down = r.boolean("takenDown", true);
  if (!r.ok()) return r.status();
  return resource;
}

// As objects(), for element types without a from_json of their own.
template <class T, class Decode>
Status each(FieldReader& r, const char* key, std::vector<T>& out, Decode decode) {
  const Json* array = r.array(key, true);
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < array->size(); ++i) {
    auto item = decode((*array)[i], r.where() + "." + key + "[" + std::to_string(i) + "]");
    if (!item.ok()) return item.status();
    out.push_back(std::move(*item));
  }
  return {};
}

}  // namespace

Json DaemonStatus::to_json() const {
  Json list = Json::array();
  for (const auto& r : resources) list.push_back({{"name", r.name}, {"address", r.address}});
  Json daemon = {{"pid", pid}, {"version", version}, {"socket", socket}, {"stopping", stopping}};
  daemon["resources"] = list;
  if (metrics) daemon["metrics"] = *metrics;
  daemon["stateFile"] = state_file.to_json();
  return daemon;
}

Result<DaemonStatus> DaemonStatus::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  DaemonStatus daemon;
  daemon.pid = r.integer("pid", true, kMin, kMax);
  daemon.version = r.string("version", true);
  daemon.socket = r.string("socket", true);
  daemon.stopping = r.boolean("stopping", true);
  if (Status s = each(r, "resources", daemon.resources, resource_address); !s.ok()) return s;
  daemon.metrics = r.optional_string("metrics");
  // Absent from a daemon older than the field: taken as written.
  const Json* file = r.object("stateFile", false);
  if (!r.ok()) return r.status();
  if (!file) return daemon;
  auto state_file = StateFileStatus::from_json(*file, where + ".stateFile");
  if (!state_file.ok()) return state_file.status();
  daemon.state_file = std::move(*state_file);
  return daemon;
}

Json ServerStatus::to_json() const {
  Json held = Json::array();
  for (const auto& r : resources)
    held.push_back({{"name", r.name}, {"address", r.address}, {"takenDown", r.taken_down}});
  return {{"app", app},
          {"id", id},
          {"pid", pid},
          {"generation", generation},
          {"deployOrder", deploy_order},
          {"state", state},
          {"argv", argv},
          {"cwd", cwd},
          {"worker", worker ? Json(*worker) : Json(nullptr)},
          {"resources", held},
          {"restarts", restarts},
          {"uptime_ms", uptime_ms}};
}

Result<ServerStatus> ServerStatus::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  ServerStatus server;
  server.app = r.string("app", false);
  server.id = r.string("id", true);
  server.pid = r.integer("pid", true, kMin, kMax);
  server.generation = r.integer("generation", true, kMin, kMax);
  server.deploy_order = r.integer("deployOrder", false, kMin, kMax, server.generation);
  server.state = r.string("state", true);
  server.argv = r.strings("argv", true);
  server.cwd = r.string("cwd", false);
  if (r.ok() && r.has("worker") && !value["worker"].is_null())
    server.worker = r.integer("worker", true, kMin, kMax);
  if (Status s = each(r, "resources", server.resources, held_resource); !s.ok()) return s;
  server.restarts = r.integer("restarts", true, kMin, kMax);
  server.uptime_ms = r.integer("uptime_ms", true, kMin, kMax);
  if (!r.ok()) return r.status();
  return server;
}

Json CrashLoopStatus::to_json() const {
  Json loop = {{"app", app},         {"argv", argv},         {"cwd", cwd},
               {"crashes", crashes}, {"restarts", restarts}, {"since_ms", since_ms}};
  if (worker) loop["worker"] = *worker;
  if (next_restart_ms) loop["next_restart_ms"] = *next_restart_ms;
  return loop;
}

Result<CrashLoopStatus> CrashLoopStatus::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  CrashLoopStatus loop;
  loop.app = r.string("app", false);
  loop.argv = r.strings("argv", true);
  loop.cwd = r.string("cwd", true);
  loop.crashes = r.integer("crashes", true, kMin, kMax);
  loop.restarts = r.integer("restarts", true, kMin, kMax);
  loop.since_ms = r.integer("since_ms", true, kMin, kMax);
  loop.worker = r.optional_integer("worker", kMin, kMax);
  loop.next_restart_ms = r.optional_integer("next_restart_ms", kMin, kMax);
  if (!r.ok()) return r.status();
  return loop;
}

Json AppStatus::to_json() const {
  Json app_json = {{"app", app}, {"generation", generation}};
  if (!versions.empty()) {
    Json list = Json::array();
    for (const auto& v : versions)
      list.push_back({{"argv", v.argv}, {"cwd", v.cwd}, {"generation", v.generation}});
    app_json["versions"] = std::move(list);
  }
  if (rolled_back)
    app_json["rolledBack"] = {{"fromGeneration", rolled_back->from_generation},
                              {"toGeneration", rolled_back->to_generation},
                              {"reason", rolled_back->reason},
                              {"since_ms", rolled_back->since_ms}};
  if (rolled_back && rolled_back->failure)
    app_json["rolledBack"]["failure"] = *rolled_back->failure;
  return app_json;
}

Result<AppStatus> AppStatus::from_json(const Json& value, const std::string& where) {
  FieldReader r(value, where);
  AppStatus status;
  status.app = r.string("app", true);
  // Optional both: a daemon older than `generation` lists every app's versions; a newer
  // one lists them only for `status APP`.
  auto generation = r.optional_integer("generation", kMin, kMax);
  const Json* versions = r.array("versions", false);
  if (!r.ok()) return r.status();
  for (size_t i = 0; versions && i < versions->size(); ++i) {
    FieldReader v((*versions)[i], where + ".versions[" + std::to_string(i) + "]");
    AppStatus::Version version;
    version.argv = v.strings("argv", true);
    version.cwd = v.string("cwd", true);
    version.generation = v.integer("generation", true, kMin, kMax);
    if (!v.ok()) return v.status();
    status.versions.push_back(std::move(version));
  }
  status.generation =
      generation.value_or(status.versions.empty() ? 0 : status.versions.back().generation);
  if (const Json* rolled = r.object("rolledBack", false)) {
    FieldReader b(*rolled, where + ".rolledBack");
    AppStatus::Rollback rollback;
    rollback.from_generation = b.integer("fromGeneration", true, kMin, kMax);
    rollback.to_generation = b.integer("toGeneration", true, kMin, kMax);
    rollback.reason = b.string("reason", true);
    rollback.since_ms = b.integer("since_ms", true, kMin, kMax);
    rollback.failure = b.optional_string("failure");
    if (!b.ok()) return b.status();
    status.rolled_back = std::move(rollback);
  }
  if (!r.ok()) return r.status();
  return status;
}

Result<Removed> Removed::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Removed removed;
  removed.app = r.string("app", true);
  removed.servers = r.integer("servers", true, 0, kMax);
  if (!r.ok()) return r.status();
  return removed;
}

Result<Stopped> Stopped::decode(const Message& message) {
  if (Status s = expect_true_or_object(message.body, kName); !s.ok()) return s;
  Stopped stopped;
  if (!message.body.is_object()) return stopped;
  FieldReader r(message.body, kName);
  stopped.app = r.optional_string("app");
  stopped.servers = r.integer("servers", false, 0, kMax, 0);
  if (!r.ok()) return r.status();
  return stopped;
}

Json StatusReply::encode() const {
  Json list = Json::array();
  for (const auto& s : servers) list.push_back(s.to_json());
  Json loops = Json::array();
  for (const auto& l : crash_loops) loops.push_back(l.to_json());
  Json app_list = Json::array();
  for (const auto& a : apps) app_list.push_back(a.to_json());
  return make(
      kName,
      {{"daemon", daemon.to_json()}, {"servers", list}, {"crashLoops", loops}, {"apps", app_list}});
}

Result<StatusReply> StatusReply::decode(const Message& message) {
  FieldReader r(message.body, kName);
  StatusReply reply;
  const Json* daemon = r.object("daemon", true);
  if (!r.ok()) return r.status();
  auto decoded = DaemonStatus::from_json(*daemon, "status.daemon");
  if (!decoded.ok()) return decoded.status();
  reply.daemon = std::move(*decoded);
  if (Status s = objects(r, "servers", true, reply.servers); !s.ok()) return s;
  if (Status s = objects(r, "crashLoops", false, reply.crash_loops); !s.ok()) return s;
  if (Status s = objects(r, "apps", false, reply.apps); !s.ok()) return s;
  return reply;
}

// ---- stop, reload, upgrade ---------------------------------------------------------------

Json Reloaded::encode() const {
  Json list = Json::array();
  for (const auto& d : deploys) {
    Json entry = {{"argv", d.argv}, {"ok", d.ok}};
    if (d.pid) entry["pid"] = *d.pid;
    if (d.replaced) entry["replaced"] = *d.replaced;
    if (d.reason) entry["reason"] = *d.reason;
    list.push_back(entry);
  }
  return make(kName, {{"ok", ok}, {"deploys", list}});
}

Result<Reloaded> Reloaded::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Reloaded reloaded;
  reloaded.ok = r.boolean("ok", true);
  auto entry = [](const Json& value, const std::string& where) -> Result<ReloadedDeploy> {
    FieldReader e(value, where);
    ReloadedDeploy d;
    d.argv = e.strings("argv", true);
    d.ok = e.boolean("ok", true);
    d.pid = e.optional_integer("pid", kMin, kMax);
    d.replaced = optional_integers(e, "replaced");
    d.reason = e.optional_string("reason");
    if (!e.ok()) return e.status();
    return d;
  };
  if (Status s = each(r, "deploys", reloaded.deploys, entry); !s.ok()) return s;
  return reloaded;
}

Json ReloadQueued::encode() const {
  return make(kName, {{"reason", reason}, {"joined", joined}});
}

Result<ReloadQueued> ReloadQueued::decode(const Message& message) {
  FieldReader r(message.body, kName);
  ReloadQueued queued;
  queued.reason = r.string("reason", true);
  queued.joined = r.boolean("joined", false);
  if (!r.ok()) return r.status();
  return queued;
}

Json UpgradeWaiting::encode() const {
  return make(kName, {{"reason", reason}, {"withinMs", within_ms}});
}

Result<UpgradeWaiting> UpgradeWaiting::decode(const Message& message) {
  FieldReader r(message.body, kName);
  UpgradeWaiting waiting;
  waiting.reason = r.string("reason", true);
  waiting.within_ms = r.integer("withinMs", true, kMin, kMax);
  if (!r.ok()) return r.status();
  return waiting;
}

Json Upgrading::encode() const {
  return make(kName, {{"from", from}, {"to", to}, {"path", path}});
}

Result<Upgrading> Upgrading::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Upgrading upgrading;
  upgrading.from = r.string("from", true);
  upgrading.to = r.string("to", true);
  upgrading.path = r.string("path", true);
  if (!r.ok()) return r.status();
  return upgrading;
}

}  // namespace serverswap::protocol
