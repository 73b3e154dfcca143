#include "daemon/service/reload.h"

#include <memory>

namespace serverswap::daemon {
namespace {

using protocol::Json;

struct Progress {
  Supervisor::Sink events;
  std::function<void(const protocol::Reloaded&)> done;
  protocol::Reloaded reloaded;
  std::vector<bool> settled;
  size_t pending = 0;
};

// Records one deploy's outcome; the last one reports the whole reload.
void settle(Progress& progress, size_t index, bool ok, std::optional<int64_t> pid,
            std::optional<std::vector<int64_t>> replaced, std::optional<std::string> reason) {
  if (progress.settled[index]) return;
  progress.settled[index] = true;
  protocol::ReloadedDeploy& deploy = progress.reloaded.deploys[index];
  deploy.ok = ok;
  deploy.pid = std::move(pid);
  deploy.replaced = std::move(replaced);
  deploy.reason = std::move(reason);
  progress.reloaded.ok = progress.reloaded.ok && ok;
  if (--progress.pending == 0) progress.done(progress.reloaded);
}

}  // namespace

void reload_servers(Supervisor& supervisor, const std::optional<std::set<std::string>>& apps,
                    Supervisor::Sink events,
                    std::function<void(const protocol::Reloaded& reloaded)> done) {
  std::vector<SpawnSpec> requests;
  for (auto& request : supervisor.up_requests())
    if (!apps || apps->count(app_of(request))) requests.push_back(std::move(request));
  auto progress = std::make_shared<Progress>();
  progress->events = std::move(events);
  progress->done = std::move(done);
  progress->pending = requests.size();
  for (const auto& request : requests) {
    protocol::ReloadedDeploy deploy;
    deploy.argv = request.argv;
    progress->reloaded.deploys.push_back(std::move(deploy));
  }
  progress->settled.assign(requests.size(), false);
  if (requests.empty()) {
    progress->done(progress->reloaded);
    return;
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    supervisor.deploy(
        requests[i],
        [progress, i](const Json& line) {
          auto message = protocol::as_message(line);
          if (!message.ok()) return;
          if (message->name == protocol::Event::kName) {
            progress->events(line);
          } else if (message->name == protocol::Deployed::kName) {
            auto deployed = protocol::Deployed::decode(*message);
            if (deployed.ok())
              settle(*progress, i, true, deployed->pid, deployed->replaced, std::nullopt);
            else
              settle(*progress, i, false, std::nullopt, std::nullopt, deployed.status().message());
          } else if (message->name == protocol::DeployFailed::kName) {
            auto failed = protocol::DeployFailed::decode(*message);
            settle(*progress, i, false, std::nullopt, std::nullopt,
                   failed.ok() ? failed->reason : failed.status().message());
          }
        },
        /*follow_exit=*/false);
  }
}

}  // namespace serverswap::daemon
