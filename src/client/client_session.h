// ClientSession: a server's side of the control connection to the serverswap daemon
// (docs/protocol.md), the engine under the C API. It does blocking request/reply exchanges
// with deadlines (hello/welcome, readyFor/resourceReady) and non-blocking dispatch of what
// the daemon sends unasked (takeDown). Without a daemon it runs "standalone" and binds
// resources itself. Either way, a socket inherited at exec that matches the resource
// (inherited_sockets.h) is used first, with no round-trip.
//
// Every received descriptor is checked: it belongs to the resourceReady line whose data it
// came with, and one that arrives with any other line, or with a resourceReady nobody waits
// for, is closed at once.
//
// Not thread-safe: one thread at a time, as the C handle over it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "client/inherited_sockets.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"

namespace serverswap::client {

struct Options {
  bool explicit_up = false;  // hello's "upMessage": the server will send serverUp itself
  Millis hello_timeout{10'000};
  Millis ready_timeout{60'000};  // the daemon's own --ready-timeout default
  Millis send_timeout{10'000};
};

class ClientSession {
 public:
  using TakedownFn = std::function<void(const std::string& resource)>;

  // Connects to SERVERSWAP_SOCKET as SERVERSWAP_ID; standalone when SERVERSWAP_SOCKET is unset.
  static Result<std::unique_ptr<ClientSession>> open(const Options& options);
  // Says hello over an already connected socket and waits for welcome.
  static Result<std::unique_ptr<ClientSession>> handshake(UniqueFd sock, const std::string& id,
                                                          const Options& options);
  static std::unique_ptr<ClientSession> standalone(const Options& options);

  bool managed() const { return managed_; }
  // The control socket to poll for readability; -1 when standalone or disconnected.
  int control_fd() const { return sock_.get(); }

  Result<UniqueFd> ready_for(const std::string& resource);
  Status on_takedown(const std::string& resource, TakedownFn fn);
  Status server_up();
  Status fail(const std::string& reason);
  Status took_down(const std::string& resource);
  // Staggered handover: accepting on `resource` now; its older holders go down on it.
  Status serving(const std::string& resource);
  // Reads without blocking and runs takedown callbacks; an error once the connection is gone.
  Status dispatch();

 private:
  struct Incoming {
    protocol::Message message;
    UniqueFd fd;  // only ever set on resourceReady
  };
  // A received descriptor and the stream bytes [begin, end) it came with: it belongs to the
  // first resourceReady line that starts in that range.
  struct PendingFd {
    UniqueFd fd;
    uint64_t begin = 0, end = 0;
  };

  ClientSession(bool managed, UniqueFd sock, const Options& options);

  Status send(const protocol::Json& message);
  // Reads until a queued message satisfies `wanted`, which is removed and returned; the
  // others stay queued in order.
  Result<Incoming> await(const std::function<bool(const Incoming&)>& wanted, Millis timeout);
  Result<UniqueFd> await_resource(const std::string& resource);
  Result<UniqueFd> standalone_ready_for(const std::string& resource);
  // A descriptor of the inherited socket for `resource`; an empty UniqueFd when none matches.
  Result<UniqueFd> inherited_ready_for(const std::string& resource);
  Status with_inherited_hint(const Status& status) const;
  Status read_once(bool& would_block);
  void take_lines();
  void take_line(const std::string& line, uint64_t start);
  Status disconnect(Status why);
  void deliver_inbox();
  void run_takedown(const std::string& resource);

  bool managed_;
  Options options_;
  UniqueFd sock_;
  Status lost_;  // why the connection is gone, once it is
  protocol::LineFramer framer_;
  uint64_t received_ = 0;    // stream bytes read so far
  uint64_t line_start_ = 0;  // stream offset of the next line the framer will return
  std::vector<char> read_buf_;
  std::deque<PendingFd> pending_fds_;
  std::deque<Incoming> inbox_;
  std::map<std::string, TakedownFn> takedown_;
  std::map<std::string, UniqueFd> bound_;      // standalone: resource -> listening socket
  std::optional<InheritedSockets> inherited_;  // read from the environment at first readyFor
  bool in_callback_ = false;
};

}  // namespace serverswap::client
