// Apps (docs/architecture.md, "Apps"), with real servers: deploys of one app are versions of
// each other whatever their arguments or resources, an app keeps its settings across
// versions, and one app cannot take another's resource unless its deploy says --replace.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

std::vector<std::string> apps_of(DaemonUnderTest& daemon) {
  std::vector<std::string> apps;
  nlohmann::json status = daemon.status();  // kept: a range over a temporary's member dangles
  for (const auto& s : status["servers"]) apps.push_back(s["app"].get<std::string>());
  return apps;
}

// The issue's "same command moved to a new port": both releases stayed up ("nothing to
// replace"). Now the new release of hello_server replaces the old one, on its old socket too.
TEST(Apps, TheSameProgramMovedToAnotherSocketReplacesTheOldRelease) {
  DaemonUnderTest daemon;
  auto first = daemon.deploy({HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/a.sock"});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t old_pid = daemon.server_pids().at(0);
  auto moved = daemon.deploy({HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/b.sock"});
  EXPECT_EQ(moved.code, 0) << moved.output;
  EXPECT_TRUE(contains(moved.output, "replaced pid " + std::to_string(old_pid))) << moved.output;
  EXPECT_TRUE(contains(moved.output, "a newer version of app hello_server")) << moved.output;
  EXPECT_EQ(daemon.server_pids().size(), 1u) << daemon.status().dump();
  EXPECT_EQ(apps_of(daemon), std::vector<std::string>{"hello_server"});
}

// Changed arguments are a new version of the app, not a new app: it keeps the app's
// remembered --workers (and the rest of its settings).
TEST(Apps, ChangedArgumentsKeepTheAppsSettings) {
  DaemonUnderTest daemon;
  const std::string resource = "unix:" + daemon.dir() + "/web.sock";
  auto first = deploy_with(daemon, {"--workers", "2"}, {HELLO_SERVER_BIN, resource});
  ASSERT_EQ(first.code, 0) << first.output;
  auto changed = daemon.deploy({HELLO_SERVER_BIN, resource, "--body", "v2"});
  EXPECT_EQ(changed.code, 0) << changed.output;
  auto servers = daemon.status()["servers"];
  ASSERT_EQ(servers.size(), 2u) << servers.dump();
  for (const auto& s : servers) {
    EXPECT_FALSE(s["worker"].is_null()) << s.dump();
    EXPECT_EQ(s["argv"].back(), "v2") << s.dump();
  }
}

// Two apps on one resource: the second deploy fails saying whose it is and what to do, the
// first app serves on untouched; with --replace it takes over.
TEST(Apps, AnotherAppsResourceFailsTheDeployUnlessItSaysReplace) {
  DaemonUnderTest daemon;
  const std::string resource = "unix:" + daemon.dir() + "/shared.sock";
  auto web = deploy_with(daemon, {"--name", "web"}, {HELLO_SERVER_BIN, resource});
  ASSERT_EQ(web.code, 0) << web.output;
  pid_t web_pid = daemon.server_pids().at(0);

  auto api = deploy_with(daemon, {"--name", "api"}, {HELLO_SERVER_BIN, resource});
  EXPECT_EQ(api.code, 1) << api.output;
  EXPECT_TRUE(contains(api.output, "app 'web' serves it")) << api.output;
  EXPECT_TRUE(contains(api.output, "--replace web")) << api.output;
  EXPECT_TRUE(contains(api.output, "the servers already running keep serving")) << api.output;
  EXPECT_EQ(daemon.server_pids(), std::vector<pid_t>{web_pid});

  auto replacing =
      deploy_with(daemon, {"--name", "api", "--replace", "web"}, {HELLO_SERVER_BIN, resource});
  EXPECT_EQ(replacing.code, 0) << replacing.output;
  EXPECT_TRUE(contains(replacing.output, "replaced pid " + std::to_string(web_pid)))
      << replacing.output;
  EXPECT_EQ(apps_of(daemon), std::vector<std::string>{"api"});
}

// Names are checked before anything is sent: exit 2, the rule said.
TEST(Apps, ABadNameIsAUsageError) {
  DaemonUnderTest daemon;
  for (const std::string& name :
       std::vector<std::string>{"a b", "all", "-web", std::string(65, 'x')}) {
    auto run = deploy_with(daemon, {"--name", name}, {HELLO_SERVER_BIN, "127.0.0.1:0"});
    EXPECT_EQ(run.code, 2) << name << "\n" << run.output;
    EXPECT_TRUE(contains(run.output, "--name")) << run.output;
  }
  auto empty = deploy_with(daemon, {"--name", ""}, {HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(empty.code, 2) << empty.output;
  auto run = deploy_with(daemon, {"--replace", "a/b"}, {HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_TRUE(daemon.server_pids().empty());
}

// `status` names each server's app: --name, or the one derived from the command.
TEST(Apps, StatusShowsEachServersApp) {
  DaemonUnderTest daemon;
  ASSERT_EQ(deploy_with(daemon, {"--name", "shop"}, {HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/x.sock"}).code, 0);
  auto table = serverswap(daemon, {"status"});
  ASSERT_EQ(table.code, 0) << table.output;
  EXPECT_TRUE(contains(table.output, "APP")) << table.output;
  EXPECT_TRUE(contains(table.output, "\nshop ")) << table.output;
  EXPECT_TRUE(contains(table.output, "\nhello_server ")) << table.output;
}

// `stop APP` stops that app only (before, `stop web` stopped everything and the daemon);
// `status APP` shows only it; an unknown app is an error naming the apps there are.
TEST(Apps, StopAppStopsThatAppOnlyAndTheDaemonGoesOn) {
  DaemonUnderTest daemon;
  ASSERT_EQ(deploy_with(daemon, {"--name", "web"}, {HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  ASSERT_EQ(deploy_with(daemon, {"--name", "api"},
                        {HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/api.sock"})
                .code,
            0);
  pid_t web_pid = daemon.server_pids().at(0);
  std::string web_address = daemon.address_of("127.0.0.1:0");

  auto only_web = serverswap(daemon, {"status", "--json", "web"});
  ASSERT_EQ(only_web.code, 0) << only_web.output;
  auto json = nlohmann::json::parse(only_web.output);
  ASSERT_EQ(json["servers"].size(), 1u) << only_web.output;
  EXPECT_EQ(json["servers"][0]["app"], "web");

  EXPECT_EQ(serverswap(daemon, {"stop", ""}).code, 2) << "an empty APP stopped something";
  EXPECT_EQ(serverswap(daemon, {"status", ""}).code, 2);
  auto unknown = serverswap(daemon, {"stop", "shop"});
  EXPECT_EQ(unknown.code, 1) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "no app named 'shop' runs (apps: api, web)"))
      << unknown.output;
  EXPECT_EQ(serverswap(daemon, {"status", "shop"}).code, 1);
  EXPECT_EQ(serverswap(daemon, {"stop", "web", "--all"}).code, 2);

  auto stopped = serverswap(daemon, {"stop", "web"});
  EXPECT_EQ(stopped.code, 0) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "app web stopped: 1 server exited")) << stopped.output;
  EXPECT_EQ(kill(web_pid, 0), -1) << "web's server still runs";
  EXPECT_EQ(apps_of(daemon), std::vector<std::string>{"api"});
  EXPECT_FALSE(daemon.process().wait(0ms).has_value()) << "the daemon exited";
  // Its socket is closed: a client is refused, not left waiting in a backlog no one reads.
  EXPECT_TRUE(eventually([&] { return !http_ok(web_address); }, 5s)) << web_address;
}

}  // namespace
}  // namespace serverswap::testing
