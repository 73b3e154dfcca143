// Inherited listening sockets: the three environment conventions parsed from text, matched
// against real bound sockets, and used by readyFor standalone and under a (fake) daemon. The
// systemd case needs fds 3 and up, so it runs in a forked child.
#include "client/inherited_sockets.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

#include "client/client_session.h"
#include "client/test_peer.h"
#include "serverswap/client.h"
#include "serverswap/serverswap.h"

namespace serverswap::client {
namespace {

using protocol::make;
using testing::accepts_a_connection;
using testing::bound_port;
using testing::FakeDaemon;
using testing::Json;
using testing::Peer;
using testing::ScopedEnv;

std::vector<int> fds_of(const InheritedSet& set) {
  std::vector<int> fds;
  for (const auto& s : set.sockets) fds.push_back(s.fd);
  return fds;
}

EnvLookup table(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

UniqueFd listener(const std::string& resource) {
  auto bound = handover::bind_listener(*protocol::parse_resource(resource));
  EXPECT_TRUE(bound.ok()) << bound.status().message();
  return bound.ok() ? std::move(bound->fd) : UniqueFd();
}

// Clears every variable of the three conventions for one test.
struct NoInheritedEnvironment {
  ScopedEnv a{"LISTEN_FDS", nullptr}, b{"LISTEN_PID", nullptr}, c{"LISTEN_FDNAMES", nullptr},
      d{"SERVER_STARTER_PORT", nullptr}, e{"EINHORN_FD_COUNT", nullptr},
      f{"SERVERSWAP_SOCKET", nullptr}, g{"SERVERSWAP_ID", nullptr};
};

TEST(InheritedSockets, SystemdOnlyForItsOwnPid) {
  auto set = parse_systemd("2", "42", "web:admin", 42);
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(set->convention, "LISTEN_FDS");
  EXPECT_EQ(fds_of(*set), (std::vector<int>{3, 4}));
  EXPECT_EQ(set->sockets[1].name, "admin");
  EXPECT_TRUE(parse_systemd("2", "41", "web:admin", 42)->sockets.empty());  // our parent's
  EXPECT_TRUE(parse_systemd("2", nullptr, nullptr, 42)->sockets.empty());
  EXPECT_EQ(parse_systemd("1", "42", nullptr, 42)->sockets[0].name, "");
  EXPECT_EQ(parse_systemd("2", "42", "web", 42).status().message(),
            "LISTEN_FDNAMES=web: names 1 descriptors but LISTEN_FDS=2");
  EXPECT_FALSE(parse_systemd("x", "42", nullptr, 42).ok());
  EXPECT_FALSE(parse_systemd("1", "-3", nullptr, 42).ok());
}

TEST(InheritedSockets, ServerStarterAsItSpellsIt) {
  auto set = parse_server_starter("8080=3;127.0.0.1:8081=4;[::1]:8082=5;/run/a=b.sock=6;");
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(set->convention, "SERVER_STARTER_PORT");
  EXPECT_EQ(fds_of(*set), (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(parse_server_starter("8080").status().message(),
            "SERVER_STARTER_PORT=8080: expected ADDRESS=FD;ADDRESS=FD...");
  EXPECT_FALSE(parse_server_starter("=3").ok());
  EXPECT_FALSE(parse_server_starter("8080=x").ok());
  EXPECT_FALSE(parse_server_starter("").ok());
}

TEST(InheritedSockets, EinhornCountAndNumberedFds) {
  auto set = parse_einhorn(
      table({{"EINHORN_FD_COUNT", "2"}, {"EINHORN_FD_0", "7"}, {"EINHORN_FD_1", "9"}}));
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(fds_of(*set), (std::vector<int>{7, 9}));
  EXPECT_EQ(
      parse_einhorn(table({{"EINHORN_FD_COUNT", "2"}, {"EINHORN_FD_0", "7"}})).status().message(),
      "EINHORN_FD_1=: not a file descriptor");
  EXPECT_TRUE(parse_einhorn(table({}))->convention.empty());
}

TEST(InheritedSockets, FirstConventionPresentWinsAndMalformedOnesAreSkipped) {
  std::map<std::string, std::string> all = {{"LISTEN_FDS", "1"},
                                            {"LISTEN_PID", "42"},
                                            {"SERVER_STARTER_PORT", "8080=5"},
                                            {"EINHORN_FD_COUNT", "1"},
                                            {"EINHORN_FD_0", "6"}};
  EXPECT_EQ(fds_of(read_inherited(table(all), 42)), std::vector<int>{3});
  // A worker forked by the server: LISTEN_PID is its parent's, the fds are still there.
  EXPECT_EQ(fds_of(read_inherited(table(all), 43)), std::vector<int>{5});
  all["SERVER_STARTER_PORT"] = "garbage";
  EXPECT_EQ(fds_of(read_inherited(table(all), 43)), std::vector<int>{6});
  EXPECT_TRUE(read_inherited(table({}), 42).sockets.empty());
}

TEST(InheritedSockets, MatchesByTheSocketsOwnAddress) {
  UniqueFd v4 = listener("127.0.0.1:0");
  const std::string port = bound_port(v4.get());
  EXPECT_TRUE(listens_on(v4.get(), "127.0.0.1:" + port));
  EXPECT_TRUE(listens_on(v4.get(), ":" + port));  // any address with that port
  EXPECT_TRUE(listens_on(v4.get(), "localhost:" + port));
  EXPECT_FALSE(listens_on(v4.get(), "127.0.0.2:" + port));
  EXPECT_FALSE(listens_on(v4.get(), "[::1]:" + port));
  EXPECT_FALSE(listens_on(v4.get(), "127.0.0.1:0"));  // port 0 is never an inherited address
  EXPECT_FALSE(listens_on(v4.get(), "web"));

  UniqueFd any = listener(":0");  // dual-stack [::]
  EXPECT_TRUE(listens_on(any.get(), ":" + bound_port(any.get())));
  EXPECT_FALSE(listens_on(any.get(), "127.0.0.1:" + bound_port(any.get())));

  char dir[] = "/tmp/serverswap-inherited-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/a.sock";
  UniqueFd local = listener("unix:" + path);
  EXPECT_TRUE(listens_on(local.get(), "unix:" + path));
  EXPECT_FALSE(listens_on(local.get(), "unix:" + path + "x"));
  ::unlink(path.c_str());
  ::rmdir(dir);

  UniqueFd unbound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(listens_on(unbound.get(), ":0"));
  EXPECT_FALSE(listens_on(-1, ":" + port));
}

bool nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

TEST(InheritedSockets, StandaloneReadyForUsesTheInheritedSocketTwice) {
  NoInheritedEnvironment clean;
  UniqueFd inherited = listener("127.0.0.1:0");  // blocking, as Server::Starter passes it
  const std::string port = bound_port(inherited.get());
  const std::string env = port + "=" + std::to_string(inherited.get());
  ScopedEnv starter("SERVER_STARTER_PORT", env.c_str());
  serverswap_client* c = nullptr;
  ASSERT_EQ(serverswap_open(&c), 0) << serverswap_error(c);
  int first = -1, second = -1;
  ASSERT_EQ(serverswap_ready_for(c, (":" + port).c_str(), &first), 0) << serverswap_error(c);
  ASSERT_EQ(serverswap_ready_for(c, ("127.0.0.1:" + port).c_str(), &second), 0);
  EXPECT_NE(first, inherited.get());
  EXPECT_TRUE(nonblocking(first));
  EXPECT_TRUE((::fcntl(first, F_GETFD) & FD_CLOEXEC) &&
              (::fcntl(inherited.get(), F_GETFD) & FD_CLOEXEC));
  ::close(first);
  EXPECT_TRUE(accepts_a_connection(second));  // the original is still open and listening
  ::close(second);
  serverswap_close(c);
}

TEST(InheritedSockets, AConflictingBindNamesWhatWasInherited) {
  NoInheritedEnvironment clean;
  UniqueFd inherited = listener("0.0.0.0:0");
  const std::string port = bound_port(inherited.get());
  const std::string fd = std::to_string(inherited.get());
  ScopedEnv count("EINHORN_FD_COUNT", "1");
  ScopedEnv fd0("EINHORN_FD_0", fd.c_str());
  auto session = ClientSession::standalone({});
  auto got = session->ready_for("127.0.0.1:" + port);  // not 0.0.0.0: no match, bind fails
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "readyFor 127.0.0.1:" + port + ": bind 127.0.0.1:" + port +
                                        ": Address already in use (inherited through "
                                        "EINHORN_FD_COUNT: fd " +
                                        fd + " 0.0.0.0:" + port + ")");
}

TEST(InheritedSockets, ManagedServerSendsNoReadyForButTheRest) {
  NoInheritedEnvironment clean;
  UniqueFd inherited = listener("127.0.0.1:0");
  const std::string resource = "127.0.0.1:" + bound_port(inherited.get());
  FakeDaemon daemon([&](Peer& peer) {
    EXPECT_EQ(peer.next()["hello"]["id"], "test-1");
    peer.send(testing::welcome());
    EXPECT_EQ(peer.next(), make("onTakedown", resource));  // not readyFor
    EXPECT_EQ(peer.next(), make("serverUp", true));
    peer.send(make("takeDown", resource));
    EXPECT_EQ(peer.next(), make("fail", "done"));  // the connection stays until then
  });
  ScopedEnv socket("SERVERSWAP_SOCKET", daemon.path().c_str());
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  const std::string env = resource + "=" + std::to_string(inherited.get());
  ScopedEnv starter("SERVER_STARTER_PORT", env.c_str());
  auto client = serverswap::Client::open();
  ASSERT_TRUE(client.managed());
  UniqueFd fd(client.ready_for(resource));
  EXPECT_TRUE(accepts_a_connection(fd.get()));
  std::vector<std::string> seen;
  client.on_takedown(resource, [&](std::string_view r) { seen.emplace_back(r); });
  client.server_up();
  ASSERT_TRUE(testing::wait_readable(client.control_fd()));
  client.dispatch();
  EXPECT_EQ(seen, std::vector<std::string>{resource});
  client.fail("done");
}

// In a forked child: sockets at fds 3 and 4 with LISTEN_* for the child's own pid, the way
// systemd or serverswap --listen starts a server. Returns "" or what went wrong.
std::string systemd_child(int web, int notlistening, const std::string& port) {
  if (::dup2(web, 3) != 3 || ::dup2(notlistening, 4) != 4) return "dup2 failed";
  ::setenv("LISTEN_FDS", "2", 1);
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDNAMES", "web:other", 1);
  ::unsetenv("SERVERSWAP_SOCKET");
  ::unsetenv("SERVERSWAP_ID");
  auto session = ClientSession::standalone({});
  auto by_name = session->ready_for("web");
  if (!by_name.ok()) return by_name.status().message();
  auto by_address = session->ready_for("[::1]:" + port);
  if (!by_address.ok()) return by_address.status().message();
  if (!accepts_a_connection(by_name->get()) || !accepts_a_connection(by_address->get()))
    return "the inherited socket does not accept";
  auto wrong = session->ready_for("other");
  if (wrong.ok()) return "a socket that is not listening matched";
  return wrong.status().message();
}

TEST(InheritedSockets, SystemdFdsFromThreeByNameAndAddress) {
  UniqueFd web = listener("[::1]:0");
  if (!web) GTEST_SKIP() << "no IPv6 loopback";
  UniqueFd notlistening(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string result = systemd_child(web.get(), notlistening.get(), bound_port(web.get()));
    ssize_t ignored = ::write(write_end.get(), result.data(), result.size());
    (void)ignored;
    ::_exit(0);
  }
  write_end.reset();
  std::string result;
  char buf[512];
  while (testing::wait_readable(read_end.get())) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n <= 0) break;
    result.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(result,
            "readyFor other: inherited fd 4 (LISTEN_FDNAMES other) is not a listening stream "
            "socket");
}

}  // namespace
}  // namespace serverswap::client
