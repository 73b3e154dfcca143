// Faults: a new server that cannot come up never takes the old one down, and bad input
// never stops the daemon. Each test checks that the old server still answers afterwards.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "harness.h"

namespace serverswap::testing {
namespace {

class Faults : public ::testing::Test {
 protected:
  Faults() : daemon_({"--takedown-timeout", "2s", "--ready-timeout", "3s", "--settle", "200ms"}) {}

  void SetUp() override {
    daemon_.deploy_options = {"--name", "web"};  // each faulty server is a release of one app
    auto first = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
    ASSERT_EQ(first.code, 0) << first.output;
    address_ = daemon_.address_of("127.0.0.1:0");
    auto pids = daemon_.server_pids();
    ASSERT_EQ(pids.size(), 1u) << first.output << daemon_.status().dump();
    old_pid_ = pids[0];
    ASSERT_TRUE(http_ok(address_));
  }

  // A deploy of `command` must fail with `reason` in its output, leaving the old server.
  void expect_failed_deploy(const std::vector<std::string>& command, const std::string& reason) {
    auto outcome = daemon_.deploy(command);
    EXPECT_EQ(outcome.code, 1) << outcome.output;
    EXPECT_NE(outcome.output.find("deploy failed"), std::string::npos) << outcome.output;
    EXPECT_NE(outcome.output.find(reason), std::string::npos) << outcome.output;
    EXPECT_EQ(daemon_.server_pids(), std::vector<pid_t>{old_pid_});
    EXPECT_TRUE(http_ok(address_)) << "the old server stopped serving";
  }

  std::vector<std::string> fault(const std::string& mode) {
    return {FAULT_SERVER_BIN, mode, "127.0.0.1:0"};
  }

  DaemonUnderTest daemon_;
  std::string address_;
  pid_t old_pid_ = 0;
};

TEST_F(Faults, CrashBeforeReady) {
  expect_failed_deploy(fault("crash-before-ready"), "exited with status 3 before it was up");
}

TEST_F(Faults, CrashAfterItGotTheSocket) {
  expect_failed_deploy(fault("crash-after-resource"), "exited with status 4 before it was up");
}

TEST_F(Faults, FailAfterItGotTheSocket) {
  expect_failed_deploy(fault("fail-after-resource"), "sent fail: cache warm-up failed");
}

TEST_F(Faults, HangIsKilledAfterTheReadyTimeout) {
  expect_failed_deploy(fault("hang"), "not up within --ready-timeout 3s");
}

TEST_F(Faults, ProgramWithoutAClientIsToldWhatItNeeds) {
  expect_failed_deploy(fault("no-client"), "not up within --ready-timeout 3s");
}

TEST_F(Faults, MissingProgram) {
  expect_failed_deploy({"/nonexistent/server"},
                       "start /nonexistent/server: no such file or directory");
}

TEST_F(Faults, BadResourceSyntax) {
  expect_failed_deploy({FAULT_SERVER_BIN, "bad-resource", "localhost"},
                       "invalid resource 'localhost': no port");
}

TEST_F(Faults, AddressInUseByAForeignProcess) {
  int foreign = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(foreign, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(foreign, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(foreign, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  expect_failed_deploy({FAULT_SERVER_BIN, "bad-resource", taken},
                       "bind " + taken + ": Address already in use");
  close(foreign);
}

TEST_F(Faults, OldServerIgnoringTakedownIsKilledAfterTheGrace) {
  // Replace the well-behaved server by one that ignores takeDown and SIGTERM...
  auto stubborn = daemon_.deploy(fault("ignore-takedown"));
  ASSERT_EQ(stubborn.code, 0) << stubborn.output;
  pid_t stubborn_pid = daemon_.server_pids().at(0);
  // ...then deploy over it: it gets takeDown, ignores it, and is SIGKILLed after 2 s.
  auto outcome = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(outcome.code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("still running after --takedown-timeout 2s; sending SIGKILL"),
            std::string::npos)
      << outcome.output;
  EXPECT_NE(outcome.output.find("killed by SIGKILL"), std::string::npos) << outcome.output;
  EXPECT_FALSE(process_exists(stubborn_pid));
  EXPECT_TRUE(http_ok(address_));
}

TEST_F(Faults, MalformedMessagesGetErrorRepliesAndTheServerGoesOn) {
  expect_failed_deploy(fault("abuse"), "sent fail: done abusing");
  std::string out = daemon_.process().output();
  EXPECT_NE(out.find("malformed: {\"error\":\"malformed JSON: {nope\"}"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown: {\"error\":\"unknown message 'bogus'\",\"request\":{\"bogus\":1}}"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("wrong type: {\"error\":\"readyFor must be a string\""), std::string::npos)
      << out;
  EXPECT_TRUE(http_ok(address_));
}

// Raw connections to the control socket, as a buggy or hostile local program would make.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) : fd_(socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{5, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool connected() const { return connected_; }
  void send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  // Everything until the daemon closes the connection (bounded by the receive timeout).
  std::string read_all() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd_.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  UniqueFd fd_;
  bool connected_ = false;
};

TEST_F(Faults, MessageBeforeHelloIsRefusedAndClosed) {
  RawConnection raw(daemon_.socket());
  ASSERT_TRUE(raw.connected());
  raw.send("{\"readyFor\":\":80\"}\n");
  EXPECT_EQ(raw.read_all(),
            "{\"error\":\"the first message must be hello\",\"request\":{\"readyFor\":\":80\"}}\n");
  EXPECT_TRUE(http_ok(address_));
}

TEST_F(Faults, HelloWithAnUnknownIdIsRefused) {
  RawConnection raw(daemon_.socket());
  raw.send("{\"hello\":{\"id\":\"guess\",\"pid\":1,\"protocol\":1}}\n");
  EXPECT_NE(raw.read_all().find("unknown or already connected server id"), std::string::npos);
}

// A peer of the daemon's own uid may send lines of up to 4 MiB (a deploy carries the whole
// environment); one longer closes the connection, and serving goes on.
TEST_F(Faults, OverlongLineClosesTheConnection) {
  RawConnection raw(daemon_.socket());
  raw.send(std::string(4'200'000, 'x'));
  EXPECT_NE(raw.read_all().find("line longer than 4194304 bytes"), std::string::npos);
  EXPECT_TRUE(http_ok(address_));
  EXPECT_EQ(daemon_.server_pids(), std::vector<pid_t>{old_pid_});
}

}  // namespace
}  // namespace serverswap::testing
