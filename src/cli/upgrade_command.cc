// `serverswap upgrade [--binary PATH]`: the daemon re-executes PATH in its own process
// (docs/protocol.md, "Upgrade"); this waits until the new image answers and prints it.
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

// The new image: connected, and its status (pid, version). Bounded by `within`.
Result<Json> new_image_status(const std::string& socket, Millis within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    bool no_daemon;
    auto client = ControlClient::connect(socket, &no_daemon);
    if (client.ok() && client->send(protocol::make("status", true)).ok()) {
      for (auto reply = client->next(within); reply.ok(); reply = client->next(within))
        if (reply->name == "status") {
          const Json& body = reply->body;
          return body.is_object() && body.contains("daemon") ? body["daemon"] : Json::object();
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
  Json body = Json::object();
  if (!binary.empty()) {
    std::error_code ec;
    body["path"] = std::filesystem::absolute(binary, ec).string();
  }
  if (Status s = client->send(protocol::make("upgrade", body)); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  auto reply = client->next(Millis(30'000));
  // Deploys in flight: the daemon upgrades once they have ended, within the bound it names.
  if (reply.ok() && reply->name == "upgradeWaiting") {
    int64_t within = reply->body.is_object() ? reply->body.value("withinMs", int64_t{0}) : 0;
    say("upgrade: waiting for " + reply_string(reply->body, "reason") + " to end (at most " +
        format_duration(Millis(within)) + ")");
    reply = client->next(Millis(within + 30'000));
  }
  if (!reply.ok()) {
    say(reply.status().message() + "; the outcome of the upgrade is unknown");
    return kFailed;
  }
  if (reply->name != "upgrading") {
    say("upgrade refused: " +
        (reply->body.is_string() ? reply->body.get<std::string>() : reply->whole.dump()));
    return kFailed;
  }
  say("upgrading: the daemon executes " + reply_string(reply->body, "path") + " (" +
      reply_string(reply->body, "to") + ", from " + reply_string(reply->body, "from") + ")");
  // The old image's connection ends at the exec; an error line means the exec failed.
  for (auto line = client->next(Millis(30'000)); line.ok(); line = client->next(Millis(30'000))) {
    if (line->name == "error") {
      say(line->body.is_string() ? line->body.get<std::string>() : line->whole.dump());
      return kFailed;
    }
  }
  auto status = new_image_status(*socket, Millis(30'000));
  if (!status.ok()) {
    say(status.status().message());
    return kFailed;
  }
  say("upgraded: daemon pid " + reply_text(*status, "pid") + " runs serverswap " +
      reply_string(*status, "version", "?"));
  return kOk;
}

}  // namespace serverswap::cli
