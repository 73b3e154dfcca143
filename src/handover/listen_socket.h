// Binding the listening socket behind a resource. The daemon does this once per resource
// and keeps the socket for as long as it runs; the client library does it itself when a
// program runs outside serverswap.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "protocol/resource.h"

namespace serverswap::handover {

struct ListenSocket {
  UniqueFd fd;
  std::string address;  // what was bound, port included: "[::]:8080", "unix:/run/a.sock"
  // A Unix socket's file as bound (0, 0: none, or not known): what unlink_socket_at
  // checks, so that only this file is ever unlinked for it.
  dev_t dev = 0;
  ino_t ino = 0;
  // A Unix socket's directory (O_PATH, close-on-exec), opened before the bind and never
  // resolved again: the file is unlinked only relative to it (unlink_socket_at(dir, name)).
  // `path`: that directory's absolute path, read once from /proc, + "/" + `name`: for
  // display and for a later daemon that has only the path (unlink_socket_file).
  UniqueFd dir;
  std::string name;
  std::string path;
};

// socket + SO_REUSEADDR + bind + listen(SOMAXCONN), close-on-exec. ":PORT" is dual-stack,
// falling back to IPv4 only where the kernel has no IPv6. A stale Unix socket file (no
// one accepting on it) is replaced (unlink_socket_file); a live one, or one whose backlog is
// full, is "Address already in use: something accepts on PATH". Never blocks: the liveness
// probe is a non-blocking connect.
Result<ListenSocket> bind_listener(const protocol::Resource& resource);

// bind_listener for a server run as another user: a Unix socket is bound (stale file
// replaced included) by a short-lived forked child running as uid/gid with no supplementary
// groups, so that the permissions checked on its path are that user's, and comes back over
// a socketpair. The caller waits at most `timeout` for it (then the child is killed and the
// bind fails). TCP resources are bound by the caller itself: privileged ports are the
// caller's policy. Errors name the resource and carry errno's text (EACCES from the bind
// as that user). Call from one thread; forks.
Result<ListenSocket> bind_listener_as(const protocol::Resource& resource, uid_t uid, gid_t gid,
                                      Millis timeout = Millis(2000));

// bind_listener_as in two halves, for a caller with an event loop that must not wait: the
// child is forked and binding; `channel` becomes readable when it has answered (or died).
// Owns neither the child nor the channel beyond these calls: finish_bind_as or
// abandon_bind_as must be called once (abandon kills the child).
struct BindAsChild {
  pid_t pid = -1;
  UniqueFd channel;
  protocol::Resource resource;
  uid_t uid = 0;
};
// Forks the child that binds the Unix socket `resource` as uid/gid (as bind_listener_as).
Result<BindAsChild> start_bind_as(const protocol::Resource& resource, uid_t uid, gid_t gid);
// Its answer, read without blocking once `channel` is readable; the child is reaped if it
// has exited, else SIGKILLed and left to the caller's reaper of stray children: then
// `child.pid` still names it afterwards (else it is -1), so the reaper can tell it from
// a server's orphan.
Result<ListenSocket> finish_bind_as(BindAsChild& child);
// No answer in time: kills the child (reaped if it is gone already; `child.pid` as with
// finish_bind_as); the error says how long it was waited for.
Status abandon_bind_as(BindAsChild& child, Millis waited);

inline constexpr uid_t kAnyOwner = static_cast<uid_t>(-1);

// Unlinks `name` in the directory fd `dir` only if it is still the socket inode (dev, ino)
// and (unless kAnyOwner) owned by `owner`; nothing is resolved by path. Returns 0 (unlinked,
// or gone already) or an errno value (EEXIST: another file is there now).
// Async-signal-safe.
int unlink_socket_at(int dir, const char* name, dev_t dev, ino_t ino, uid_t owner = kAnyOwner);

// unlink_socket_at for the absolute `path`, for a daemon that has no directory fd (a
// restarted one, from its state file): each directory on the way is opened with O_NOFOLLOW
// from "/", so a symlink swapped in by whoever controls one of them makes it fail rather
// than unlink elsewhere. ELOOP/ENOTDIR: a directory on the way is a symlink.
// Async-signal-safe.
int unlink_socket_file(const char* path, dev_t dev, ino_t ino, uid_t owner = kAnyOwner);

// Tests only: called by an in-process Unix bind (bind_listener) with 0 once the directory is
// opened and with 1 once the socket is bound, so that a test can swap a directory then.
extern void (*unix_bind_test_hook)(int stage);

// The address a listening socket is bound to, as bind_listener reports it.
std::string bound_address(int fd);

}  // namespace serverswap::handover
