// The C API and the C++ wrapper over it, against a fake daemon on a real socket path found
// through the environment, as a server started by serverswap would.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "client/test_peer.h"
#include "serverswap/client.h"
#include "serverswap/serverswap.h"

namespace serverswap::client {
namespace {

using protocol::make;
using testing::FakeDaemon;
using testing::Json;
using testing::Peer;
using testing::ScopedEnv;

// Greets the client the way the daemon does.
void greet(Peer& peer) {
  Json hello = peer.next();
  EXPECT_EQ(hello["hello"]["id"], "test-1");
  peer.send(testing::welcome());
}

struct Managed {
  FakeDaemon daemon;
  ScopedEnv socket, id;
  explicit Managed(std::function<void(Peer&)> script)
      : daemon(std::move(script)),
        socket("SERVERSWAP_SOCKET", daemon.path().c_str()),
        id("SERVERSWAP_ID", "test-1") {}
};

struct Recorded {
  std::vector<std::string> resources;
  serverswap_client* client = nullptr;
};

extern "C" void on_takedown(const char* resource, void* user) {
  auto* recorded = static_cast<Recorded*>(user);
  recorded->resources.push_back(resource);
  serverswap_took_down(recorded->client, resource);  // allowed inside a callback
}

TEST(CApi, StandaloneWithoutSocketEnvironment) {
  ScopedEnv socket("SERVERSWAP_SOCKET", nullptr);
  ScopedEnv id("SERVERSWAP_ID", nullptr);
  serverswap_client* c = nullptr;
  ASSERT_EQ(serverswap_open(&c), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_managed(c), 0);
  EXPECT_EQ(serverswap_fd(c), -1);
  int fd = -1;
  ASSERT_EQ(serverswap_ready_for(c, "127.0.0.1:0", &fd), 0) << serverswap_error(c);
  EXPECT_TRUE(testing::accepts_a_connection(fd));
  ::close(fd);
  EXPECT_EQ(serverswap_server_up(c), 0);
  EXPECT_EQ(serverswap_dispatch(c), 0);
  EXPECT_EQ(serverswap_ready_for(c, "nonsense", &fd), -1);
  EXPECT_NE(std::string(serverswap_error(c)).find("readyFor nonsense: "), std::string::npos);
  serverswap_close(c);
}

TEST(CApi, ErrorsAndTakedownThroughTheDaemon) {
  Managed m([](Peer& peer) {
    greet(peer);
    EXPECT_EQ(peer.next(), make("readyFor", ":8080"));
    peer.send(
        protocol::error_reply("bind :8080: Address already in use", make("readyFor", ":8080")));
    EXPECT_EQ(peer.next(), make("onTakedown", ":9000"));
    peer.send(make("takeDown", ":9000"));
    EXPECT_EQ(peer.next(), make("tookDown", ":9000"));
  });
  Recorded recorded;
  ASSERT_EQ(serverswap_open(&recorded.client), 0) << serverswap_error(recorded.client);
  serverswap_client* c = recorded.client;
  EXPECT_EQ(serverswap_managed(c), 1);
  int fd = -1;
  EXPECT_EQ(serverswap_ready_for(c, ":8080", &fd), -1);
  EXPECT_STREQ(serverswap_error(c), "readyFor :8080: bind :8080: Address already in use");
  EXPECT_EQ(fd, -1);
  ASSERT_EQ(serverswap_on_takedown(c, ":9000", on_takedown, &recorded), 0);
  ASSERT_TRUE(testing::wait_readable(serverswap_fd(c)));
  EXPECT_EQ(serverswap_dispatch(c), 0) << serverswap_error(c);
  EXPECT_EQ(recorded.resources, std::vector<std::string>{":9000"});
  serverswap_close(c);
}

TEST(CApi, ServingIsSentAsALine) {
  Managed m([](Peer& peer) {
    greet(peer);
    EXPECT_EQ(peer.next(), make("serving", ":8080"));
  });
  serverswap_client* c = nullptr;
  ASSERT_EQ(serverswap_open(&c), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_serving(c, ":8080"), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_serving(c, nullptr), -1);
  serverswap_close(c);
}

// What a server's stderr got while `body` ran.
std::string stderr_of(const std::function<void()>& body) {
  ::testing::internal::CaptureStderr();
  body();
  return ::testing::internal::GetCapturedStderr();
}

size_t lines_in(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Opens from the environment and checks the client is standalone and binds by itself.
void expect_standalone_serving() {
  serverswap_client* c = nullptr;
  ASSERT_EQ(serverswap_open(&c), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_managed(c), 0);
  EXPECT_EQ(serverswap_fd(c), -1);
  int fd = -1;
  ASSERT_EQ(serverswap_ready_for(c, "127.0.0.1:0", &fd), 0) << serverswap_error(c);
  EXPECT_TRUE(testing::accepts_a_connection(fd));
  ::close(fd);
  EXPECT_EQ(serverswap_server_up(c), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_dispatch(c), 0) << serverswap_error(c);
  EXPECT_EQ(serverswap_timeout_ms(c), -1);  // never tries to reconnect
  serverswap_close(c);
}

// An operator's shell exports SERVERSWAP_SOCKET for the CLI; the application run by hand
// there is not run by serverswap and must neither fail nor complain.
TEST(CApi, SocketWithoutIdIsStandaloneAndSilent) {
  ScopedEnv socket("SERVERSWAP_SOCKET", "/nonexistent/serverswap.sock");
  ScopedEnv id("SERVERSWAP_ID", nullptr);
  EXPECT_EQ(stderr_of(expect_standalone_serving), "");
  ScopedEnv empty_id("SERVERSWAP_ID", "");
  EXPECT_EQ(stderr_of(expect_standalone_serving), "");
}

TEST(CApi, IdWithoutADaemonRunsStandaloneWithOneWarning) {
  ScopedEnv socket("SERVERSWAP_SOCKET", "/nonexistent/serverswap.sock");
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  std::string said = stderr_of(expect_standalone_serving);
  EXPECT_EQ(lines_in(said), 1u) << said;
  EXPECT_NE(said.find("SERVERSWAP_ID is set but no daemon answers on "
                      "/nonexistent/serverswap.sock (No such file or directory); "
                      "running standalone\n"),
            std::string::npos)
      << said;
}

TEST(CApi, IdWithARefusingSocketFileRunsStandaloneWithOneWarning) {
  // A socket file nobody listens on: what a daemon killed with SIGKILL leaves.
  std::string path;
  char dir[] = "/tmp/serverswap-client-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  path = std::string(dir) + "/control.sock";
  {
    auto bound = handover::bind_listener(*protocol::parse_resource("unix:" + path));
    ASSERT_TRUE(bound.ok()) << bound.status().message();
  }
  ScopedEnv socket("SERVERSWAP_SOCKET", path.c_str());
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  std::string said = stderr_of(expect_standalone_serving);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(lines_in(said), 1u) << said;
  EXPECT_NE(said.find("no daemon answers on " + path + " (Connection refused); running standalone"),
            std::string::npos)
      << said;
}

TEST(CApi, IdWithoutSocketRunsStandaloneWithOneWarning) {
  ScopedEnv socket("SERVERSWAP_SOCKET", nullptr);
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  std::string said = stderr_of(expect_standalone_serving);
  EXPECT_EQ(lines_in(said), 1u) << said;
  EXPECT_NE(said.find("SERVERSWAP_ID is set but SERVERSWAP_SOCKET is not; running standalone"),
            std::string::npos)
      << said;
}

// A daemon that is there but refuses the server is an error, not a reason to go standalone.
TEST(CApi, FailedOpenStillExplainsItself) {
  Managed m([](Peer& peer) {
    Json hello = peer.next();
    peer.send(protocol::error_reply("unknown server id", hello));
  });
  serverswap_client* c = nullptr;
  EXPECT_EQ(serverswap_open(&c), -1);
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(serverswap_error(c), "hello: unknown server id");
  EXPECT_EQ(serverswap_managed(c), 0);
  EXPECT_EQ(serverswap_server_up(c), -1);
  EXPECT_STREQ(serverswap_error(c), "not connected: hello: unknown server id");
  serverswap_close(c);
}

TEST(CApi, NullArgumentsAreErrorsNotCrashes) {
  ScopedEnv socket("SERVERSWAP_SOCKET", nullptr);
  ScopedEnv id("SERVERSWAP_ID", nullptr);
  serverswap_client* c = nullptr;
  ASSERT_EQ(serverswap_open(&c), 0);
  EXPECT_EQ(serverswap_ready_for(c, nullptr, nullptr), -1);
  EXPECT_STREQ(serverswap_error(c), "readyFor: resource is NULL");
  EXPECT_EQ(serverswap_on_takedown(c, ":1", nullptr, nullptr), -1);
  EXPECT_EQ(serverswap_open(nullptr), -1);
  EXPECT_EQ(serverswap_dispatch(nullptr), -1);
  EXPECT_EQ(serverswap_fd(nullptr), -1);
  serverswap_close(c);
  serverswap_close(nullptr);
}

// An application's poll loop as serverswap.h describes it, until `done` or 5 s.
bool app_loop_until(serverswap_client* c, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    pollfd p{serverswap_fd(c), POLLIN, 0};
    int timeout = serverswap_timeout_ms(c);
    ::poll(&p, 1, timeout < 0 || timeout > 100 ? 100 : timeout);
    serverswap_dispatch(c);
  }
  return true;
}

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(CApi, ResumesWithARestartedDaemon) {
  testing::FakeListener daemon_socket;
  ScopedEnv socket("SERVERSWAP_SOCKET", daemon_socket.path().c_str());
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  UniqueFd listener = testing::loopback_listener();
  std::unique_ptr<Peer> first;
  std::thread daemon([&] {
    first = daemon_socket.accept();
    greet(*first);
    EXPECT_EQ(first->next(), make("readyFor", ":8080"));
    first->send(make("resourceReady", ":8080"), listener.get());
  });
  Recorded recorded;
  ASSERT_EQ(serverswap_open(&recorded.client), 0) << serverswap_error(recorded.client);
  serverswap_client* c = recorded.client;
  int fd = -1;
  EXPECT_EQ(serverswap_ready_for(c, ":8080", &fd), 0) << serverswap_error(c);
  UniqueFd owned(fd);
  daemon.join();
  ASSERT_TRUE(first);
  ASSERT_EQ(serverswap_on_takedown(c, ":8080", on_takedown, &recorded), 0);
  EXPECT_EQ(first->next(), make("onTakedown", ":8080"));
  EXPECT_EQ(serverswap_timeout_ms(c), -1);

  first->close();  // the daemon is killed
  ASSERT_TRUE(app_loop_until(c, [&] { return daemon_socket.has_client(0); }));
  auto second = daemon_socket.accept();
  std::vector<UniqueFd> fds;
  Json hello = second->next_with_fds(fds);
  EXPECT_EQ(hello["hello"]["resume"], Json::parse(R"({"holding": [":8080"],
                                                      "onTakedown": [":8080"], "up": true})"));
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_EQ(inode_of(fds[0].get()), inode_of(listener.get()));
  Json welcome = testing::welcome();
  welcome["welcome"]["resumed"] = true;
  second->send(welcome);
  ASSERT_TRUE(app_loop_until(c, [&] { return serverswap_timeout_ms(c) == -1; }));
  EXPECT_GE(serverswap_fd(c), 0);

  second->send(make("takeDown", ":8080"));
  ASSERT_TRUE(app_loop_until(c, [&] { return !recorded.resources.empty(); }));
  EXPECT_EQ(second->next(), make("tookDown", ":8080"));
  serverswap_close(c);
}

TEST(CppClient, ExplicitUpReadyForAndTakedown) {
  UniqueFd listener = testing::loopback_listener();
  Managed m([&](Peer& peer) {
    Json hello = peer.next();
    EXPECT_EQ(hello["hello"]["upMessage"], true);
    peer.send(testing::welcome());
    EXPECT_EQ(peer.next(), make("readyFor", "127.0.0.1:0"));
    peer.send(make("resourceReady", "127.0.0.1:0"), listener.get());
    EXPECT_EQ(peer.next(), make("onTakedown", "127.0.0.1:0"));
    EXPECT_EQ(peer.next(), make("serverUp", true));
    peer.send(make("takeDown", "127.0.0.1:0"));
    EXPECT_EQ(peer.next(), make("fail", "done"));
  });
  auto client = serverswap::Client::open({.explicit_up = true});
  EXPECT_TRUE(client.managed());
  UniqueFd fd(client.ready_for("127.0.0.1:0"));
  EXPECT_TRUE(testing::accepts_a_connection(fd.get()));
  std::vector<std::string> seen;
  client.on_takedown("127.0.0.1:0", [&](std::string_view r) { seen.emplace_back(r); });
  client.server_up();
  serverswap::Client moved = std::move(client);  // callbacks survive a move
  ASSERT_TRUE(testing::wait_readable(moved.control_fd()));
  moved.dispatch();
  EXPECT_EQ(seen, std::vector<std::string>{"127.0.0.1:0"});
  moved.fail("done");
}

TEST(CppClient, FailuresThrowErrorWithTheText) {
  Managed m([](Peer& peer) {
    greet(peer);
    EXPECT_EQ(peer.next(), make("readyFor", ":8080"));
    peer.send(
        protocol::error_reply("bind :8080: Address already in use", make("readyFor", ":8080")));
    EXPECT_EQ(peer.next(), make("onTakedown", ":9000"));
    peer.send(make("takeDown", ":9000"));
    peer.close();
  });
  auto client = serverswap::Client::open();
  try {
    client.ready_for(":8080");
    ADD_FAILURE() << "ready_for did not throw";
  } catch (const serverswap::Error& e) {
    EXPECT_STREQ(e.what(), "readyFor :8080: bind :8080: Address already in use");
  }
  client.on_takedown(":9000", [](std::string_view) { throw std::runtime_error("from callback"); });
  ASSERT_TRUE(testing::wait_readable(client.control_fd()));
  EXPECT_THROW(
      {
        try {
          client.dispatch();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "from callback");
          throw;
        }
      },
      std::runtime_error);
}

TEST(CppClient, OpenFailureThrows) {
  Managed m([](Peer& peer) {
    Json hello = peer.next();
    peer.send(protocol::error_reply("unknown server id", hello));
  });
  EXPECT_THROW(serverswap::Client::open(), serverswap::Error);
}

TEST(CppClient, StandaloneWhenNoDaemonAnswers) {
  ScopedEnv socket("SERVERSWAP_SOCKET", "/nonexistent/serverswap.sock");
  ScopedEnv id("SERVERSWAP_ID", "test-1");
  ::testing::internal::CaptureStderr();
  auto client = serverswap::Client::open();
  std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(client.managed());
  EXPECT_EQ(lines_in(said), 1u) << said;
  UniqueFd fd(client.ready_for("127.0.0.1:0"));
  EXPECT_TRUE(testing::accepts_a_connection(fd.get()));
}

}  // namespace
}  // namespace serverswap::client
