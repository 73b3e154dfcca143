// NotifySocket: the NOTIFY_SOCKET of one server, systemd's sd_notify(3) protocol: each
// datagram is "KEY=VALUE" lines ("READY=1\nSTATUS=Listening\n"). It is an abstract Unix
// datagram socket (no file to clean up, no path-length limit, reachable by a server run as
// another user) whose name is random and independent of the server's id, which is a
// credential: /proc/net/unix shows every abstract name to every user. With SO_PASSCRED a
// datagram counts only when its sender has the server's uid, the daemon's or root's, and is
// the server's main process (the pid LISTEN_PID names) or the pid the main process declared
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

class NotifySocket : public Notifier {
 public:
  using OnMessage = std::function<void(const NotifyMessage&)>;
  // Why a datagram was dropped (sender not allowed, truncated), for the log.
  using OnRejected = std::function<void(const NotifyRefusal&)>;

  // A fresh name, "serverswap-notify-" and 128 bits from getrandom(2) in hex: nothing about
  // the server can be derived from it, and no one can guess it before it is bound.
  static std::string random_name();

  // Binds the abstract socket `@name`. Fails (EADDRINUSE) when someone else holds the name:
  // a datagram meant for the server would go to them.
  static Result<std::unique_ptr<NotifySocket>> open(uv_loop_t* loop, const std::string& name,
                                                    OnMessage on_message, OnRejected on_rejected);
  // `serverswap upgrade`: the socket the previous image kept open as `fd` (takes it; it must
  // be a datagram socket bound to `@name`, else an error and the fd is closed).
  static Result<std::unique_ptr<NotifySocket>> adopt(uv_loop_t* loop, int fd,
                                                     const std::string& name, OnMessage on_message,
                                                     OnRejected on_rejected);
  ~NotifySocket() override;
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The NOTIFY_SOCKET value: "@name".
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
