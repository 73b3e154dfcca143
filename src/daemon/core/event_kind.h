// The kinds of the supervisor's events (docs/protocol.md section 7, "event").
//
// Code that reacts to an event (metrics, the simulator, tests) compares its kind, never its
// text: the text is for people and may be reworded at any time; the kind is part of the
// protocol.
#pragma once

namespace serverswap::daemon {

enum class EventKind {
  kSpawned,          // a server process was started
  kConnected,        // it opened its control connection
  kResourceReady,    // it is ready on one resource (or was handed a listening socket)
  kAskedAgain,       // it sent readyFor of a resource it holds already (said once per resource)
  kStatus,           // it sent STATUS= on NOTIFY_SOCKET
  kStopping,         // it sent STOPPING=1
  kMainPid,          // it sent MAINPID=
  kNotifyRejected,   // a notification on its NOTIFY_SOCKET was refused
  kNotifyLost,       // its NOTIFY_SOCKET could not be reopened after a daemon restart
  kFail,             // it sent fail after it was up (ignored)
  kTookDown,         // it stopped accepting on one resource
  kDisconnected,     // it closed its control connection
  kConfirming,       // it said it is up, and is in its --confirm window (nothing replaced yet)
  kUp,               // it is up
  kTakeDown,         // it was sent takeDown on one resource
  kPartialTakedown,  // it was taken down on some of its resources only
  kFailed,           // it failed before it was up
  kKilled,           // it was sent SIGKILL
  kSignalled,        // it was sent a signal
  kExited,           // it exited (not while up, or while taken down)
  kCrashed,          // it exited while up and not taken down: on the wire "exited" + crashed
  kRestored,         // a server taken down was given its resource back
  kRestarting,       // a crashed server will be started again
  kStable,           // a restart stayed up: the crash loop is over
  kServing,          // it took one resource over (staggered handover)
  kRollout,          // a step of a rolling deploy
  kAdopted,          // taken back from the state file after a daemon restart
  kUnmanaged,        // an adopted server that cannot be managed any more
  kResumed,          // an adopted server reconnected and took its sockets back
  kRolledBack,       // its version crash-looped: the app's previous version is deployed
};

// The event's "kind" on the wire (JSON events and JSON log lines). kCrashed is "exited"
// (its event also carries "crashed": true) so that readers of "exited" see every exit.
// Never null; a static string.
constexpr const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kSpawned:
      return "spawned";
    case EventKind::kConnected:
      return "connected";
    case EventKind::kResourceReady:
      return "resourceReady";
    case EventKind::kAskedAgain:
      return "askedAgain";
    case EventKind::kStatus:
      return "status";
    case EventKind::kStopping:
      return "stopping";
    case EventKind::kMainPid:
      return "mainpid";
    case EventKind::kNotifyRejected:
      return "notifyRejected";
    case EventKind::kNotifyLost:
      return "notifyLost";
    case EventKind::kFail:
      return "fail";
    case EventKind::kTookDown:
      return "tookDown";
    case EventKind::kDisconnected:
      return "disconnected";
    case EventKind::kConfirming:
      return "confirming";
    case EventKind::kUp:
      return "up";
    case EventKind::kTakeDown:
      return "takeDown";
    case EventKind::kPartialTakedown:
      return "partialTakedown";
    case EventKind::kFailed:
      return "failed";
    case EventKind::kKilled:
      return "killed";
    case EventKind::kSignalled:
      return "signalled";
    case EventKind::kExited:
      return "exited";
    case EventKind::kCrashed:
      return "exited";
    case EventKind::kRestored:
      return "restored";
    case EventKind::kRestarting:
      return "restarting";
    case EventKind::kStable:
      return "stable";
    case EventKind::kServing:
      return "serving";
    case EventKind::kRollout:
      return "rollout";
    case EventKind::kAdopted:
      return "adopted";
    case EventKind::kUnmanaged:
      return "unmanaged";
    case EventKind::kResumed:
      return "resumed";
    case EventKind::kRolledBack:
      return "rolledBack";
  }
  return "unknown";
}

}  // namespace serverswap::daemon
