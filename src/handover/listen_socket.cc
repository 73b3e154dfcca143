#include "handover/listen_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace serverswap::handover {
namespace {

using protocol::Resource;

Status listen_on(int fd, const std::string& what) {
  if (::listen(fd, SOMAXCONN) != 0) return Status::system_error("listen " + what, errno);
  return {};
}

Result<ListenSocket> bind_tcp_family(const Resource& r, int family) {
  const std::string what = r.name();
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::system_error("socket for " + what, errno);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage addr{};
  socklen_t len;
  if (family == AF_INET6) {
    // ":PORT" serves IPv4 too; an explicit IPv6 address serves only itself.
    int v6only = r.host.empty() ? 0 : 1;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(r.port);
    a6->sin6_addr = in6addr_any;
    if (!r.host.empty()) inet_pton(AF_INET6, r.host.c_str(), &a6->sin6_addr);
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(r.port);
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
    if (!r.host.empty()) inet_pton(AF_INET, r.host.c_str(), &a4->sin_addr);
    len = sizeof *a4;
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return Status::system_error("bind " + what, errno);
  if (Status s = listen_on(fd.get(), what); !s.ok()) return s;
  std::string address = bound_address(fd.get());
  return ListenSocket{std::move(fd), std::move(address)};
}

Result<ListenSocket> bind_tcp(const Resource& r) {
  if (!r.host.empty()) return bind_tcp_family(r, r.ipv6() ? AF_INET6 : AF_INET);
  auto dual = bind_tcp_family(r, AF_INET6);
  if (dual.ok()) return dual;
  // Kernels booted without IPv6 refuse the socket itself; fall back to IPv4 only then.
  UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT))
    return bind_tcp_family(r, AF_INET);
  return dual;
}

// True when something accepts on the Unix socket at `path`.
bool unix_socket_alive(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return probe &&
         ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

Result<ListenSocket> bind_unix(const Resource& r) {
  const std::string what = r.name();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, r.path.c_str(), r.path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::system_error("socket for " + what, errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    struct stat st {};
    bool stale = errno == EADDRINUSE && ::lstat(r.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
                 !unix_socket_alive(addr);
    if (!stale) return Status::system_error("bind " + what, errno);
    ::unlink(r.path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return Status::system_error("bind " + what, errno);
  }
  if (Status s = listen_on(fd.get(), what); !s.ok()) return s;
  return ListenSocket{std::move(fd), what};
}

}  // namespace

Result<ListenSocket> bind_listener(const Resource& resource) {
  return resource.kind == Resource::Kind::kUnix ? bind_unix(resource) : bind_tcp(resource);
}

std::string bound_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
    // Appended piecewise: GCC 12's -Wrestrict misfires on "[" + std::string(...) at -O2.
    std::string out = "[";
    out.append(host).append("]:").append(std::to_string(ntohs(a6->sin6_port)));
    return out;
  }
  if (addr.ss_family == AF_INET) {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a4->sin_port));
  }
  if (addr.ss_family == AF_UNIX) {
    return "unix:" + std::string(reinterpret_cast<sockaddr_un*>(&addr)->sun_path);
  }
  return "?";
}

}  // namespace serverswap::handover
