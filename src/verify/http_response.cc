#include "verify/http_response.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace serverswap::verify {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr size_t kMaxChunkLine = 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated header value lists `token` (case-insensitively).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool parse_uint(std::string_view text, int base, uint64_t* out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

void ResponseParser::reset() {
  *this = ResponseParser();
}

ResponseParser::Result ResponseParser::fail(std::string message) {
  phase_ = Phase::kError;
  error_ = std::move(message);
  return Result::kError;
}

ResponseParser::Result ResponseParser::feed(std::string_view data) {
  if (!data.empty()) started_ = true;
  if (phase_ == Phase::kError) return Result::kError;
  if (phase_ == Phase::kDone) {
    return data.empty() ? Result::kDone : fail("unexpected bytes after the response");
  }
  while (!data.empty()) {
    const Result result = step(data);
    if (result == Result::kError) return result;
    if (result == Result::kDone) {
      if (!data.empty()) return fail("unexpected bytes after the response");
      return result;
    }
  }
  return phase_ == Phase::kDone ? Result::kDone : Result::kNeedMore;
}

ResponseParser::Result ResponseParser::step(std::string_view& data) {
  switch (phase_) {
    case Phase::kHead:
      return feed_head(data);
    case Phase::kBody:
    case Phase::kChunkData:
    case Phase::kUntilEof:
      return feed_body(data);
    case Phase::kChunkSize:
    case Phase::kChunkDataEnd:
    case Phase::kTrailer:
      return feed_chunk_line(data);
    case Phase::kDone:
      return Result::kDone;
    case Phase::kError:
      break;
  }
  return Result::kError;
}

ResponseParser::Result ResponseParser::eof() {
  switch (phase_) {
    case Phase::kDone:
    case Phase::kUntilEof:
      phase_ = Phase::kDone;
      keep_alive_ = false;
      return Result::kDone;
    case Phase::kError:
      return Result::kError;
    case Phase::kHead:
      return fail(started_ ? "connection closed in the response headers"
                           : "connection closed before any response");
    default:
      return fail("connection closed in the response body");
  }
}

ResponseParser::Result ResponseParser::feed_head(std::string_view& data) {
  // Search only the new bytes plus the three before them for the blank line.
  const size_t from = buffer_.size() >= 3 ? buffer_.size() - 3 : 0;
  const size_t take = std::min(data.size(), kMaxHeadBytes + 4 - buffer_.size());
  buffer_.append(data.substr(0, take));
  const size_t end = buffer_.find("\r\n\r\n", from);
  if (end == std::string::npos) {
    data.remove_prefix(take);
    if (buffer_.size() > kMaxHeadBytes) return fail("response headers longer than 64 KiB");
    return Result::kNeedMore;
  }
  // Give back the bytes after the head: they belong to the body.
  const size_t head_bytes_from_data = end + 4 - (buffer_.size() - take);
  data.remove_prefix(head_bytes_from_data);
  buffer_.resize(end);
  const std::string head = std::move(buffer_);
  buffer_.clear();
  return parse_head(head);
}

ResponseParser::Result ResponseParser::parse_head(std::string_view head) {
  size_t line_end = head.find(kCrlf);
  if (!parse_status_line(head.substr(0, line_end))) {
    return fail("malformed status line: " +
                std::string(head.substr(0, std::min<size_t>(line_end, 80))));
  }
  while (line_end != std::string_view::npos) {
    head.remove_prefix(line_end + kCrlf.size());
    line_end = head.find(kCrlf);
    if (!parse_header(head.substr(0, line_end))) return Result::kError;
  }
  if (status_ >= 100 && status_ < 200) {
    // An interim response (100 Continue): the real one follows on the same connection.
    const bool was_started = started_;
    reset();
    started_ = was_started;
    return Result::kNeedMore;
  }
  return start_body();
}

