// ControlChannel: a server's control connection to the daemon (docs/protocol.md), the one
// client core under both the C/C++ client (ClientSession) and the Node relay (node_relay.h):
//  - framing both ways, with deadlines on sends;
//  - descriptor pairing on receipt: a received descriptor belongs to the resourceReady line
//    that starts within the bytes it came with; one that came with any other line is closed;
//  - the resume memory (resume_memory.h): every message sent or deferred through the channel
//    and every message received is noted there;
//  - reconnecting after the daemon went away (its connection reached end-of-file or was
//    reset): after 100 ms, then doubling up to 1 s, to Options::socket_path, with the resume
//    hello and the held sockets; the welcome (or error) answering it is the channel's own
//    and never reaches the inbox. No reconnect after a broken connection (a line too long, a
//    send that timed out), when the memory says no (may_resume), or without a socket path;
//    an error answering the resume ends reconnecting for good (said on stderr).
//
// Messages received are queued in an inbox the owner takes them from; the channel never
// blocks except in send() (bounded by send_timeout) and await() (bounded by its timeout).
// Not thread-safe: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "client/resume_memory.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"
#include "protocol/requests.h"

namespace serverswap::client {

struct Options {
  bool explicit_up = false;  // hello's "upMessage": the server will send serverUp itself
  Millis hello_timeout{10'000};
  Millis ready_timeout{60'000};  // the daemon's own --ready-timeout default
  Millis send_timeout{10'000};
  // Where to reconnect when the daemon goes away; empty: never (open() sets it).
  std::string socket_path{};
};

// Connects a stream socket to the Unix socket `path`; `flags` adds to SOCK_STREAM (e.g.
// SOCK_NONBLOCK). `connect_errno`, when given, gets connect()'s errno on failure (0 when
// something else failed). Errors name the path.
Result<UniqueFd> connect_unix(const std::string& path, int flags = 0, int* connect_errno = nullptr);
// OK when the Unix socket `fd`, connected to `path`, was listened on by root or by this
// process's effective uid: a daemon runs as one or the other. Anyone else may have bound a
// socket where the daemon's was (its directory removed by a cleaner of /tmp while the
// daemon was down), and must not receive a server's id and listening sockets in a resume
// hello. connect_unix() checks it. The error names the path and the peer's uid and pid.
Status check_daemon_peer(int fd, const std::string& path);

class ControlChannel {
 public:
  struct Incoming {
    protocol::Message message;
    UniqueFd fd;  // only ever set on resourceReady
  };

  // Over `sock`, a connected Unix stream socket (made non-blocking here); takes it.
  static Result<ControlChannel> over(UniqueFd sock, const Options& options);

  ControlChannel(ControlChannel&&) = default;
  ControlChannel& operator=(ControlChannel&&) = default;

  // The socket to poll for readability; -1 while there is none (the daemon is away). It
  // changes when the channel reconnects: ask again before each poll.
  int fd() const { return sock_.get(); }
  bool connected() const { return sock_.valid(); }
  // Milliseconds after which advance() must run even if fd() is not readable; -1: never.
  int timeout_ms() const;
  // True between the loss of the daemon and the welcome of the next one.
  bool reconnecting() const;
  // The daemon is gone for good; lost() says why.
  bool gone() const { return link_ == Link::kGone; }
  const Status& lost() const { return lost_; }
  ResumeMemory& memory() { return memory_; }

  // Says hello (`body`, the object of docs/protocol.md §1) and remembers it for resumes.
  Status hello(const protocol::Json& body);
  Status hello(const protocol::HelloRequest& hello);
  // Sends one message with `fds` on its first byte; notes it in the memory first. An error
  // when not connected or the send failed (the connection is then lost or broken).
  Status send(const protocol::Json& message, std::span<const int> fds = {});
  // A message whose effect a resume hello carries: noted, and not sent (no error) while
  // the daemon is away. `what` names it in errors.
  Status send_or_defer(const protocol::Json& message, const std::string& what);

  // Reads what is there without blocking (a bounded number of reads: poll() is
  // level-triggered, what is left wakes the loop again) into the inbox.
  void read_available();
  // Reads until a queued message satisfies `wanted`, which is removed and returned; the
  // others stay queued in order. An error on timeout or when the connection is lost.
  Result<Incoming> await(const std::function<bool(const Incoming&)>& wanted, Millis timeout);
  // The oldest message not yet taken.
  std::optional<Incoming> next();
  // After the inbox was handled: decides on a lost connection and makes a reconnect
  // attempt when one is due. Call whenever timeout_ms() passed or fd() was readable.
  void advance();

 private:
  // A received descriptor and the stream bytes [begin, end) it came with: it belongs to the
  // first resourceReady line that starts in that range.
  struct PendingFd {
    UniqueFd fd;
    uint64_t begin = 0, end = 0;
  };
  // Where the connection to the daemon stands (docs/protocol.md §11).
  enum class Link {
    kConnected,  // hello answered (or about to be, for the first hello)
    kLost,       // end-of-file seen; whether to reconnect is decided in advance()
    kWaiting,    // a reconnect attempt is due at next_attempt_
    kResuming,   // the resume hello is sent; its welcome is due by next_attempt_
    kGone,       // no daemon any more, for good
  };
  using Clock = std::chrono::steady_clock;

  ControlChannel(UniqueFd sock, const Options& options);

  Status send_line(const std::string& line, std::span<const int> fds);
  Status read_once(bool& would_block);
  void take_lines();
  void take_line(const std::string& line, uint64_t start);
  Status disconnect(Status why, bool daemon_went_away = false);
  bool may_resume() const;
  void schedule_retry();
  void try_resume();
  void on_welcome(const protocol::Message& welcome);
  void give_up(const std::string& why);

  Options options_;
  UniqueFd sock_;
  Status lost_;  // why the connection is gone, once it is
  // The first connection's answer to its hello: until a welcome, an error the daemon sent
  // (an unknown server id) is why it then closes -- not a daemon that went away.
  bool welcomed_ = false;
  std::string refusal_;
  protocol::LineFramer framer_;
  uint64_t received_ = 0;    // stream bytes read so far
  uint64_t line_start_ = 0;  // stream offset of the next line the framer will return
  std::vector<char> read_buf_;
  std::deque<PendingFd> pending_fds_;
  std::deque<Incoming> inbox_;
  ResumeMemory memory_;
  Link link_ = Link::kConnected;
  Millis retry_delay_;
  Clock::time_point next_attempt_;
};

}  // namespace serverswap::client
