#include "daemon/spawn/spawn_environment.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace serverswap::daemon {
namespace {

PassedSocket passed(const std::string& resource, const std::string& address, int fd,
                    const std::string& name = "") {
  auto parsed = protocol::parse_resource(resource);
  return {fd_name({name, resource}, *parsed), *parsed, address, fd, -1};
}

TEST(ParseListenOption, NamesAndResources) {
  auto plain = parse_listen_option(":8080");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->name, "");
  EXPECT_EQ(plain->resource, ":8080");
  auto named = parse_listen_option("web=127.0.0.1:8080");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->name, "web");
  EXPECT_EQ(named->resource, "127.0.0.1:8080");
  auto unix_named = parse_listen_option("api.v2=unix:/run/a=b.sock");
  ASSERT_TRUE(unix_named.ok());
  EXPECT_EQ(unix_named->name, "api.v2");
  EXPECT_EQ(unix_named->resource, "unix:/run/a=b.sock");
  // An '=' after the first ':' belongs to the path.
  auto path_eq = parse_listen_option("unix:/run/a=b.sock");
  ASSERT_TRUE(path_eq.ok());
  EXPECT_EQ(path_eq->name, "");
  EXPECT_FALSE(parse_listen_option("we b=:8080").ok());
  EXPECT_FALSE(parse_listen_option("web=").ok());
  EXPECT_FALSE(parse_listen_option("8080").ok());
  auto bad = parse_listen_option("web=nohost:80");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--listen web=nohost:80"), std::string::npos);
}

TEST(FdName, GivenOrDerivedFromTheCanonicalResource) {
  EXPECT_EQ(passed(":8080", "[::]:8080", 3).fd_name, "8080");
  EXPECT_EQ(passed("127.0.0.1:8080", "127.0.0.1:8080", 3).fd_name, "127.0.0.1_8080");
  EXPECT_EQ(passed("localhost:8080", "127.0.0.1:8080", 3).fd_name, "127.0.0.1_8080");
  EXPECT_EQ(passed("[::1]:8080", "[::1]:8080", 3).fd_name, "1__8080");
  EXPECT_EQ(passed("unix:/run/app.sock", "unix:/run/app.sock", 3).fd_name, "unix__run_app.sock");
  EXPECT_EQ(passed(":8080", "[::]:8080", 3, "web").fd_name, "web");
}

TEST(ListenEnvironment, ThreeConventionsAtOnce) {
  std::vector<PassedSocket> sockets = {
      passed(":8080", "[::]:8080", 3, "web"), passed("127.0.0.1:0", "127.0.0.1:41000", 4),
      passed("[::1]:9000", "[::1]:9000", 5), passed("unix:/run/app.sock", "unix:/run/app.sock", 6)};
  std::vector<std::string> expected = {
      "LISTEN_FDS=4",
      "EINHORN_FD_COUNT=4",
      "EINHORN_FD_0=3",
      "EINHORN_FD_1=4",
      "EINHORN_FD_2=5",
      "EINHORN_FD_3=6",
      "LISTEN_FDNAMES=web:127.0.0.1_0:1__9000:unix__run_app.sock",
      "SERVER_STARTER_PORT=8080=3;127.0.0.1:41000=4;[::1]:9000=5;/run/app.sock=6"};
  EXPECT_EQ(listen_environment(sockets), expected);
}

TEST(SpawnedSpec, ReplacesPerServerVariablesAndAddsTheShim) {
  SpawnSpec request;
  request.argv = {"gunicorn", "app:app"};
  request.env = {"PATH=/bin",      "LISTEN_FDS=9",      "LISTEN_PID=1", "NOTIFY_SOCKET=/x",
                 "EINHORN_FD_0=7", "SERVERSWAP_ID=old", "HOME=/h"};
  SpawnSpec plain = spawned_spec(request, {"SERVERSWAP_ID=new"}, {}, "/bin/serverswap");
  EXPECT_EQ(plain.argv, request.argv);
  EXPECT_EQ(plain.env, (std::vector<std::string>{"PATH=/bin", "HOME=/h", "SERVERSWAP_ID=new"}));
  SpawnSpec listening = spawned_spec(request, {}, {passed(":80", "[::]:80", 3)}, "/bin/serverswap");
  EXPECT_EQ(listening.argv,
            (std::vector<std::string>{"/bin/serverswap", kExecShimArg, "gunicorn", "app:app"}));
  EXPECT_NE(std::find(listening.env.begin(), listening.env.end(), "LISTEN_FDS=1"),
            listening.env.end());
  EXPECT_EQ(std::find(listening.env.begin(), listening.env.end(), "LISTEN_FDS=9"),
            listening.env.end());
}

TEST(CommandSettings, ParsesWorkersBatchAndMaxSurge) {
  SpawnSpec spec;
  protocol::DeployRequest request;
  request.workers = 4;
  request.batch = 2;
  request.max_surge = 3;
  ASSERT_TRUE(parse_command_settings(request, spec).ok());
  EXPECT_EQ(spec.workers, 4);
  EXPECT_EQ(spec.batch, 2);
  EXPECT_EQ(spec.max_surge, 3);
  auto zero = protocol::decode_deploy({{"argv", protocol::Json::array({"./srv"})}, {"workers", 0}});
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(), "deploy.workers must be an integer from 1 to 1024");
}

