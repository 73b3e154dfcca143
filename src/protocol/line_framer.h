// LineFramer: turns a byte stream into the protocol's '\n'-terminated lines, however the
// bytes were split across reads. Lines are at most kMaxLine bytes including the '\n'
// (docs/protocol.md, "Framing"). Not thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace serverswap::protocol {

inline constexpr size_t kMaxLine = 65536;

class LineFramer {
 public:
  void append(std::string_view bytes) { buffer_.append(bytes); }

  // The next complete line without its '\n', or nullopt when none is complete yet.
  // Once a line exceeds kMaxLine, overflowed() is true and no more lines come out.
  std::optional<std::string> next_line();

  bool overflowed() const { return overflowed_; }
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
  bool overflowed_ = false;
};

}  // namespace serverswap::protocol
