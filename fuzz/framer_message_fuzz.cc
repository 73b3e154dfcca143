// Fuzz target: bytes a peer writes to the control socket, through the line framer (split
// into reads of a fuzzed size, with a fuzzed maximum line) and the message decoder, then
// back through the encoder as the daemon's error replies do.
//
// Input: byte 0 picks the read size, byte 1 the maximum line; the rest is the stream.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/line_framer.h"
#include "protocol/message.h"

namespace {

using serverswap::protocol::decode;
using serverswap::protocol::encode;
using serverswap::protocol::error_reply;

void check(bool condition) {
  if (!condition) std::abort();
}

// What the daemon does with a line: decode it, and reply (echoing it) either way.
void handle_line(const std::string& line) {
  auto message = decode(line);
  if (!message.ok()) {
    std::string reply =
        encode(error_reply(message.status().message() + ": " + line.substr(0, 200)));
    check(reply.find('\n') == reply.size() - 1);
    return;
  }
  // An encoded message is one line that decodes again, to a value that encodes the same.
  std::string once = encode(error_reply("unknown message", message->whole));
  check(once.find('\n') == once.size() - 1);
  auto again = decode(std::string_view(once).substr(0, once.size() - 1));
  check(again.ok());
  check(encode(again->whole) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t read_size = data[0] % 32 + 1;
  size_t max_line = data[1] == 0 ? serverswap::protocol::kMaxLine : data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  serverswap::protocol::LineFramer framer(max_line);
  for (size_t pos = 0; pos < stream.size() && !framer.overflowed(); pos += read_size) {
    framer.append(stream.substr(pos, read_size));
    while (auto line = framer.next_line()) {
      check(line->size() < max_line);
      check(line->find('\n') == std::string::npos);
      handle_line(*line);
    }
    // Never more than one partial line (plus one read) is held.
    check(framer.buffered() < max_line + read_size);
  }
  return 0;
}
