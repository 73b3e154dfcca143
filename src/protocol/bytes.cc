#include "protocol/bytes.h"

#include <array>
#include <cstdint>

namespace serverswap::protocol {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0-63 for an alphabet character, -1 otherwise.
constexpr std::array<int8_t, 256> make_decode_table() {
  std::array<int8_t, 256> table{};
  for (auto& t : table) t = -1;
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr auto kDecode = make_decode_table();

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // overlong
      if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // overlong
      if (c == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (bytes.size() - i < length) return false;
    auto second = static_cast<unsigned char>(bytes[i + 1]);
    if (second < low || second > high) return false;
    for (size_t k = 2; k < length; ++k) {
      auto next = static_cast<unsigned char>(bytes[i + k]);
      if (next < 0x80 || next > 0xBF) return false;
    }
    i += length;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                 static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                 static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kAlphabet[n >> 18 & 63]);
    out.push_back(kAlphabet[n >> 12 & 63]);
    out.push_back(kAlphabet[n >> 6 & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  size_t left = bytes.size() - i;
  if (left > 0) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (left == 2) n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(kAlphabet[n >> 18 & 63]);
    out.push_back(kAlphabet[n >> 12 & 63]);
    out.push_back(left == 2 ? kAlphabet[n >> 6 & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return Status::error("base64: length is not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    size_t padding = 0;
    if (last && text[i + 3] == '=') padding = text[i + 2] == '=' ? 2 : 1;
    uint32_t n = 0;
    for (size_t k = 0; k < 4; ++k) {
      int8_t v = k < 4 - padding ? kDecode[static_cast<unsigned char>(text[i + k])] : 0;
      if (v < 0) return Status::error("base64: a character outside the standard alphabet");
      n = n << 6 | static_cast<uint32_t>(v);
    }
    // Bits below the last full byte must be zero: one encoding per byte string.
    if ((padding == 1 && (n & 0xFF) != 0) || (padding == 2 && (n & 0xFFFF) != 0))
      return Status::error("base64: nonzero bits in the padding");
    out.push_back(static_cast<char>(n >> 16 & 0xFF));
    if (padding < 2) out.push_back(static_cast<char>(n >> 8 & 0xFF));
    if (padding < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

Json encode_bytes(const std::string& bytes) {
  if (is_valid_utf8(bytes)) return bytes;
  return Json{{"base64", base64_encode(bytes)}};
}

Result<std::string> decode_bytes(const Json& value, const std::string& field) {
  std::string bytes;
  if (value.is_string()) {
    bytes = value.get<std::string>();
  } else if (value.is_object() && value.size() == 1 && value.contains("base64") &&
             value["base64"].is_string()) {
    auto decoded = base64_decode(value["base64"].get<std::string>());
    if (!decoded.ok()) return decoded.status().wrap(field);
    bytes = std::move(*decoded);
  } else {
    return Status::error(field + " must be a string or {\"base64\": string}");
  }
  if (bytes.find('\0') != std::string::npos)
    return Status::error(field + " must not contain a NUL byte");
  return bytes;
}

void encode_env(const std::vector<std::string>& env, Json& body) {
  Json utf8 = Json::object();
  Json other = Json::array();
  for (const auto& kv : env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    if (is_valid_utf8(kv)) {
      utf8[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      other.push_back(base64_encode(kv));
    }
  }
  body["env"] = std::move(utf8);
  if (!other.empty()) body["envBase64"] = std::move(other);
}

}  // namespace serverswap::protocol
