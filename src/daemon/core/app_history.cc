#include "daemon/core/app_history.h"

#include <algorithm>

#include "base/duration.h"
#include "base/join.h"

namespace serverswap::daemon {

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

// What a rollback to `version` deploys: it, in the directory it ran in when that is known
// (what its cwd names now may be a later release).
SpawnSpec pinned(const SpawnSpec& version) {
  SpawnSpec request = version;
  request.pinned = version.physical.has_value();
  return request;
}

std::string said(const SpawnSpec& request, uint64_t generation) {
  std::string command;
  for (const auto& word : request.argv) command += (command.empty() ? "" : " ") + word;
  return "generation " + std::to_string(generation) + "'s version ('" + command + "' in " +
         directory_said(request) + ")";
}

int64_t unix_ms() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Two directories known to differ; an unknown one (a version recorded by an older daemon, a
// server taken back from one) differs from none.
static bool other_directory(const std::optional<PhysicalDirectory>& a,
                            const std::optional<PhysicalDirectory>& b) {
  return a && b && !a->same_as(*b);
}

bool AppHistory::Version::is(const SpawnSpec& other) const {
  return request.argv == other.argv && request.cwd == other.cwd && request.env == other.env &&
         !other_directory(request.physical, other.physical);
}

AppHistory::Version AppHistory::keep(const SpawnSpec& request, uint64_t generation) {
  Version version;
  version.request = version_of(request);  // its environment shared, not copied (Environment)
  version.generation = generation;
  return version;
}

void AppHistory::up(const Server& server) {
  if (server.restarts > 0) return;  // a crash restart: the version it restarts is known
  App& app = apps_[app_of(server.request)];
  if (!app.versions.empty() && app.versions.back().is(server.request)) return;
  // A version the app had before (a rollback, or the same release deployed again) moves to
  // the end: it is current again.
  auto old = std::find_if(app.versions.begin(), app.versions.end(),
                          [&](const Version& v) { return v.is(server.request); });
  if (old != app.versions.end()) app.versions.erase(old);
  Version version = keep(server.request, server.generation);
  version.since = clock_.now();
  app.versions.push_back(std::move(version));
  while (app.versions.size() > kVersionsKept) app.versions.pop_front();
}

std::optional<AppHistory::Rollback> AppHistory::crashed(const Server& gone, std::string* why_not) {
  if (rollback_window_ == Millis(0)) return std::nullopt;
  auto it = apps_.find(app_of(gone.request));
  if (it == apps_.end() || it->second.versions.empty()) return std::nullopt;
  App& app = it->second;
  Version& current = app.versions.back();
  if (!current.is(gone.request)) return std::nullopt;  // an older version
  auto now = clock_.now();
  if (now - current.since > rollback_window_) return std::nullopt;
  // Decided once, at the crash that makes it a crash loop: later crashes of the same version
  // are its crash loop's (a rollback that failed leaves that loop going).
  if (++current.crashes != kCrashesToRollBack) return std::nullopt;
  current.crash_looped = true;
  std::string none;
  const Version* previous = rollback_target(it->first, app.versions, &none);
  if (!previous) {
    if (why_not) *why_not = none;
    return std::nullopt;
  }
  Rollback rollback{pinned(previous->request), previous->generation, current.generation,
                    "generation " + std::to_string(current.generation) + " crashed " +
                        std::to_string(current.crashes) + " times within " +
                        format_duration(rollback_window_) + " of being put in place"};
  app.versions.pop_back();  // a version that crash-loops is no good version to go back to
  app.last_rollback = rollback;
  app.rolled_back_at = now;
  app.rolled_back_unix_ms = unix_ms();
  app.rollback_failure.reset();
  return rollback;
}

void AppHistory::rollback_failed(const std::string& app, const std::string& reason) {
  if (auto it = apps_.find(app); it != apps_.end()) it->second.rollback_failure = reason;
}

Result<AppHistory::Rollback> AppHistory::previous(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end() || it->second.versions.empty())
    return Status::error("the daemon knows no version of app " + app +
                         " (none was up, or it was removed): nothing to roll back to");
  const auto& versions = it->second.versions;
  std::string none;
  if (const Version* target = rollback_target(app, versions, &none))
    return Rollback{pinned(target->request), target->generation, versions.back().generation,
                    "asked by serverswap rollback"};
  if (versions.size() < 2)
    return Status::error("app " + app + " has one good version known (" +
                         said(versions.back().request, versions.back().generation) +
                         "): nothing to roll back to");
  return Status::error("app " + app + ": " + none);
}

// The latest version before the current one that did not crash-loop and is another command
// line or directory: one with the current's argv and working directory as named runs the
// files on disk now, unless it ran in another physical directory (a release directory
// switched behind a symbolic link: the rollback is started there, SpawnSpec::pinned); else
// (files changed in place, or a version of an older daemon, whose directory is unknown)
// "rolling back" to it would start the release that crashed again under an older name.
const AppHistory::Version* AppHistory::rollback_target(const std::string& app,
                                                       const std::deque<Version>& versions,
                                                       std::string* none) {
  const SpawnSpec& current = versions.back().request;
  bool same_command = false;
  for (size_t i = versions.size() - 1; i-- > 0;) {
    const Version& v = versions[i];
    if (v.crash_looped) continue;
    if (v.request.argv == current.argv && v.request.cwd == current.cwd &&
        !other_directory(v.request.physical, current.physical)) {
      same_command = true;
      continue;
    }
    return &v;
  }
  if (versions.size() < 2)
    *none = "it is the app's first version: there is no earlier one to roll back to";
  else if (same_command)
    *none = "its earlier good versions are the same command in the same directory ('" +
            join(current.argv, " ") + "' in " + current.cwd +
            "), and ran in the same directory or one not recorded: they would run the files "
            "on disk now, the release that crashed (files changed in place? put the earlier "
            "release back, then serverswap restart " +
            app + ")";
  else
    *none = "its earlier versions crash-looped too: there is no good one to roll back to";
  return nullptr;
}

Result<SpawnSpec> AppHistory::current(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end() || it->second.versions.empty())
    return Status::error("the daemon knows no version of app " + app +
                         " (none was up, or it was removed)");
  return it->second.versions.back().request;
}

