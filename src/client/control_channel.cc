#include "client/control_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "handover/fd_passing.h"
#include "protocol/resource.h"
#include "protocol/server_messages.h"

namespace serverswap::client {
namespace {

using protocol::Json;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 65536;
// Reads per read_available(); poll() is level-triggered, so whatever is left wakes the loop.
constexpr int kMaxReadsPerCall = 64;
// Reconnecting after the daemon went away (docs/protocol.md §11): first after 100 ms, then
// at doubling intervals up to 1 s, for as long as the server runs.
constexpr Millis kFirstRetry{100};
constexpr Millis kMaxRetry{1000};

Status set_nonblocking(int fd, const std::string& what) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return Status::system_error("set O_NONBLOCK on " + what, errno);
  return {};
}

int millis_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// Ok(true) when `events` are ready, ok(false) when the deadline passed first.
Result<bool> wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, millis_until(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return Status::system_error("poll", errno);
  }
}

std::string error_text(const protocol::Message& m) {
  auto error = protocol::ErrorReply::decode(m);
  return error.ok() ? error->text : error.status().message();
}

}  // namespace

// Non-blocking (SOCK_NONBLOCK), a reconnect does not wait in the server's loop for a daemon
// whose accept queue is full: connect() then fails with EAGAIN and is tried again later.
Result<UniqueFd> connect_unix(const std::string& path, int flags, int* connect_errno) {
  if (connect_errno != nullptr) *connect_errno = 0;
  if (path.empty()) return Status::error("connect: no socket path (SERVERSWAP_SOCKET)");
  if (path.size() > protocol::kMaxUnixPath)
    return Status::error("connect " + path + ": socket path longer than 107 bytes");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  if (!fd) return Status::system_error("socket for " + path, errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (connect_errno != nullptr) *connect_errno = err;
    return Status::system_error("connect " + path, err);
  }
  if (Status s = check_daemon_peer(fd.get(), path); !s.ok()) return s;
  return fd;
}

Status check_daemon_peer(int fd, const std::string& path) {
  // The listener's credentials, as they were when it called listen(2) (SO_PEERCRED).
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return Status::system_error("SO_PEERCRED on " + path, errno);
  if (cred.uid == 0 || cred.uid == ::geteuid()) return {};
  return Status::error("connect " + path + ": it is served by uid " + std::to_string(cred.uid) +
                       " (pid " + std::to_string(cred.pid) +
                       "), neither root nor this process's uid " + std::to_string(::geteuid()) +
                       ", so it is not the daemon; nothing is sent to it");
}

ControlChannel::ControlChannel(UniqueFd sock, const Options& options)
    : options_(options), sock_(std::move(sock)), read_buf_(kReadChunk), retry_delay_(kFirstRetry) {}

Result<ControlChannel> ControlChannel::over(UniqueFd sock, const Options& options) {
  // Non-blocking so that every wait is a poll() with a deadline.
  if (Status s = set_nonblocking(sock.get(), "the control socket"); !s.ok()) return s;
  return ControlChannel(std::move(sock), options);
}

Status ControlChannel::hello(const Json& body) {
  memory_.said_hello(body);
  return send(protocol::make("hello", body)).wrap("hello");
}

Status ControlChannel::hello(const protocol::HelloRequest& hello) {
  return this->hello(hello.encode()[protocol::HelloRequest::kName]);
}

Status ControlChannel::send_or_defer(const Json& message, const std::string& what) {
  if (!sock_ && reconnecting()) {
    if (auto m = protocol::decode(protocol::encode(message)); m.ok()) memory_.said(*m);
    return {};
  }
  Status sent = send(message);
  if (!sent.ok() && link_ == Link::kLost) return {};
  return sent.wrap(what);
}

Status ControlChannel::send(const Json& message, std::span<const int> fds) {
  const std::string line = protocol::encode(message);
  if (auto m = protocol::decode(line); m.ok()) memory_.said(*m);
  return send_line(line, fds);
}

