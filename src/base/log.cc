#include "base/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace serverswap {
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

void log_line(std::string_view text) {
  std::string line = timestamp_now() + " serverswap[" + std::to_string(getpid()) + "]: ";
  line.append(text);
  line.push_back('\n');
  // One write so that lines from several threads or processes do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace serverswap
