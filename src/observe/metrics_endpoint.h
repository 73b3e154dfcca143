// MetricsEndpoint: a minimal HTTP/1.0-style responder for Prometheus scrapes on
// `--metrics ADDRESS` (a resource: "127.0.0.1:9100", "unix:/run/serverswap/metrics.sock").
// It answers `GET /metrics` with the text the render function returns and closes the
// connection; anything else gets 404/400. Each request is bounded (size, time, count of
// connections at once) because it runs on the daemon's loop, beside the swaps.
// docs/architecture.md says why this is not a library. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace serverswap::observe {

class MetricsEndpoint {
 public:
  using Render = std::function<std::string()>;

  static Result<std::unique_ptr<MetricsEndpoint>> start(uv_loop_t* loop, const std::string& address,
                                                        Render render);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // What was bound, port included ("127.0.0.1:9100").
  const std::string& address() const { return address_; }

  // A request head is at most this long (longer: 431).
  static constexpr size_t kMaxRequest = 8192;
  // Connections at once. Beyond it, a new connection closes the oldest one that has not
  // sent its request yet, so idle or slow connections cannot keep scrapes out.
  static constexpr int kMaxConnections = 16;
  // Each connection is closed this long after it was accepted, answered or not.
  static constexpr uint64_t kRequestTimeoutMs = 5000;

 private:
  struct Listener;
  struct Client;
  MetricsEndpoint() = default;

  Listener* listener_ = nullptr;  // freed by its close callback
  std::string address_;
  std::string unix_path_;
};

// The response for one request head ("GET /metrics HTTP/1.1\r\n..."): status line, headers
// and body. Separate from the sockets so that it can be tested alone.
std::string metrics_response(const std::string& request_head, const std::string& body);

}  // namespace serverswap::observe
