#include "protocol/requests.h"

#include <limits>

#include "protocol/app_name.h"
#include "protocol/bytes.h"

namespace serverswap::protocol {

// ---- FieldReader -------------------------------------------------------------------------

FieldReader::FieldReader(const Json& value, std::string where)
    : value_(value), where_(std::move(where)) {
  if (!value_.is_object()) status_ = Status::error(where_ + " must be an object");
}

void FieldReader::fail(const char* key, const std::string& text) {
  if (status_.ok()) status_ = Status::error(where_ + "." + key + " " + text);
}

bool FieldReader::has(const char* key) const {
  return value_.is_object() && value_.contains(key);
}

const Json* FieldReader::field(const char* key, bool required) {
  if (!status_.ok()) return nullptr;
  auto it = value_.find(key);
  if (it == value_.end()) {
    if (required) fail(key, "is required");
    return nullptr;
  }
  return &*it;
}

std::string FieldReader::string(const char* key, bool required, std::string fallback) {
  const Json* v = field(key, required);
  if (!v) return fallback;
  if (!v->is_string()) {
    fail(key, "must be a string");
    return fallback;
  }
  return v->get<std::string>();
}

std::optional<std::string> FieldReader::optional_string(const char* key) {
  if (!has(key)) return std::nullopt;
  std::string s = string(key, true);
  if (!ok()) return std::nullopt;
  return s;
}

int64_t FieldReader::integer(const char* key, bool required, int64_t min, int64_t max,
                             int64_t fallback) {
  const Json* v = field(key, required);
  if (!v) return fallback;
  auto range = [&] {
    fail(key, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    return fallback;
  };
  if (!v->is_number_integer()) {
    fail(key, "must be an integer");
    return fallback;
  }
  if (v->is_number_unsigned()) {
    auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return range();
  }
  auto n = v->get<int64_t>();
  if (n < min || n > max) return range();
  return n;
}

std::optional<int64_t> FieldReader::optional_integer(const char* key, int64_t min, int64_t max) {
  if (!has(key)) return std::nullopt;
  int64_t n = integer(key, true, min, max);
  if (!ok()) return std::nullopt;
  return n;
}

bool FieldReader::boolean(const char* key, bool required, bool fallback) {
  const Json* v = field(key, required);
  if (!v) return fallback;
  if (!v->is_boolean()) {
    fail(key, "must be a boolean");
    return fallback;
  }
  return v->get<bool>();
}

const Json* FieldReader::array(const char* key, bool required) {
  const Json* v = field(key, required);
  if (v && !v->is_array()) {
    fail(key, "must be an array");
    return nullptr;
  }
  return v;
}

const Json* FieldReader::object(const char* key, bool required) {
  const Json* v = field(key, required);
  if (v && !v->is_object()) {
    fail(key, "must be an object");
    return nullptr;
  }
  return v;
}

std::vector<std::string> FieldReader::strings(const char* key, bool required) {
  std::vector<std::string> out;
  const Json* v = field(key, required);
  if (!v) return out;
  if (!v->is_array()) {
    fail(key, "must be an array of strings");
    return out;
  }
  for (const auto& e : *v) {
    if (!e.is_string()) {
      fail(key, "must be an array of strings");
      return {};
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int64_t> FieldReader::integers(const char* key, bool required) {
  std::vector<int64_t> out;
  const Json* v = field(key, required);
  if (!v) return out;
  if (!v->is_array()) {
    fail(key, "must be an array of integers");
    return out;
  }
  for (const auto& e : *v) {
    if (!e.is_number_integer() ||
        (e.is_number_unsigned() &&
         e.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      fail(key, "must be an array of integers");
      return {};
    }
    out.push_back(e.get<int64_t>());
  }
  return out;
}

// ---- Server messages ---------------------------------------------------------------------

namespace {

constexpr int64_t kMaxPid = std::numeric_limits<int32_t>::max();

Result<ResumeRequest> decode_resume(const Json& value) {
  FieldReader r(value, "hello.resume");
  ResumeRequest resume;
  resume.holding = r.strings("holding", true);
  resume.on_takedown = r.strings("onTakedown", false);
  resume.up = r.boolean("up", true);
  if (!r.ok()) return r.status();
  return resume;
}

}  // namespace

Result<HelloRequest> decode_hello(const Json& body) {
  FieldReader r(body, "hello");
  HelloRequest hello;
  std::optional<std::string> role = r.optional_string("role");
  // "control" is the only role; a server's hello has none.
  if (role && *role != "control") r.fail("role", "must be \"control\" (a server's hello has none)");
  hello.control = role == "control";
  // Required of both: a command's hello says which protocol it speaks, as a server's does.
  hello.protocol = r.integer("protocol", true, std::numeric_limits<int64_t>::min(),
                             std::numeric_limits<int64_t>::max());
  if (!r.ok()) return r.status();
  if (hello.control) return hello;
  hello.id = r.string("id", true);
  hello.pid = r.optional_integer("pid", 0, kMaxPid);
  hello.up_message = r.boolean("upMessage", false);
  if (const Json* resume = r.object("resume", false)) {
    auto decoded = decode_resume(*resume);
    if (!decoded.ok()) return decoded.status();
    hello.resume = std::move(*decoded);
  }
  if (!r.ok()) return r.status();
  return hello;
}

Json HelloRequest::encode() const {
  Json body = Json::object();
  if (control) {
    body["protocol"] = protocol;
    body["role"] = "control";
    return make(kName, body);
  }
  body["id"] = id;
  if (pid) body["pid"] = *pid;
  body["protocol"] = protocol;
  if (up_message) body["upMessage"] = true;
  if (resume) {
    body["resume"] = {
        {"holding", resume->holding}, {"onTakedown", resume->on_takedown}, {"up", resume->up}};
  }
  return make(kName, body);
}

bool is_resume_hello(const Json& body) {
  return FieldReader(body, "hello").has("resume");
}

Result<HelloRequest> HelloRequest::decode(const Message& message) {
  return decode_hello(message.body);
}

Result<std::string> decode_string_body(const std::string& name, const Json& body) {
  if (!body.is_string()) return Status::error(name + " must be a string");
  return body.get<std::string>();
}

Result<EinhornCommand> decode_einhorn_command(const Json& whole) {
  FieldReader r(whole, "einhorn command");
  EinhornCommand command;
  command.command = r.string("command", true);
  command.pid = r.optional_integer("pid", 0, kMaxPid);
  if (!r.ok()) return r.status();
  return command;
}

Json EinhornCommand::encode() const {
  Json whole = {{"command", command}};
  if (pid) whole["pid"] = *pid;
  return whole;
}

Result<EinhornCommand> EinhornCommand::decode(const Message& message) {
  return decode_einhorn_command(message.whole);
}

// ---- Control requests --------------------------------------------------------------------

Result<DeployRequest> decode_deploy(const Json& body) {
  FieldReader r(body, "deploy");
  if (!r.ok()) return r.status();
  DeployRequest request;
  const Json* argv = r.array("argv", true);
  if (!r.ok()) return r.status();
  if (argv->empty()) return Status::error("deploy.argv must be a non-empty array");
  for (size_t i = 0; i < argv->size(); ++i) {
    auto arg = decode_bytes((*argv)[i], "deploy.argv[" + std::to_string(i) + "]");
    if (!arg.ok()) return arg.status();
    request.argv.push_back(std::move(*arg));
  }
  if (r.has("cwd")) {
    auto cwd = decode_bytes(body["cwd"], "deploy.cwd");
    if (!cwd.ok()) return cwd.status();
    // Relative to what? The daemon's own directory is no one's intent (docs/protocol.md).
    // Empty is absent (a state file of an older version may hold it).
    if (!cwd->empty() && !cwd->starts_with('/'))
      return Status::error("deploy.cwd must be an absolute path");
    request.cwd = std::move(*cwd);
  }
  if (const Json* env = r.object("env", false)) {
    for (const auto& [key, value] : env->items()) {
      auto bytes = decode_bytes(value, "deploy.env." + key);
      if (!bytes.ok()) return bytes.status();
      if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
        return Status::error("deploy.env: a name must be non-empty, without '=' or NUL");
      request.env.push_back(key + "=" + *bytes);
    }
  }
  std::vector<std::string> encoded = r.strings("envBase64", false);
  for (size_t i = 0; i < encoded.size(); ++i) {
    std::string field = "deploy.envBase64[" + std::to_string(i) + "]";
    auto kv = decode_bytes(Json{{"base64", encoded[i]}}, field);
    if (!kv.ok()) return kv.status();
    if (kv->find('=') == std::string::npos || kv->front() == '=')
      return Status::error(field + " must be the base64 of NAME=VALUE");
    request.env.push_back(std::move(*kv));
  }
  for (auto [key, out] : {std::pair{"user", &request.user}, std::pair{"group", &request.group}}) {
    if (!r.has(key)) continue;
    auto bytes = decode_bytes(body[key], std::string("deploy.") + key);
    if (!bytes.ok()) return bytes.status();
    *out = std::move(*bytes);
  }
  std::string follow = r.string("follow", false, "up");
  if (r.ok() && follow != "up" && follow != "exit") r.fail("follow", "must be \"up\" or \"exit\"");
  request.follow_exit = follow == "exit";
  if (const Json* listen = r.array("listen", false)) {
    for (size_t i = 0; i < listen->size(); ++i) {
      // A Unix socket's path may hold any bytes, as a cwd may.
      std::string where = "deploy.listen[" + std::to_string(i) + "]";
      const Json& l = (*listen)[i];
      if (!l.is_object() || !l.contains("resource"))
        return Status::error(where + " must be {\"name\": string, \"resource\": string}");
      ListenRequest entry;
      auto resource = decode_bytes(l["resource"], where + ".resource");
      if (!resource.ok()) return resource.status();
      entry.resource = std::move(*resource);
      if (l.contains("name")) {
        auto name = decode_bytes(l["name"], where + ".name");
        if (!name.ok()) return name.status();
        entry.name = std::move(*name);
      }
      request.listen.push_back(std::move(entry));
    }
  }
  request.grants = r.strings("grant", false);
  request.name = r.string("name", false, "");
  if (r.ok() && r.has("name"))
    if (Status s = check_app_name(request.name); !s.ok())
      r.fail("name", "is not an app name: " + s.message());
  request.replace = r.strings("replace", false);
  for (const auto& app : request.replace)
    if (Status s = app == "*" ? Status() : check_app_name(app); r.ok() && !s.ok())
      r.fail("replace", "holds something that is not an app name: " + s.message());
  request.ready_after_ms = r.optional_integer("readyAfterMs", 0, kMaxReadyAfterMs);
  request.confirm_ms = r.optional_integer("confirmMs", 0, kMaxReadyAfterMs);
  request.takedown_signal = r.optional_string("takedownSignal");
  request.workers = r.optional_integer("workers", 1, kMaxWorkers);
  request.batch = r.optional_integer("batch", 1, kMaxWorkers);
  request.max_surge = r.optional_integer("maxSurge", 1, kMaxWorkers);
  request.worker = static_cast<int>(r.integer("worker", false, -1, kMaxWorkers - 1, -1));
  if (!r.ok()) return r.status();
  return request;
}

Json encode_deploy(const DeployRequest& request) {
  Json argv = Json::array();
  for (const auto& a : request.argv) argv.push_back(encode_bytes(a));
  Json body = {{"argv", argv}, {"cwd", encode_bytes(request.cwd)}};
  encode_env(request.env, body);
  body["follow"] = request.follow_exit ? "exit" : "up";
  if (!request.user.empty()) body["user"] = encode_bytes(request.user);
  if (!request.group.empty()) body["group"] = encode_bytes(request.group);
  if (!request.listen.empty()) {
    Json listen = Json::array();
    for (const auto& l : request.listen)
      listen.push_back({{"name", encode_bytes(l.name)}, {"resource", encode_bytes(l.resource)}});
    body["listen"] = listen;
  }
  if (!request.grants.empty()) body["grant"] = request.grants;
  if (!request.name.empty()) body["name"] = request.name;
  if (!request.replace.empty()) body["replace"] = request.replace;
  if (request.ready_after_ms) body["readyAfterMs"] = *request.ready_after_ms;
  if (request.confirm_ms) body["confirmMs"] = *request.confirm_ms;
  if (request.takedown_signal) body["takedownSignal"] = *request.takedown_signal;
  if (request.workers) body["workers"] = *request.workers;
  if (request.batch) body["batch"] = *request.batch;
  if (request.max_surge) body["maxSurge"] = *request.max_surge;
  if (request.worker >= 0) body["worker"] = request.worker;
  return body;
}

Json DeployRequest::encode() const {
  return make(kName, encode_deploy(*this));
}

Result<DeployRequest> DeployRequest::decode(const Message& message) {
  return decode_deploy(message.body);
}

namespace {

// The body of stop and reload: `true`, or an object whose optional "app" is an app name.
Result<std::optional<std::string>> optional_app(const Message& message, const char* name) {
  if (Status s = expect_true_or_object(message.body, name); !s.ok()) return s;
  if (!message.body.is_object()) return std::optional<std::string>();
  FieldReader r(message.body, name);
  std::optional<std::string> app = r.optional_string("app");
  if (r.ok() && app)
    if (Status s = check_app_name(*app); !s.ok())
      r.fail("app", "is not an app name: " + s.message());
  if (!r.ok()) return r.status();
  return app;
}

}  // namespace

Result<StopRequest> StopRequest::decode(const Message& message) {
  auto app = optional_app(message, kName);
  if (!app.ok()) return app.status();
  return StopRequest{*app};
}

Result<StatusRequest> StatusRequest::decode(const Message& message) {
  auto app = optional_app(message, kName);
  if (!app.ok()) return app.status();
  return StatusRequest{*app};
}

Result<ReloadRequest> ReloadRequest::decode(const Message& message) {
  auto app = optional_app(message, kName);
  if (!app.ok()) return app.status();
  return ReloadRequest{*app};
}

Json UpgradeRequest::encode() const {
  Json body = Json::object();
  if (path) body["path"] = *path;
  return make(kName, body);
}

Result<UpgradeRequest> UpgradeRequest::decode(const Message& message) {
  return decode_upgrade(message.body);
}

Result<UpgradeRequest> decode_upgrade(const Json& body) {
  UpgradeRequest upgrade;
  if (Status s = expect_true_or_object(body, "upgrade"); !s.ok()) return s;
  if (!body.is_object()) return upgrade;
  FieldReader r(body, "upgrade");
  upgrade.path = r.optional_string("path");
  if (!r.ok()) return r.status();
  return upgrade;
}

}  // namespace serverswap::protocol