TEST(CommandSettings, ABadListenOrSignalNamesTheField) {
  protocol::DeployRequest request;
  request.listen = {{"", "nonsense"}};
  SpawnSpec spec;
  Status listen = parse_command_settings(request, spec);
  ASSERT_FALSE(listen.ok());
  EXPECT_EQ(listen.message().rfind("deploy.listen[0]: ", 0), 0u) << listen.message();
  protocol::DeployRequest signal;
  signal.takedown_signal = "SIGNOPE";
  Status bad = parse_command_settings(signal, spec);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().rfind("deploy.takedownSignal: ", 0), 0u) << bad.message();
}

TEST(CommandSettings, ARequestAndItsSpecConvertBothWays) {
  SpawnSpec spec;
  spec.argv = {"./srv", "caf\xe9"};
  spec.cwd = "/srv/\xff";
  spec.env = {"A=1", "LEGACY=caf\xe9"};
  spec.user = "app";
  spec.listen = {{"web", ":8080"}};
  spec.ready_after = Millis(250);
  spec.confirm = Millis(0);  // 0 is a window of none, not "not given": it must survive
  spec.takedown_signal = SIGQUIT;
  spec.workers = 3;
  spec.worker = 2;
  auto back = spec_from_request(*protocol::decode_deploy(
      protocol::encode_deploy(request_from_spec(spec, /*follow_exit=*/true))));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->argv, spec.argv);
  EXPECT_EQ(back->cwd, spec.cwd);
  EXPECT_EQ(back->env, spec.env);
  EXPECT_EQ(back->user, "app");
  EXPECT_EQ(back->listen, spec.listen);
  EXPECT_EQ(back->ready_after, Millis(250));
  EXPECT_EQ(back->confirm, Millis(0));
  EXPECT_EQ(back->takedown_signal, SIGQUIT);
  EXPECT_EQ(back->workers, 3);
  EXPECT_EQ(back->worker, 2);
}

TEST(RememberedSettings, ARepeatedDeployWithoutWorkersKeepsTheLastCount) {
  RememberedSettings remembered;
  SpawnSpec first;
  first.argv = {"./srv"};
  first.workers = 4;
  first.batch = 2;
  remembered.apply(first);
  SpawnSpec again;
  again.argv = {"./srv"};
  remembered.apply(again);
  EXPECT_EQ(again.workers, 4);
  EXPECT_EQ(again.batch, 2);
  SpawnSpec other;
  other.argv = {"./other"};
  remembered.apply(other);
  EXPECT_FALSE(other.workers);
}

TEST(CommandSettings, GrantsAreResources) {
  using protocol::Json;
  auto with_grants = [](Json grant) {
    return protocol::decode_deploy({{"argv", Json::array({"./srv"})}, {"grant", grant}});
  };
  auto request = with_grants(Json::array({"127.0.0.1:80", "unix:/run/a.sock"}));
  ASSERT_TRUE(request.ok()) << request.status().message();
  SpawnSpec spec;
  ASSERT_TRUE(parse_command_settings(*request, spec).ok());
  EXPECT_EQ(spec.grants, (std::vector<std::string>{"127.0.0.1:80", "unix:/run/a.sock"}));
  auto not_a_resource = with_grants(Json::array({"not a resource"}));
  ASSERT_TRUE(not_a_resource.ok());
  SpawnSpec bad;
  EXPECT_FALSE(parse_command_settings(*not_a_resource, bad).ok());
  EXPECT_FALSE(with_grants("127.0.0.1:80").ok());  // not an array
}

TEST(RememberedSettings, GrantsAreRememberedLikeListen) {
  RememberedSettings remembered;
  SpawnSpec first;
  first.argv = {"./srv"};
  first.grants = {"127.0.0.1:80"};
  remembered.apply(first);
  SpawnSpec again;
  again.argv = {"./srv"};
  remembered.apply(again);
  EXPECT_EQ(again.grants, first.grants);
  SpawnSpec other;
  other.argv = {"./other"};
  remembered.apply(other);
  EXPECT_TRUE(other.grants.empty());
}

TEST(NeverReadyReason, SaysWhatTheServerWouldNeed) {
  std::string silent = never_ready_reason(false, false, false, "2s");
  EXPECT_NE(silent.find("no READY=1 on NOTIFY_SOCKET"), std::string::npos) << silent;
  EXPECT_NE(silent.find("--listen"), std::string::npos) << silent;
  EXPECT_NE(silent.find("--ready-after"), std::string::npos) << silent;
  std::string listening = never_ready_reason(false, true, false, "2s");
  EXPECT_NE(listening.find("holds its --listen sockets"), std::string::npos) << listening;
  EXPECT_EQ(never_ready_reason(true, false, false, "2s"), "not up within --ready-timeout 2s");
}

// --confirm belongs to the command like --ready-after: a later deploy without it keeps it, one
// with it (0 included) sets it.
TEST(RememberedSettings, TheConfirmWindowIsRememberedForTheCommand) {
  RememberedSettings remembered;
  SpawnSpec first;
  first.argv = {"./srv"};
  first.confirm = Millis(2000);
  remembered.apply(first);
  SpawnSpec again;
  again.argv = {"./srv"};
  remembered.apply(again);
  EXPECT_EQ(again.confirm, Millis(2000));
  SpawnSpec none;
  none.argv = {"./srv"};
  none.confirm = Millis(0);
  remembered.apply(none);
  SpawnSpec after;
  after.argv = {"./srv"};
  remembered.apply(after);
  EXPECT_EQ(after.confirm, Millis(0));
  SpawnSpec other;
  other.argv = {"./other"};
  remembered.apply(other);
  EXPECT_FALSE(other.confirm);
}

}  // namespace
}  // namespace serverswap::daemon
