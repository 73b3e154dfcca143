#include "daemon/control/control_server.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "base/log.h"
#include "base/unique_fd.h"
#include "daemon/sockets/socket_file.h"

namespace serverswap::daemon {

ConnectionCaps caps_for_fd_limit(uint64_t fd_limit) {
  uint64_t budget = fd_limit > kReservedFds + 48 ? fd_limit - kReservedFds : 48;
  ConnectionCaps caps;
  caps.total = std::min<uint64_t>(kMaxConnections, budget * 2 / 3);
  caps.others = caps.total - std::min(caps.total / 2, kReservedConnections);
  caps.per_uid = std::min(kMaxConnectionsPerUid, caps.others);
  caps.pending_fds = std::min<uint64_t>(kMaxPendingFds, budget / 3);
  return caps;
}

uint64_t raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(limit.rlim_cur);
}

ControlServer::ControlServer(uv_loop_t* loop, Handlers handlers)
    : loop_(loop),
      handlers_(std::move(handlers)),
      shared_(loop, caps_.pending_fds),
      refused_log_(loop, "refused control connections") {}

void ControlServer::set_caps(const ConnectionCaps& caps) {
  caps_ = caps;
  shared_.max_pending_fds = caps.pending_fds;
}

ControlServer::~ControlServer() {
  stop_listening();
  // Handles still open here are closed without their callbacks reaching this object.
  for (auto& [id, connection] : connections_) connection.release();
}

void ControlServer::on_listener_readable(uv_stream_t* listener, int status) {
  auto* self = static_cast<ControlServer*>(listener->data);
  if (status == 0) self->on_connection(listener);
}

// A listening pipe handle on `attach` (bind or open), or an error naming `what`.
Result<uv_pipe_t*> ControlServer::open_listener(const std::function<int(uv_pipe_t*)>& attach,
                                                const std::string& what) {
  auto* pipe = new uv_pipe_t;
  uv_pipe_init(loop_, pipe, 0);
  pipe->data = this;
  int rc = attach(pipe);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(pipe), kBacklog, on_listener_readable);
  }
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(pipe),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    return Status::error(what + ": " + uv_strerror(rc));
  }
  return pipe;
}

Result<uv_pipe_t*> ControlServer::bind_listener(const std::string& path) {
  return open_listener(
      [&](uv_pipe_t* pipe) {
        // The socket file is created 0600: only the owner may connect (SO_PEERCRED checks
        // again).
        mode_t old_mask = umask(0177);
        int rc = uv_pipe_bind(pipe, path.c_str());
        umask(old_mask);
        return rc;
      },
      "control socket " + path);
}

Status ControlServer::listen(const std::string& path) {
  auto pipe = bind_listener(path);
  if (!pipe.ok()) return pipe.status();
  listener_ = *pipe;
  path_ = path;
  return {};
}

Status ControlServer::listen_inherited(const std::string& path, int fd) {
  std::string what = "control socket " + path;
  what.append(" inherited at fd ").append(std::to_string(fd));
  auto pipe = open_listener([fd](uv_pipe_t* p) { return uv_pipe_open(p, fd); }, what);
  if (!pipe.ok()) return pipe.status();
  listener_ = *pipe;
  path_ = path;
  return {};
}

int ControlServer::listener_fd() const {
  uv_os_fd_t fd = -1;
  if (!listener_ || uv_fileno(reinterpret_cast<uv_handle_t*>(listener_), &fd) != 0) return -1;
  return fd;
}

