// Limits of the control socket against the real daemon (docs/protocol.md, "Limits"): fds
// sent unasked, message rate, number of connections, replies left unread. Each time the
// server already running keeps serving and the daemon's fd count comes back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <memory>

#include "daemon/control/connection.h"
#include "daemon/control/control_server.h"
#include "harness.h"

namespace serverswap::testing {
namespace {

const std::string kControlHello = "{\"hello\":{\"protocol\":1,\"role\":\"control\"}}\n";

// A raw connection to the control socket, as a buggy or hostile local program makes it.
class RawPeer {
 public:
  explicit RawPeer(const std::string& path) : fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{10, 0};  // bounds every read, write and connect below
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    connected_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool connected() const { return connected_; }

  // False once the daemon has closed the connection.
  bool send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // sendmsg of `line` with `count` descriptors (of /dev/null) attached.
  bool send_with_fds(const std::string& line, size_t count) {
    UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    std::vector<int> fds(count, null_fd.get());
    std::vector<char> control(CMSG_SPACE(count * sizeof(int)));
    iovec iov{const_cast<char*>(line.data()), line.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), count * sizeof(int));
    return sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
  }

  // Reads until `text` has arrived or the daemon closed the connection (bounded).
  std::string read_until(const std::string& text) {
    while (received_.find(text) == std::string::npos && read_some()) {
    }
    return received_;
  }
  // Everything until the daemon closes the connection (bounded by the receive timeout).
  std::string read_all() {
    while (read_some()) {
    }
    return received_;
  }
  bool closed_by_daemon() const { return eof_; }

