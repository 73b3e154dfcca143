// `serverswap node-relay`: the bridge that lets Node.js servers take part. Node cannot
// receive a descriptor on a net.Socket, but its own IPC channel (NODE_CHANNEL_FD, JSON
// lines) carries listening handles. The Node client starts this relay as a child with an
// 'ipc' stdio; the relay speaks the protocol to the daemon on its behalf: lines from Node
// go to the daemon as they are, lines from the daemon go to Node, and a line that came
// with a listening socket goes as Node's NODE_HANDLE message, one at a time (Node answers
// each with NODE_HANDLE_ACK). Working through a child rather than the daemon opening the
// channel itself means it works the same when node runs behind `npm start` or `sh -c`.
//
// The relay is also the Node server's memory for a daemon restart (docs/protocol.md §11):
// it keeps a duplicate of every listening socket it passed to Node, the onTakedown
// subscriptions and whether serverUp was sent, and when the daemon's connection reaches
// end-of-file it reconnects (100 ms, doubling up to 1 s) and says the `resume` hello itself.
// Node sees nothing of it but a takeDown from the new daemon later on.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "base/duration.h"
#include "cli/commands.h"
#include "handover/fd_passing.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"
#include "protocol/resource.h"

namespace serverswap::cli {
namespace {

using protocol::Json;
using Clock = std::chrono::steady_clock;

constexpr Millis kFirstRetry{100};
constexpr Millis kMaxRetry{1000};
constexpr Millis kWelcomeTimeout{10'000};

Status write_all(int fd, const std::string& data, std::span<const int> pass_fds = {}) {
  size_t done = 0;
  while (done < data.size()) {
    auto sent = handover::send_with_fds(fd, std::string_view(data).substr(done),
                                        done == 0 ? pass_fds : std::span<const int>());
    if (!sent.ok()) return sent.status();
    done += *sent;
  }
  return {};
}

// `socket_flags` SOCK_NONBLOCK for a reconnect: a daemon whose accept queue is full makes connect()
// fail with EAGAIN (tried again later) rather than hang the relay. The socket is blocking
// afterwards either way, as write_all wants. `connect_errno`, when given, gets connect()'s
// errno on failure (0 when something else failed).
Result<UniqueFd> connect_daemon(const std::string& path, int socket_flags = 0,
                                int* connect_errno = nullptr) {
  if (connect_errno != nullptr) *connect_errno = 0;
  if (path.empty()) return Status::error("SERVERSWAP_SOCKET is not set");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | socket_flags, 0));
  if (!fd) return Status::system_error("socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (connect_errno != nullptr) *connect_errno = err;
    return Status::system_error("connect " + path, err);
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return Status::system_error("clear O_NONBLOCK on the control socket", errno);
  return fd;
}

int millis_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

std::string text_of(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Whether two spellings name one resource (the daemon echoes the one it was asked).
bool same_resource(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto pa = protocol::parse_resource(a);
  auto pb = protocol::parse_resource(b);
  return pa.ok() && pb.ok() && pa->name() == pb->name();
}

class Relay {
 public:
  Relay(UniqueFd node, UniqueFd daemon, std::string socket_path)
      : node_(std::move(node)), daemon_(std::move(daemon)), socket_path_(std::move(socket_path)) {}

  // Runs until Node hangs up, or the daemon does and the server cannot resume; returns why.
  Status run() {
    for (;;) {
      pollfd fds[2] = {{node_.get(), POLLIN, 0}, {daemon_.get(), POLLIN, 0}};
      if (::poll(fds, 2, timeout_ms()) < 0) {
        if (errno == EINTR) continue;
        return Status::system_error("poll", errno);
      }
      if (fds[0].revents) {
        if (Status s = from_node(); !s.ok()) return s;
      }
      if (fds[1].revents && daemon_) {
        if (Status s = from_daemon(); !s.ok()) return s;
      }
      if (Status s = advance(); !s.ok()) return s;
    }
  }

 private:
  enum class Link { kConnected, kWaiting, kResuming };
  struct Outgoing {
    std::string line;
    UniqueFd fd;
  };
  struct Held {
    std::string resource;
    UniqueFd fd;
  };

  Status from_node() {
    char buf[16384];
    auto got = handover::recv_with_fd(node_.get(), buf, sizeof buf);  // an fd is dropped
    if (!got.ok()) return got.status().wrap("from node");
    if (got->bytes == 0) return Status::error("node closed the channel");
    node_lines_.append(std::string_view(buf, got->bytes));
    while (auto line = node_lines_.next_line()) {
      if (Status s = node_line(*line); !s.ok()) return s;
    }
    if (node_lines_.overflowed()) return Status::error("line from node too long");
    return {};
  }

  Status node_line(const std::string& line) {
    auto message = protocol::decode(line);
    if (message.ok() && message->whole.contains("cmd")) {
      // Node's own channel messages, not for the daemon.
      if (message->whole["cmd"] != "NODE_HANDLE_ACK") return {};
      awaiting_ack_ = false;
      return flush();
    }
    if (message.ok()) remember(*message);
    if (daemon_) return write_all(daemon_.get(), line + "\n").wrap("to daemon");
    // No daemon now: the resume hello carries what the server said; a readyFor cannot wait.
    if (message.ok() && message->name == "readyFor") {
      queue_.push_back(
          {protocol::encode(protocol::error_reply(
               "not connected to the daemon (reconnecting after it went away)", message->whole)),
           UniqueFd()});
      return flush();
    }
    return {};
  }

  // What a resume hello needs to know of the server's own messages.
  void remember(const protocol::Message& m) {
    if (m.name == "hello") {
      // Only an object can take the "resume" field: another body is the daemon's to refuse.
      if (m.body.is_object()) hello_ = m.body;
    } else if (m.name == "onTakedown" && m.body.is_string()) {
      auto resource = m.body.get<std::string>();
      if (std::find(subscribed_.begin(), subscribed_.end(), resource) == subscribed_.end())
        subscribed_.push_back(resource);
    } else if (m.name == "serverUp") {
      up_ = true;
    } else if (m.name == "fail") {
      failed_ = true;
    } else if (m.name == "tookDown") {
      release(text_of(m.body));
    }
  }

  Status from_daemon() {
    char buf[16384];
    auto got = handover::recv_with_fd(daemon_.get(), buf, sizeof buf);
    if (!got.ok() && errno != ECONNRESET) return got.status().wrap("from the daemon");
    if (!got.ok() || got->bytes == 0) return daemon_lost("the daemon closed the connection");
    if (got->fd) fds_.push_back(std::move(got->fd));
    daemon_lines_.append(std::string_view(buf, got->bytes));
    while (auto line = daemon_lines_.next_line()) {
      if (Status s = daemon_line(*line); !s.ok()) return s;
    }
    // A resourceReady split across reads takes its fd when it completes; anything beyond
    // that came with no line that takes one.
    while (fds_.size() > 1) fds_.pop_front();
    return flush();
  }

  Status daemon_line(const std::string& line) {
    auto message = protocol::decode(line);
    last_line_error_ = message.ok() && message->name == "error";
    if (message.ok() && link_ == Link::kResuming) {
      if (message->name == "welcome") return resumed();
      if (message->name == "error")
        return give_up("the daemon refused to resume this server: " + text_of(message->body));
    }
    Outgoing out{line + "\n", UniqueFd()};
    // The daemon attaches a socket only to resourceReady, each on a write of its own.
    if (message.ok() && message->name == "resourceReady" && !fds_.empty()) {
      out.fd = std::move(fds_.front());
      fds_.pop_front();
      keep(text_of(message->body), out.fd.get());
      Json wrapped = {{"cmd", "NODE_HANDLE"}, {"type", "net.Native"}, {"msg", message->whole}};
      out.line = protocol::encode(wrapped);
    } else if (message.ok() && message->name == "takeDown") {
      release(text_of(message->body));
    }
    queue_.push_back(std::move(out));
    return {};
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

  // ---- resume after a daemon restart --------------------------------------------------

  void keep(const std::string& resource, int fd) {
    for (const Held& held : holding_)
      if (held.resource == resource) return;
    if (holding_.size() == handover::kMaxFdsPerMessage) return;
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (copy) holding_.push_back({resource, std::move(copy)});
  }

  void release(const std::string& resource) {
    taken_down_ = true;
    std::erase_if(holding_,
                  [&](const Held& held) { return same_resource(held.resource, resource); });
  }

  bool may_resume() const {
    if (socket_path_.empty() || hello_.is_null() || failed_ || last_line_error_) return false;
    return !(taken_down_ && holding_.empty());
  }

  Status daemon_lost(const std::string& why) {
    daemon_.reset();
    daemon_lines_ = protocol::LineFramer();
    fds_.clear();
    if (!may_resume()) return Status::error(why);
    if (link_ == Link::kConnected) {
      say("node-relay: lost the daemon (" + why + "); serving on and reconnecting to " +
          socket_path_);
      retry_delay_ = kFirstRetry;
    }
    schedule_retry();
    return {};
  }

  void schedule_retry() {
    link_ = Link::kWaiting;
    next_attempt_ = Clock::now() + retry_delay_;
    retry_delay_ = std::min(retry_delay_ * 2, kMaxRetry);
  }

  int timeout_ms() const { return link_ == Link::kConnected ? -1 : millis_until(next_attempt_); }

  Status advance() {
    if (link_ == Link::kConnected || Clock::now() < next_attempt_) return {};
    if (link_ == Link::kResuming) return daemon_lost("no welcome within 10s");
    // fail, or taken down on every resource, while the daemon was away: nothing to resume.
    if (!may_resume()) return Status::error("the daemon went away and the server is done");
    auto daemon = connect_daemon(socket_path_, SOCK_NONBLOCK);
    if (!daemon.ok()) {
      schedule_retry();
      return {};
    }
    daemon_ = std::move(*daemon);
    last_line_error_ = false;
    link_ = Link::kResuming;
    next_attempt_ = Clock::now() + kWelcomeTimeout;
    std::vector<int> fds;
    for (const Held& held : holding_) fds.push_back(held.fd.get());
    if (!write_all(daemon_.get(), protocol::encode(resume_hello()), fds).ok())
      return daemon_lost("sending the resume hello failed");
    return {};
  }

  Json resume_hello() const {
    Json holding = Json::array();
    for (const Held& held : holding_) holding.push_back(held.resource);
    Json hello = hello_;
    hello["resume"] = {{"holding", holding}, {"onTakedown", subscribed_}, {"up", up_}};
    return protocol::make("hello", hello);
  }

  Status resumed() {
    link_ = Link::kConnected;
    retry_delay_ = kFirstRetry;
    say("node-relay: resumed with the daemon");
    return {};
  }

  // The relay exits with this (said on stderr); Node sees its channel close and serves on.
  Status give_up(const std::string& why) {
    std::string text = why;
    return Status::error(text.append("; the server goes on without a daemon"));
  }

  UniqueFd node_;
  UniqueFd daemon_;
  std::string socket_path_;
  protocol::LineFramer node_lines_;
  protocol::LineFramer daemon_lines_;
  std::deque<UniqueFd> fds_;
  std::deque<Outgoing> queue_;
  bool awaiting_ack_ = false;

  Link link_ = Link::kConnected;
  Json hello_;  // Node's hello, the base of a resume hello
  std::vector<Held> holding_;
  std::vector<std::string> subscribed_;
  bool up_ = false, failed_ = false, taken_down_ = false, last_line_error_ = false;
  Millis retry_delay_ = kFirstRetry;
  Clock::time_point next_attempt_;
};

}  // namespace

int node_relay_command() {
  const char* channel = std::getenv("NODE_CHANNEL_FD");
  if (!channel) {
    say("node-relay is started by the Node.js client with an 'ipc' channel (NODE_CHANNEL_FD)");
    return kUsage;
  }
  UniqueFd node(std::atoi(channel));
  const char* path = std::getenv("SERVERSWAP_SOCKET");
  const std::string socket_path = path != nullptr ? path : "";
  int connect_errno = 0;
  auto daemon = connect_daemon(socket_path, 0, &connect_errno);
  if (!daemon.ok() &&
      (socket_path.empty() || connect_errno == ENOENT || connect_errno == ECONNREFUSED)) {
    // No daemon at all when the server starts: the Node client runs standalone and says so
    // on stderr itself (one line), so the relay only tells it why, on the channel
    // ({"noDaemon": {"socket": PATH, "error": TEXT}}, a message between the two halves of
    // the Node client, never sent to a daemon). A daemon lost later is reconnected to.
    const std::string why = socket_path.empty() ? std::string("SERVERSWAP_SOCKET is not set")
                                                : std::string(std::strerror(connect_errno));
    Json said = {{"noDaemon", {{"socket", socket_path}, {"error", why}}}};
    if (Status s = write_all(node.get(), protocol::encode(said)); !s.ok())
      say("node-relay: " + daemon.status().message() + " (telling node: " + s.message() + ")");
    return kFailed;
  }
  if (!daemon.ok()) {
    say("node-relay: " + daemon.status().message());
    return kFailed;
  }
  Status end = Relay(std::move(node), std::move(*daemon), socket_path).run();
  // Node going away is the normal end: the server exited.
  if (end.message() == "node closed the channel") return kOk;
  say("node-relay: " + end.message());
  return kFailed;
}

}  // namespace serverswap::cli
