#include "protocol/requests.h"

#include <gtest/gtest.h>

#include "protocol/bytes.h"

namespace serverswap::protocol {
namespace {

Json parse(const std::string& text) {
  return Json::parse(text);
}

template <class T>
std::string error_of(const Result<T>& result) {
  return result.ok() ? "(ok)" : result.status().message();
}

// ---- hello -------------------------------------------------------------------------------

TEST(DecodeHello, AServerHelloWithEveryField) {
  auto hello =
      decode_hello(parse(R"({"id": "1.ab", "pid": 42, "protocol": 1, "upMessage": true})"));
  ASSERT_TRUE(hello.ok()) << error_of(hello);
  EXPECT_FALSE(hello->control);
  EXPECT_EQ(hello->id, "1.ab");
  EXPECT_EQ(hello->pid, 42);
  EXPECT_EQ(hello->protocol, 1);
  EXPECT_TRUE(hello->up_message);
  EXPECT_FALSE(hello->resume);
}

TEST(DecodeHello, AControlHelloNeedsNoIdButAProtocol) {
  auto hello = decode_hello(parse(R"({"protocol": 1, "role": "control"})"));
  ASSERT_TRUE(hello.ok()) << error_of(hello);
  EXPECT_TRUE(hello->control);
  // {"role": "control"} alone once got a welcome: a command says its protocol too.
  EXPECT_EQ(error_of(decode_hello(parse(R"({"role": "control"})"))), "hello.protocol is required");
  // "control" is the only role: another is not taken for a server's hello.
  EXPECT_EQ(error_of(decode_hello(parse(R"({"id": "x", "protocol": 1, "role": "server"})"))),
            "hello.role must be \"control\" (a server's hello has none)");
}

TEST(DecodeHello, AResumeHello) {
  auto hello = decode_hello(parse(R"({"id": "x", "protocol": 1, "resume":
      {"holding": [":8080", "unix:/a"], "onTakedown": [":8080"], "up": true}})"));
  ASSERT_TRUE(hello.ok()) << error_of(hello);
  ASSERT_TRUE(hello->resume);
  EXPECT_EQ(hello->resume->holding, (std::vector<std::string>{":8080", "unix:/a"}));
  EXPECT_EQ(hello->resume->on_takedown, (std::vector<std::string>{":8080"}));
  EXPECT_TRUE(hello->resume->up);
}

TEST(DecodeHello, EachWrongFieldIsNamedWithTheTypeItMustHave) {
  struct Case {
    const char* body;
    const char* error;
  };
  for (const Case& c : {
           Case{R"("hi")", "hello must be an object"},
           Case{R"([1])", "hello must be an object"},
           Case{R"({"id": "x", "protocol": "1"})", "hello.protocol must be an integer"},
           Case{R"({"id": "x", "protocol": 1.5})", "hello.protocol must be an integer"},
           Case{R"({"id": "x"})", "hello.protocol is required"},
           Case{R"({"protocol": 1})", "hello.id is required"},
           Case{R"({"id": 5, "protocol": 1})", "hello.id must be a string"},
           Case{R"({"protocol": 1, "role": 5})", "hello.role must be a string"},
           Case{R"({"protocol": "x", "role": "control"})", "hello.protocol must be an integer"},
           Case{R"({"id": "x", "protocol": 1, "upMessage": "yes"})",
                "hello.upMessage must be a boolean"},
           Case{R"({"id": "x", "protocol": 1, "pid": "12"})", "hello.pid must be an integer"},
           Case{R"({"id": "x", "protocol": 1, "pid": -1})",
                "hello.pid must be an integer from 0 to 2147483647"},
           Case{R"({"id": "x", "protocol": 18446744073709551615})",
                "hello.protocol must be an integer from -9223372036854775808 to "
                "9223372036854775807"},
           Case{R"({"id": "x", "protocol": 1, "resume": []})", "hello.resume must be an object"},
           Case{R"({"id": "x", "protocol": 1, "resume": {"up": true}})",
                "hello.resume.holding is required"},
           Case{R"({"id": "x", "protocol": 1, "resume": {"holding": [1], "up": true}})",
                "hello.resume.holding must be an array of strings"},
           Case{R"({"id": "x", "protocol": 1, "resume": {"holding": [], "up": 1}})",
                "hello.resume.up must be a boolean"},
           Case{R"({"id": "x", "protocol": 1, "resume": {"holding": []}})",
                "hello.resume.up is required"},
           Case{R"({"id": "x", "protocol": 1, "resume": {"holding": [], "up": true,
                    "onTakedown": {"a": 1}}})",
                "hello.resume.onTakedown must be an array of strings"},
       }) {
    EXPECT_EQ(error_of(decode_hello(parse(c.body))), c.error) << c.body;
  }
}

// ---- bodies that are one string ------------------------------------------------------------

