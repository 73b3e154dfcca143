#include "daemon/core/apps.h"

#include <algorithm>

namespace serverswap::daemon {

const Server* other_apps_holder(const std::map<std::string, std::unique_ptr<Server>>& servers,
                                const SpawnSpec& request, const std::string& name,
                                const Server* self) {
  std::string app = app_of(request);
  for (const auto& [id, other] : servers) {
    if (other.get() == self || !other->held.count(name) || other->taken.count(name)) continue;
    if (!other->starting() && !other->serving()) continue;
    std::string holder = app_of(other->request);
    auto replaces = [&](const std::string& a) { return a == holder || a == "*"; };
    if (holder != app && std::none_of(request.replace.begin(), request.replace.end(), replaces))
      return other.get();
  }
  return nullptr;
}

Status claimed_by(const SpawnSpec& request, const Server& holder) {
  std::string app = app_of(holder.request);
  return Status::error("app '" + app + "' serves it (generation " +
                       std::to_string(holder.generation) + ", pid " + std::to_string(holder.pid) +
                       "), and this deploy is of app '" + app_of(request) +
                       "': deploy with --replace " + app + " to take it over, or with --name " +
                       app + " if this is a new version of it");
}

}  // namespace serverswap::daemon
