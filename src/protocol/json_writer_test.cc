#include "protocol/json_writer.h"

#include <gtest/gtest.h>

#include <string>

namespace serverswap::protocol {
namespace {

// Writes `value` event by event, as a caller of JsonWriter would.
void write(JsonWriter& w, const Json& value) {
  if (value.is_object()) {
    w.begin_object();
    for (const auto& [key, member] : value.items()) {
      w.key(key);
      write(w, member);
    }
    w.end_object();
  } else if (value.is_array()) {
    w.begin_array();
    for (const auto& element : value) write(w, element);
    w.end_array();
  } else if (value.is_string()) {
    w.string(value.get_ref<const std::string&>());
  } else if (value.is_number_unsigned()) {
    w.unsigned_integer(value.get<uint64_t>());
  } else if (value.is_number_integer()) {
    w.integer(value.get<int64_t>());
  } else if (value.is_number_float()) {
    w.floating(value.get<double>());
  } else if (value.is_boolean()) {
    w.boolean(value.get<bool>());
  } else {
    w.null();
  }
}

std::string written(const Json& value, int indent, bool ascii, Json::error_handler_t errors) {
  std::string out;
  JsonWriter w(out, indent, ascii, errors);
  write(w, value);
  EXPECT_EQ(w.depth(), 0u);
  return out;
}

// Every shape dump() has a rule for: empty and nested containers, each scalar, keys and
// strings that need escapes or are not ASCII, bytes that are not UTF-8.
Json sample() {
  Json v = Json::object();
  v["empty object"] = Json::object();
  v["empty array"] = Json::array();
  v["nested"] = {{"a", Json::array({1, -2, Json::array(), Json::object(), Json::array({nullptr})})},
                 {"b", {{"c", {{"d", true}}}}}};
  v["numbers"] = Json::array(
      {0, -9223372036854775807LL - 1, 18446744073709551615ULL, 1.5, -0.0, 1e300, 0.1, 3.0});
  v["text"] = "quote \" backslash \\ slash / tab \t nl \n cr \r bell \x07 del \x7f";
  v["unicode"] = "caf\xc3\xa9 \xe2\x80\xae bidi \xf0\x9f\x98\x80 emoji \xe2\x80\xa8 ls";
  v["ke\"y\n\xc3\xa9"] = false;
  v["scalars"] = Json::array({nullptr, true, false, "", 7});
  return v;
}

TEST(JsonWriter, CompactIsDumpsText) {
  Json v = sample();
  for (auto errors : {Json::error_handler_t::strict, Json::error_handler_t::replace})
    for (bool ascii : {false, true})
      EXPECT_EQ(written(v, -1, ascii, errors), v.dump(-1, ' ', ascii, errors));
}

TEST(JsonWriter, IndentedIsDumpsText) {
  Json v = sample();
  for (int indent : {0, 1, 2, 4})
    for (bool ascii : {false, true})
      EXPECT_EQ(written(v, indent, ascii, Json::error_handler_t::strict),
                v.dump(indent, ' ', ascii));
}

TEST(JsonWriter, TopLevelScalarsAndEmptyContainers) {
  for (const Json& v : {Json(nullptr), Json(true), Json(42), Json("x"), Json::array(),
                        Json::object(), Json::array({Json::object()})})
    for (int indent : {-1, 2})
      EXPECT_EQ(written(v, indent, true, Json::error_handler_t::strict), v.dump(indent, ' ', true));
}

// Bytes that are not UTF-8 are replaced (U+FFFD) exactly as encode() replaces them, in keys
// and values alike: the daemon's status text must not differ from the tree's there either.
TEST(JsonWriter, InvalidUtf8ReplacedAsDumpReplacesIt) {
  Json v = Json::object();
  v["bad \xff key"] = Json::array({"\xc3", "a\xe2\x80z", "\xed\xa0\x80 surrogate",
                                   "\xf4\x90\x80\x80 beyond", "ok \xc0\xaf overlong"});
  for (bool ascii : {false, true}) {
    std::string text = written(v, -1, ascii, Json::error_handler_t::replace);
    EXPECT_EQ(text, v.dump(-1, ' ', ascii, Json::error_handler_t::replace));
    EXPECT_FALSE(Json::parse(text, nullptr, false).is_discarded()) << text;
  }
}

TEST(JsonWriter, ValueWritesASubtreeInPlace) {
  Json inner = {{"x", Json::array({1, 2})}, {"y", Json::object()}};
  for (int indent : {-1, 2}) {
    std::string out;
    JsonWriter w(out, indent, false, Json::error_handler_t::strict);
    w.begin_object();
    w.key("first");
    w.integer(1);
    w.key("inner");
    w.value(inner);
    w.end_object();
    Json whole = {{"first", 1}, {"inner", inner}};
    EXPECT_EQ(out, whole.dump(indent));
  }
}

}  // namespace
}  // namespace serverswap::protocol
