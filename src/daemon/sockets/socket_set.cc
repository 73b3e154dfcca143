#include "daemon/sockets/socket_set.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

// Only the file the daemon bound is unlinked (its inode, owned by the user it was bound
// for), relative to the directory it was bound in, or (an earlier image's, known by path
// only) reached without following a symlink: a directory on its path may belong to the
// user of a server (--user).
void unlink_bound_file(const SocketSet::Entry& entry) {
  if (entry.unix_path.empty() || entry.ino == 0) return;
  int err = entry.dir && *entry.dir
                ? handover::unlink_socket_at(entry.dir->get(), entry.unix_name.c_str(), entry.dev,
                                             entry.ino, entry.owner)
                : handover::unlink_socket_file(entry.unix_path.c_str(), entry.dev, entry.ino,
                                               entry.owner);
  if (err != 0)
    log_line("left the socket file " + entry.unix_path + " in place: " + std::strerror(err));
}

}  // namespace

// A Unix socket being bound as another user: the child, the poll on its answer, the timer
// that gives up on it, and who waits for the result.
struct SocketSet::PendingBind {
  struct Poll {
    uv_poll_t handle;
  };
  handover::BindAsChild child;
  std::optional<BindAs> as;
  Millis timeout{0};
  Poll* poll = nullptr;  // closed (and freed) by uv_close
  std::unique_ptr<Timer> timer;
  std::vector<BindDone> waiting;
  SocketSet* set = nullptr;
  std::string name;

  ~PendingBind() {
    if (poll) {
      uv_poll_stop(&poll->handle);
      close_block(poll, reinterpret_cast<uv_handle_t*>(&poll->handle));
    }
  }
};

SocketSet::SocketSet(uv_loop_t* loop) : loop_(loop) {}

SocketSet::~SocketSet() {
  // Binds under way: their children are killed; no one is told (the supervisor is gone).
  queued_.clear();
  for (auto& [name, pending] : pending_) handover::abandon_bind_as(pending->child, Millis(0));
  pending_.clear();
  idle_timers_.clear();
  for (auto& [name, entry] : entries_) {
    close_stream(entry.handle);
    unlink_bound_file(entry);
  }
  for (auto& [name, file] : expected_files_) unlink_bound_file(file);
}

Result<const SocketSet::Entry*> SocketSet::get_or_bind(const protocol::Resource& resource,
                                                       std::optional<BindAs> as,
                                                       Millis bind_timeout) {
  std::string name = resource.name();
  if (auto it = entries_.find(name); it != entries_.end()) return &it->second;
  auto bound = as ? handover::bind_listener_as(resource, as->uid, as->gid, bind_timeout)
                  : handover::bind_listener(resource);
  if (!bound.ok()) return bound.status();
  return add_bound(resource, as, std::move(*bound));
}

Result<const SocketSet::Entry*> SocketSet::add_bound(const protocol::Resource& resource,
                                                     std::optional<BindAs> as,
                                                     handover::ListenSocket bound) {
  std::string name = resource.name();
  bool is_unix = resource.kind == protocol::Resource::Kind::kUnix;
  auto stream = wrap(loop_, bound.fd.get(), is_unix);
  if (!stream.ok()) return stream.status();
  bound.fd.release();  // the libuv handle owns it now
  // The path is never resolved again: the file is later unlinked relative to the directory
  // it was bound in, and only while that holds the inode bound.
  Entry entry;
  entry.address = bound.address;
  entry.unix_path = is_unix ? bound.path : "";
  entry.handle = *stream;
  entry.owner = as ? as->uid : ::geteuid();
  entry.dev = bound.dev;
  entry.ino = bound.ino;
  if (is_unix && bound.dir) {
    entry.dir = std::make_shared<UniqueFd>(std::move(bound.dir));
    entry.unix_name = bound.name;
  }
  entry.bound_here = true;
  expected_files_.erase(name);  // an earlier image's file there was replaced by this one
  log_line("bound " + name + " (" + entry.address + ")" +
           (as ? " as uid " + std::to_string(as->uid) : ""));
  return &entries_.emplace(name, std::move(entry)).first->second;
}

