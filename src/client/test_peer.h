// Test helpers for the client library: the daemon's end of a control connection, driven by
// the test (Peer), and a daemon listening on a real Unix socket path that runs a script on
// its own thread (FakeDaemon). Every wait is bounded (kPeerWait). Only the tests use this.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "handover/fd_passing.h"
#include "handover/listen_socket.h"
#include "protocol/line_framer.h"
#include "protocol/message.h"
#include "protocol/resource.h"

namespace serverswap::client::testing {

using protocol::Json;

inline constexpr int kPeerWait = 5000;  // ms; only reached when a test is failing

inline bool wait_readable(int fd, int timeout_ms = kPeerWait) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

class Peer {
 public:
  explicit Peer(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }

  // The next message from the client; null (and a test failure) if none comes.
  Json next() {
    if (pending_) return Json::parse(*std::exchange(pending_, std::nullopt));
    for (;;) {
      if (auto line = framer_.next_line()) return Json::parse(*line);
      if (!wait_readable(fd_.get())) {
        ADD_FAILURE() << "no message from the client";
        return nullptr;
      }
      char buf[4096];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) {
        ADD_FAILURE() << "the client closed the connection";
        return nullptr;
      }
      framer_.append(std::string_view(buf, static_cast<size_t>(n)));
    }
  }

  // The next message and every descriptor that came with its bytes, in order.
  Json next_with_fds(std::vector<UniqueFd>& fds) {
    while (!pending_ && !has_line()) {
      if (!wait_readable(fd_.get())) {
        ADD_FAILURE() << "no message from the client";
        return nullptr;
      }
      if (!receive(fds)) return nullptr;
    }
    return next();
  }

  void send_raw(std::string_view data, int fd = -1) {
    auto sent = handover::send_with_fd(fd_.get(), data, fd);
    ASSERT_TRUE(sent.ok()) << sent.status().message();
    ASSERT_EQ(*sent, data.size());
  }
  void send(const Json& message, int fd = -1) { send_raw(protocol::encode(message), fd); }

 private:
  bool has_line() {
    if (auto line = framer_.next_line()) {
      pending_ = *line;
      return true;
    }
    return false;
  }
  // One recvmsg; false (and a failure) at end of stream or on an error.
  bool receive(std::vector<UniqueFd>& fds) {
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(70 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) {
      ADD_FAILURE() << "the client closed the connection";
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    EXPECT_FALSE(msg.msg_flags & MSG_CTRUNC);
    framer_.append(std::string_view(buf, static_cast<size_t>(n)));
    return true;
  }

  UniqueFd fd_;
  protocol::LineFramer framer_;
  std::optional<std::string> pending_;  // a line has_line() took out of the framer
};

// A daemon's control socket on a real path that accepts when the test says: for a client
// that reconnects.
class FakeListener {
 public:
  FakeListener() {
    char dir[] = "/tmp/serverswap-client-test-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/control.sock";
    auto bound = handover::bind_listener(*protocol::parse_resource("unix:" + path_));
    EXPECT_TRUE(bound.ok()) << bound.status().message();
    if (bound.ok()) listener_ = std::move(bound->fd);
  }
  ~FakeListener() { std::filesystem::remove_all(dir_); }
  FakeListener(const FakeListener&) = delete;
  FakeListener& operator=(const FakeListener&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return listener_.get(); }
  // Whether a client is waiting to be accepted, within `timeout_ms`.
  bool has_client(int timeout_ms) const { return wait_readable(listener_.get(), timeout_ms); }
  // The next client; null (and a failure) when none connects in time.
  std::unique_ptr<Peer> accept() {
    if (!has_client(kPeerWait)) {
      ADD_FAILURE() << "no client connected";
      return nullptr;
    }
    return std::make_unique<Peer>(
        UniqueFd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)));
  }

 private:
  std::string dir_, path_;
  UniqueFd listener_;
};

inline Json welcome() {
  return protocol::make("welcome",
                        {{"protocol", 1}, {"id", "test-1"}, {"version", "serverswap 0.1.0"}});
}

// A daemon on a real socket path: accepts one client and runs `script` with it.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::function<void(Peer&)> script) {
    char dir[] = "/tmp/serverswap-client-test-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/control.sock";
    auto bound = handover::bind_listener(*protocol::parse_resource("unix:" + path_));
    EXPECT_TRUE(bound.ok()) << bound.status().message();
    if (bound.ok()) listener_ = std::move(bound->fd);
    thread_ = std::thread([this, script = std::move(script)] {
      if (!wait_readable(listener_.get())) {
        ADD_FAILURE() << "no client connected";
        return;
      }
      Peer peer(UniqueFd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)));
      script(peer);
    });
  }
  ~FakeDaemon() {
    thread_.join();
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  UniqueFd listener_;
  std::thread thread_;
};

// Sets an environment variable (or unsets it, given nullptr) for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old, had_ = true;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { had_ ? ::setenv(name_, old_.c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// A loopback listening socket as the daemon would hand it over (non-blocking).
inline UniqueFd loopback_listener() {
  auto bound = handover::bind_listener(*protocol::parse_resource("127.0.0.1:0"));
  EXPECT_TRUE(bound.ok()) << bound.status().message();
  if (!bound.ok()) return UniqueFd();
  int flags = ::fcntl(bound->fd.get(), F_GETFL);
  ::fcntl(bound->fd.get(), F_SETFL, flags | O_NONBLOCK);
  return std::move(bound->fd);
}

// Connects to the TCP listening socket `fd` and accepts that connection on it.
inline bool accepts_a_connection(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  UniqueFd client(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return false;
  if (!wait_readable(fd)) return false;
  UniqueFd accepted(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
  return accepted.valid();
}

inline std::string bound_port(int fd) {
  std::string address = handover::bound_address(fd);
  return address.substr(address.rfind(':') + 1);
}

}  // namespace serverswap::client::testing