bool ResponseParser::parse_status_line(std::string_view line) {
  // "HTTP/1.1 200 OK": the reason phrase may be empty or absent.
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return false;
  if (!std::isdigit(static_cast<unsigned char>(line[7]))) return false;
  uint64_t status = 0;
  if (!parse_uint(line.substr(9, 3), 10, &status) || status < 100) return false;
  if (line.size() > 12 && line[12] != ' ') return false;
  status_ = static_cast<int>(status);
  minor_version_ = line[7] - '0';
  keep_alive_ = minor_version_ >= 1;  // HTTP/1.0 closes unless it says keep-alive
  return true;
}

bool ResponseParser::parse_header(std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    fail("malformed header line: " + std::string(line.substr(0, 80)));
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "content-length")) {
    uint64_t length = 0;
    if (!parse_uint(value, 10, &length) || (has_length_ && length != remaining_)) {
      fail("bad Content-Length: " + std::string(value.substr(0, 40)));
      return false;
    }
    has_length_ = true;
    remaining_ = length;
  } else if (iequals(name, "transfer-encoding")) {
    chunked_ = has_token(value, "chunked");
  } else if (iequals(name, "connection")) {
    if (has_token(value, "close")) keep_alive_ = false;
    if (has_token(value, "keep-alive") && minor_version_ == 0) keep_alive_ = true;
  }
  return true;
}

ResponseParser::Result ResponseParser::start_body() {
  // We only send GET, so 204 and 304 are the statuses that never carry a body.
  if (status_ == 204 || status_ == 304) {
    phase_ = Phase::kDone;
  } else if (chunked_) {
    phase_ = Phase::kChunkSize;  // chunked takes precedence over Content-Length (RFC 9112)
  } else if (has_length_) {
    phase_ = remaining_ == 0 ? Phase::kDone : Phase::kBody;
  } else {
    phase_ = Phase::kUntilEof;
    keep_alive_ = false;
  }
  return phase_ == Phase::kDone ? Result::kDone : Result::kNeedMore;
}

ResponseParser::Result ResponseParser::feed_body(std::string_view& data) {
  if (phase_ == Phase::kUntilEof) {
    data.remove_prefix(data.size());
    return Result::kNeedMore;
  }
  const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
  data.remove_prefix(take);
  remaining_ -= take;
  if (remaining_ > 0) return Result::kNeedMore;
  if (phase_ == Phase::kChunkData) {
    phase_ = Phase::kChunkDataEnd;
    return Result::kNeedMore;
  }
  phase_ = Phase::kDone;
  return Result::kDone;
}

bool ResponseParser::take_line(std::string_view& data, std::string_view* line) {
  const size_t newline = data.find('\n');
  buffer_.append(data.substr(0, newline == std::string_view::npos ? data.size() : newline + 1));
  data.remove_prefix(newline == std::string_view::npos ? data.size() : newline + 1);
  if (newline == std::string_view::npos) return false;
  *line = buffer_;
  line->remove_suffix(1);
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
  return true;
}

ResponseParser::Result ResponseParser::feed_chunk_line(std::string_view& data) {
  std::string_view line;
  if (!take_line(data, &line)) {
    return buffer_.size() > kMaxChunkLine ? fail("chunk line too long") : Result::kNeedMore;
  }
  Result result = Result::kNeedMore;
  if (phase_ == Phase::kChunkDataEnd) {
    if (!line.empty()) return fail("missing CRLF after chunk data");
    phase_ = Phase::kChunkSize;
  } else if (phase_ == Phase::kTrailer) {
    if (line.empty()) {
      phase_ = Phase::kDone;
      result = Result::kDone;
    }
  } else {
    const std::string_view size = trim(line.substr(0, line.find(';')));  // drop extensions
    if (!parse_uint(size, 16, &remaining_)) return fail("bad chunk size: " + std::string(size));
    phase_ = remaining_ == 0 ? Phase::kTrailer : Phase::kChunkData;
  }
  buffer_.clear();
  return result;
}

}  // namespace serverswap::verify
