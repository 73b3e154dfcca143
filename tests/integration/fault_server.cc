// fault_server: a server that misbehaves on purpose, one way per mode, for the fault tests.
//   fault_server MODE [RESOURCE]
// Modes: crash-before-ready, hang, no-client, fail-after-resource, crash-after-resource,
// ignore-takedown, bad-resource, abuse (malformed protocol input, then readyFor and fail),
// fork-children (forks two children that stay in its process group, prints their pids,
// exits alone on takeDown), close-control (comes up, then closes its control connection),
// crash-loop MARKER (comes up the first time; exits 5 at once when MARKER exists), hold
// (answers "held by PID" on each connection, "done by PID" once the client sends a line,
// and on takeDown exits when its connections are done), einhorn-ack (an einhorn worker: no
// serverswap client; acks on EINHORN_SOCK_PATH, then waits for its takedown signal), claim
// RESOURCE... (readyFor each in turn, printing "claimed R" or "refused R: ERROR"; then
// serverUp, or after a refusal nothing: the daemon fails it), decode-abuse RESOURCE FILE
// (after its hello, sends each line of FILE raw and prints "reply N: <the daemon's answer>",
// then comes up on RESOURCE and waits for takeDown), say TEXT (sends STATUS=TEXT, then
// READY=1, on NOTIFY_SOCKET, with no client; waits for its takedown signal), fail-with TEXT
// (connects and fails with TEXT as its reason), crash-after-up (comes up, keeps reading its
// control socket for 500 ms, then exits 3: a release that dies in its first second),
// claim-after-up RESOURCE OTHER (comes up on RESOURCE, then asks for OTHER; refused, prints
// "refused OTHER: ERROR" and sends fail with ERROR, after it was up).
#include <fcntl.h>
#include <poll.h>
#include <serverswap/client.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

[[noreturn]] void block_forever() {
  for (;;) pause();
}

// Runs what arrived on the control socket and a due reconnect (a restarted daemon); false
// once the daemon is gone for good.
bool dispatch(serverswap::Client& client) {
  try {
    client.dispatch();
    return true;
  } catch (const serverswap::Error& e) {
    std::fprintf(stderr, "fault_server: %s\n", e.what());
    return false;
  }
}

// Serves nothing, but keeps reading the control socket so that takeDown arrives, and
// resumes with a restarted daemon.
[[noreturn]] void idle(serverswap::Client& client) {
  for (;;) {
    pollfd p{client.control_fd(), POLLIN, 0};
    poll(&p, 1, client.timeout_ms());
    if (!dispatch(client)) block_forever();
  }
}

// Writes `line` raw on the control socket and prints what comes back.
std::string talk(int fd, const std::string& line) {
  if (write(fd, line.data(), line.size()) < 0) return "write failed";
  char buf[70000];
  ssize_t n = read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "closed";
}

