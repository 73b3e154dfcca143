#include "protocol/indented_body.h"

#include <vector>

#include "protocol/json_writer.h"
#include "protocol/message.h"

namespace serverswap::protocol {
namespace {

// The SAX events of one line (nlohmann's json_sax interface). Writes the first key's value
// of the top-level object to `writer` and checks the rest as decode() does: the depth
// limit, the name, and no repeated key where the tree would have merged them. Returning
// false stops the parse.
class Reindenter {
 public:
  Reindenter(std::string_view name, JsonWriter& writer) : name_(name), writer_(writer) {}

  bool null() {
    return scalar([&] { writer_.null(); });
  }
  bool boolean(bool value) {
    return scalar([&] { writer_.boolean(value); });
  }
  bool number_integer(Json::number_integer_t value) {
    return scalar([&] { writer_.integer(value); });
  }
  bool number_unsigned(Json::number_unsigned_t value) {
    return scalar([&] { writer_.unsigned_integer(value); });
  }
  bool number_float(Json::number_float_t value, const Json::string_t& /*text*/) {
    return scalar([&] { writer_.floating(value); });
  }
  bool string(Json::string_t& value) {
    return scalar([&] { writer_.string(value); });
  }
  bool binary(Json::binary_t& /*value*/) { return false; }  // not in JSON text

  bool start_object(std::size_t /*elements*/) { return start(true); }
  bool start_array(std::size_t /*elements*/) { return start(false); }
  bool end_object() { return end(true); }
  bool end_array() { return end(false); }

  bool key(Json::string_t& key) {
    std::vector<std::string>& keys = keys_[depth_ - 1];  // a key is in the innermost object
    for (const auto& k : keys)
      if (k == key) return false;  // the tree keeps one of them: leave it to decode()
    if (depth_ == 1) {
      // The top-level object: its first key names the message; only that value is printed.
      if (keys.empty() && key != name_) return false;
      writing_ = keys.empty();
    } else if (writing_) {
      writer_.key(key);
    }
    keys.push_back(key);
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*error*/) {
    return false;
  }

  // The whole line was a message named name_ (and its body was written).
  bool complete() const { return named_ && depth_ == 0; }

 private:
  template <class Write>
  bool scalar(Write write) {
    if (depth_ == 0) return false;  // not an object: decode() refuses it
    if (writing_) write();
    return true;
  }

  bool start(bool object) {
    if (++depth_ > kMaxDepth) return false;  // decode() refuses it
    if (depth_ == 1) {
      if (!object) return false;
    } else if (writing_) {
      object ? writer_.begin_object() : writer_.begin_array();
    }
    if (object) {
      // Reuses the list of keys of the last object at this depth (its capacity).
      if (keys_.size() < depth_) keys_.resize(depth_);
      keys_[depth_ - 1].clear();
    }
    return true;
  }

  bool end(bool object) {
    if (depth_ == 1) {
      named_ = !keys_.front().empty();
      writing_ = false;
    } else if (writing_) {
      object ? writer_.end_object() : writer_.end_array();
    }
    --depth_;
    return true;
  }

  std::string_view name_;
  JsonWriter& writer_;
  size_t depth_ = 0;
  bool writing_ = false;  // inside the first key's value of the top-level object
  bool named_ = false;
  std::vector<std::vector<std::string>> keys_;  // of the open objects, by depth - 1
};

}  // namespace

std::optional<std::string> indented_body(std::string_view line, std::string_view name) {
  std::string text;
  // ASCII only, as the tree's dump was: a bidi control or line separator in a server's
  // text stays an escape rather than reaching the terminal.
  JsonWriter writer(text, 2, true, Json::error_handler_t::strict);
  Reindenter events(name, writer);
  if (!Json::sax_parse(line, &events) || !events.complete()) return std::nullopt;
  return text;
}

}  // namespace serverswap::protocol
