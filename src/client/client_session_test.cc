#include "client/client_session.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "base/testing/temp_dir.h"
#include "client/control_channel.h"
#include "client/test_peer.h"

namespace serverswap::client {
namespace {

using namespace std::chrono_literals;
using protocol::make;
using testing::accepts_a_connection;
using testing::Json;
using testing::Peer;

struct Connected {
  std::unique_ptr<ClientSession> session;
  std::unique_ptr<Peer> daemon;
  Json hello;
};

// A session over a socketpair. The daemon's first reply is written before the client says
// hello: the socket buffer holds it, so no thread is needed.
Connected open_session(Options options = {}, const Json& first_reply = testing::welcome()) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  Connected c;
  c.daemon = std::make_unique<Peer>(UniqueFd(fds[1]));
  c.daemon->send(first_reply);
  auto session = ClientSession::handshake(UniqueFd(fds[0]), "test-1", options);
  if (session.ok()) {
    c.session = std::move(*session);
    c.hello = c.daemon->next();
  } else {
    c.hello = Json(session.status().message());  // the error text, for the test to check
  }
  return c;
}

std::vector<std::string> takedowns;  // what record_takedown saw, in order

ClientSession::TakedownFn record_takedown() {
  takedowns.clear();
  return [](const std::string& resource) { takedowns.push_back(resource); };
}

bool is_nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

TEST(ClientSession, HelloNamesTheServerAndWelcomeConnects) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  EXPECT_TRUE(c.session->managed());
  EXPECT_GE(c.session->control_fd(), 0);
  EXPECT_EQ(c.hello, Json::parse(R"({"hello": {"id": "test-1", "pid": )" +
                                 std::to_string(::getpid()) + R"(, "protocol": 1}})"));
}

TEST(ClientSession, ExplicitUpIsPromisedInHello) {
  Connected c = open_session({.explicit_up = true});
  ASSERT_TRUE(c.session);
  EXPECT_EQ(c.hello["hello"]["upMessage"], true);
}

TEST(ClientSession, HelloErrorReplyFailsTheHandshake) {
  Json refusal = protocol::error_reply("unknown id test-1", make("hello", {{"id", "test-1"}}));
  Connected c = open_session({}, refusal);
  EXPECT_FALSE(c.session);
  EXPECT_EQ(c.hello, "hello: unknown id test-1");
}

TEST(ClientSession, HelloWithoutWelcomeTimesOut) {
  Connected c = open_session({.hello_timeout = 50ms}, make("takeDown", ":1"));
  EXPECT_FALSE(c.session);
  EXPECT_EQ(c.hello, "hello: no reply from the daemon within 50ms");
}

TEST(ClientSession, ReadyForReceivesAWorkingListeningSocket) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  UniqueFd listener = testing::loopback_listener();
  Json ready = make("resourceReady", "127.0.0.1:0");
  ready["address"] = handover::bound_address(listener.get());
  c.daemon->send(ready, listener.get());

  auto fd = c.session->ready_for("127.0.0.1:0");
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_EQ(c.daemon->next(), make("readyFor", "127.0.0.1:0"));
  EXPECT_NE(fd->get(), listener.get());
  EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(is_nonblocking(fd->get()));  // the shared flag is left alone
  EXPECT_TRUE(accepts_a_connection(fd->get()));
}

TEST(ClientSession, ReplyInTheCanonicalSpellingMatches) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  UniqueFd listener = testing::loopback_listener();
  c.daemon->send(make("resourceReady", "127.0.0.1:8080"), listener.get());
  auto fd = c.session->ready_for("localhost:8080");
  EXPECT_TRUE(fd.ok()) << fd.status().message();
}

TEST(ClientSession, ErrorReplySurfacesWithItsText) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  c.daemon->send(
      protocol::error_reply("bind :8080: Address already in use", make("readyFor", ":8080")));
  auto fd = c.session->ready_for(":8080");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().message(), "readyFor :8080: bind :8080: Address already in use");
}

