// App names (docs/protocol.md, "Apps"): what deploys of one app share, and the rule that
// names an app when the deploy gives no --name. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace serverswap::protocol {

// At most this many bytes: a name is a status column and a metrics label.
inline constexpr size_t kMaxAppNameBytes = 64;

// OK when `name` is an app name: 1 to 64 bytes of [A-Za-z0-9._-], not starting with '.' or
// '-' (so that it is never taken for an option or a hidden file), and not "all" (`stop
// --all` is spelled with the option; a name "all" would read as everything). The error says
// which rule it breaks.
Status check_app_name(std::string_view name);

// The name of the app `argv` runs when the deploy gives none:
//  - under a known interpreter (node, python3, ruby, perl, php, bun, deno, sh, bash, ...)
//    the base name of its script without extension (`node server.js` -> "server",
//    `python3 -m http.server` -> "http.server"); options before the script are skipped,
//    with their values for the few that take one (`node -r serverswap app.js` -> "app");
//  - `env [-i] [NAME=VALUE]... PROGRAM ...` is named for PROGRAM;
//  - else the program's base name (`./hello_server :8080` -> "hello_server").
// Characters outside the name alphabet become '-', and the result is cut to 64 bytes;
// "app" when nothing is left. Arguments (ports, versions, flags) never change the name:
// they make a new version of the same app.
std::string derive_app_name(const std::vector<std::string>& argv);

}  // namespace serverswap::protocol
