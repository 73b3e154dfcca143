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
  // The next message; an error when the daemon hangs up or `timeout` passes.
  Result<protocol::Message> next(Millis timeout = Millis::max());

 private:
  explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  // An error reply may echo the request, which may be as long as a deploy of this user.
  protocol::LineFramer framer_{protocol::kMaxLineOwnUser};
};

// Fields of a daemon's reply, read without trusting its shape: a malformed reply (from a
// daemon of another version, or whatever listens on the socket) must not abort the command.
// reply_string: `key` of `body` when that is a string, else `fallback`. reply_text: `key`
// as JSON text ("1234", "[1, 2]"), "?" when absent. reply_bool: `key` when a boolean.
// reply_array: `key` when an array, else an empty one.
std::string reply_string(const protocol::Json& body, const char* key,
                         const std::string& fallback = "");
std::string reply_text(const protocol::Json& body, const char* key);
bool reply_bool(const protocol::Json& body, const char* key, bool fallback);
const protocol::Json& reply_array(const protocol::Json& body, const char* key);

// Connects to the daemon on the socket `socket_flag` names (resolve_socket_path), or says
// on stderr why not and sets *code (kNoDaemon when nothing listens, else kSystemError).
std::optional<ControlClient> connect_or_say(const std::string& socket_flag, int* code);

}  // namespace serverswap::cli
