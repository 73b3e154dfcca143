// Fuzz target: the splitter of a server's output into log lines (any bytes a server writes).
// Properties: no line holds a newline or exceeds the maximum; how the bytes were cut into
// reads changes nothing; every byte is in a line except the newlines that ended lines and
// the carriage return before each of them.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/process/output_pipe.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string> split(std::string_view text, size_t piece) {
  serverswap::daemon::LineSplitter splitter;
  std::vector<std::string> lines;
  auto add = [&](std::string_view line) { lines.emplace_back(line); };
  for (size_t at = 0; at < text.size(); at += piece) splitter.feed(text.substr(at, piece), add);
  splitter.finish(add);
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using serverswap::daemon::LineSplitter;
  if (size == 0) return 0;
  size_t piece = 1 + data[0] % 64;  // the reads a server's writes arrive in
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto whole = split(text, text.size() + 1);
  check(split(text, piece) == whole);
  size_t kept = 0;
  for (const auto& line : whole) {
    check(line.size() <= LineSplitter::kMaxLine);
    check(line.find('\n') == std::string::npos);
    kept += line.size();
  }
  size_t newlines = 0, returns = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    ++newlines;
    if (i > 0 && text[i - 1] == '\r') ++returns;
  }
  // A "\r\n" whose '\r' ended a piece of kMaxLine keeps its '\r': at most that many dropped.
  check(kept + newlines <= text.size() && kept + newlines + returns >= text.size());
  return 0;
}
