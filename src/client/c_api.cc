// The C API (include/serverswap/serverswap.h) over ClientSession. Its one job beyond
// forwarding: nothing thrown inside ever leaves; every failure becomes -1 and a message.
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "client/client_session.h"
#include "serverswap/serverswap.h"

using serverswap::Status;
using serverswap::client::ClientSession;

struct serverswap_client {
  std::unique_ptr<ClientSession> session;  // null when the open failed
  std::string open_error;
  std::string error;
};

namespace {

int fail_with(serverswap_client* c, const char* what, const char* text) noexcept {
  try {
    c->error = std::string(what) + text;
  } catch (...) {
    c->error.clear();  // out of memory: an empty message rather than an escaping exception
  }
  return -1;
}

int report(serverswap_client* c, const Status& status) noexcept {
  return status.ok() ? 0 : fail_with(c, "", status.message().c_str());
}

// Runs `body` on the session, turning a failed open and any exception into -1.
template <class Body>
int guarded(serverswap_client* c, const char* what, Body&& body) noexcept {
  if (c == nullptr) return -1;
  if (!c->session) return fail_with(c, "not connected: ", c->open_error.c_str());
  try {
    return body(*c->session);
  } catch (const std::exception& e) {
    return fail_with(c, what, e.what());
  } catch (...) {
    return fail_with(c, what, "unknown exception");
  }
}

bool missing(serverswap_client* c, const void* arg, const char* what) noexcept {
  if (arg != nullptr) return false;
  if (c != nullptr) fail_with(c, what, " is NULL");
  return true;
}

}  // namespace

extern "C" {

int serverswap_open(serverswap_client** out) {
  return serverswap_open_ex(out, 0);
}

int serverswap_open_ex(serverswap_client** out, unsigned flags) {
  if (out == nullptr) return -1;
  *out = new (std::nothrow) serverswap_client;
  serverswap_client* c = *out;
  if (c == nullptr) return -1;
  if ((flags & ~SERVERSWAP_EXPLICIT_UP) != 0) {
    fail_with(c, "serverswap_open_ex: unknown flags", "");
    c->open_error = c->error;
    return -1;
  }
  try {
    serverswap::client::Options options;
    options.explicit_up = (flags & SERVERSWAP_EXPLICIT_UP) != 0;
    auto session = ClientSession::open(options);
    if (!session.ok()) {
      c->open_error = session.status().message();
      return fail_with(c, "", c->open_error.c_str());
    }
    c->session = std::move(*session);
    return 0;
  } catch (const std::exception& e) {
    return fail_with(c, "serverswap_open: ", e.what());
  }
}

int serverswap_managed(const serverswap_client* c) {
  return c != nullptr && c->session && c->session->managed() ? 1 : 0;
}

int serverswap_ready_for(serverswap_client* c, const char* resource, int* fd_out) {
  if (missing(c, resource, "readyFor: resource") || missing(c, fd_out, "readyFor: fd_out"))
    return -1;
  return guarded(c, "readyFor: ", [&](ClientSession& s) {
    auto fd = s.ready_for(resource);
    if (!fd.ok()) return report(c, fd.status());
    *fd_out = fd->release();
    return 0;
  });
}

int serverswap_on_takedown(serverswap_client* c, const char* resource, serverswap_takedown_fn cb,
                           void* user) {
  if (missing(c, resource, "onTakedown: resource") ||
      missing(c, reinterpret_cast<const void*>(cb), "onTakedown: callback"))
    return -1;
  return guarded(c, "onTakedown: ", [&](ClientSession& s) {
    return report(
        c, s.on_takedown(resource, [cb, user](const std::string& r) { cb(r.c_str(), user); }));
  });
}

int serverswap_server_up(serverswap_client* c) {
  return guarded(c, "serverUp: ", [&](ClientSession& s) { return report(c, s.server_up()); });
}

int serverswap_fail(serverswap_client* c, const char* reason) {
  if (missing(c, reason, "fail: reason")) return -1;
  return guarded(c, "fail: ", [&](ClientSession& s) { return report(c, s.fail(reason)); });
}

int serverswap_took_down(serverswap_client* c, const char* resource) {
  if (missing(c, resource, "tookDown: resource")) return -1;
  return guarded(c,
                 "tookDown: ", [&](ClientSession& s) { return report(c, s.took_down(resource)); });
}

int serverswap_serving(serverswap_client* c, const char* resource) {
  if (missing(c, resource, "serving: resource")) return -1;
  return guarded(c, "serving: ", [&](ClientSession& s) { return report(c, s.serving(resource)); });
}

int serverswap_fd(const serverswap_client* c) {
  return c != nullptr && c->session ? c->session->control_fd() : -1;
}

int serverswap_timeout_ms(const serverswap_client* c) {
  return c != nullptr && c->session ? c->session->timeout_ms() : -1;
}

int serverswap_dispatch(serverswap_client* c) {
  return guarded(c, "dispatch: ", [&](ClientSession& s) { return report(c, s.dispatch()); });
}

const char* serverswap_error(const serverswap_client* c) {
  return c != nullptr ? c->error.c_str() : "no client (out of memory)";
}

void serverswap_close(serverswap_client* c) {
  delete c;
}

}  // extern "C"
