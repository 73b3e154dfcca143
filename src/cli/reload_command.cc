// `serverswap reload`: every up server's command deployed again (what SIGHUP does, and
// what systemd's ExecReload= runs). 0 when every redeploy succeeded, 1 otherwise.
#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"
#include "protocol/control_replies.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace serverswap::cli {
namespace {

std::string describe(const protocol::ReloadedDeploy& deploy) {
  std::string command = join(deploy.argv, " ");
  if (!deploy.ok)
    return "reload of '" + command + "' failed: " + deploy.reason.value_or("") +
           "; the running server keeps serving";
  std::string out = "reloaded '" + command + "': pid " +
                    (deploy.pid ? std::to_string(*deploy.pid) : "?") + " is up";
  if (deploy.replaced && !deploy.replaced->empty()) {
    std::vector<std::string> pids;
    for (int64_t pid : *deploy.replaced) pids.push_back(std::to_string(pid));
    out += ", replaced [" + join(pids, ",") + "]";
  }
  return out;
}

int report(const protocol::Message& message) {
  auto reloaded = protocol::Reloaded::decode(message);
  if (!reloaded.ok()) {
    say("a malformed reply from the daemon: " + reloaded.status().message());
    return kFailed;
  }
  if (reloaded->deploys.empty()) say("no server is up; nothing to reload");
  for (const auto& d : reloaded->deploys) say(describe(d));
  return reloaded->ok ? kOk : kFailed;
}

}  // namespace

int reload_command(const GlobalOptions& options, const std::string& app) {
  int code = 0;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  protocol::ReloadRequest request;
  if (!app.empty()) request.app = app;
  if (Status s = client->send(request.encode()); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  for (;;) {
    auto message = client->next();
    if (!message.ok()) {
      say(message.status().message() + "; the outcome of the reload is unknown");
      return kFailed;
    }
    const std::string& name = message->name;
    if (name == protocol::Event::kName && !options.quiet) {
      if (auto event = protocol::Event::decode(*message); event.ok()) say(event->text);
    }
    if (name == protocol::Reloaded::kName) return report(*message);
    if (name == protocol::ReloadQueued::kName) {
      auto queued = protocol::ReloadQueued::decode(*message);
      say("reload queued until no deploy is in flight (" +
          (queued.ok() ? queued->reason : queued.status().message()) +
          "): a reload now would deploy the commands that serve now again, superseding the "
          "deploys in flight");
    }
    if (name == protocol::ErrorReply::kName) {
      say("the daemon refused the reload: " + error_text(*message));
      return kFailed;
    }
  }
}

}  // namespace serverswap::cli
