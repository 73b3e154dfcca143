// Durations given on the command line: "30" (seconds), "1.5s", "250ms", "2m".
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace serverswap {

using Millis = std::chrono::milliseconds;

Result<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis d);  // "250ms", "1.5s", "30s"

}  // namespace serverswap
