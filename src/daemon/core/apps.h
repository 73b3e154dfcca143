// Apps (docs/architecture.md, "Apps"): which server's resource belongs to which app, and the
// rule that one app may not take another's resource unless its deploy says --replace APP.
// Pure functions over the server table; loop thread only (the table is the Supervisor's).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/status.h"
#include "daemon/core/server.h"

namespace serverswap::daemon {

// The server of another app that holds `name` (starting or serving, not taken down there)
// and that `request` may not take it from (its app is not in request.replace); nullptr when
// there is none. `self`: the server asking, never counted as a holder (nullptr: none yet).
const Server* other_apps_holder(const std::map<std::string, std::unique_ptr<Server>>& servers,
                                const SpawnSpec& request, const std::string& name,
                                const Server* self);

// The refusal of `request` because `holder` has the resource: whose it is, and the two ways
// on (--replace APP, or --name APP when it is in fact a new version of that app).
Status claimed_by(const SpawnSpec& request, const Server& holder);

}  // namespace serverswap::daemon
