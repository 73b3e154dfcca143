// Resource: an address a server asks to accept on, as written in the protocol:
// ":8080" (TCP, every interface, dual-stack), "127.0.0.1:8080", "[::1]:8080",
// "unix:/path/to.sock". docs/protocol.md, "Resources".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace serverswap::protocol {

struct Resource {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  // kTcp: a numeric IPv4 or IPv6 address without brackets; empty for every interface.
  std::string host;
  uint16_t port = 0;
  // kUnix: an absolute path.
  std::string path;

  bool ipv6() const { return host.find(':') != std::string::npos; }
  // The canonical spelling, used as the key of the daemon's socket set: "localhost:80" and
  // "127.0.0.1:80" are one resource.
  std::string name() const;
};

inline constexpr size_t kMaxUnixPath = 107;  // sun_path is 108 bytes with its NUL

Result<Resource> parse_resource(std::string_view text);

}  // namespace serverswap::protocol
