// The messages between a server and the daemon besides hello (docs/protocol.md sections 3
// and 4), each a typed struct with its encoder and its total decoder side by side, as in
// protocol/requests.h: `encode()` is the whole message, `decode(message)` never throws and
// names the wrong field ("takeDown must be a string"). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/status.h"
#include "protocol/message.h"

namespace serverswap::protocol {

// A message whose body is one string (a resource, or fail's reason): readyFor, onTakedown,
// serving, tookDown, fail from a server; takeDown from the daemon.
template <const char* Name>
struct StringMessage {
  std::string value;

  static constexpr const char* kName = Name;
  Json encode() const { return make(kName, value); }
  static Result<StringMessage> decode(const Message& message) {
    if (!message.body.is_string()) return Status::error(std::string(kName) + " must be a string");
    return StringMessage{message.body.get<std::string>()};
  }
  bool operator==(const StringMessage&) const = default;
};
inline constexpr char kReadyForName[] = "readyFor";
inline constexpr char kOnTakedownName[] = "onTakedown";
inline constexpr char kServingName[] = "serving";
inline constexpr char kTookDownName[] = "tookDown";
inline constexpr char kFailName[] = "fail";
inline constexpr char kTakeDownName[] = "takeDown";
using ReadyFor = StringMessage<kReadyForName>;      // value: the resource
using OnTakedown = StringMessage<kOnTakedownName>;  // value: the resource (or --listen name)
using Serving = StringMessage<kServingName>;        // value: the resource
using TookDown = StringMessage<kTookDownName>;      // value: the resource
using Fail = StringMessage<kFailName>;              // value: why
using TakeDown = StringMessage<kTakeDownName>;      // value: the resource, as it was spelled

// {"serverUp": true}: the body is `true` or an object (no field is read today); any other
// ({"serverUp": false}) is an error, "serverUp must be true or an object".
struct ServerUp {
  static constexpr const char* kName = "serverUp";
  Json encode() const { return make(kName, true); }
  static Result<ServerUp> decode(const Message& message) {
    if (Status s = expect_true_or_object(message.body, kName); !s.ok()) return s;
    return ServerUp{};
  }
  bool operator==(const ServerUp&) const = default;
};

// The answer to hello: {"protocol", "id" (a server's only), "version", "resumed" (true only,
// for a resume hello)}.
struct Welcome {
  int64_t protocol = kVersion;
  std::optional<std::string> id;
  std::string version;  // "serverswap 0.1.0"; empty when a daemon left it out
  bool resumed = false;

  static constexpr const char* kName = "welcome";
  Json encode() const;
  static Result<Welcome> decode(const Message& message);
  bool operator==(const Welcome&) const = default;
};

// {"resourceReady": RESOURCE, "address": ADDRESS}, sent with the listening descriptor.
struct ResourceReady {
  std::string resource;  // as the server spelled it in readyFor
  std::string address;   // as bound ("[::]:8080"); empty when a daemon left it out

  static constexpr const char* kName = "resourceReady";
  Json encode() const;
  static Result<ResourceReady> decode(const Message& message);  // reads message.whole
  bool operator==(const ResourceReady&) const = default;
};

// {"error": TEXT, "request": REQUEST}: the request is left out when null (framing errors).
struct ErrorReply {
  std::string text;
  Json request;

  static constexpr const char* kName = "error";
  Json encode() const { return error_reply(text, request); }
  static Result<ErrorReply> decode(const Message& message);  // reads message.whole
  bool operator==(const ErrorReply&) const = default;
};

}  // namespace serverswap::protocol
