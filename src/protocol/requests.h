// Requests: the messages the daemon receives, as typed structs, each with its encoder and its
// total decoder side by side (docs/protocol.md sections 3, 7 and 11; leveldb's VersionEdit
// EncodeTo/DecodeFrom is the model). `T::encode()` is the whole message as it goes on the
// wire ({"hello": {...}}), `T::decode(message)` takes a decoded line and never throws. The
// messages of section 3 whose body is one string are in protocol/server_messages.h, the
// daemon's replies there and in protocol/control_replies.h. A decoder never throws: a body of the
// wrong shape, a field of the wrong type or a missing required field is a Status whose message
// names the field and the type it must have ("hello.protocol must be an integer"), fit for
// an `error` reply. Which values are acceptable (a protocol version, a resource's syntax, a
// signal's name) is for the caller to judge; the decoders check shapes and ranges only.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "protocol/app_name.h"
#include "protocol/message.h"

namespace serverswap::protocol {

// Reads the fields of one JSON object. The first wrong field is remembered and every read
// after it returns its fallback, so that a decoder reads all its fields and checks status()
// once. Not thread-safe; borrows `value`, which must outlive it.
class FieldReader {
 public:
  // `where` names the object in errors: "hello", "deploy.listen[2]".
  FieldReader(const Json& value, std::string where);

  bool has(const char* key) const;
  std::string string(const char* key, bool required, std::string fallback = "");
  std::optional<std::string> optional_string(const char* key);
  // An integer (never a float or a numeric string) from `min` to `max`.
  int64_t integer(const char* key, bool required, int64_t min, int64_t max, int64_t fallback = 0);
  std::optional<int64_t> optional_integer(const char* key, int64_t min, int64_t max);
  bool boolean(const char* key, bool required, bool fallback = false);
  // nullptr when absent (or after an error); else the array or object.
  const Json* array(const char* key, bool required);
  const Json* object(const char* key, bool required);
  // An array whose elements are all strings.
  std::vector<std::string> strings(const char* key, bool required);
  // An array whose elements are all integers (pids).
  std::vector<int64_t> integers(const char* key, bool required);

  Status status() const { return status_; }
  bool ok() const { return status_.ok(); }
  const std::string& where() const { return where_; }
  // Records `text` (prefixed with where().key) as the error unless one is recorded already.
  void fail(const char* key, const std::string& text);

 private:
  const Json* field(const char* key, bool required);

  const Json& value_;
  std::string where_;
  Status status_;
};

// ---- Server messages (section 3) ---------------------------------------------------------

struct ResumeRequest {
  std::vector<std::string> holding;      // resources, one descriptor each, in order
  std::vector<std::string> on_takedown;  // subscriptions
  bool up = false;
  bool operator==(const ResumeRequest&) const = default;
};

// A server's hello, or with "role": "control" a command's.
struct HelloRequest {
  bool control = false;
  int64_t protocol = 0;  // required of a server and of a command
  std::string id;        // a server's SERVERSWAP_ID
  std::optional<int64_t> pid;
  bool up_message = false;
  std::optional<ResumeRequest> resume;

  static constexpr const char* kName = "hello";
  // A control hello is {"protocol", "role"}; a server's {"id", "pid", "protocol",
  // "upMessage" (when true), "resume"}, in that order, as the client libraries send it.
  Json encode() const;
  static Result<HelloRequest> decode(const Message& message);
  bool operator==(const HelloRequest&) const = default;
};
Result<HelloRequest> decode_hello(const Json& body);
// True when a hello's body has a "resume" field, whatever its value: such a hello may carry
// descriptors and takes the resume path, which decodes it and refuses it as a whole.
bool is_resume_hello(const Json& body);

// The messages whose body is one string: readyFor, onTakedown, serving, tookDown, fail.
// An error ("readyFor must be a string") for another type.
Result<std::string> decode_string_body(const std::string& name, const Json& body);

// einhorn's {"command": "worker:ack", "pid": N}: `whole` is the message, pid optional.
struct EinhornCommand {
  std::string command;
  std::optional<int64_t> pid;

  static constexpr const char* kName = "command";
  Json encode() const;
  static Result<EinhornCommand> decode(const Message& message);  // reads message.whole
  bool operator==(const EinhornCommand&) const = default;
};
Result<EinhornCommand> decode_einhorn_command(const Json& whole);

// ---- Control requests (section 7) --------------------------------------------------------

struct ListenRequest {
  std::string name;  // may be empty
  std::string resource;
  bool operator==(const ListenRequest&) const = default;
};

// A deploy request's fields (sections 7 and 10), as the CLI sends them and state.json keeps
// them. argv, cwd and env may hold any bytes but NUL (see protocol/bytes.h).
struct DeployRequest {
  std::vector<std::string> argv;  // non-empty
  // "name": the app this deploy is a version of (protocol/app_name.h); empty: the daemon
  // derives it from argv (derive_app_name).
  std::string name;
  // "replace": apps whose resources this deploy may take over (--replace APP); without it a
  // resource another app serves is refused.
  std::vector<std::string> replace;
  std::string cwd;
  std::vector<std::string> env;  // KEY=VALUE
  std::string user;
  std::string group;
  bool follow_exit = false;  // "follow": "exit" (else "up")
  std::vector<ListenRequest> listen;
  // "grant": resources a server run as another user (--user) may ask for beyond what its
  // user could bind (--grant RESOURCE; docs/protocol.md section 5).
  std::vector<std::string> grants;
  std::optional<int64_t> ready_after_ms;  // 0 to kMaxReadyAfterMs
  // "confirmMs" (--confirm): once up, alive this long before it replaces anyone; 0 to
  // kMaxReadyAfterMs (0: no window). Absent: the default of how it comes up.
  std::optional<int64_t> confirm_ms;
  std::optional<std::string> takedown_signal;
  std::optional<int> workers, batch, max_surge;  // 1 to kMaxWorkers
  int worker = -1;  // which copy this server is: state.json only, a control deploy's is ignored

