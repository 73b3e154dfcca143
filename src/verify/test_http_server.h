// A small HTTP server on loopback for the load generator's tests (test binary only).
// One thread runs poll(2) over non-blocking sockets; the behaviour is fixed per server,
// so each test gets exactly the misbehaviour it checks. Port 0 is bound, so tests never
// collide on ports.
// Thread-safety: the counters may be read from any thread while the server runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace serverswap::verify::testing {

class TestHttpServer {
 public:
  enum class Behaviour {
    kRespond,               // 200 "hello"; honours keep-alive and Connection: close
    kStatus503,             // like kRespond with status 503
    kCloseWithoutResponse,  // accept, then close at once
    kNeverRespond,          // read requests and answer nothing
    kCloseAfterResponse,    // answer, then close without having said Connection: close
  };
  struct Options {
    Behaviour behaviour = Behaviour::kRespond;
    std::string host = "127.0.0.1";
    int connection_close_every = 0;  // say Connection: close on every Nth response
    bool chunked = false;            // send the body with chunked transfer coding
  };

  // Binds host:0 and starts serving; nullptr and *error (with errno text) on failure.
  static std::unique_ptr<TestHttpServer> start(const Options& options, std::string* error);
  ~TestHttpServer();  // stops the thread and closes every socket
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  uint16_t port() const { return port_; }
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t requests() const { return requests_.load(); }

 private:
  struct Impl;
  explicit TestHttpServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> requests_{0};
  std::thread thread_;
};

// A bound TCP socket that never listens: connecting to its port is refused, and no other
// process can take the port while it is held.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace serverswap::verify::testing
