// `serverswap reload`: every up server's command deployed again (what SIGHUP does, and
// what systemd's ExecReload= runs). 0 when every redeploy succeeded, 1 otherwise.
#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

std::string describe(const Json& deploy) {
  std::string command = join(deploy["argv"].get<std::vector<std::string>>(), " ");
  if (!deploy.value("ok", false))
    return "reload of '" + command + "' failed: " + deploy.value("reason", "") +
           "; the running server keeps serving";
  std::string out = "reloaded '" + command + "': pid " + deploy["pid"].dump() + " is up";
  if (!deploy["replaced"].empty()) out += ", replaced " + deploy["replaced"].dump();
  return out;
}

int report(const Json& reloaded) {
  const Json& deploys = reloaded["deploys"];
  if (deploys.empty()) say("no server is up; nothing to reload");
  for (const auto& d : deploys) say(describe(d));
  return reloaded.value("ok", false) ? kOk : kFailed;
}

}  // namespace

int reload_command(const GlobalOptions& options) {
  int code = 0;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  if (Status s = client->send(protocol::make("reload", true)); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  for (;;) {
    auto message = client->next();
    if (!message.ok()) {
      say(message.status().message() + "; the outcome of the reload is unknown");
      return kFailed;
    }
    if (message->name == "event" && !options.quiet) say(message->body.value("text", ""));
    if (message->name == "reloaded") return report(message->body);
    if (message->name == "error") {
      say("the daemon refused the reload: " + message->body.get<std::string>());
      return kFailed;
    }
  }
}

}  // namespace serverswap::cli
