#include "cli/deploy_progress.h"

#include "base/join.h"

namespace serverswap::cli {

void DeployProgress::saw(const protocol::Event& event) {
  if (!event.id) return;
  const std::string& kind = event.kind;
  if (event.worker) rolled_ = true;
  if (kind == "rolledBack") rolled_back_ = true;
  if ((kind == "takeDown" || kind == "signalled" || kind == "killed") && !started_.count(*event.id))
    took_down_others_ = true;
  if (kind == "spawned") {
    started_.insert(*event.id);
    Waiting& server = servers_[*event.id];
    server.pid = event.pid.value_or(0);
    server.generation = event.generation.value_or(0);
    return;
  }
  auto it = servers_.find(*event.id);
  if (it == servers_.end()) return;
  Waiting& server = it->second;
  if (kind == "up" || kind == "failed" || kind == "exited" || kind == "killed") {
    servers_.erase(it);
  } else if (kind == "confirming") {
    server.confirming = true;
    if (started_.count(*event.id)) confirming_ = true;
  } else if (kind == "connected") {
    server.connected = true;
  } else if (kind == "disconnected") {
    server.connected = false;
  } else if (kind == "resourceReady" && event.resource) {
    server.held.insert(*event.resource);
  } else if (kind == "askedAgain" && event.resource) {
    server.held.insert(*event.resource);
    server.asked_again.insert(*event.resource);
  } else if (kind == "status") {
    // Shown as the server said it; the daemon's text is "...: STATUS=<what it said>".
    size_t at = event.text.find("STATUS=");
    if (at != std::string::npos) server.status = event.text.substr(at + 7);
  }
}

std::vector<std::string> DeployProgress::report(Millis waited) const {
  std::vector<std::string> lines;
  for (const auto& [id, server] : servers_) {
    std::string has;
    if (server.confirming) {
      has =
          "is up and in its --confirm window: the servers it replaces are taken down once it "
          "has stayed alive that long";
    } else if (!server.connected && server.held.empty()) {
      has =
          "has not connected to the daemon (no readyFor, no serverUp) and holds nothing; "
          "nor has it said READY=1";
    } else {
      std::vector<std::string> held(server.held.begin(), server.held.end());
      has = server.connected ? "connected" : "not connected";
      has +=
          server.held.empty() ? ", holds nothing (no readyFor yet)" : ", holds " + join(held, ", ");
      for (const auto& resource : server.asked_again) has += ", asked for " + resource + " twice";
      has += server.connected ? "; has not sent serverUp"
                              : "; has not said it is ready (READY=1, or alive for --ready-after)";
    }
    if (!server.status.empty()) has += "; its last STATUS=" + server.status;
    lines.push_back("still waiting after " + format_duration(waited) + ": server " +
                    std::to_string(server.pid) + " (gen " + std::to_string(server.generation) +
                    ") " + has);
  }
  return lines;
}

}  // namespace serverswap::cli