TEST(DecodeStringBody, AStringOrAnErrorNamingTheMessage) {
  for (const char* name : {"readyFor", "onTakedown", "serving", "tookDown", "fail"}) {
    EXPECT_EQ(*decode_string_body(name, Json(":8080")), ":8080");
    for (const Json& bad : {Json(5), Json(nullptr), Json::array(), Json::object(), Json(true)})
      EXPECT_EQ(error_of(decode_string_body(name, bad)), std::string(name) + " must be a string");
  }
}

TEST(DecodeEinhornCommand, CommandAndOptionalPid) {
  auto ack = decode_einhorn_command(parse(R"({"command": "worker:ack", "pid": 12})"));
  ASSERT_TRUE(ack.ok()) << error_of(ack);
  EXPECT_EQ(ack->command, "worker:ack");
  EXPECT_EQ(ack->pid, 12);
  EXPECT_EQ(error_of(decode_einhorn_command(parse(R"({"command": 5})"))),
            "einhorn command.command must be a string");
  EXPECT_EQ(error_of(decode_einhorn_command(parse(R"({"command": "worker:ack", "pid": "x"})"))),
            "einhorn command.pid must be an integer");
}

// ---- deploy --------------------------------------------------------------------------------

TEST(DecodeDeploy, EveryField) {
  auto deploy = decode_deploy(parse(R"({"argv": ["./srv", "-p"], "cwd": "/srv", "env": {"A": "1"},
      "user": "app", "group": "staff", "follow": "exit",
      "listen": [{"name": "web", "resource": ":8080"}, {"resource": "unix:/a"}],
      "readyAfterMs": 300, "takedownSignal": "SIGINT", "workers": 4, "batch": 2, "maxSurge": 3})"));
  ASSERT_TRUE(deploy.ok()) << error_of(deploy);
  EXPECT_EQ(deploy->argv, (std::vector<std::string>{"./srv", "-p"}));
  EXPECT_EQ(deploy->cwd, "/srv");
  EXPECT_EQ(deploy->env, (std::vector<std::string>{"A=1"}));
  EXPECT_EQ(deploy->user, "app");
  EXPECT_EQ(deploy->group, "staff");
  EXPECT_TRUE(deploy->follow_exit);
  ASSERT_EQ(deploy->listen.size(), 2u);
  EXPECT_EQ(deploy->listen[0].name, "web");
  EXPECT_EQ(deploy->listen[1].resource, "unix:/a");
  EXPECT_EQ(deploy->ready_after_ms, 300);
  EXPECT_EQ(deploy->takedown_signal, "SIGINT");
  EXPECT_EQ(deploy->workers, 4);
  EXPECT_EQ(deploy->batch, 2);
  EXPECT_EQ(deploy->max_surge, 3);
  EXPECT_EQ(deploy->worker, -1);
}

TEST(DecodeDeploy, EachWrongFieldIsNamedWithTheTypeItMustHave) {
  struct Case {
    const char* body;
    const char* error;
  };
  for (const Case& c : {
           Case{R"(true)", "deploy must be an object"},
           Case{R"({})", "deploy.argv is required"},
           Case{R"({"argv": "./srv"})", "deploy.argv must be an array"},
           Case{R"({"argv": []})", "deploy.argv must be a non-empty array"},
           Case{R"({"argv": ["./srv", 5]})",
                "deploy.argv[1] must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["./srv\u0000x"]})", "deploy.argv[0] must not contain a NUL byte"},
           Case{R"({"argv": ["a"], "cwd": 5})",
                "deploy.cwd must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "cwd": {"base64": "%%%%"}})",
                "deploy.cwd: base64: a character outside the standard alphabet"},
           Case{R"({"argv": ["a"], "env": ["A=1"]})", "deploy.env must be an object"},
           Case{R"({"argv": ["a"], "env": {"A": 1}})",
                "deploy.env.A must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "env": {"": "x"}})",
                "deploy.env: a name must be non-empty, without '=' or NUL"},
           Case{R"({"argv": ["a"], "envBase64": "QT0x"})",
                "deploy.envBase64 must be an array of strings"},
           Case{R"({"argv": ["a"], "envBase64": ["QQ=="]})",
                "deploy.envBase64[0] must be the base64 of NAME=VALUE"},
           Case{R"({"argv": ["a"], "user": 0})",
                "deploy.user must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "group": []})",
                "deploy.group must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "follow": 1})", "deploy.follow must be a string"},
           Case{R"({"argv": ["a"], "follow": "down"})", "deploy.follow must be \"up\" or \"exit\""},
           Case{R"({"argv": ["a"], "listen": ":8080"})", "deploy.listen must be an array"},
           Case{R"({"argv": ["a"], "listen": [":8080"]})",
                "deploy.listen[0] must be {\"name\": string, \"resource\": string}"},
           Case{R"({"argv": ["a"], "listen": [{"resource": 8080}]})",
                "deploy.listen[0].resource must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "listen": [{"resource": ":1", "name": 1}]})",
                "deploy.listen[0].name must be a string or {\"base64\": string}"},
           Case{R"({"argv": ["a"], "readyAfterMs": "300"})",
                "deploy.readyAfterMs must be an integer"},
           Case{R"({"argv": ["a"], "readyAfterMs": -1})",
                "deploy.readyAfterMs must be an integer from 0 to 2147483647"},
           Case{R"({"argv": ["a"], "readyAfterMs": 1e3})",
                "deploy.readyAfterMs must be an integer"},
           Case{R"({"argv": ["a"], "takedownSignal": 15})",
                "deploy.takedownSignal must be a string"},
           Case{R"({"argv": ["a"], "workers": 0})",
                "deploy.workers must be an integer from 1 to 1024"},
           Case{R"({"argv": ["a"], "batch": "2"})", "deploy.batch must be an integer"},
           Case{R"({"argv": ["a"], "maxSurge": 99999999999999999999})",
                "deploy.maxSurge must be an integer"},
           Case{R"({"argv": ["a"], "worker": "1"})", "deploy.worker must be an integer"},
       }) {
    EXPECT_EQ(error_of(decode_deploy(parse(c.body))), c.error) << c.body;
  }
}

