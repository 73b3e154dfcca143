#include "daemon/reload.h"

#include <memory>

namespace serverswap::daemon {
namespace {

using protocol::Json;

struct Progress {
  Supervisor::Sink events;
  std::function<void(const Json&)> done;
  Json deploys = Json::array();
  size_t pending = 0;
  bool ok = true;
};

// Records one deploy's outcome; the last one reports the whole reload.
void settle(Progress& progress, size_t index, Json outcome) {
  if (!progress.deploys[index].value("ok", Json()).is_null()) return;  // already settled
  progress.ok = progress.ok && outcome.value("ok", false);
  progress.deploys[index].update(outcome);
  if (--progress.pending == 0)
    progress.done(protocol::make("reloaded", {{"ok", progress.ok}, {"deploys", progress.deploys}}));
}

}  // namespace

void reload_servers(Supervisor& supervisor, Supervisor::Sink events,
                    std::function<void(const Json& reloaded)> done) {
  std::vector<SpawnSpec> requests = supervisor.up_requests();
  auto progress = std::make_shared<Progress>();
  progress->events = std::move(events);
  progress->done = std::move(done);
  progress->pending = requests.size();
  for (const auto& request : requests)
    progress->deploys.push_back({{"argv", request.argv}, {"ok", nullptr}});
  if (requests.empty()) {
    progress->done(protocol::make("reloaded", {{"ok", true}, {"deploys", Json::array()}}));
    return;
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    supervisor.deploy(
        requests[i],
        [progress, i](const Json& message) {
          if (message.contains("event")) {
            progress->events(message);
          } else if (message.contains("deployed")) {
            const Json& body = message["deployed"];
            settle(*progress, i,
                   {{"ok", true}, {"pid", body["pid"]}, {"replaced", body["replaced"]}});
          } else if (message.contains("deployFailed")) {
            settle(*progress, i, {{"ok", false}, {"reason", message["deployFailed"]["reason"]}});
          }
        },
        /*follow_exit=*/false);
  }
}

}  // namespace serverswap::daemon