 private:
  bool read_some() {
    char buf[64 * 1024];
    ssize_t n = read(fd_.get(), buf, sizeof buf);
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    received_.append(buf, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string received_;
};

class Limits : public ::testing::Test {
 protected:
  void SetUp() override {
    auto first = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
    ASSERT_EQ(first.code, 0) << first.output;
    address_ = daemon_.address_of("127.0.0.1:0");
    ASSERT_TRUE(http_ok(address_));
    // The status requests above have closed their connections once the count is stable.
    ASSERT_TRUE(eventually(
        [&] {
          int before = daemon_.open_fds();
          return http_ok(address_) && daemon_.open_fds() == before;
        },
        5s));
    fds_before_ = daemon_.open_fds();
  }

  // The server still answers, and the daemon is back to the fds it had (or fewer: the
  // count before may have included a status command's connection still closing).
  void expect_unharmed() {
    EXPECT_TRUE(http_ok(address_)) << "the server stopped serving";
    EXPECT_TRUE(eventually([&] { return daemon_.open_fds() <= fds_before_; }, 10s))
        << daemon_.open_fds() << " fds, " << fds_before_ << " before";
    EXPECT_EQ(daemon_.server_pids().size(), 1u);
  }

  DaemonUnderTest daemon_;
  std::string address_;
  int fds_before_ = 0;
};

TEST_F(Limits, FdsSentUnaskedAreClosedAtOnce) {
  auto peer_holder = std::make_unique<RawPeer>(daemon_.socket());
  RawPeer& peer = *peer_holder;
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.send_with_fds(kControlHello, 5));
  std::string reply = peer.read_until("\"welcome\"");
  EXPECT_NE(reply.find("closed 5 file descriptor(s) sent unasked: the daemon accepts none"),
            std::string::npos)
      << reply;
  // The reply is written after the fds were closed: only the connection itself is new.
  EXPECT_LE(daemon_.open_fds(), fds_before_ + 1);
  // More than libuv has room for (64): the kernel discards the rest (MSG_CTRUNC).
  ASSERT_TRUE(peer.send_with_fds("{\"status\":true}\n", 250));
  reply = peer.read_until("\"status\"");
  EXPECT_NE(reply.find("\"servers\""), std::string::npos) << reply;
  EXPECT_LE(daemon_.open_fds(), fds_before_ + 1);
  EXPECT_TRUE(daemon_.process().wait_for_output("file descriptor(s) sent unasked by pid", 5s));
  EXPECT_FALSE(peer.closed_by_daemon());
  peer_holder.reset();
  expect_unharmed();
}

// Descriptors sent without ever finishing a line are held for a resume hello only up to 64
// per connection and kMaxPendingFds over all: the daemon's fd count stays bounded, the rest
// are closed at once with an error, and root's status still works.
TEST_F(Limits, FdsPendingWithoutALineAreCapped) {
  constexpr size_t kPeers = 20;  // 20 x 64 = 1280: more than a 1024-fd daemon had room for
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (size_t i = 0; i < kPeers; ++i) {
    peers.push_back(std::make_unique<RawPeer>(daemon_.socket()));
    ASSERT_TRUE(peers.back()->connected()) << i;
    ASSERT_TRUE(peers.back()->send_with_fds("{", daemon::kMaxPendingFdsPerConnection)) << i;
  }
  // One more on the first connection, still before its first line: over its own cap.
  ASSERT_TRUE(peers.front()->send_with_fds("\"", 1));
  EXPECT_NE(peers.front()
                ->read_until("before a line")
                .find("closed 1 file descriptor(s) sent unasked: more than 64 before a line"),
            std::string::npos);
  // The last connection is over the cap on all of them (its reply was written when its fds
  // were read, after every earlier connection's).
  std::string reply = peers.back()->read_until("not yet claimed");
  EXPECT_NE(
      reply.find("closed 64 file descriptor(s) sent unasked: the daemon holds at most " +
                 std::to_string(daemon::kMaxPendingFds) + " descriptors not yet claimed by a line"),
      std::string::npos)
      << reply;
  EXPECT_LE(daemon_.open_fds(),
            fds_before_ + static_cast<int>(kPeers + daemon::kMaxPendingFds) + 2);
  auto status = daemon_.status();
  EXPECT_TRUE(status.contains("servers")) << status;
  // 17 refusals, logged within the rate limit: a burst of 5, then one line for the rest.
  EXPECT_TRUE(daemon_.process().wait_for_output("lines about unasked descriptors from uid 0: ", 5s))
      << daemon_.process().output();
  EXPECT_LE(count_of(daemon_.process().output(), "file descriptor(s) sent unasked by"), 6u);
  peers.clear();
  expect_unharmed();
}

TEST_F(Limits, MessageFloodIsRateLimitedThenClosed) {
  RawPeer peer(daemon_.socket());
  ASSERT_TRUE(peer.connected());
  std::string flood = kControlHello;
  for (int i = 0; i < 1000; ++i) flood += "{\"status\":true}\n";
  peer.send(flood);  // the daemon may close before reading it all
  std::string replies = peer.read_all();
  EXPECT_TRUE(peer.closed_by_daemon());
  EXPECT_NE(replies.find("rate limit: more than 100 messages per second (bursts of 200) on this "
                         "connection; message dropped"),
            std::string::npos)
      << replies.substr(0, 300);
  EXPECT_NE(replies.find("on this connection; closing the connection"), std::string::npos);
  // The burst, less the hello, was answered; the rest was not.
  size_t answered = count_of(replies, "{\"status\":");
  EXPECT_GE(answered, static_cast<size_t>(daemon::kMessageBurst - 1));
  EXPECT_LT(answered, 1000u);
  EXPECT_TRUE(daemon_.process().wait_for_output("over the rate limit of 100 messages", 5s));
  expect_unharmed();
}

TEST_F(Limits, ConnectionsBeyondTheMaximumAreRefused) {
  // The server holds one connection: the kMaxConnections-th raw one is one too many.
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (size_t i = 0; i < daemon::kMaxConnections; ++i) {
    peers.push_back(std::make_unique<RawPeer>(daemon_.socket()));
    ASSERT_TRUE(peers.back()->connected()) << i;
  }
  RawPeer& extra = *peers.back();
  std::string refusal = extra.read_all();
  EXPECT_EQ(refusal,
            "{\"error\":\"too many connections: the daemon serves at most 512 at once; try "
            "again later\"}\n");
  EXPECT_TRUE(extra.closed_by_daemon());
  // Those accepted before it work, and so does the server.
  RawPeer& first = *peers.front();
  ASSERT_TRUE(first.send(kControlHello + "{\"status\":true}\n"));
  EXPECT_NE(first.read_until("\"servers\"").find("\"servers\""), std::string::npos);
  EXPECT_TRUE(http_ok(address_));
  EXPECT_TRUE(daemon_.process().wait_for_output("already 512 connections", 5s));
  peers.clear();
  expect_unharmed();
  // With the connections gone, a swap goes through.
  auto swap = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(swap.code, 0) << swap.output;
  EXPECT_TRUE(http_ok(address_));
}

TEST_F(Limits, PeerThatLeavesRepliesUnreadIsDropped) {
  RawPeer peer(daemon_.socket());
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.send(kControlHello));
  // Each unknown request is echoed in its error reply: 60 KB out for 60 KB in, never read.
  std::string request = "{\"bogus\":\"" + std::string(60'000, 'x') + "\"}\n";
  size_t sent = 0;
  while (sent < 190 && peer.send(request)) ++sent;
  EXPECT_TRUE(daemon_.process().wait_for_output("it left more than " +
                                                    std::to_string(daemon::kMaxUnreadBytes >> 20) +
                                                    " MiB of replies unread",
                                                10s));
  EXPECT_LT(sent, 190u) << "the daemon kept the connection open";
  expect_unharmed();
}

}  // namespace
}  // namespace serverswap::testing
