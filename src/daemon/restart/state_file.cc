#include "daemon/restart/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>

#include "daemon/core/app_history.h"
#include "daemon/spawn/spawn_environment.h"
#include "protocol/bytes.h"
#include "protocol/requests.h"

namespace serverswap::daemon {

using protocol::Json;

namespace {

// The deploy request's own encoding (protocol/requests.h): bytes that are not UTF-8 in argv,
// cwd or env are kept exactly, so that a restarted daemon runs the command as it was given.
// Beside the deploy request's fields, the daemon's own (never read from a deploy):
// "physicalCwd" {"path", "dev", "ino"}, where a server of it ran (SpawnSpec::physical), and
// "pinned" (only when true: it runs there, a rollback).
Json request_to_json(const SpawnSpec& spec) {
  Json body = protocol::encode_deploy(request_from_spec(spec));
  // Always present, so that a state.json read by an older daemon has every field it expects.
  if (!body.contains("listen")) body["listen"] = Json::array();
  if (!body.contains("user")) body["user"] = "";
  if (!body.contains("group")) body["group"] = "";
  if (spec.physical)
    body["physicalCwd"] = {{"path", protocol::encode_bytes(spec.physical->path)},
                           {"dev", spec.physical->dev},
                           {"ino", spec.physical->ino}};
  if (spec.pinned) body["pinned"] = true;
  return body;
}

// "physicalCwd" as request_to_json writes it: an absolute path, and a device and inode.
Result<PhysicalDirectory> physical_from_json(const Json& json) {
  protocol::FieldReader r(json, "request.physicalCwd");
  PhysicalDirectory dir;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  dir.dev = static_cast<uint64_t>(r.integer("dev", true, 0, kMax));
  dir.ino = static_cast<uint64_t>(r.integer("ino", true, 1, kMax));
  if (!r.ok()) return r.status();
  auto it = json.find("path");
  if (it == json.end()) return Status::error("request.physicalCwd.path is required");
  auto path = protocol::decode_bytes(*it, "request.physicalCwd.path");
  if (!path.ok()) return path.status();
  if (!path->starts_with('/'))
    return Status::error("request.physicalCwd.path must be an absolute path");
  dir.path = std::move(*path);
  return dir;
}

Result<SpawnSpec> request_from_json(const Json& body) {
  auto request = protocol::decode_deploy(body);
  if (!request.ok()) return request.status();
  auto spec = spec_from_request(*request);
  if (!spec.ok()) return spec;
  if (auto it = body.find("physicalCwd"); it != body.end()) {
    auto dir = physical_from_json(*it);
    if (!dir.ok()) return dir.status();
    spec->physical = std::move(*dir);
  }
  protocol::FieldReader r(body, "request");
  spec->pinned = r.boolean("pinned", false);
  if (!r.ok()) return r.status();
  if (spec->pinned && !spec->physical)
    return Status::error("request.pinned is true without a physicalCwd to run in");
  return spec;
}

// A path or address the daemon read from the system (getsockname, /proc) may hold bytes
// that are not UTF-8: written as protocol::encode_bytes writes them ({"base64": ...}) and
// read back exactly, where a plain JSON string would have replaced them with U+FFFD and the
// next daemon would look for a file that is not there. A plain string (older files) reads
// as before. Absent and not `required`: "".
Result<std::string> bytes_field(const Json& json, const std::string& key, const std::string& where,
                                bool required) {
  auto it = json.find(key);
  if (it == json.end()) {
    if (required) return Status::error(where + "." + key + " is required");
    return std::string();
  }
  return protocol::decode_bytes(*it, where + "." + key);
}

Result<HeldRecord> held_from_json(const Json& json, const std::string& where) {
  protocol::FieldReader r(json, where);
  HeldRecord held;
  held.name = r.string("name", true);
  held.spelled = r.string("spelled", true);
  held.served = r.boolean("served", false);
  held.taken = r.boolean("takenDown", false);
  held.unheard = r.boolean("unheard", false);
  if (!r.ok()) return r.status();
  auto address = bytes_field(json, "address", where, true);
  if (!address.ok()) return address.status();
  held.address = std::move(*address);
  return held;
}

Result<ServerRecord> server_from_json(const Json& json, const std::string& where) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  protocol::FieldReader r(json, where);
  ServerRecord record;
  record.id = r.string("id", true);
  record.pid = static_cast<pid_t>(r.integer("pid", true, 1, std::numeric_limits<pid_t>::max()));
  record.start_time = static_cast<uint64_t>(r.integer("startTime", true, 0, kMax));
  record.generation = static_cast<uint64_t>(r.integer("generation", true, 0, kMax));
  record.state = r.string("state", true);
  record.restarts =
      static_cast<int>(r.integer("restarts", false, 0, std::numeric_limits<int>::max()));
  record.rank = static_cast<uint64_t>(r.integer("deployOrder", false, 0, kMax));
  record.kept = r.boolean("kept", false);
  record.notify_fd =
      static_cast<int>(r.integer("notifyFd", false, -1, std::numeric_limits<int>::max(), -1));
  if (const Json* output = r.object("output", false)) {
    protocol::FieldReader o(*output, where + ".output");
    record.output.dev = static_cast<uint64_t>(o.integer("dev", true, 0, kMax));
    record.output.ino = static_cast<uint64_t>(o.integer("ino", true, 1, kMax));
    if (!o.ok()) return o.status();
  }
  const Json* request = r.object("request", true);
  const Json* resources = r.array("resources", true);
  if (!r.ok()) return r.status();
  auto notify = bytes_field(json, "notify", where, false);
  if (!notify.ok()) return notify.status();
  record.notify = std::move(*notify);
  auto spec = request_from_json(*request);
  if (!spec.ok()) return spec.status().wrap("server " + record.id);
  record.request = std::move(*spec);
  for (size_t i = 0; i < resources->size(); ++i) {
    auto held = held_from_json((*resources)[i], where + ".resources[" + std::to_string(i) + "]");
    if (!held.ok()) return held.status();
    record.held.push_back(std::move(*held));
  }
  return record;
}

Result<SocketRecord> socket_from_json(const Json& json, const std::string& where) {
  protocol::FieldReader r(json, where);
  SocketRecord socket;
  socket.name = r.string("name", true);
  socket.fd = static_cast<int>(r.integer("fd", true, 0, std::numeric_limits<int>::max()));
  if (!r.ok()) return r.status();
  auto address = bytes_field(json, "address", where, true);
  if (!address.ok()) return address.status();
  socket.address = std::move(*address);
  return socket;
}

Result<SocketFileRecord> socket_file_from_json(const Json& json, const std::string& where) {
  protocol::FieldReader r(json, where);
  SocketFileRecord file;
  file.name = r.string("name", true);
  file.dev = static_cast<uint64_t>(r.integer("dev", true, 0, std::numeric_limits<int64_t>::max()));
  file.ino = static_cast<uint64_t>(r.integer("ino", true, 1, std::numeric_limits<int64_t>::max()));
  file.owner = static_cast<uid_t>(
      r.integer("owner", true, 0, static_cast<int64_t>(static_cast<uid_t>(-1)) - 1));
  if (!r.ok()) return r.status();
  auto path = bytes_field(json, "path", where, true);
  if (!path.ok()) return path.status();
  file.path = std::move(*path);
  if (!file.path.starts_with("/") || !file.name.starts_with("unix:"))
    return Status::error(where + ": not a Unix socket file");
  return file;
}

Json apps_to_json(const std::vector<AppRecord>& apps) {
  Json list = Json::array();
  for (const auto& app : apps) {
    Json versions = Json::array();
    for (const auto& v : app.versions) {
      versions.push_back({{"request", request_to_json(v.request)}, {"generation", v.generation}});
      if (v.crash_looped) versions.back()["crashLooped"] = true;
    }
    Json entry = {{"app", app.app}, {"versions", std::move(versions)}};
    if (const auto& r = app.last_rollback) {
      entry["lastRollback"] = {{"fromGeneration", r->from_generation},
                               {"toGeneration", r->to_generation},
                               {"reason", r->reason},
                               {"atUnixMs", r->at_unix_ms}};
      if (r->failure) entry["lastRollback"]["failure"] = *r->failure;
    }
    list.push_back(std::move(entry));
  }
  return {{"format", kAppVersionsFormat}, {"apps", std::move(list)}};
}

// A version is trusted as a server's request is (request_from_json: the deploy request's own
// checks), and must be what AppHistory keeps: of this app, not one worker, no --replace.
Result<VersionRecord> version_from_json(const Json& json, const std::string& app,
                                        const std::string& where) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  protocol::FieldReader r(json, where);
  VersionRecord version;
  version.generation = static_cast<uint64_t>(r.integer("generation", true, 0, kMax));
  version.crash_looped = r.boolean("crashLooped", false);
  const Json* request = r.object("request", true);
  if (!r.ok()) return r.status();
  auto spec = request_from_json(*request);
  if (!spec.ok()) return spec.status().wrap(where + ".request");
  if (app_of(*spec) != app)
    return Status::error(where + ": a version of app '" + app_of(*spec) + "', not of '" + app +
                         "'");
  if (spec->worker != -1 || !spec->replace.empty())
    return Status::error(where + ": names a worker or apps to replace, as no kept version does");
  version.request = std::move(*spec);
  return version;
}

