#include "daemon/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/spawn_environment.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

Json request_to_json(const SpawnSpec& spec) {
  Json env = Json::object();
  for (const auto& kv : spec.env) {
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  Json body = {{"argv", spec.argv}, {"cwd", spec.cwd}, {"env", env}};
  Json listen = Json::array();
  for (const auto& l : spec.listen) listen.push_back({{"name", l.name}, {"resource", l.resource}});
  body["listen"] = listen;
  if (spec.ready_after) body["readyAfterMs"] = static_cast<uint64_t>(spec.ready_after->count());
  if (spec.takedown_signal) body["takedownSignal"] = signal_name(*spec.takedown_signal);
  body["user"] = spec.user;
  body["group"] = spec.group;
  // Workers: the pace of the command's rolls, and which copy this server is.
  if (spec.workers) body["workers"] = *spec.workers;
  if (spec.batch) body["batch"] = *spec.batch;
  if (spec.max_surge) body["maxSurge"] = *spec.max_surge;
  if (spec.worker >= 0) body["worker"] = spec.worker;
  return body;
}

Result<SpawnSpec> request_from_json(const Json& body) {
  SpawnSpec spec;
  if (!body.is_object() || !body.contains("argv") || !body["argv"].is_array())
    return Status::error("request without argv");
  for (const auto& a : body["argv"]) spec.argv.push_back(a.get<std::string>());
  spec.cwd = body.value("cwd", "");
  static const Json kNoEnv = Json::object();
  const Json& env = body.contains("env") ? body["env"] : kNoEnv;
  for (const auto& [key, value] : env.items()) {
    std::string kv = key;
    kv.append("=").append(value.get<std::string>());
    spec.env.push_back(std::move(kv));
  }
  spec.user = body.value("user", "");
  spec.group = body.value("group", "");
  if (Status s = parse_command_settings(body, spec); !s.ok()) return s;
  if (body.contains("worker") && body["worker"].is_number_integer())
    spec.worker = body["worker"].get<int>();
  return spec;
}

}  // namespace

Json state_to_json(const DaemonState& state) {
  Json servers = Json::array();
  for (const auto& s : state.servers) {
    Json held = Json::array();
    for (const auto& h : s.held)
      held.push_back({{"name", h.name}, {"spelled", h.spelled}, {"address", h.address}});
    servers.push_back({{"id", s.id},
                       {"pid", s.pid},
                       {"startTime", s.start_time},
                       {"generation", s.generation},
                       {"state", s.state},
                       {"request", request_to_json(s.request)},
                       {"resources", held},
                       {"restarts", s.restarts}});
    if (!s.notify.empty()) servers.back()["notify"] = s.notify;
    if (s.notify_fd >= 0) servers.back()["notifyFd"] = s.notify_fd;
  }
  Json json = {{"version", 1}, {"servers", servers}};
  if (!state.sockets.empty() || state.control_fd >= 0) {
    Json sockets = Json::array();
    for (const auto& s : state.sockets)
      sockets.push_back({{"name", s.name}, {"address", s.address}, {"fd", s.fd}});
    json["sockets"] = sockets;
    json["controlFd"] = state.control_fd;
  }
  return json;
}

Result<DaemonState> state_from_json(const Json& json) {
  try {
    if (!json.is_object() || json.value("version", 0) != 1)
      return Status::error("not a version 1 state");
    DaemonState state;
    for (const auto& s : json.at("servers")) {
      ServerRecord record;
      record.id = s.at("id").get<std::string>();
      record.pid = s.at("pid").get<pid_t>();
      record.start_time = s.at("startTime").get<uint64_t>();
      record.generation = s.at("generation").get<uint64_t>();
      record.state = s.at("state").get<std::string>();
      auto request = request_from_json(s.at("request"));
      if (!request.ok()) return request.status().wrap("server " + record.id);
      record.request = std::move(*request);
      for (const auto& h : s.at("resources"))
        record.held.push_back({h.at("name").get<std::string>(), h.at("spelled").get<std::string>(),
                               h.at("address").get<std::string>()});
      record.restarts = s.value("restarts", 0);
      record.notify = s.value("notify", "");
      record.notify_fd = s.value("notifyFd", -1);
      state.servers.push_back(std::move(record));
    }
    static const Json kNoSockets = Json::array();
    for (const auto& s : json.contains("sockets") ? json["sockets"] : kNoSockets)
      state.sockets.push_back({s.at("name").get<std::string>(), s.at("address").get<std::string>(),
                               s.at("fd").get<int>()});
    state.control_fd = json.value("controlFd", -1);
    return state;
  } catch (const Json::exception& e) {
    return Status::error(e.what());
  }
}

std::string state_path_for(const std::string& socket_path) {
  return (std::filesystem::path(socket_path).parent_path() / "state.json").string();
}

Status StateFile::write(const DaemonState& state) {
  std::string text = state_to_json(state).dump() + "\n";
  if (text == last_written_) return {};
  std::string tmp = path_ + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Status::system_error("write " + tmp, errno);
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::system_error("write " + tmp, errno);
    done += static_cast<size_t>(n);
  }
  // The rename must never expose a file whose data is not on disk yet.
  if (::fsync(fd.get()) != 0) return Status::system_error("fsync " + tmp, errno);
  fd.reset();
  if (::rename(tmp.c_str(), path_.c_str()) != 0)
    return Status::system_error("rename " + tmp + " to " + path_, errno);
  last_written_ = std::move(text);
  return {};
}

Result<std::optional<DaemonState>> StateFile::read() const {
  std::ifstream in(path_);
  if (!in) {
    if (errno == ENOENT) return std::optional<DaemonState>();
    return Status::system_error("read " + path_, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Status::error(path_ + ": not JSON");
  auto state = state_from_json(json);
  if (!state.ok()) return state.status().wrap(path_);
  return std::optional<DaemonState>(std::move(*state));
}

void StateFile::remove() {
  ::unlink(path_.c_str());
  last_written_.clear();
}

Result<uint64_t> process_start_time(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text)) return Status::error(path + ": no such process");
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return Status::error(path + ": unexpected format");
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return Status::error(path + ": too few fields");
  }
  return static_cast<uint64_t>(std::stoull(field));
}

}  // namespace serverswap::daemon