// What einhorn's Einhorn::Worker.ack! sends: one JSON line on the command socket.
int einhorn_ack() {
  const char* path = getenv("EINHORN_SOCK_PATH");
  if (!path || !getenv("EINHORN_FD_0")) return 11;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 10;
  std::string ack = "{\"command\":\"worker:ack\",\"pid\":" + std::to_string(getpid()) + "}\n";
  if (write(fd, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) return 12;
  close(fd);
  block_forever();
}

// A connection of its own to $SERVERSWAP_SOCKET, speaking the protocol by hand: says hello
// with $SERVERSWAP_ID and prints the welcome. -1 when it cannot connect.
int connect_and_hello() {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, getenv("SERVERSWAP_SOCKET"), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  std::string hello = std::string("{\"hello\":{\"id\":\"") + getenv("SERVERSWAP_ID") +
                      "\",\"pid\":" + std::to_string(getpid()) + ",\"protocol\":1}}\n";
  std::printf("welcome: %s", talk(fd, hello).c_str());
  return fd;
}

int abuse(const std::string& resource) {
  int fd = connect_and_hello();
  if (fd < 0) return 10;
  std::printf("malformed: %s", talk(fd, "{nope\n").c_str());
  std::printf("unknown: %s", talk(fd, "{\"bogus\":1}\n").c_str());
  std::printf("wrong type: %s", talk(fd, "{\"readyFor\":5}\n").c_str());
  std::fflush(stdout);
  // Still a working connection: ask for the socket, then give up cleanly.
  std::string ready = "{\"readyFor\":\"" + resource + "\"}\n{\"fail\":\"done abusing\"}\n";
  if (write(fd, ready.data(), ready.size()) < 0) return 11;
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  return 0;
}

// Each malformed line of `file` on the server's own connection (docs/protocol.md section
// 3: an error reply each, the connection stays open), then readyFor and serverUp.
int decode_abuse(const std::string& resource, const char* file) {
  int fd = connect_and_hello();
  if (fd < 0) return 10;
  FILE* lines = std::fopen(file, "r");
  if (!lines) return 11;
  char line[4096];
  for (int n = 1; std::fgets(line, sizeof line, lines); ++n)
    std::printf("reply %d: %s", n, talk(fd, line).c_str());
  std::fclose(lines);
  std::fflush(stdout);
  std::string up = "{\"readyFor\":\"" + resource + "\"}\n{\"serverUp\":true}\n";
  if (write(fd, up.data(), up.size()) < 0) return 12;
  char buf[4096];
  for (;;) {  // until takeDown (or the daemon hangs up)
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0 || std::string(buf, static_cast<size_t>(n)).find("takeDown") != std::string::npos)
      return 0;
  }
}

// Two children that do nothing until signalled, in our process group (fork keeps it).
[[noreturn]] void fork_children(serverswap::Client& client, const std::string& resource) {
  client.on_takedown(resource, [](std::string_view) { std::exit(0); });  // leaves them behind
  client.ready_for(resource);
  pid_t children[2];
  for (pid_t& child : children) {
    child = fork();
    if (child == 0) block_forever();
  }
  std::printf("fork-children: children %d %d\n", children[0], children[1]);
  std::fflush(stdout);
  client.server_up();
  idle(client);
}

[[noreturn]] void close_control(serverswap::Client& client, const std::string& resource) {
  client.ready_for(resource);
  client.server_up();
  shutdown(client.control_fd(), SHUT_RDWR);  // the daemon sees the connection end
  block_forever();                           // SIGTERM (default action) ends it
}

// A line-based "long request" server: each connection is one request that lasts until the
// client sends a line.
int hold(serverswap::Client& client, const std::string& resource) {
  int listener = -1;
  bool draining = false;
  client.on_takedown(resource, [&](std::string_view) {
    draining = true;
    close(listener);
    listener = -1;
    client.took_down(resource);
  });
  listener = client.ready_for(resource);
  client.server_up();
  std::string held = "held by " + std::to_string(getpid()) + "\n";
  std::string done = "done by " + std::to_string(getpid()) + "\n";
  std::set<int> connections;
  while (!draining || !connections.empty()) {
    std::vector<pollfd> fds = {{client.control_fd(), POLLIN, 0}, {listener, POLLIN, 0}};
    for (int c : connections) fds.push_back({c, POLLIN, 0});
    if (poll(fds.data(), fds.size(), client.timeout_ms()) < 0) continue;
    if (fds[0].revents || client.timeout_ms() == 0) dispatch(client);
    if (fds[1].revents && listener >= 0) {
      int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0 && send(c, held.data(), held.size(), MSG_NOSIGNAL) > 0) connections.insert(c);
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      char buf[256];
      if (read(fds[i].fd, buf, sizeof buf) > 0)
        send(fds[i].fd, done.data(), done.size(), MSG_NOSIGNAL);
      close(fds[i].fd);
      connections.erase(fds[i].fd);
    }
  }
  return 0;
}

}  // namespace