void SocketSet::get_or_bind_async(const protocol::Resource& resource, std::optional<BindAs> as,
                                  BindDone done, Millis bind_timeout) {
  std::string name = resource.name();
  auto same_binder = [&](const std::optional<BindAs>& other) {
    return as.has_value() == other.has_value() && (!as || as->uid == other->uid);
  };
  if (auto it = pending_.find(name); it != pending_.end()) {
    if (same_binder(it->second->as)) return it->second->waiting.push_back(std::move(done));
    // Another user's bind of that name: its outcome is not this one's (a socket bound as
    // them, or their "Permission denied"). Asked again once it is over: then the socket it
    // made is found, and whose it is decides (Supervisor::may_hold), or this user binds.
    it->second->waiting.push_back(
        [this, resource, as, done = std::move(done), bind_timeout](Result<const Entry*>) {
          get_or_bind_async(resource, as, done, bind_timeout);
        });
    return;
  }
  if (entries_.count(name) || !as || resource.kind != protocol::Resource::Kind::kUnix)
    return done(get_or_bind(resource, as, bind_timeout));
  for (auto& queued : queued_) {
    // Another user's queued bind of that name is not joined: this one goes its own way (the
    // first to bind makes the socket, and whose it is decides).
    if (queued.resource.name() == name && queued.as.uid == as->uid)
      return queued.waiting.push_back(std::move(done));
  }
  // Each is a process for up to bind_timeout: a user's servers cannot have many at once.
  size_t theirs = 0, waiting = 0;
  for (const auto& [other, pending] : pending_)
    if (pending->as && pending->as->uid == as->uid) ++theirs;
  for (const auto& queued : queued_)
    if (queued.as.uid == as->uid) ++waiting;
  if (theirs < kMaxPendingBindsPerUid)
    return start_bind(resource, *as, {std::move(done)}, bind_timeout);
  if (waiting >= kMaxQueuedBindsPerUid)
    return done(Status::error("bind " + name + " as uid " + std::to_string(as->uid) + ": " +
                              std::to_string(theirs) + " binds for this user are under way and " +
                              std::to_string(waiting) +
                              " more are waiting; ask again when they are done"));
  std::vector<BindDone> first;
  first.push_back(std::move(done));
  queued_.push_back({resource, *as, std::move(first), bind_timeout});
}

void SocketSet::start_bind(const protocol::Resource& resource, const BindAs& as,
                           std::vector<BindDone> waiting, Millis bind_timeout) {
  std::string name = resource.name();
  auto child = handover::start_bind_as(resource, as.uid, as.gid);
  if (!child.ok()) {
    for (auto& done : waiting) done(child.status());
    return;
  }
  auto pending = std::make_unique<PendingBind>();
  pending->child = std::move(*child);
  pending->as = as;
  pending->timeout = bind_timeout;
  pending->waiting = std::move(waiting);
  pending->set = this;
  pending->name = name;
  pending->poll = new PendingBind::Poll;
  uv_poll_init(loop_, &pending->poll->handle, pending->child.channel.get());
  pending->poll->handle.data = pending.get();
  // Readable when the child has answered, or has died (end of file): either way, done.
  uv_poll_start(&pending->poll->handle, UV_READABLE | UV_DISCONNECT,
                [](uv_poll_t* handle, int, int) {
                  auto* p = static_cast<PendingBind*>(handle->data);
                  p->set->bind_answered(p->name, false);
                });
  pending->timer = std::make_unique<Timer>(loop_);
  pending->timer->start(bind_timeout, [this, name] { bind_answered(name, true); });
  pending_.emplace(name, std::move(pending));
}

void SocketSet::start_queued(uid_t uid) {
  // Until this user's slots are full or its queue is empty: a queued bind that needs no
  // child of its own does not use up the turn, or a queue whose turns all ended that way
  // would wait forever.
  for (;;) {
    size_t theirs = 0;
    for (const auto& [other, pending] : pending_)
      if (pending->as && pending->as->uid == uid) ++theirs;
    if (theirs >= kMaxPendingBindsPerUid) return;
    auto it = std::find_if(queued_.begin(), queued_.end(),
                           [&](const QueuedBind& q) { return q.as.uid == uid; });
    if (it == queued_.end()) return;
    QueuedBind next = std::move(*it);
    queued_.erase(it);
    std::string name = next.resource.name();
    if (entries_.count(name) || pending_.count(name)) {
      // Bound meanwhile (a --listen at spawn, another user), or another user's bind of it
      // under way: each asks again, which finds that socket or waits for that bind.
      for (auto& done : next.waiting)
        get_or_bind_async(next.resource, next.as, std::move(done), next.timeout);
      continue;
    }
    start_bind(next.resource, next.as, std::move(next.waiting), next.timeout);
  }
}

