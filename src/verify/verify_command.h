// `serverswap verify`: put HTTP load on an address for a while, optionally run a deploy
// command a third of the way in, and say whether any request failed.
//
//   serverswap verify [--duration S] [--clients N] [--mode close|keepalive] [--rate R]
//                     [--timeout S] [--path P] [--deploy-timeout S] [--json]
//                     [--samples FILE] [--progress-file FILE] [--deploy-at S]
//                     [--stop-after-deploy]
//                     ADDRESS [-- DEPLOY COMMAND...]
//
// ADDRESS is host:port, [v6]:port, or :port (meaning 127.0.0.1).
// The deploy command finds in SERVERSWAP_VERIFY_START_NS the run's start on CLOCK_MONOTONIC
// in nanoseconds (within a millisecond), so that it can time its actions from the start of
// the load rather than from its own, possibly slow, start.
// Exit codes: 0 when every request succeeded and the deploy command (if any) exited 0;
// 1 otherwise (a failed request, a failed or timed-out deploy, a bad address, a load that
// could not run). Usage errors are CLI11's to report.
//
// Wiring in the CLI (the subcommand owns its options; main only dispatches):
//   serverswap::verify::VerifyArgs verify_args;
//   CLI::App* verify = serverswap::verify::add_verify_command(app, verify_args);
//   CLI11_PARSE(app, argc, argv);
//   if (verify->parsed()) return serverswap::verify::verify_main(verify_args);
//
// Thread-safety: verify_main blocks the calling thread for the duration (and the deploy);
// the load runs on a thread of its own.
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <vector>

namespace serverswap::verify {

inline constexpr int kVerifyPassed = 0;
inline constexpr int kVerifyFailed = 1;

struct VerifyArgs {
  std::string address;
  double duration_s = 10;
  int clients = 50;
  std::string mode = "keepalive";
  double rate = 0;  // 0 = closed loop
  double timeout_s = 2;
  std::string path = "/";
  bool json = false;
  // When set, one CSV line per judged request: completed_ms,latency_us,outcome.
  std::string samples_path;
  // When set, replaced about every 100 ms with "OK FAILED\n" (counts so far), so that a
  // deploy script can print live progress.
  std::string progress_path;
  // The deploy command is killed (SIGTERM, then SIGKILL 5 s later) if it runs longer.
  double deploy_timeout_s = 300;
  std::vector<std::string> deploy;  // argv, searched in PATH; empty = no deploy
  double deploy_at_s = -1;          // seconds into the run; negative = a third of the way
  bool stop_after_deploy = false;   // end the load as soon as the deploy command exits
};

// Adds the `verify` subcommand, whose options fill *args (which must outlive parsing).
CLI::App* add_verify_command(CLI::App& app, VerifyArgs& args);

// Runs the verification and prints the report to `out` (text, or JSON with --json);
// diagnostics go to `err`. Returns kVerifyPassed or kVerifyFailed.
int verify_main(const VerifyArgs& args, std::ostream& out = std::cout,
                std::ostream& err = std::cerr);

}  // namespace serverswap::verify