// A refusal that names the readyFor already (most of the daemon's do) is not named twice:
// a server that failed with it said "readyFor :8080: readyFor :8080: …".
TEST(ClientSession, AnErrorReplyThatNamesTheReadyForIsNotPrefixedAgain) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  c.daemon->send(
      protocol::error_reply("readyFor :8080: app 'web' serves it", make("readyFor", ":8080")));
  auto fd = c.session->ready_for(":8080");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().message(), "readyFor :8080: app 'web' serves it");
}

TEST(ClientSession, ResourceReadyWithoutADescriptorIsAnError) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  c.daemon->send(make("resourceReady", ":8080"));
  auto fd = c.session->ready_for(":8080");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().message(), "readyFor :8080: resourceReady came without a file descriptor");
}

TEST(ClientSession, ReadyForHasADeadline) {
  Connected c = open_session({.ready_timeout = 50ms});
  ASSERT_TRUE(c.session);
  auto fd = c.session->ready_for(":8080");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().message(), "readyFor :8080: no reply from the daemon within 50ms");
}

TEST(ClientSession, TakeDownArrivingDuringReadyForIsNotLost) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  ASSERT_TRUE(c.session->on_takedown(":9000", record_takedown()).ok());
  EXPECT_EQ(c.daemon->next(), make("onTakedown", ":9000"));
  UniqueFd listener = testing::loopback_listener();
  // The daemon answers only once it has the request, so the client is waiting in ready_for.
  std::thread daemon([&] {
    EXPECT_EQ(c.daemon->next(), make("readyFor", ":8080"));
    c.daemon->send(make("takeDown", ":9000"));
    c.daemon->send(protocol::error_reply("unrelated", make("readyFor", ":7000")));
    c.daemon->send(make("resourceReady", ":8080"), listener.get());
  });
  auto fd = c.session->ready_for(":8080");
  daemon.join();
  EXPECT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_EQ(takedowns, std::vector<std::string>{":9000"});
}

TEST(ClientSession, TakeDownReadTogetherWithResourceReadyIsDelivered) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  ASSERT_TRUE(c.session->on_takedown(":9000", record_takedown()).ok());
  UniqueFd listener = testing::loopback_listener();
  c.daemon->send_raw(protocol::encode(make("resourceReady", ":8080")) +
                         protocol::encode(make("takeDown", ":9000")),
                     listener.get());
  auto fd = c.session->ready_for(":8080");
  EXPECT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_EQ(takedowns, std::vector<std::string>{":9000"});
}

TEST(ClientSession, TakeDownCallsTheCallbackOfItsResource) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  std::vector<std::string> a, b;
  c.session->on_takedown(":8080", [&](const std::string& r) { a.push_back(r); });
  c.session->on_takedown(":9090", [&](const std::string& r) { b.push_back(r); });
  c.daemon->send(make("takeDown", ":9090"));
  ASSERT_TRUE(testing::wait_readable(c.session->control_fd()));
  EXPECT_TRUE(c.session->dispatch().ok());
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b, std::vector<std::string>{":9090"});
}

TEST(ClientSession, DispatchWithNothingToReadDoesNotBlock) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  EXPECT_TRUE(c.session->dispatch().ok());
}

TEST(ClientSession, ALineSplitAcrossWritesIsJoined) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  ASSERT_TRUE(c.session->on_takedown(":9000", record_takedown()).ok());
  c.daemon->send_raw(R"({"takeDo)");
  ASSERT_TRUE(c.session->dispatch().ok());
  EXPECT_TRUE(takedowns.empty());
  c.daemon->send_raw(R"(wn": ":9000"})"
                     "\n");
  ASSERT_TRUE(c.session->dispatch().ok());
  EXPECT_EQ(takedowns, std::vector<std::string>{":9000"});
}

TEST(ClientSession, DescriptorStaysWithItsLineWhenTheLineIsSplit) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  UniqueFd listener = testing::loopback_listener();
  // A read stops after the bytes that carry a descriptor, so the client sees the first half
  // with the fd and the rest in a later read.
  c.daemon->send_raw(R"({"resource)", listener.get());
  c.daemon->send_raw(R"(Ready": ":8080"})"
                     "\n");
  auto fd = c.session->ready_for(":8080");
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_TRUE(accepts_a_connection(fd->get()));
}

