#include "verify/test_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <utility>
#include <vector>

namespace serverswap::verify::testing {
namespace {

// Move-only owner of a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

struct Client {
  Fd fd;
  std::string in;
  std::string out;
  bool close_after_flush = false;
  uint64_t responses = 0;
};

}  // namespace

struct TestHttpServer::Impl {
  Options options;
  Fd listener;
  Fd wake_read;
  Fd wake_write;
  std::list<Client> clients;
  TestHttpServer* owner = nullptr;

  bool bind_and_listen(uint16_t* port, std::string* error);
  void serve();
  void accept_all();
  bool on_readable(Client& client);  // false: close the client
  bool flush(Client& client);        // false: close the client
  void answer(Client& client, const std::string& request);
};

bool TestHttpServer::Impl::bind_and_listen(uint16_t* port, std::string* error) {
  sockaddr_storage address{};
  socklen_t length = 0;
  const bool v6 = options.host.find(':') != std::string::npos;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (v6 ? inet_pton(AF_INET6, options.host.c_str(), &in6->sin6_addr) != 1
         : inet_pton(AF_INET, options.host.c_str(), &in4->sin_addr) != 1) {
    *error = "bad test server host " + options.host;
    return false;
  }
  address.ss_family = v6 ? AF_INET6 : AF_INET;
  length = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  listener = Fd(::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return *error = errno_text("socket"), false;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    return *error = errno_text("bind " + options.host), false;
  }
  if (::listen(listener.get(), SOMAXCONN) != 0) return *error = errno_text("listen"), false;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return *error = errno_text("getsockname"), false;
  }
  *port = ntohs(v6 ? in6->sin6_port : in4->sin_port);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) return *error = errno_text("pipe2"), false;
  wake_read = Fd(pipe_fds[0]);
  wake_write = Fd(pipe_fds[1]);
  return true;
}

void TestHttpServer::Impl::serve() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.assign({{wake_read.get(), POLLIN, 0}, {listener.get(), POLLIN, 0}});
    for (const Client& client : clients) {
      const short events = static_cast<short>(POLLIN | (client.out.empty() ? 0 : POLLOUT));
      fds.push_back({client.fd.get(), events, 0});
    }
    // No deadline needed: the destructor's write to the wake pipe ends the wait.
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) accept_all();
    size_t index = 2;
    for (auto it = clients.begin(); it != clients.end() && index < fds.size(); ++index) {
      const short revents = fds[index].revents;
      bool keep = true;
      if (revents & (POLLIN | POLLHUP | POLLERR)) keep = on_readable(*it);
      if (keep && (revents & POLLOUT)) keep = flush(*it);
      it = keep ? std::next(it) : clients.erase(it);
    }
  }
}

void TestHttpServer::Impl::accept_all() {
  for (;;) {
    Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.get() < 0) return;  // EAGAIN, or a transient error the next poll retries
    ++owner->accepted_;
    if (options.behaviour == Behaviour::kCloseWithoutResponse) continue;  // closed here
    clients.push_back(Client{std::move(fd), {}, {}, false, 0});
  }
}

bool TestHttpServer::Impl::on_readable(Client& client) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(client.fd.get(), buffer, sizeof buffer);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN) break;
      return false;
    }
    client.in.append(buffer, static_cast<size_t>(n));
  }
  for (size_t end; (end = client.in.find("\r\n\r\n")) != std::string::npos;) {
    const std::string request = client.in.substr(0, end + 4);
    client.in.erase(0, end + 4);
    ++owner->requests_;
    answer(client, request);
  }
  return flush(client);
}

void TestHttpServer::Impl::answer(Client& client, const std::string& request) {
  if (options.behaviour == Behaviour::kNeverRespond) return;
  ++client.responses;
  const bool asked_close = request.find("Connection: close") != std::string::npos;
  const bool say_close =
      options.connection_close_every > 0 &&
      client.responses % static_cast<uint64_t>(options.connection_close_every) == 0;
  const char* status =
      options.behaviour == Behaviour::kStatus503 ? "503 Service Unavailable" : "200 OK";
  std::string response = std::string("HTTP/1.1 ") + status + "\r\n";
  if (say_close || asked_close) response += "Connection: close\r\n";
  response += options.chunked ? "Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
                              : "Content-Length: 5\r\n\r\nhello";
  client.out += response;
  if (say_close || asked_close || options.behaviour == Behaviour::kCloseAfterResponse) {
    client.close_after_flush = true;
  }
}

bool TestHttpServer::Impl::flush(Client& client) {
  while (!client.out.empty()) {
    const ssize_t n = ::send(client.fd.get(), client.out.data(), client.out.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN;
    client.out.erase(0, static_cast<size_t>(n));
  }
  return !client.close_after_flush;
}

TestHttpServer::TestHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->owner = this;
}

std::unique_ptr<TestHttpServer> TestHttpServer::start(const Options& options, std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  uint16_t port = 0;
  if (!impl->bind_and_listen(&port, error)) return nullptr;
  std::unique_ptr<TestHttpServer> server(new TestHttpServer(std::move(impl)));
  server->port_ = port;
  server->thread_ = std::thread([raw = server->impl_.get()] { raw->serve(); });
  return server;
}

TestHttpServer::~TestHttpServer() {
  if (thread_.joinable()) {
    const char byte = 0;
    [[maybe_unused]] const ssize_t n = ::write(impl_->wake_write.get(), &byte, 1);
    thread_.join();
  }
}

ClosedPort::ClosedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port_ = ntohs(address.sin_port);
  }
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace serverswap::verify::testing
