// Addresses the load generator connects to: parsing "host:port", "[v6]:port" and ":port",
// and resolving them to a socket address before any load starts.
// Thread-safety: free functions without shared state.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace serverswap::verify {

struct HostPort {
  std::string host;  // without brackets; "127.0.0.1" for ":port"
  uint16_t port = 0;
};

// Parses "host:port", "[v6addr]:port" or ":port" (meaning 127.0.0.1). On failure returns
// nullopt and sets *error to a message naming the input.
std::optional<HostPort> parse_host_port(std::string_view text, std::string* error);

// "127.0.0.1:80", "[::1]:80", "example.com:80": the form used in Host headers and messages.
std::string format_host_port(const std::string& host, uint16_t port);

struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string text;  // as format_host_port, for messages
};

// Resolves host (an IPv4/IPv6 literal or a name) with getaddrinfo; takes the first
// stream address. Blocking: call it before starting the load loop.
std::optional<Endpoint> resolve_endpoint(const std::string& host, uint16_t port,
                                         std::string* error);

}  // namespace serverswap::verify
