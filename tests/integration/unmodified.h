// Helpers for the tests of unmodified programs (listen_test, notify_test, third_party_test).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace serverswap::testing {

// `serverswap --socket S [daemon.deploy_options] OPTIONS... -- COMMAND...`, run to completion
// (bounded).
inline DaemonUnderTest::Outcome deploy_with(DaemonUnderTest& daemon,
                                            const std::vector<std::string>& options,
                                            const std::vector<std::string>& command,
                                            Millis timeout = 30s) {
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  argv.insert(argv.end(), daemon.deploy_options.begin(), daemon.deploy_options.end());
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  Child child(argv);
  auto code = child.wait(timeout);
  return {code.value_or(-1), child.output()};
}

// The value of "env NAME=value" in a listen_probe report.
inline std::string report_env(const std::string& report, const std::string& name) {
  std::string key = "env " + name + "=";
  size_t at = report.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return report.substr(at, report.find('\n', at) - at);
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace serverswap::testing
