// resume_server: an HTTP server that speaks the daemon's protocol by hand, including the
// resume of docs/protocol.md section 11, so that the daemon side of a daemon restart is
// tested on its own wire format (independently of the client libraries).
//   resume_server RESOURCE [--up-on-signal]
// It asks for RESOURCE, subscribes to its takeDown, and says serverUp at once, or with
// --up-on-signal only when it gets SIGUSR1 (a server still starting when the daemon dies).
// Every connection gets one "HTTP/1.1 200" answer and is closed. When its control
// connection reaches end-of-file it reconnects (100 ms, doubling to 1 s) and sends a resume
// hello with a duplicate of its listening socket; an error reply ends the reconnecting.
// takeDown: it stops accepting, says tookDown and exits 0; SIGTERM: exits 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string resource;
int control = -1;
int listener = -1;
bool up = false;
std::string pending;  // bytes of the control connection not yet a line

void say(const std::string& text) {
  std::string line = "resume_server " + std::to_string(getpid()) + ": " + text + "\n";
  if (write(2, line.data(), line.size()) < 0) return;
}

int connect_daemon() {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, std::getenv("SERVERSWAP_SOCKET"), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One line on `fd`, with `fd_to_send` as SCM_RIGHTS when >= 0.
bool send_line(int fd, const std::string& line, int fd_to_send = -1) {
  iovec iov{const_cast<char*>(line.data()), line.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))];
  if (fd_to_send >= 0) {
    msg.msg_control = space;
    msg.msg_controllen = sizeof space;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_send, sizeof(int));
  }
  return sendmsg(fd, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
}

// The next line from the daemon (blocking), taking a descriptor that comes with it.
bool read_line(std::string* line, int* fd_received) {
  for (;;) {
    if (size_t nl = pending.find('\n'); nl != std::string::npos) {
      *line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return true;
    }
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space;
    msg.msg_controllen = sizeof space;
    ssize_t n = recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_type == SCM_RIGHTS && fd_received)
        std::memcpy(fd_received, CMSG_DATA(c), sizeof(int));
    pending.append(buf, static_cast<size_t>(n));
  }
}

std::string hello_line(bool resume) {
  std::string hello = "{\"hello\":{\"id\":\"" + std::string(std::getenv("SERVERSWAP_ID")) +
                      "\",\"pid\":" + std::to_string(getpid()) +
                      ",\"protocol\":1,\"upMessage\":true";
  if (resume) {
    hello += ",\"resume\":{\"holding\":[\"" + resource + "\"],\"onTakedown\":[\"" + resource +
             "\"],\"up\":" + (up ? "true" : "false") + "}";
  }
  return hello + "}}\n";
}

bool start() {
  control = connect_daemon();
  std::string line;
  if (control < 0 || !send_line(control, hello_line(false)) || !read_line(&line, nullptr) ||
      line.find("welcome") == std::string::npos)
    return false;
  send_line(control, "{\"onTakedown\":\"" + resource + "\"}\n");
  send_line(control, "{\"readyFor\":\"" + resource + "\"}\n");
  while (read_line(&line, &listener))
    if (line.find("resourceReady") != std::string::npos) break;
  if (listener < 0) return false;
  fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK);
  return true;
}

void server_up() {
  up = true;
  send_line(control, "{\"serverUp\":true}\n");
  say("up");
}

// Reconnects after the daemon went away; true when resumed, false when refused for good.
bool resume_once() {
  int fd = connect_daemon();
  if (fd < 0) return false;
  control = fd;
  pending.clear();
  std::string line;
  if (!send_line(control, hello_line(true), listener) || !read_line(&line, nullptr)) {
    close(control);
    control = -1;
    return false;
  }
  if (line.find("\"resumed\":true") == std::string::npos) {
    say("resume refused: " + line + "; serving on without a daemon");
    close(control);
    control = -2;  // no more reconnecting
    return false;
  }
  say("resumed");
  return true;
}

void answer(int connection) {
  timeval tv{2, 0};
  setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int flags = fcntl(connection, F_GETFL);
  fcntl(connection, F_SETFL, flags & ~O_NONBLOCK);
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = read(connection, buf, sizeof buf);
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  std::string body = "resumed " + std::to_string(getpid()) + "\n";
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\nConnection: close\r\n\r\n" + body;
  if (send(connection, response.data(), response.size(), MSG_NOSIGNAL) < 0) {
  }
  close(connection);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  resource = argv[1];
  bool up_on_signal = argc > 2 && std::string(argv[2]) == "--up-on-signal";
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (!start()) {
    say("could not start");
    return 3;
  }
  if (!up_on_signal) server_up();
  int backoff_ms = 100;
  for (;;) {
    pollfd fds[3] = {{signal_fd, POLLIN, 0}, {listener, POLLIN, 0}, {control, POLLIN, 0}};
    int reconnecting = control == -1;
    // A line read together with an earlier one (a takeDown right behind the resume's
    // welcome) waits in `pending`: the socket does not poll readable for it again.
    bool buffered = control >= 0 && pending.find('\n') != std::string::npos;
    poll(fds, control >= 0 ? 3 : 2, buffered ? 0 : reconnecting ? backoff_ms : -1);
    if (fds[0].revents) {
      signalfd_siginfo info{};
      if (read(signal_fd, &info, sizeof info) > 0) {
        if (info.ssi_signo == SIGTERM) return 0;
        if (!up && control >= 0) server_up();
      }
    }
    if (fds[1].revents) {
      int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) answer(c);
    }
    if (control >= 0 && (fds[2].revents || buffered)) {
      std::string line;
      // A whole line is there or the connection ended.
      if (!read_line(&line, nullptr)) {
        say("lost the daemon; reconnecting");
        close(control);
        control = -1;
        backoff_ms = 100;
      } else if (line.find("takeDown") != std::string::npos) {
        close(listener);
        send_line(control, "{\"tookDown\":\"" + resource + "\"}\n");
        say("taken down");
        return 0;
      }
    } else if (reconnecting) {
      if (!resume_once() && control == -1) backoff_ms = std::min(backoff_ms * 2, 1000);
    }
  }
}
