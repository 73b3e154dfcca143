// True outcomes (issue 13): every message the daemon or the CLI prints is true at the moment
// it is printed. Each test reproduces one kind of untrue message found by attacking the
// daemon with real processes, and fails without its fix. A few seconds each.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

// `serverswap --socket S OPTIONS... -- COMMAND...` with `env` added, not waited for.
std::unique_ptr<Child> start_with_env(DaemonUnderTest& daemon,
                                      const std::vector<std::string>& options,
                                      const std::vector<std::string>& command,
                                      const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return std::make_unique<Child>(argv, env);
}

// A failed rolling deploy of the same command line (argv and working directory) as the
// old version's: what starts again at a replaced index runs the files on disk now (after an
// in-place update, the failed release's). It used to say "the old version keeps serving and
// is started again as worker 0"; now "the same command is started again as worker 0".
TEST(Outcomes, AFailedRollOfTheSameCommandLineSaysTheSameCommandIsStartedAgain) {
  DaemonUnderTest daemon;
  const std::vector<std::string> command = {WORKER_SERVER_BIN, "unix:" + daemon.dir() + "/w.sock"};
  auto first = start_with_env(daemon, {"--workers", "2"}, command, {{"VERSION", "v1"}});
  ASSERT_EQ(first->wait(30s), 0) << first->output();
  // Worker 0 of the roll comes up and replaces old worker 0; worker 1 fails.
  auto roll = start_with_env(daemon, {"--workers", "2"}, command,
                             {{"VERSION", "v2"}, {"WORKER_FAIL", "1"}});
  ASSERT_EQ(roll->wait(30s), 1) << roll->output();
  const std::string out = roll->output();
  EXPECT_TRUE(contains(out, "worker 1 of 2 failed")) << out;
  EXPECT_TRUE(contains(out, "the same command is started again as worker 0")) << out;
  EXPECT_TRUE(contains(out, "it runs the files on disk now")) << out;
  EXPECT_FALSE(contains(out, "old version keeps serving and is started again")) << out;
  // What was started again is the restart of a loop with no crash yet: `status` said it had
  // "crashed 0 times in 23h12m" (counted from the clock's epoch).
  auto status = serverswap(daemon, {"status"});
  ASSERT_EQ(status.code, 0) << status.output;
  EXPECT_FALSE(contains(status.output, "crashed 0 times")) << status.output;
}

// The start again of an old version's command that a failed roll could not spawn (its program
// is gone) was logged "start of the old version of '…' crashed once": it is neither known to
// be the old version nor did it crash. It is logged as what happened.
TEST(Outcomes, AnOldCommandAFailedRollCannotStartIsNotCalledTheOldVersion) {
  DaemonUnderTest daemon;
  const std::string resource = "unix:" + daemon.dir() + "/w.sock";
  const std::string old_program = daemon.dir() + "/old_worker_server";
  std::filesystem::copy_file(WORKER_SERVER_BIN, old_program);
  auto first =
      start_with_env(daemon, {"--name", "w", "--workers", "2"}, {old_program, resource}, {});
  ASSERT_EQ(first->wait(30s), 0) << first->output();
  std::filesystem::remove(old_program);  // its servers run on; it cannot be started again
  auto roll = start_with_env(daemon, {"--name", "w", "--workers", "2"},
                             {WORKER_SERVER_BIN, resource}, {{"WORKER_FAIL", "1"}});
  ASSERT_EQ(roll->wait(30s), 1) << roll->output();
  EXPECT_TRUE(contains(roll->output(),
                       "the old version keeps serving and is started again as "
                       "worker 0"))
      << roll->output();
  ASSERT_TRUE(daemon.process().wait_for_output("could not start again '" + old_program, 10s))
      << daemon.process().output();
  EXPECT_FALSE(contains(daemon.process().output(), "start of the old version"))
      << daemon.process().output();
  EXPECT_TRUE(contains(daemon.process().output(), "(counted as a crash: crashed once"))
      << daemon.process().output();
}

