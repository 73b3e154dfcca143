// Fuzz target: one line a peer sends the daemon, through protocol::decode and then EVERY
// typed decoder of the protocol (protocol/requests.h, server_messages.h, control_replies.h:
// what the daemon receives and what the CLI and the client libraries receive) on it, a
// deploy on to the spec the daemon would run, and the whole JSON through state_from_json
// (state.json). None may throw or crash: an exception escaping here is a crash to libFuzzer.
// Whatever decodes must encode to a line that decodes to the same value (the round trip of
// protocol/messages_round_trip_test.cc, on every input).
//
// The same bytes also go through the lossless encoding of bytes that are not UTF-8
// (protocol/bytes.h), which must give them back exactly.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>

#include "daemon/restart/state_file.h"
#include "daemon/spawn/spawn_environment.h"
#include "protocol/bytes.h"
#include "protocol/control_replies.h"
#include "protocol/message.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace {

namespace protocol = serverswap::protocol;
using protocol::Json;

void check(bool condition) {
  if (!condition) std::abort();
}

// A decoded deploy encodes to a body that decodes to the same request.
void check_deploy_round_trip(const protocol::DeployRequest& request) {
  Json body = protocol::encode_deploy(request);
  std::string line = protocol::encode(protocol::make("deploy", body));  // must not throw
  auto message = protocol::decode(std::string_view(line).substr(0, line.size() - 1));
  check(message.ok());
  auto again = protocol::decode_deploy(message->body);
  check(again.ok());
  check(again->argv == request.argv && again->cwd == request.cwd);
  // Entries may merge (one name both in env and envBase64), never appear.
  check(again->env.size() <= request.env.size());
  check(again->follow_exit == request.follow_exit && again->worker == request.worker);
}

// The message as T, when it decodes: encoded, sent as a line and decoded, it is the same.
template <class T>
void check_round_trip(const protocol::Message& message) {
  auto decoded = T::decode(message);
  if (!decoded.ok()) return;
  std::string line = protocol::encode(decoded->encode());  // must not throw
  auto again = protocol::decode(std::string_view(line).substr(0, line.size() - 1));
  check(again.ok() && again->name == T::kName);
  auto back = T::decode(*again);
  check(back.ok());
  if constexpr (std::is_same_v<T, protocol::ErrorReply>) {
    check(back->text == decoded->text);  // a request's huge float comes back as null
  } else {
    check(*back == *decoded);
  }
}

template <class... T>
void check_round_trips(const protocol::Message& message) {
  (check_round_trip<T>(message), ...);
}

void decode_every_way(const protocol::Message& message) {
  check_round_trips<protocol::HelloRequest, protocol::EinhornCommand, protocol::UpgradeRequest,
                    protocol::StatusRequest, protocol::StopRequest, protocol::ReloadRequest,
                    protocol::ReadyFor, protocol::OnTakedown, protocol::Serving, protocol::TookDown,
                    protocol::Fail, protocol::TakeDown, protocol::ServerUp, protocol::Welcome,
                    protocol::ResourceReady, protocol::ErrorReply, protocol::Event,
                    protocol::Deployed, protocol::DeployFailed, protocol::ServerExited,
                    protocol::StatusReply, protocol::Stopped, protocol::Reloaded,
                    protocol::ReloadQueued, protocol::UpgradeWaiting, protocol::Upgrading>(message);
  const Json& body = message.body;
  (void)protocol::decode_hello(body);
  for (const char* name : {"readyFor", "onTakedown", "serving", "tookDown", "fail"})
    (void)protocol::decode_string_body(name, body);
  (void)protocol::decode_einhorn_command(message.whole);
  (void)protocol::decode_upgrade(body);
  if (auto deploy = protocol::decode_deploy(body); deploy.ok()) {
    (void)serverswap::daemon::spec_from_request(*deploy);
    check_deploy_round_trip(*deploy);
  }
  // A resume hello's and a listen entry's nested decoders on whatever the body is.
  (void)protocol::decode_hello(Json{{"id", "x"}, {"protocol", 1}, {"resume", body}});
  (void)protocol::decode_deploy(
      Json{{"argv", Json::array({"a"})}, {"listen", Json::array({body})}});
  (void)serverswap::daemon::state_from_json(message.whole);
  (void)serverswap::daemon::state_from_json(body);
}

void check_bytes(std::string_view data) {
  std::string bytes(data);
  auto back = protocol::base64_decode(protocol::base64_encode(bytes));
  check(back.ok() && *back == bytes);
  (void)protocol::base64_decode(bytes);  // arbitrary text: an error or bytes, never a crash
  Json encoded = protocol::encode_bytes(bytes);
  (void)encoded.dump();  // throws (a crash here) if anything not UTF-8 got through
  if (bytes.find('\0') == std::string::npos) {
    auto decoded = protocol::decode_bytes(encoded, "fuzz");
    check(decoded.ok() && *decoded == bytes);
  }
  Json body = Json::object();
  protocol::encode_env({bytes, "K=" + bytes}, body);
  (void)body.dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  check_bytes(line);
  auto message = protocol::decode(line);
  if (message.ok()) decode_every_way(*message);
  return 0;
}
