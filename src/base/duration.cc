#include "base/duration.h"

#include <charconv>
#include <cmath>

namespace serverswap {

Result<Millis> parse_duration(std::string_view text) {
  auto bad = [&] {
    return Status::error("invalid duration '" + std::string(text) +
                         "' (expected e.g. 30, 1.5s, 250ms, 2m)");
  };
  double number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || !std::isfinite(number) || number < 0) return bad();
  std::string_view unit(end, text.data() + text.size() - end);
  double scale;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else {
    return bad();
  }
  double millis = number * scale;
  if (millis > 1e12) return bad();
  return Millis(static_cast<long long>(std::llround(millis)));
}

std::string format_duration(Millis d) {
  auto ms = d.count();
  if (ms % 1000 != 0) {
    if (ms < 1000) return std::to_string(ms) + "ms";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  return std::to_string(ms / 1000) + "s";
}

}  // namespace serverswap
