// NotifySocket: the NOTIFY_SOCKET of one server, systemd's sd_notify(3) protocol: each
// datagram is "KEY=VALUE" lines ("READY=1\nSTATUS=Listening\n"). It is a Unix datagram
// socket bound to a path in a directory only the daemon's uid may write (NotifyDirectory):
// no other user can bind that path first, also while the daemon is down between a SIGKILL
// and its restart (an abstract name, as in versions before, could be taken by anyone: every
// abstract name is listed in /proc/net/unix). Paths are listed there too, so the socket's
// file mode decides who may send: only the server's uid (and root). The file name is random
// and independent of the server's id, which is a credential. With SO_PASSCRED a datagram
// counts only when its sender has the server's uid, the daemon's or root's, and is the
// server's main process (the pid LISTEN_PID names) or the pid the main process declared
// with MAINPID=, as systemd's NotifyAccess=main: a wrapper script's child (a server started
// without `exec`) cannot make the server up. Descriptors sent along (FDSTORE=1) are closed
// unread. Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "daemon/sockets/user_directory.h"

namespace serverswap::daemon {

struct NotifyMessage {
  pid_t sender = 0;
  std::vector<std::pair<std::string, std::string>> fields;  // in the order sent
};

// A datagram that was dropped, for the log and for the deploy's failure message.
struct NotifyRefusal {
  pid_t sender = 0;    // as SCM_CREDENTIALS said; 0 when unknown
  std::string comm;    // the sender's /proc/PID/comm, "?" when it is gone
  bool ready = false;  // it said READY=1
  std::string why;     // "dropped a notification: ..."
};

// "READY=1\nSTATUS=a=b\n" -> {READY,1}, {STATUS,a=b}; lines without '=' are skipped.
std::vector<std::pair<std::string, std::string>> parse_notify_fields(std::string_view datagram);

// A server's NOTIFY_SOCKET (sd_notify(3)); NotifySocket is the production one; the simulator fakes
// it.
class Notifier {
 public:
  virtual ~Notifier() = default;
  // The NOTIFY_SOCKET value given to the server.
  virtual const std::string& address() const = 0;
  // The descriptor kept across `serverswap upgrade` (still owned by this object); -1 if none.
  virtual int fd() const = 0;
  // Datagrams count from `main_pid` (and a MAINPID= it declared), sent by `uid`.
  virtual void accept_sender(pid_t main_pid, uid_t uid) = 0;
  // Delivers every datagram already queued; on_message must not destroy this meanwhile.
  virtual void read_pending() = 0;
};

// Where servers' NOTIFY_SOCKETs are bound. Servers of the daemon's own uid: SOCKET.notify/
// beside the control socket SOCKET, created 0700 and refused unless it is a directory of the
// daemon's effective uid that no group or other may use. Servers run as another user
// (--user), who cannot pass the control socket's directory (0700 by default), and paths that
// would not fit in sun_path: the UserDirectory (user_directory.h), where each socket file is
// its server's uid's, mode 0600. Loop thread only.
class NotifyDirectory {
 public:
  // `socket_path`: the daemon's control socket (an absolute path).
  // `shared`: the daemon's UserDirectory (borrowed, must outlive this); null: one of its own.
  explicit NotifyDirectory(std::string socket_path, UserDirectory* shared = nullptr);

  // At daemon start: creates SOCKET.notify/ (0700) or checks the one there (an error that
  // names it and says how to fix it when it is not a directory of ours, private), and
  // removes every file in it that `keep` (NOTIFY_SOCKET paths state.json recorded) does not
  // name: sockets of servers that are gone. Nothing else is removed.
  Status prepare(const std::vector<std::string>& keep);

  // A fresh NOTIFY_SOCKET path for a server run as `uid` (not bound yet), as described
  // above; an error naming sun_path's limit when no directory gives a path short enough.
  Result<std::string> new_path(uid_t uid);

  const std::string& private_dir() const { return private_dir_; }

 private:
  std::string private_dir_;  // SOCKET.notify
  UserDirectory* shared_;
  std::unique_ptr<UserDirectory> owned_shared_;
};

// Removes the socket file of a NOTIFY_SOCKET path a server no longer needs (one recorded in
// the state file for a server that is gone, or is only being taken down), reached through
// its directory opened and checked as NotifySocket::open does; a UserDirectory goes too once
// empty. Nothing for abstract names ("@…") or a directory that is not ours.
void remove_notify_socket_file(const std::string& address);

class NotifySocket : public Notifier {
 public:
  using OnMessage = std::function<void(const NotifyMessage&)>;
  // Why a datagram was dropped (sender not allowed, truncated), for the log.
  using OnRejected = std::function<void(const NotifyRefusal&)>;

  // A fresh file name, 128 bits from getrandom(2) in hex (32 characters): nothing about the
  // server can be derived from it.
  static std::string random_name();

  // Binds `address`, the NOTIFY_SOCKET value: "/DIR/NAME", a path in a directory owned by the
  // daemon's effective uid that no group or other may write or list (else an error naming
  // it); a file left at that path by an earlier run of the daemon is replaced. When `uid`
  // (the server's) is not the daemon's, the socket file is given to `uid`, mode 0600: that
  // user may send, no one else (root aside). "@name" binds the abstract name of older
  // versions (their servers keep it across an upgrade); it fails with EADDRINUSE when
  // someone else holds the name. The path is unlinked when the socket is destroyed.
  static Result<std::unique_ptr<NotifySocket>> open(uv_loop_t* loop, const std::string& address,
                                                    uid_t uid, OnMessage on_message,
                                                    OnRejected on_rejected);
  // `serverswap upgrade`: the socket the previous image kept open as `fd` (takes it; it must
  // be a datagram socket bound to `address`, else an error and the fd is closed).
  static Result<std::unique_ptr<NotifySocket>> adopt(uv_loop_t* loop, int fd,
                                                     const std::string& address,
                                                     OnMessage on_message, OnRejected on_rejected);
  ~NotifySocket() override;
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The NOTIFY_SOCKET value: "/DIR/NAME" (or "@name", older versions).
  const std::string& address() const override { return address_; }
  // The descriptor, to keep across `serverswap upgrade` (still owned by this object).
  int fd() const override;
  // Datagrams are accepted from `main_pid` (the server's pid) and from the pid it declares
  // with MAINPID= (while that process lives), sent by `uid` (the server's), the daemon's uid
  // or root. MAINPID= counts only from `main_pid`; other senders' MAINPID= lines are dropped.
  void accept_sender(pid_t main_pid, uid_t uid) override;

  // Delivers every datagram already queued (a server's last words before it exited);
  // on_message must not destroy this socket meanwhile.
  void read_pending() override;

  struct Block;  // public only for the libuv callback in notify_socket.cc

 private:
  explicit NotifySocket(Block* block, std::string address)
      : block_(block), address_(std::move(address)) {}
  Block* block_;
  std::string address_;
};

}  // namespace serverswap::daemon