Status ControlChannel::send_line(const std::string& line, std::span<const int> fds) {
  if (!sock_) return Status::error("not connected to the daemon: " + lost_.message());
  std::string_view rest = line;
  const auto deadline = Clock::now() + options_.send_timeout;
  while (!rest.empty()) {
    errno = 0;
    // The descriptors go with the first byte; a partial send leaves none for the rest.
    auto sent = handover::send_with_fds(sock_.get(), rest,
                                        rest.size() == line.size() ? fds : std::span<const int>());
    if (sent.ok()) {
      rest.remove_prefix(*sent);
      continue;
    }
    const int err = errno;
    // EPIPE, ECONNRESET: the daemon went away, as an end-of-file would have said.
    if (err == EPIPE || err == ECONNRESET) {
      // What the daemon said before it closed comes first: an error answering our hello is
      // the reason (read_available ends the connection with it at the end of file).
      read_available();
      return sock_ ? disconnect(sent.status(), true) : lost_;
    }
    if (err != EAGAIN && err != EWOULDBLOCK) return disconnect(sent.status());
    auto writable = wait_for(sock_.get(), POLLOUT, deadline);
    if (!writable.ok()) return disconnect(writable.status());
    // Half a line may be out: the connection cannot be used for anything else.
    if (!*writable)
      return disconnect(
          Status::error("the daemon read nothing for " + format_duration(options_.send_timeout)));
  }
  return {};
}

void ControlChannel::read_available() {
  for (int i = 0; sock_ && i < kMaxReadsPerCall; ++i) {
    bool would_block = false;
    if (!read_once(would_block).ok() || would_block) break;
  }
}

Result<ControlChannel::Incoming> ControlChannel::await(
    const std::function<bool(const Incoming&)>& wanted, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (!wanted(*it)) continue;
      Incoming in = std::move(*it);
      inbox_.erase(it);
      return in;
    }
    if (!sock_) return lost_;
    auto readable = wait_for(sock_.get(), POLLIN, deadline);
    if (!readable.ok()) return readable.status();
    if (!*readable)
      return Status::error("no reply from the daemon within " + format_duration(timeout));
    bool would_block = false;
    read_once(would_block);  // a failure empties sock_, reported above after what was read
  }
}

std::optional<ControlChannel::Incoming> ControlChannel::next() {
  if (inbox_.empty()) return std::nullopt;
  Incoming in = std::move(inbox_.front());
  inbox_.pop_front();
  return in;
}

Status ControlChannel::read_once(bool& would_block) {
  errno = 0;
  auto got = handover::recv_with_fd(sock_.get(), read_buf_.data(), read_buf_.size());
  const int err = errno;
  // A reset is a close with our last message unread; the data sent before it came first.
  if ((got.ok() && got->bytes == 0) || (!got.ok() && err == ECONNRESET))
    return disconnect(Status::error("the daemon closed the connection"), true);
  if (!got.ok()) {
    would_block = err == EAGAIN || err == EWOULDBLOCK;
    return would_block ? Status() : disconnect(got.status().wrap("reading from the daemon"));
  }
  const uint64_t begin = received_;
  received_ += got->bytes;
  if (got->fd) pending_fds_.push_back({std::move(got->fd), begin, received_});
  framer_.append(std::string_view(read_buf_.data(), got->bytes));
  take_lines();
  if (!sock_) return lost_;  // an error answered the resume
  if (framer_.overflowed())
    return disconnect(Status::error("the daemon sent a line longer than 65536 bytes"));
  return {};
}

void ControlChannel::take_lines() {
  while (auto line = framer_.next_line()) {
    const uint64_t start = line_start_;
    line_start_ += line->size() + 1;
    take_line(*line, start);
    if (!sock_) return;
  }
  // A descriptor whose bytes hold no resourceReady line start came with the wrong message.
  while (!pending_fds_.empty() && pending_fds_.front().end <= line_start_) {
    if (pending_fds_.front().fd)
      log_line(
          "serverswap client: closed a file descriptor sent with a message not meant to carry one");
    pending_fds_.pop_front();
  }
}

void ControlChannel::take_line(const std::string& line, uint64_t start) {
  if (line.empty()) return;
  auto decoded = protocol::decode(line);
  if (!decoded.ok()) {
    log_line("serverswap client: ignoring a line from the daemon: " + decoded.status().message());
    return;
  }
  memory_.received(*decoded);
  if (link_ == Link::kConnected && !welcomed_) {
    if (decoded->name == protocol::Welcome::kName) welcomed_ = true;
    if (decoded->name == protocol::ErrorReply::kName) refusal_ = error_text(*decoded);
  }
  // The answer to a resume hello is the channel's: the owner sees the daemon go on.
  if (link_ == Link::kResuming && decoded->name == protocol::Welcome::kName)
    return on_welcome(*decoded);
  if (link_ == Link::kResuming && decoded->name == protocol::ErrorReply::kName)
    return give_up("the daemon refused to resume this server: " + error_text(*decoded));
  Incoming in{std::move(*decoded), UniqueFd()};
  if (in.message.name == protocol::ResourceReady::kName) {
    for (PendingFd& p : pending_fds_) {
      if (p.fd && start >= p.begin && start < p.end) {
        in.fd = std::move(p.fd);
        break;
      }
    }
  }
  inbox_.push_back(std::move(in));
}

