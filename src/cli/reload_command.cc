// `serverswap reload`: every up server's command deployed again (what SIGHUP does, and
// what systemd's ExecReload= runs). 0 when every redeploy succeeded, 1 otherwise.
#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

std::string command_of(const Json& deploy) {
  std::vector<std::string> argv;
  for (const auto& a : reply_array(deploy, "argv"))
    argv.push_back(a.is_string() ? a.get<std::string>() : "?");
  return join(argv, " ");
}

// Reads the reply without trusting its shape (control_client.h).
std::string describe(const Json& deploy) {
  std::string command = command_of(deploy);
  if (!reply_bool(deploy, "ok", false))
    return "reload of '" + command + "' failed: " + reply_string(deploy, "reason") +
           "; the running server keeps serving";
  std::string out = "reloaded '" + command + "': pid " + reply_text(deploy, "pid") + " is up";
  if (!reply_array(deploy, "replaced").empty())
    out += ", replaced " + reply_text(deploy, "replaced");
  return out;
}

int report(const Json& reloaded) {
  const Json& deploys = reply_array(reloaded, "deploys");
  if (deploys.empty()) say("no server is up; nothing to reload");
  for (const auto& d : deploys) say(describe(d));
  return reply_bool(reloaded, "ok", false) ? kOk : kFailed;
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
    if (message->name == "event" && !options.quiet) say(reply_string(message->body, "text"));
    if (message->name == "reloaded") return report(message->body);
    if (message->name == "reloadQueued")
      say("reload queued until no deploy is in flight (" + reply_string(message->body, "reason") +
          "): a reload now would redeploy the old version over them");
    if (message->name == "error") {
      say("the daemon refused the reload: " + reply_text(message->whole, "error"));
      return kFailed;
    }
  }
}

}  // namespace serverswap::cli
