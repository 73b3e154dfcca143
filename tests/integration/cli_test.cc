// The command line: a subcommand takes only its own options and arguments; anything else is
// a usage error (exit 2) that names the word and points at --help, before any daemon is
// reached, so a mistyped `stop --force` or `stop web` never stops every server.
#include <gtest/gtest.h>

#include "harness.h"

namespace serverswap::testing {
namespace {

TEST(Cli, ASubcommandWithAnArgumentItDoesNotTakeIsAUsageErrorAndChangesNothing) {
  DaemonUnderTest daemon;
  auto deploy = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  const std::vector<pid_t> servers = daemon.server_pids();
  const std::vector<std::vector<std::string>> mistakes = {
      {"status", "--jsn"}, {"status", "--json", "extra"}, {"stop", "--force"}, {"stop", "web"},
      {"reload", "now"},   {"upgrade", "latest"},         {"daemon", "extra"}};
  for (const auto& args : mistakes) {
    auto run = serverswap(daemon, args);
    EXPECT_EQ(run.code, 2) << args[0] << " " << args.back() << ": " << run.output;
    EXPECT_NE(
        run.output.find("serverswap " + args[0] + ": unexpected argument '" + args.back() + "'"),
        std::string::npos)
        << run.output;
    EXPECT_NE(run.output.find("see serverswap " + args[0] + " --help"), std::string::npos)
        << run.output;
  }
  // Nothing was stopped, reloaded or upgraded.
  EXPECT_EQ(daemon.server_pids(), servers);
  EXPECT_EQ(daemon.process().wait(std::chrono::milliseconds(0)), std::nullopt);
  // The same subcommands, spelled right, still work.
  auto status = serverswap(daemon, {"status", "--json"});
  EXPECT_EQ(status.code, 0) << status.output;
}

}  // namespace
}  // namespace serverswap::testing