TEST(DecodeDeploy, BytesThatAreNotUtf8RoundTripExactly) {
  DeployRequest request;
  request.argv = {"./srv", "caf\xe9", "plain"};
  request.cwd = "/tmp/dir-\xff\xfe";
  request.env = {"A=1", "LEGACY=caf\xe9", "K\xe9Y=v"};
  request.listen = {{"", "unix:/tmp/s\xe9.sock"}};
  request.follow_exit = true;
  Json body = encode_deploy(request);
  std::string line = encode(make("deploy", body));
  EXPECT_EQ(line.find('\xe9'), std::string::npos) << "raw bytes on the wire";
  auto message = decode(line.substr(0, line.size() - 1));
  ASSERT_TRUE(message.ok()) << message.status().message();
  auto back = decode_deploy(message->body);
  ASSERT_TRUE(back.ok()) << error_of(back);
  EXPECT_EQ(back->argv, request.argv);
  EXPECT_EQ(back->cwd, request.cwd);
  EXPECT_EQ(back->env, (std::vector<std::string>{"A=1", "LEGACY=caf\xe9", "K\xe9Y=v"}));
  EXPECT_EQ(back->listen.at(0).resource, "unix:/tmp/s\xe9.sock");
  EXPECT_TRUE(back->follow_exit);
}

TEST(DecodeDeploy, UnknownFieldsAreIgnored) {
  EXPECT_TRUE(decode_deploy(parse(R"({"argv": ["a"], "future": {"x": [1]}})")).ok());
}

// ---- upgrade -------------------------------------------------------------------------------

TEST(DecodeUpgrade, TrueOrAnObjectAndNothingElse) {
  // Each of these once performed an upgrade to the default binary.
  for (const char* body : {"5", "false", "\"yes\"", "null", "[1]", "{\"path\": 1}"})
    EXPECT_FALSE(decode_upgrade(parse(body)).ok()) << body;
  EXPECT_EQ(error_of(decode_upgrade(parse("false"))), "upgrade must be true or an object");
  EXPECT_EQ(error_of(decode_upgrade(parse("5"))), "upgrade must be true or an object");
}

TEST(DecodeUpgrade, PathIsOptionalAndMustBeAString) {
  EXPECT_FALSE(decode_upgrade(Json(true))->path);
  EXPECT_FALSE(decode_upgrade(Json::object())->path);
  EXPECT_EQ(decode_upgrade(parse(R"({"path": "/bin/x"})"))->path, "/bin/x");
  EXPECT_EQ(error_of(decode_upgrade(parse(R"({"path": 5})"))), "upgrade.path must be a string");
}

// ---- whatever comes: no decoder throws -----------------------------------------------------

TEST(Decoders, NoBodyOfAnyShapeMakesOneThrow) {
  std::vector<Json> bodies = {Json(nullptr),
                              Json(true),
                              Json(0),
                              Json(-1),
                              Json(1.5),
                              Json(""),
                              Json("x"),
                              Json::array(),
                              Json::object(),
                              parse("[[[]]]"),
                              parse(R"({"a": {"b": [1, "2", null]}})")};
  std::vector<std::string> keys = {
      "id",        "protocol", "pid",          "upMessage",      "role",    "resume",
      "argv",      "cwd",      "env",          "envBase64",      "user",    "group",
      "follow",    "listen",   "readyAfterMs", "takedownSignal", "workers", "batch",
      "maxSurge",  "worker",   "path",         "command",        "holding", "up",
      "onTakedown"};
  std::vector<Json> all = bodies;
  for (const auto& key : keys)
    for (const auto& value : bodies) all.push_back(Json{{key, value}});
  for (const auto& body : all) {
    EXPECT_NO_THROW({
      (void)decode_hello(body);
      (void)decode_hello(Json{{"id", "x"}, {"protocol", 1}, {"resume", body}});
      (void)decode_string_body("readyFor", body);
      (void)decode_einhorn_command(body);
      (void)decode_deploy(body);
      (void)decode_deploy(Json{{"argv", Json::array({"a"})}, {"listen", Json::array({body})}});
      (void)decode_upgrade(body);
    }) << body.dump();
  }
}

}  // namespace
}  // namespace serverswap::protocol
