#include "client/client_session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "handover/fd_passing.h"
#include "handover/listen_socket.h"
#include "protocol/resource.h"
#include "serverswap/version.h"

static_assert(SERVERSWAP_PROTOCOL_VERSION == serverswap::protocol::kVersion);

namespace serverswap::client {
namespace {

using protocol::Json;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 65536;
// Reads per dispatch(); poll() is level-triggered, so whatever is left wakes the loop again.
constexpr int kMaxReadsPerDispatch = 64;
// Reconnecting after the daemon went away (docs/protocol.md §11): first after 100 ms, then
// at doubling intervals up to 1 s, for as long as the server runs.
constexpr Millis kFirstRetry{100};
constexpr Millis kMaxRetry{1000};

// Non-blocking, the reconnect does not wait in the server's loop for a daemon whose accept
// queue is full: connect() then fails with EAGAIN and is tried again later. `connect_errno`,
// when given, gets connect()'s errno on failure (0 when something else failed).
Result<UniqueFd> connect_unix(const std::string& path, int flags = 0,
                              int* connect_errno = nullptr) {
  if (connect_errno != nullptr) *connect_errno = 0;
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
  return fd;
}

// The one line a server run by serverswap but finding no daemon says before it goes on
// standalone (docs/protocol.md §1): the operator sees why it does not take part in swaps.
void warn_standalone(const std::string& why) {
  log_line("serverswap client: SERVERSWAP_ID is set but " + why + "; running standalone");
}

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

const Json* field(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string error_text(const protocol::Message& m) {
  return m.body.is_string() ? m.body.get<std::string>() : m.body.dump();
}

// Whether a resource in a reply names `resource`: the daemon may echo its canonical spelling.
bool names_resource(const Json* value, const std::string& resource) {
  if (value == nullptr || !value->is_string()) return false;
  const auto& text = value->get_ref<const std::string&>();
  if (text == resource) return true;
  auto a = protocol::parse_resource(text);
  auto b = protocol::parse_resource(resource);
  return a.ok() && b.ok() && a->name() == b->name();
}

}  // namespace

ClientSession::ClientSession(bool managed, UniqueFd sock, const Options& options)
    : managed_(managed),
      options_(options),
      sock_(std::move(sock)),
      read_buf_(kReadChunk),
      retry_delay_(kFirstRetry) {}

// SERVERSWAP_ID, which only the daemon sets for its servers, says "run by serverswap".
// SERVERSWAP_SOCKET alone does not: operators export it to pick a daemon for the CLI, and the
// same shell runs the application by hand in development.
Result<std::unique_ptr<ClientSession>> ClientSession::open(const Options& options) {
  const char* id = std::getenv("SERVERSWAP_ID");
  if (id == nullptr || *id == '\0') return standalone(options);
  const char* path = std::getenv("SERVERSWAP_SOCKET");
  if (path == nullptr || *path == '\0') {
    warn_standalone("SERVERSWAP_SOCKET is not");
    return standalone(options);
  }
  int connect_errno = 0;
  auto sock = connect_unix(path, 0, &connect_errno);
  // No daemon at all (never started, or gone before this server came up): serve on our own
  // rather than not at all. Only this first connection decides; a daemon lost later is
  // waited for (docs/protocol.md §11). Any other failure (EACCES, a refused hello) is a
  // daemon that is there but will not have us: an error.
  if (!sock.ok() && (connect_errno == ENOENT || connect_errno == ECONNREFUSED)) {
    warn_standalone(std::string("no daemon answers on ") + path + " (" +
                    std::strerror(connect_errno) + ")");
    return standalone(options);
  }
  if (!sock.ok()) return sock.status();
  Options with_path = options;
  with_path.socket_path = path;
  return handshake(std::move(*sock), id, with_path);
}

std::unique_ptr<ClientSession> ClientSession::standalone(const Options& options) {
  return std::unique_ptr<ClientSession>(new ClientSession(false, UniqueFd(), options));
}

Result<std::unique_ptr<ClientSession>> ClientSession::handshake(UniqueFd sock,
                                                                const std::string& id,
                                                                const Options& options) {
  // Non-blocking so that every wait is a poll() with a deadline.
  if (Status s = set_nonblocking(sock.get(), "the control socket"); !s.ok()) return s;
  std::unique_ptr<ClientSession> session(new ClientSession(true, std::move(sock), options));
  session->id_ = id;
  Json hello = {{"id", id}, {"pid", ::getpid()}, {"protocol", protocol::kVersion}};
  if (options.explicit_up) hello["upMessage"] = true;
  if (Status s = session->send(protocol::make("hello", hello)); !s.ok()) return s.wrap("hello");
  auto reply = session->await(
      [](const Incoming& in) { return in.message.name == "welcome" || in.message.name == "error"; },
      options.hello_timeout);
  if (!reply.ok()) return reply.status().wrap("hello");
  if (reply->message.name == "error") return Status::error("hello: " + error_text(reply->message));
  const Json* version = field(reply->message.body, "protocol");
  if (version == nullptr || *version != protocol::kVersion)
    return Status::error("hello: the daemon does not speak protocol 1: " +
                         reply->message.whole.dump());
  return session;
}

Result<UniqueFd> ClientSession::ready_for(const std::string& resource) {
  const std::string what = "readyFor " + resource;
  if (in_callback_) return Status::error(what + ": not allowed in a takedown callback");
  // A socket the supervisor passed at exec (serverswap --listen, systemd, Server::Starter,
  // einhorn) needs no round-trip: the daemon already counts this server as holding it.
  auto inherited = inherited_ready_for(resource);
  if (!inherited.ok()) return inherited.status().wrap(what);
  if (*inherited) return inherited;
  if (!managed_) return standalone_ready_for(resource);
  Status sent = send(protocol::make("readyFor", resource));
  Result<UniqueFd> result = sent.ok() ? await_resource(resource) : Result<UniqueFd>(sent);
  if (result.ok()) keep_for_resume(resource, result->get());
  deliver_inbox();  // what arrived meanwhile (takeDown of other resources) is not lost
  if (!result.ok()) return result.status().wrap(what);
  return result;
}

Result<UniqueFd> ClientSession::await_resource(const std::string& resource) {
  auto reply = await(
      [&](const Incoming& in) {
        if (in.message.name == "resourceReady") return names_resource(&in.message.body, resource);
        if (in.message.name != "error") return false;
        const Json* request = field(in.message.whole, "request");
        return request != nullptr && names_resource(field(*request, "readyFor"), resource);
      },
      options_.ready_timeout);
  if (!reply.ok()) return reply.status();
  if (reply->message.name == "error") return Status::error(error_text(reply->message));
  if (!reply->fd) return Status::error("resourceReady came without a file descriptor");
  return std::move(reply->fd);
}

Result<UniqueFd> ClientSession::inherited_ready_for(const std::string& resource) {
  if (!inherited_) inherited_ = InheritedSockets::from_environment();
  auto found = inherited_->find(resource);
  if (!found.ok()) return found.status();
  if (!*found) return UniqueFd();
  const int fd = (*found)->fd;
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) return Status::system_error("dup inherited fd " + std::to_string(fd), errno);
  // The API promises non-blocking listening sockets (accept() may see EAGAIN when another
  // server took the connection); systemd and Server::Starter pass blocking ones.
  if (Status s = set_nonblocking(copy.get(), "inherited fd " + std::to_string(fd)); !s.ok())
    return s;
  return copy;
}

Result<UniqueFd> ClientSession::standalone_ready_for(const std::string& resource) {
  const std::string what = "readyFor " + resource;
  auto it = bound_.find(resource);
  if (it == bound_.end()) {
    auto parsed = protocol::parse_resource(resource);
    if (!parsed.ok()) return with_inherited_hint(parsed.status()).wrap(what);
    auto bound = handover::bind_listener(*parsed);
    if (!bound.ok()) return with_inherited_hint(bound.status()).wrap(what);
    // Behave as a socket from the daemon does (docs/protocol.md §4), so code tried
    // standalone handles EAGAIN from accept() as it must under serverswap.
    if (Status s = set_nonblocking(bound->fd.get(), resource); !s.ok()) return s.wrap(what);
    it = bound_.emplace(resource, std::move(bound->fd)).first;
  }
  UniqueFd copy(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) return Status::system_error(what + ": dup", errno);
  return copy;
}

// The sockets that were there but did not match: the usual cause of a bind conflict.
Status ClientSession::with_inherited_hint(const Status& status) const {
  if (!inherited_ || inherited_->empty()) return status;
  std::string text = status.message();
  text.append(" (inherited through ").append(inherited_->set().convention).append(": ");
  text.append(inherited_->describe()).append(")");
  return Status::error(text);
}

Status ClientSession::on_takedown(const std::string& resource, TakedownFn fn) {
  takedown_[resource] = std::move(fn);
  if (!managed_) return {};
  if (std::find(subscribed_.begin(), subscribed_.end(), resource) == subscribed_.end())
    subscribed_.push_back(resource);
  return send_or_defer(protocol::make("onTakedown", resource), "onTakedown " + resource);
}

Status ClientSession::server_up() {
  if (!managed_) return {};
  up_ = true;
  return send_or_defer(protocol::make("serverUp", true), "serverUp");
}

Status ClientSession::fail(const std::string& reason) {
  if (!managed_) return {};
  failed_ = true;  // the daemon kills this server: never resume it
  return send(protocol::make("fail", reason)).wrap("fail");
}

Status ClientSession::took_down(const std::string& resource) {
  if (!managed_) return {};
  release_held(resource);
  taken_down_ = true;
  return send_or_defer(protocol::make("tookDown", resource), "tookDown " + resource);
}

Status ClientSession::serving(const std::string& resource) {
  if (!managed_) return {};
  return send_or_defer(protocol::make("serving", resource), "serving " + resource);
}

Status ClientSession::dispatch() {
  if (in_callback_) return Status::error("dispatch: not allowed in a takedown callback");
  if (!managed_) return {};
  for (int i = 0; sock_ && i < kMaxReadsPerDispatch; ++i) {
    bool would_block = false;
    if (!read_once(would_block).ok() || would_block) break;
  }
  deliver_inbox();  // before deciding on a lost connection: takeDowns sent before it count
  advance_link();
  return link_ == Link::kGone ? lost_ : Status();
}

Status ClientSession::send_or_defer(const Json& message, const std::string& what) {
  if (!sock_ && reconnecting()) return {};
  Status sent = send(message);
  if (!sent.ok() && link_ == Link::kLost) return {};
  return sent.wrap(what);
}

Status ClientSession::send(const Json& message, std::span<const int> fds) {
  if (!sock_) return Status::error("not connected to the daemon: " + lost_.message());
  const std::string line = protocol::encode(message);
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
    if (err != EAGAIN && err != EWOULDBLOCK)
      return disconnect(sent.status(), err == EPIPE || err == ECONNRESET);
    auto writable = wait_for(sock_.get(), POLLOUT, deadline);
    if (!writable.ok()) return disconnect(writable.status());
    // Half a line may be out: the connection cannot be used for anything else.
    if (!*writable)
      return disconnect(
          Status::error("the daemon read nothing for " + format_duration(options_.send_timeout)));
  }
  return {};
}

