// Apps (docs/architecture.md, "Apps"), with real servers: deploys of one app are versions of
// each other whatever their arguments or resources, an app keeps its settings across
// versions, and one app cannot take another's resource unless its deploy says --replace.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
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

// Whether a TCP connect to 127.0.0.1:`port` is refused (nothing bound there listens), rather
// than accepted (a server or the daemon's listen backlog takes it).
bool connect_refused(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
                 errno == ECONNREFUSED;
  ::close(fd);
  return refused;
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

  // An app that does not exist (misspelled) is refused, naming the apps there are; '*' is any.
  auto misspelled =
      deploy_with(daemon, {"--name", "web", "--replace", "apj"}, {HELLO_SERVER_BIN, resource});
  EXPECT_EQ(misspelled.code, 1) << misspelled.output;
  EXPECT_TRUE(contains(misspelled.output, "--replace apj: no app named 'apj' is known (apps: api"))
      << misspelled.output;
  EXPECT_EQ(apps_of(daemon), std::vector<std::string>{"api"});
  auto any = deploy_with(daemon, {"--name", "web", "--replace", "*"}, {HELLO_SERVER_BIN, resource});
  EXPECT_EQ(any.code, 0) << any.output;
  EXPECT_EQ(apps_of(daemon), std::vector<std::string>{"web"});
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
  // Only `status APP` lists the app's versions; plain `status` gives each app its current
  // generation (a list of commands per app made it a third longer).
  ASSERT_EQ(json["apps"].size(), 1u) << only_web.output;
  EXPECT_EQ(json["apps"][0]["versions"].size(), 1u) << only_web.output;
  auto all = daemon.status();
  ASSERT_EQ(all["apps"].size(), 2u) << all.dump();
  for (const auto& app : all["apps"]) {
    EXPECT_FALSE(app.contains("versions")) << all.dump();
    EXPECT_GT(app["generation"].get<int>(), 0) << all.dump();
  }

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

// The Rollback tests' daemon, with app web's releases (hello_server --body VERSION) deployed on
// one port of loopback.
struct WebOnOnePort {
  DaemonUnderTest daemon{{"--takedown-timeout", "2s", "--settle", "100ms"}};
  uint16_t port = free_ephemeral_port();
  std::string address = "127.0.0.1:" + std::to_string(port);
  WebOnOnePort() { daemon.deploy_options = {"--name", "web"}; }
};

// The "a release that crashes after the window": v2 comes up (serverUp: no window),
// replaces v1, then crashes 0.5 s later, and so does its crash restart. Within
// --rollback-window the daemon deploys v1's version again; clients under load are answered
// by v1 afterwards, and the log, status and metrics say "rolled back".
TEST(Rollback, AVersionThatCrashesAfterItsDeployIsRolledBackUnderLoad) {
  WebOnOnePort web;
  auto& [daemon, port, address] = web;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v1"}).code, 0);
  ASSERT_TRUE(contains(http_get(port, "/"), "v1"));

  std::atomic<bool> done{false};
  std::atomic<int> requests{0}, failed{0};
  std::thread load([&] {
    auto until = std::chrono::steady_clock::now() + 30s;  // bounded
    while (!done && std::chrono::steady_clock::now() < until) {
      ++requests;
      if (!http_ok(port)) ++failed;
    }
  });
  auto bad = daemon.deploy({FAULT_SERVER_BIN, "crash-after-up", address});
  EXPECT_EQ(bad.code, 0) << bad.output;  // it was up, and v1 is gone: the deploy succeeded
  Child& log = daemon.process();
  EXPECT_TRUE(log.wait_for_output("rolling back to generation 1's version", 15s)) << log.output();
  EXPECT_TRUE(log.wait_for_output("app web rolled back: the previous version is up", 15s))
      << log.output();
  EXPECT_TRUE(eventually([&] { return contains(http_get(port, "/"), "v1"); }, 10s));
  int before_quiet = failed;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(http_ok(port));  // v1 serves from now on
  done = true;
  load.join();
  EXPECT_GT(requests, 0);
  // Clients wait in the daemon's listen backlog while nothing accepts; none is refused.
  EXPECT_EQ(before_quiet, 0) << failed << " of " << requests << " requests failed";

  auto status = daemon.status();
  ASSERT_EQ(status["apps"].size(), 1u) << status.dump();
  EXPECT_EQ(status["apps"][0]["rolledBack"]["toGeneration"], 1) << status.dump();
  EXPECT_EQ(status["servers"].size(), 1u) << status.dump();
  EXPECT_EQ(status["servers"][0]["argv"].back(), "v1") << status.dump();
  // The crash loop's pending restart is dropped: a later deploy serves its resources.
  EXPECT_TRUE(eventually([&] { return daemon.status()["crashLoops"].empty(); }, 5s))
      << daemon.status().dump();
  auto table = serverswap(daemon, {"status"});
  EXPECT_TRUE(contains(table.output, "rolled back")) << table.output;
}

// rollback, restart and rm of an app, with real servers; and their usage errors.
TEST(Rollback, RollbackRestartAndRmOfAnApp) {
  WebOnOnePort web;
  auto& [daemon, port, address] = web;
  EXPECT_EQ(serverswap(daemon, {"rollback", "web"}).code, 1);  // nothing known yet
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v1"}).code, 0);
  auto only_one = serverswap(daemon, {"rollback", "web"});
  EXPECT_EQ(only_one.code, 1) << only_one.output;
  EXPECT_TRUE(contains(only_one.output, "nothing to roll back to")) << only_one.output;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v2"}).code, 0);
  ASSERT_TRUE(contains(http_get(port, "/"), "v2"));
  // The text `status APP` lists the versions a rollback chooses from, as --json does;
  // plain `status` stays compact.
  auto versions = serverswap(daemon, {"status", "web"});
  EXPECT_EQ(versions.code, 0) << versions.output;
  const std::string command = std::string(HELLO_SERVER_BIN) + " " + address + " --body ";
  EXPECT_TRUE(contains(versions.output,
                       "app web: versions, oldest first:\n  generation 1: " + command + "v1 (in "))
      << versions.output;
  EXPECT_TRUE(contains(versions.output, "  generation 2 (current): " + command + "v2 (in "))
      << versions.output;
  EXPECT_FALSE(contains(serverswap(daemon, {"status"}).output, "versions, oldest first"));

  auto back = serverswap(daemon, {"rollback", "web"});
  EXPECT_EQ(back.code, 0) << back.output;
  EXPECT_TRUE(contains(back.output, "deployed: pid")) << back.output;
  EXPECT_TRUE(contains(http_get(port, "/"), "v1"));
  auto forth = serverswap(daemon, {"rollback", "web"});  // rollout undo: back to v2
  EXPECT_EQ(forth.code, 0) << forth.output;
  EXPECT_TRUE(contains(http_get(port, "/"), "v2"));

  ASSERT_EQ(serverswap(daemon, {"stop", "web"}).code, 0);
  EXPECT_TRUE(daemon.server_pids().empty());
  auto restarted = serverswap(daemon, {"restart", "web"});
  EXPECT_EQ(restarted.code, 0) << restarted.output;
  EXPECT_TRUE(eventually([&] { return contains(http_get(port, "/"), "v2"); }, 5s));

  auto removed = serverswap(daemon, {"rm", "web"});
  EXPECT_EQ(removed.code, 0) << removed.output;
  EXPECT_TRUE(contains(removed.output, "app web removed: 1 server exited")) << removed.output;
  // Its socket closes at once, not after --idle-socket-grace (60 s): the grace its server's
  // exit started was kept before.
  EXPECT_TRUE(eventually([&] { return connect_refused(port); }, 5s)) << daemon.status().dump();
  EXPECT_TRUE(daemon.server_pids().empty());
  EXPECT_TRUE(daemon.status()["apps"].empty()) << daemon.status().dump();
  EXPECT_EQ(serverswap(daemon, {"restart", "web"}).code, 1);
  EXPECT_EQ(serverswap(daemon, {"rm", "web"}).code, 1);
  EXPECT_FALSE(daemon.process().wait(0ms).has_value()) << "the daemon exited";

  for (const std::vector<std::string>& usage : {std::vector<std::string>{"rollback"},
                                                {"rollback", ""},
                                                {"restart"},
                                                {"rm"},
                                                {"rm", "web", "api"},
                                                {"rollback", "-x"},
                                                {"restart", "--all"},
                                                {"rollback", "--force", "web"},
                                                {"reload", "--jsn"},
                                                {"reload", ""},
                                                {"restart", "all"},
                                                {"--workers", "2", "restart", "web"},
                                                {"--listen", ":0", "reload"},
                                                {"--name", "web", "rollback", "web"}})
    EXPECT_EQ(serverswap(daemon, usage).code, 2) << usage[0] << " " << usage.size();
  // What is wrong is said: the unknown option, not that APP is missing.
  auto unknown = serverswap(daemon, {"rollback", "-x"});
  EXPECT_TRUE(contains(unknown.output, "unexpected argument '-x'")) << unknown.output;
  auto missing = serverswap(daemon, {"restart"});
  EXPECT_TRUE(contains(missing.output, "APP is required")) << missing.output;
}

// serverswap-deploy rollback APP stays attached as serverswap-deploy COMMAND does (it used to
// exit at `deployed`), and exits 0 once a later deploy replaced the rolled-back server.
TEST(Rollback, ServerswapDeployRollbackStaysAttachedUntilItsServerIsReplaced) {
  WebOnOnePort web;
  auto& [daemon, port, address] = web;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v1"}).code, 0);
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v2"}).code, 0);
  Child attached(
      {std::string(SERVERSWAP_BIN) + "-deploy", "--socket", daemon.socket(), "rollback", "web"});
  ASSERT_TRUE(attached.wait_for_output("deployed: pid", 15s)) << attached.output();
  EXPECT_TRUE(contains(http_get(port, "/"), "v1"));
  EXPECT_FALSE(attached.wait(300ms).has_value()) << "it left at deployed: " << attached.output();
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, address, "--body", "v3"}).code, 0);
  EXPECT_EQ(attached.wait(10s), 0) << attached.output();
  EXPECT_TRUE(contains(attached.output(), "after a newer deploy replaced it")) << attached.output();
}

