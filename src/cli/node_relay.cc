// `serverswap node-relay`: the bridge that lets Node.js servers take part. Node cannot
// receive a descriptor on a net.Socket, but its own IPC channel (NODE_CHANNEL_FD, JSON
// lines) carries listening handles. The Node client starts this relay as a child with an
// 'ipc' stdio; the relay speaks the protocol to the daemon on its behalf: lines from Node
// go to the daemon as they are, lines from the daemon go to Node, and a line that came
// with a listening socket goes as Node's NODE_HANDLE message, one at a time (Node answers
// each with NODE_HANDLE_ACK). Working through a child rather than the daemon opening the
// channel itself means it works the same when node runs behind `npm start` or `sh -c`.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>

#include "cli/commands.h"
#include "handover/fd_passing.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

Status write_all(int fd, const std::string& data, int pass_fd = -1) {
  size_t done = 0;
  while (done < data.size()) {
    auto sent =
        handover::send_with_fd(fd, std::string_view(data).substr(done), done == 0 ? pass_fd : -1);
    if (!sent.ok()) return sent.status();
    done += *sent;
  }
  return {};
}

Result<UniqueFd> connect_daemon() {
  const char* path = std::getenv("SERVERSWAP_SOCKET");
  if (!path || !*path) return Status::error("SERVERSWAP_SOCKET is not set");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::system_error(std::string("connect ") + path, errno);
  return fd;
}

class Relay {
 public:
  Relay(UniqueFd node, UniqueFd daemon) : node_(std::move(node)), daemon_(std::move(daemon)) {}

  // Runs until either side hangs up; returns why.
  Status run() {
    for (;;) {
      pollfd fds[2] = {{node_.get(), POLLIN, 0}, {daemon_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return Status::system_error("poll", errno);
      }
      if (fds[0].revents) {
        if (Status s = from_node(); !s.ok()) return s;
      }
      if (fds[1].revents) {
        if (Status s = from_daemon(); !s.ok()) return s;
      }
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
    if (got->bytes == 0) return Status::error("node closed the channel");
    node_lines_.append(std::string_view(buf, got->bytes));
    while (auto line = node_lines_.next_line()) {
      auto message = protocol::decode(*line);
      if (message.ok() && message->whole.contains("cmd")) {
        // Node's own channel messages, not for the daemon.
        if (message->whole["cmd"] == "NODE_HANDLE_ACK") {
          awaiting_ack_ = false;
          if (Status s = flush(); !s.ok()) return s;
        }
        continue;
      }
      if (Status s = write_all(daemon_.get(), *line + "\n"); !s.ok()) return s.wrap("to daemon");
    }
    if (node_lines_.overflowed()) return Status::error("line from node too long");
    return {};
  }

  Status from_daemon() {
    char buf[16384];
    auto got = handover::recv_with_fd(daemon_.get(), buf, sizeof buf);
    if (!got.ok()) return got.status().wrap("from the daemon");
    if (got->bytes == 0) return Status::error("the daemon closed the connection");
    if (got->fd) fds_.push_back(std::move(got->fd));
    daemon_lines_.append(std::string_view(buf, got->bytes));
    while (auto line = daemon_lines_.next_line()) {
      auto message = protocol::decode(*line);
      Outgoing out{*line + "\n", UniqueFd()};
      // The daemon attaches a socket only to resourceReady, each on a write of its own.
      if (message.ok() && message->name == "resourceReady" && !fds_.empty()) {
        out.fd = std::move(fds_.front());
        fds_.pop_front();
        Json wrapped = {{"cmd", "NODE_HANDLE"}, {"type", "net.Native"}, {"msg", message->whole}};
        out.line = protocol::encode(wrapped);
      }
      queue_.push_back(std::move(out));
    }
    // A resourceReady split across reads takes its fd when it completes; anything beyond
    // that came with no line that takes one.
    while (fds_.size() > 1) fds_.pop_front();
    return flush();
  }

  // Sends queued lines in order; after a handle, waits for Node's ACK before the next line.
  Status flush() {
    while (!awaiting_ack_ && !queue_.empty()) {
      Outgoing out = std::move(queue_.front());
      queue_.pop_front();
      if (Status s = write_all(node_.get(), out.line, out.fd.get()); !s.ok()) return s;
      awaiting_ack_ = out.fd.valid();
    }
    return {};
  }

  UniqueFd node_;
  UniqueFd daemon_;
  protocol::LineFramer node_lines_;
  protocol::LineFramer daemon_lines_;
  std::deque<UniqueFd> fds_;
  std::deque<Outgoing> queue_;
  bool awaiting_ack_ = false;
};

}  // namespace

int node_relay_command() {
  const char* channel = std::getenv("NODE_CHANNEL_FD");
  if (!channel) {
    say("node-relay is started by the Node.js client with an 'ipc' channel (NODE_CHANNEL_FD)");
    return kUsage;
  }
  UniqueFd node(std::atoi(channel));
  auto daemon = connect_daemon();
  if (!daemon.ok()) {
    say("node-relay: " + daemon.status().message());
    return kFailed;
  }
  Status end = Relay(std::move(node), std::move(*daemon)).run();
  // Node going away is the normal end: the server exited.
  if (end.message() == "node closed the channel") return kOk;
  say("node-relay: " + end.message());
  return kFailed;
}

}  // namespace serverswap::cli
