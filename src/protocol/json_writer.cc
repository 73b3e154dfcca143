#include "protocol/json_writer.h"

#include <algorithm>

namespace serverswap::protocol {

// nlohmann's dump() writes through this same serializer (detail::serializer over a string
// output adapter): public in every 3.x release; no other API of it escapes one string
// without building a value and a serializer per call.
JsonWriter::JsonWriter(std::string& out, int indent, bool ensure_ascii,
                       Json::error_handler_t errors)
    : out_(out),
      indent_(indent),
      ensure_ascii_(ensure_ascii),
      serializer_(nlohmann::detail::output_adapter<char, std::string>(out), ' ', errors) {}

void JsonWriter::newline_and_indent(size_t levels) {
  out_.push_back('\n');
  out_.append(levels * static_cast<size_t>(indent_), ' ');
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (frames_.empty()) return;
  Frame& frame = frames_.back();
  if (frame.count++ > 0) out_.push_back(',');
  if (indent_ >= 0) newline_and_indent(frames_.size());
}

void JsonWriter::begin(char open, bool object) {
  before_value();
  out_.push_back(open);
  frames_.push_back({object, 0});
}

void JsonWriter::end(char close) {
  bool any = frames_.back().count > 0;
  frames_.pop_back();
  if (any && indent_ >= 0) newline_and_indent(frames_.size());
  out_.push_back(close);
}

void JsonWriter::begin_object() {
  begin('{', true);
}
void JsonWriter::end_object() {
  end('}');
}
void JsonWriter::begin_array() {
  begin('[', false);
}
void JsonWriter::end_array() {
  end(']');
}

void JsonWriter::key(std::string_view name) {
  before_value();
  scratch_string_.get_ref<Json::string_t&>().assign(name);
  dump(scratch_string_);
  out_.push_back(':');
  if (indent_ >= 0) out_.push_back(' ');
  after_key_ = true;
}

void JsonWriter::dump(const Json& value) {
  serializer_.dump(value, indent_ >= 0, ensure_ascii_, static_cast<unsigned>(std::max(indent_, 0)),
                   static_cast<unsigned>(std::max(indent_, 0)) * frames_.size());
}

void JsonWriter::string(std::string_view text) {
  before_value();
  scratch_string_.get_ref<Json::string_t&>().assign(text);
  dump(scratch_string_);
}

void JsonWriter::integer(int64_t number) {
  before_value();
  dump(Json(number));
}

void JsonWriter::unsigned_integer(uint64_t number) {
  before_value();
  dump(Json(number));
}

void JsonWriter::floating(double number) {
  before_value();
  dump(Json(number));
}

void JsonWriter::boolean(bool value) {
  before_value();
  out_.append(value ? "true" : "false");
}

void JsonWriter::null() {
  before_value();
  out_.append("null");
}

void JsonWriter::value(const Json& value) {
  before_value();
  dump(value);
}

}  // namespace serverswap::protocol