// `serverswap stop APP` while serverswap-deploy of the app is attached: it used to be told
// "after a newer deploy replaced it"; it hears who stopped its server, and exits 0.
TEST(Outcomes, AnAttachedDeployHearsThatStopAppStoppedItsServer) {
  DaemonUnderTest daemon;
  daemon.deploy_options = {"--name", "web"};
  auto attached = daemon.start_deploy({HELLO_SERVER_BIN, "127.0.0.1:0"},
                                      std::string(SERVERSWAP_BIN) + "-deploy");
  ASSERT_TRUE(attached->wait_for_output("deployed:", 10s)) << attached->output();
  auto stopped = serverswap(daemon, {"stop", "web"});
  ASSERT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_EQ(attached->wait(10s), 0) << attached->output();
  EXPECT_TRUE(contains(attached->output(), ": stopped by serverswap stop web"))
      << attached->output();
  EXPECT_FALSE(contains(attached->output(), "newer deploy")) << attached->output();
}

// `stop APP` while a deploy of the app is in flight: it was refused ("a deploy of app web is
// in flight"), so a hanging release could not be stopped alone. Now that deploy fails saying
// who stopped it (and nothing about servers that "keep serving"), and every server of the
// app goes, the old one and the starting one; another app is untouched.
TEST(Outcomes, StopAppDuringItsDeployFailsThatDeployAndStopsEveryServerOfTheApp) {
  DaemonUnderTest daemon({"--takedown-timeout", "3s", "--ready-timeout", "30s"});
  auto other = deploy_with(daemon, {"--name", "api"},
                           {HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/api.sock"});
  ASSERT_EQ(other.code, 0) << other.output;
  auto web = deploy_with(daemon, {"--name", "web"}, {HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(web.code, 0) << web.output;
  daemon.deploy_options = {"--name", "web"};
  auto hanging = daemon.start_deploy({FAULT_SERVER_BIN, "hang", "127.0.0.1:0"});
  ASSERT_TRUE(hanging->wait_for_output("connected", 10s)) << hanging->output();

  auto stopped = serverswap(daemon, {"stop", "web"});
  EXPECT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "app web stopped: 2 servers exited")) << stopped.output;
  EXPECT_EQ(hanging->wait(10s), 1) << hanging->output();
  EXPECT_TRUE(contains(hanging->output(), "deploy failed: stopped by serverswap stop web"))
      << hanging->output();
  EXPECT_FALSE(contains(hanging->output(), "keep serving")) << hanging->output();
  auto servers = daemon.status()["servers"];
  ASSERT_EQ(servers.size(), 1u) << servers.dump();
  EXPECT_EQ(servers[0]["app"], "api");
}

// The same for a rolling deploy of the app in flight: the roll fails saying who stopped it,
// starts nothing again (the app is being stopped), and every worker, old and new, goes.
TEST(Outcomes, StopAppDuringItsRollFailsTheRollAndStopsEveryWorker) {
  DaemonUnderTest daemon({"--takedown-timeout", "2s", "--ready-timeout", "30s"});
  const std::string resource = "unix:" + daemon.dir() + "/w.sock";
  auto first =
      deploy_with(daemon, {"--name", "w", "--workers", "2"}, {WORKER_SERVER_BIN, resource});
  ASSERT_EQ(first.code, 0) << first.output;
  daemon.deploy_options = {"--name", "w", "--workers", "2"};
  auto roll = daemon.start_deploy({FAULT_SERVER_BIN, "hang", resource});
  ASSERT_TRUE(roll->wait_for_output("connected", 10s)) << roll->output();
  auto stopped = serverswap(daemon, {"stop", "w"});
  EXPECT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "app w stopped: 3 servers exited")) << stopped.output;
  EXPECT_EQ(roll->wait(10s), 1) << roll->output();
  EXPECT_TRUE(contains(roll->output(), "deploy failed: stopped by serverswap stop w"))
      << roll->output();
  EXPECT_FALSE(contains(roll->output(), "started again")) << roll->output();
  EXPECT_TRUE(daemon.server_pids().empty()) << daemon.status().dump();
}

