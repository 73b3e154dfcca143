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
// When the daemon goes away (its connection reaches end-of-file) the server keeps serving
// and the session resumes with the next daemon (docs/protocol.md §11): dispatch() notices
// the loss, and from then on timeout_ms() says when dispatch() must run again to try
// SERVERSWAP_SOCKET (after 100 ms, then doubling up to 1 s). Connected, it sends the
// `resume` hello with a duplicate of every listening socket it got by readyFor (kept for
// this, closed when the server is taken down on that resource), its onTakedown
// subscriptions and whether it is up. No reconnect after the daemon closed the connection
// with an `error`, after fail(), or once the server was taken down on every resource; an
// `error` answering the resume ends reconnecting for good (said on stderr).
//
// Not thread-safe: one thread at a time, as the C handle over it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
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
  // Where to reconnect when the daemon goes away; empty: never (open() sets it).
  std::string socket_path{};
};

class ClientSession {
 public:
  using TakedownFn = std::function<void(const std::string& resource)>;

  // Connects to SERVERSWAP_SOCKET as SERVERSWAP_ID. Standalone, silently, when SERVERSWAP_ID
  // is unset or empty (whatever SERVERSWAP_SOCKET says); standalone with one line on stderr
  // when SERVERSWAP_ID is set but SERVERSWAP_SOCKET is not, or its connect() fails with
  // ENOENT or ECONNREFUSED. An error for any other failure.
  static Result<std::unique_ptr<ClientSession>> open(const Options& options);
  // Says hello over an already connected socket and waits for welcome.
  static Result<std::unique_ptr<ClientSession>> handshake(UniqueFd sock, const std::string& id,
                                                          const Options& options);
  static std::unique_ptr<ClientSession> standalone(const Options& options);

  bool managed() const { return managed_; }
  // The control socket to poll for readability; -1 when standalone or disconnected. It
  // changes when the session reconnects: ask again before each poll.
  int control_fd() const { return sock_.get(); }
  // Milliseconds after which dispatch() must run even if control_fd() is not readable (a
  // reconnect attempt is due, or a resume waits for its welcome); 0: at once; -1: never.
  int timeout_ms() const;
  // True between the loss of the daemon and the welcome of the next one.
  bool reconnecting() const;

  Result<UniqueFd> ready_for(const std::string& resource);
  Status on_takedown(const std::string& resource, TakedownFn fn);
  Status server_up();
  Status fail(const std::string& reason);
  Status took_down(const std::string& resource);
  // Staggered handover: accepting on `resource` now; its older holders go down on it.
  Status serving(const std::string& resource);
  // Reads without blocking, runs takedown callbacks and, after the daemon went away, tries
  // to reconnect when timeout_ms() is due. An error only once the connection is gone for
  // good (no reconnect: see above); a reconnect under way is not an error.
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

  // Where the connection to the daemon stands (docs/protocol.md §11).
  enum class Link {
    kConnected,  // hello answered (or standalone)
    kLost,       // end-of-file seen; whether to reconnect is decided in dispatch()
    kWaiting,    // a reconnect attempt is due at next_attempt_
    kResuming,   // the resume hello is sent; its welcome is due by next_attempt_
    kGone,       // no daemon any more, for good
  };
  // A listening socket the server got by readyFor, kept to hand back in a resume hello.
  struct Held {
    std::string resource;  // as the server asked for it
    UniqueFd fd;
  };
  using Clock = std::chrono::steady_clock;

  ClientSession(bool managed, UniqueFd sock, const Options& options);

  Status send(const protocol::Json& message, std::span<const int> fds = {});
  // A message whose effect a resume hello carries: not sent while reconnecting, no error.
  Status send_or_defer(const protocol::Json& message, const std::string& what);
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
  Status disconnect(Status why, bool daemon_went_away = false);
  void deliver_inbox();
  void run_takedown(const std::string& resource);

  void keep_for_resume(const std::string& resource, int fd);
  void release_held(const std::string& resource);
  bool may_resume() const;
  void advance_link();
  void schedule_retry();
  void try_resume();
  protocol::Json resume_hello() const;
  void on_welcome(const protocol::Message& welcome);
  void give_up(const std::string& why);

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

  std::string id_;
  Link link_ = Link::kConnected;
  std::vector<Held> holding_;
  std::vector<std::string> subscribed_;  // onTakedown resources, in order
  bool up_ = false;                      // serverUp was called
  bool failed_ = false;                  // fail() was called
  bool taken_down_ = false;              // a takeDown came (or tookDown was sent)
  bool last_line_error_ = false;         // the last line the daemon sent was an error
  bool welcomed_ = true;                 // this connection's hello was answered
  Millis retry_delay_;
  Clock::time_point next_attempt_;
};

}  // namespace serverswap::client
