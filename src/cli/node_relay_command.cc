// `serverswap node-relay`: the command line of the node relay (src/client/node_relay.h), the
// Node.js client's C++ half. It reads the channel and the daemon's socket from the
// environment the Node client gives it and maps how the relay ended to an exit code.
#include <cstdlib>
#include <string>

#include "cli/commands.h"
#include "client/node_relay.h"

namespace serverswap::cli {

int node_relay_command() {
  const char* channel = std::getenv("NODE_CHANNEL_FD");
  if (!channel) {
    say("node-relay is started by the Node.js client with an 'ipc' channel (NODE_CHANNEL_FD)");
    return kUsage;
  }
  UniqueFd node(std::atoi(channel));
  const char* path = std::getenv("SERVERSWAP_SOCKET");
  client::RelayEnd end = client::run_node_relay(std::move(node), path != nullptr ? path : "");
  switch (end.why) {
    case client::RelayEnd::Why::kNodeClosed:
      return kOk;  // the server exited
    case client::RelayEnd::Why::kNoDaemon:
      // Node says it runs standalone itself; only a failure to tell it is ours to say.
      if (!end.status.ok()) say("node-relay: " + end.status.message());
      return kFailed;
    case client::RelayEnd::Why::kError:
      break;
  }
  say("node-relay: " + end.status.message());
  return kFailed;
}

}  // namespace serverswap::cli
