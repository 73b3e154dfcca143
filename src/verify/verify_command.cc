#include "verify/verify_command.h"

#include <stdlib.h>
#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>

#include "verify/address.h"
#include "verify/deploy.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::verify {
namespace {

// File descriptors beyond the connections: stdio, the loop's epoll and eventfd, a few spare.
constexpr rlim_t kSpareFds = 64;
// How often --progress-file is rewritten: often enough for a live display, rarely enough
// to cost the load thread nothing.
constexpr std::chrono::milliseconds kProgressInterval{100};

std::chrono::milliseconds seconds_to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

// Thousands of connections need more than the usual soft limit of 1024 descriptors; raise
// it towards the hard limit rather than failing every connect with EMFILE.
void ensure_fd_limit(int connections, std::ostream& err) {
  const rlim_t wanted = static_cast<rlim_t>(connections) + kSpareFds;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    err << "serverswap verify: setrlimit(RLIMIT_NOFILE): " << std::strerror(errno) << "\n";
  } else if (limit.rlim_cur < wanted) {
    err << "serverswap verify: warning: only " << limit.rlim_cur << " file descriptors for "
        << connections << " connections\n";
  }
}

std::optional<LoadOptions> load_options(const VerifyArgs& args, std::string* error) {
  const std::optional<HostPort> host_port = parse_host_port(args.address, error);
  if (!host_port) return std::nullopt;
  const std::optional<Mode> mode = parse_mode(args.mode);
  if (!mode) {
    *error = "bad mode \"" + args.mode + "\": expected close or keepalive";
    return std::nullopt;
  }
  if (!(args.duration_s > 0) || !(args.timeout_s > 0) || !(args.deploy_timeout_s > 0)) {
    *error = "durations and timeouts must be positive";
    return std::nullopt;
  }
  LoadOptions options;
  options.host = host_port->host;
  options.port = host_port->port;
  options.duration = seconds_to_ms(args.duration_s);
  options.connections = args.clients;
  options.mode = *mode;
  options.rate = args.rate;
  options.request_timeout = seconds_to_ms(args.timeout_s);
  options.path = args.path;
  return options;
}

// Replaces `path` atomically (write a sibling, rename), so a reader never sees half a line.
void write_progress(const std::string& path, uint64_t ok, uint64_t failed) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::trunc);
    file << ok << ' ' << failed << '\n';
    if (!file) return;  // best effort: progress is a display, never a result
  }
  std::rename(tmp.c_str(), path.c_str());
}

// Throttled to one write per kProgressInterval on the load thread.
std::function<void(uint64_t, uint64_t)> progress_writer(const std::string& path) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [path, last](uint64_t ok, uint64_t failed) {
    const auto now = std::chrono::steady_clock::now();
    if (now - *last < kProgressInterval) return;
    *last = now;
    write_progress(path, ok, failed);
  };
}

void print(const LoadReport& report, const std::optional<DeployResult>& deploy, bool passed,
           bool json, std::ostream& out) {
  if (json) {
    nlohmann::json document = to_json(report);
    if (deploy) document["deploy"] = deploy->to_json();
    document["passed"] = passed;
    out << document.dump() << "\n";
    return;
  }
  out << to_text(report);
  if (deploy) out << deploy->describe() << "\n";
  out << (passed ? "verify: PASS" : "verify: FAIL") << "\n";
}

}  // namespace

CLI::App* add_verify_command(CLI::App& app, VerifyArgs& args) {
  CLI::App* verify = app.add_subcommand(
      "verify",
      "Put HTTP load on ADDRESS, optionally deploy a third of the way in, and fail "
      "if any request failed");
  verify->add_option("--duration", args.duration_s, "Seconds of load")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  verify->add_option("--clients,-c", args.clients, "Concurrent connections")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  verify->add_option("--mode", args.mode, "A connection per request, or reused connections")
      ->check(CLI::IsMember({"close", "keepalive"}))
      ->capture_default_str();
  verify->add_option("--rate", args.rate, "Total requests per second; 0 = as fast as answered")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  verify->add_option("--timeout", args.timeout_s, "Seconds a request may take")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  verify->add_option("--path", args.path, "Request path")->capture_default_str();
  verify
      ->add_option("--deploy-timeout", args.deploy_timeout_s,
                   "Seconds the deploy command may take before it is killed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  verify->add_flag("--json", args.json, "Print the report as JSON, with the timeline");
  verify->add_option("--samples", args.samples_path,
                     "Write completed_ms,latency_us,outcome per request to this CSV file");
  verify->add_option("--progress-file", args.progress_path,
                     "Keep \"OK FAILED\" counts so far in this file (for live progress)");
  verify
      ->add_option("--deploy-at", args.deploy_at_s,
                   "Seconds into the run to deploy (default: a third)")
      ->check(CLI::NonNegativeNumber);
  verify->add_flag("--stop-after-deploy", args.stop_after_deploy,
                   "End the load as soon as the deploy command exits (long deploy loops)");
  verify->add_option("address", args.address, "host:port, [v6]:port or :port")->required();
  verify->add_option("deploy", args.deploy, "Deploy command, after --, run at 1/3 of the time");
  return verify;
}

int verify_main(const VerifyArgs& args, std::ostream& out, std::ostream& err) {
  std::string error;
  const std::optional<LoadOptions> options = load_options(args, &error);
  // Resolve before anything starts, so a typo never runs the deploy without load.
  if (!options || !resolve_endpoint(options->host, options->port, &error)) {
    err << "serverswap verify: " << error << "\n";
    return kVerifyFailed;
  }
  ensure_fd_limit(options->connections, err);
  // Opened before the load starts and written only by the load thread until join().
  std::ofstream samples;
  LoadOptions run_options = *options;
  if (!args.samples_path.empty()) {
    samples.open(args.samples_path, std::ios::trunc);
    if (!samples) {
      err << "serverswap verify: open " << args.samples_path << ": " << std::strerror(errno)
          << "\n";
      return kVerifyFailed;
    }
    samples << "completed_ms,latency_us,outcome\n";
    run_options.on_sample = [&samples](const RequestSample& sample) {
      samples << std::chrono::duration<double, std::milli>(sample.completed).count() << ','
              << sample.latency_us << ',' << sample.outcome << '\n';
    };
  }
  if (!args.progress_path.empty()) {
    write_progress(args.progress_path, 0, 0);
    run_options.on_progress = progress_writer(args.progress_path);
  }
  // Before the load thread exists: setenv is not safe against concurrent getenv.
  const auto start = std::chrono::steady_clock::now();  // CLOCK_MONOTONIC on Linux
  const auto start_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
  ::setenv("SERVERSWAP_VERIFY_START_NS", std::to_string(start_ns).c_str(), 1);
  LoadRun load(run_options);
  std::optional<DeployResult> deploy;
  if (!args.deploy.empty()) {
    const auto delay =
        args.deploy_at_s >= 0 ? seconds_to_ms(args.deploy_at_s) : options->duration / 3;
    deploy = run_deploy(args.deploy, delay, seconds_to_ms(args.deploy_timeout_s));
    if (args.stop_after_deploy) load.stop();
  }
  const LoadReport report = load.join();
  if (!args.progress_path.empty()) {
    write_progress(args.progress_path, report.counts.ok, report.counts.failed());
  }
  const bool passed = report.clean() && (!deploy || deploy->ok());
  print(report, deploy, passed, args.json, out);
  return passed ? kVerifyPassed : kVerifyFailed;
}

}  // namespace serverswap::verify
