// hello_server: a minimal HTTP/1.1 server that is replaced without dropping a connection
// when run under serverswap. It shows the client library's whole cycle: ready_for() gives
// the listening socket, on_takedown() asks for a takeDown message, server_up() says it
// serves, and on takedown it drains so that keep-alive clients are never reset. Without
// serverswap it binds the resource itself.
//
//   hello_server RESOURCE [--body TEXT]        e.g. hello_server 127.0.0.1:8080
//
// RESOURCE may also name a socket the supervisor passed at exec, which ready_for() then uses
// as it is (serverswap/serverswap.h, "Inherited sockets"):
//   serverswap --listen web=127.0.0.1:8080 -- hello_server web
//   start_server --port 127.0.0.1:8080 -- hello_server 127.0.0.1:8080   (SIGHUP swaps)
//   systemd: a .socket unit with ListenStream=8080 and FileDescriptorName=web, then
//            ExecStart=hello_server web (or :8080)
// Old servers drain on SIGTERM, the takedown signal of all three.
//
// One thread, one poll() loop over a signalfd (SIGTERM, SIGINT), the serverswap control
// socket, the listening socket and the client connections, all non-blocking. The poll
// timeout honours client.timeout_ms(), so that a server whose daemon was restarted resumes
// with the new one (docs/protocol.md §11).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "serverswap/client.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxRequestHead = 16 * 1024;  // a longer head is not a hello-world client

// Sole owner of a file descriptor.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd, other.fd);  // our old fd closes with `other`
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
};

void log(const std::string& text) {
  std::fprintf(stderr, "hello_server pid %d %s\n", static_cast<int>(::getpid()), text.c_str());
}

std::string address_of(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  char host[INET6_ADDRSTRLEN] = "?";
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  if (a.ss_family == AF_UNIX)
    return std::string("unix:") + reinterpret_cast<sockaddr_un&>(a).sun_path;
  if (a.ss_family == AF_INET6) {
    auto& a6 = reinterpret_cast<sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &a6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a6.sin6_port));
  }
  auto& a4 = reinterpret_cast<sockaddr_in&>(a);
  inet_ntop(AF_INET, &a4.sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a4.sin_port));
}

// HTTP/1.1 keeps the connection unless the client says "Connection: close"; 1.0 closes.
bool wants_close(std::string head) {
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  std::string request_line = head.substr(0, head.find("\r\n"));
  if (request_line.ends_with(" http/1.0")) return true;
  size_t header = head.find("\r\nconnection:");
  if (header == std::string::npos) return false;
  size_t value = header + 13;
  return head.substr(value, head.find("\r\n", value) - value).find("close") != std::string::npos;
}

std::string response(const char* status, const std::string& body, bool close) {
  return std::string("HTTP/1.1 ") + status +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         (close ? "Connection: close\r\n" : "") + "\r\n" + body;
}

struct Connection {
  Fd fd;
  std::string in, out;
  bool close_after_write = false;
};

class Server {
 public:
  Server(serverswap::Client& client, std::string resource, Fd listener, Fd signals,
         std::string body, Clock::duration grace)
      : client_(client),
        resource_(std::move(resource)),
        listener_(std::move(listener)),
        signals_(std::move(signals)),
        body_(std::move(body)),
        grace_(grace) {}

  int run();
  void begin_drain(const char* why);

 private:
  void poll_once();
  void on_signal();
  void on_control();
  void accept_all();
  bool service(Connection& c, short revents);  // false: close the connection
  bool read_requests(Connection& c);
  void answer_requests(Connection& c);
  bool flush(Connection& c);

  serverswap::Client& client_;
  std::string resource_;
  Fd listener_, signals_;
  std::string body_;
  Clock::duration grace_;
  std::map<int, Connection> connections_;
  bool draining_ = false;
  Clock::time_point drain_deadline_;
};

int Server::run() {
  while (!draining_ || !connections_.empty()) {
    if (draining_ && Clock::now() >= drain_deadline_) {
      log("grace period over: closing " + std::to_string(connections_.size()) +
          " idle connections");
      connections_.clear();
      break;
    }
    poll_once();
  }
  return 0;
}

void Server::poll_once() {
  std::vector<pollfd> fds = {{signals_.fd, POLLIN, 0},
                             {client_.control_fd(), POLLIN, 0},  // -1 standalone: ignored
                             {listener_.fd, POLLIN, 0}};
  for (auto& [fd, c] : connections_) {
    short events = c.out.empty() ? POLLIN : POLLOUT;  // no new requests while answers wait
    fds.push_back({fd, events, 0});
  }
  // -1 unless the daemon went away: then when the next reconnect attempt is due.
  int timeout = client_.timeout_ms();
  if (draining_) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(drain_deadline_ - Clock::now());
    int drain_left = static_cast<int>(std::max<long long>(left.count(), 0));
    timeout = timeout < 0 ? drain_left : std::min(timeout, drain_left);
  }
  if (::poll(fds.data(), fds.size(), timeout) < 0) {
    if (errno != EINTR) log(std::string("poll: ") + std::strerror(errno));
    return;
  }
  if (fds[0].revents) on_signal();
  if (fds[1].revents || client_.timeout_ms() == 0) on_control();
  if (fds[2].revents && listener_.fd >= 0) accept_all();  // the takeDown may just have closed it
  for (size_t i = 3; i < fds.size(); ++i) {
    auto it = connections_.find(fds[i].fd);
    if (fds[i].revents && it != connections_.end() && !service(it->second, fds[i].revents))
      connections_.erase(it);
  }
}

