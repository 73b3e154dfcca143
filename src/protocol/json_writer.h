// JsonWriter: JSON text written as it goes, without building a tree first. The daemon's
// `status` reply of 1,000 apps built as a tree cost ~20,000 node allocations and frees per
// call, more CPU than writing the text (issue 13).
//
// The text is the one nlohmann's dump() writes for the same value: every string, key and
// number is written by nlohmann's own serializer (its escaping, its handling of bytes that
// are not UTF-8 per `errors`, its number formats); this class adds only the punctuation
// between them, placed as dump() places it, compact (indent < 0: no spaces) or indented
// by `indent` spaces ("[]" and "{}" for empty containers, "\"key\": " when indented).
// Single-threaded; appends to `out`, which must outlive the writer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/message.h"

namespace serverswap::protocol {

class JsonWriter {
 public:
  JsonWriter(std::string& out, int indent, bool ensure_ascii, Json::error_handler_t errors);
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  // An object's next key; its value is the next thing written.
  void key(std::string_view name);

  void string(std::string_view text);
  void integer(int64_t number);
  void unsigned_integer(uint64_t number);
  void floating(double number);
  void boolean(bool value);
  void null();
  // Any value, as dump() writes it at this place (a scalar, or a whole subtree).
  void value(const Json& value);

  // The containers open; 0 once the top value is complete.
  size_t depth() const { return frames_.size(); }

 private:
  struct Frame {
    bool object;
    size_t count;  // members or elements so far
  };
  using Serializer = nlohmann::detail::serializer<Json>;

  // What goes before a value or a key: the separator and indentation of its container.
  void before_value();
  void begin(char open, bool object);
  void end(char close);
  void newline_and_indent(size_t levels);
  void dump(const Json& value);

  std::string& out_;
  int indent_;
  bool ensure_ascii_;
  Serializer serializer_;
  std::vector<Frame> frames_;
  bool after_key_ = false;
  // The strings written go through this one value, so that writing one allocates nothing
  // once it has held the longest.
  Json scratch_string_ = Json::string_t();
};

}  // namespace serverswap::protocol
