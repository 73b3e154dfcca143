// Fuzz target: the resource address parser (readyFor's argument, from any server).
// Property: whatever parses has a canonical name that parses to itself.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/resource.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using serverswap::protocol::parse_resource;
  using serverswap::protocol::Resource;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto resource = parse_resource(text);
  if (!resource.ok()) {
    check(!resource.status().message().empty());
    return 0;
  }
  std::string name = resource->name();
  auto again = parse_resource(name);
  check(again.ok());
  check(again->name() == name);
  check(again->kind == resource->kind && again->port == resource->port);
  check(name.find('\0') == std::string::npos);
  if (resource->kind == Resource::Kind::kUnix)
    check(resource->path.size() <= serverswap::protocol::kMaxUnixPath);
  return 0;
}
