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
// The connection, the descriptor pairing and the resume memory are the client core it
// shares with the node relay (control_channel.h, resume_memory.h).
//
// Not thread-safe: one thread at a time, as the C handle over it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "client/control_channel.h"
#include "client/inherited_sockets.h"
#include "protocol/message.h"

namespace serverswap::client {

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
  int control_fd() const { return channel_ ? channel_->fd() : -1; }
  // Milliseconds after which dispatch() must run even if control_fd() is not readable (a
  // reconnect attempt is due, or a resume waits for its welcome); 0: at once; -1: never.
  int timeout_ms() const { return channel_ ? channel_->timeout_ms() : -1; }
  // True between the loss of the daemon and the welcome of the next one.
  bool reconnecting() const { return channel_ && channel_->reconnecting(); }

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
  using Incoming = ControlChannel::Incoming;

  ClientSession(bool managed, std::optional<ControlChannel> channel, const Options& options);

  // `refused`: set when the daemon answered with an error (its text names the readyFor).
  Result<UniqueFd> await_resource(const std::string& resource, bool* refused);
  Result<UniqueFd> standalone_ready_for(const std::string& resource);
  // A descriptor of the inherited socket for `resource`; an empty UniqueFd when none matches.
  Result<UniqueFd> inherited_ready_for(const std::string& resource);
  Status with_inherited_hint(const Status& status) const;
  void deliver_inbox();
  void run_takedown(const std::string& resource);

  bool managed_;
  Options options_;
  // The connection and the resume memory, shared with the node relay; empty standalone.
  std::optional<ControlChannel> channel_;
  std::map<std::string, TakedownFn> takedown_;
  std::map<std::string, UniqueFd> bound_;      // standalone: resource -> listening socket
  std::optional<InheritedSockets> inherited_;  // read from the environment at first readyFor
  bool in_callback_ = false;
};

}  // namespace serverswap::client
