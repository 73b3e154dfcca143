#include "client/node_relay.h"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <span>
#include <utility>

#include "base/log.h"
#include "client/control_channel.h"
#include "handover/fd_passing.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"
#include "protocol/server_messages.h"

namespace serverswap::client {
namespace {

using protocol::Json;

// Node's end of the channel is blocking: a write waits for Node to read, as Node's own
// IPC does.
Status write_all(int fd, const std::string& data, std::span<const int> pass_fds = {}) {
  size_t done = 0;
  while (done < data.size()) {
    auto sent = handover::send_with_fds(fd, std::string_view(data).substr(done),
                                        done == 0 ? pass_fds : std::span<const int>());
    if (!sent.ok()) return sent.status().wrap("to node");
    done += *sent;
  }
  return {};
}

class Relay {
 public:
  Relay(UniqueFd node, ControlChannel channel)
      : node_(std::move(node)), channel_(std::move(channel)) {}

  // Runs until Node hangs up (kNodeClosed) or the daemon is gone for good.
  RelayEnd run() {
    for (;;) {
      pollfd fds[2] = {{node_.get(), POLLIN, 0}, {channel_.fd(), POLLIN, 0}};  // -1: skipped
      if (::poll(fds, 2, channel_.timeout_ms()) < 0) {
        if (errno == EINTR) continue;
        return {RelayEnd::Why::kError, Status::system_error("poll", errno)};
      }
      if (fds[0].revents) {
        if (Status s = from_node(); !s.ok()) {
          // What the daemon said before it closed (its refusal of our hello) reaches Node.
          if (!node_closed_) to_node();
          return {node_closed_ ? RelayEnd::Why::kNodeClosed : RelayEnd::Why::kError, s};
        }
      }
      if (fds[1].revents) channel_.read_available();
      if (Status s = to_node(); !s.ok()) return {RelayEnd::Why::kError, s};
      channel_.advance();
      if (channel_.gone()) return {RelayEnd::Why::kError, channel_.lost()};
    }
  }

 private:
  struct Outgoing {
    std::string line;
    UniqueFd fd;
  };

  Status from_node() {
    char buf[16384];
    auto got = handover::recv_with_fd(node_.get(), buf, sizeof buf);  // an fd is dropped
    if (!got.ok()) return got.status().wrap("from node");
    if (got->bytes == 0) {
      node_closed_ = true;
      return Status::error("node closed the channel");
    }
    node_lines_.append(std::string_view(buf, got->bytes));
    while (auto line = node_lines_.next_line()) {
      if (Status s = node_line(*line); !s.ok()) return s;
    }
    if (node_lines_.overflowed()) return Status::error("line from node too long");
    return {};
  }

  Status node_line(const std::string& line) {
    if (line.empty()) return {};
    auto message = protocol::decode(line);
    if (!message.ok()) {
      log_line("node-relay: ignoring a line from node: " + message.status().message());
      return {};
    }
    if (message->whole.contains("cmd")) {
      // Node's own channel messages, not for the daemon.
      if (message->whole["cmd"] != "NODE_HANDLE_ACK") return {};
      awaiting_ack_ = false;
      return flush();
    }
    if (message->name == "hello") return channel_.hello(message->body);
    // No daemon now: the resume hello carries what the server said; a readyFor cannot wait.
    if (message->name == "readyFor" && !channel_.connected() && channel_.reconnecting()) {
      protocol::ErrorReply refusal{"not connected to the daemon (reconnecting after it went away)",
                                   message->whole};
      queue_.push_back({protocol::encode(refusal.encode()), UniqueFd()});
      return flush();
    }
    return channel_.send_or_defer(message->whole, message->name);
  }

  // Everything the daemon sent, in order; a resourceReady with its socket as NODE_HANDLE.
  Status to_node() {
    while (auto in = channel_.next()) {
      const protocol::Message& m = in->message;
      Outgoing out{protocol::encode(m.whole), UniqueFd()};
      if (m.name == protocol::ResourceReady::kName && in->fd) {
        // fd pairing: the socket is kept under the name the daemon answered with.
        if (auto ready = protocol::ResourceReady::decode(m); ready.ok())
          channel_.memory().keep(ready->resource, in->fd.get());
        Json wrapped = {{"cmd", "NODE_HANDLE"}, {"type", "net.Native"}, {"msg", m.whole}};
        out = {protocol::encode(wrapped), std::move(in->fd)};
      }
      queue_.push_back(std::move(out));
    }
    return flush();
  }

  // Sends queued lines in order; after a handle, waits for Node's ACK before the next line.
  Status flush() {
    while (!awaiting_ack_ && !queue_.empty()) {
      Outgoing out = std::move(queue_.front());
      queue_.pop_front();
      const int fd = out.fd.get();
      auto fds = out.fd ? std::span<const int>(&fd, 1) : std::span<const int>();
      if (Status s = write_all(node_.get(), out.line, fds); !s.ok()) return s;
      awaiting_ack_ = out.fd.valid();
    }
    return {};
  }

  UniqueFd node_;
  ControlChannel channel_;
  protocol::LineFramer node_lines_;
  std::deque<Outgoing> queue_;
  bool awaiting_ack_ = false;
  bool node_closed_ = false;
};

}  // namespace

RelayEnd run_node_relay(UniqueFd node, const std::string& socket_path) {
  int connect_errno = 0;
  auto daemon = connect_unix(socket_path, 0, &connect_errno);
  if (!daemon.ok() &&
      (socket_path.empty() || connect_errno == ENOENT || connect_errno == ECONNREFUSED)) {
    // No daemon at all when the server starts: the Node client runs standalone and says so
    // on stderr itself (one line), so the relay only tells it why, on the channel
    // ({"noDaemon": {"socket": PATH, "error": TEXT}}, a message between the two halves of
    // the Node client, never sent to a daemon). A daemon lost later is reconnected to.
    const std::string why = socket_path.empty() ? std::string("SERVERSWAP_SOCKET is not set")
                                                : std::string(std::strerror(connect_errno));
    Json said = {{"noDaemon", {{"socket", socket_path}, {"error", why}}}};
    Status told = write_all(node.get(), protocol::encode(said));
    if (!told.ok())
      told = Status::error(daemon.status().message() + " (telling node: " + told.message() + ")");
    return {RelayEnd::Why::kNoDaemon, told};
  }
  if (!daemon.ok()) return {RelayEnd::Why::kError, daemon.status()};
  Options options;
  options.socket_path = socket_path;
  auto channel = ControlChannel::over(std::move(*daemon), options);
  if (!channel.ok()) return {RelayEnd::Why::kError, channel.status()};
  return Relay(std::move(node), std::move(*channel)).run();
}

}  // namespace serverswap::client