// Two datagrams on the server's NOTIFY_SOCKET, in order: the deploy hears STATUS= first.
int say_then_ready(const std::string& text) {
  const char* address = std::getenv("NOTIFY_SOCKET");
  if (!address || !*address) return std::fprintf(stderr, "fault_server: no NOTIFY_SOCKET\n"), 2;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, address, sizeof addr.sun_path - 1);
  if (address[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                    std::min(std::strlen(address), sizeof addr.sun_path - 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (const std::string& datagram : {"STATUS=" + text, std::string("READY=1")})
    if (sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr), len) !=
        static_cast<ssize_t>(datagram.size()))
      return std::perror("fault_server: sendto"), 2;
  block_forever();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fault_server MODE [RESOURCE]\n");
    return 2;
  }
  std::string mode = argv[1];
  std::string resource = argc > 2 ? argv[2] : "127.0.0.1:0";
  if (mode == "no-client") block_forever();
  if (mode == "abuse") return abuse(resource);
  if (mode == "decode-abuse") return argc > 3 ? decode_abuse(resource, argv[3]) : 2;
  if (mode == "einhorn-ack") return einhorn_ack();
  if (mode == "crash-loop") {
    if (argc < 4) return 2;
    if (access(argv[3], F_OK) == 0) return 5;  // every restart dies at once
    close(open(argv[3], O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  }
  if (mode == "say") return say_then_ready(resource);
  auto client = serverswap::Client::open();
  if (mode == "fail-with") {
    client.fail(resource);
    idle(client);
  }
  if (mode == "crash-before-ready") return 3;
  if (mode == "hang") idle(client);
  if (mode == "fork-children") fork_children(client, resource);
  if (mode == "close-control") close_control(client, resource);
  if (mode == "hold") return hold(client, resource);
  if (mode == "claim") {
    for (int i = 2; i < argc; ++i) {
      try {
        client.ready_for(argv[i]);
        std::fprintf(stderr, "fault_server: claimed %s\n", argv[i]);
      } catch (const serverswap::Error& e) {
        std::fprintf(stderr, "fault_server: refused %s: %s\n", argv[i], e.what());
        idle(client);
      }
    }
    client.server_up();
    idle(client);
  }
  if (mode == "claim-after-up") {
    // Up on RESOURCE, then asks for OTHER; refused, it prints why and sends fail with it.
    if (argc < 4) return 2;
    client.on_takedown(resource, [](std::string_view) {});
    client.ready_for(resource);
    client.server_up();
    try {
      client.ready_for(argv[3]);
      std::fprintf(stderr, "fault_server: claimed %s\n", argv[3]);
    } catch (const serverswap::Error& e) {
      std::fprintf(stderr, "fault_server: refused %s: %s\n", argv[3], e.what());
      client.fail(e.what());
    }
    idle(client);
  }
  if (mode == "bad-resource") {
    try {
      client.ready_for(resource);
    } catch (const serverswap::Error& e) {
      std::fprintf(stderr, "fault_server: %s\n", e.what());
      idle(client);  // ignores the error: the daemon must still fail it
    }
    return 0;
  }
  client.on_takedown(resource, [](std::string_view) {});
  client.ready_for(resource);
  if (mode == "fail-after-resource") {
    client.fail("cache warm-up failed");
    idle(client);
  }
  if (mode == "crash-after-resource") return 4;
  if (mode == "crash-after-up") {
    client.server_up();
    std::fprintf(stderr, "fault_server: up; exiting 3 in 500 ms\n");
    // The daemon's messages are read meanwhile (it must send this one nothing: no takeDown).
    for (int waited = 0; waited < 500; waited += 10) {
      pollfd p{client.control_fd(), POLLIN, 0};
      if (poll(&p, 1, 10) > 0 && !dispatch(client)) break;
    }
    return 3;
  }
  if (mode == "crash-loop") {
    client.server_up();
    idle(client);
  }
  if (mode == "ignore-takedown") {
    signal(SIGTERM, SIG_IGN);
    client.server_up();
    idle(client);
  }
  std::fprintf(stderr, "fault_server: unknown mode %s\n", mode.c_str());
  return 2;
}
