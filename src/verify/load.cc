#include "verify/load.h"

#include <pthread.h>
#include <signal.h>
#include <uv.h>

#include <cassert>
#include <cmath>
#include <deque>
#include <memory>
#include <vector>

#include "verify/address.h"
#include "verify/http_response.h"

namespace serverswap::verify {
namespace {

constexpr uint64_t kTickMs = 10;     // timeouts, the stop flag and progress
constexpr uint64_t kRateTickMs = 1;  // open-loop request release
constexpr size_t kReadBufferBytes = 64 * 1024;
// Request starts per loop iteration, so 10,000 simultaneous connects interleave with
// reading the answers instead of starving them.
constexpr int kMaxStartsPerIteration = 512;

enum class Outcome { kOk, kRefused, kReset, kTimeout, kOtherStatus, kOtherError };

Outcome classify(int uv_error) {
  switch (uv_error) {
    case UV_ECONNREFUSED:
      return Outcome::kRefused;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_EOF:
      return Outcome::kReset;
    case UV_ETIMEDOUT:
      return Outcome::kTimeout;
    default:
      return Outcome::kOtherError;
  }
}

// The names of the report's failure kinds (report.cc's JSON keys).
const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kReset:
      return "reset";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kOtherStatus:
      return "other_status";
    case Outcome::kOtherError:
      return "other_error";
  }
  return "other_error";
}

std::string describe(const char* what, const std::string& target, int uv_error) {
  return std::string(what) + " " + target + ": " + uv_strerror(uv_error);
}

// SIGPIPE is thread-directed: blocking it on the load thread turns a write to a reset
// socket into EPIPE without touching the rest of the process. Any SIGPIPE left pending is
// consumed before the old mask comes back, or it would kill the process then.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock() {
    const timespec zero{};
    while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
};

class Connection;

// One TCP socket. Heap-allocated because libuv closes handles asynchronously: the memory
// must outlive uv_close() until its callback frees it. `owner` is cleared at close, so
// callbacks still queued for a closed socket (they come with UV_ECANCELED) are ignored.
struct Socket {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  Connection* owner = nullptr;
};

struct SocketCloser {
  void operator()(Socket* socket) const noexcept {
    socket->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&socket->tcp),
             [](uv_handle_t* handle) { delete static_cast<Socket*>(handle->data); });
  }
};
using SocketPtr = std::unique_ptr<Socket, SocketCloser>;

class Generator;

// One client: at most one request in flight, on its own socket.
class Connection {
 public:
  explicit Connection(Generator& generator) : generator_(generator) {}

  bool busy() const { return busy_; }
  void start_request(uint64_t now_ns);
  void check_timeout(uint64_t now_ns);
  // Drops the socket; a request in flight is abandoned without being counted.
  void close();

  uv_buf_t read_buffer();
  void on_connect(int status);
  void on_write(int status);
  void on_read(ssize_t nread, const uv_buf_t* buf);

 private:
  void connect();
  void send();
  void on_response_bytes(std::string_view data);
  void on_read_end(int status);
  void finish(Outcome outcome, std::string error);

  Generator& generator_;
  SocketPtr socket_;
  bool connected_ = false;
  bool busy_ = false;
  uint64_t start_ns_ = 0;
  ResponseParser parser_;
};

// Owns the loop, the connections and the report being filled; runs on one thread.
class Generator {
 public:
  Generator(const LoadOptions& options, Endpoint endpoint, std::atomic<bool>* stop);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  bool init(std::string* error);
  void run(LoadReport* report);

