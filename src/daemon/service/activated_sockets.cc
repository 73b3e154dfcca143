#include "daemon/service/activated_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace serverswap::daemon {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

long long env_number(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return -1;
  long long value = -1;
  auto [end, ec] = std::from_chars(text, text + std::strlen(text), value);
  return ec == std::errc() && *end == '\0' ? value : -1;
}

std::vector<std::string> split_names(const char* text, size_t count) {
  std::vector<std::string> names;
  std::string rest = text ? text : "";
  for (size_t start = 0; names.size() < count && start <= rest.size();) {
    size_t colon = rest.find(':', start);
    if (colon == std::string::npos) colon = rest.size();
    names.push_back(rest.substr(start, colon - start));
    start = colon + 1;
  }
  names.resize(count);
  return names;
}

std::string tcp_name(const std::string& host, bool wildcard, uint16_t port, bool v6) {
  std::string out;
  if (wildcard) return out.append(":").append(std::to_string(port));
  if (v6) return out.append("[").append(host).append("]:").append(std::to_string(port));
  return out.append(host).append(":").append(std::to_string(port));
}

Status check_listening_stream(int fd, const std::string& what) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
    return Status::system_error(what, errno);
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0)
    return Status::system_error(what, errno);
  if (type != SOCK_STREAM || !listening)
    return Status::error(what + ": not a listening stream socket (use ListenStream=)");
  return {};
}

}  // namespace

Result<std::string> resource_of_socket(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return Status::system_error("getsockname", errno);
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    return tcp_name(host, a4->sin_addr.s_addr == htonl(INADDR_ANY), ntohs(a4->sin_port), false);
  }
  if (addr.ss_family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
    int v6only = 0;
    socklen_t optlen = sizeof v6only;
    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen);
    bool any = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
    return tcp_name(host, any && !v6only, ntohs(a6->sin6_port), true);
  }
  if (addr.ss_family == AF_UNIX) {
    auto* un = reinterpret_cast<sockaddr_un*>(&addr);
    if (len <= offsetof(sockaddr_un, sun_path) || un->sun_path[0] == '\0')
      return Status::error("unnamed or abstract unix sockets are not resources");
    return "unix:" + std::string(un->sun_path);
  }
  return Status::error("address family " + std::to_string(addr.ss_family) + " is not TCP/unix");
}

Result<std::vector<ActivatedSocket>> take_activated_sockets() {
  long long pid = env_number("LISTEN_PID");
  long long count = env_number("LISTEN_FDS");
  std::vector<std::string> names =
      split_names(std::getenv("LISTEN_FDNAMES"), count > 0 ? static_cast<size_t>(count) : 0);
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) ::unsetenv(name);
  std::vector<ActivatedSocket> sockets;
  if (pid != getpid() || count <= 0) return sockets;
  for (int i = 0; i < count; ++i) {
    int fd = kFirstFd + i;
    std::string what = "LISTEN_FDS: fd " + std::to_string(fd);
    // Servers must not inherit these by position: they get them through the daemon.
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return Status::system_error(what, errno);
    sockets.push_back(ActivatedSocket{UniqueFd(fd), "", names[static_cast<size_t>(i)]});
    if (Status s = check_listening_stream(fd, what); !s.ok()) return s;
    auto resource = resource_of_socket(fd);
    if (!resource.ok()) return resource.status().wrap(what);
    sockets.back().resource = *resource;
  }
  return sockets;
}

}  // namespace serverswap::daemon
