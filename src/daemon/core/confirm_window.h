// The confirmation window (`--confirm D`, docs/architecture.md, "The confirmation window"): a
// new server that is up must stay alive this long before the older holders of its resources
// are taken down. How long, when the deploy does not say, depends on how the server said it
// was up. Pure functions; thread-safe.
#pragma once

#include <optional>

#include "base/duration.h"

namespace serverswap::daemon {

// How a server said it was up (docs/protocol.md, "Readiness without a client library").
enum class Readiness {
  kServerUp,    // a client library's explicit serverUp
  kSettled,     // the settle rule: held what it asked for, connected, for --settle
  kReadyAfter,  // --ready-after: alive that long since spawn
  kNotify,      // READY=1 on NOTIFY_SOCKET
  kEinhorn,     // einhorn's worker:ack
};

// The window a deploy gets when it gives no --confirm. Why each:
// - serverUp: a client library sends it only after the server listens on its sockets and has
//   said its app is initialised: the strongest promise there is, so no window (0).
// - the settle rule and --ready-after are themselves "alive this long": nothing beyond (0).
// - READY=1 and einhorn's worker:ack are weak: pre-forking masters (gunicorn's arbiter, an
//   einhorn master) send them when the master runs, before their workers have imported the
//   app, so an app that fails at import says "ready" and exits a moment later. 5 s covers
//   an import and a worker's first boot, and is short enough not to slow a deploy down.
inline constexpr Millis kWeakReadinessConfirm{5'000};
constexpr Millis default_confirm(Readiness kind) {
  switch (kind) {
    case Readiness::kServerUp:
    case Readiness::kSettled:
    case Readiness::kReadyAfter:
      return Millis(0);
    case Readiness::kNotify:
    case Readiness::kEinhorn:
      return kWeakReadinessConfirm;
  }
  return Millis(0);
}

// The window of a server that said it was up by `kind`: its deploy's --confirm when given
// (0: none), else the default above.
constexpr Millis confirm_window(const std::optional<Millis>& confirm, Readiness kind) {
  return confirm ? *confirm : default_confirm(kind);
}

// The window of a server taken back by a restarted daemon while it was in its window: the
// daemon does not record how it came up, but only READY=1 and worker:ack have a default
// window, and both the same one, so the window is its --confirm, else that default. It starts
// again from the resume (the simplest true rule: it has stayed alive that long under this
// daemon's eyes).
constexpr Millis resumed_confirm_window(const std::optional<Millis>& confirm) {
  return confirm ? *confirm : kWeakReadinessConfirm;
}

}  // namespace serverswap::daemon