Result<RollbackRecord> rollback_from_json(const Json& json, const std::string& where) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  protocol::FieldReader r(json, where);
  RollbackRecord rollback;
  rollback.from_generation = static_cast<uint64_t>(r.integer("fromGeneration", true, 0, kMax));
  rollback.to_generation = static_cast<uint64_t>(r.integer("toGeneration", true, 0, kMax));
  rollback.reason = r.string("reason", true);
  rollback.at_unix_ms = r.integer("atUnixMs", true, 0, kMax);
  rollback.failure = r.optional_string("failure");
  if (!r.ok()) return r.status();
  return rollback;
}

// One app's entry. What is not trusted is dropped and said in `dropped`: a bad version alone
// (the others stay), or the whole entry when it is not one; never the servers.
std::optional<AppRecord> app_from_json(const Json& json, const std::string& where,
                                       std::vector<std::string>& dropped) {
  protocol::FieldReader r(json, where);
  AppRecord app;
  app.app = r.string("app", true);
  const Json* versions = r.array("versions", true);
  const Json* rollback = r.object("lastRollback", false);
  if (r.ok() && app.app.empty()) r.fail("app", "must not be empty");
  if (r.ok() && versions->size() > kVersionsKept)
    r.fail("versions", "has " + std::to_string(versions->size()) + " versions, more than the " +
                           std::to_string(kVersionsKept) + " the daemon keeps");
  if (!r.ok()) {
    dropped.push_back(r.status().message());
    return std::nullopt;
  }
  for (size_t i = 0; i < versions->size(); ++i) {
    auto version =
        version_from_json((*versions)[i], app.app, where + ".versions[" + std::to_string(i) + "]");
    if (version.ok())
      app.versions.push_back(std::move(*version));
    else
      dropped.push_back(version.status().message());
  }
  if (rollback) {
    auto last = rollback_from_json(*rollback, where + ".lastRollback");
    if (last.ok())
      app.last_rollback = std::move(*last);
    else
      dropped.push_back(last.status().message());
  }
  if (app.versions.empty()) return std::nullopt;  // nothing of it is known: as if removed
  return app;
}

