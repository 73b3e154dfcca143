// ControlClient: the serverswap command's side of the control socket (blocking I/O; one
// thread). Says hello with role "control" and reads the daemon's replies line by line.
#pragma once

#include <optional>
#include <string>

#include "base/duration.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"

namespace serverswap::cli {

class ControlClient {
 public:
  // Connects and exchanges hello/welcome. *no_daemon is set when nothing listens on `path`
  // (no file, or a stale one), as opposed to a real error.
  static Result<ControlClient> connect(const std::string& path, bool* no_daemon);

  Status send(const protocol::Json& message);
  // The next message; an error when the daemon hangs up or `timeout` passes (then
  // `*timed_out`, when given, is set to true).
  Result<protocol::Message> next(Millis timeout = Millis::max(), bool* timed_out = nullptr);
  // The same, before it is decoded (decode_reply): the next non-empty line.
  Result<std::string> next_line(Millis timeout = Millis::max(), bool* timed_out = nullptr);

 private:
  explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  // An error reply may echo the request, which may be as long as a deploy of this user.
  protocol::LineFramer framer_{protocol::kMaxLineOwnUser};
};

// A line of the daemon's, decoded; an error names it as the daemon's reply.
Result<protocol::Message> decode_reply(std::string_view line);

// What the daemon said in `message`, for people: an `error` reply's text
// (protocol::ErrorReply), else the whole message as JSON (bytes that are not UTF-8
// replaced). Replies of every other kind are read with their decoders
// (protocol/control_replies.h), which never throw on a malformed reply.
std::string error_text(const protocol::Message& message);

// Connects to the daemon on the socket `socket_flag` names (resolve_socket_path), or says
// on stderr why not and sets *code (kNoDaemon when nothing listens, else kSystemError).
std::optional<ControlClient> connect_or_say(const std::string& socket_flag, int* code);

}  // namespace serverswap::cli
