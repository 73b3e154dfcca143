#include "daemon/core/deploys.h"

#include "protocol/control_replies.h"

namespace serverswap::daemon {

using protocol::Json;

void Deploys::started(const Server& server, Sink sink, bool follow_exit) {
  Record& record = records_[server.id];
  record.sink = std::move(sink);
  record.follow_exit = follow_exit;
  record.pid = server.pid;
  record.generation = server.generation;
}

void Deploys::up(const std::string& server_id) {
  if (auto it = records_.find(server_id); it != records_.end()) it->second.up = true;
}

bool Deploys::replacing(const std::string& deploy_id, const Server& victim) {
  auto it = records_.find(deploy_id);
  if (it == records_.end() || !it->second.replacing.insert(victim.id).second) return false;
  it->second.replaced.push_back(victim.pid);
  return true;
}

void Deploys::not_replacing(const std::string& deploy_id, const std::string& victim_id) {
  auto it = records_.find(deploy_id);
  if (it == records_.end() || !it->second.replacing.erase(victim_id)) return;
  it->second.replaced.erase(it->second.replaced.size() - 1);
}

void Deploys::superseded(const std::string& server_id, uint64_t by) {
  auto it = records_.find(server_id);
  if (it == records_.end() || it->second.outcome != Outcome::kPending) return;
  Record& record = it->second;
  record.outcome = Outcome::kFailed;
  record.sink(protocol::DeployFailed{server_id,
                                     "superseded by generation " + std::to_string(by) +
                                         " before the servers it replaced had exited",
                                     std::nullopt, std::nullopt}
                  .encode());
  if (!record.follow_exit) records_.erase(it);
}

void Deploys::failed(const std::string& server_id, const std::string& reason) {
  auto it = records_.find(server_id);
  if (it == records_.end() || it->second.outcome != Outcome::kPending) return;
  Record& record = it->second;
  record.outcome = Outcome::kFailed;
  record.replacing.clear();
  record.sink(protocol::DeployFailed{server_id, reason, std::nullopt, std::nullopt}.encode());
  if (!record.follow_exit) records_.erase(it);
}

// A deploy has succeeded once its server is up and every server it replaced has exited.
void Deploys::check(const std::string& server_id) {
  auto it = records_.find(server_id);
  if (it == records_.end()) return;
  Record& record = it->second;
  // Its server may be draining or gone by now: several generations drain at once.
  if (record.outcome != Outcome::kPending || !record.up || !record.replacing.empty()) return;
  record.outcome = Outcome::kDeployed;
  record.sink(protocol::Deployed{server_id, record.pid, record.generation, std::nullopt,
                                 record.replaced.get<std::vector<int64_t>>(), std::nullopt}
                  .encode());
  bool server_gone = !record.server_exited.is_null();
  if (server_gone && record.follow_exit) record.sink(record.server_exited);
  if (server_gone || !record.follow_exit) records_.erase(it);
}

void Deploys::stopped(const std::string& server_id, const std::string& who) {
  auto it = records_.find(server_id);
  if (it == records_.end()) return;
  Record& record = it->second;
  record.stopped_by = who;
  if (record.outcome != Outcome::kPending) return;
  record.outcome = Outcome::kFailed;
  record.replacing.clear();
  record.sink(protocol::DeployFailed{server_id, "stopped by " + who, std::nullopt, false}.encode());
  if (!record.follow_exit) records_.erase(it);
}

void Deploys::exited(const Server& server, const std::string& description, bool replaced,
                     std::optional<bool> others_serving) {
  if (auto it = records_.find(server.id); it != records_.end()) {
    Record& record = it->second;
    bool pending = record.outcome == Outcome::kPending;
    // Taken down by whoever stopped it, not by a newer deploy: "replaced" would be false.
    Json exited = protocol::ServerExited{server.id, server.pid, description,
                                         replaced && !record.stopped_by, record.stopped_by}
                      .encode();
    if (pending && !server.failure.empty()) {
      record.outcome = Outcome::kFailed;
      record.sink(
          protocol::DeployFailed{server.id, server.failure, std::nullopt, others_serving}.encode());
      records_.erase(it);
    } else if (pending && !replaced) {
      // It came up, then crashed while the servers it replaced were still draining.
      record.outcome = Outcome::kFailed;
      record.sink(protocol::DeployFailed{
          server.id, "it was up, then " + description + " before the servers it replaced exited",
          std::nullopt, others_serving}
                      .encode());
      records_.erase(it);
    } else if (pending) {
      // Replaced in turn before its own predecessors exited: `deployed` once they have.
      record.server_exited = exited;
    } else if (record.follow_exit && !replaced && !record.stopped_by) {
      // A crash: serverExited waits for exit_handled(), so that the follower hears first
      // what the daemon does about it (a crash restart, an automatic rollback).
      record.server_exited = exited;
      record.exit_handled_later = true;
    } else {
      if (record.follow_exit) record.sink(exited);
      records_.erase(it);
    }
  }
  std::vector<std::string> waiting;
  for (auto& [deploy_id, record] : records_)
    if (record.replacing.erase(server.id)) waiting.push_back(deploy_id);
  for (const auto& w : waiting) check(w);
}

void Deploys::exit_handled(const std::string& server_id) {
  auto it = records_.find(server_id);
  if (it == records_.end() || !it->second.exit_handled_later) return;
  Sink sink = std::move(it->second.sink);
  Json exited = std::move(it->second.server_exited);
  records_.erase(it);
  sink(exited);
}

uint64_t Deploys::concerned(const std::string& server_id, std::vector<Sink*>* sinks) {
  uint64_t about = 0;
  for (auto& [deploy_id, record] : records_) {
    if (deploy_id != server_id && !record.replacing.count(server_id)) continue;
    sinks->push_back(&record.sink);
    if (about == 0 || deploy_id == server_id) about = record.generation;
  }
  return about;
}

size_t Deploys::in_flight() const {
  size_t n = 0;
  for (const auto& [id, record] : records_) n += record.outcome == Outcome::kPending;
  return n;
}

}  // namespace serverswap::daemon
