#include "client/client_session.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "handover/listen_socket.h"
#include "protocol/requests.h"
#include "protocol/resource.h"
#include "protocol/server_messages.h"
#include "serverswap/version.h"

static_assert(SERVERSWAP_PROTOCOL_VERSION == serverswap::protocol::kVersion);

namespace serverswap::client {
namespace {

using protocol::Json;

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

std::string error_text(const protocol::Message& m) {
  auto error = protocol::ErrorReply::decode(m);
  return error.ok() ? error->text : error.status().message();
}

// Whether a resourceReady names `resource`: the daemon may echo its canonical spelling.
bool names_resource(const protocol::Message& m, const std::string& resource) {
  auto ready = protocol::ResourceReady::decode(m);
  return ready.ok() && same_resource(ready->resource, resource);
}

// Whether an error answers a readyFor of `resource`.
bool refuses_resource(const protocol::Message& m, const std::string& resource) {
  auto error = protocol::ErrorReply::decode(m);
  if (!error.ok()) return false;
  auto request = protocol::as_message(error->request);
  if (!request.ok() || request->name != protocol::ReadyFor::kName) return false;
  auto ready_for = protocol::ReadyFor::decode(*request);
  return ready_for.ok() && same_resource(ready_for->value, resource);
}

}  // namespace

ClientSession::ClientSession(bool managed, std::optional<ControlChannel> channel,
                             const Options& options)
    : managed_(managed), options_(options), channel_(std::move(channel)) {}

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
  return std::unique_ptr<ClientSession>(new ClientSession(false, std::nullopt, options));
}

Result<std::unique_ptr<ClientSession>> ClientSession::handshake(UniqueFd sock,
                                                                const std::string& id,
                                                                const Options& options) {
  auto channel = ControlChannel::over(std::move(sock), options);
  if (!channel.ok()) return channel.status();
  std::unique_ptr<ClientSession> session(new ClientSession(true, std::move(*channel), options));
  ControlChannel& ch = *session->channel_;
  protocol::HelloRequest hello;
  hello.id = id;
  hello.pid = ::getpid();
  hello.protocol = protocol::kVersion;
  hello.up_message = options.explicit_up;
  if (Status s = ch.hello(hello); !s.ok()) return s;
  auto reply = ch.await(
      [](const Incoming& in) {
        return in.message.name == protocol::Welcome::kName ||
               in.message.name == protocol::ErrorReply::kName;
      },
      options.hello_timeout);
  if (!reply.ok()) return reply.status().wrap("hello");
  if (reply->message.name == protocol::ErrorReply::kName)
    return Status::error("hello: " + error_text(reply->message));
  auto welcome = protocol::Welcome::decode(reply->message);
  if (!welcome.ok() || welcome->protocol != protocol::kVersion)
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
  Status sent = channel_->send(protocol::ReadyFor{resource}.encode());
  bool refused = false;
  Result<UniqueFd> result = sent.ok() ? await_resource(resource, &refused) : Result<UniqueFd>(sent);
  // fd pairing: the socket is kept under the name it was asked for.
  if (result.ok()) channel_->memory().keep(resource, result->get());
  deliver_inbox();  // what arrived meanwhile (takeDown of other resources) is not lost
  // Most of the daemon's refusals name the readyFor themselves ("readyFor :8080: app 'web'
  // serves it"; the Node and Python clients show them as they are): wrapped again, a server
  // that failed with one said "readyFor :8080: readyFor :8080: …". Those that do not (a bind
  // error, from daemons of any version) get the name here.
  if (!result.ok())
    return refused && result.status().message().starts_with("readyFor ")
               ? result.status()
               : result.status().wrap(what);
  return result;
}

Result<UniqueFd> ClientSession::await_resource(const std::string& resource, bool* refused) {
  auto reply = channel_->await(
      [&](const Incoming& in) {
        if (in.message.name == protocol::ResourceReady::kName)
          return names_resource(in.message, resource);
        return in.message.name == protocol::ErrorReply::kName &&
               refuses_resource(in.message, resource);
      },
      options_.ready_timeout);
  if (!reply.ok()) return reply.status();
  if (reply->message.name == protocol::ErrorReply::kName) {
    *refused = true;
    return Status::error(error_text(reply->message));
  }
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
  return channel_->send_or_defer(protocol::OnTakedown{resource}.encode(), "onTakedown " + resource);
}

Status ClientSession::server_up() {
  if (!managed_) return {};
  return channel_->send_or_defer(protocol::ServerUp{}.encode(), "serverUp");
}

Status ClientSession::fail(const std::string& reason) {
  if (!managed_) return {};
  // Noted even when it cannot be sent: the daemon kills this server, never resume it.
  return channel_->send(protocol::Fail{reason}.encode()).wrap("fail");
}

Status ClientSession::took_down(const std::string& resource) {
  if (!managed_) return {};
  return channel_->send_or_defer(protocol::TookDown{resource}.encode(), "tookDown " + resource);
}

Status ClientSession::serving(const std::string& resource) {
  if (!managed_) return {};
  return channel_->send_or_defer(protocol::Serving{resource}.encode(), "serving " + resource);
}

Status ClientSession::dispatch() {
  if (in_callback_) return Status::error("dispatch: not allowed in a takedown callback");
  if (!managed_) return {};
  channel_->read_available();
  deliver_inbox();  // before deciding on a lost connection: takeDowns sent before it count
  channel_->advance();
  return channel_->gone() ? channel_->lost() : Status();
}

void ClientSession::deliver_inbox() {
  while (auto in = channel_->next()) {
    const protocol::Message& m = in->message;
    if (m.name == protocol::TakeDown::kName) {
      auto take_down = protocol::TakeDown::decode(m);
      if (take_down.ok())
        run_takedown(take_down->value);
      else
        log_line("serverswap client: ignoring a malformed takeDown: " +
                 take_down.status().message());
    } else if (m.name == protocol::ErrorReply::kName) {
      log_line("serverswap client: the daemon reported an error: " + m.whole.dump());
    } else if (m.name == protocol::ResourceReady::kName) {
      // Nobody waits for it (a readyFor that timed out); its descriptor closes here.
      log_line("serverswap client: ignoring an unrequested " + m.whole.dump());
    }
    // Anything else (a later protocol's messages) is ignored, as docs/protocol.md allows.
  }
}

void ClientSession::run_takedown(const std::string& resource) {
  // The channel released the resource's socket from the resume memory as it read the line.
  auto it = takedown_.find(resource);
  if (it == takedown_.end()) {
    it = std::find_if(takedown_.begin(), takedown_.end(),
                      [&](const auto& entry) { return same_resource(resource, entry.first); });
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

}  // namespace serverswap::client
