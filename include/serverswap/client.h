// serverswap::Client: the C++ face of the serverswap client library, a thin header-only
// RAII wrapper over the C API in serverswap/serverswap.h (read its conventions: standalone
// mode, inherited sockets, deadlines, non-blocking listening sockets, when callbacks run). Failures
// throw serverswap::Error, whose what() is the C API's error text.
//
// Thread-safety: like the C handle, a Client is used from one thread at a time. It is
// move-only; moving it does not invalidate registered callbacks.
#pragma once

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "serverswap/serverswap.h"

namespace serverswap {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  using TakedownCallback = std::function<void(std::string_view resource)>;

  struct Options {
    // Promise to call server_up() (hello's "upMessage"); see SERVERSWAP_EXPLICIT_UP.
    bool explicit_up = false;
  };

  // Connects as serverswap_open_ex() does; standalone without SERVERSWAP_ID, or when no
  // daemon answers at start (one line on stderr). Throws Error when the open fails.
  static Client open() { return open(Options()); }
  static Client open(Options options) {
    auto state = std::make_unique<State>();
    unsigned flags = options.explicit_up ? SERVERSWAP_EXPLICIT_UP : 0u;
    int rc = serverswap_open_ex(&state->handle, flags);
    if (state->handle == nullptr) throw Error("serverswap_open: out of memory");
    if (rc != 0) throw Error(serverswap_error(state->handle));
    return Client(std::move(state));
  }

  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  bool managed() const { return serverswap_managed(state_->handle) != 0; }

  // The listening socket of `resource`, a new descriptor the caller owns and closes: an
  // inherited one when it matches (LISTEN_FDS, SERVER_STARTER_PORT, EINHORN_FD_n), else
  // the daemon's (managed) or one bound here (standalone).
  int ready_for(std::string_view resource) {
    int fd = -1;
    check(serverswap_ready_for(state_->handle, std::string(resource).c_str(), &fd));
    return fd;
  }

  // Registers `callback` for takeDown of `resource` (replacing an earlier one).
  void on_takedown(std::string_view resource, TakedownCallback callback) {
    auto& slot = state_->callbacks[std::string(resource)];
    auto previous = std::move(slot);
    slot = std::make_unique<Slot>(Slot{std::move(callback), state_.get()});
    // The C library now points at the new slot; `previous` may be freed after the call.
    check(serverswap_on_takedown(state_->handle, std::string(resource).c_str(), &trampoline,
                                 slot.get()));
  }

  void server_up() { check(serverswap_server_up(state_->handle)); }
  void fail(std::string_view reason) {
    check(serverswap_fail(state_->handle, std::string(reason).c_str()));
  }
  void serving(std::string_view resource) {
    check(serverswap_serving(state_->handle, std::string(resource).c_str()));
  }
  void took_down(std::string_view resource) {
    check(serverswap_took_down(state_->handle, std::string(resource).c_str()));
  }

  // Poll this for readability and then call dispatch(); -1 when standalone or disconnected.
  // It changes when the client reconnects to a restarted daemon: read it before each poll.
  int control_fd() const { return serverswap_fd(state_->handle); }

  // The longest the loop's poll() may wait before dispatch() must run anyway (ms; -1: no
  // limit, 0: at once): while the daemon is gone, reconnect attempts are made by dispatch()
  // at the times this gives (serverswap_timeout_ms(), serverswap_dispatch()).
  int timeout_ms() const { return serverswap_timeout_ms(state_->handle); }

  // Runs takedown callbacks for what has arrived and, after the daemon went away, the
  // reconnect attempt that is due (the server resumes with the next daemon). Throws Error
  // when the connection is gone for good (control_fd() is -1 from then on; the server goes
  // on without a daemon) or a callback threw (rethrown here). A reconnect under way is not
  // an error.
  void dispatch() { check(serverswap_dispatch(state_->handle)); }

  // The underlying C handle, still owned by this Client.
  serverswap_client* handle() const { return state_->handle; }

 private:
  struct State;
  struct Slot {
    TakedownCallback callback;
    State* state;
  };
  // Heap-allocated so that the addresses handed to the C library survive moves of Client.
  struct State {
    serverswap_client* handle = nullptr;
    std::map<std::string, std::unique_ptr<Slot>> callbacks;
    std::exception_ptr callback_error;
    State() = default;
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() { serverswap_close(handle); }
  };

  explicit Client(std::unique_ptr<State> state) : state_(std::move(state)) {}

  // Exceptions must not unwind through the C library: keep the first, rethrow it later.
  static void trampoline(const char* resource, void* user) noexcept {
    auto* slot = static_cast<Slot*>(user);
    try {
      if (slot->callback) slot->callback(resource);
    } catch (...) {
      if (!slot->state->callback_error) slot->state->callback_error = std::current_exception();
    }
  }

  void check(int rc) {
    if (state_->callback_error) std::rethrow_exception(std::exchange(state_->callback_error, {}));
    if (rc != 0) throw Error(serverswap_error(state_->handle));
  }

  std::unique_ptr<State> state_;
};

}  // namespace serverswap
