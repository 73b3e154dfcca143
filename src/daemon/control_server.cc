#include "daemon/control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

namespace serverswap::daemon {

ControlServer::ControlServer(uv_loop_t* loop, Handlers handlers)
    : loop_(loop), handlers_(std::move(handlers)) {}

ControlServer::~ControlServer() {
  stop_listening();
  // Handles still open here are closed without their callbacks reaching this object.
  for (auto& [id, connection] : connections_) connection.release();
}

Status ControlServer::listen(const std::string& path) {
  listener_ = new uv_pipe_t;
  uv_pipe_init(loop_, listener_, 0);
  listener_->data = this;
  // The socket file is created 0600: only the owner may connect (SO_PEERCRED checks again).
  mode_t old_mask = umask(0177);
  int rc = uv_pipe_bind(listener_, path.c_str());
  umask(old_mask);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128, [](uv_stream_t* s, int status) {
      auto* self = static_cast<ControlServer*>(s->data);
      if (status == 0) self->on_connection();
    });
  }
  if (rc != 0) {
    stop_listening();
    return Status::error("control socket " + path + ": " + uv_strerror(rc));
  }
  path_ = path;
  return {};
}

void ControlServer::stop_listening() {
  if (!listener_) return;
  uv_close(reinterpret_cast<uv_handle_t*>(listener_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
  listener_ = nullptr;
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

void ControlServer::on_connection() {
  uint64_t id = next_id_++;
  auto connection = std::make_unique<Connection>(loop_, id);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_), connection->stream()) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(connection->stream()),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    connection.release();
    return;
  }
  Connection* raw = connection.get();
  connections_.emplace(id, std::move(connection));
  raw->start({handlers_.on_line, handlers_.on_disconnect,
              [this](Connection& c) { connections_.erase(c.id()); }});
  uid_t uid = raw->peer_uid();
  if (uid != getuid() && uid != 0) {
    log_line("refused a control connection from pid " + std::to_string(raw->peer_pid()) +
             " of uid " + std::to_string(uid) + " (only uid " + std::to_string(getuid()) +
             " may connect)");
    raw->send(protocol::error_reply("permission denied: the daemon runs as another user"));
    raw->close();
  }
}

void ControlServer::close_all() {
  for (auto& [id, connection] : connections_) connection->close();
}

Connection* ControlServer::find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() || it->second->closing() ? nullptr : it->second.get();
}

}  // namespace serverswap::daemon
