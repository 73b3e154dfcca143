// The node relay: the C++ half of the Node.js client (clients/node/lib/client.js), run as
// `serverswap node-relay` (src/cli/node_relay_command.cc is its command line). Node cannot
// receive a descriptor on a net.Socket, but its own IPC channel (NODE_CHANNEL_FD, JSON
// lines) carries listening handles. The Node client starts the relay as a child with an
// 'ipc' stdio; the relay speaks the protocol to the daemon on its behalf through the same
// client core as the C/C++ client (ControlChannel: framing, descriptor pairing, the resume
// memory and reconnecting): Node's lines go to the daemon, the daemon's lines go to Node,
// and a resourceReady with its listening socket goes as Node's NODE_HANDLE message, one at
// a time (Node answers each with NODE_HANDLE_ACK). Working through a child rather than the
// daemon opening the channel itself means it works the same behind `npm start` or `sh -c`.
//
// The relay holds the Node server's state for a daemon restart (docs/protocol.md §11): a
// duplicate of every listening socket it passed to Node, the onTakedown subscriptions and
// whether serverUp was said; when the daemon goes away it reconnects and says the `resume`
// hello itself. Node sees nothing of it but messages from the new daemon later on. A
// readyFor while the daemon is away is answered with an error at once.
#pragma once

#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace serverswap::client {

struct RelayEnd {
  enum class Why {
    kNodeClosed,  // Node closed the channel: the server exited (the normal end)
    kNoDaemon,    // no daemon at SERVERSWAP_SOCKET at start: Node was told ({"noDaemon"})
    kError,       // anything else: the daemon is gone for good, or a channel failed
  };
  Why why = Why::kError;
  Status status;  // why, for kError; for kNoDaemon, an error only if telling Node failed
};

// Runs the relay between `node` (Node's end of the IPC channel, taken) and the daemon at
// `socket_path` until either side ends. Blocks; errors name what failed.
RelayEnd run_node_relay(UniqueFd node, const std::string& socket_path);

}  // namespace serverswap::client
