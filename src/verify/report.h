// Printing a LoadReport: a human-readable summary and a JSON document (with the timeline)
// for scripts and the benchmark. Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "verify/load.h"

namespace serverswap::verify {

// {"target", "mode", "connections", "target_rate", "duration_ms", "requests", "ok",
//  "failed", "failures": {"refused", "reset", "timeout", "other_status", "other_error"},
//  "unfinished", "achieved_rate", "latency_ms": {"p50", "p99", "p999", "max"},
//  "longest_outage_ms", "errors": {text: count}, "setup_error" (when set),
//  "timeline": {"bucket_ms": 10, "ok": [...], "failed": [...]}}
nlohmann::json to_json(const LoadReport& report);

// A few lines: target and mode, counts, rate, latency percentiles, outage, errors.
std::string to_text(const LoadReport& report);

}  // namespace serverswap::verify
