// The node relay against a fake Node (the IPC channel's end, a socketpair) and a fake daemon
// on a real socket path: it relays as before, and resumes the server with a restarted daemon
// on Node's behalf (docs/protocol.md §11).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "client/test_peer.h"

namespace serverswap::cli {
namespace {

using protocol::make;
using serverswap::client::testing::FakeListener;
using serverswap::client::testing::Json;
using serverswap::client::testing::Peer;
using serverswap::client::testing::ScopedEnv;

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

const Json kHello =
    Json::parse(R"({"hello": {"id": "test-1", "pid": 4321, "protocol": 1, "upMessage": true}})");

// A relay run in this process between `node` (the test) and daemons on `daemon_socket`.
struct RelayRun {
  FakeListener daemon_socket;
  std::unique_ptr<Peer> node;
  std::unique_ptr<Peer> daemon;  // the current daemon's end
  int exit_code = -1;
  std::thread relay;

  explicit RelayRun(const Json& hello = kHello) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    node = std::make_unique<Peer>(UniqueFd(fds[0]));
    ScopedEnv channel("NODE_CHANNEL_FD", std::to_string(fds[1]).c_str());
    ScopedEnv socket("SERVERSWAP_SOCKET", daemon_socket.path().c_str());
    relay = std::thread([&] { exit_code = node_relay_command(); });
    daemon = daemon_socket.accept();  // the relay read its environment before connecting
    node->send(hello);
    EXPECT_EQ(daemon->next(), hello);
  }
  ~RelayRun() {
    node->close();  // the server exited: the relay ends
    relay.join();
  }

  // Node asks for `resource`, the daemon answers with `listener`, Node acknowledges.
  void hand(const std::string& resource, int listener) {
    node->send(make("readyFor", resource));
    EXPECT_EQ(daemon->next(), make("readyFor", resource));
    daemon->send(make("resourceReady", resource), listener);
    std::vector<UniqueFd> fds;
    Json handle = node->next_with_fds(fds);
    EXPECT_EQ(handle["cmd"], "NODE_HANDLE");
    EXPECT_EQ(handle["msg"], make("resourceReady", resource));
    ASSERT_EQ(fds.size(), 1u);
    EXPECT_EQ(inode_of(fds[0].get()), inode_of(listener));
    node->send({{"cmd", "NODE_HANDLE_ACK"}});
  }

