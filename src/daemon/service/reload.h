// Reload: `serverswap reload`, SIGHUP, systemd's ExecReload=. Every server that is up is
// deployed again with the request that started it, exactly as if its command had been run
// again: the new generation takes the sockets over and the old one is taken down, or the
// new one fails and the old one keeps serving. Loop thread only.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>

#include "daemon/core/supervisor.h"
#include "protocol/control_replies.h"

namespace serverswap::daemon {

// Starts one deploy per up server. `events` gets each deploy's event lines; `done` gets,
// once every deploy has succeeded or failed, the `reloaded` reply: each deploy with its
// pid and the pids it replaced, or the reason it failed (right away, with no deploys, when
// no server is up). `apps`: only the servers of these apps (nullopt: every app's).
void reload_servers(Supervisor& supervisor, const std::optional<std::set<std::string>>& apps,
                    Supervisor::Sink events,
                    std::function<void(const protocol::Reloaded& reloaded)> done);

}  // namespace serverswap::daemon
