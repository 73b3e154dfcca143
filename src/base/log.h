// Log lines: one line per event on stderr, "2026-11-25T11:50:01.123Z serverswap[42]: text".
// Thread-safe (one write(2) per line).
#pragma once

#include <string>
#include <string_view>

namespace serverswap {

// UTC wall-clock time with milliseconds, ISO 8601: "2026-11-25T11:50:01.123Z".
std::string timestamp_now();

void log_line(std::string_view text);

}  // namespace serverswap
