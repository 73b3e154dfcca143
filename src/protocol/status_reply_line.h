// The daemon's `status` reply as its protocol line, written field by field (JsonWriter)
// rather than through StatusReply::encode()'s JSON tree: with 1,000 apps the tree was most
// of the daemon's CPU per `status` (issue 13). The text is byte for byte
// encode(reply.encode()) (tested: status_reply_line_test.cc, fuzz/status_text_fuzz.cc),
// so the fields and their order are StatusReply::encode()'s, docs/protocol.md's.
#pragma once

#include <string>

#include "protocol/control_replies.h"

namespace serverswap::protocol {

// One line, '\n' included; bytes that are not UTF-8 replaced as encode() replaces them.
std::string status_reply_line(const StatusReply& reply);

}  // namespace serverswap::protocol
