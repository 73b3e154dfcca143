// Every decoder of the daemon is total (docs/protocol.md sections 2, 3 and 7): a malformed
// message of each type, from a real peer, gets an `error` reply naming the bad field and the
// daemon serves on; bytes that are not UTF-8 in a deploy's environment, working directory
// and arguments reach the server exactly, and survive a SIGKILL of the daemon in state.json.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"

namespace serverswap::testing {
namespace {

const std::string kControlHello = "{\"hello\":{\"protocol\":1,\"role\":\"control\"}}\n";

// A raw connection to the control socket, as a buggy or hostile local program makes it.
class Peer {
 public:
  explicit Peer(const std::string& path) : fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{10, 0};  // bounds every read and write below
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    connected_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool connected() const { return connected_; }

  // Sends `line` and returns the next whole reply line ("" when the daemon hung up).
  std::string ask(const std::string& line) {
    if (::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(line.size()))
      return "";
    return next_line();
  }
  std::string next_line() {
    for (;;) {
      if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      char buf[16384];
      ssize_t n = read(fd_.get(), buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  UniqueFd fd_;
  bool connected_ = false;
  std::string buffer_;
};

struct Case {
  std::string line;
  std::string error;  // expected in the error reply
};

// The daemon still does its job: the server it runs answers, and `status` works.
void expect_serving(DaemonUnderTest& daemon, const std::string& address) {
  EXPECT_TRUE(http_ok(address)) << "the server stopped serving";
  Child status({SERVERSWAP_BIN, "--socket", daemon.socket(), "status"});
  EXPECT_EQ(status.wait(10s), 0) << status.output();
  EXPECT_EQ(daemon.process().wait(0ms), std::nullopt) << daemon.process().output();
}

TEST(Decode, AMalformedFirstLineOfEveryKindGetsAnErrorAndTheDaemonServesOn) {
  DaemonUnderTest daemon;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  std::string address = daemon.address_of("127.0.0.1:0");
  // The lines that aborted the daemon (an uncaught nlohmann type_error), and their kin.
  for (const Case& c : std::vector<Case>{
           {R"({"hello": {"id": "x", "protocol": "1"}})", "hello.protocol must be an integer"},
           {R"({"hello": {"protocol": 1, "role": 5}})", "hello.role must be a string"},
           {R"({"hello": {"id": "x", "protocol": 1, "upMessage": "yes"}})",
            "hello.upMessage must be a boolean"},
           {R"({"hello": {"id": 7, "protocol": 1}})", "hello.id must be a string"},
           {R"({"hello": [1, 2]})", "hello must be an object"},
           {R"({"hello": {"id": "x", "protocol": 1, "resume": {"holding": [1], "up": "y"}}})",
            "hello.resume.holding must be an array of strings"},
           {R"({"hello": {"id": "x", "protocol": 1, "resume": []}})",
            "hello.resume must be an object"},
           {R"({"command": 7, "pid": "x"})", "einhorn command.command must be a string"},
           // Once welcomed as a command; a role other than "control" is not a server's hello.
           {R"({"hello": {"role": "control"}})", "hello.protocol is required"},
           {R"({"hello": {"protocol": 2, "role": "control"}})", "unsupported protocol version"},
           {R"({"hello": {"id": "x", "protocol": 1, "role": "server"}})",
            R"(hello.role must be \"control\")"},
       }) {
    Peer peer(daemon.socket());
    ASSERT_TRUE(peer.connected());
    std::string reply = peer.ask(c.line + "\n");
    EXPECT_EQ(reply.rfind("{\"error\":", 0), 0u) << c.line << " -> " << reply;
    EXPECT_NE(reply.find(c.error), std::string::npos) << c.line << " -> " << reply;
  }
  expect_serving(daemon, address);
  EXPECT_EQ(daemon.process().output().find("internal error"), std::string::npos)
      << daemon.process().output();
}

TEST(Decode, AMalformedControlRequestOfEveryKindGetsAnErrorOnAConnectionThatStaysUsable) {
  DaemonUnderTest daemon;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  std::string address = daemon.address_of("127.0.0.1:0");
  Peer peer(daemon.socket());
  ASSERT_TRUE(peer.connected());
  ASSERT_NE(peer.ask(kControlHello).find("welcome"), std::string::npos);
  for (const Case& c : std::vector<Case>{
           {R"({"deploy": {"argv": ["/bin/true"], "follow": 1}})",
            "deploy.follow must be a string"},
           {R"({"deploy": {"argv": "/bin/true"}})", "deploy.argv must be an array"},
           {R"({"deploy": {"argv": []}})", "deploy.argv must be a non-empty array"},
           {R"({"deploy": {"cwd": "/"}})", "deploy.argv is required"},
           {R"({"deploy": {"argv": ["/bin/true", 5]}})",
            R"(deploy.argv[1] must be a string or {\"base64\": string})"},
           {R"({"deploy": {"argv": ["/bin/true"], "cwd": 5}})", "deploy.cwd must be a string"},
           // Each once ran the command in the daemon's own working directory.
           {R"({"deploy": {"argv": ["./server"], "cwd": "srv/app"}})",
            "deploy.cwd must be an absolute path"},
           {R"({"deploy": {"argv": ["/bin/true"], "env": ["A=1"]}})",
            "deploy.env must be an object"},
           {R"({"deploy": {"argv": ["/bin/true"], "env": {"A": 1}}})", "deploy.env.A must be"},
           {R"({"deploy": {"argv": ["/bin/true"], "envBase64": ["!!"]}})", "deploy.envBase64[0]"},
           {R"({"deploy": {"argv": [{"base64": "Zh=="}]}})", "deploy.argv[0]: base64"},
           {R"({"deploy": {"argv": ["/bin/true"], "user": 0}})", "deploy.user must be"},
           {R"({"deploy": {"argv": ["/bin/true"], "listen": [{"resource": 8080}]}})",
            "deploy.listen[0].resource must be"},
           {R"({"deploy": {"argv": ["/bin/true"], "readyAfterMs": "300"}})",
            "deploy.readyAfterMs must be an integer"},
           {R"({"deploy": {"argv": ["/bin/true"], "takedownSignal": 15}})",
            "deploy.takedownSignal must be a string"},
           {R"({"deploy": {"argv": ["/bin/true"], "workers": "4"}})",
            "deploy.workers must be an integer"},
           {R"({"deploy": {"argv": ["/bin/true"], "batch": 0}})",
            "deploy.batch must be an integer from 1 to 1024"},
           {R"({"deploy": {"argv": ["/bin/true"], "maxSurge": 1.5}})",
            "deploy.maxSurge must be an integer"},
           {R"({"deploy": [{"argv": [[[{}]]]}]})", "deploy must be an object"},
           {R"({"upgrade": {"path": 5}})", "upgrade.path must be a string"},
           // Each once performed an upgrade to the default binary.
           {R"({"upgrade": 5})", "upgrade must be true or an object"},
           {R"({"upgrade": false})", "upgrade must be true or an object"},
           // Mistyped requests without fields are refused, never carried out for everything.
           {R"({"stop": "web"})", "stop must be true or an object"},
           {R"({"stop": false})", "stop must be true or an object"},
           {R"({"reload": [1, 2]})", "reload must be true or an object"},
           {R"({"status": 1})", "status must be true or an object"},
       }) {
    std::string reply = peer.ask(c.line + "\n");
    EXPECT_EQ(reply.rfind("{\"error\":", 0), 0u) << c.line << " -> " << reply;
    EXPECT_NE(reply.find(c.error), std::string::npos) << c.line << " -> " << reply;
  }
  // The same connection still works, and so does the daemon.
  EXPECT_EQ(peer.ask("{\"status\": {\"junk\": [1, [2]]}}\n").rfind("{\"status\":", 0), 0u);
  expect_serving(daemon, address);
  EXPECT_EQ(daemon.process().output().find("internal error"), std::string::npos)
      << daemon.process().output();
}

TEST(Decode, AMalformedServerMessageOfEveryKindGetsAnErrorAndTheServerGoesOn) {
  DaemonUnderTest daemon;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  std::string address = daemon.address_of("127.0.0.1:0");
  std::string lines = daemon.dir() + "/lines";
  const std::vector<std::string> errors = {
      "readyFor must be a string",
      "readyFor must be a string",
      "onTakedown must be a string",
      "serving must be a string",
      "tookDown must be a string",
      "fail must be a string",
      "serverUp must be true or an object",
      "serverUp must be true or an object",
      "hello was already said",
  };
  std::ofstream(lines) << R"({"readyFor": 5})"
                       << "\n"
                       << R"({"readyFor": {"a": [1, {"b": null}]}})"
                       << "\n"
                       << R"({"onTakedown": [":8080"]})"
                       << "\n"
                       << R"({"serving": null})"
                       << "\n"
                       << R"({"tookDown": false})"
                       << "\n"
                       << R"({"fail": ["why"]})"
                       << "\n"
                       // Each once marked the starting server up (and its deploy succeeded).
                       << R"({"serverUp": false})"
                       << "\n"
                       << R"({"serverUp": "nope"})"
                       << "\n"
                       << R"({"hello": {"id": "x", "protocol": "1"}})"
                       << "\n";
  // A real server, in its own session, so that it is let in as one.
  // On a resource of its own: it does not answer HTTP, so it must not replace the server.
  std::string own = "unix:" + daemon.dir() + "/abuse.sock";
  auto deployed = daemon.deploy({FAULT_SERVER_BIN, "decode-abuse", own, lines});
  ASSERT_EQ(deployed.code, 0) << deployed.output << daemon.process().output();
  // Its output reaches the daemon's log through a pipe the harness reads on a thread.
  for (size_t i = 0; i < errors.size(); ++i) {
    std::string tag = "reply " + std::to_string(i + 1) + ": {\"error\":\"" + errors[i];
    EXPECT_TRUE(daemon.process().wait_for_output(tag, 5s)) << tag << "\n"
                                                           << daemon.process().output();
  }
  std::string out = daemon.process().output();
  expect_serving(daemon, address);
  EXPECT_EQ(out.find("internal error"), std::string::npos) << out;
}

// `serverswap CMD` from a shell whose environment, working directory and arguments hold bytes
// that are not UTF-8 (a Latin-1 locale's é, 0xE9): the first-run daemon deploys it, the
// server sees exactly those bytes, state.json is written, and after a SIGKILL of the daemon
// a new one takes the server back with the same request: a reload runs it again, the same.
TEST(Decode, BytesThatAreNotUtf8ReachTheServerExactlyAndSurviveARestart) {
  char pattern[] = "/tmp/serverswap-decode-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const std::string socket = dir + "/control.sock";
  const std::string cwd = dir + "/caf\xe9-\xff";
  const std::string runs = dir + "/runs";
  ASSERT_TRUE(std::filesystem::create_directory(cwd));
  // Each run of the server appends "$LEGACY|$(pwd -P)|$1" and stays until taken down.
  const std::string script =
      "printf '%s|%s|%s\\n' \"$LEGACY\" \"$(pwd -P)\" \"$1\" >> \"$RUNS\"; exec sleep 600";
  const std::vector<std::string> options = {"--socket",        socket, "--takedown-timeout", "2s",
                                            "--adopt-timeout", "1s"};
  // cd into the directory, then serverswap with the daemon's options and the command.
  std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"",
                                   "sh",      cwd,  SERVERSWAP_BIN};
  argv.insert(argv.end(), options.begin(), options.end());
  for (const std::string& a :
       {std::string("--ready-after"), std::string("200ms"), std::string("/bin/sh"),
        std::string("-c"), script, std::string("sh"), std::string("arg-\xe9")})
    argv.push_back(a);
  const std::string expected =
      "caf\xe9|" + std::filesystem::canonical(cwd).string() + "|arg-\xe9\n";
  std::map<std::string, std::string> env = {{"LEGACY", "caf\xe9"}, {"RUNS", runs}};
  // Kept to the end: its output pipe stays open in the server it started, which outlives it.
  auto first_run = std::make_unique<Child>(argv, env);
  {
    ASSERT_TRUE(first_run->wait_for_output("is up", 10s)) << first_run->output();
    EXPECT_EQ(read_file(runs), expected);
    std::string state_path = socket + ".state.json";
    ASSERT_TRUE(eventually(
        [&] { return read_file(state_path).find("\"state\":\"up\"") != std::string::npos; }, 5s))
        << read_file(state_path) << first_run->output();
    EXPECT_NE(read_file(state_path).find("envBase64"), std::string::npos) << read_file(state_path);
    first_run->signal(SIGKILL);
    ASSERT_TRUE(first_run->wait(10s).has_value());
    EXPECT_EQ(first_run->output().find("internal error"), std::string::npos);
  }
  // A new daemon takes the server back from state.json; a reload runs its request again.
  std::vector<std::string> again_argv = {SERVERSWAP_BIN};
  again_argv.insert(again_argv.end(), options.begin(), options.end());
  again_argv.push_back("daemon");
  Child again(again_argv);
  ASSERT_TRUE(again.wait_for_output("daemon listening on", 10s)) << again.output();
  ASSERT_TRUE(again.wait_for_output("taken back from state.json", 10s)) << again.output();
  Child reload({SERVERSWAP_BIN, "--socket", socket, "reload"});
  EXPECT_EQ(reload.wait(30s), 0) << reload.output() << again.output();
  EXPECT_EQ(read_file(runs), expected + expected) << again.output();
  Child stop({SERVERSWAP_BIN, "--socket", socket, "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(again.wait(30s), 0) << again.output();
  std::filesystem::remove_all(dir);
}

// Something on the socket that says welcome and then answers every request with `reply`:
// a daemon of another version, or no daemon at all. One connection, bounded waits.
class FakeDaemon {
 public:
  explicit FakeDaemon(const std::string& path)
      : listener_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    listening_ = bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                 listen(listener_.get(), 4) == 0;
  }
  bool listening() const { return listening_; }

  // Accepts one command, welcomes it, and answers its first request with `replies`.
  bool serve_one(const std::string& replies) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 10'000) != 1) return false;
    UniqueFd peer(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!peer) return false;
    timeval tv{10, 0};
    setsockopt(peer.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    auto read_line = [&] {
      char buf[65536];
      while (got.find('\n') == std::string::npos) {
        ssize_t n = read(peer.get(), buf, sizeof buf);
        if (n <= 0) return false;
        got.append(buf, static_cast<size_t>(n));
      }
      got.erase(0, got.find('\n') + 1);
      return true;
    };
    std::string welcome = "{\"welcome\":{\"protocol\":1,\"version\":\"fake\"}}\n";
    if (!read_line() || write(peer.get(), welcome.data(), welcome.size()) < 0) return false;
    if (!read_line()) return false;
    return write(peer.get(), replies.data(), replies.size()) ==
           static_cast<ssize_t>(replies.size());
  }

 private:
  UniqueFd listener_;
  bool listening_ = false;
};

// A malformed reply ends the command with a message and an exit code, never an abort.
TEST(Decode, AMalformedReplyDoesNotAbortTheCommand) {
  char pattern[] = "/tmp/serverswap-decode-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const std::string socket = dir + "/control.sock";
  FakeDaemon fake(socket);
  ASSERT_TRUE(fake.listening());
  struct ReplyCase {
    std::vector<std::string> args;
    std::string replies;
    int code;
  };
  for (const ReplyCase& c : std::vector<ReplyCase>{
           {{"status"}, "{\"status\":{\"daemon\":5,\"servers\":[{\"argv\":7}]}}\n", 4},
           {{"status"}, "{\"status\":[1,2]}\n", 4},
           {{"reload"}, "{\"reloaded\":{\"deploys\":[{\"argv\":\"x\",\"ok\":\"yes\"}]}}\n", 1},
           {{"reload"}, "{\"error\":{\"nested\":[1]}}\n", 1},
           {{"/bin/true"},
            "{\"event\":7}\n{\"deployed\":{\"replaced\":5,\"pid\":[1],\"workers\":\"x\"}}\n",
            0},
           {{"/bin/true"}, "{\"deployFailed\":[]}\n", 1},
           {{"/bin/true"}, "{\"error\":5}\n", 1},
       }) {
    std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", socket};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Child command(argv);
    ASSERT_TRUE(fake.serve_one(c.replies)) << command.output();
    auto code = command.wait(10s);
    EXPECT_EQ(code, c.code) << c.replies << command.output();
    EXPECT_EQ(command.output().find("terminate called"), std::string::npos) << command.output();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace serverswap::testing
