#include "verify/verify_command.h"

#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "verify/address.h"
#include "verify/deploy.h"
#include "verify/load.h"
#include "verify/report.h"

namespace serverswap::verify {
namespace {

// File descriptors beyond the connections: stdio, the loop's epoll and eventfd, a few spare.
constexpr rlim_t kSpareFds = 64;

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
  LoadRun load(*options);
  std::optional<DeployResult> deploy;
  if (!args.deploy.empty()) {
    deploy = run_deploy(args.deploy, options->duration / 3, seconds_to_ms(args.deploy_timeout_s));
  }
  const LoadReport report = load.join();
  const bool passed = report.clean() && (!deploy || deploy->ok());
  print(report, deploy, passed, args.json, out);
  return passed ? kVerifyPassed : kVerifyFailed;
}

}  // namespace serverswap::verify
