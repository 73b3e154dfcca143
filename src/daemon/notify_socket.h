// NotifySocket: the NOTIFY_SOCKET of one server, systemd's sd_notify(3) protocol: each
// datagram is "KEY=VALUE" lines ("READY=1\nSTATUS=Listening\n"). It is an abstract Unix
// datagram socket (no file to clean up, no path-length limit, reachable by a server run as
// another user; the name carries the server's random id) with SO_PASSCRED, so that a
// datagram counts only when its sender has the server's uid, the daemon's or root's, and
// runs in the server's session (servers are started with setsid). Descriptors sent along
// (FDSTORE=1) are closed unread. Loop thread only.
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

// "READY=1\nSTATUS=a=b\n" -> {READY,1}, {STATUS,a=b}; lines without '=' are skipped.
std::vector<std::pair<std::string, std::string>> parse_notify_fields(std::string_view datagram);

class NotifySocket {
 public:
  using OnMessage = std::function<void(const NotifyMessage&)>;
  // Why a datagram was dropped (sender not allowed, truncated), for the log.
  using OnRejected = std::function<void(const std::string&)>;

  // Binds the abstract socket `@name`.
  static Result<std::unique_ptr<NotifySocket>> open(uv_loop_t* loop, const std::string& name,
                                                    OnMessage on_message, OnRejected on_rejected);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The NOTIFY_SOCKET value: "@name".
  const std::string& address() const { return address_; }
  // Datagrams are accepted from this session (the server's pid, a session leader) only, and
  // from `uid` (the server's), the daemon's uid or root.
  void accept_sender(pid_t session, uid_t uid);

  // Delivers every datagram already queued (a server's last words before it exited);
  // on_message must not destroy this socket meanwhile.
  void read_pending();

  struct Block;  // public only for the libuv callback in notify_socket.cc

 private:
  explicit NotifySocket(Block* block, std::string address)
      : block_(block), address_(std::move(address)) {}
  Block* block_;
  std::string address_;
};

}  // namespace serverswap::daemon
