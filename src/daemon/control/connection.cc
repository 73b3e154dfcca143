#include "daemon/control/connection.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "observe/counters.h"

namespace serverswap::daemon {
namespace {

struct WriteRequest {
  uv_write_t req;
  std::string data;
};

}  // namespace

Connection::Connection(uv_loop_t* loop, uint64_t id, ConnectionShared& shared)
    : id_(id), shared_(shared) {
  uv_pipe_init(loop, &pipe_, /*ipc=*/1);
  pipe_.data = this;
}

Connection::~Connection() {
  unpend(received_fds_.size());
}

std::vector<UniqueFd> Connection::take_received_fds() {
  unpend(received_fds_.size());
  return std::exchange(received_fds_, {});
}

void Connection::unpend(size_t count) {
  if (count == 0) return;
  shared_.pending_fds -= count;
  if (!of_another_user()) return;
  auto it = shared_.pending_fds_of_others.find(uid_);
  if (it != shared_.pending_fds_of_others.end() && (it->second -= count) == 0)
    shared_.pending_fds_of_others.erase(it);
}

bool Connection::of_another_user() const {
  return uid_ != ::getuid() && uid_ != 0;
}

bool Connection::may_log(LogLimiter& limiter) {
  return limiter.admit("uid " + std::to_string(uid_));
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
      if (uid_ == ::getuid() || uid_ == 0) framer_.set_max_line(protocol::kMaxLineOwnUser);
    }
  }
  uv_read_start(
      stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(self->shared_.read_buffer.get(), ConnectionShared::kReadBufferSize);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<Connection*>(s->data)->on_read(nread, buf);
      });
}

void Connection::on_read(ssize_t nread, const uv_buf_t* buf) {
  receive_fds();
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    if (nread != UV_EOF && may_log(shared_.close_log))
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
    line_seen_ = true;
    // Only a resume hello (the first line) may carry descriptors; the supervisor checks it.
    bool may_carry_fds = role == Role::kNew && line->find("\"resume\"") != std::string::npos;
    if (!may_carry_fds) drop_unasked_fds();
    if (admit_message()) handlers_.on_line(*this, *line);
    drop_unasked_fds();
  }
  if (framer_.overflowed() && !closing_) {
    send(protocol::error_reply("line longer than " + std::to_string(framer_.max_line()) +
                               " bytes; closing the connection"));
    close();
  }
}

// The message rate limit, one token per message. The first message dropped in a row gets
// an error reply saying the limit; a whole burst dropped in a row closes the connection.
bool Connection::admit_message() {
  if (message_rate_.take(uv_now(pipe_.loop))) {
    dropped_in_a_row_ = 0;
    return true;
  }
  observe::count(observe::Refused::kRateLimitedMessage);
  std::string limit = std::to_string(static_cast<int>(kMessagesPerSecond)) +
                      " messages per second (bursts of " + std::to_string(kMessageBurst) + ")";
  if (++dropped_in_a_row_ == 1) {
    send(protocol::error_reply("rate limit: more than " + limit +
                               " on this connection; message dropped"));
  } else if (dropped_in_a_row_ >= kMessageBurst) {
    observe::count(observe::Refused::kRateLimitClose);
    if (may_log(shared_.close_log))
      log_line("closing the control connection of " + peer() + ": over the rate limit of " + limit);
    send(protocol::error_reply("rate limit: still more than " + limit +
                               " on this connection; closing the connection"));
    close();
  }
  return false;
}