Status ControlChannel::disconnect(Status why, bool daemon_went_away) {
  // Closed after refusing our hello: reconnecting would be refused again.
  if (daemon_went_away && !welcomed_ && !refusal_.empty() && link_ == Link::kConnected) {
    why = Status::error("the daemon refused this server: " + refusal_);
    daemon_went_away = false;
  }
  sock_.reset();
  pending_fds_.clear();
  lost_ = why;
  // Only a daemon that went away is waited for (docs/protocol.md §11); a broken connection
  // (a line too long, a send that timed out) is not repaired by reconnecting.
  if (link_ == Link::kConnected || link_ == Link::kResuming)
    link_ = daemon_went_away ? Link::kLost : Link::kGone;
  if (link_ == Link::kGone) memory_.forget_all();
  return why;
}

// ---- resume after a daemon restart (docs/protocol.md §11) ----------------------------

int ControlChannel::timeout_ms() const {
  switch (link_) {
    case Link::kLost:
      return 0;
    case Link::kWaiting:
    case Link::kResuming:
      return millis_until(next_attempt_);
    default:
      return -1;
  }
}

bool ControlChannel::reconnecting() const {
  return link_ == Link::kLost || link_ == Link::kWaiting || link_ == Link::kResuming;
}

bool ControlChannel::may_resume() const {
  return !options_.socket_path.empty() && memory_.may_resume();
}

void ControlChannel::advance() {
  if (link_ == Link::kLost) {
    if (!may_resume()) {
      link_ = Link::kGone;
      memory_.forget_all();
      return;
    }
    if (retry_delay_ == kFirstRetry)
      log_line("serverswap client: lost the daemon (" + lost_.message() +
               "); serving on and reconnecting to " + options_.socket_path);
    schedule_retry();
  }
  if (link_ == Link::kResuming && Clock::now() >= next_attempt_) {
    disconnect(Status::error("no welcome from the daemon within " +
                             format_duration(options_.hello_timeout)));
    schedule_retry();
  }
  if (link_ != Link::kWaiting || Clock::now() < next_attempt_) return;
  if (!may_resume()) {  // fail, or taken down on every resource, while away
    link_ = Link::kGone;
    memory_.forget_all();
    return;
  }
  try_resume();
}

void ControlChannel::schedule_retry() {
  link_ = Link::kWaiting;
  next_attempt_ = Clock::now() + retry_delay_;
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetry);
}

void ControlChannel::try_resume() {
  auto sock = connect_unix(options_.socket_path, SOCK_NONBLOCK);
  if (!sock.ok()) return schedule_retry();
  // A new stream: nothing of the old one carries over.
  sock_ = std::move(*sock);
  framer_ = protocol::LineFramer();
  received_ = line_start_ = 0;
  pending_fds_.clear();
  memory_.new_connection();
  link_ = Link::kResuming;
  next_attempt_ = Clock::now() + options_.hello_timeout;
  const std::vector<int> fds = memory_.held_fds();
  if (!send_line(protocol::encode(memory_.resume_hello()), fds).ok()) schedule_retry();
}

void ControlChannel::on_welcome(const protocol::Message& welcome) {
  welcomed_ = true;
  retry_delay_ = kFirstRetry;
  link_ = Link::kConnected;
  std::string text = "serverswap client: resumed with the daemon";
  if (auto decoded = protocol::Welcome::decode(welcome); decoded.ok() && !decoded->version.empty())
    text.append(" (").append(decoded->version).append(")");
  log_line(text);
}

void ControlChannel::give_up(const std::string& why) {
  sock_.reset();
  pending_fds_.clear();
  memory_.forget_all();
  link_ = Link::kGone;
  lost_ = Status::error(why);
  log_line("serverswap client: " + why + "; serving on without a daemon");
}

}  // namespace serverswap::client