// True once every copy of the pipe's write end is closed.
bool writer_closed(int read_end) {
  pollfd p{read_end, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

TEST(ClientSession, ADescriptorWithTheWrongMessageIsClosed) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  ASSERT_TRUE(c.session->on_takedown(":9000", record_takedown()).ok());
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  c.daemon->send(make("takeDown", ":9000"), pipe_fds[1]);
  ::close(pipe_fds[1]);
  ASSERT_TRUE(testing::wait_readable(c.session->control_fd()));
  EXPECT_TRUE(c.session->dispatch().ok());
  EXPECT_EQ(takedowns, std::vector<std::string>{":9000"});  // the message itself still counts
  EXPECT_TRUE(writer_closed(read_end.get()));
}

TEST(ClientSession, AnUnrequestedResourceReadyDescriptorIsClosed) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  c.daemon->send(make("resourceReady", ":8080"), pipe_fds[1]);
  ::close(pipe_fds[1]);
  ASSERT_TRUE(testing::wait_readable(c.session->control_fd()));
  EXPECT_TRUE(c.session->dispatch().ok());
  EXPECT_TRUE(writer_closed(read_end.get()));
}

TEST(ClientSession, OneWayMessagesAreSent) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  EXPECT_TRUE(c.session->server_up().ok());
  EXPECT_TRUE(c.session->took_down(":8080").ok());
  EXPECT_TRUE(c.session->fail("no database").ok());
  EXPECT_EQ(c.daemon->next(), make("serverUp", true));
  EXPECT_EQ(c.daemon->next(), make("tookDown", ":8080"));
  EXPECT_EQ(c.daemon->next(), make("fail", "no database"));
}

TEST(ClientSession, DaemonClosingTheConnectionIsReported) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  ASSERT_TRUE(c.session->on_takedown(":9000", record_takedown()).ok());
  c.daemon->send(make("takeDown", ":9000"));
  c.daemon->close();
  Status s = c.session->dispatch();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "the daemon closed the connection");
  EXPECT_EQ(takedowns, std::vector<std::string>{":9000"});  // sent before the close: delivered
  EXPECT_EQ(c.session->control_fd(), -1);
  EXPECT_EQ(c.session->server_up().message(),
            "serverUp: not connected to the daemon: the daemon closed the connection");
}

TEST(ClientSession, CallbacksCannotReenter) {
  Connected c = open_session();
  ASSERT_TRUE(c.session);
  std::string inner;
  c.session->on_takedown(
      ":9000", [&](const std::string&) { inner = c.session->ready_for(":1").status().message(); });
  c.daemon->send(make("takeDown", ":9000"));
  ASSERT_TRUE(testing::wait_readable(c.session->control_fd()));
  EXPECT_TRUE(c.session->dispatch().ok());
  EXPECT_EQ(inner, "readyFor :1: not allowed in a takedown callback");
}

TEST(ClientSession, StandaloneBindsItself) {
  auto session = ClientSession::standalone({});
  EXPECT_FALSE(session->managed());
  EXPECT_EQ(session->control_fd(), -1);
  auto fd = session->ready_for("127.0.0.1:0");
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_TRUE(is_nonblocking(fd->get()));  // as a socket from the daemon would be
  EXPECT_TRUE(accepts_a_connection(fd->get()));
  // The same resource again is the same socket, as under the daemon (port 0 included).
  auto again = session->ready_for("127.0.0.1:0");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(testing::bound_port(again->get()), testing::bound_port(fd->get()));
  EXPECT_TRUE(session->on_takedown("127.0.0.1:0", [](const std::string&) {}).ok());
  EXPECT_TRUE(session->server_up().ok());
  EXPECT_TRUE(session->took_down("127.0.0.1:0").ok());
  EXPECT_TRUE(session->dispatch().ok());
}

