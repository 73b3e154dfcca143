#include "observe/metrics.h"

#include <charconv>

#include "daemon/core/event_kind.h"
#include "observe/counters.h"
#include "protocol/control_replies.h"

namespace serverswap::observe {

using protocol::Json;

namespace {

// The shortest text that reads back as the same double: "0.05", not "0.050000000000000003".
std::string number(double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(number(value)).append("\n");
}

// The states a server can be seen in, so that every series exists even at zero: a
// dashboard's rate() needs the series before the first change.
constexpr const char* kStates[] = {"starting", "connected", "ready", "confirming",
                                   "up",       "draining",  "failed"};

}  // namespace

void Metrics::observe(const Json& message, Clock::time_point now) {
  auto m = protocol::as_message(message);
  if (!m.ok()) return;
  if (m->name == protocol::Event::kName) {
    auto event = protocol::Event::decode(*m);
    if (!event.ok()) return;
    const std::string& kind = event->kind;
    std::string id = event->id.value_or("");
    using daemon::event_kind_name;
    using daemon::EventKind;
    if (kind == event_kind_name(EventKind::kSpawned)) started_[id] = now;
    if (kind == event_kind_name(EventKind::kRestarting)) ++restarts_;
    if (kind == event_kind_name(EventKind::kKilled)) ++kills_;
    // A crash is an exit marked "crashed": true (kCrashed); the text is for people only.
    if (kind == event_kind_name(EventKind::kCrashed) && event->crashed) ++crashes_;
    if (kind == event_kind_name(EventKind::kExited)) started_.erase(id);
  } else if (m->name == protocol::Deployed::kName) {
    auto deployed = protocol::Deployed::decode(*m);
    if (deployed.ok()) deploy_finished(deployed->id, true, deployed->replaced.size(), now);
  } else if (m->name == protocol::DeployFailed::kName) {
    auto failed = protocol::DeployFailed::decode(*m);
    if (failed.ok()) deploy_finished(failed->id.value_or(""), false, 0, now);
  }
}

void Metrics::state_write(bool ok) {
  if (!ok) ++state_write_failures_;
  state_file_ok_ = ok;
}

void Metrics::deploy_finished(const std::string& id, bool ok, size_t replaced,
                              Clock::time_point now) {
  (ok ? deploys_ok_ : deploys_failed_)++;
  if (ok && replaced > 0) ++swaps_;
  auto it = started_.find(id);
  if (it == started_.end()) return;  // failed before it was spawned: no duration
  double seconds = std::chrono::duration<double>(now - it->second).count();
  started_.erase(it);
  if (!ok) return;
  for (size_t i = 0; i < kDurationBuckets.size(); ++i)
    if (seconds <= kDurationBuckets[i]) ++duration_counts_[i];
  ++duration_count_;
  duration_sum_ += seconds;
}

std::string Metrics::render(const std::vector<protocol::ServerStatus>& servers) const {
  std::string out;
  family(out, "serverswap_deploys_total", "counter", "Deploys finished, by outcome.");
  sample(out, "serverswap_deploys_total", "outcome=\"deployed\"", double(deploys_ok_));
  sample(out, "serverswap_deploys_total", "outcome=\"failed\"", double(deploys_failed_));
  family(out, "serverswap_swaps_total", "counter",
         "Deploys that replaced at least one running server.");
  sample(out, "serverswap_swaps_total", "", double(swaps_));
  family(out, "serverswap_deploy_duration_seconds", "histogram",
         "From spawning a new server to it being up with every server it replaced gone.");
  for (size_t i = 0; i < kDurationBuckets.size(); ++i)
    sample(out, "serverswap_deploy_duration_seconds_bucket",
           "le=\"" + number(kDurationBuckets[i]) + "\"", double(duration_counts_[i]));
  sample(out, "serverswap_deploy_duration_seconds_bucket", "le=\"+Inf\"", double(duration_count_));
  sample(out, "serverswap_deploy_duration_seconds_sum", "", duration_sum_);
  sample(out, "serverswap_deploy_duration_seconds_count", "", double(duration_count_));
  family(out, "serverswap_servers", "gauge", "Servers the daemon supervises, by state.");
  std::map<std::string, int> by_state;
  for (const char* state : kStates) by_state[state] = 0;
  for (const auto& s : servers) ++by_state[s.state];
  for (const auto& [state, count] : by_state)
    sample(out, "serverswap_servers", "state=\"" + state + "\"", count);
  family(out, "serverswap_server_restarts_total", "counter",
         "Restarts of a crashed server by the daemon.");
  sample(out, "serverswap_server_restarts_total", "", double(restarts_));
  family(out, "serverswap_server_crashes_total", "counter",
         "Servers that exited while up and not taken down.");
  sample(out, "serverswap_server_crashes_total", "", double(crashes_));
  family(out, "serverswap_server_kills_total", "counter",
         "Servers sent SIGKILL after their grace period.");
  sample(out, "serverswap_server_kills_total", "", double(kills_));
  family(out, "serverswap_state_write_failures_total", "counter",
         "Failed writes of the daemon's state file (retried until one succeeds).");
  sample(out, "serverswap_state_write_failures_total", "", double(state_write_failures_));
  family(out, "serverswap_state_file_ok", "gauge",
         "1 when the last write of the state file succeeded, 0 while writes fail: a daemon "
         "restarted then would not find the servers started since.");
  sample(out, "serverswap_state_file_ok", "", state_file_ok_ ? 1 : 0);
  render_refusals(out);
  return out;
}

}  // namespace serverswap::observe
