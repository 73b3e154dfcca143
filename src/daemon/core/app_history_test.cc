#include "daemon/core/app_history.h"

#include <gtest/gtest.h>

#include <memory>

#include "daemon/testing/fake_seams.h"

namespace serverswap::daemon {
namespace {

using testing::FakeClock;

constexpr Millis kWindow{60'000};

// A server of app web's release `release`, started by a deploy (not a crash restart).
std::unique_ptr<Server> server_of(FakeClock& clock, const std::string& release,
                                  uint64_t generation) {
  auto server = std::make_unique<Server>(clock);
  server->request.name = "web";
  server->request.argv = {"/srv/" + release + "/server"};
  server->request.cwd = "/srv/" + release;
  server->request.env = {"RELEASE=" + release, "RAW=\xff"};
  server->generation = generation;
  return server;
}

// What the next daemon reads: the versions through the state file's text.
std::vector<AppRecord> through_the_state_file(const AppHistory& history) {
  DaemonState state;
  state.apps = history.record();
  auto read = state_from_json(state_to_json(state));
  EXPECT_TRUE(read.ok()) << read.status().message();
  EXPECT_TRUE(read.ok() && read->dropped_versions.empty());
  return read.ok() ? read->apps : std::vector<AppRecord>{};
}

// A daemon that resumes from the state file knows the versions the one before it kept:
// `rollback` goes to the previous one, `restart` to the current one, status lists both.
TEST(AppHistory, TheVersionsRecordedAreRestoredByTheNextDaemon) {
  FakeClock clock;
  AppHistory before(clock, kWindow);
  auto v1 = server_of(clock, "v1", 1), v2 = server_of(clock, "v2", 2);
  before.up(*v1);
  before.up(*v2);
  AppHistory after(clock, kWindow);
  EXPECT_FALSE(after.previous("web").ok());
  after.restore(through_the_state_file(before));
  auto previous = after.previous("web");
  ASSERT_TRUE(previous.ok()) << previous.status().message();
  EXPECT_EQ(previous->to.argv, v1->request.argv);
  EXPECT_EQ(previous->to.cwd, v1->request.cwd);
  EXPECT_EQ(previous->to.env, v1->request.env);
  EXPECT_EQ(previous->to_generation, 1u);
  EXPECT_EQ(previous->from_generation, 2u);
  auto current = after.current("web");
  ASSERT_TRUE(current.ok()) << current.status().message();
  EXPECT_EQ(current->argv, v2->request.argv);
  ASSERT_EQ(after.status("web").size(), 1u);
  EXPECT_EQ(after.status("web")[0].versions.size(), 2u);
  // The server of v2 that the next daemon takes back is its current version, not a third.
  after.up(*v2);
  EXPECT_EQ(after.status("web")[0].versions.size(), 2u);
}

// A restored version's rollback window is over: its crashes right after the restart roll
// nothing back. A version deployed after the restart has its window, and may roll back to a
// restored one; that rollback is shown again by the daemon after the next restart.
TEST(AppHistory, ARestoredVersionsRollbackWindowIsOver) {
  FakeClock clock;
  AppHistory before(clock, kWindow);
  auto v1 = server_of(clock, "v1", 1), v2 = server_of(clock, "v2", 2);
  before.up(*v1);
  before.up(*v2);
  AppHistory after(clock, kWindow);
  after.restore(through_the_state_file(before));
  std::string why_not;
  EXPECT_FALSE(after.crashed(*v2, &why_not).has_value());
  EXPECT_FALSE(after.crashed(*v2, &why_not).has_value());
  EXPECT_FALSE(after.crashed(*v2, &why_not).has_value());
  EXPECT_TRUE(why_not.empty()) << why_not;

  auto v3 = server_of(clock, "v3", 3);
  after.up(*v3);
  EXPECT_FALSE(after.crashed(*v3).has_value());
  auto rollback = after.crashed(*v3);
  ASSERT_TRUE(rollback.has_value());
  EXPECT_EQ(rollback->to_generation, 2u);
  EXPECT_EQ(rollback->to.argv, v2->request.argv);

  clock.advance(Millis(5'000));
  AppHistory third(clock, kWindow);
  third.restore(through_the_state_file(after));
  auto status = third.status("web");
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].versions.size(), 2u);  // v3 crash-looped: dropped
  ASSERT_TRUE(status[0].rolled_back.has_value());
  EXPECT_EQ(status[0].rolled_back->from_generation, 3);
  EXPECT_EQ(status[0].rolled_back->to_generation, 2);
  EXPECT_NE(status[0].rolled_back->reason.find("crashed 2 times"), std::string::npos);
}

// A release directory switched behind a symbolic link (`current -> releases/r2`): the
// versions differ only in their environment, and the earlier one runs the files on disk now.
// Rolling back to it would start the release that crashed again, as "the previous version"
// (found by a new user: status said "rolled back", the load got r2's answers). Neither the
// automatic rollback nor `rollback APP` takes it; they say why, and a different command
// before it is still a target.
TEST(AppHistory, AnEarlierVersionOfTheSameCommandAndDirectoryIsNoRollbackTarget) {
  FakeClock clock;
  AppHistory history(clock, kWindow);
  auto other = server_of(clock, "r0", 1);
  auto r1 = server_of(clock, "current", 2), r2 = server_of(clock, "current", 3);
  r2->request.env = {"OLDPWD=/somewhere/else"};
  history.up(*r1);
  history.up(*r2);
  auto refused = history.previous("web");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("same command in the same directory"),
            std::string::npos)
      << refused.status().message();
  std::string why_not;
  EXPECT_FALSE(history.crashed(*r2, &why_not).has_value());
  EXPECT_FALSE(history.crashed(*r2, &why_not).has_value());
  EXPECT_NE(why_not.find("put the earlier release back, then serverswap restart web"),
            std::string::npos)
      << why_not;

  AppHistory with_other(clock, kWindow);
  with_other.up(*other);
  with_other.up(*r1);
  with_other.up(*r2);
  auto back = with_other.previous("web");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->to_generation, 1u);
}

// The same command from `current`, once in releases/r1 and once in releases/r2 (recorded at
// spawn): the earlier one is a rollback target, pinned to the directory it ran in; the same
// physical directory (files changed in place) is not.
TEST(AppHistory, TheSameCommandThatRanInAnotherPhysicalDirectoryIsRolledBackThere) {
  FakeClock clock;
  AppHistory history(clock, kWindow);
  auto r1 = server_of(clock, "current", 1), r2 = server_of(clock, "current", 2);
  r1->request.physical = PhysicalDirectory{"/srv/releases/r1", 5, 101};
  r2->request.physical = PhysicalDirectory{"/srv/releases/r2", 5, 102};
  history.up(*r1);
  history.up(*r2);
  auto back = history.previous("web");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->to_generation, 1u);
  EXPECT_TRUE(back->to.pinned);
  ASSERT_TRUE(back->to.physical);
  EXPECT_EQ(back->to.physical->path, "/srv/releases/r1");
  EXPECT_EQ(directory_said(back->to), "/srv/current (/srv/releases/r1)");
  // The state file keeps where each version ran (bytes that are not UTF-8 included).
  auto records = through_the_state_file(history);
  ASSERT_EQ(records.size(), 1u);
  ASSERT_EQ(records[0].versions.size(), 2u);
  EXPECT_EQ(records[0].versions[0].request.physical, r1->request.physical);
  EXPECT_EQ(records[0].versions[1].request.physical, r2->request.physical);
  history.crashed(*r2);
  auto automatic = history.crashed(*r2);
  ASSERT_TRUE(automatic.has_value());
  EXPECT_TRUE(automatic->to.pinned);
  EXPECT_EQ(automatic->to_generation, 1u);

  AppHistory in_place(clock, kWindow);
  auto again = server_of(clock, "current", 3);
  again->request.physical = PhysicalDirectory{"/srv/releases/r1", 5, 101};
  again->request.env = {"OLDPWD=/somewhere/else"};
  in_place.up(*r1);
  in_place.up(*again);
  EXPECT_FALSE(in_place.previous("web").ok());
}

}  // namespace
}  // namespace serverswap::daemon
