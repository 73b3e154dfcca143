// Message: one protocol line decoded. A message is a JSON object whose first key names it
// ({"readyFor": ":8080"}); the value of that key is its body and any further keys are
// extra fields (docs/protocol.md, "Framing").
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace serverswap::protocol {

// Keys keep their order, so that "first key names it" holds on both sides.
using Json = nlohmann::ordered_json;

inline constexpr int kVersion = 1;

// Deepest nesting of arrays and objects a message may have. Real messages nest 3 levels;
// a 64 KiB line of '[' would otherwise make every later copy and dump of it recurse 32,000
// frames deep (a stack overflow under ASan).
inline constexpr int kMaxDepth = 32;

struct Message {
  std::string name;
  Json body;
  Json whole;
};

// Fails, with a message fit for an `error` reply, on malformed JSON, nesting deeper than
// kMaxDepth, a non-object or an empty object.
Result<Message> decode(std::string_view line);

// The message a JSON value is, as decode() would give it for its text: for the messages the
// daemon passes between its own parts before they go on the wire (a deploy's outcome to a
// reload). Fails as decode() does on a non-object or an empty object.
Result<Message> as_message(Json whole);
// The name of the message `whole` is (its first key); empty when it is no message.
std::string message_name(const Json& whole);

// One line, '\n' included. Invalid UTF-8 in strings is replaced rather than thrown on.
std::string encode(const Json& message);

Json make(std::string_view name, Json body);

// {"error": text, "request": request}; `request` is omitted when null.
Json error_reply(const std::string& text, const Json& request = nullptr);

// The body of a message that carries no fields ({"serverUp": true}, {"stop": true}): `true`
// or an object (whose fields later versions may define). Any other body is an error, "NAME
// must be true or an object", so that {"serverUp": false} or {"upgrade": 5} is refused
// rather than carried out.
inline Status expect_true_or_object(const Json& body, const std::string& name) {
  if (body == Json(true) || body.is_object()) return {};
  return Status::error(name + " must be true or an object");
}

}  // namespace serverswap::protocol
