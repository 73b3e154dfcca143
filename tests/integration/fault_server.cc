// fault_server: a server that misbehaves on purpose, one way per mode, for the fault tests.
//   fault_server MODE [RESOURCE]
// Modes: crash-before-ready, hang, no-client, fail-after-resource, crash-after-resource,
// ignore-takedown, bad-resource, abuse (malformed protocol input, then readyFor and fail).
#include <poll.h>
#include <serverswap/client.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void block_forever() {
  for (;;) pause();
}

// Serves nothing, but keeps reading the control socket so that takeDown arrives.
[[noreturn]] void idle(serverswap::Client& client) {
  for (;;) {
    pollfd p{client.control_fd(), POLLIN, 0};
    poll(&p, 1, -1);
    client.dispatch();
  }
}

// Writes `line` raw on the control socket and prints what comes back.
std::string talk(int fd, const std::string& line) {
  if (write(fd, line.data(), line.size()) < 0) return "write failed";
  char buf[70000];
  ssize_t n = read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "closed";
}

int abuse(const std::string& resource) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, getenv("SERVERSWAP_SOCKET"), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 10;
  std::string hello = std::string("{\"hello\":{\"id\":\"") + getenv("SERVERSWAP_ID") +
                      "\",\"pid\":" + std::to_string(getpid()) + ",\"protocol\":1}}\n";
  std::printf("welcome: %s", talk(fd, hello).c_str());
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fault_server MODE [RESOURCE]\n");
    return 2;
  }
  std::string mode = argv[1];
  std::string resource = argc > 2 ? argv[2] : "127.0.0.1:0";
  if (mode == "no-client") block_forever();
  if (mode == "abuse") return abuse(resource);
  auto client = serverswap::Client::open();
  if (mode == "crash-before-ready") return 3;
  if (mode == "hang") idle(client);
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
  if (mode == "ignore-takedown") {
    signal(SIGTERM, SIG_IGN);
    client.server_up();
    idle(client);
  }
  std::fprintf(stderr, "fault_server: unknown mode %s\n", mode.c_str());
  return 2;
}