// "appVersions": ignored as a whole (said in `dropped`) when it is of another format.
void apps_from_json(const Json& json, DaemonState& state) {
  protocol::FieldReader r(json, "state.appVersions");
  r.integer("format", true, kAppVersionsFormat, kAppVersionsFormat);
  const Json* apps = r.array("apps", true);
  if (!r.ok()) {
    state.dropped_versions.push_back(r.status().message() + "; no app version is taken back");
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < apps->size(); ++i) {
    std::string where = "state.appVersions.apps[" + std::to_string(i) + "]";
    auto app = app_from_json((*apps)[i], where, state.dropped_versions);
    if (!app) continue;
    if (!seen.insert(app->app).second) {
      state.dropped_versions.push_back(where + ": app " + app->app + " is listed twice");
      continue;
    }
    state.apps.push_back(std::move(*app));
  }
}

}  // namespace

Json state_to_json(const DaemonState& state) {
  Json servers = Json::array();
  for (const auto& s : state.servers) {
    Json held = Json::array();
    for (const auto& h : s.held) {
      Json entry = {
          {"name", h.name}, {"spelled", h.spelled}, {"address", protocol::encode_bytes(h.address)}};
      if (h.served) entry["served"] = true;
      if (h.taken) entry["takenDown"] = true;
      if (h.unheard) entry["unheard"] = true;
      held.push_back(std::move(entry));
    }
    servers.push_back({{"id", s.id},
                       {"pid", s.pid},
                       {"startTime", s.start_time},
                       {"generation", s.generation},
                       {"state", s.state},
                       {"request", request_to_json(s.request)},
                       {"resources", held},
                       {"restarts", s.restarts},
                       {"deployOrder", s.rank}});
    if (s.kept) servers.back()["kept"] = true;
    if (!s.notify.empty()) servers.back()["notify"] = protocol::encode_bytes(s.notify);
    if (s.notify_fd >= 0) servers.back()["notifyFd"] = s.notify_fd;
    if (!s.output.empty())
      servers.back()["output"] = {{"dev", s.output.dev}, {"ino", s.output.ino}};
  }
  Json json = {{"version", 1}, {"servers", servers}};
  if (!state.apps.empty()) json["appVersions"] = apps_to_json(state.apps);
  if (!state.user_directory.empty())
    json["userDirectory"] = protocol::encode_bytes(state.user_directory);
  if (!state.socket_files.empty()) {
    Json files = Json::array();
    for (const auto& f : state.socket_files)
      files.push_back({{"name", f.name},
                       {"path", protocol::encode_bytes(f.path)},
                       {"dev", f.dev},
                       {"ino", f.ino},
                       {"owner", f.owner}});
    json["socketFiles"] = files;
  }
  if (!state.sockets.empty() || state.control_fd >= 0) {
    Json sockets = Json::array();
    for (const auto& s : state.sockets)
      sockets.push_back(
          {{"name", s.name}, {"address", protocol::encode_bytes(s.address)}, {"fd", s.fd}});
    json["sockets"] = sockets;
    json["controlFd"] = state.control_fd;
  }
  return json;
}