// serverswap-deploy attached when the daemon stops (`serverswap stop`): it was told "after a
// newer deploy replaced it"; it hears that the daemon stopped its server.
TEST(Outcomes, AnAttachedDeployHearsThatTheDaemonStoppedItsServer) {
  DaemonUnderTest daemon;
  auto attached = daemon.start_deploy({HELLO_SERVER_BIN, "127.0.0.1:0"},
                                      std::string(SERVERSWAP_BIN) + "-deploy");
  ASSERT_TRUE(attached->wait_for_output("deployed:", 10s)) << attached->output();
  auto stopped = serverswap(daemon, {"stop"});
  ASSERT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_EQ(attached->wait(10s), 0) << attached->output();
  EXPECT_TRUE(contains(attached->output(), ": stopped by the daemon, which is stopping"))
      << attached->output();
  EXPECT_FALSE(contains(attached->output(), "newer deploy")) << attached->output();
}

// `status --json APP` listed every app's sockets under "daemon"."resources" as if they were
// the app's: only those its servers hold are left.
TEST(Outcomes, StatusJsonOfAnAppListsOnlyThatAppsSockets) {
  DaemonUnderTest daemon;
  const std::string web_socket = "unix:" + daemon.dir() + "/web.sock";
  const std::string api_socket = "unix:" + daemon.dir() + "/api.sock";
  ASSERT_EQ(deploy_with(daemon, {"--name", "web"}, {HELLO_SERVER_BIN, web_socket}).code, 0);
  ASSERT_EQ(deploy_with(daemon, {"--name", "api"}, {HELLO_SERVER_BIN, api_socket}).code, 0);
  auto run = serverswap(daemon, {"status", "--json", "web"});
  ASSERT_EQ(run.code, 0) << run.output;
  auto json = nlohmann::json::parse(run.output);
  std::vector<std::string> names;
  for (const auto& r : json["daemon"]["resources"]) names.push_back(r["name"]);
  EXPECT_EQ(names, std::vector<std::string>{web_socket}) << run.output;
  ASSERT_EQ(json["servers"].size(), 1u) << run.output;
  // Everything is still there without an app.
  EXPECT_EQ(daemon.status()["daemon"]["resources"].size(), 2u);
}

// A readyFor the daemon refuses is named once: the C++ client added "readyFor X: " to the
// daemon's text, which names it already, and a server that sent fail with it after it was up
// was logged "sent fail after it was up (ignored): readyFor X: readyFor X: app 'web' serves it".
TEST(Outcomes, ARefusedReadyForIsNamedOnce) {
  DaemonUnderTest daemon({"--takedown-timeout", "1s"});  // fault_server ignores takeDown
  const std::string web_socket = "unix:" + daemon.dir() + "/web.sock";
  ASSERT_EQ(deploy_with(daemon, {"--name", "web"}, {HELLO_SERVER_BIN, web_socket}).code, 0);
  auto api = deploy_with(
      daemon, {"--name", "api"},
      {FAULT_SERVER_BIN, "claim-after-up", "unix:" + daemon.dir() + "/api.sock", web_socket});
  EXPECT_EQ(api.code, 0) << api.output;
  const std::string said =
      "sent fail after it was up (ignored): readyFor " + web_socket + ": app 'web' serves it";
  ASSERT_TRUE(daemon.process().wait_for_output(said, 10s)) << daemon.process().output();
  EXPECT_EQ(count_of(daemon.process().output(), "readyFor " + web_socket + ": readyFor "), 0u)
      << daemon.process().output();
}

// A server that asks twice for what it holds: the deploy hears it (event askedAgain), so
// that while it waits it can say "asked for X twice".
TEST(Outcomes, ADeploySeesItsServerAskForAResourceTwice) {
  DaemonUnderTest daemon;
  const std::string resource = "unix:" + daemon.dir() + "/twice.sock";
  auto deploy = daemon.deploy({FAULT_SERVER_BIN, "claim", resource, resource});
  EXPECT_EQ(deploy.code, 0) << deploy.output;
  EXPECT_EQ(
      count_of(deploy.output, "asked again for what it holds (readyFor " + resource + " twice)"),
      1u)
      << deploy.output;
}

}  // namespace
}  // namespace serverswap::testing