  // For connections.
  uv_loop_t* loop() { return &loop_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& request() const { return request_; }
  const LoadOptions& options() const { return options_; }
  uv_buf_t read_buffer() { return uv_buf_init(read_buffer_.data(), read_buffer_.size()); }
  void record(Outcome outcome, uint64_t request_start_ns, std::string error);
  void release(Connection* connection);

 private:
  bool closed_loop() const { return options_.rate <= 0; }
  void arm_deadline();
  void tick();
  void add_due_requests();
  void dispatch();
  void kick();
  void finish_run();
  void publish_progress();

  const LoadOptions& options_;
  Endpoint endpoint_;
  std::atomic<bool>* stop_;
  std::string request_;
  std::vector<char> read_buffer_;
  uv_loop_t loop_{};
  bool loop_ready_ = false;
  uv_timer_t tick_timer_{};
  uv_timer_t deadline_timer_{};
  uv_timer_t rate_timer_{};
  uv_idle_t dispatcher_{};
  std::vector<std::unique_ptr<Connection>> connections_;
  std::deque<Connection*> available_;  // FIFO, so every connection gets used in turn
  bool running_ = false;
  uint64_t start_ns_ = 0;
  uint64_t scheduled_ = 0;  // requests released by the rate so far
  uint64_t backlog_ = 0;    // released but not yet started
  LoadReport* report_ = nullptr;
};

// ---- Connection ----

void Connection::start_request(uint64_t now_ns) {
  busy_ = true;
  start_ns_ = now_ns;
  parser_.reset();
  if (socket_ && connected_) {
    send();
  } else {
    connect();
  }
}

void Connection::connect() {
  auto* raw = new Socket;
  raw->tcp.data = raw;
  raw->connect.data = raw;
  raw->owner = this;
  int rc = uv_tcp_init(generator_.loop(), &raw->tcp);
  if (rc < 0) {
    delete raw;  // never became a handle, so nothing to uv_close
    return finish(classify(rc), describe("socket", generator_.endpoint().text, rc));
  }
  socket_.reset(raw);
  const auto* address = reinterpret_cast<const sockaddr*>(&generator_.endpoint().address);
  rc = uv_tcp_connect(&raw->connect, &raw->tcp, address, [](uv_connect_t* req, int status) {
    auto* socket = static_cast<Socket*>(req->data);
    if (socket->owner != nullptr) socket->owner->on_connect(status);
  });
  if (rc < 0) finish(classify(rc), describe("connect", generator_.endpoint().text, rc));
}

void Connection::on_connect(int status) {
  if (status < 0) {
    return finish(classify(status), describe("connect", generator_.endpoint().text, status));
  }
  connected_ = true;
  auto* stream = reinterpret_cast<uv_stream_t*>(&socket_->tcp);
  uv_tcp_nodelay(&socket_->tcp, 1);
  const int rc = uv_read_start(
      stream,
      [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
        auto* socket = static_cast<Socket*>(handle->data);
        *buf = socket->owner != nullptr ? socket->owner->read_buffer() : uv_buf_init(nullptr, 0);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* socket = static_cast<Socket*>(s->data);
        if (socket->owner != nullptr) socket->owner->on_read(nread, buf);
      });
  if (rc < 0) return finish(classify(rc), describe("read", generator_.endpoint().text, rc));
  send();
}

uv_buf_t Connection::read_buffer() {
  return generator_.read_buffer();
}

void Connection::send() {
  // A write request per write, freed by its callback: the callback may come after the
  // response (and the next request) has already been handled.
  auto* write = new uv_write_t;
  const std::string& request = generator_.request();
  uv_buf_t buf = uv_buf_init(const_cast<char*>(request.data()), request.size());
  auto* stream = reinterpret_cast<uv_stream_t*>(&socket_->tcp);
  const int rc = uv_write(write, stream, &buf, 1, [](uv_write_t* req, int status) {
    auto* socket = static_cast<Socket*>(req->handle->data);
    delete req;
    if (socket->owner != nullptr) socket->owner->on_write(status);
  });
  if (rc < 0) {
    delete write;
    finish(classify(rc), describe("write", generator_.endpoint().text, rc));
  }
}

void Connection::on_write(int status) {
  if (status < 0 && busy_) {
    finish(classify(status), describe("write", generator_.endpoint().text, status));
  }
}

void Connection::on_read(ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    if (busy_) {
      on_response_bytes(std::string_view(buf->base, static_cast<size_t>(nread)));
    } else {
      close();  // bytes nobody asked for (a 408 before an idle close): not reusable
    }
  } else if (nread < 0) {
    on_read_end(static_cast<int>(nread));
  }
}

void Connection::on_response_bytes(std::string_view data) {
  switch (parser_.feed(data)) {
    case ResponseParser::Result::kNeedMore:
      return;
    case ResponseParser::Result::kDone:
      if (parser_.status() == 200) return finish(Outcome::kOk, {});
      return finish(Outcome::kOtherStatus, generator_.endpoint().text + ": HTTP status " +
                                               std::to_string(parser_.status()));
    case ResponseParser::Result::kError:
      return finish(Outcome::kOtherError, generator_.endpoint().text + ": " + parser_.error());
  }
}

void Connection::on_read_end(int status) {
  if (!busy_) {
    // The server closed an idle keep-alive connection before we asked anything: normal.
    return close();
  }
  if (status != UV_EOF) {
    return finish(classify(status), describe("read", generator_.endpoint().text, status));
  }
  if (parser_.eof() == ResponseParser::Result::kDone) {
    return on_response_bytes({});
  }
  finish(Outcome::kReset, generator_.endpoint().text + ": " + parser_.error());
}

void Connection::check_timeout(uint64_t now_ns) {
  const auto timeout = std::chrono::nanoseconds(generator_.options().request_timeout);
  if (!busy_ || now_ns - start_ns_ < static_cast<uint64_t>(timeout.count())) return;
  finish(Outcome::kTimeout, generator_.endpoint().text + ": no response within " +
                                std::to_string(generator_.options().request_timeout.count()) +
                                " ms");
}

