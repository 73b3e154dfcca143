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

// The line as written, newline included (for tests).
std::string format_log_line(std::string_view text, const nlohmann::ordered_json& fields);

}  // namespace serverswap
