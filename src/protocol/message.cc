#include "protocol/message.h"

namespace serverswap::protocol {

Result<Message> decode(std::string_view line) {
  Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Status::error("malformed JSON");
  if (!parsed.is_object()) return Status::error("a message must be a JSON object");
  if (parsed.empty()) return Status::error("a message must have at least one key");
  auto first = parsed.begin();
  return Message{first.key(), first.value(), std::move(parsed)};
}

std::string encode(const Json& message) {
  std::string line = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

Json make(std::string_view name, Json body) {
  Json message = Json::object();
  message[std::string(name)] = std::move(body);
  return message;
}

Json error_reply(const std::string& text, const Json& request) {
  Json reply = make("error", text);
  if (!request.is_null()) reply["request"] = request;
  return reply;
}

}  // namespace serverswap::protocol
