#include "client/inherited_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "handover/listen_socket.h"
#include "protocol/resource.h"

namespace serverswap::client {
namespace {

constexpr int kSystemdFirstFd = 3;  // SD_LISTEN_FDS_START
// More would be a mistake, not a server: it bounds the loops over what the text claims.
constexpr unsigned kMaxInheritedFds = 4096;

std::optional<unsigned> parse_number(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Status malformed(const std::string& variable, std::string_view text, const std::string& why) {
  std::string out = variable;
  out.append("=").append(text).append(": ").append(why);
  return Status::error(out);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

bool listening_stream(int fd) {
  int type = 0, accepting = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof accepting;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting == 1;
}

bool same_tcp_address(const sockaddr_storage& a, const protocol::Resource& r) {
  if (a.ss_family == AF_INET) {
    const auto& a4 = reinterpret_cast<const sockaddr_in&>(a);
    if (ntohs(a4.sin_port) != r.port) return false;
    if (r.host.empty()) return true;
    in_addr want{};
    return inet_pton(AF_INET, r.host.c_str(), &want) == 1 && want.s_addr == a4.sin_addr.s_addr;
  }
  if (a.ss_family != AF_INET6) return false;
  const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a);
  if (ntohs(a6.sin6_port) != r.port) return false;
  if (r.host.empty()) return true;
  in6_addr want{};
  if (r.ipv6()) {
    if (inet_pton(AF_INET6, r.host.c_str(), &want) != 1) return false;
  } else {
    // An IPv4 resource is also served by a socket bound to its v4-mapped IPv6 address.
    std::string mapped = "::ffff:" + r.host;
    if (inet_pton(AF_INET6, mapped.c_str(), &want) != 1) return false;
  }
  return std::memcmp(&want, &a6.sin6_addr, sizeof want) == 0;
}

bool same_address(int fd, const protocol::Resource& r) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return false;
  if (r.kind == protocol::Resource::Kind::kTcp) return same_tcp_address(a, r);
  if (a.ss_family != AF_UNIX) return false;
  const auto& un = reinterpret_cast<const sockaddr_un&>(a);
  size_t path_len =
      len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
  std::string_view path(un.sun_path, strnlen(un.sun_path, path_len));
  return path == r.path;
}

}  // namespace

Result<InheritedSet> parse_systemd(const char* listen_fds, const char* listen_pid,
                                   const char* listen_fdnames, pid_t self) {
  // As sd_listen_fds(): the variables address one process; a child that inherited them is not it.
  if (listen_fds == nullptr || listen_pid == nullptr) return InheritedSet{};
  auto pid = parse_number(listen_pid);
  if (!pid) return malformed("LISTEN_PID", listen_pid, "not a process id");
  if (static_cast<pid_t>(*pid) != self) return InheritedSet{};
  auto count = parse_number(listen_fds);
  if (!count || *count > kMaxInheritedFds)
    return malformed("LISTEN_FDS", listen_fds, "not a count of descriptors");
  std::vector<std::string_view> names;
  if (listen_fdnames != nullptr && *count > 0) {
    names = split(listen_fdnames, ':');
    if (names.size() != *count)
      return malformed("LISTEN_FDNAMES", listen_fdnames,
                       "names " + std::to_string(names.size()) +
                           " descriptors but LISTEN_FDS=" + std::to_string(*count));
  }
  InheritedSet set{"LISTEN_FDS", {}};
  for (unsigned i = 0; i < *count; ++i)
    set.sockets.push_back({kSystemdFirstFd + static_cast<int>(i),
                           names.empty() ? std::string() : std::string(names[i])});
  return set;
}

Result<InheritedSet> parse_server_starter(std::string_view text) {
  InheritedSet set{"SERVER_STARTER_PORT", {}};
  for (std::string_view entry : split(text, ';')) {
    if (entry.empty()) continue;  // a trailing ';'
    // The last '=': a Unix path may hold one, the descriptor never does.
    size_t equals = entry.rfind('=');
    auto fd =
        equals == std::string_view::npos ? std::nullopt : parse_number(entry.substr(equals + 1));
    if (!fd || equals == 0 || *fd > INT32_MAX)
      return malformed("SERVER_STARTER_PORT", text, "expected ADDRESS=FD;ADDRESS=FD...");
    set.sockets.push_back({static_cast<int>(*fd), ""});
  }
  if (set.sockets.empty())
    return malformed("SERVER_STARTER_PORT", text, "expected ADDRESS=FD;ADDRESS=FD...");
  return set;
}

Result<InheritedSet> parse_einhorn(const EnvLookup& env) {
  const char* count_text = env("EINHORN_FD_COUNT");
  if (count_text == nullptr) return InheritedSet{};
  auto count = parse_number(count_text);
  if (!count || *count > kMaxInheritedFds)
    return malformed("EINHORN_FD_COUNT", count_text, "not a count of descriptors");
  InheritedSet set{"EINHORN_FD_COUNT", {}};
  for (unsigned i = 0; i < *count; ++i) {
    const std::string variable = "EINHORN_FD_" + std::to_string(i);
    const char* text = env(variable.c_str());
    auto fd = text != nullptr ? parse_number(text) : std::nullopt;
    if (!fd || *fd > INT32_MAX)
      return malformed(variable, text != nullptr ? text : "", "not a file descriptor");
    set.sockets.push_back({static_cast<int>(*fd), ""});
  }
  return set;
}

InheritedSet read_inherited(const EnvLookup& env, pid_t self) {
  auto take = [](Result<InheritedSet> parsed) -> std::optional<InheritedSet> {
    if (!parsed.ok()) {
      log_line("serverswap client: ignoring inherited sockets: " + parsed.status().message());
      return std::nullopt;
    }
    if (parsed->convention.empty()) return std::nullopt;
    return std::move(*parsed);
  };
  if (auto set =
          take(parse_systemd(env("LISTEN_FDS"), env("LISTEN_PID"), env("LISTEN_FDNAMES"), self)))
    return std::move(*set);
  if (const char* text = env("SERVER_STARTER_PORT")) {
    if (auto set = take(parse_server_starter(text))) return std::move(*set);
  }
  if (auto set = take(parse_einhorn(env))) return std::move(*set);
  return {};
}

bool listens_on(int fd, std::string_view resource) {
  auto parsed = protocol::parse_resource(resource);
  return parsed.ok() && listening_stream(fd) && same_address(fd, *parsed);
}

InheritedSockets InheritedSockets::from_environment() {
  return InheritedSockets(
      read_inherited([](const char* name) { return std::getenv(name); }, ::getpid()));
}

namespace {

// A socket we use is not for the server's own children (sd_listen_fds() does the same). Only
// matched ones: a descriptor a stale variable names may be something else the program owns.
std::optional<InheritedSocket> adopted(const InheritedSocket& s) {
  int flags = ::fcntl(s.fd, F_GETFD);
  if (flags >= 0) ::fcntl(s.fd, F_SETFD, flags | FD_CLOEXEC);
  return s;
}

}  // namespace

Result<std::optional<InheritedSocket>> InheritedSockets::find(const std::string& resource) const {
  for (const InheritedSocket& s : set_.sockets) {
    if (s.name.empty() || s.name != resource) continue;
    if (!listening_stream(s.fd))
      return Status::error("inherited fd " + std::to_string(s.fd) + " (LISTEN_FDNAMES " + s.name +
                           ") is not a listening stream socket");
    return adopted(s);
  }
  for (const InheritedSocket& s : set_.sockets) {
    if (listens_on(s.fd, resource)) return adopted(s);
  }
  return std::optional<InheritedSocket>();
}

std::string InheritedSockets::describe() const {
  std::string out;
  for (const InheritedSocket& s : set_.sockets) {
    if (!out.empty()) out.append(", ");
    out.append("fd ").append(std::to_string(s.fd)).append(" ");
    out.append(handover::bound_address(s.fd));
    if (!s.name.empty()) out.append(" (").append(s.name).append(")");
  }
  return out;
}

}  // namespace serverswap::client