void Connection::close() {
  socket_.reset();
  connected_ = false;
  busy_ = false;
}

void Connection::finish(Outcome outcome, std::string error) {
  const bool complete = outcome == Outcome::kOk || outcome == Outcome::kOtherStatus;
  const bool reuse =
      complete && parser_.keep_alive() && generator_.options().mode == Mode::kKeepAlive;
  busy_ = false;
  if (!reuse) close();
  generator_.record(outcome, start_ns_, std::move(error));
  generator_.release(this);
}

// ---- Generator ----

Generator::Generator(const LoadOptions& options, Endpoint endpoint, std::atomic<bool>* stop)
    : options_(options),
      endpoint_(std::move(endpoint)),
      stop_(stop),
      read_buffer_(kReadBufferBytes) {
  request_ = "GET " + options_.path + " HTTP/1.1\r\nHost: " + endpoint_.text +
             "\r\nUser-Agent: serverswap-verify\r\nAccept: */*\r\n";
  if (options_.mode == Mode::kClose) request_ += "Connection: close\r\n";
  request_ += "\r\n";
}

Generator::~Generator() {
  if (!loop_ready_) return;
  connections_.clear();  // closes their sockets
  uv_walk(
      &loop_,
      [](uv_handle_t* handle, void*) {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);  // runs the close callbacks, which free the sockets
  [[maybe_unused]] const int rc = uv_loop_close(&loop_);
  assert(rc == 0);
}

bool Generator::init(std::string* error) {
  const int rc = uv_loop_init(&loop_);
  if (rc < 0) {
    *error = std::string("uv_loop_init: ") + uv_strerror(rc);
    return false;
  }
  loop_ready_ = true;
  loop_.data = this;
  for (uv_timer_t* timer : {&tick_timer_, &deadline_timer_, &rate_timer_}) {
    uv_timer_init(&loop_, timer);
    timer->data = this;
  }
  uv_idle_init(&loop_, &dispatcher_);
  dispatcher_.data = this;
  connections_.reserve(static_cast<size_t>(options_.connections));
  for (int i = 0; i < options_.connections; ++i) {
    connections_.push_back(std::make_unique<Connection>(*this));
  }
  return true;
}

void Generator::run(LoadReport* report) {
  report_ = report;
  running_ = true;
  start_ns_ = uv_hrtime();
  report_->started_monotonic_ns = start_ns_;
  uv_update_time(&loop_);
  arm_deadline();
  uv_timer_start(
      &tick_timer_, [](uv_timer_t* t) { static_cast<Generator*>(t->data)->tick(); }, kTickMs,
      kTickMs);
  if (!closed_loop()) {
    uv_timer_start(
        &rate_timer_, [](uv_timer_t* t) { static_cast<Generator*>(t->data)->add_due_requests(); },
        kRateTickMs, kRateTickMs);
  }
  for (auto& connection : connections_) available_.push_back(connection.get());
  if (closed_loop()) {
    kick();
  } else {
    add_due_requests();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  report_ = nullptr;
}

void Generator::record(Outcome outcome, uint64_t request_start_ns, std::string error) {
  const uint64_t now = uv_hrtime();
  Counts& counts = report_->counts;
  switch (outcome) {
    case Outcome::kOk:
      ++counts.ok;
      report_->latency_us.record((now - request_start_ns) / 1000);
      break;
    case Outcome::kRefused:
      ++counts.refused;
      break;
    case Outcome::kReset:
      ++counts.reset;
      break;
    case Outcome::kTimeout:
      ++counts.timeout;
      break;
    case Outcome::kOtherStatus:
      ++counts.other_status;
      break;
    case Outcome::kOtherError:
      ++counts.other_error;
      break;
  }
  report_->timeline.record(std::chrono::nanoseconds(now - start_ns_), outcome == Outcome::kOk);
  if (options_.on_sample) {
    options_.on_sample({.completed = std::chrono::nanoseconds(now - start_ns_),
                        .latency_us = (now - request_start_ns) / 1000,
                        .outcome = outcome_name(outcome)});
  }
  auto& errors = report_->errors;
  if (!error.empty() &&
      (errors.size() < LoadReport::kMaxDistinctErrors || errors.contains(error))) {
    ++errors[std::move(error)];
  }
}

void Generator::release(Connection* connection) {
  if (!running_) return;
  available_.push_back(connection);
  if (closed_loop() || backlog_ > 0) kick();
}

void Generator::kick() {
  uv_idle_start(&dispatcher_,
                [](uv_idle_t* idle) { static_cast<Generator*>(idle->data)->dispatch(); });
}

// Requests start only here, in the idle phase, never from inside a read callback: that
// bounds recursion when connects fail synchronously (EMFILE) and spreads a burst of
// starts over loop iterations.
void Generator::dispatch() {
  int started = 0;
  while (running_ && !available_.empty() && started < kMaxStartsPerIteration &&
         (closed_loop() || backlog_ > 0)) {
    Connection* connection = available_.front();
    available_.pop_front();
    if (!closed_loop()) --backlog_;
    ++started;
    connection->start_request(uv_hrtime());
  }
  if (!running_ || available_.empty() || (!closed_loop() && backlog_ == 0)) {
    uv_idle_stop(&dispatcher_);
  }
}

void Generator::add_due_requests() {
  // Release requests on a fixed schedule from the start, so the rate is kept on average
  // even though the timer cannot fire for every request. The first goes out at once.
  const double seconds = static_cast<double>(uv_hrtime() - start_ns_) / 1e9;
  const auto due = static_cast<uint64_t>(std::floor(options_.rate * seconds)) + 1;
  if (due <= scheduled_) return;
  // When every connection is busy the excess is dropped rather than queued without bound;
  // the achieved rate in the report shows it.
  const auto cap = static_cast<uint64_t>(options_.connections);
  backlog_ = std::min(cap, backlog_ + (due - scheduled_));
  scheduled_ = due;
  if (!available_.empty()) kick();
}

// libuv timers count whole milliseconds of a cached loop clock, so they may fire up to a
// millisecond early: re-arm until the run has really lasted its duration.
void Generator::arm_deadline() {
  const auto duration = std::chrono::nanoseconds(options_.duration).count();
  const auto elapsed = static_cast<int64_t>(uv_hrtime() - start_ns_);
  if (elapsed >= duration) return finish_run();
  const auto remaining_ms = static_cast<uint64_t>((duration - elapsed + 999999) / 1000000);
  uv_timer_start(
      &deadline_timer_, [](uv_timer_t* t) { static_cast<Generator*>(t->data)->arm_deadline(); },
      remaining_ms, 0);
}

void Generator::tick() {
  if (stop_ != nullptr && stop_->load()) return finish_run();
  const uint64_t now = uv_hrtime();
  for (auto& connection : connections_) connection->check_timeout(now);
  publish_progress();
}

void Generator::publish_progress() {
  if (options_.on_progress) options_.on_progress(report_->counts.ok, report_->counts.failed());
}

void Generator::finish_run() {
  if (!running_) return;
  running_ = false;
  report_->elapsed = std::chrono::nanoseconds(uv_hrtime() - start_ns_);
  for (auto& connection : connections_) {
    if (connection->busy()) ++report_->unfinished;
    connection->close();
  }
  available_.clear();
  for (uv_timer_t* timer : {&tick_timer_, &deadline_timer_, &rate_timer_}) uv_timer_stop(timer);
  uv_idle_stop(&dispatcher_);
  report_->timeline.cover(report_->elapsed);
  publish_progress();
}

bool validate(const LoadOptions& options, std::string* error) {
  if (options.connections < 1) {
    *error = "connections must be at least 1";
  } else if (options.duration.count() <= 0) {
    *error = "duration must be positive";
  } else if (options.request_timeout.count() <= 0) {
    *error = "request timeout must be positive";
  } else if (!(options.rate >= 0) || std::isinf(options.rate)) {
    *error = "rate must be a finite number >= 0";
  } else if (options.path.empty() || options.path.front() != '/' ||
             options.path.find_first_of(" \r\n") != std::string::npos) {
    *error = "path must start with / and contain no spaces or line breaks";
  } else if (options.port == 0) {
    *error = "port must be from 1 to 65535";
  } else {
    return true;
  }
  return false;
}

}  // namespace

const char* mode_name(Mode mode) {
  return mode == Mode::kClose ? "close" : "keepalive";
}

std::optional<Mode> parse_mode(std::string_view name) {
  if (name == "close") return Mode::kClose;
  if (name == "keepalive" || name == "keep-alive") return Mode::kKeepAlive;
  return std::nullopt;
}

double LoadReport::achieved_rate() const {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  return seconds > 0 ? static_cast<double>(counts.total()) / seconds : 0.0;
}

LoadReport run_load(const LoadOptions& options, std::atomic<bool>* stop) {
  LoadReport report;
  report.target = format_host_port(options.host, options.port);
  report.mode = options.mode;
  report.connections = options.connections;
  report.target_rate = options.rate;
  std::string error;
  if (!validate(options, &error)) {
    report.setup_error = error;
    return report;
  }
  std::optional<Endpoint> endpoint = resolve_endpoint(options.host, options.port, &error);
  if (!endpoint) {
    report.setup_error = error;
    return report;
  }
  SigpipeBlock no_sigpipe;
  Generator generator(options, std::move(*endpoint), stop);
  if (!generator.init(&error)) {
    report.setup_error = error;
    return report;
  }
  generator.run(&report);
  return report;
}

}  // namespace serverswap::verify