TEST(ClientSession, StandaloneBindErrorNamesTheResource) {
  auto session = ClientSession::standalone({});
  auto fd = session->ready_for("127.0.0.1:0");
  ASSERT_TRUE(fd.ok());
  std::string taken = "127.0.0.1:" + testing::bound_port(fd->get());
  auto again = ClientSession::standalone({})->ready_for(taken);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(),
            "readyFor " + taken + ": bind " + taken + ": Address already in use");
}

// ---- resume after a daemon restart (docs/protocol.md §11) -------------------------------

using Clock = std::chrono::steady_clock;

// The server's loop: poll the control socket with the session's timeout, then dispatch,
// until `done` (true) or `limit` passes (false).
bool run_loop_until(ClientSession& s, const std::function<bool()>& done,
                    std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int wait = s.timeout_ms() < 0 ? static_cast<int>(left)
                                  : std::min(s.timeout_ms(), static_cast<int>(left));
    pollfd p{s.control_fd(), POLLIN, 0};
    ::poll(&p, 1, wait);
    s.dispatch();
  }
  return true;
}

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

Json resume_hello(const Json& holding, const Json& on_takedown, bool up) {
  return Json::parse(R"({"hello": {"id": "test-1", "pid": )" + std::to_string(::getpid()) +
                     R"(, "protocol": 1, "resume": {"holding": )" + holding.dump() +
                     R"(, "onTakedown": )" + on_takedown.dump() + R"(, "up": )" +
                     (up ? "true" : "false") + "}}}");
}

Json resumed_welcome() {
  Json welcome = testing::welcome();
  welcome["welcome"]["resumed"] = true;
  return welcome;
}

// A session that got two listening sockets from its daemon, subscribed to one and is up.
struct Serving {
  testing::FakeListener next_daemon;
  Connected c;
  UniqueFd web = testing::loopback_listener(), admin = testing::loopback_listener();
  std::unique_ptr<ClientSession>& session = c.session;

  explicit Serving(Options options = {}) {
    options.socket_path = next_daemon.path();
    c = open_session(options);
    EXPECT_TRUE(c.session);
    if (!c.session) return;
    c.daemon->send(make("resourceReady", "127.0.0.1:8080"), web.get());
    EXPECT_TRUE(c.session->ready_for("127.0.0.1:8080").ok());
    c.daemon->send(make("resourceReady", "unix:/run/admin.sock"), admin.get());
    EXPECT_TRUE(c.session->ready_for("unix:/run/admin.sock").ok());
    EXPECT_TRUE(c.session->on_takedown("127.0.0.1:8080", record_takedown()).ok());
    EXPECT_TRUE(c.session->server_up().ok());
    EXPECT_EQ(c.daemon->next(), make("readyFor", "127.0.0.1:8080"));
    EXPECT_EQ(c.daemon->next(), make("readyFor", "unix:/run/admin.sock"));
    EXPECT_EQ(c.daemon->next(), make("onTakedown", "127.0.0.1:8080"));
    EXPECT_EQ(c.daemon->next(), make("serverUp", true));
  }

  // Kills the daemon: its end of the connection closes, and the server's loop runs until it
  // reconnects to the next daemon, which accepts.
  std::unique_ptr<Peer> restart_daemon() {
    c.daemon->close();
    if (!run_loop_until(*session, [&] { return next_daemon.has_client(0); })) return nullptr;
    return next_daemon.accept();
  }
};

