#include "daemon/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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
  if (!spec.grants.empty()) body["grant"] = spec.grants;
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
  return socket_path + ".state.json";
}

std::string legacy_state_path_for(const std::string& socket_path) {
  return (std::filesystem::path(socket_path).parent_path() / "state.json").string();
}

namespace {

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// A state file longer than this is not one the daemon wrote (a server record is well under
// 64 KiB): reading it whole would only cost memory.
constexpr size_t kMaxStateBytes = 64u << 20;

}  // namespace

StateFile::StateFile(std::string path) : path_(std::move(path)) {
  std::filesystem::path p(path_);
  dir_ = p.parent_path().string();
  if (dir_.empty()) dir_ = ".";
  name_ = p.filename().string();
}

UniqueFd StateFile::open_dir() const {
  return UniqueFd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

Status StateFile::write(const DaemonState& state) {
  std::string text = state_to_json(state).dump() + "\n";
  if (text == last_written_) return {};
  std::string tmp_name = name_ + ".tmp";
  std::string tmp = path_ + ".tmp";
  UniqueFd dir = open_dir();
  if (!dir) return Status::system_error("write " + path_ + ": open the directory " + dir_, errno);
  UniqueFd fd(::openat(dir.get(), tmp_name.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
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
  if (::renameat(dir.get(), tmp_name.c_str(), dir.get(), name_.c_str()) != 0)
    return Status::system_error("rename " + tmp + " to " + path_, errno);
  // The rename itself survives a crash only once the directory is on disk.
  ::fsync(dir.get());
  last_written_ = std::move(text);
  return {};
}

Status StateFile::check_trusted(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::system_error("fstat " + path, errno);
  uid_t me = ::geteuid();
  if (S_ISREG(st.st_mode) && st.st_uid == me && (st.st_mode & 077) == 0 && st.st_nlink == 1)
    return {};
  std::string kind = S_ISREG(st.st_mode) ? "a file" : "not a regular file";
  return Status::error("the state file " + path + " is not trusted: " + kind + " owned by uid " +
                       std::to_string(st.st_uid) + " with mode " + octal(st.st_mode) + " and " +
                       std::to_string(st.st_nlink) +
                       " link(s), where the daemon writes a regular file of uid " +
                       std::to_string(me) +
                       ", mode 0600, one link; nothing in it is run or adopted, no server is "
                       "taken back; remove it if you did not expect it");
}

Result<std::optional<DaemonState>> StateFile::read(bool* refused) const {
  if (refused) *refused = false;
  auto refuse = [&](Status s) -> Result<std::optional<DaemonState>> {
    if (refused) *refused = true;
    return s;
  };
  UniqueFd dir = open_dir();
  if (!dir) {
    if (errno == ENOENT) return std::optional<DaemonState>();
    return Status::system_error("read " + path_ + ": open the directory " + dir_, errno);
  }
  // O_NOFOLLOW: a symbolic link is refused (ELOOP), never read through; O_NONBLOCK: a FIFO
  // planted in its place cannot stall the daemon's start.
  UniqueFd fd(::openat(dir.get(), name_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::optional<DaemonState>();
    if (errno == ELOOP)
      return refuse(Status::error("the state file " + path_ +
                                  " is a symbolic link: not trusted, nothing in it is run or "
                                  "adopted, no server is taken back; remove it if you did not "
                                  "expect it"));
    return Status::system_error("read " + path_, errno);
  }
  if (Status s = check_trusted(fd.get(), path_); !s.ok()) return refuse(s);
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::system_error("read " + path_, errno);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxStateBytes) return Status::error(path_ + ": too large for a state file");
  }
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Status::error(path_ + ": not JSON");
  auto state = state_from_json(json);
  if (!state.ok()) return state.status().wrap(path_);
  return std::optional<DaemonState>(std::move(*state));
}

void StateFile::remove() {
  if (UniqueFd dir = open_dir()) ::unlinkat(dir.get(), name_.c_str(), 0);
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
