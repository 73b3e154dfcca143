// `serverswap upgrade [--binary PATH]`: the daemon re-executes PATH in its own process
// (docs/protocol.md, "Upgrade"); this waits until the new image answers and prints it.
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"
#include "protocol/control_replies.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

// The new image: connected, and its status (pid, version). Bounded by `within`.
Result<protocol::DaemonStatus> new_image_status(const std::string& socket, Millis within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    bool no_daemon;
    auto client = ControlClient::connect(socket, &no_daemon);
    if (client.ok() && client->send(protocol::StatusRequest{}.encode()).ok()) {
      for (auto reply = client->next(within); reply.ok(); reply = client->next(within))
        if (reply->name == protocol::StatusReply::kName) {
          auto status = protocol::StatusReply::decode(*reply);
          if (!status.ok()) return status.status().wrap("the upgraded daemon's status");
          return status->daemon;
        }
    }
    if (std::chrono::steady_clock::now() > deadline)
      return Status::error("the upgraded daemon did not answer within " + format_duration(within));
    usleep(20'000);  // between attempts only: each attempt itself waits on the socket
  }
}

}  // namespace

int upgrade_command(const GlobalOptions& options, const std::string& binary) {
  int code = 0;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  auto socket = resolve_socket_path(options.socket);  // the same path: it resolved just now
  protocol::UpgradeRequest request;
  if (!binary.empty()) {
    std::error_code ec;
    request.path = std::filesystem::absolute(binary, ec).string();
  }
  if (Status s = client->send(request.encode()); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  auto reply = client->next(Millis(30'000));
  // Deploys in flight: the daemon upgrades once they have ended, within the bound it names.
  if (reply.ok() && reply->name == protocol::UpgradeWaiting::kName) {
    auto waiting = protocol::UpgradeWaiting::decode(*reply);
    if (!waiting.ok()) {
      say("upgrade: " + waiting.status().message() + "; the outcome of the upgrade is unknown");
      return kFailed;
    }
    say("upgrade: waiting for " + waiting->reason + " to end (at most " +
        format_duration(Millis(waiting->within_ms)) + ")");
    reply = client->next(Millis(waiting->within_ms + 30'000));
  }
  if (!reply.ok()) {
    say(reply.status().message() + "; the outcome of the upgrade is unknown");
    return kFailed;
  }
  auto upgrading = reply->name == protocol::Upgrading::kName
                       ? protocol::Upgrading::decode(*reply)
                       : Result<protocol::Upgrading>(Status::error(error_text(*reply)));
  if (!upgrading.ok()) {
    say("upgrade refused: " + upgrading.status().message());
    return kFailed;
  }
  say("upgrading: the daemon executes " + upgrading->path + " (" + upgrading->to + ", from " +
      upgrading->from + ")");
  // The old image's connection ends at the exec; an error line means the exec failed.
  for (auto line = client->next(Millis(30'000)); line.ok(); line = client->next(Millis(30'000))) {
    if (line->name == protocol::ErrorReply::kName) {
      say(error_text(*line));
      return kFailed;
    }
  }
  auto status = new_image_status(*socket, Millis(30'000));
  if (!status.ok()) {
    say(status.status().message());
    return kFailed;
  }
  say("upgraded: daemon pid " + std::to_string(status->pid) + " runs serverswap " +
      status->version);
  return kOk;
}

}  // namespace serverswap::cli