// Release directories behind a symbolic link: `current -> releases/r1`, deployed from
// `current`; then `current -> releases/r2` and the same command deployed again. `rollback web`
// starts r1's version in releases/r1, where it ran (it was refused before: the same command
// in the same directory as named); under load, no request fails. Once releases/r1 is
// replaced by another directory, a rollback to it is refused with the reason.
TEST(Rollback, ARollbackGoesBackToTheReleaseItRanInBehindASymlink) {
  WebOnOnePort web;
  auto& [daemon, port, address] = web;
  const std::string root = daemon.dir() + "/app";
  const std::string current = root + "/current";
  auto release = [&](const std::string& name) {
    std::filesystem::create_directories(root + "/releases/" + name);
    std::ofstream script(root + "/releases/" + name + "/serve");
    script << "#!/bin/sh\nexec " << HELLO_SERVER_BIN << " " << address << " --body " << name
           << "\n";
    script.close();
    std::filesystem::permissions(root + "/releases/" + name + "/serve",
                                 std::filesystem::perms::owner_all);
  };
  auto point = [&](const std::string& name) {
    std::error_code ignored;
    std::filesystem::remove(current, ignored);
    std::filesystem::create_directory_symlink("releases/" + name, current);
  };
  auto deploy_from_current = [&] {
    Child deploy({"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", current, SERVERSWAP_BIN, "--socket",
                  daemon.socket(), "--name", "web", "./serve"});
    EXPECT_EQ(deploy.wait(30s), 0) << deploy.output();
  };
  release("r1");
  release("r2");
  point("r1");
  deploy_from_current();
  ASSERT_TRUE(contains(http_get(port, "/"), "r1"));
  point("r2");
  deploy_from_current();
  ASSERT_TRUE(contains(http_get(port, "/"), "r2"));

  std::atomic<bool> done{false};
  std::atomic<int> requests{0}, failed{0};
  std::thread load([&] {
    auto until = std::chrono::steady_clock::now() + 30s;  // bounded
    while (!done && std::chrono::steady_clock::now() < until) {
      ++requests;
      if (!http_ok(port)) ++failed;
    }
  });
  auto back = serverswap(daemon, {"rollback", "web"});
  done = true;
  load.join();
  EXPECT_EQ(back.code, 0) << back.output;
  EXPECT_TRUE(contains(http_get(port, "/"), "r1")) << daemon.process().output();
  EXPECT_GT(requests, 0);
  EXPECT_EQ(failed, 0) << failed << " of " << requests << " requests failed";
  auto status = daemon.status();
  ASSERT_EQ(status["servers"].size(), 1u) << status.dump();
  EXPECT_EQ(status["servers"][0]["cwd"], current) << status.dump();  // the app's, as named
  const std::string real = std::filesystem::canonical(root).string() + "/releases/";
  pid_t pid = status["servers"][0]["pid"].get<int>();
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/cwd").string(),
            real + "r1");
  EXPECT_TRUE(contains(read_file("/proc/" + std::to_string(pid) + "/environ"),
                       std::string("PWD=") + real + "r1" + '\0'));

  // Back to r2 (rollout undo), then r1 replaced by a new directory of the same name: not the
  // release that ran there, so the rollback is refused and r2 serves on.
  ASSERT_EQ(serverswap(daemon, {"rollback", "web"}).code, 0);
  ASSERT_TRUE(contains(http_get(port, "/"), "r2"));
  std::filesystem::rename(root + "/releases/r1", root + "/releases/r1.old");
  release("r1");
  auto refused = serverswap(daemon, {"rollback", "web"});
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output, real + "r1 (what " + current)) << refused.output;
  EXPECT_TRUE(contains(refused.output, "is another directory now")) << refused.output;
  EXPECT_TRUE(contains(http_get(port, "/"), "r2"));
}

