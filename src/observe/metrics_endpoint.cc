#include "observe/metrics_endpoint.h"

#include <unistd.h>

#include <list>

#include "base/log.h"
#include "handover/listen_socket.h"
#include "protocol/resource.h"

namespace serverswap::observe {

// The listening handle and what every connection needs; outlives the endpoint object until
// libuv has closed the handle and the last connection.
struct MetricsEndpoint::Listener {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_handle_t handle;
    uv_stream_t stream;
  };
  Render render;
  int connections = 0;  // until their close callbacks: what keeps this block alive
  int live = 0;         // not closing: what kMaxConnections counts
  // Connections still reading their request, oldest first: the ones a new connection
  // evicts when all slots are taken (see on_connection).
  std::list<Client*> reading;
  bool closed = false;
  void release() {
    if (closed && connections == 0) delete this;
  }
};

struct MetricsEndpoint::Client {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_handle_t handle;
    uv_stream_t stream;
  };
  uv_timer_t timer;
  uv_write_t write;
  Listener* listener = nullptr;
  std::string request;
  std::string response;
  int open_handles = 2;  // the stream and the timer
  bool closing = false;
  std::list<Client*>::iterator in_reading;  // valid while `is_reading`
  bool is_reading = false;

  void stop_reading() {
    if (!is_reading) return;
    listener->reading.erase(in_reading);
    is_reading = false;
  }

  void close() {
    if (closing) return;
    closing = true;
    stop_reading();
    --listener->live;
    auto done = [](uv_handle_t* h) {
      auto* c = static_cast<Client*>(h->data);
      if (--c->open_handles > 0) return;
      Listener* l = c->listener;
      --l->connections;
      delete c;
      l->release();
    };
    uv_close(&handle, done);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), done);
  }
};

namespace {

const std::string kHeadEnd = "\r\n\r\n";

std::string reply(const char* status, const char* type, const std::string& body) {
  std::string out = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  out.append(body);
  return out;
}

}  // namespace

std::string metrics_response(const std::string& head, const std::string& body) {
  size_t line_end = head.find("\r\n");
  std::string line = head.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos)
    return reply("400 Bad Request", "text/plain", "bad request line\n");
  std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET" && method != "HEAD")
    return reply("405 Method Not Allowed", "text/plain", "only GET /metrics\n");
  if (target != "/metrics" && !target.starts_with("/metrics?"))
    return reply("404 Not Found", "text/plain", "metrics are at /metrics\n");
  std::string out = reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", body);
  if (method == "HEAD") out.resize(out.size() - body.size());
  return out;
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(uv_loop_t* loop,
                                                                const std::string& address,
                                                                Render render) {
  auto resource = protocol::parse_resource(address);
  if (!resource.ok())
    return Status::error("--metrics " + address + ": " + resource.status().message());
  auto bound = handover::bind_listener(*resource);
  if (!bound.ok()) return Status::error("--metrics: " + bound.status().message());
  bool is_unix = resource->kind == protocol::Resource::Kind::kUnix;

  auto* listener = new Listener;
  listener->render = std::move(render);
  int rc = is_unix ? uv_pipe_init(loop, &listener->pipe, 0) : uv_tcp_init(loop, &listener->tcp);
  if (rc == 0)
    rc = is_unix ? uv_pipe_open(&listener->pipe, bound->fd.get())
                 : uv_tcp_open(&listener->tcp, bound->fd.get());
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint);
  endpoint->listener_ = listener;  // from here the destructor closes it
  endpoint->address_ = bound->address;
  if (is_unix) endpoint->unix_path_ = resource->path;
  listener->handle.data = listener;
  if (rc != 0) return Status::error(std::string("--metrics: ") + uv_strerror(rc));
  bound->fd.release();  // the handle owns it
  rc = uv_listen(&listener->stream, 64, [](uv_stream_t* server, int status) {
    auto* l = static_cast<Listener*>(server->data);
    if (status < 0) return;
    auto* c = new Client;
    c->listener = l;
    bool is_pipe = server->type == UV_NAMED_PIPE;
    if (is_pipe)
      uv_pipe_init(server->loop, &c->pipe, 0);
    else
      uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->handle.data = c;
    c->timer.data = c;
    ++l->connections;
    ++l->live;
    if (uv_accept(server, &c->stream) != 0) {
      c->close();
      return;
    }
    // All slots taken: the oldest connection that has not sent its request yet makes room.
    // Otherwise idle connections (a port scan, a client that connects and waits) would
    // refuse every scrape until their deadline, and someone reconnecting forever.
    if (l->live > kMaxConnections && !l->reading.empty()) l->reading.front()->close();
    if (l->live > kMaxConnections) {  // every other one is writing its response: not long
      c->close();
      return;
    }
    c->in_reading = l->reading.insert(l->reading.end(), c);
    c->is_reading = true;
    uv_timer_start(
        &c->timer, [](uv_timer_t* t) { static_cast<Client*>(t->data)->close(); }, kRequestTimeoutMs,
        0);
    uv_read_start(
        &c->stream,
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char scratch[2048];  // loop thread only; consumed before the next read
          *buf = uv_buf_init(scratch, sizeof scratch);
        },
        [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
          auto* client = static_cast<Client*>(stream->data);
          if (n < 0) return client->close();
          client->request.append(buf->base, static_cast<size_t>(n));
          bool complete = client->request.find(kHeadEnd) != std::string::npos;
          if (!complete && client->request.size() < kMaxRequest) return;
          uv_read_stop(stream);
          client->stop_reading();
          client->response =
              complete ? metrics_response(client->request, client->listener->render())
                       : reply("431 Request Header Fields Too Large", "text/plain", "too long\n");
          uv_buf_t out =
              uv_buf_init(client->response.data(), static_cast<unsigned>(client->response.size()));
          client->write.data = client;
          if (uv_write(&client->write, stream, &out, 1,
                       [](uv_write_t* w, int) { static_cast<Client*>(w->data)->close(); }) != 0)
            client->close();
        });
  });
  if (rc != 0)
    return Status::error("--metrics " + endpoint->address_ + ": listen: " + uv_strerror(rc));
  log_line("metrics at " + endpoint->address_ + "/metrics");
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  if (!listener_) return;
  // Freed once its handle is closed and the last connection is done, whichever is later.
  uv_close(&listener_->handle, [](uv_handle_t* h) {
    auto* closed = static_cast<Listener*>(h->data);
    closed->closed = true;
    closed->release();
  });
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

}  // namespace serverswap::observe
