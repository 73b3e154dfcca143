#include "protocol/line_framer.h"

namespace serverswap::protocol {

std::optional<std::string> LineFramer::next_line() {
  if (overflowed_) return std::nullopt;
  size_t newline = buffer_.find('\n', consumed_);
  if (newline == std::string::npos) {
    if (buffered() >= max_line_) overflowed_ = true;
    // Compact so the buffer never holds more than one partial line.
    buffer_.erase(0, consumed_);
    consumed_ = 0;
    // A long line (a deploy's environment) must not keep its capacity for the life of a
    // connection that then sends only short ones.
    if (buffer_.empty() && buffer_.capacity() > kKeptCapacity) std::string().swap(buffer_);
    return std::nullopt;
  }
  if (newline - consumed_ + 1 > max_line_) {
    overflowed_ = true;
    return std::nullopt;
  }
  std::string line = buffer_.substr(consumed_, newline - consumed_);
  consumed_ = newline + 1;
  return line;
}

}  // namespace serverswap::protocol
