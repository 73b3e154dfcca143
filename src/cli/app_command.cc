// `serverswap rollback APP`, `restart APP` and `rm APP`: requests about one app
// (docs/protocol.md section 7). rollback and restart are deploys of a version the daemon
// remembers, reported as any deploy (serverswap-deploy's stay attached until the server
// exits, as its deploys do); rm stops the app and forgets it.
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"
#include "protocol/control_replies.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace serverswap::cli {
namespace {

int remove_app(ControlClient& client, const std::string& app, bool quiet) {
  for (;;) {
    auto reply = client.next();
    if (!reply.ok()) {
      say(reply.status().message() + "; whether app " + app + " was removed is unknown");
      return kNoDaemon;
    }
    if (reply->name == protocol::Event::kName && !quiet) {
      if (auto event = protocol::Event::decode(*reply); event.ok()) say(event->text);
    } else if (reply->name == protocol::ErrorReply::kName) {
      say("rm " + app + ": " + error_text(*reply));
      return kFailed;
    } else if (reply->name == protocol::Removed::kName) {
      auto removed = protocol::Removed::decode(*reply);
      int64_t n = removed.ok() ? removed->servers : 0;
      say("app " + app + " removed: " + std::to_string(n) + " server" + (n == 1 ? "" : "s") +
          " exited; its versions and settings are forgotten");
      return kOk;
    }
  }
}

}  // namespace

int app_command(const GlobalOptions& options, const std::string& verb, const std::string& app,
                bool follow_exit) {
  int code = kOk;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  protocol::Json request = verb == "rollback" ? protocol::RollbackRequest{app, follow_exit}.encode()
                           : verb == "restart" ? protocol::RestartRequest{app, follow_exit}.encode()
                                               : protocol::RmRequest{app}.encode();
  if (Status s = client->send(request); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  if (verb == "rm") return remove_app(*client, app, options.quiet);
  return follow_deploy(*client, follow_exit, options.quiet, verb + " of app " + app);
}

}  // namespace serverswap::cli
