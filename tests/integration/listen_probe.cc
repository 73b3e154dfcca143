// listen_probe: a stand-in for an unmodified program that knows systemd's conventions only.
// It reads its inherited sockets with libsystemd's own sd_listen_fds_with_names (the
// reference parser of LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), writes what it found and the
// other conventions' variables to REPORT.<pid>, speaks sd_notify through libsystemd
// (READY=1, STATUS=, MAINPID=; STOPPING=1 when taken down), and exits on SIGTERM, SIGINT,
// SIGQUIT, SIGUSR1 or SIGUSR2, writing the signal's name to REPORT.<pid>.signal.
// `listen_probe REPORT silent`: no sd_notify at all (a program that can say nothing).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

std::string address_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    std::string out = "[";
    out.append(host).append("]:").append(std::to_string(ntohs(a->sin6_port)));
    return out;
  }
  if (addr.ss_family == AF_UNIX)
    return std::string("unix:") + reinterpret_cast<sockaddr_un*>(&addr)->sun_path;
  return "?";
}

std::string env(const char* name) {
  const char* value = getenv(name);
  return value ? value : "(unset)";
}

// Written whole, then renamed: a reader never sees half a report.
void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  rename((path + ".tmp").c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  bool silent = argc > 2 && std::string(argv[2]) == "silent";
  std::string report = std::string(argv[1]) + "." + std::to_string(getpid());
  sigset_t stop;
  sigemptyset(&stop);
  for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2}) sigaddset(&stop, s);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  char** names = nullptr;
  int n = sd_listen_fds_with_names(0, &names);
  std::string text = "listen_fds " + std::to_string(n) + "\n";
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    text += "fd " + std::to_string(fd) + " name " + (names ? names[i] : "?") + " address " +
            address_of(fd) + " nonblock " + ((fcntl(fd, F_GETFL) & O_NONBLOCK) ? "1" : "0") +
            " listening " + std::to_string(sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1)) + "\n";
  }
  for (const char* name : {"SERVER_STARTER_PORT", "EINHORN_FD_COUNT", "EINHORN_FD_0",
                           "EINHORN_FD_1", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "SERVERSWAP_ID"})
    text += std::string("env ") + name + "=" + env(name) + "\n";
  write_file(report, text);

  if (!silent)
    sd_notifyf(0, "READY=1\nSTATUS=probe serving %d sockets\nMAINPID=%d", n,
               static_cast<int>(getpid()));
  int got = 0;
  sigwait(&stop, &got);
  if (!silent) sd_notify(0, "STOPPING=1");
  write_file(report + ".signal", std::string("SIG") + sigabbrev_np(got) + "\n");
  return 0;
}