  static constexpr const char* kName = "deploy";
  Json encode() const;  // {"deploy": encode_deploy(*this)}
  static Result<DeployRequest> decode(const Message& message);
  bool operator==(const DeployRequest&) const = default;
};
inline constexpr int64_t kMaxReadyAfterMs = 2'147'483'647;  // ~24.8 days
inline constexpr int kMaxWorkers = 1024;
Result<DeployRequest> decode_deploy(const Json& body);
// The body of a deploy message for `request`, bytes that are not UTF-8 encoded losslessly.
// Fields left at their defaults are left out, except argv, cwd, env and follow.
Json encode_deploy(const DeployRequest& request);

// {"upgrade": {"path": "/usr/bin/serverswap"}}: path optional; {"upgrade": true} asks for
// the default binary; any other body is an error ("upgrade must be true or an object").
struct UpgradeRequest {
  std::optional<std::string> path;

  static constexpr const char* kName = "upgrade";
  Json encode() const;  // {"upgrade": {}} without a path
  static Result<UpgradeRequest> decode(const Message& message);
  bool operator==(const UpgradeRequest&) const = default;
};
Result<UpgradeRequest> decode_upgrade(const Json& body);

// {"status": true}, {"stop": true}, {"reload": true}: requests without fields. The body is
// `true` or an object (whose fields later versions may define; none is read today); any
// other body is an error ("stop must be true or an object"), so that a mistyped request
// ({"stop": "web"}) is refused rather than carried out for everything.
template <const char* Name>
struct FlagRequest {
  static constexpr const char* kName = Name;
  Json encode() const { return make(kName, true); }
  static Result<FlagRequest> decode(const Message& message) {
    if (Status s = expect_true_or_object(message.body, kName); !s.ok()) return s;
    return FlagRequest{};
  }
  bool operator==(const FlagRequest&) const = default;
};

// {"status": true}: the daemon, every server, crash loop and app, each app without its list
// of versions. {"status": {"app": "web"}}: the same, with app web's versions (an addition
// within version 1; a daemon that predates it answers as to `true`, with every app's
// versions). `app`, when given, must be an app name.
struct StatusRequest {
  std::optional<std::string> app;

  static constexpr const char* kName = "status";
  Json encode() const { return app ? make(kName, {{"app", *app}}) : make(kName, true); }
  static Result<StatusRequest> decode(const Message& message);
  bool operator==(const StatusRequest&) const = default;
};

// {"reload": true}: every up server's command deployed again. {"reload": {"app": "web"}}:
// only app web's (an addition within version 1; a daemon that predates it reloads every app,
// which is still a zero-downtime redeploy).
struct ReloadRequest {
  std::optional<std::string> app;

  static constexpr const char* kName = "reload";
  Json encode() const { return app ? make(kName, {{"app", *app}}) : make(kName, true); }
  static Result<ReloadRequest> decode(const Message& message);
  bool operator==(const ReloadRequest&) const = default;
};

// Requests about one app, {"NAME": {"app": "web"}} (additions within version 1: a daemon
// that predates them answers `error` "unknown control request"). `app` is required and must
// be an app name (protocol/app_name.h), else an `error` naming the field.
//   rollback: the app's previous good version deployed again (replies as a deploy's);
//   restart:  its current version deployed again, running or not (replies as a deploy's);
//   rm:       its servers stopped and its versions and settings forgotten (`removed`).
// `follow` ("up", the default, or "exit": serverswap-deploy) is a deploy's (DeployRequest):
// with "exit", a rollback's or restart's connection stays open until `serverExited`. rm
// ignores it. Encoded only when "exit", so that a request without it is what earlier
// clients sent.
template <const char* Name>
struct AppRequest {
  std::string app;
  bool follow_exit = false;

  static constexpr const char* kName = Name;
  Json encode() const {
    Json body = {{"app", app}};
    if (follow_exit) body["follow"] = "exit";
    return make(kName, std::move(body));
  }
  static Result<AppRequest> decode(const Message& message) {
    FieldReader r(message.body, kName);
    AppRequest request;
    request.app = r.string("app", true);
    std::string follow = r.string("follow", false, "up");
    if (r.ok())
      if (Status s = check_app_name(request.app); !s.ok())
        r.fail("app", "is not an app name: " + s.message());
    if (r.ok() && follow != "up" && follow != "exit")
      r.fail("follow", "must be \"up\" or \"exit\"");
    if (!r.ok()) return r.status();
    request.follow_exit = follow == "exit";
    return request;
  }
  bool operator==(const AppRequest&) const = default;
};
inline constexpr char kRollbackName[] = "rollback";
inline constexpr char kRestartName[] = "restart";
inline constexpr char kRmName[] = "rm";
using RollbackRequest = AppRequest<kRollbackName>;
using RestartRequest = AppRequest<kRestartName>;
using RmRequest = AppRequest<kRmName>;

// {"stop": true}: every server, then the daemon exits. {"stop": {"app": "web"}}: only that
// app's servers (an addition within version 1; a daemon that predates it reads any object as
// `true` and stops everything). `app` must be an app name (protocol/app_name.h).
struct StopRequest {
  std::optional<std::string> app;

  static constexpr const char* kName = "stop";
  Json encode() const { return app ? make(kName, {{"app", *app}}) : make(kName, true); }
  static Result<StopRequest> decode(const Message& message);
  bool operator==(const StopRequest&) const = default;
};

}  // namespace serverswap::protocol
