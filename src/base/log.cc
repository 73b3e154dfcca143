#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace serverswap {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};
std::atomic<bool> g_muted{false};

// Text lines carry what servers sent (a fail reason, a resource): a newline or terminal
// escape in it must not forge a log line or drive the terminal. Tabs pass.
void append_printable(std::string& line, std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte == '\n') {
      line.append("\\n");
    } else if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
      line.append("\\x").push_back(kHex[byte >> 4]);
      line.push_back(kHex[byte & 0xf]);
    } else {
      line.push_back(c);
    }
  }
}

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
    // Invalid UTF-8 from a server's output is replaced, never thrown on.
    return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
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

void log_event(std::string_view text, const nlohmann::ordered_json& fields) {
  if (g_muted) return;
  write_line(format_log_line(text, fields));
}

}  // namespace serverswap
