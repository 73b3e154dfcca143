// Connection: one peer of the daemon's control socket (a server or the serverswap command),
// speaking the line protocol of docs/protocol.md over a libuv IPC pipe so that listening
// sockets can ride on its writes. Loop thread only.
//
// Lifetime: the owner (ControlServer) creates it and deletes it in on_closed, which runs
// from libuv's close callback, never while a line is being handled.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "daemon/control/log_limiter.h"
#include "daemon/control/token_bucket.h"
#include "daemon/core/peer.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"

namespace serverswap::daemon {

// Per-connection limits (docs/protocol.md, "Limits"). A message over the rate is dropped
// with an error reply; a peer still sending a whole burst's worth over it is disconnected.
inline constexpr double kMessagesPerSecond = 100;
inline constexpr int kMessageBurst = 200;
// Replies queued for a peer that does not read them: past this it is disconnected at once,
// so that it cannot make the daemon hold unbounded memory.
inline constexpr size_t kMaxUnreadBytes = 8u << 20;
// Descriptors a connection may hold before a line claims them: only before its first line
// is complete (a resume hello, the first line, carries at most 64), and only while all
// connections together hold fewer than ConnectionShared::max_pending_fds, and those of one
// uid other than the daemon's and root fewer than 64 (so that one other user cannot take
// them all). Beyond any of these, they are closed at once and the peer is told.
inline constexpr size_t kMaxPendingFdsPerConnection = 64;
inline constexpr size_t kMaxPendingFds = 256;

// What the connections of one control server share: the count of descriptors they hold
// pending (not yet claimed by a line) and its cap, and the rate limits of the log lines
// about what their peers did, one per kind (by peer uid). Owned by the ControlServer;
// outlives them.
struct ConnectionShared {
  ConnectionShared(uv_loop_t* loop, size_t max_pending)
      : max_pending_fds(max_pending),
        fd_log(loop, "lines about unasked descriptors"),
        close_log(loop, "lines about control connections closed or failing") {}
  size_t max_pending_fds;
  size_t pending_fds = 0;
  std::map<uid_t, size_t> pending_fds_of_others;  // by uid, other than the daemon's and root
  LogLimiter fd_log;                              // descriptors closed unread
  LogLimiter close_log;                           // closed over a limit, read and write errors
  // What every connection reads into: libuv calls a stream's alloc_cb, reads, and calls its
  // read_cb before any other callback, and on_read copies the bytes into the connection's
  // framer before anything else runs, so one buffer serves all connections. A buffer per
  // connection cost 64 KiB of every server's memory in the daemon (issue 13's 16 KiB an app).
  std::unique_ptr<char[]> read_buffer{new char[kReadBufferSize]};
  static constexpr size_t kReadBufferSize = 64 * 1024;
};

class Connection : public Peer {
 public:
  struct Handlers {
    std::function<void(Connection&, const std::string& line)> on_line;
    std::function<void(Connection&)> on_disconnect;  // reading stopped; no more lines
    std::function<void(Connection&)> on_closed;      // handle closed; delete it now
  };

  // `shared` must outlive the connection.
  Connection(uv_loop_t* loop, uint64_t id, ConnectionShared& shared);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }
  // Starts reading once the pipe has been accepted; fills in the peer's credentials.
  void start(Handlers handlers);

  void send(const protocol::Json& message) override { write(message, nullptr); }
  // A line written already (protocol::status_reply_line), '\n' included.
  void send_line(std::string line) { write_line(std::move(line), nullptr); }
  // Sends a listening socket with the line (SCM_RIGHTS on the sendmsg that carries it).
  void send_with_handle(const protocol::Json& message, uv_stream_t* handle) override {
    write(message, handle);
  }
  // Flushes what was sent, then closes. Idempotent.
  void close() override;
  // Closes now, dropping what was not sent yet (a peer that does not read). Idempotent.
  void abort(const std::string& why);

  // Descriptors that came with the line being handled (a resume hello's listening sockets,
  // docs/protocol.md section 11). Whatever the handler does not take is closed after it.
  std::vector<UniqueFd> take_received_fds() override;

  uint64_t id() const override { return id_; }
  pid_t peer_pid() const override { return pid_; }
  uid_t peer_uid() const override { return uid_; }
  bool closing() const { return closing_; }

 private:
  void write(const protocol::Json& message, uv_stream_t* handle);
  void write_line(std::string line, uv_stream_t* handle);
  void on_read(ssize_t nread, const uv_buf_t* buf);
  bool admit_message();
  void receive_fds();
  void drop_unasked_fds();
  void closed_fds(size_t count, const std::string& why);
  // `count` descriptors of this connection are no longer pending.
  void unpend(size_t count);
  bool of_another_user() const;
  std::string peer() const;
  // A line about the peer may be logged now (`limiter`, by the peer's uid).
  bool may_log(LogLimiter& limiter);
  static void closed_cb(uv_handle_t* handle);

  uv_pipe_t pipe_;
  uint64_t id_;
  ConnectionShared& shared_;
  Handlers handlers_;
  protocol::LineFramer framer_;
  pid_t pid_ = 0;
  uid_t uid_ = static_cast<uid_t>(-1);
  bool closing_ = false;
  bool aborted_ = false;  // on_disconnect is then called from the close callback
  TokenBucket message_rate_{kMessagesPerSecond, kMessageBurst};
  int dropped_in_a_row_ = 0;
  std::vector<UniqueFd> received_fds_;  // not yet claimed by a line
  bool line_seen_ = false;              // a line was complete: no more fds are kept
};

}  // namespace serverswap::daemon