// Total: a state.json that is not what this daemon writes is an error, never an exception.
Result<DaemonState> state_from_json(const Json& json) {
  protocol::FieldReader r(json, "state");
  if (r.integer("version", true, 1, 1) != 1 || !r.ok())
    return Status::error("not a version 1 state");
  DaemonState state;
  const Json* servers = r.array("servers", true);
  const Json* sockets = r.array("sockets", false);
  const Json* socket_files = r.array("socketFiles", false);
  state.control_fd =
      static_cast<int>(r.integer("controlFd", false, -1, std::numeric_limits<int>::max(), -1));
  if (!r.ok()) return r.status();
  auto user_directory = bytes_field(json, "userDirectory", "state", false);
  if (!user_directory.ok()) return user_directory.status();
  state.user_directory = std::move(*user_directory);
  for (size_t i = 0; i < servers->size(); ++i) {
    auto record = server_from_json((*servers)[i], "state.servers[" + std::to_string(i) + "]");
    if (!record.ok()) return record.status();
    state.servers.push_back(std::move(*record));
  }
  for (size_t i = 0; sockets && i < sockets->size(); ++i) {
    auto socket = socket_from_json((*sockets)[i], "state.sockets[" + std::to_string(i) + "]");
    if (!socket.ok()) return socket.status();
    state.sockets.push_back(std::move(*socket));
  }
  for (size_t i = 0; socket_files && i < socket_files->size(); ++i) {
    auto file =
        socket_file_from_json((*socket_files)[i], "state.socketFiles[" + std::to_string(i) + "]");
    if (!file.ok()) return file.status();
    state.socket_files.push_back(std::move(*file));
  }
  if (auto apps = json.find("appVersions"); apps != json.end()) apps_from_json(*apps, state);
  return state;
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
  // Never throws: what could be other than UTF-8 (argv, cwd, env) is base64 in the JSON.
  std::string text =
      state_to_json(state).dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  last_text_bytes_ = text.size();
  Digest written = digest(text);
  if (written == last_written_) return {};
  std::string tmp_name = name_ + ".tmp";
  std::string tmp = path_ + ".tmp";
  UniqueFd dir = open_dir();
  if (!dir) return Status::system_error("write " + path_ + ": open the directory " + dir_, errno);
  // O_NONBLOCK: a FIFO planted at the tmp path must fail the write (ENXIO), not block the
  // daemon's only thread in open(2) until someone reads it.
  UniqueFd fd(::openat(dir.get(), tmp_name.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (!fd) return Status::system_error("write " + tmp, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::system_error("stat " + tmp, errno);
  if (!S_ISREG(st.st_mode)) return Status::error("write " + tmp + ": not a regular file");
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
  last_written_ = written;
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
  last_written_.reset();
}

StateFile::Digest StateFile::digest(std::string_view text) {
  // libstdc++'s string hash and FNV-1a, independent of each other.
  uint64_t fnv = 14695981039346656037ull;
  for (unsigned char c : text) fnv = (fnv ^ c) * 1099511628211ull;
  return {text.size(), std::hash<std::string_view>{}(text), fnv};
}

}  // namespace serverswap::daemon
