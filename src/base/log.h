// Log lines: one line per event on stderr. Two formats, chosen once at startup:
//  text: "2026-11-25T11:50:01.123Z serverswap[42]: text"
//  json: {"time":"2026-11-25T11:50:01.123Z","pid":42,"msg":"text", ...fields}
// Thread-safe (one write(2) per line).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace serverswap {

enum class LogFormat { kText, kJson };

// "text" or "json"; false on anything else.
bool parse_log_format(std::string_view name, LogFormat* out);
void set_log_format(LogFormat format);
// Muted, log_line and log_event write nothing: for the simulator, which runs the supervisor
// through hundreds of thousands of schedules. Not for production use.
void set_log_muted(bool muted);
bool log_muted();

// UTC wall-clock time with milliseconds, ISO 8601: "2026-11-25T11:50:01.123Z".
std::string timestamp_now();

void log_line(std::string_view text);

// A line about an event: in json format `fields` (an object: kind, server, deploy ...) are
// added beside "msg", so that scripts need not parse the text. In text format the same as
// log_line(text).
void log_event(std::string_view text, const nlohmann::ordered_json& fields);

// Writes a line format_log_line() made (for a caller that weighs it first: a server's
// output, rate-limited by the bytes it adds to the log). Nothing when muted.
void write_log_line(const std::string& formatted);

// Appends `text` to `line` as the text format writes it: "\n" for a newline, "\xNN" for
// other ASCII controls (tab passes) and for each byte that starts no well-formed UTF-8
// sequence, "\u{NNNN}" for the C1 controls (U+0080-U+009F), U+2028, U+2029, the
// bidirectional controls (U+202A-U+202E, U+2066-U+2069) and marks (U+200E, U+200F,
// U+061C) and U+FEFF; everything else as it is.
void append_printable(std::string& line, std::string_view text);
// `text` as append_printable writes it: for every place that shows a peer's text to a
// reader, the log and the command line's terminal alike (docs/security.md, "drive the
// terminal of whoever deploys"). Pure; thread-safe.
std::string printable(std::string_view text);

// Text a peer chose (a server's fail reason, STATUS=, a resource name) is cut to this many
// bytes in a log line: a line says what happened, it does not carry 64 KiB of payload.
inline constexpr size_t kMaxPeerTextInLog = 512;

// `text` when it is at most `max` bytes; else its first `max` bytes or fewer (never a part
// of a UTF-8 sequence) and "…(N bytes)", N the size of the whole.
std::string clip_for_log(std::string_view text, size_t max = kMaxPeerTextInLog);

// The line as written, newline included (for tests).
std::string format_log_line(std::string_view text, const nlohmann::ordered_json& fields);

}  // namespace serverswap
