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

// Code points that end a line, reorder text or show nothing for some readers of the log
// (terminals, editors, log viewers), so that a line could read other than it is: the C1
// controls (U+0085 is NEL), the line and paragraph separators, Unicode's
// Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15.1: soft hyphen,
// zero-width spaces and joiners, bidi marks, embeddings, overrides and isolates, fillers,
// variation selectors, tags), and the format controls that are not in it (interlinear
// annotation, Egyptian hieroglyph format controls). A table of ranges rather than ICU:
// the property is stable (Unicode adds to it only in reserved ranges), and the daemon and
// client stay free of a 30 MB data library (docs/architecture.md, "Written by hand").
bool is_invisible_control(char32_t cp) {
  struct Range {
    char32_t first, last;
  };
  static constexpr Range kRanges[] = {
      {0x0080, 0x009f},   {0x00ad, 0x00ad},   {0x034f, 0x034f},   {0x061c, 0x061c},
      {0x115f, 0x1160},   {0x17b4, 0x17b5},   {0x180b, 0x180f},   {0x200b, 0x200f},
      {0x2028, 0x202e},   {0x2060, 0x206f},   {0x3164, 0x3164},   {0xfe00, 0xfe0f},
      {0xfeff, 0xfeff},   {0xffa0, 0xffa0},   {0xfff0, 0xfffb},   {0x13430, 0x1343f},
      {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0000, 0xe0fff},
  };
  for (const Range& range : kRanges)
    if (cp >= range.first && cp <= range.last) return true;
  return false;
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
        // Four hex digits, or as many as a code point beyond U+FFFF needs (U+E0001).
        int shift = cp > 0xfffff ? 20 : cp > 0xffff ? 16 : 12;
        for (; shift >= 0; shift -= 4) line.push_back(kHex[(cp >> shift) & 0xf]);
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

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_printable(out, text);
  return out;
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
