// serverswap_simulator: runs the supervisor simulator (simulator.h) over a range of seeds
// and prints how many schedules ran and how long they took.
//   serverswap_simulator [--schedules N] [--first-seed S]   N schedules from seed S
//   serverswap_simulator --seed S                           one schedule, its whole trace
//   --keep-going: one line per failing seed, and on to the next
//   --classic: the first mix of steps (Mix::kClassic), which older regression seeds name
//   --no-workers, --no-listen, --no-serving, --no-restarts: leave that part of the full mix out
//   --no-confirm: every deploy says --confirm 0 (as before the window existed)
// Exit status: 0 when every schedule kept every invariant, 1 at the first that did not
// (its seed and trace are printed), 2 on a usage error.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "daemon/testing/simulator.h"

using serverswap::daemon::testing::describe;
using serverswap::daemon::testing::run_schedule;
using serverswap::daemon::testing::SimulatorOptions;

int main(int argc, char** argv) {
  uint64_t schedules = 100'000;
  uint64_t first = 1;
  bool one = false;
  bool classic = false;
  bool keep_going = false;  // one line per failing seed, and on to the next
  bool workers = true, listen = true, serving = true, restarts = true, confirm = true;
  uint64_t failed = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--classic") {
      classic = true;
      continue;
    }
    if (arg == "--no-workers" || arg == "--no-listen" || arg == "--no-serving" ||
        arg == "--no-restarts" || arg == "--no-confirm") {
      (arg == "--no-workers"    ? workers
       : arg == "--no-listen"   ? listen
       : arg == "--no-serving"  ? serving
       : arg == "--no-restarts" ? restarts
                                : confirm) = false;
      continue;
    }
    if (arg == "--keep-going") {
      keep_going = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(
          stderr,
          "usage: %s [--classic] [--no-workers] [--no-listen] [--no-serving] [--no-restarts] "
          "[--no-confirm] [--keep-going] [--schedules N] [--first-seed S] | --seed S\n",
          argv[0]);
      return 2;
    }
    uint64_t value = std::strtoull(argv[++i], nullptr, 10);
    if (arg == "--schedules") {
      schedules = value;
    } else if (arg == "--first-seed") {
      first = value;
    } else if (arg == "--seed") {
      first = value;
      schedules = 1;
      one = true;
    } else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  auto start = std::chrono::steady_clock::now();
  uint64_t steps = 0;
  uint64_t partial = 0;
  uint64_t rollbacks = 0;
  for (uint64_t seed = first; seed < first + schedules; ++seed) {
    SimulatorOptions options;
    options.record_trace = one;
    options.workers = workers;
    options.listen = listen;
    options.serving = serving;
    options.restarts = restarts;
    options.confirm = confirm;
    if (classic) options.mix = serverswap::daemon::testing::Mix::kClassic;
    auto result = run_schedule(seed, options);
    steps += static_cast<uint64_t>(result.steps);
    partial += result.partial_takedowns > 0;
    rollbacks += static_cast<uint64_t>(result.rollbacks);
    if (!result.ok && keep_going) {
      ++failed;
      std::printf("seed %llu: %s\n", static_cast<unsigned long long>(seed),
                  result.violation.c_str());
      continue;
    }
    if (!result.ok || one) {
      std::fputs(describe(result).c_str(), stdout);
      if (!result.ok) return 1;
    }
  }
  if (failed > 0) {
    std::printf("%llu of %llu schedules broke an invariant\n",
                static_cast<unsigned long long>(failed),
                static_cast<unsigned long long>(schedules));
    return 1;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%llu schedules (seeds %llu..%llu), %llu steps, every invariant held, %.1f s; %llu ended "
      "with a partial takedown of a server without onTakedown; %llu automatic rollbacks\n",
      static_cast<unsigned long long>(schedules), static_cast<unsigned long long>(first),
      static_cast<unsigned long long>(first + schedules - 1),
      static_cast<unsigned long long>(steps), seconds, static_cast<unsigned long long>(partial),
      static_cast<unsigned long long>(rollbacks));
  return 0;
}
