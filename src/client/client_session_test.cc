#include "client/client_session.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>
#include <vector>

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

}  // namespace
}  // namespace serverswap::client