Result<std::string> ControlServer::listen_for_user(uid_t uid) {
  if (auto it = user_listeners_.find(uid); it != user_listeners_.end()) return it->second.path;
  std::string what = "the control socket for servers of uid " + std::to_string(uid);
  if (!user_directory_) return Status::error(what + ": no directory for other users' sockets");
  auto directory = user_directory_->path();
  if (!directory.ok()) return directory.status().wrap(what);
  Listener listener;
  listener.name = control_socket_name(uid);
  listener.path = *directory + "/" + listener.name;
  what.append(", ").append(listener.path);
  if (!fits_sun_path(listener.path))
    return Status::error(what + ", is " + std::to_string(listener.path.size()) +
                         " bytes; a Unix socket path holds at most " +
                         std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                         " bytes: set TMPDIR to a shorter directory");
  auto dir = user_directory_->open();
  if (!dir.ok()) return dir.status().wrap(what);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::system_error(what, errno);
  if (Status s = bind_socket_in(fd.get(), dir->get(), listener.name, uid, what); !s.ok()) return s;
  bool attached = false;  // then the pipe handle owns the fd, and closes it on failure too
  auto pipe = open_listener(
      [&](uv_pipe_t* p) {
        int rc = uv_pipe_open(p, fd.get());
        attached = rc == 0;
        return rc;
      },
      what);
  if (attached) fd.release();
  if (!pipe.ok()) {
    ::unlinkat(dir->get(), listener.name.c_str(), 0);
    return pipe.status();
  }
  listener.pipe = *pipe;
  listener.owner = this;
  listener.resume = new uv_timer_t;
  uv_timer_init(loop_, listener.resume);
  log_line("servers of uid " + std::to_string(uid) + " connect on " + listener.path);
  Listener& added = user_listeners_.emplace(uid, listener).first->second;
  added.resume->data = &added;  // map nodes stay put until stop_listening closes the timer
  return added.path;
}