// rm of an app whose only trace is a crash loop between restarts closed nothing: its socket
// stayed bound, clients waiting in a backlog no one would read, until --idle-socket-grace.
// Its sockets close at once now, as `stop APP`'s do once its servers have exited.
TEST(Rollback, RmOfACrashLoopingAppClosesItsSocketAtOnce) {
  DaemonUnderTest daemon({"--idle-socket-grace", "120s", "--settle", "100ms"});
  daemon.deploy_options = {"--name", "web"};
  uint16_t port = free_ephemeral_port();
  auto crashing =
      daemon.deploy({FAULT_SERVER_BIN, "crash-after-up", "127.0.0.1:" + std::to_string(port)});
  ASSERT_EQ(crashing.code, 0) << crashing.output;
  // Between two restarts (the backoff doubles: the wait soon outlasts a poll): only the loop.
  ASSERT_TRUE(eventually(
      [&] {
        auto status = daemon.status();
        return !status["crashLoops"].empty() && status["servers"].empty();
      },
      15s));
  EXPECT_FALSE(connect_refused(port)) << "the crash loop keeps its socket for the restart";
  auto removed = serverswap(daemon, {"rm", "web"});
  ASSERT_EQ(removed.code, 0) << removed.output;
  EXPECT_TRUE(eventually([&] { return connect_refused(port); }, 5s))
      << "still bound after rm: " << daemon.status().dump();
  EXPECT_TRUE(daemon.status()["crashLoops"].empty()) << daemon.status().dump();
}

}  // namespace
}  // namespace serverswap::testing