TEST(ClientSessionResume, HandsBackItsSocketsInOrderWithSubscriptionsAndUp) {
  Serving s;
  ASSERT_TRUE(s.session);
  const auto lost_at = Clock::now();
  auto daemon = s.restart_daemon();
  ASSERT_TRUE(daemon);
  EXPECT_GE(Clock::now() - lost_at, 100ms);  // the first attempt waits 100 ms
  EXPECT_TRUE(s.session->reconnecting());

  std::vector<UniqueFd> fds;
  EXPECT_EQ(daemon->next_with_fds(fds),
            resume_hello({"127.0.0.1:8080", "unix:/run/admin.sock"}, {"127.0.0.1:8080"}, true));
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(inode_of(fds[0].get()), inode_of(s.web.get()));
  EXPECT_EQ(inode_of(fds[1].get()), inode_of(s.admin.get()));
  EXPECT_EQ(handover::bound_address(fds[0].get()), handover::bound_address(s.web.get()));

  daemon->send(resumed_welcome());
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->reconnecting(); }));
  EXPECT_EQ(s.session->timeout_ms(), -1);
  // A server of the new daemon in every respect: takeDown reaches the callback, and what it
  // sends reaches the new daemon.
  daemon->send(make("takeDown", "127.0.0.1:8080"));
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !takedowns.empty(); }));
  EXPECT_EQ(takedowns, std::vector<std::string>{"127.0.0.1:8080"});
  EXPECT_TRUE(s.session->took_down("127.0.0.1:8080").ok());
  EXPECT_EQ(daemon->next(), make("tookDown", "127.0.0.1:8080"));
}

TEST(ClientSessionResume, ResourcesTakenDownAreNotHandedBackAndUpFollowsServerUp) {
  Serving s({.explicit_up = true});
  ASSERT_TRUE(s.session);
  s.c.daemon->send(make("takeDown", "127.0.0.1:8080"));
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !takedowns.empty(); }));
  auto daemon = s.restart_daemon();
  ASSERT_TRUE(daemon);
  std::vector<UniqueFd> fds;
  Json hello = daemon->next_with_fds(fds);
  EXPECT_EQ(hello["hello"]["upMessage"], true);
  EXPECT_EQ(hello["hello"]["resume"]["holding"], Json::array({"unix:/run/admin.sock"}));
  EXPECT_EQ(hello["hello"]["resume"]["up"], true);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_EQ(inode_of(fds[0].get()), inode_of(s.admin.get()));
}

TEST(ClientSessionResume, WhatTheServerSaysWhileReconnectingGoesIntoTheResume) {
  testing::FakeListener next_daemon;
  Connected c = open_session({.explicit_up = true, .socket_path = next_daemon.path()});
  ASSERT_TRUE(c.session);
  UniqueFd web = testing::loopback_listener();
  c.daemon->send(make("resourceReady", ":8080"), web.get());
  ASSERT_TRUE(c.session->ready_for(":8080").ok());
  c.daemon->close();
  ASSERT_TRUE(run_loop_until(*c.session, [&] { return c.session->timeout_ms() > 0; }));
  EXPECT_EQ(c.session->control_fd(), -1);
  // Neither is an error: the resume hello carries them.
  EXPECT_TRUE(c.session->on_takedown(":8080", record_takedown()).ok());
  EXPECT_TRUE(c.session->server_up().ok());
  EXPECT_FALSE(c.session->ready_for(":9090").ok());
  ASSERT_TRUE(run_loop_until(*c.session, [&] { return next_daemon.has_client(0); }));
  auto daemon = next_daemon.accept();
  std::vector<UniqueFd> fds;
  Json hello = daemon->next_with_fds(fds);
  EXPECT_EQ(hello["hello"]["resume"], Json::parse(R"({"holding": [":8080"],
                                                     "onTakedown": [":8080"], "up": true})"));
  EXPECT_EQ(fds.size(), 1u);
}

TEST(ClientSessionResume, AnErrorReplyEndsReconnecting) {
  Serving s;
  ASSERT_TRUE(s.session);
  auto daemon = s.restart_daemon();
  ASSERT_TRUE(daemon);
  std::vector<UniqueFd> fds;
  daemon->next_with_fds(fds);
  daemon->send(protocol::error_reply("unknown server id test-1", make("hello", {})));
  daemon->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->reconnecting(); }));
  Status gone = s.session->dispatch();
  EXPECT_EQ(gone.message(), "the daemon refused to resume this server: unknown server id test-1");
  EXPECT_EQ(s.session->timeout_ms(), -1);
  EXPECT_EQ(s.session->control_fd(), -1);
  // Longer than two retry intervals: nothing connects again.
  run_loop_until(
      *s.session, [] { return false; }, 400ms);
  EXPECT_FALSE(s.next_daemon.has_client(0));
  EXPECT_FALSE(s.session->server_up().ok());
}

