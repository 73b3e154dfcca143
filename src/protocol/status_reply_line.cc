#include "protocol/status_reply_line.h"

#include "protocol/json_writer.h"

namespace serverswap::protocol {
namespace {

// Each writer below mirrors the to_json() of its struct (control_replies.cc): the same
// keys in the same order, the same optional ones left out.

void strings(JsonWriter& w, const std::vector<std::string>& list) {
  w.begin_array();
  for (const auto& s : list) w.string(s);
  w.end_array();
}

void field(JsonWriter& w, std::string_view key, std::string_view text) {
  w.key(key);
  w.string(text);
}

void field(JsonWriter& w, std::string_view key, int64_t number) {
  w.key(key);
  w.integer(number);
}

void field(JsonWriter& w, std::string_view key, bool value) {
  w.key(key);
  w.boolean(value);
}

void write_state_file(JsonWriter& w, const StateFileStatus& file) {
  w.begin_object();
  field(w, "path", file.path);
  field(w, "ok", file.ok);
  if (file.error) field(w, "error", *file.error);
  if (file.since_ms) field(w, "since_ms", *file.since_ms);
  w.end_object();
}

void write_daemon(JsonWriter& w, const DaemonStatus& d) {
  w.begin_object();
  field(w, "pid", d.pid);
  field(w, "version", d.version);
  field(w, "socket", d.socket);
  field(w, "stopping", d.stopping);
  w.key("resources");
  w.begin_array();
  for (const auto& r : d.resources) {
    w.begin_object();
    field(w, "name", r.name);
    field(w, "address", r.address);
    w.end_object();
  }
  w.end_array();
  if (d.metrics) field(w, "metrics", *d.metrics);
  w.key("stateFile");
  write_state_file(w, d.state_file);
  w.end_object();
}

void write_server(JsonWriter& w, const ServerStatus& s) {
  w.begin_object();
  field(w, "app", s.app);
  field(w, "id", s.id);
  field(w, "pid", s.pid);
  field(w, "generation", s.generation);
  field(w, "deployOrder", s.deploy_order);
  field(w, "state", s.state);
  w.key("argv");
  strings(w, s.argv);
  field(w, "cwd", s.cwd);
  w.key("worker");
  if (s.worker) {
    w.integer(*s.worker);
  } else {
    w.null();
  }
  w.key("resources");
  w.begin_array();
  for (const auto& r : s.resources) {
    w.begin_object();
    field(w, "name", r.name);
    field(w, "address", r.address);
    field(w, "takenDown", r.taken_down);
    w.end_object();
  }
  w.end_array();
  field(w, "restarts", s.restarts);
  field(w, "uptime_ms", s.uptime_ms);
  w.end_object();
}

void write_crash_loop(JsonWriter& w, const CrashLoopStatus& l) {
  w.begin_object();
  field(w, "app", l.app);
  w.key("argv");
  strings(w, l.argv);
  field(w, "cwd", l.cwd);
  field(w, "crashes", l.crashes);
  field(w, "restarts", l.restarts);
  field(w, "since_ms", l.since_ms);
  if (l.worker) field(w, "worker", *l.worker);
  if (l.next_restart_ms) field(w, "next_restart_ms", *l.next_restart_ms);
  w.end_object();
}

void write_app(JsonWriter& w, const AppStatus& a) {
  w.begin_object();
  field(w, "app", a.app);
  field(w, "generation", a.generation);
  if (!a.versions.empty()) {
    w.key("versions");
    w.begin_array();
    for (const auto& v : a.versions) {
      w.begin_object();
      w.key("argv");
      strings(w, v.argv);
      field(w, "cwd", v.cwd);
      field(w, "generation", v.generation);
      w.end_object();
    }
    w.end_array();
  }
  if (a.rolled_back) {
    const AppStatus::Rollback& back = *a.rolled_back;
    w.key("rolledBack");
    w.begin_object();
    field(w, "fromGeneration", back.from_generation);
    field(w, "toGeneration", back.to_generation);
    field(w, "reason", back.reason);
    field(w, "since_ms", back.since_ms);
    if (back.failure) field(w, "failure", *back.failure);
    w.end_object();
  }
  w.end_object();
}

template <class T, class Write>
void list(JsonWriter& w, std::string_view key, const std::vector<T>& items, Write write) {
  w.key(key);
  w.begin_array();
  for (const auto& item : items) write(w, item);
  w.end_array();
}

// A server's entry is ~250 bytes with a short command and one socket: one allocation of
// the text rather than a dozen doublings and copies.
constexpr size_t kBytesPerEntry = 256;

}  // namespace

std::string status_reply_line(const StatusReply& reply) {
  std::string line;
  line.reserve(kBytesPerEntry *
               (1 + reply.servers.size() + reply.crash_loops.size() + reply.apps.size()));
  JsonWriter w(line, -1, false, Json::error_handler_t::replace);
  w.begin_object();
  w.key(StatusReply::kName);
  w.begin_object();
  w.key("daemon");
  write_daemon(w, reply.daemon);
  list(w, "servers", reply.servers, write_server);
  list(w, "crashLoops", reply.crash_loops, write_crash_loop);
  list(w, "apps", reply.apps, write_app);
  w.end_object();
  w.end_object();
  line.push_back('\n');
  return line;
}

}  // namespace serverswap::protocol
