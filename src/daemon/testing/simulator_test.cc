// Seeds (of the classic mix, Mix::kClassic) on which the simulator once found a broken invariant
// (each fixed since): they must keep every invariant. A new failure's seed is added here when it is
// fixed.
#include "daemon/testing/simulator.h"

#include <gtest/gtest.h>

namespace serverswap::daemon::testing {
namespace {

// 1: a restarted server's excuse (I1); 14: two versions up on one port, a deploy reported
// after its server was replaced; 23: a crash loop that could never come up; 30, 138, 486,
// 1330, 1373, 10291: partial takedowns, settling between two readyFor, deploy order of crash
// restarts; 19, 159, 182, 396: the independent "up" judgement (settle, late fail).
constexpr uint64_t kRegressionSeeds[] = {1,   7,   14,  19,  23,  30,   138,  159,
                                         182, 396, 486, 511, 864, 1330, 1373, 10291};

TEST(Simulator, RegressionSeedsKeepEveryInvariant) {
  SimulatorOptions classic;
  classic.mix = Mix::kClassic;
  for (uint64_t seed : kRegressionSeeds) {
    ScheduleResult result = run_schedule(seed, classic);
    EXPECT_TRUE(result.ok) << describe(result);
  }
}

// Seeds of the full mix with workers (no --listen programs, no `serving`): 3, a roll reported
// deployed with a worker that had crashed (pid 0); 15, a failed first roll took down its up
// workers with nothing else serving; 80, a roll superseded by a newer one of its command
// (which waited, under --max-surge, for an exit no one looked at); 4, an old copy's crash
// restart started during a roll was not an old copy (two workers of one index once quiet);
// 32, a failed roll's new workers going while the old version serves (I2's exception).
// 49, 59: a failed roll that kept its new workers (no old copy served) while an old worker's
// crash restart was pending: the old release came back beside them.
constexpr uint64_t kWorkerSeeds[] = {3, 4, 15, 32, 49, 59, 80};

TEST(Simulator, WorkerRegressionSeedsKeepEveryInvariant) {
  SimulatorOptions workers;
  workers.listen = false;
  workers.serving = false;
  workers.restarts = false;
  for (uint64_t seed : kWorkerSeeds) {
    ScheduleResult result = run_schedule(seed, workers);
    EXPECT_TRUE(result.ok) << describe(result);
  }
}

// Seeds of the full mix with daemon deaths and upgrades (no workers, no `serving`): 17, an
// adopted server that was starting and never resumed stayed accepting, never up; 710 and
// 4796, a partial takedown forgotten across a restart (two generations up on a resource);
// 1208, deploy order not recorded in state.json (a crash restart outranked a later deploy
// after the restart); 2660, a crash loop whose restarts a later deploy superseded, forever.
constexpr uint64_t kRestartSeeds[] = {17, 710, 1208, 2660, 4796};

TEST(Simulator, RestartRegressionSeedsKeepEveryInvariant) {
  SimulatorOptions restarts;
  restarts.workers = false;
  restarts.serving = false;
  for (uint64_t seed : kRestartSeeds) {
    ScheduleResult result = run_schedule(seed, restarts);
    EXPECT_TRUE(result.ok) << describe(result);
  }
}

// Seeds of the full mix without workers (`serving`, --listen programs, daemon restarts): 241,
// 429, 481, 504, 685, 953, a server that took a resource over with `serving` was failed by
// the daemon (a newer deploy, the ready timeout) and the resource left unserved (I1); 5361, a
// server taken back before its hello said hello to the new daemon and was still made
// unmanaged (two generations once quiet); 52821, a server taken down unheard that subscribed
// in its resume was never told; 37909, 66048, a kept server forgot it was kept across a restart.
constexpr uint64_t kServingSeeds[] = {241, 429, 481, 504, 685, 953, 5361, 37909, 52821, 66048};

TEST(Simulator, ServingRegressionSeedsKeepEveryInvariant) {
  SimulatorOptions serving;
  serving.workers = false;
  for (uint64_t seed : kServingSeeds) {
    ScheduleResult result = run_schedule(seed, serving);
    EXPECT_TRUE(result.ok) << describe(result);
  }
}

TEST(Simulator, TheSameSeedReplaysTheSameSchedule) {
  SimulatorOptions traced;
  traced.record_trace = true;
  ScheduleResult a = run_schedule(14, traced);
  ScheduleResult b = run_schedule(14, traced);
  ASSERT_FALSE(a.trace.empty());
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_NE(run_schedule(15, traced).trace, a.trace);
}

}  // namespace
}  // namespace serverswap::daemon::testing