TEST(ClientSessionResume, NoReconnectAfterTheDaemonClosedWithAnError) {
  Serving s;
  ASSERT_TRUE(s.session);
  s.c.daemon->send(protocol::error_reply("too many connections", nullptr));
  s.c.daemon->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->dispatch().ok(); }));
  EXPECT_EQ(s.session->timeout_ms(), -1);
  run_loop_until(
      *s.session, [] { return false; }, 400ms);
  EXPECT_FALSE(s.next_daemon.has_client(0));
}

TEST(ClientSessionResume, NoReconnectOnceTakenDownOnEveryResource) {
  Serving s;
  ASSERT_TRUE(s.session);
  s.c.daemon->send(make("takeDown", "127.0.0.1:8080"));
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !takedowns.empty(); }));
  EXPECT_TRUE(s.session->took_down("unix:/run/admin.sock").ok());
  s.c.daemon->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->dispatch().ok(); }));
  EXPECT_EQ(s.session->dispatch().message(), "the daemon closed the connection");
  EXPECT_EQ(s.session->timeout_ms(), -1);
  run_loop_until(
      *s.session, [] { return false; }, 400ms);
  EXPECT_FALSE(s.next_daemon.has_client(0));
}

TEST(ClientSessionResume, NoReconnectAfterFail) {
  Serving s;
  ASSERT_TRUE(s.session);
  EXPECT_TRUE(s.session->fail("broken").ok());
  s.c.daemon->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->dispatch().ok(); }));
  EXPECT_EQ(s.session->timeout_ms(), -1);
}

TEST(ClientSessionResume, TakenDownWhileTheDaemonIsAwayEndsReconnecting) {
  Serving s;
  ASSERT_TRUE(s.session);
  s.c.daemon->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return s.session->timeout_ms() > 0; }));
  // The server stops accepting on both resources (a SIGTERM, say) before the first attempt.
  EXPECT_TRUE(s.session->took_down("127.0.0.1:8080").ok());
  EXPECT_TRUE(s.session->took_down("unix:/run/admin.sock").ok());
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return !s.session->reconnecting(); }));
  EXPECT_EQ(s.session->timeout_ms(), -1);
  EXPECT_FALSE(s.next_daemon.has_client(0));
}

TEST(ClientSessionResume, KeepsTryingAtLongerIntervals) {
  Serving s;
  ASSERT_TRUE(s.session);
  auto first = s.restart_daemon();
  ASSERT_TRUE(first);
  // This daemon goes away before its welcome: the next attempt comes after 200 ms.
  const auto closed_at = Clock::now();
  first->close();
  ASSERT_TRUE(run_loop_until(*s.session, [&] { return s.next_daemon.has_client(0); }));
  EXPECT_GE(Clock::now() - closed_at, 200ms);
  auto second = s.next_daemon.accept();
  std::vector<UniqueFd> fds;
  EXPECT_EQ(second->next_with_fds(fds)["hello"]["resume"]["holding"].size(), 2u);
  EXPECT_EQ(fds.size(), 2u);
}

// A socket where the daemon's should be, listened on by another user (who recreated a
// directory a cleaner of /tmp removed): the client refuses to talk to it, naming the uid,
// before sending a byte (a resume hello would give away the server's id and sockets).
TEST(ConnectUnix, ASocketListenedOnByAnotherUserIsNotTheDaemon) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to listen as another user";
  serverswap::testing::TempDir dir("connect-unix-test", 0777);
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/control.sock";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The impostor: uid 65534 listens, tells the parent, and waits to be killed.
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4) != 0)
      _exit(2);
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the impostor could not listen";
  ::close(ready[0]);
  auto fd = connect_unix(path);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.status().message().find("served by uid 65534"), std::string::npos)
      << fd.status().message();
  EXPECT_NE(fd.status().message().find("not the daemon"), std::string::npos);
}

}  // namespace
}  // namespace serverswap::client
