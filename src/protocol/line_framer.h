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
// From peers of the daemon's own uid and root, who may deploy: a deploy carries the whole
// environment, which the kernel lets grow to 2 MiB and more (execve(2): a quarter of the
// stack limit), escaped as JSON.
inline constexpr size_t kMaxLineOwnUser = 4 * 1024 * 1024;

class LineFramer {
 public:
  // `max_line` other than kMaxLine is for tests and the fuzz target.
  explicit LineFramer(size_t max_line = kMaxLine) : max_line_(max_line) {}

  // The limit from now on (a Connection raises it once it knows the peer's uid).
  void set_max_line(size_t max_line) { max_line_ = max_line; }
  size_t max_line() const { return max_line_; }

  // Once overflowed, bytes are dropped: the buffer never grows past one maximal line.
  void append(std::string_view bytes) {
    if (!overflowed_) buffer_.append(bytes);
  }

  // The next complete line without its '\n', or nullopt when none is complete yet.
  // Once a line exceeds the maximum, overflowed() is true and no more lines come out.
  std::optional<std::string> next_line();

  bool overflowed() const { return overflowed_; }
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  static constexpr size_t kKeptCapacity = 4096;  // bytes of buffer kept while it is empty
  size_t max_line_;
  std::string buffer_;
  size_t consumed_ = 0;
  bool overflowed_ = false;
};

}  // namespace serverswap::protocol
