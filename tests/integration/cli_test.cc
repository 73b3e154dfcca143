// The command line: a subcommand takes only its own options and arguments; anything else is
// a usage error (exit 2) that names the word and points at --help, before any daemon is
// reached, so a mistyped `stop --force` or `stop web` never stops every server.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "harness.h"

namespace serverswap::testing {
namespace {

TEST(Cli, ASubcommandWithAnArgumentItDoesNotTakeIsAUsageErrorAndChangesNothing) {
  DaemonUnderTest daemon;
  auto deploy = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  const std::vector<pid_t> servers = daemon.server_pids();
  const std::vector<std::vector<std::string>> mistakes = {
      {"status", "--jsn"},      {"status", "web", "extra"},   {"stop", "--force"},
      {"stop", "web", "extra"}, {"reload", "web", "extra"},   {"upgrade", "latest"},
      {"daemon", "extra"},      {"rollback", "web", "extra"}, {"rm", "web", "--force"}};
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

// --ready-timeout and the other daemon settings count when the daemon starts: a deploy to one
// that runs already says so, rather than ignoring them without a word; without them, no note.
TEST(Cli, ADaemonSettingGivenToARunningDaemonGetsANote) {
  DaemonUnderTest daemon;
  auto with = serverswap(
      daemon, {"--ready-timeout", "10s", "--settle", "2s", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(with.code, 0) << with.output;
  EXPECT_NE(with.output.find("note: --ready-timeout, --settle are daemon settings; the daemon "
                             "runs already, with its own"),
            std::string::npos)
      << with.output;
  auto without = serverswap(daemon, {HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(without.code, 0) << without.output;
  EXPECT_EQ(without.output.find("note:"), std::string::npos) << without.output;
}

// A limit of 0 would fail every deploy (or cut every grace short) at once: a usage error that
// names the flag, and no daemon is started.
TEST(Cli, AZeroTimeoutIsAUsageErrorThatNamesTheFlag) {
  char pattern[] = "/tmp/serverswap-cli-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string socket = std::string(pattern) + "/c.sock";
  for (const char* flag : {"--ready-timeout", "--takedown-timeout"}) {
    auto run = serverswap(socket, {flag, "0s", HELLO_SERVER_BIN, "127.0.0.1:0"});
    EXPECT_EQ(run.code, 2) << run.output;
    EXPECT_NE(run.output.find(std::string(flag) + " 0: must be more than 0"), std::string::npos)
        << run.output;
  }
  auto bad = serverswap(socket, {"--ready-timeout", "soon", "daemon"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--ready-timeout: invalid duration 'soon'"), std::string::npos)
      << bad.output;
  EXPECT_FALSE(std::filesystem::exists(socket));
  std::filesystem::remove_all(pattern);
}

// A deploy carries the whole environment: one larger than a server's 64 KiB line limit (here
// 100 KB in one variable) still deploys, the first time and the next.
TEST(Cli, ADeployWithAnEnvironmentOver64KiBGoesThrough) {
  DaemonUnderTest daemon;
  ASSERT_EQ(setenv("SERVERSWAP_TEST_BIG", std::string(100'000, 'x').c_str(), 1), 0);
  auto first = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  auto second = daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  unsetenv("SERVERSWAP_TEST_BIG");
  EXPECT_EQ(first.code, 0) << first.output;
  EXPECT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("(generation 2) is up"), std::string::npos) << second.output;
}

// A shell whose working directory was removed (a release tool replaced it) has no directory
// to give: the deploy is refused, saying so, and nothing starts. It once went without one,
// and the daemon ran `./server` from its own working directory.
TEST(Cli, ADeployFromARemovedWorkingDirectoryIsRefusedAndStartsNothing) {
  DaemonUnderTest daemon;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  const std::vector<pid_t> servers = daemon.server_pids();
  std::string gone = daemon.dir() + "/release";
  Child deploy({"/bin/sh", "-c",
                "mkdir \"$1\" && cd \"$1\" && rmdir \"$1\" && exec \"$2\" --socket \"$3\" "
                "-- ./server",
                "sh", gone, SERVERSWAP_BIN, daemon.socket()});
  EXPECT_EQ(deploy.wait(10s), 1) << deploy.output();
  EXPECT_NE(deploy.output().find("the working directory (" + gone +
                                 ") was removed while this shell was in it"),
            std::string::npos)
      << deploy.output();
  EXPECT_NE(deploy.output().find("nothing was deployed"), std::string::npos) << deploy.output();
  EXPECT_EQ(daemon.server_pids(), servers);
}

// A deploy that waits says, after 5 s, what its server has and lacks, rather than nothing
// until --ready-timeout: one that connected and asked for nothing, one that holds its
// --listen socket and never said it was ready.
TEST(Cli, ADeployThatWaitsSaysWhatItsServerHasAndLacks) {
  DaemonUnderTest daemon;
  Child connected({SERVERSWAP_BIN, "--socket", daemon.socket(), "--", FAULT_SERVER_BIN, "hang"});
  Child listening({SERVERSWAP_BIN, "--socket", daemon.socket(), "--listen", "127.0.0.1:0", "--",
                   "/bin/sleep", "600"});
  EXPECT_TRUE(connected.wait_for_output("still waiting after 5s: server ", 20s))
      << connected.output();
  EXPECT_NE(connected.output().find(") connected, holds nothing (no readyFor yet); has not sent "
                                    "serverUp"),
            std::string::npos)
      << connected.output();
  EXPECT_TRUE(listening.wait_for_output("still waiting after 5s: server ", 20s))
      << listening.output();
  EXPECT_NE(listening.output().find(") not connected, holds 127.0.0.1:0; has not said it is ready"),
            std::string::npos)
      << listening.output();
}

// A release directory behind a symbolic link: the command runs in the directory as the
// user named it (`current`, $PWD), not its resolved path, so a deploy of the same command
// from `current` after the link moved to the next release is the same command (it rolls
// the remembered --workers 2) and a reload restarts it in whatever `current` names then.
TEST(Cli, ADeployFromAReleaseLinkIsTheSameCommandAfterTheLinkMoves) {
  DaemonUnderTest daemon;
  const std::string root = daemon.dir() + "/app";
  for (const char* release : {"r1", "r2", "r3"})
    std::filesystem::create_directories(root + "/releases/" + release);
  const std::string current = root + "/current";
  auto point = [&](const char* release) {
    std::error_code ignored;
    std::filesystem::remove(current, ignored);
    std::filesystem::create_directory_symlink("releases/" + std::string(release), current);
  };
  auto deploy_from_current = [&](std::vector<std::string> options) {
    std::vector<std::string> argv = {"/bin/sh",      "-c",           "cd \"$0\" && exec \"$@\"",
                                     current,        SERVERSWAP_BIN, "--socket",
                                     daemon.socket()};
    argv.insert(argv.end(), options.begin(), options.end());
    for (const char* word : {"--", WORKER_SERVER_BIN, "127.0.0.1:0"}) argv.push_back(word);
    Child deploy(argv);
    EXPECT_EQ(deploy.wait(30s), 0) << deploy.output();
  };
  // Where each server up runs: its status cwd and its real working directory.
  auto where = [&] {
    std::vector<std::pair<std::string, std::string>> places;
    auto status = nlohmann::json::parse(serverswap(daemon, {"status", "--json"}).output);
    for (const auto& s : status["servers"]) {
      if (s["state"] != "up") continue;
      std::error_code ec;
      auto real = std::filesystem::read_symlink(
          "/proc/" + std::to_string(s["pid"].get<int>()) + "/cwd", ec);
      places.emplace_back(s["cwd"].get<std::string>(), real.string());
    }
    return places;
  };
  const std::string real = std::filesystem::canonical(root).string() + "/releases/";
  using Places = std::vector<std::pair<std::string, std::string>>;
  point("r1");
  deploy_from_current({"--workers", "2"});
  EXPECT_EQ(where(), (Places{{current, real + "r1"}, {current, real + "r1"}}));
  point("r2");
  deploy_from_current({});  // --workers 2 remembered: both roll
  EXPECT_EQ(where(), (Places{{current, real + "r2"}, {current, real + "r2"}}));
  point("r3");
  auto reload = serverswap(daemon, {"reload"});
  EXPECT_EQ(reload.code, 0) << reload.output;
  EXPECT_EQ(where(), (Places{{current, real + "r3"}, {current, real + "r3"}}));
}

}  // namespace
}  // namespace serverswap::testing