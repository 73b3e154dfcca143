#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace serverswap {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};
std::atomic<bool> g_muted{false};

// The length of the well-formed UTF-8 sequence at the start of `text` (2 to 4 bytes, no
// overlong form, no surrogate, at most U+10FFFF) and its code point; 0 when there is none.
size_t utf8_sequence(std::string_view text, char32_t* code_point) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  if (lead < 0xc2 || lead > 0xf4 || text.size() < length) return 0;
  char32_t cp = lead & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  if ((length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  *code_point = cp;
  return length;
}

// Code points that end a line or reorder text for some readers of the log (terminals,
// editors, log viewers): the C1 controls (U+0085 is NEL), the line and paragraph
// separators, and the bidirectional embeddings, overrides and isolates.
bool is_invisible_control(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
         // The implicit bidirectional marks (LRM, RLM, ALM) and the zero-width no-break space.
         cp == 0x200e || cp == 0x200f || cp == 0x061c || cp == 0xfeff;
}

}  // namespace

// Text lines carry what servers sent (a fail reason, a resource): a newline, terminal
// escape or line separator in it must not forge a log line or drive the terminal, and bytes
// that are not UTF-8 must not reach a reader that expects it. Tabs and well-formed UTF-8
// other than those controls pass.
void append_printable(std::string& line, std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '\n') {
      line.append("\\n");
    } else if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
      line.append("\\x").push_back(kHex[byte >> 4]);
      line.push_back(kHex[byte & 0xf]);
    } else if (byte < 0x80) {
      line.push_back(static_cast<char>(byte));
    } else {
      char32_t cp = 0;
      size_t length = utf8_sequence(text.substr(i), &cp);
      if (length == 0) {  // one byte that starts no well-formed sequence
        line.append("\\x").push_back(kHex[byte >> 4]);
        line.push_back(kHex[byte & 0xf]);
      } else if (is_invisible_control(cp)) {
        line.append("\\u{");
        for (int shift = 12; shift >= 0; shift -= 4) line.push_back(kHex[(cp >> shift) & 0xf]);
        line.push_back('}');
        i += length;
        continue;
      } else {
        line.append(text.substr(i, length));
        i += length;
        continue;
      }
    }
    ++i;
  }
}

std::string clip_for_log(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  // Back over continuation bytes to the start of the sequence cut through (at most 3).
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80; ++i)
    --cut;
  return std::string(text.substr(0, cut)) + "\u2026(" + std::to_string(text.size()) + " bytes)";
}

namespace {

void write_line(const std::string& line) {
  // One write so that lines from several threads or processes do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace

bool parse_log_format(std::string_view name, LogFormat* out) {
  if (name == "text") {
    *out = LogFormat::kText;
  } else if (name == "json") {
    *out = LogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

void set_log_format(LogFormat format) {
  g_format = format;
}

void set_log_muted(bool muted) {
  g_muted = muted;
}

bool log_muted() {
  return g_muted;
}

std::string timestamp_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

std::string format_log_line(std::string_view text, const nlohmann::ordered_json& fields) {
  if (g_format == LogFormat::kJson) {
    nlohmann::ordered_json line = {
        {"time", timestamp_now()}, {"pid", getpid()}, {"msg", std::string(text)}};
    if (fields.is_object())
      for (const auto& [key, value] : fields.items())
        if (!line.contains(key)) line[key] = value;
    // Invalid UTF-8 from a server's output is replaced, never thrown on; everything beyond
    // ASCII is written as \uXXXX, so no reader that ends lines at NEL or U+2028, or shows
    // bidirectional controls, sees anything but escapes.
    return line.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  std::string line = timestamp_now();
  line.append(" serverswap[").append(std::to_string(getpid())).append("]: ");
  append_printable(line, text);
  line.push_back('\n');
  return line;
}

void log_line(std::string_view text) {
  if (g_muted) return;
  write_line(format_log_line(text, nullptr));
}

void write_log_line(const std::string& formatted) {
  if (!g_muted) write_line(formatted);
}

void log_event(std::string_view text, const nlohmann::ordered_json& fields) {
  if (g_muted) return;
  write_line(format_log_line(text, fields));
}

}  // namespace serverswap