Result<ClientSession::Incoming> ClientSession::await(
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

Status ClientSession::read_once(bool& would_block) {
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
  if (framer_.overflowed())
    return disconnect(Status::error("the daemon sent a line longer than 65536 bytes"));
  return {};
}

void ClientSession::take_lines() {
  while (auto line = framer_.next_line()) {
    const uint64_t start = line_start_;
    line_start_ += line->size() + 1;
    take_line(*line, start);
  }
  // A descriptor whose bytes hold no resourceReady line start came with the wrong message.
  while (!pending_fds_.empty() && pending_fds_.front().end <= line_start_) {
    if (pending_fds_.front().fd)
      log_line(
          "serverswap client: closed a file descriptor sent with a message not meant to carry one");
    pending_fds_.pop_front();
  }
}

void ClientSession::take_line(const std::string& line, uint64_t start) {
  if (line.empty()) return;
  auto decoded = protocol::decode(line);
  if (!decoded.ok()) {
    log_line("serverswap client: ignoring a line from the daemon: " + decoded.status().message());
    return;
  }
  Incoming in{std::move(*decoded), UniqueFd()};
  last_line_error_ = in.message.name == "error";
  if (in.message.name == "resourceReady") {
    for (PendingFd& p : pending_fds_) {
      if (p.fd && start >= p.begin && start < p.end) {
        in.fd = std::move(p.fd);
        break;
      }
    }
  }
  inbox_.push_back(std::move(in));
}

Status ClientSession::disconnect(Status why, bool daemon_went_away) {
  sock_.reset();
  pending_fds_.clear();
  lost_ = why;
  // Only a daemon that went away is waited for (docs/protocol.md §11); a broken connection
  // (a line too long, a send that timed out) is not repaired by reconnecting.
  if (link_ == Link::kConnected || link_ == Link::kResuming)
    link_ = daemon_went_away ? Link::kLost : Link::kGone;
  return why;
}

void ClientSession::deliver_inbox() {
  while (!inbox_.empty()) {
    Incoming in = std::move(inbox_.front());
    inbox_.pop_front();
    const protocol::Message& m = in.message;
    if (m.name == "takeDown") {
      run_takedown(m.body.is_string() ? m.body.get<std::string>() : m.body.dump());
    } else if (m.name == "welcome" && !welcomed_) {
      on_welcome(m);
    } else if (m.name == "error" && !welcomed_) {
      give_up("the daemon refused to resume this server: " + error_text(m));
    } else if (m.name == "error") {
      log_line("serverswap client: the daemon reported an error: " + m.whole.dump());
    } else if (m.name == "resourceReady") {
      // Nobody waits for it (a readyFor that timed out); its descriptor closes here.
      log_line("serverswap client: ignoring an unrequested " + m.whole.dump());
    }
    // Anything else (a later protocol's messages) is ignored, as docs/protocol.md allows.
  }
}

void ClientSession::run_takedown(const std::string& resource) {
  release_held(resource);
  taken_down_ = true;
  auto it = takedown_.find(resource);
  if (it == takedown_.end()) {
    const Json name = resource;
    it = std::find_if(takedown_.begin(), takedown_.end(),
                      [&](const auto& entry) { return names_resource(&name, entry.first); });
  }
  if (it == takedown_.end() || !it->second) {
    log_line("serverswap client: takeDown " + resource + " with no callback registered");
    return;
  }
  // A copy: the callback may replace itself with on_takedown().
  TakedownFn fn = it->second;
  in_callback_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{in_callback_};
  fn(resource);
}

// ---- resume after a daemon restart (docs/protocol.md §11) ----------------------------

int ClientSession::timeout_ms() const {
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

bool ClientSession::reconnecting() const {
  return link_ == Link::kLost || link_ == Link::kWaiting || link_ == Link::kResuming;
}

void ClientSession::keep_for_resume(const std::string& resource, int fd) {
  for (const Held& held : holding_)
    if (held.resource == resource) return;  // the same socket again: one copy is enough
  if (holding_.size() == handover::kMaxFdsPerMessage) {
    log_line("serverswap client: more than 64 resources; " + resource +
             " will not be handed back to a restarted daemon");
    return;
  }
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) {
    log_line("serverswap client: dup the listening socket of " + resource +
             " for a resume: " + std::strerror(errno));
    return;
  }
  holding_.push_back({resource, std::move(copy)});
}

void ClientSession::release_held(const std::string& resource) {
  const Json name = resource;
  std::erase_if(holding_, [&](const Held& held) { return names_resource(&name, held.resource); });
}

// The server still serves something a daemon could take back, and nobody said no.
bool ClientSession::may_resume() const {
  if (options_.socket_path.empty() || failed_ || last_line_error_) return false;
  return !(taken_down_ && holding_.empty());
}

void ClientSession::advance_link() {
  if (link_ == Link::kLost) {
    if (!may_resume()) {
      link_ = Link::kGone;
      holding_.clear();
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
  if (!may_resume()) {  // fail(), or taken down on every resource, while away
    link_ = Link::kGone;
    holding_.clear();
    return;
  }
  try_resume();
}

void ClientSession::schedule_retry() {
  link_ = Link::kWaiting;
  next_attempt_ = Clock::now() + retry_delay_;
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetry);
}

void ClientSession::try_resume() {
  auto sock = connect_unix(options_.socket_path, SOCK_NONBLOCK);
  if (!sock.ok()) return schedule_retry();
  // A new stream: nothing of the old one carries over.
  sock_ = std::move(*sock);
  framer_ = protocol::LineFramer();
  received_ = line_start_ = 0;
  pending_fds_.clear();
  last_line_error_ = false;
  welcomed_ = false;
  link_ = Link::kResuming;
  next_attempt_ = Clock::now() + options_.hello_timeout;
  std::vector<int> fds;
  for (const Held& held : holding_) fds.push_back(held.fd.get());
  if (!send(resume_hello(), fds).ok()) schedule_retry();
}

Json ClientSession::resume_hello() const {
  Json holding = Json::array();
  for (const Held& held : holding_) holding.push_back(held.resource);
  Json resume = {{"holding", holding},
                 {"onTakedown", subscribed_},
                 {"up", up_ || (!options_.explicit_up && !holding_.empty())}};
  Json hello = {{"id", id_}, {"pid", ::getpid()}, {"protocol", protocol::kVersion}};
  if (options_.explicit_up) hello["upMessage"] = true;
  hello["resume"] = resume;
  return protocol::make("hello", hello);
}

void ClientSession::on_welcome(const protocol::Message& welcome) {
  welcomed_ = true;
  retry_delay_ = kFirstRetry;
  if (link_ == Link::kResuming) link_ = Link::kConnected;  // not when lost right after it
  const Json* version = field(welcome.body, "version");
  std::string text = "serverswap client: resumed with the daemon";
  if (version != nullptr && version->is_string())
    text.append(" (").append(version->get<std::string>()).append(")");
  log_line(text);
}

void ClientSession::give_up(const std::string& why) {
  sock_.reset();
  pending_fds_.clear();
  holding_.clear();
  link_ = Link::kGone;
  lost_ = Status::error(why);
  log_line("serverswap client: " + why + "; serving on without a daemon");
}

}  // namespace serverswap::client
