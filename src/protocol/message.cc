#include "protocol/message.h"

namespace serverswap::protocol {
namespace {

// True when arrays and objects outside strings nest deeper than kMaxDepth. Checked before
// parsing, so that no deep value is ever built (copies and dumps of it recurse).
bool nested_too_deep(std::string_view line) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

Result<Message> decode(std::string_view line) {
  if (nested_too_deep(line))
    return Status::error("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Status::error("malformed JSON");
  if (!parsed.is_object()) return Status::error("a message must be a JSON object");
  if (parsed.empty()) return Status::error("a message must have at least one key");
  auto first = parsed.begin();
  return Message{first.key(), first.value(), std::move(parsed)};
}

Result<Message> as_message(Json whole) {
  if (!whole.is_object()) return Status::error("a message must be a JSON object");
  if (whole.empty()) return Status::error("a message must have at least one key");
  auto first = whole.begin();
  std::string name = first.key();
  Json body = first.value();
  return Message{std::move(name), std::move(body), std::move(whole)};
}

std::string message_name(const Json& whole) {
  return whole.is_object() && !whole.empty() ? whole.begin().key() : std::string();
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
