// Server: the daemon's record of one server it started, and the states it goes through
// (docs/architecture.md draws the table). Owned by the Supervisor. Loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/control/token_bucket.h"
#include "daemon/core/processes.h"
#include "daemon/core/spawn_spec.h"
#include "daemon/spawn/notify_socket.h"
#include "daemon/uv_handle.h"

namespace serverswap::daemon {

enum class ServerState {
  kStarting,   // spawned; has not said hello
  kConnected,  // said hello; holds no resource yet
  kReady,      // holds every resource it asked for; not yet up
  // Said it is up, and must stay alive for its --confirm window before it replaces anyone:
  // still "starting" for every rule (a newer deploy supersedes it, an exit fails its deploy).
  kConfirming,
  kUp,        // serving: sent serverUp, or settled
  kDraining,  // taken down on every resource it held; waiting for it to exit
  kFailed,    // could not start (exit, fail, timeout, bind error); being killed
  // Taken back from state.json by a restarted daemon and did not resume within
  // --adopt-timeout: only signals reach it (Adoptions remembers the state it was recorded in).
  kUnmanaged,
  kGone,  // exited and reaped
};

const char* state_name(ServerState state);

// Hellos (plain or resume) one server may have accepted: kHelloBurst at once, then
// kHellosPerSecond (Server::hellos).
inline constexpr int kHelloBurst = 10;
inline constexpr double kHellosPerSecond = 1;

// How far the signals to a server's process group have gone (a takedown's progress when
// takeDown could not reach it, or it ignored it).
enum class Signalled {
  kNone,      // none sent
  kTakedown,  // its --takedown-signal (sent once)
  kKilled,    // SIGKILL (--takedown-timeout passed, or the daemon was told to kill)
};

struct Server {
  explicit Server(Clock& clock)
      : ready_timer(clock),
        settle_timer(clock),
        kill_timer(clock),
        exit_grace_timer(clock),
        ready_after_timer(clock),
        retire_timer(clock),
        confirm_timer(clock) {}

  std::string id;  // SERVERSWAP_ID
  uint64_t generation = 0;
  // Deploy order: its generation, or for a crash restart the rank of the server it restarts
  // (Supervisor::newer).
  uint64_t rank = 0;
  std::vector<std::string> argv;
  std::string cwd;
  // The deploy request as the user gave it (before the daemon added its own environment):
  // what a reload, a crash restart or a later deploy of the same command starts again.
  SpawnSpec request;
  std::unique_ptr<Process> process;
  pid_t pid = 0;
  ServerState state = ServerState::kStarting;
  std::chrono::steady_clock::time_point started;  // the Clock's now() at spawn or adoption

  uint64_t connection = 0;  // control connection id; 0 when not connected
  bool up_message = false;  // promised serverUp in hello: no settle rule
  // Resources it holds: canonical name -> the spelling it used (echoed back in takeDown).
  std::map<std::string, std::string> held;
  // Asked for and not answered yet (a bind as another user under way): they count against
  // the per-server cap too, or a burst of readyFor would bind far more than it.
  std::set<std::string> asking;
  // Held resources it asked for again (event askedAgain, said once per resource): a deploy
  // waiting for it says so ("asked for :8080 twice").
  std::set<std::string> asked_again;
  std::set<std::string> subscribed;  // onTakedown, canonical names
  std::set<std::string> taken;       // held resources handed over to a newer server
  // Of `taken`, those it was not told about (it did not subscribe): it still accepts there.
  std::set<std::string> unheard;
  // Resources it said `serving` on while starting: it took them over from their older holders
  // (a staggered handover), so it counts as up there (Supervisor::keep_serving).
  std::set<std::string> served;
  // Kept up by keep_serving (its deploy failed): it takes nothing more over by settling, only
  // by `serving`, since it never said serverUp.
  bool kept = false;
  // Taken back from state.json by a restarted daemon: no roll owns it any more (a roll in
  // flight died with the daemon), so a worker of it that fails before it is up leaves its
  // index to the crash restarts (CrashRestarts::exited).
  bool taken_back = false;
  // Resources it said `serving` on: said again, it changes nothing, and is not logged again
  // beyond the rate of what a server says (Supervisor::emit_said).
  std::set<std::string> said_serving;
  // Its hellos and resumes accepted (a connection each): a burst, then a slow rate, so that
  // a server reconnecting in a loop cannot make the daemon say "connected" and
  // "disconnected" without end (docs/protocol.md, "Limits"). A client library reconnects
  // only after the daemon went away, at most every 100 ms and backing off to 1 s, and a
  // restarted daemon starts with a full bucket: it never meets this.
  TokenBucket hellos{kHellosPerSecond, kHelloBurst};
  Signalled signalled = Signalled::kNone;
  std::string failure;  // why it failed, when it did
  // It failed as superseded by a newer deploy: that deploy's generation (0: it was not).
  uint64_t superseded_by = 0;
  // It asked for a resource that another app serves, and was refused (Supervisor::
  // other_apps_holder): that app. A crash restart refused so is not retried.
  std::string lost_to_app;
  bool disconnected_before_up = false;
  int restarts = 0;  // > 0: started by the daemon after this command crashed (the nth restart)
  uint64_t start_time = 0;  // field 22 of /proc/PID/stat, recorded in state.json

  Timer ready_timer;       // --ready-timeout from spawn
  Timer settle_timer;      // --settle after its last resource, for servers that never say up
  Timer kill_timer;        // --takedown-timeout from draining or failure to SIGKILL
  Timer exit_grace_timer;  // a moment to exit alone after closing its connection early

  // Programs without a client library (docs/protocol.md, "Inherited sockets and unmodified
  // programs"): --listen sockets are in `held` from spawn; readiness by sd_notify or time.
  std::unique_ptr<Notifier> notify;  // its NOTIFY_SOCKET
  bool notified = false;             // sent at least one notification
  bool said_stopping = false;        // STOPPING=1
  pid_t main_pid = 0;                // MAINPID=: signalled too when outside its group
  // Notifications dropped (NotifySocket's rule: the main process only): the first few are
  // logged, then only counted. The last refused READY=1 names the likely cause on failure.
  int notify_refusals = 0;
  pid_t refused_ready_pid = 0;
  std::string refused_ready_comm;  // the sender's comm, read when it was refused
  std::string main_comm;           // the main process's comm at that moment
  Timer ready_after_timer;         // --ready-after: alive this long = up (weaker)
  // Up: once it has been up for --settle, the older versions of its app are taken down on
  // what it did not take over (Supervisor::retire_older_versions).
  Timer retire_timer;

  // The confirmation window (kConfirming; daemon/core/confirm_window.h): when it said it was
  // up, how long it must stay alive from then, and the timer that ends the window.
  std::optional<std::chrono::steady_clock::time_point> up_at;
  Millis confirm_window{0};
  Timer confirm_timer;
  bool failed_in_window = false;  // it failed while confirming (its failure says so)

  bool alive() const { return state != ServerState::kGone; }
  // May be accepting on what it holds, and is taken down when a newer server of its
  // resources comes up: up, or unmanaged (reached by its takedown signal only).
  bool serving() const { return state == ServerState::kUp || state == ServerState::kUnmanaged; }
  bool starting() const {
    return state == ServerState::kStarting || state == ServerState::kConnected ||
           state == ServerState::kReady || state == ServerState::kConfirming;
  }
};

}  // namespace serverswap::daemon