// The child answered (or `timed_out`): the entry made, everyone waiting for it told.
void SocketSet::bind_answered(const std::string& name, bool timed_out) {
  auto it = pending_.find(name);
  if (it == pending_.end()) return;
  std::unique_ptr<PendingBind> pending = std::move(it->second);
  pending_.erase(it);
  pending->timer->stop();
  // The poll handle's close is deferred by uv_close; its data must not lead back here.
  uv_poll_stop(&pending->poll->handle);
  Result<const Entry*> result = Status::error("");
  if (timed_out) {
    result = handover::abandon_bind_as(pending->child, pending->timeout);
  } else if (auto existing = entries_.find(name); existing != entries_.end()) {
    // Bound meanwhile by another path (a --listen at spawn): that one stands.
    handover::abandon_bind_as(pending->child, Millis(0));
    result = &existing->second;
  } else {
    auto bound = handover::finish_bind_as(pending->child);
    result = bound.ok() ? add_bound(pending->child.resource, pending->as, std::move(*bound))
                        : Result<const Entry*>(bound.status());
  }
  // Killed but not yet exited: the OrphanReaper reaps it (is_binding_child says it is ours).
  if (pending->child.pid > 0) binding_children_.insert(pending->child.pid);
  // The next of this user's queued binds goes first: the callbacks below may ask for more.
  if (pending->as) start_queued(pending->as->uid);
  // Each may start another bind, or close this set's entries: they hold nothing of `pending`.
  for (auto& done : pending->waiting) done(result);
}

void SocketSet::expect_socket_file(const std::string& name, Entry file) {
  file.handle = nullptr;
  file.bound_here = true;
  expected_files_[name] = std::move(file);
}

bool SocketSet::reaped_binding_child(pid_t pid) {
  return binding_children_.erase(pid) > 0;
}

Status SocketSet::adopt(const std::string& name, UniqueFd fd, const std::string& from) {
  if (entries_.count(name)) return Status::error("two sockets for " + name);
  std::string address = handover::bound_address(fd.get());
  auto stream = wrap(loop_, fd.get(), name.starts_with("unix:"));
  if (!stream.ok()) return stream.status().wrap(name);
  fd.release();  // the libuv handle owns it now
  log_line("adopted " + name + " (" + address + ") from " + from);
  Entry entry;
  entry.address = address;
  entry.handle = *stream;
  entry.owner = ::getuid();
  if (auto file = expected_files_.find(name); file != expected_files_.end()) {
    entry.unix_path = file->second.unix_path;
    entry.owner = file->second.owner;
    entry.dev = file->second.dev;
    entry.ino = file->second.ino;
    entry.bound_here = true;
    expected_files_.erase(file);
  }
  entries_.emplace(name, std::move(entry));
  return {};
}

const SocketSet::Entry* SocketSet::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

void SocketSet::close_when_idle(const std::string& name, Millis grace,
                                std::function<bool(const std::string&)> in_use) {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.bound_here) return;
  // A pending close keeps its time, unless this one is due at once (stop APP, rm APP): the
  // --idle-socket-grace an exit started just before must not keep a stopped app's socket.
  if (auto pending = idle_timers_.find(name); pending != idle_timers_.end()) {
    if (grace > Millis(0)) return;
    idle_timers_.erase(pending);
  }
  auto timer = std::make_unique<Timer>(loop_);
  Timer* t = timer.get();
  t->unref();  // a pending close must not keep a stopping daemon's loop alive
  idle_timers_.emplace(name, std::move(timer));
  t->start(grace, [this, name, grace, in_use = std::move(in_use)] {
    bool wanted = in_use(name);
    idle_timers_.erase(name);  // destroys this timer: uv_close defers the handle's release
    if (wanted) return;
    close_entry(name);
    log_line("closed " + name + ": no server has held it for " + format_duration(grace));
  });
}

void SocketSet::close_entry(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  close_stream(it->second.handle);
  unlink_bound_file(it->second);
  entries_.erase(it);
}

}  // namespace serverswap::daemon
