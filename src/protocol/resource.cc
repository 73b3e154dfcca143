#include "protocol/resource.h"

#include <arpa/inet.h>

#include <charconv>

namespace serverswap::protocol {
namespace {

Status bad(std::string_view text, const std::string& why) {
  return Status::error("invalid resource '" + std::string(text) + "': " + why +
                       " (expected :PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH)");
}

Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535)
    return bad(whole, "port must be a number from 0 to 65535");
  return static_cast<uint16_t>(value);
}

// Canonical numeric form of an IPv4 or IPv6 literal, or an error.
Result<std::string> canonical_host(std::string_view host, bool bracketed, std::string_view whole) {
  // inet_pton reads up to a NUL: "127.0.0.1\0junk" must not pass as 127.0.0.1.
  if (host.find('\0') != std::string_view::npos) return bad(whole, "host contains a NUL byte");
  std::string h(host);
  if (!bracketed && h == "localhost") return std::string("127.0.0.1");
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  int family = bracketed ? AF_INET6 : AF_INET;
  if (inet_pton(family, h.c_str(), buf) != 1)
    return bad(whole, bracketed ? "not an IPv6 address" : "host must be a numeric IPv4 address");
  inet_ntop(family, buf, out, sizeof out);
  return std::string(out);
}

Result<Resource> parse_unix(std::string_view text) {
  Resource r;
  r.kind = Resource::Kind::kUnix;
  r.path = std::string(text.substr(5));
  if (r.path.empty() || r.path[0] != '/') return bad(text, "unix socket path must be absolute");
  if (r.path.size() > kMaxUnixPath)
    return bad(text, "unix socket path longer than " + std::to_string(kMaxUnixPath) + " bytes");
  if (r.path.find('\0') != std::string::npos) return bad(text, "path contains a NUL byte");
  return r;
}

}  // namespace

std::string Resource::name() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  std::string port_text = std::to_string(port);
  if (host.empty()) return ":" + port_text;
  return ipv6() ? "[" + host + "]:" + port_text : host + ":" + port_text;
}

Result<Resource> parse_resource(std::string_view text) {
  if (text.starts_with("unix:")) return parse_unix(text);
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad(text, "no port");
  auto port = parse_port(text.substr(colon + 1), text);
  if (!port.ok()) return port.status();
  Resource r;
  r.port = *port;
  std::string_view host = text.substr(0, colon);
  if (host.empty()) return r;
  bool bracketed = host.front() == '[';
  if (bracketed) {
    if (host.size() < 3 || host.back() != ']') return bad(text, "unbalanced brackets");
    host = host.substr(1, host.size() - 2);
  }
  auto canonical = canonical_host(host, bracketed, text);
  if (!canonical.ok()) return canonical.status();
  r.host = *canonical;
  return r;
}

}  // namespace serverswap::protocol
