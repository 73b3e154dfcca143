#include "verify/report.h"

#include <cstdio>

namespace serverswap::verify {
namespace {

double ms(uint64_t micros) {
  return static_cast<double>(micros) / 1000.0;
}

nlohmann::json latency_json(const LatencyHistogram& latency) {
  return {{"p50", ms(latency.percentile(0.50))},
          {"p99", ms(latency.percentile(0.99))},
          {"p999", ms(latency.percentile(0.999))},
          {"max", ms(latency.max())}};
}

std::string format(const char* format, auto... args) {
  char line[256];
  std::snprintf(line, sizeof line, format, args...);
  return line;
}

auto ull(uint64_t value) {
  return static_cast<unsigned long long>(value);
}

}  // namespace

nlohmann::json to_json(const LoadReport& report) {
  const Counts& c = report.counts;
  nlohmann::json json = {
      {"target", report.target},
      {"mode", mode_name(report.mode)},
      {"connections", report.connections},
      {"target_rate", report.target_rate},
      {"duration_ms", std::chrono::duration<double, std::milli>(report.elapsed).count()},
      {"started_monotonic_ns", report.started_monotonic_ns},
      {"requests", c.total()},
      {"ok", c.ok},
      {"failed", c.failed()},
      {"failures",
       {{"refused", c.refused},
        {"reset", c.reset},
        {"timeout", c.timeout},
        {"other_status", c.other_status},
        {"other_error", c.other_error}}},
      {"unfinished", report.unfinished},
      {"achieved_rate", report.achieved_rate()},
      {"latency_ms", latency_json(report.latency_us)},
      {"longest_outage_ms", report.longest_outage_ms()},
      {"errors", report.errors},
      {"timeline",
       {{"bucket_ms", Timeline::kBucket.count()},
        {"ok", report.timeline.ok()},
        {"failed", report.timeline.failed()}}},
  };
  if (!report.setup_error.empty()) json["setup_error"] = report.setup_error;
  return json;
}

std::string to_text(const LoadReport& report) {
  if (!report.setup_error.empty()) return "load not run: " + report.setup_error + "\n";
  const Counts& c = report.counts;
  const LatencyHistogram& latency = report.latency_us;
  const double seconds = std::chrono::duration<double>(report.elapsed).count();
  std::string text = format("target %s, %s, %d connections, ", report.target.c_str(),
                            mode_name(report.mode), report.connections);
  text += report.target_rate > 0 ? format("%.0f req/s target\n", report.target_rate)
                                 : std::string("closed loop\n");
  text += format("requests %llu in %.2f s (%.0f req/s), ok %llu, failed %llu, unfinished %llu\n",
                 ull(c.total()), seconds, report.achieved_rate(), ull(c.ok), ull(c.failed()),
                 ull(report.unfinished));
  text += format(
      "failures: refused %llu, reset %llu, timeout %llu, other status %llu, "
      "other error %llu\n",
      ull(c.refused), ull(c.reset), ull(c.timeout), ull(c.other_status), ull(c.other_error));
  text +=
      format("latency ms: p50 %.3f, p99 %.3f, p99.9 %.3f, max %.3f\n", ms(latency.percentile(0.50)),
             ms(latency.percentile(0.99)), ms(latency.percentile(0.999)), ms(latency.max()));
  text += format("longest outage: %llu ms (10 ms buckets)\n", ull(report.longest_outage_ms()));
  for (const auto& [error, count] : report.errors) {
    text += "  " + std::to_string(count) + " x " + error + "\n";
  }
  return text;
}

}  // namespace serverswap::verify
