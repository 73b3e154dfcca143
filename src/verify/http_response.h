// An incremental parser for one HTTP/1.x response, fed with bytes as they arrive.
//
// It knows just enough HTTP to tell a complete response from a cut-off one: the status
// line, Content-Length, chunked transfer coding, a body delimited by connection close,
// and whether the server keeps the connection open. It is not a general HTTP client.
// Thread-safety: none; one parser per connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace serverswap::verify {

class ResponseParser {
 public:
  enum class Result { kNeedMore, kDone, kError };

  // Limit on the status line plus headers, so a misbehaving server cannot make a client
  // of thousands of connections buffer without bound.
  static constexpr size_t kMaxHeadBytes = 64 * 1024;

  // Forgets everything; ready for the next response on the same connection.
  void reset();
  // Consumes bytes. Bytes after the end of the response are an error: this client never
  // pipelines, so a well-behaved server has nothing more to send.
  Result feed(std::string_view data);
  // The peer closed the connection: completes a body delimited by close, otherwise the
  // response was cut off (kError; error() says where).
  Result eof();

  bool started() const { return started_; }
  int status() const { return status_; }
  // False when the server said `Connection: close` (or is HTTP/1.0 without keep-alive,
  // or delimits the body by closing): the connection must not be reused.
  bool keep_alive() const { return keep_alive_; }
  const std::string& error() const { return error_; }

 private:
  enum class Phase {
    kHead,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailer,
    kUntilEof,
    kDone,
    kError
  };

  Result step(std::string_view& data);
  Result feed_head(std::string_view& data);
  Result parse_head(std::string_view head);
  bool parse_status_line(std::string_view line);
  bool parse_header(std::string_view line);
  Result start_body();
  Result feed_body(std::string_view& data);
  Result feed_chunk_line(std::string_view& data);
  bool take_line(std::string_view& data, std::string_view* line);
  Result fail(std::string message);

  Phase phase_ = Phase::kHead;
  bool started_ = false;
  std::string buffer_;  // head or chunk-size line so far
  int status_ = 0;
  int minor_version_ = 1;
  bool keep_alive_ = true;
  bool chunked_ = false;
  bool has_length_ = false;
  uint64_t remaining_ = 0;
  std::string error_;
};

}  // namespace serverswap::verify
