// Simulator: the real Supervisor driven through its seams by a seeded random scheduler (the
// approach of FoundationDB's simulation testing). One schedule interleaves deploy requests
// (same and different commands and resources), reloads, hello, readyFor, onTakedown,
// serverUp, fail, crashes at any point, exits, takeDowns and SIGTERMs that servers ignore,
// and timer expiries; after every step it checks the invariants of docs/architecture.md
// ("Invariants"):
//   I1 a resource that had an up server always has an accepting holder, unless every holder
//      crashed on its own;
//   I2 no server that was up is taken down on a resource before a newer server holding that
//      resource is up;
//   I3 once quiet (no deploy in flight, no timer pending, nothing left to do), exactly one
//      generation serves each resource, and it is up;
//   I4 every deploy ends with exactly one outcome, true when it is sent: `deployed` only
//      while its server is up and not taken down;
//   I5 after stop, every process started has exited and been reaped, no timer is pending,
//      no NOTIFY_SOCKET is left open;
//   I6 no server that was up is taken down on a resource because of a newer server before a
//      newer server holding it has passed its confirmation window (--confirm, or the default
//      of how it came up), unless that one said `serving` there;
//   I7 once quiet after an automatic rollback that came up (a worker app's: whose roll did not
//      fail), with no deploy or reload of the app since and no daemon death while it may have
//      been in flight, only the release it rolled back to serves the app.
// The same seed replays exactly. Single-threaded; one World per schedule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace serverswap::daemon::testing {

// Which steps the scheduler may take. kClassic is the first mix (plain servers of the
// client library only): the regression seeds found with it replay it exactly. kFull adds
// workers and rolling deploys, --listen programs (READY=1 on NOTIFY_SOCKET, --ready-after),
// `serving`, daemon deaths and upgrades (the daemon restarts and its servers resume, or
// do not), on top of the classic steps.
enum class Mix { kClassic, kFull };

struct ScheduleResult {
  uint64_t seed = 0;
  bool classic = false;  // run with Mix::kClassic
  bool ok = true;
  std::string violation;           // "I2: ..." when !ok
  std::vector<std::string> trace;  // every step taken, up to the violation
  int steps = 0;
  int deploys = 0;
  // Quiet states where a server that did not subscribe kept accepting on a resource it was
  // taken down on, beside the newer server, because it still served another alone.
  int partial_takedowns = 0;
  int rollbacks = 0;  // automatic rollbacks (rolledBack events): I7 checked them
};

struct SimulatorOptions {
  Mix mix = Mix::kFull;
  // Parts of the full mix, each switchable (to tell which part a failure needs).
  bool workers = true;   // --workers N deploys on :3 (and a plain server there)
  bool listen = true;    // --listen programs on :4 and :2
  bool serving = true;   // servers of two resources that say `serving` on each
  bool restarts = true;  // daemon deaths and upgrades; servers resume (or do not)
  // Deploys get a random --confirm (none given, 0, or 200 ms to 2 s), drawn from a stream of
  // their own. Off: every deploy says --confirm 0, so that schedules found before the window
  // existed replay exactly (their regression seeds run so).
  bool confirm = true;
  int max_deploys = 6;  // deploy requests per schedule (reloads add theirs)
  int max_steps = 300;  // random steps before the schedule drains to quiet
  int max_crashes = 3;  // spontaneous crashes per schedule
  bool record_trace = false;
};

ScheduleResult run_schedule(uint64_t seed, const SimulatorOptions& options = {});

// One line per step, with the seed to replay it.
std::string describe(const ScheduleResult& result);

}  // namespace serverswap::daemon::testing