  // The daemon dies; the relay reconnects to the next one: its resume hello and fds.
  Json restart_daemon(std::vector<UniqueFd>& fds) {
    daemon->close();
    daemon = daemon_socket.accept();
    if (!daemon) return nullptr;
    return daemon->next_with_fds(fds);
  }
};

TEST(NodeRelay, ResumesTheServerWithARestartedDaemon) {
  RelayRun run;
  UniqueFd web = client::testing::loopback_listener();
  UniqueFd admin = client::testing::loopback_listener();
  run.hand(":8080", web.get());
  run.hand("unix:/run/admin.sock", admin.get());
  run.node->send(make("onTakedown", ":8080"));
  run.node->send(make("serverUp", true));
  EXPECT_EQ(run.daemon->next(), make("onTakedown", ":8080"));
  EXPECT_EQ(run.daemon->next(), make("serverUp", true));

  std::vector<UniqueFd> fds;
  Json hello = run.restart_daemon(fds);
  Json expected = kHello;
  expected["hello"]["resume"] = Json::parse(
      R"({"holding": [":8080", "unix:/run/admin.sock"], "onTakedown": [":8080"], "up": true})");
  EXPECT_EQ(hello, expected);
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(inode_of(fds[0].get()), inode_of(web.get()));
  EXPECT_EQ(inode_of(fds[1].get()), inode_of(admin.get()));

  // Node hears nothing of the resume itself, and takeDown from the new daemon reaches it.
  Json welcome = client::testing::welcome();
  welcome["welcome"]["resumed"] = true;
  run.daemon->send(welcome);
  run.daemon->send(make("takeDown", ":8080"));
  EXPECT_EQ(run.node->next(), make("takeDown", ":8080"));
  run.node->send(make("tookDown", ":8080"));
  EXPECT_EQ(run.daemon->next(), make("tookDown", ":8080"));
}

// The relay pairs descriptors as the C++ client does (one client core): a descriptor that
// came with another line is closed, not handed to Node with the next resourceReady, and
// that resourceReady reaches Node as a plain line (Node then rejects it).
TEST(NodeRelay, ADescriptorWithTheWrongMessageIsNotHandedToNode) {
  RelayRun run;
  UniqueFd stray = client::testing::loopback_listener();
  run.node->send(make("readyFor", ":8080"));
  EXPECT_EQ(run.daemon->next(), make("readyFor", ":8080"));
  run.daemon->send(make("takeDown", ":9090"), stray.get());
  run.daemon->send(make("resourceReady", ":8080"));
  std::vector<UniqueFd> fds;
  EXPECT_EQ(run.node->next_with_fds(fds), make("takeDown", ":9090"));
  EXPECT_EQ(run.node->next_with_fds(fds), make("resourceReady", ":8080"));
  EXPECT_TRUE(fds.empty());
}

// The `up` rule is the C++ client's: a hello that promises no serverUp resumes as up once
// it holds a socket.
TEST(NodeRelay, WithoutUpMessageTheResumeSaysUpOnceItHoldsASocket) {
  RelayRun run(Json::parse(R"({"hello": {"id": "test-1", "pid": 4321, "protocol": 1}})"));
  UniqueFd web = client::testing::loopback_listener();
  run.hand(":8080", web.get());
  std::vector<UniqueFd> fds;
  Json hello = run.restart_daemon(fds);
  EXPECT_EQ(hello["hello"]["resume"]["up"], true) << hello;
  EXPECT_EQ(fds.size(), 1u);
}

TEST(NodeRelay, AnErrorReplyToTheResumeEndsTheRelay) {
  RelayRun run;
  UniqueFd web = client::testing::loopback_listener();
  run.hand(":8080", web.get());
  std::vector<UniqueFd> fds;
  EXPECT_FALSE(run.restart_daemon(fds).is_null());
  run.daemon->send(protocol::error_reply("unknown server id test-1", kHello));
  run.daemon->close();
  // Node's end of the channel closes: the relay is gone, without reconnecting.
  ASSERT_TRUE(client::testing::wait_readable(run.node->fd()));
  char byte;
  EXPECT_EQ(::read(run.node->fd(), &byte, 1), 0);
  run.relay.join();
  EXPECT_EQ(run.exit_code, kFailed);
  EXPECT_FALSE(run.daemon_socket.has_client(300));
  run.relay = std::thread([] {});  // for the destructor's join
}

// A first hello the daemon refuses (an unknown SERVERSWAP_ID) and then closes on: Node hears
// the refusal, and the relay ends without reconnecting, whether Node's next request finds the
// connection closed (EPIPE) or the relay read the end of file first.
TEST(NodeRelay, AnErrorReplyToTheFirstHelloReachesNodeAndNothingReconnects) {
  RelayRun run;
  const Json refusal = protocol::error_reply("unknown server id test-1", kHello);
  run.daemon->send(refusal);
  run.daemon->close();
  // Node may write before it notices: by then the relay may have forwarded the refusal and
  // ended, so the write may fail with EPIPE (it did, 1 run in 6); the refusal is read either way.
  const std::string ready_for = protocol::encode(make("readyFor", ":8080"));
  (void)!::send(run.node->fd(), ready_for.data(), ready_for.size(), MSG_NOSIGNAL);
  EXPECT_EQ(run.node->next(), refusal);
  ASSERT_TRUE(client::testing::wait_readable(run.node->fd()));
  // Closed: an end of file, or a reset when the relay ended before reading Node's readyFor.
  char byte;
  errno = 0;
  ssize_t got = ::read(run.node->fd(), &byte, 1);
  EXPECT_TRUE(got == 0 || (got < 0 && errno == ECONNRESET)) << got << " " << errno;
  run.relay.join();
  EXPECT_EQ(run.exit_code, kFailed);
  EXPECT_FALSE(run.daemon_socket.has_client(300));
  run.relay = std::thread([] {});
}

TEST(NodeRelay, NoReconnectOnceTakenDownOnEveryResource) {
  RelayRun run;
  UniqueFd web = client::testing::loopback_listener();
  run.hand(":8080", web.get());
  run.daemon->send(make("takeDown", ":8080"));
  EXPECT_EQ(run.node->next(), make("takeDown", ":8080"));
  run.daemon->close();
  run.relay.join();
  EXPECT_EQ(run.exit_code, kFailed);
  EXPECT_FALSE(run.daemon_socket.has_client(300));
  run.relay = std::thread([] {});
}

// No daemon at the socket when the server starts: the relay tells Node why (the client
// runs standalone and says so itself) and ends, printing nothing of its own.
TEST(NodeRelay, NoDaemonAtStartIsToldToNode) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  Peer node{UniqueFd(fds[0])};
  ScopedEnv channel("NODE_CHANNEL_FD", std::to_string(fds[1]).c_str());
  ScopedEnv socket("SERVERSWAP_SOCKET", "/nonexistent/serverswap.sock");
  ::testing::internal::CaptureStderr();
  int exit_code = node_relay_command();  // owns and closes fds[1]
  std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(exit_code, kFailed);
  EXPECT_EQ(said, "");
  EXPECT_EQ(node.next(), Json::parse(R"({"noDaemon": {"socket": "/nonexistent/serverswap.sock",
                                                      "error": "No such file or directory"}})"));
  char byte;
  EXPECT_EQ(::read(node.fd(), &byte, 1), 0);  // and the channel closes
}

}  // namespace
}  // namespace serverswap::cli
