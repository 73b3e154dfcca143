// Every message of docs/protocol.md: decode(encode(x)) == x through a real line (encode,
// then the framer's decode), and a body of the wrong shape gives an error naming the field.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "protocol/control_replies.h"
#include "protocol/requests.h"
#include "protocol/server_messages.h"

namespace serverswap::protocol {
namespace {

// Bytes that are not UTF-8, as argv, cwd, env, listen, user and group may carry.
const std::string kLatin1 = "caf\xe9";
const std::string kBroken = "\xff\xfe-\x80";

template <class T>
T round_trip(const T& value) {
  Json whole = value.encode();
  std::string line = encode(whole);
  EXPECT_EQ(line.back(), '\n');
  auto message = decode(std::string_view(line).substr(0, line.size() - 1));
  EXPECT_TRUE(message.ok()) << (message.ok() ? "" : message.status().message());
  if (!message.ok()) return T{};
  EXPECT_EQ(message->name, T::kName) << line;
  auto back = T::decode(*message);
  EXPECT_TRUE(back.ok()) << line << ": " << (back.ok() ? "" : back.status().message());
  if (!back.ok()) return T{};
  // And the same without the text in between (as the daemon's parts hand messages on).
  auto direct = as_message(whole);
  EXPECT_TRUE(direct.ok());
  if (direct.ok()) {
    auto again = T::decode(*direct);
    EXPECT_TRUE(again.ok() && *again == *back) << line;
  }
  return *back;
}

// The error T::decode gives for `line`, "(ok)" when it decodes.
template <class T>
std::string error_for(const std::string& line) {
  auto message = decode(line);
  if (!message.ok()) return "(not a message: " + message.status().message() + ")";
  auto decoded = T::decode(*message);
  return decoded.ok() ? "(ok)" : decoded.status().message();
}

// ---- Server messages ---------------------------------------------------------------------

TEST(MessageRoundTrip, Hello) {
  HelloRequest control;
  control.control = true;
  control.protocol = kVersion;
  EXPECT_EQ(round_trip(control), control);
  EXPECT_EQ(encode(control.encode()), "{\"hello\":{\"protocol\":1,\"role\":\"control\"}}\n");

  HelloRequest server;
  server.protocol = kVersion;
  server.id = "3.abc";
  server.pid = 1234;
  server.up_message = true;
  EXPECT_EQ(round_trip(server), server);
  EXPECT_EQ(encode(server.encode()),
            "{\"hello\":{\"id\":\"3.abc\",\"pid\":1234,\"protocol\":1,\"upMessage\":true}}\n");

  server.up_message = false;
  server.pid.reset();
  server.resume = ResumeRequest{{":8080", "unix:/run/a.sock"}, {":8080"}, true};
  EXPECT_EQ(round_trip(server), server);
  server.resume = ResumeRequest{{}, {}, false};
  EXPECT_EQ(round_trip(server), server);
}

TEST(MessageRoundTrip, StringMessages) {
  EXPECT_EQ(round_trip(ReadyFor{":8080"}), ReadyFor{":8080"});
  EXPECT_EQ(round_trip(OnTakedown{"web"}), OnTakedown{"web"});
  EXPECT_EQ(round_trip(Serving{"127.0.0.1:0"}), Serving{"127.0.0.1:0"});
  EXPECT_EQ(round_trip(TookDown{"unix:/tmp/x.sock"}), TookDown{"unix:/tmp/x.sock"});
  EXPECT_EQ(round_trip(Fail{"no config: \"x\"\n"}), Fail{"no config: \"x\"\n"});
  EXPECT_EQ(round_trip(TakeDown{"[::1]:80"}), TakeDown{"[::1]:80"});
  EXPECT_EQ(round_trip(ServerUp{}), ServerUp{});
  EXPECT_EQ(encode(ReadyFor{":8080"}.encode()), "{\"readyFor\":\":8080\"}\n");
  EXPECT_EQ(encode(ServerUp{}.encode()), "{\"serverUp\":true}\n");
}

TEST(MessageRoundTrip, EinhornCommand) {
  EXPECT_EQ(round_trip(EinhornCommand{"worker:ack", 42}), (EinhornCommand{"worker:ack", 42}));
  EXPECT_EQ(round_trip(EinhornCommand{"worker:ack", std::nullopt}),
            (EinhornCommand{"worker:ack", std::nullopt}));
}

TEST(MessageRoundTrip, Welcome) {
  Welcome control{kVersion, std::nullopt, "serverswap 0.1.0", false};
  EXPECT_EQ(round_trip(control), control);
  EXPECT_EQ(encode(control.encode()),
            "{\"welcome\":{\"protocol\":1,\"version\":\"serverswap 0.1.0\"}}\n");
  Welcome resumed{kVersion, "7.x", "serverswap 0.1.0", true};
  EXPECT_EQ(round_trip(resumed), resumed);
  EXPECT_EQ(encode(resumed.encode()),
            "{\"welcome\":{\"protocol\":1,\"id\":\"7.x\",\"version\":\"serverswap "
            "0.1.0\",\"resumed\":true}}\n");
}

TEST(MessageRoundTrip, ResourceReadyAndError) {
  ResourceReady ready{":0", "[::]:40123"};
  EXPECT_EQ(round_trip(ready), ready);
  EXPECT_EQ(encode(ready.encode()), "{\"resourceReady\":\":0\",\"address\":\"[::]:40123\"}\n");
  ErrorReply framing{"line longer than 65536 bytes", nullptr};
  EXPECT_EQ(round_trip(framing), framing);
  ErrorReply answering{"readyFor must be a string", Json{{"readyFor", 5}}};
  EXPECT_EQ(round_trip(answering), answering);
}

// ---- Control requests --------------------------------------------------------------------

TEST(MessageRoundTrip, DeployWithBytesThatAreNotUtf8) {
  DeployRequest deploy;
  deploy.argv = {"node", kLatin1, kBroken};
  deploy.cwd = "/srv/" + kLatin1;
  deploy.env = {"A=b", "LEGACY=" + kLatin1, kLatin1 + "=x"};
  deploy.user = kBroken;
  deploy.group = "staff";
  deploy.follow_exit = true;
  deploy.listen = {{"web", ":8080"}, {"", "unix:/run/" + kLatin1}};
  deploy.grants = {"127.0.0.1:80"};
  deploy.ready_after_ms = 300;
  deploy.takedown_signal = "SIGINT";
  deploy.workers = 4;
  deploy.batch = 2;
  deploy.max_surge = 1;
  DeployRequest back = round_trip(deploy);
  // env entries that are UTF-8 come back first (in "env"), the others after (in "envBase64").
  EXPECT_EQ(back.env, (std::vector<std::string>{"A=b", "LEGACY=" + kLatin1, kLatin1 + "=x"}));
  EXPECT_EQ(back, deploy);

  DeployRequest plain;
  plain.argv = {"true"};
  EXPECT_EQ(round_trip(plain), plain);
}

TEST(MessageRoundTrip, UpgradeAndFlagRequests) {
  EXPECT_EQ(round_trip(UpgradeRequest{"/usr/bin/serverswap"}),
            UpgradeRequest{"/usr/bin/serverswap"});
  EXPECT_EQ(round_trip(UpgradeRequest{}), UpgradeRequest{});
  EXPECT_EQ(encode(UpgradeRequest{}.encode()), "{\"upgrade\":{}}\n");
  EXPECT_EQ(round_trip(StatusRequest{}), StatusRequest{});
  EXPECT_EQ(round_trip(StatusRequest{"web"}), StatusRequest{"web"});
  EXPECT_EQ(encode(StatusRequest{"web"}.encode()), "{\"status\":{\"app\":\"web\"}}\n");
  EXPECT_FALSE(StatusRequest::decode({"status", Json{{"app", "a b"}}, {}}).ok());
  EXPECT_EQ(round_trip(StopRequest{}), StopRequest{});
  EXPECT_EQ(round_trip(StopRequest{"web"}), StopRequest{"web"});
  EXPECT_EQ(encode(StopRequest{"web"}.encode()), "{\"stop\":{\"app\":\"web\"}}\n");
  EXPECT_FALSE(StopRequest::decode({"stop", Json{{"app", "a b"}}, {}}).ok());
  EXPECT_FALSE(StopRequest::decode({"stop", Json{{"app", 1}}, {}}).ok());
  EXPECT_EQ(round_trip(ReloadRequest{}), ReloadRequest{});
  EXPECT_EQ(round_trip(ReloadRequest{"web"}), ReloadRequest{"web"});
  EXPECT_FALSE(ReloadRequest::decode({"reload", Json{{"app", "all"}}, {}}).ok());
  EXPECT_EQ(round_trip(RollbackRequest{"web"}), RollbackRequest{"web"});
  EXPECT_EQ(round_trip(RestartRequest{"web"}), RestartRequest{"web"});
  // serverswap-deploy's: follow "exit", sent only then (what earlier clients sent is unchanged).
  EXPECT_EQ(round_trip(RollbackRequest{"web", true}), (RollbackRequest{"web", true}));
  EXPECT_EQ(round_trip(RestartRequest{"web", true}), (RestartRequest{"web", true}));
  EXPECT_EQ(encode(RollbackRequest{"web"}.encode()), "{\"rollback\":{\"app\":\"web\"}}\n");
  EXPECT_EQ(encode(RestartRequest{"web", true}.encode()),
            "{\"restart\":{\"app\":\"web\",\"follow\":\"exit\"}}\n");
  EXPECT_FALSE(
      RestartRequest::decode({"restart", Json{{"app", "web"}, {"follow", "down"}}, {}}).ok());
  EXPECT_EQ(round_trip(RmRequest{"web"}), RmRequest{"web"});
  EXPECT_EQ(encode(RmRequest{"web"}.encode()), "{\"rm\":{\"app\":\"web\"}}\n");
  // An app request names its app: a missing, empty or bad one is refused.
  for (const Json& body : {Json(true), Json::object(), Json{{"app", ""}}, Json{{"app", "-x"}}})
    EXPECT_FALSE(RollbackRequest::decode({"rollback", body, {}}).ok()) << body.dump();
  EXPECT_EQ(round_trip(Removed{"web", 2}), (Removed{"web", 2}));
  EXPECT_EQ(encode(StatusRequest{}.encode()), "{\"status\":true}\n");
  // `true` or an object; anything else names the request.
  EXPECT_TRUE(StopRequest::decode({"stop", Json::object(), {}}).ok());
  for (const Json& body : {Json("web"), Json(false), Json::array({1}), Json(1), Json(nullptr)}) {
    auto refused = StopRequest::decode({"stop", body, {}});
    ASSERT_FALSE(refused.ok()) << body.dump();
    EXPECT_EQ(refused.status().message(), "stop must be true or an object");
  }
}

// ---- Control replies ---------------------------------------------------------------------

TEST(MessageRoundTrip, Event) {
  Event event{"2026-11-25T11:50:01.123Z", "exited", "3.x", 1234, 3,
              "server 1234: exited",      ":8080",  2,     true};
  EXPECT_EQ(round_trip(event), event);
  EXPECT_EQ(encode(event.encode()),
            "{\"event\":{\"time\":\"2026-11-25T11:50:01.123Z\",\"kind\":\"exited\",\"id\":\"3.x\","
            "\"pid\":1234,\"generation\":3,\"text\":\"server 1234: exited\",\"resource\":\":8080\","
            "\"worker\":2,\"crashed\":true}}\n");
  Event bare{"t",  "up",         std::nullopt, std::nullopt, std::nullopt,
             "up", std::nullopt, std::nullopt, false};
  EXPECT_EQ(round_trip(bare), bare);
}

TEST(MessageRoundTrip, DeployOutcomes) {
  Deployed plain{"3.x", 1234, 3, std::nullopt, {1200, 1201}, std::nullopt};
  EXPECT_EQ(round_trip(plain), plain);
  EXPECT_EQ(encode(plain.encode()),
            "{\"deployed\":{\"id\":\"3.x\",\"pid\":1234,\"generation\":3,\"replaced\":[1200,"
            "1201]}}\n");
  Deployed roll{
      "4.y", 10, 4, std::vector<int64_t>{10, 11, 0}, {}, StateFileWarning{"/s", "ENOSPC"}};
  EXPECT_EQ(round_trip(roll), roll);

  DeployFailed failed{"3.x", "exited with status 1 before it was up", std::nullopt, false};
  EXPECT_EQ(round_trip(failed), failed);
  DeployFailed rolled{std::nullopt, "the daemon is stopping", StateFileWarning{"/s", "EIO"},
                      std::nullopt};
  EXPECT_EQ(round_trip(rolled), rolled);
  EXPECT_EQ(encode(DeployFailed{std::nullopt, "x", std::nullopt, std::nullopt}.encode()),
            "{\"deployFailed\":{\"reason\":\"x\"}}\n");

  ServerExited exited{"3.x", 1234, "exited with status 0", true, std::nullopt};
  EXPECT_EQ(round_trip(exited), exited);
  ServerExited stopped{"3.x", 1234, "exited with status 0", false, "serverswap stop web"};
  EXPECT_EQ(round_trip(stopped), stopped);
}

TEST(MessageRoundTrip, Status) {
  StatusReply status;
  status.daemon = {77,
                   "0.1.0",
                   "/run/s.sock",
                   false,
                   {{":8080", "[::]:8080"}},
                   "127.0.0.1:9100",
                   {"/run/s.sock.state.json", false, "No space left on device", 1500}};
  ServerStatus server{"web",
                      "3.x",
                      1234,
                      3,
                      2,
                      "up",
                      {"node", "a.js"},
                      "/srv",
                      1,
                      {{":8080", "[::]:8080", false}, {"unix:/a", "/a", true}},
                      2,
                      60000};
  ServerStatus unmanaged{"x", "1.y", 99, 1, 1, "unmanaged", {"x"}, "/", std::nullopt, {}, 0, 5};
  status.servers = {server, unmanaged};
  status.crash_loops = {{"a", {"node", "a.js"}, "/srv", 3, 2, 4000, std::nullopt, 1600},
                        {"w", {"w"}, "/", 1, 0, 10, 3, std::nullopt}};
  AppStatus rolled{"web", 1, {{{"node", "a.js"}, "/srv/r1", 1}}, AppStatus::Rollback{}};
  rolled.rolled_back = AppStatus::Rollback{2, 1, "generation 2 crashed 2 times", 300, "gone"};
  status.apps = {rolled, AppStatus{"api", 4, {}, std::nullopt}};
  EXPECT_EQ(round_trip(status), status);
  // A server that is not a worker says so with null, not by leaving "worker" out.
  EXPECT_NE(encode(status.encode()).find("\"worker\":null"), std::string::npos);
  // An app whose versions were not asked for has no "versions" on the wire.
  EXPECT_EQ(encode(AppStatus{"api", 4, {}, std::nullopt}.to_json()),
            "{\"app\":\"api\",\"generation\":4}\n");

  StatusReply empty;
  EXPECT_EQ(round_trip(empty), empty);
}

// A daemon older than "generation" listed every app's versions: the current generation is
// the last version's.
TEST(MessageRoundTrip, AppStatusOfAnOlderDaemonTakesItsGenerationFromItsVersions) {
  Json older = {{"app", "web"},
                {"versions", Json::array({{{"argv", {"a"}}, {"cwd", "/"}, {"generation", 2}},
                                          {{"argv", {"b"}}, {"cwd", "/"}, {"generation", 5}}})}};
  auto decoded = AppStatus::from_json(older, "status.apps[0]");
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->generation, 5);
  EXPECT_EQ(decoded->versions.size(), 2u);
}

TEST(MessageRoundTrip, StopReloadUpgrade) {
  EXPECT_EQ(round_trip(Stopped{}), Stopped{});
  EXPECT_EQ(round_trip(Stopped{"web", 3}), (Stopped{"web", 3}));
  Reloaded reloaded{false,
                    {{{"a"}, true, 12, std::vector<int64_t>{10}, std::nullopt},
                     {{"b", "c"}, false, std::nullopt, std::nullopt, "exited with status 1"}}};
  EXPECT_EQ(round_trip(reloaded), reloaded);
  EXPECT_EQ(encode(Reloaded{true, {}}.encode()), "{\"reloaded\":{\"ok\":true,\"deploys\":[]}}\n");
  EXPECT_EQ(round_trip(ReloadQueued{"2 deploys in flight", true}),
            (ReloadQueued{"2 deploys in flight", true}));
  EXPECT_EQ(round_trip(UpgradeWaiting{"1 deploy in flight", 90000}),
            (UpgradeWaiting{"1 deploy in flight", 90000}));
  Upgrading upgrading{"serverswap 0.1.0", "serverswap 0.2.0", "/usr/bin/serverswap"};
  EXPECT_EQ(round_trip(upgrading), upgrading);
}

// ---- Wrong types -------------------------------------------------------------------------

TEST(MessageDecode, AWrongTypeNamesTheField) {
  EXPECT_EQ(error_for<TakeDown>(R"({"takeDown": 5})"), "takeDown must be a string");
  EXPECT_EQ(error_for<ReadyFor>(R"({"readyFor": {}})"), "readyFor must be a string");
  EXPECT_EQ(error_for<Fail>(R"({"fail": null})"), "fail must be a string");
  EXPECT_EQ(error_for<Welcome>(R"({"welcome": {"protocol": "1"}})"),
            "welcome.protocol must be an integer");
  EXPECT_EQ(error_for<Welcome>(R"({"welcome": true})"), "welcome must be an object");
  EXPECT_EQ(error_for<Welcome>(R"({"welcome": {"protocol": 1, "resumed": 1}})"),
            "welcome.resumed must be a boolean");
  EXPECT_EQ(error_for<ResourceReady>(R"({"resourceReady": 1, "address": "x"})"),
            "resourceReady must be a string");
  EXPECT_EQ(error_for<ResourceReady>(R"({"resourceReady": ":1", "address": 5})"),
            "resourceReady.address must be a string");
  EXPECT_EQ(error_for<ErrorReply>(R"({"error": {"x": 1}})"), "error must be a string");
  EXPECT_EQ(error_for<EinhornCommand>(R"({"command": 1})"),
            "einhorn command.command must be a string");
  EXPECT_EQ(error_for<UpgradeRequest>(R"({"upgrade": {"path": 1}})"),
            "upgrade.path must be a string");
  // Bodies without fields: `true` or an object, never false, a string or a number.
  EXPECT_EQ(error_for<UpgradeRequest>(R"({"upgrade": 5})"), "upgrade must be true or an object");
  EXPECT_EQ(error_for<UpgradeRequest>(R"({"upgrade": false})"),
            "upgrade must be true or an object");
  EXPECT_EQ(error_for<ServerUp>(R"({"serverUp": false})"), "serverUp must be true or an object");
  EXPECT_EQ(error_for<ServerUp>(R"({"serverUp": "nope"})"), "serverUp must be true or an object");
  EXPECT_EQ(error_for<ServerUp>(R"({"serverUp": null})"), "serverUp must be true or an object");
  EXPECT_EQ(error_for<StopRequest>(R"({"stop": 0})"), "stop must be true or an object");
  EXPECT_EQ(error_for<Stopped>(R"({"stopped": false})"), "stopped must be true or an object");
  EXPECT_EQ(error_for<HelloRequest>(R"({"hello": {"role": "control"}})"),
            "hello.protocol is required");
  EXPECT_EQ(error_for<Event>(R"({"event": {"time": "t", "kind": 1, "text": ""}})"),
            "event.kind must be a string");
  EXPECT_EQ(error_for<Event>(R"({"event": {"time": "t", "kind": "up"}})"),
            "event.text is required");
  EXPECT_EQ(error_for<Deployed>(R"({"deployed": {"id": "x", "pid": "1", "replaced": []}})"),
            "deployed.pid must be an integer");
  EXPECT_EQ(error_for<Deployed>(R"({"deployed": {"id": "x", "pid": 1, "replaced": ["1"]}})"),
            "deployed.replaced must be an array of integers");
  EXPECT_EQ(error_for<Deployed>(R"({"deployed": {"id": "x", "pid": 1, "replaced": 3}})"),
            "deployed.replaced must be an array of integers");
  EXPECT_EQ(error_for<Deployed>(
                R"({"deployed": {"id": "x", "pid": 1, "replaced": [], "stateFile": {"path": 1}}})"),
            "deployed.stateFile.path must be a string");
  EXPECT_EQ(error_for<DeployFailed>(R"({"deployFailed": {"id": "x"}})"),
            "deployFailed.reason is required");
  EXPECT_EQ(error_for<ServerExited>(
                R"({"serverExited": {"id": "x", "pid": 1, "exit": "e", "replaced": "no"}})"),
            "serverExited.replaced must be a boolean");
  EXPECT_EQ(error_for<StatusReply>(R"({"status": {"servers": []}})"), "status.daemon is required");
  EXPECT_EQ(
      error_for<StatusReply>(
          R"({"status": {"daemon": {"pid": 1, "version": "v", "socket": "s", "stopping": false,
              "resources": []}, "servers": [{"id": 5}]}})"),
      "status.servers[0].id must be a string");
  EXPECT_EQ(
      error_for<StatusReply>(
          R"({"status": {"daemon": {"pid": 1, "version": "v", "socket": "s", "stopping": false,
              "resources": [{"name": ":1"}]}, "servers": []}})"),
      "status.daemon.resources[0].address is required");
  EXPECT_EQ(error_for<Reloaded>(R"({"reloaded": {"ok": true, "deploys": [{"argv": "a"}]}})"),
            "reloaded.deploys[0].argv must be an array of strings");
  EXPECT_EQ(error_for<ReloadQueued>(R"({"reloadQueued": {"reason": 2}})"),
            "reloadQueued.reason must be a string");
  EXPECT_EQ(error_for<UpgradeWaiting>(R"({"upgradeWaiting": {"reason": "r", "withinMs": 1.5}})"),
            "upgradeWaiting.withinMs must be an integer");
  EXPECT_EQ(error_for<Upgrading>(R"({"upgrading": {"from": "a", "to": "b"}})"),
            "upgrading.path is required");
}

// A daemon of an earlier version left fields out that later ones add: still decodes.
TEST(MessageDecode, FieldsAddedLaterAreOptional) {
  EXPECT_EQ(error_for<Deployed>(R"({"deployed": {"id": "x", "pid": 1, "replaced": []}})"), "(ok)");
  EXPECT_EQ(error_for<StatusReply>(
                R"({"status": {"daemon": {"pid": 1, "version": "v", "socket": "s",
                    "stopping": false, "resources": []}, "servers": []}})"),
            "(ok)");
  EXPECT_EQ(error_for<Welcome>(R"({"welcome": {"protocol": 1}})"), "(ok)");
}

}  // namespace
}  // namespace serverswap::protocol
