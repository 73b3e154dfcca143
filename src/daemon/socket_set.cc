#include "daemon/socket_set.h"

#include <unistd.h>

#include "base/log.h"
#include "handover/listen_socket.h"

namespace serverswap::daemon {
namespace {

void close_stream(uv_stream_t* stream) {
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) {
    if (h->type == UV_NAMED_PIPE)
      delete reinterpret_cast<uv_pipe_t*>(h);
    else
      delete reinterpret_cast<uv_tcp_t*>(h);
  });
}

// Wraps a listening fd in the libuv stream type that uv_write2 can send.
Result<uv_stream_t*> wrap(uv_loop_t* loop, int fd, bool is_unix) {
  int rc;
  uv_stream_t* stream;
  if (is_unix) {
    auto* pipe = new uv_pipe_t;
    uv_pipe_init(loop, pipe, 0);
    rc = uv_pipe_open(pipe, fd);
    stream = reinterpret_cast<uv_stream_t*>(pipe);
  } else {
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(loop, tcp);
    rc = uv_tcp_open(tcp, fd);
    stream = reinterpret_cast<uv_stream_t*>(tcp);
  }
  if (rc != 0) {
    close_stream(stream);
    return Status::error(std::string("wrap listening socket: ") + uv_strerror(rc));
  }
  return stream;
}

}  // namespace

SocketSet::~SocketSet() {
  for (auto& [name, entry] : entries_) {
    close_stream(entry.handle);
    if (!entry.unix_path.empty()) ::unlink(entry.unix_path.c_str());
  }
}

Result<const SocketSet::Entry*> SocketSet::get_or_bind(const protocol::Resource& resource) {
  std::string name = resource.name();
  if (auto it = entries_.find(name); it != entries_.end()) return &it->second;
  auto bound = handover::bind_listener(resource);
  if (!bound.ok()) return bound.status();
  bool is_unix = resource.kind == protocol::Resource::Kind::kUnix;
  auto stream = wrap(loop_, bound->fd.get(), is_unix);
  if (!stream.ok()) return stream.status();
  bound->fd.release();  // the libuv handle owns it now
  Entry entry{bound->address, is_unix ? resource.path : "", *stream};
  log_line("bound " + name + " (" + entry.address + ")");
  return &entries_.emplace(name, std::move(entry)).first->second;
}

Status SocketSet::adopt(const std::string& name, UniqueFd fd, const std::string& from) {
  if (entries_.count(name)) return Status::error("two sockets for " + name);
  std::string address = handover::bound_address(fd.get());
  auto stream = wrap(loop_, fd.get(), name.starts_with("unix:"));
  if (!stream.ok()) return stream.status().wrap(name);
  fd.release();  // the libuv handle owns it now
  log_line("adopted " + name + " (" + address + ") from " + from);
  entries_.emplace(name, Entry{address, "", *stream});
  return {};
}

const SocketSet::Entry* SocketSet::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace serverswap::daemon
