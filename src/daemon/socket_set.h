// SocketSet: the daemon's listening sockets, keyed by resource name. A resource is bound
// the first time a server asks for it and kept for as long as the daemon runs, so that
// successive servers share one kernel socket and one accept queue. Loop thread only.
#pragma once

#include <uv.h>

#include <map>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "protocol/resource.h"

namespace serverswap::daemon {

class SocketSet {
 public:
  struct Entry {
    std::string address;  // as bound: "[::]:8080"
    std::string unix_path;
    uv_stream_t* handle = nullptr;  // owns the fd; what uv_write2 sends
  };

  explicit SocketSet(uv_loop_t* loop) : loop_(loop) {}
  ~SocketSet();
  SocketSet(const SocketSet&) = delete;
  SocketSet& operator=(const SocketSet&) = delete;

  Result<const Entry*> get_or_bind(const protocol::Resource& resource);
  // Takes a socket bound by someone else (systemd's socket units) for resource `name`,
  // which get_or_bind then returns. Its Unix socket file, if any, is left for its owner.
  Status adopt(const std::string& name, UniqueFd fd,
               const std::string& from = "the service manager");
  const Entry* find(const std::string& name) const;
  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  uv_loop_t* loop_;
  std::map<std::string, Entry> entries_;
};

}  // namespace serverswap::daemon
