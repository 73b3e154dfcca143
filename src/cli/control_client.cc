#include "cli/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "cli/commands.h"
#include "cli/socket_path.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace serverswap::cli {

Result<ControlClient> ControlClient::connect(const std::string& path, bool* no_daemon) {
  *no_daemon = false;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::system_error("socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *no_daemon = errno == ENOENT || errno == ECONNREFUSED;
    return Status::system_error("connect " + path, errno);
  }
  ControlClient client(std::move(fd));
  protocol::HelloRequest hello;
  hello.control = true;
  hello.protocol = protocol::kVersion;
  Status sent = client.send(hello.encode());
  // Even when the send failed, the daemon may have said why before it hung up.
  auto welcome = client.next(Millis(10'000));
  if (!welcome.ok()) return (sent.ok() ? welcome.status() : sent).wrap("daemon at " + path);
  if (welcome->name != protocol::Welcome::kName)
    return Status::error(
        "daemon at " + path + " answered: " +
        welcome->whole.dump(-1, ' ', false, protocol::Json::error_handler_t::replace));
  return client;
}

Status ControlClient::send(const protocol::Json& message) {
  std::string line = protocol::encode(message);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::system_error("send to the daemon", errno);
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<protocol::Message> decode_reply(std::string_view line) {
  auto message = protocol::decode(line);
  if (!message.ok()) return message.status().wrap("reply from the daemon");
  return message;
}

Result<protocol::Message> ControlClient::next(Millis timeout, bool* timed_out) {
  auto line = next_line(timeout, timed_out);
  if (!line.ok()) return line.status();
  return decode_reply(*line);
}

Result<std::string> ControlClient::next_line(Millis timeout, bool* timed_out) {
  using Clock = std::chrono::steady_clock;
  auto deadline = timeout == Millis::max() ? Clock::time_point::max() : Clock::now() + timeout;
  for (;;) {
    if (auto line = framer_.next_line()) {
      if (line->empty()) continue;
      return std::move(*line);
    }
    if (framer_.overflowed()) return Status::error("reply from the daemon too long");
    int wait_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
      if (left <= 0) {
        if (timed_out) *timed_out = true;
        return Status::error("no answer from the daemon in time");
      }
      wait_ms = static_cast<int>(left);
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Status::system_error("poll", errno);
    if (ready == 0) continue;
    char buf[16384];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::system_error("read from the daemon", errno);
    if (n == 0) return Status::error("the daemon closed the connection");
    framer_.append(std::string_view(buf, static_cast<size_t>(n)));
  }
}

std::string error_text(const protocol::Message& message) {
  if (message.name == protocol::ErrorReply::kName) {
    if (auto error = protocol::ErrorReply::decode(message); error.ok()) return error->text;
  }
  return message.whole.dump(-1, ' ', false, protocol::Json::error_handler_t::replace);
}

std::optional<ControlClient> connect_or_say(const std::string& socket_flag, int* code) {
  auto socket = resolve_socket_path(socket_flag);
  if (!socket.ok()) {
    say(socket.status().message());
    *code = kSystemError;
    return std::nullopt;
  }
  bool no_daemon;
  auto client = ControlClient::connect(*socket, &no_daemon);
  if (!client.ok()) {
    say(no_daemon ? "no daemon is running on " + *socket : client.status().message());
    *code = no_daemon ? kNoDaemon : kSystemError;
    return std::nullopt;
  }
  return std::move(*client);
}

}  // namespace serverswap::cli