void Server::on_signal() {
  signalfd_siginfo info{};
  if (::read(signals_.fd, &info, sizeof info) == sizeof info)
    begin_drain(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Server::on_control() {
  try {
    client_.dispatch();  // runs the takedown callback, which calls begin_drain()
  } catch (const serverswap::Error& e) {
    // The daemon is gone for good (a restarted one is resumed inside dispatch(), with no
    // error); keep serving. control_fd() and timeout_ms() are -1 from now on.
    log(std::string("lost the serverswap daemon: ") + e.what());
  }
}

// Stops accepting and lets the open connections finish: each gets one more answer with
// "Connection: close"; idle keep-alive ones are closed when the grace period ends.
void Server::begin_drain(const char* why) {
  if (draining_) return;
  draining_ = true;
  drain_deadline_ = Clock::now() + grace_;
  listener_.reset();  // our copy only: the daemon's socket keeps queueing for the new server
  log(std::string(why) + ": stopped accepting on " + resource_ + ", draining " +
      std::to_string(connections_.size()) + " connections");
  try {
    client_.took_down(resource_);
  } catch (const serverswap::Error& e) {
    log(e.what());
  }
}

void Server::accept_all() {
  for (;;) {
    int fd = ::accept4(listener_.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      connections_[fd].fd = Fd(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    // EAGAIN: queue empty, or another server sharing the socket took the connection.
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      log(std::string("accept: ") + std::strerror(errno));
    return;
  }
}

bool Server::service(Connection& c, short revents) {
  if ((revents & (POLLIN | POLLHUP | POLLERR)) && !read_requests(c)) return false;
  if (!flush(c)) return false;
  return !(c.close_after_write && c.out.empty());
}

bool Server::read_requests(Connection& c) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(c.fd.fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      if (c.in.size() > kMaxRequestHead) return false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c.close_after_write = true;  // end of stream (answer what is complete) or an error
    if (n < 0) return false;
    break;
  }
  answer_requests(c);
  return true;
}

void Server::answer_requests(Connection& c) {
  size_t end;
  while ((end = c.in.find("\r\n\r\n")) != std::string::npos) {
    std::string head = c.in.substr(0, end);
    c.in.erase(0, end + 4);
    bool get = head.starts_with("GET ");
    bool close = !get || draining_ || c.close_after_write || wants_close(head);
    c.out += get ? response("200 OK", body_, close)
                 : response("405 Method Not Allowed", "GET only\n", close);
    if (close) {
      c.close_after_write = true;
      c.in.clear();
      return;
    }
  }
}

bool Server::flush(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);  // wait for POLLOUT
    }
  }
  return true;
}

// SIGTERM and SIGINT arrive as readable events in the loop, never run a handler.
Fd signal_fd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Fd();
  return Fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

Clock::duration drain_grace() {
  const char* text = std::getenv("SERVERSWAP_DRAIN_GRACE");  // seconds, "2.5" allowed
  double seconds = text != nullptr ? std::strtod(text, nullptr) : 10.0;
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(seconds, 0.0)));
}

int usage() {
  std::fprintf(stderr,
               "usage: hello_server RESOURCE [--body TEXT]   e.g. hello_server 127.0.0.1:8080\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool args_ok = argc == 2 || (argc == 4 && std::string(argv[2]) == "--body");
  if (!args_ok || argv[1][0] == '-') return usage();
  std::string resource = argv[1], body = argc == 4 ? argv[3] : "Hello World!\n";
  Fd signals = signal_fd();
  if (signals.fd < 0) return log(std::string("signalfd: ") + std::strerror(errno)), 1;
  try {
    serverswap::Client client = serverswap::Client::open();
    Fd listener;
    try {
      listener = Fd(client.ready_for(resource));
    } catch (const serverswap::Error& e) {
      log(e.what());
      client.fail(e.what());  // the daemon keeps the old server serving
      return 1;
    }
    log("serving on " + address_of(listener.fd));
    Server server(client, resource, std::move(listener), std::move(signals), body, drain_grace());
    client.on_takedown(resource, [&](std::string_view) { server.begin_drain("takeDown"); });
    client.server_up();
    return server.run();
  } catch (const serverswap::Error& e) {
    log(e.what());
    return 1;
  }
}