// Takes the descriptors libuv received with the bytes just read out of its pending queue,
// as plain fds: each is a duplicate of the one libuv accepted, which is then closed. (The
// kernel discards any beyond the room libuv gives, 64, with MSG_CTRUNC.) They are kept for
// the first line only, and within the caps (kMaxPendingFdsPerConnection, max_pending_fds):
// so that peers sending descriptors without ever finishing a line cannot use up the
// daemon's. The rest are closed here.
void Connection::receive_fds() {
  size_t closed = 0;
  std::string why;
  while (uv_pipe_pending_count(&pipe_) > 0) {
    auto* sink = new uv_pipe_t;
    uv_pipe_init(pipe_.loop, sink, 0);
    uv_os_fd_t fd = -1;
    UniqueFd received;
    // uv_accept closes the fd itself if it fails.
    if (uv_accept(stream(), reinterpret_cast<uv_stream_t*>(sink)) == 0 &&
        uv_fileno(reinterpret_cast<uv_handle_t*>(sink), &fd) == 0)
      received = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    uv_close(reinterpret_cast<uv_handle_t*>(sink),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    if (!received) continue;
    if (line_seen_) {
      why = "sent unasked: the daemon accepts none (protocol v1)";
    } else if (received_fds_.size() >= kMaxPendingFdsPerConnection) {
      why = "sent unasked: more than " + std::to_string(kMaxPendingFdsPerConnection) +
            " before a line (a resume hello carries at most that many)";
    } else if (of_another_user() && shared_.pending_fds_of_others.count(uid_) &&
               shared_.pending_fds_of_others.at(uid_) >= kMaxPendingFdsPerConnection) {
      why = "sent unasked: uid " + std::to_string(uid_) + " holds " +
            std::to_string(kMaxPendingFdsPerConnection) +
            " descriptors not yet claimed by a line, at most that many per user other than the "
            "daemon's";
    } else if (shared_.pending_fds >= shared_.max_pending_fds) {
      why = "sent unasked: the daemon holds at most " + std::to_string(shared_.max_pending_fds) +
            " descriptors not yet claimed by a line, over all connections; try again later";
    } else {
      received_fds_.push_back(std::move(received));
      ++shared_.pending_fds;
      if (of_another_user()) ++shared_.pending_fds_of_others[uid_];
      continue;
    }
    ++closed;  // `received` closes it
  }
  if (closed > 0) closed_fds(closed, why);
}

// Outside a resume hello the daemon asks no peer for descriptors: whatever arrives is
// closed at once so that a misbehaving server cannot make the daemon hold its files open.
void Connection::drop_unasked_fds() {
  size_t dropped = received_fds_.size();
  if (dropped == 0) return;
  take_received_fds();
  closed_fds(dropped, "sent unasked: the daemon accepts none (protocol v1)");
}

// Counted, logged within the rate limit, and the peer told once per read.
void Connection::closed_fds(size_t count, const std::string& why) {
  observe::count(observe::Refused::kUnaskedFd, count);
  std::string what = std::to_string(count) + " file descriptor(s) " + why;
  if (may_log(shared_.fd_log))
    log_line("closed " + what.substr(0, what.find(':')) + " by " + peer());
  if (admit_message()) send(protocol::error_reply("closed " + what));
}

std::string Connection::peer() const {
  return "pid " + std::to_string(pid_) + " (uid " + std::to_string(uid_) + ")";
}

void Connection::write(const protocol::Json& message, uv_stream_t* handle) {
  if (closing_) return;
  write_line(protocol::encode(message), handle);
}

void Connection::write_line(std::string line, uv_stream_t* handle) {
  if (closing_) return;
  auto* request = new WriteRequest{{}, std::move(line)};
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  auto done = [](uv_write_t* req, int) { delete reinterpret_cast<WriteRequest*>(req); };
  int rc = handle ? uv_write2(&request->req, stream(), &buf, 1, handle, done)
                  : uv_write(&request->req, stream(), &buf, 1, done);
  if (rc != 0) {
    delete request;
    if (may_log(shared_.close_log))
      log_line("write to pid " + std::to_string(pid_) + ": " + uv_strerror(rc));
    close();
  } else if (uv_stream_get_write_queue_size(stream()) > kMaxUnreadBytes) {
    abort("it left more than " + std::to_string(kMaxUnreadBytes >> 20) + " MiB of replies unread");
  }
}

void Connection::closed_cb(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self->aborted_ && self->handlers_.on_disconnect) self->handlers_.on_disconnect(*self);
  if (self->handlers_.on_closed) self->handlers_.on_closed(*self);
}

// Called from inside writes, which the supervisor makes in the middle of its own work:
// on_disconnect waits for the close callback rather than re-entering it here.
void Connection::abort(const std::string& why) {
  if (aborted_) return;
  observe::count(observe::Refused::kRateLimitClose);
  if (may_log(shared_.close_log))
    log_line("dropping the control connection of " + peer() + ": " + why);
  bool was_closing = closing_;
  closing_ = true;
  aborted_ = !was_closing;
  uv_read_stop(stream());
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&pipe_)))
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), &Connection::closed_cb);
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  uv_read_stop(stream());
  if (handlers_.on_disconnect) handlers_.on_disconnect(*this);
  // Shut down after queued writes (an error reply) are flushed, then close.
  auto* shutdown = new uv_shutdown_t;
  int rc = uv_shutdown(shutdown, stream(), [](uv_shutdown_t* req, int) {
    // After abort() the handle is closing already (the shutdown is then cancelled).
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(req->handle)))
      uv_close(reinterpret_cast<uv_handle_t*>(req->handle), &Connection::closed_cb);
    delete req;
  });
  if (rc != 0) {
    delete shutdown;
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), &Connection::closed_cb);
  }
}

}  // namespace serverswap::daemon
