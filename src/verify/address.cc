#include "verify/address.h"

#include <netdb.h>

#include <charconv>
#include <cstring>
#include <memory>

namespace serverswap::verify {
namespace {

std::optional<uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

struct AddrinfoFree {
  void operator()(addrinfo* info) const noexcept { freeaddrinfo(info); }
};

}  // namespace

std::optional<HostPort> parse_host_port(std::string_view text, std::string* error) {
  HostPort result;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") {
      *error = "bad address \"" + std::string(text) + "\": expected [ipv6]:port";
      return std::nullopt;
    }
    result.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      *error =
          "bad address \"" + std::string(text) + "\": expected host:port, [ipv6]:port or :port";
      return std::nullopt;
    }
    result.host = colon == 0 ? "127.0.0.1" : std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  const std::optional<uint16_t> port = parse_port(port_text);
  if (!port || *port == 0 || result.host.empty()) {
    *error = "bad address \"" + std::string(text) + "\": need a host and a port from 1 to 65535";
    return std::nullopt;
  }
  result.port = *port;
  return result;
}

std::string format_host_port(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<Endpoint> resolve_endpoint(const std::string& host, uint16_t port,
                                         std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &raw);
  std::unique_ptr<addrinfo, AddrinfoFree> info(raw);
  if (rc != 0 || info == nullptr) {
    *error = "resolve " + host + ": " + (rc != 0 ? gai_strerror(rc) : "no address");
    return std::nullopt;
  }
  Endpoint endpoint;
  std::memcpy(&endpoint.address, info->ai_addr, info->ai_addrlen);
  endpoint.length = info->ai_addrlen;
  endpoint.text = format_host_port(host, port);
  return endpoint;
}

}  // namespace serverswap::verify
