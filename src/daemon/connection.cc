#include "daemon/connection.h"

#include <sys/socket.h>

#include "base/log.h"

namespace serverswap::daemon {
namespace {

struct WriteRequest {
  uv_write_t req;
  std::string data;
};

}  // namespace

Connection::Connection(uv_loop_t* loop, uint64_t id) : id_(id) {
  uv_pipe_init(loop, &pipe_, /*ipc=*/1);
  pipe_.data = this;
}

void Connection::start(Handlers handlers) {
  handlers_ = std::move(handlers);
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&pipe_), &fd) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      pid_ = cred.pid;
      uid_ = cred.uid;
    }
  }
  uv_read_start(
      stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(self->read_buffer_, sizeof self->read_buffer_);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<Connection*>(s->data)->on_read(nread, buf);
      });
}

void Connection::on_read(ssize_t nread, const uv_buf_t* buf) {
  drop_unasked_fds();
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    if (nread != UV_EOF)
      log_line("control connection of pid " + std::to_string(pid_) + ": " +
               uv_strerror(static_cast<int>(nread)));
    close();
    return;
  }
  framer_.append(std::string_view(buf->base, static_cast<size_t>(nread)));
  while (!closing_) {
    auto line = framer_.next_line();
    if (!line) break;
    if (line->empty()) continue;
    handlers_.on_line(*this, *line);
  }
  if (framer_.overflowed() && !closing_) {
    send(protocol::error_reply("line longer than " + std::to_string(protocol::kMaxLine) +
                               " bytes; closing the connection"));
    close();
  }
}

// The daemon asks no peer for descriptors (protocol v1): whatever arrives is closed at once
// so that a misbehaving server cannot make the daemon hold its files open.
void Connection::drop_unasked_fds() {
  while (uv_pipe_pending_count(&pipe_) > 0) {
    auto* sink = new uv_pipe_t;
    uv_pipe_init(pipe_.loop, sink, 0);
    uv_accept(stream(), reinterpret_cast<uv_stream_t*>(sink));
    uv_close(reinterpret_cast<uv_handle_t*>(sink),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    log_line("closed a file descriptor sent unasked by pid " + std::to_string(pid_));
  }
}

void Connection::write(const protocol::Json& message, uv_stream_t* handle) {
  if (closing_) return;
  auto* request = new WriteRequest{{}, protocol::encode(message)};
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  auto done = [](uv_write_t* req, int) { delete reinterpret_cast<WriteRequest*>(req); };
  int rc = handle ? uv_write2(&request->req, stream(), &buf, 1, handle, done)
                  : uv_write(&request->req, stream(), &buf, 1, done);
  if (rc != 0) {
    delete request;
    log_line("write to pid " + std::to_string(pid_) + ": " + uv_strerror(rc));
    close();
  }
}

void Connection::closed_cb(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self->handlers_.on_closed) self->handlers_.on_closed(*self);
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  uv_read_stop(stream());
  if (handlers_.on_disconnect) handlers_.on_disconnect(*this);
  // Shut down after queued writes (an error reply) are flushed, then close.
  auto* shutdown = new uv_shutdown_t;
  int rc = uv_shutdown(shutdown, stream(), [](uv_shutdown_t* req, int) {
    uv_close(reinterpret_cast<uv_handle_t*>(req->handle), &Connection::closed_cb);
    delete req;
  });
  if (rc != 0) {
    delete shutdown;
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), &Connection::closed_cb);
  }
}

}  // namespace serverswap::daemon
