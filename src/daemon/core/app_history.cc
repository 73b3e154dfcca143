#include "daemon/core/app_history.h"

#include <algorithm>

#include "base/duration.h"

namespace serverswap::daemon {

bool same_version(const SpawnSpec& a, const SpawnSpec& b) {
  return a.argv == b.argv && a.cwd == b.cwd && a.env == b.env;
}

namespace {

// A version as kept: the request of the app, not of one worker, and without the apps it
// replaced (--replace is given per deploy, never remembered).
SpawnSpec version_of(const SpawnSpec& request) {
  SpawnSpec version = request;
  version.worker = -1;
  version.replace.clear();
  version.name = app_of(request);
  return version;
}

std::string said(const SpawnSpec& request, uint64_t generation) {
  std::string command;
  for (const auto& word : request.argv) command += (command.empty() ? "" : " ") + word;
  return "generation " + std::to_string(generation) + "'s version ('" + command + "' in " +
         (request.cwd.empty() ? "/" : request.cwd) + ")";
}

}  // namespace

void AppHistory::up(const Server& server) {
  if (server.restarts > 0) return;  // a crash restart: the version it restarts is known
  App& app = apps_[app_of(server.request)];
  if (!app.versions.empty() && same_version(app.versions.back().request, server.request)) return;
  // A version the app had before (a rollback, or the same release deployed again) moves to
  // the end: it is current again.
  auto old = std::find_if(app.versions.begin(), app.versions.end(), [&](const Version& v) {
    return same_version(v.request, server.request);
  });
  if (old != app.versions.end()) app.versions.erase(old);
  app.versions.push_back(Version{version_of(server.request), server.generation, clock_.now(), 0});
  while (app.versions.size() > kVersionsKept) app.versions.pop_front();
}

std::optional<AppHistory::Rollback> AppHistory::crashed(const Server& gone, std::string* why_not) {
  if (rollback_window_ == Millis(0)) return std::nullopt;
  auto it = apps_.find(app_of(gone.request));
  if (it == apps_.end() || it->second.versions.empty()) return std::nullopt;
  App& app = it->second;
  Version& current = app.versions.back();
  if (!same_version(current.request, gone.request)) return std::nullopt;  // an older version
  auto now = clock_.now();
  if (now - current.since > rollback_window_) return std::nullopt;
  if (++current.crashes < kCrashesToRollBack) return std::nullopt;
  if (app.versions.size() < 2) {
    if (why_not)
      *why_not = "it has no earlier version to roll back to (it is the app's first version)";
    return std::nullopt;
  }
  const Version& previous = app.versions[app.versions.size() - 2];
  Rollback rollback{previous.request, previous.generation, current.generation,
                    "generation " + std::to_string(current.generation) + " crashed " +
                        std::to_string(current.crashes) + " times within " +
                        format_duration(rollback_window_) + " of being put in place"};
  app.versions.pop_back();  // a version that crash-loops is no good version to go back to
  app.last_rollback = rollback;
  app.rolled_back_at = now;
  return rollback;
}

Result<AppHistory::Rollback> AppHistory::previous(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end() || it->second.versions.empty())
    return Status::error("no version of app " + app + " has been up: nothing to roll back to");
  const auto& versions = it->second.versions;
  if (versions.size() < 2)
    return Status::error("app " + app + " has had one version only (" +
                         said(versions.back().request, versions.back().generation) +
                         "): nothing to roll back to");
  const Version& previous = versions[versions.size() - 2];
  return Rollback{previous.request, previous.generation, versions.back().generation,
                  "asked by serverswap rollback"};
}

Result<SpawnSpec> AppHistory::current(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end() || it->second.versions.empty())
    return Status::error("no version of app " + app + " has been up");
  return it->second.versions.back().request;
}

std::vector<protocol::AppStatus> AppHistory::status() const {
  std::vector<protocol::AppStatus> list;
  auto now = clock_.now();
  for (const auto& [name, app] : apps_) {
    protocol::AppStatus status;
    status.app = name;
    for (const auto& v : app.versions)
      status.versions.push_back({v.request.argv, v.request.cwd, int64_t(v.generation)});
    if (app.last_rollback)
      status.rolled_back = protocol::AppStatus::Rollback{
          int64_t(app.last_rollback->from_generation), int64_t(app.last_rollback->to_generation),
          app.last_rollback->reason,
          std::chrono::duration_cast<Millis>(now - app.rolled_back_at).count()};
    list.push_back(std::move(status));
  }
  return list;
}

std::vector<std::string> AppHistory::names() const {
  std::vector<std::string> names;
  for (const auto& [name, app] : apps_) names.push_back(name);
  return names;
}

}  // namespace serverswap::daemon