void ControlServer::stop_listening() {
  auto close_pipe = [](uv_pipe_t* pipe) {
    uv_close(reinterpret_cast<uv_handle_t*>(pipe),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
  };
  if (!user_listeners_.empty()) {
    // Through the checked directory, never the path: only the socket files we made go.
    auto dir = user_directory_->open();
    for (auto& [uid, listener] : user_listeners_) {
      close_pipe(listener.pipe);  // and a connection held back by a pause
      uv_close(reinterpret_cast<uv_handle_t*>(listener.resume),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      if (dir.ok()) ::unlinkat(dir->get(), listener.name.c_str(), 0);
    }
    user_listeners_.clear();
    user_directory_->remove_if_empty();
  }
  if (!listener_) return;
  close_pipe(listener_);
  listener_ = nullptr;
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

// Throttling a per-user listener: when its AcceptThrottle is empty, the connection libuv
// announces is not accepted. libuv (unix, uv__server_io) then stops polling the listening
// fd until uv_accept is called, and the kernel queues further connections in the backlog
// (a connect() beyond it waits or fails with EAGAIN): a pause that needs no second handle,
// no raw accept4 and no rebinding of the socket file. A timer ends it by accepting that
// connection, which starts the polling again. So the work a connect()/close() loop of one
// uid causes is bounded per second (and per loop iteration, by the burst), and the main
// control socket, polled in the same iteration, is answered in between. The main socket is
// never paused (root and the daemon's user connect there): another uid over its rate there
// is closed at once, before any look at its processes, and only counted.
void ControlServer::on_connection(uv_stream_t* listener) {
  if (listener != reinterpret_cast<uv_stream_t*>(listener_)) {
    for (auto& [uid, user] : user_listeners_) {
      if (reinterpret_cast<uv_stream_t*>(user.pipe) != listener) continue;
      if (uint64_t pause_ms = user.throttle.admit(uv_now(loop_)); pause_ms > 0)
        return pause(user, pause_ms);
      break;
    }
  }
  accept_connection(listener, listener == reinterpret_cast<uv_stream_t*>(listener_));
}

void ControlServer::pause(Listener& listener, uint64_t pause_ms) {
  observe::count(observe::Refused::kConnectionRate);
  if (refused_log_.admit("the socket " + listener.name))
    log_line("stopped accepting on " + listener.path + " for " + std::to_string(pause_ms) +
             " ms: more than " + std::to_string(static_cast<int>(AcceptThrottle::kRatePerSecond)) +
             " connections a second");
  uv_timer_start(
      listener.resume,
      [](uv_timer_t* timer) {
        auto* self = static_cast<Listener*>(timer->data);
        auto* stream = reinterpret_cast<uv_stream_t*>(self->pipe);
        // A failed uv_accept does not start the polling again: listening again does.
        if (!self->owner->accept_connection(stream, false))
          uv_listen(stream, kBacklog, on_listener_readable);
      },
      pause_ms, 0);
}

bool ControlServer::accept_connection(uv_stream_t* listener, bool main) {
  uint64_t id = next_id_++;
  auto connection = std::make_unique<Connection>(loop_, id, shared_);
  if (uv_accept(listener, connection->stream()) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(connection->stream()),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    connection.release();
    return false;
  }
  Connection* raw = connection.get();
  connections_.emplace(id, std::move(connection));
  raw->start({handlers_.on_line, handlers_.on_disconnect, [this](Connection& c) {
                if (auto it = admitted_.find(c.id()); it != admitted_.end()) {
                  uid_t uid = it->second;
                  if (--admitted_by_uid_[uid] == 0) admitted_by_uid_.erase(uid);
                  if (uid != getuid() && uid != 0) --admitted_others_;
                  admitted_.erase(it);
                }
                connections_.erase(c.id());
              }});
  uid_t uid = raw->peer_uid();
  if (main && uid != getuid() && uid != 0) {
    if (main_throttles_.size() >= 1024 && !main_throttles_.contains(uid)) main_throttles_.clear();
    if (main_throttles_[uid].admit(uv_now(loop_)) > 0) {
      observe::count(observe::Refused::kConnectionRate);
      raw->close();
      return true;
    }
  }
  std::string who = "pid " + std::to_string(raw->peer_pid()) + " of uid " + std::to_string(uid);
  bool own = uid == getuid() || uid == 0;
  if (!peer_allowed(*raw)) {
    refuse(*raw, observe::Refused::kConnectionOtherUser,
           "refused a control connection from " + who + " (only uid " + std::to_string(getuid()) +
               " may connect)",
           "permission denied: the daemon runs as another user");
    return true;
  }
  if (admitted_.size() >= caps_.total) {
    // The new one only: servers already connected keep their connections.
    refuse(*raw, observe::Refused::kConnectionCapacity,
           "refused a control connection from " + who + ": already " + std::to_string(caps_.total) +
               " connections",
           "too many connections: the daemon serves at most " + std::to_string(caps_.total) +
               " at once; try again later");
    return true;
  }
  if (!own) {
    if (std::string why = over_quota(uid); !why.empty()) {
      refuse(*raw, observe::Refused::kConnectionQuota,
             "refused a control connection from " + who + ": " + why,
             "too many connections: " + why + "; try again later");
      return true;
    }
    ++admitted_others_;
  }
  admitted_.emplace(id, uid);
  ++admitted_by_uid_[uid];
  return true;
}

std::string ControlServer::over_quota(uid_t uid) const {
  auto it = admitted_by_uid_.find(uid);
  if (it != admitted_by_uid_.end() && it->second >= caps_.per_uid)
    return "uid " + std::to_string(uid) + " holds " + std::to_string(it->second) +
           " connections, at most " + std::to_string(caps_.per_uid) +
           " per user other than the daemon's";
  if (admitted_others_ >= caps_.others)
    return "users other than the daemon's hold " + std::to_string(admitted_others_) +
           " connections, at most " + std::to_string(caps_.others) + " together";
  return "";
}

// Counted, logged within the rate limit (per uid), told to the peer, and closed.
void ControlServer::refuse(Connection& connection, observe::Refused why, const std::string& log,
                           const std::string& reply) {
  observe::count(why);
  if (refused_log_.admit("uid " + std::to_string(connection.peer_uid()))) log_line(log);
  connection.send(protocol::error_reply(reply));
  connection.close();
}

bool ControlServer::peer_allowed(const Connection& connection) const {
  uid_t uid = connection.peer_uid();
  if (uid == getuid() || uid == 0) return true;
  return handlers_.is_server_peer && handlers_.is_server_peer(connection.peer_pid(), uid);
}

void ControlServer::close_all() {
  for (auto& [id, connection] : connections_) connection->close();
}

Connection* ControlServer::find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() || it->second->closing() ? nullptr : it->second.get();
}

}  // namespace serverswap::daemon
