// Bytes that are not UTF-8 on a UTF-8 wire (docs/protocol.md, "Framing"). argv, cwd and the
// environment are bytes to the kernel; JSON strings must be UTF-8. A string that is not valid
// UTF-8 travels as {"base64": "<standard base64 of its bytes>"} in its place, so that a
// deploy request and state.json carry it unchanged. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "protocol/message.h"

namespace serverswap::protocol {

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at
// most U+10FFFF): what nlohmann's dump() accepts without throwing.
bool is_valid_utf8(std::string_view bytes);

// RFC 4648 standard alphabet, with '=' padding.
std::string base64_encode(std::string_view bytes);
// Strict: only the standard alphabet, length a multiple of 4, padding only at the end,
// unused bits zero (so that each byte string has one encoding). An error otherwise.
Result<std::string> base64_decode(std::string_view text);

// A string that may hold any bytes: itself when valid UTF-8, else {"base64": ...}.
Json encode_bytes(const std::string& bytes);
// Either form back to its bytes. `field` names the value in the error ("deploy.cwd must be a
// string or {\"base64\": string}"). A NUL byte is an error: no such byte reaches execve.
Result<std::string> decode_bytes(const Json& value, const std::string& field);

// KEY=VALUE entries: those that are valid UTF-8 into body["env"] as {"KEY": "VALUE"}, the
// others into body["envBase64"] as base64 of the whole entry. Entries without '=' are
// skipped (execve would ignore them too). Neither field is added when it would be empty,
// except "env", which is always present.
void encode_env(const std::vector<std::string>& env, Json& body);

}  // namespace serverswap::protocol
