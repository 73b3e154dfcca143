// worker_server: a small HTTP server for the worker tests, one request per connection.
//   worker_server RESOURCE [RESOURCE...]
// Answers "version=$VERSION worker=$SERVERSWAP_WORKER pid=PID". Prints "worker_server pid P
// worker W version V up" once up. Environment:
//   WORKER_FAIL=N  exits 1 before asking for anything when SERVERSWAP_WORKER is N;
//   STAGGER=1      asks for its resources one at a time, sending `serving` for each, and
//                  waits for SIGUSR1 before each one after the first;
//   CRASH_AFTER_UP_MS=N  exits 3 N ms after it is up (between two answers: no client cut
//                  off), a release that crashes once it is in place.
// On takeDown it stops accepting on that resource alone; it exits once it has none left.
#include <poll.h>
#include <serverswap/client.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

// Reads the request head (bounded by 2 s) and answers it; the connection closes after.
void answer(int connection, const std::string& body) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    pollfd p{connection, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    ssize_t n = read(connection, buf, sizeof buf);
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: ";
  response.append(std::to_string(body.size())).append("\r\nConnection: close\r\n\r\n").append(body);
  send(connection, response.data(), response.size(), MSG_NOSIGNAL);
  close(connection);
}

int wait_for_usr1(int signals) {
  signalfd_siginfo info{};
  return read(signals, &info, sizeof info) == sizeof info ? 0 : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: worker_server RESOURCE [RESOURCE...]\n");
    return 2;
  }
  std::string worker = env_or("SERVERSWAP_WORKER", "-");
  std::string version = env_or("VERSION", "v0");
  if (env_or("WORKER_FAIL", "") == worker) {
    std::fprintf(stderr, "worker_server: worker %s of version %s fails on purpose\n",
                 worker.c_str(), version.c_str());
    return 1;
  }
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  int signals = signalfd(-1, &usr1, SFD_CLOEXEC);
  bool stagger = env_or("STAGGER", "") == "1";

  auto client = serverswap::Client::open({.explicit_up = true});
  std::map<std::string, int> listeners;  // resource -> fd, while accepting on it
  std::vector<std::string> pending(argv + 1, argv + argc);
  std::string body =
      "version=" + version + " worker=" + worker + " pid=" + std::to_string(getpid());
  // Asks for the next resource (every one unless staggered); up once none is left.
  auto ask = [&] {
    do {
      std::string resource = pending.front();
      pending.erase(pending.begin());
      client.on_takedown(resource, [&listeners, resource](std::string_view) {
        close(listeners[resource]);
        listeners.erase(resource);
      });
      listeners[resource] = client.ready_for(resource);
      if (stagger) client.serving(resource);
    } while (!stagger && !pending.empty());
    if (!pending.empty()) return;
    client.server_up();
    std::printf("worker_server pid %d worker %s version %s up\n", getpid(), worker.c_str(),
                version.c_str());
    std::fflush(stdout);
  };
  ask();
  const int crash_after_ms = std::atoi(env_or("CRASH_AFTER_UP_MS", "0").c_str());
  const auto crash_at =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(crash_after_ms);
  while (!listeners.empty()) {
    int timeout = -1;
    if (crash_after_ms > 0 && pending.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          crash_at - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        std::fprintf(stderr, "worker_server: worker %s of version %s crashes on purpose\n",
                     worker.c_str(), version.c_str());
        return 3;
      }
      timeout = static_cast<int>(left.count());
    }
    std::vector<pollfd> fds = {{client.control_fd(), POLLIN, 0}, {signals, POLLIN, 0}};
    for (const auto& [resource, fd] : listeners) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), timeout) < 0) continue;
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int connection = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection >= 0) answer(connection, body);  // EAGAIN: a sibling took it
    }
    if (fds[1].revents && wait_for_usr1(signals) == 0 && !pending.empty()) ask();
    if (fds[0].revents) client.dispatch();
  }
  return 0;
}