std::vector<protocol::AppStatus> AppHistory::status(const std::string& versions_of) const {
  std::vector<protocol::AppStatus> list;
  auto now = clock_.now();
  for (const auto& [name, app] : apps_) {
    protocol::AppStatus status;
    status.app = name;
    if (!app.versions.empty()) status.generation = int64_t(app.versions.back().generation);
    if (name == versions_of)
      for (const auto& v : app.versions)
        status.versions.push_back({v.request.argv, v.request.cwd, int64_t(v.generation)});
    if (app.last_rollback)
      status.rolled_back = protocol::AppStatus::Rollback{
          int64_t(app.last_rollback->from_generation), int64_t(app.last_rollback->to_generation),
          app.last_rollback->reason,
          std::chrono::duration_cast<Millis>(now - app.rolled_back_at).count(),
          app.rollback_failure};
    list.push_back(std::move(status));
  }
  return list;
}

std::vector<AppRecord> AppHistory::record() const {
  std::vector<AppRecord> list;
  for (const auto& [name, app] : apps_) {
    AppRecord record{name, {}, std::nullopt};
    for (const auto& v : app.versions)
      record.versions.push_back({v.request, v.generation, v.crash_looped});
    if (const auto& r = app.last_rollback)
      record.last_rollback = RollbackRecord{r->from_generation, r->to_generation, r->reason,
                                            app.rolled_back_unix_ms, app.rollback_failure};
    list.push_back(std::move(record));
  }
  return list;
}

void AppHistory::restore(const std::vector<AppRecord>& apps) {
  auto now = clock_.now();
  for (const auto& record : apps) {
    if (record.versions.empty()) continue;
    App& app = apps_[record.app];
    app.versions.clear();
    for (const auto& v : record.versions) {
      Version version = keep(v.request, v.generation);
      version.crash_looped = v.crash_looped;
      // Its window is over (see restore() in the header): crashed() counts none of its crashes.
      version.since = now - rollback_window_ - Millis(1);
      app.versions.push_back(std::move(version));
    }
    while (app.versions.size() > kVersionsKept) app.versions.pop_front();
    if (const auto& r = record.last_rollback) {
      app.last_rollback = Rollback{SpawnSpec{}, r->to_generation, r->from_generation, r->reason};
      app.rollback_failure = r->failure;
      app.rolled_back_unix_ms = r->at_unix_ms;
      // Only for status's "since": the wall clock is what both daemons share.
      app.rolled_back_at = now - std::max(Millis(0), Millis(unix_ms() - r->at_unix_ms));
    }
  }
}

}  // namespace serverswap::daemon
