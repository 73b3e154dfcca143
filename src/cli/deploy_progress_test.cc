#include "cli/deploy_progress.h"

#include <gtest/gtest.h>

namespace serverswap::cli {
namespace {

protocol::Event event(const std::string& kind, const std::string& id,
                      std::optional<std::string> resource = std::nullopt,
                      const std::string& text = "") {
  protocol::Event e;
  e.kind = kind;
  e.id = id;
  e.pid = id == "a" ? 42 : 43;
  e.generation = id == "a" ? 3 : 4;
  e.resource = std::move(resource);
  e.text = text;
  return e;
}

TEST(DeployProgress, SaysWhatEachWaitingServerHasAndLacks) {
  DeployProgress progress;
  EXPECT_TRUE(progress.report(Millis(5000)).empty());  // nothing started yet
  progress.saw(event("spawned", "a"));
  auto lines = progress.report(Millis(5000));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "still waiting after 5s: server 42 (gen 3) has not connected to the daemon (no "
            "readyFor, no serverUp) and holds nothing; nor has it said READY=1");
  progress.saw(event("connected", "a"));
  progress.saw(event("resourceReady", "a", ":8080"));
  progress.saw(event("status", "a", std::nullopt, "server 42 (gen 3): STATUS=loading models"));
  lines = progress.report(Millis(20000));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "still waiting after 20s: server 42 (gen 3) connected, holds :8080; has not sent "
            "serverUp; its last STATUS=loading models");
}

// A server that asked twice for what it holds (event askedAgain, by kind, never by text):
// the report says so, the usual cause of a wait when each handed socket must be listened on.
TEST(DeployProgress, AServerThatAskedForAResourceTwiceIsSaidToHave) {
  DeployProgress progress;
  progress.saw(event("spawned", "a"));
  progress.saw(event("connected", "a"));
  progress.saw(event("resourceReady", "a", ":8080"));
  progress.saw(event("askedAgain", "a", ":8080", "server 42 (gen 3) :8080: whatever it says"));
  auto lines = progress.report(Millis(5000));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "still waiting after 5s: server 42 (gen 3) connected, holds :8080, asked for :8080 "
            "twice; has not sent serverUp");
}

TEST(DeployProgress, AListenServerThatNeverConnectsIsToldApart) {
  DeployProgress progress;
  progress.saw(event("spawned", "b"));
  progress.saw(event("resourceReady", "b", "127.0.0.1:8080"));
  auto lines = progress.report(Millis(5000));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("not connected, holds 127.0.0.1:8080; has not said it is ready "
                          "(READY=1, or alive for --ready-after)"),
            std::string::npos)
      << lines[0];
}

TEST(DeployProgress, AServerThatIsUpOrGoneIsNoLongerWaiting) {
  DeployProgress progress;
  progress.saw(event("spawned", "a"));
  progress.saw(event("spawned", "b"));
  progress.saw(event("up", "a"));
  ASSERT_EQ(progress.report(Millis(5000)).size(), 1u);
  progress.saw(event("exited", "b"));
  EXPECT_TRUE(progress.report(Millis(5000)).empty());
  // Events of servers it never saw start (the old version's) change nothing.
  progress.saw(event("connected", "c"));
  EXPECT_TRUE(progress.report(Millis(5000)).empty());
}

TEST(DeployProgress, KnowsWhetherItTookTheServersItReplacesDown) {
  DeployProgress progress;
  progress.saw(event("spawned", "a"));
  progress.saw(event("signalled", "a"));  // its own server: not one it replaces
  EXPECT_FALSE(progress.took_down_others());
  progress.saw(event("takeDown", "b", ":8080"));
  EXPECT_TRUE(progress.took_down_others());
  EXPECT_FALSE(progress.rolled());
  auto worker = event("rollout", "c");
  worker.worker = 1;
  progress.saw(worker);
  EXPECT_TRUE(progress.rolled());
}

// A server in its --confirm window is up and waiting out the window, not "has not sent
// serverUp"; a failure inside it says itself what serves (the CLI adds nothing).
TEST(DeployProgress, AServerInItsConfirmWindowIsSaidToBeSo) {
  DeployProgress progress;
  progress.saw(event("spawned", "a"));
  progress.saw(event("connected", "a"));
  progress.saw(event("resourceReady", "a", ":8080"));
  EXPECT_FALSE(progress.confirming());
  progress.saw(event("confirming", "a"));
  EXPECT_TRUE(progress.confirming());
  auto lines = progress.report(Millis(5000));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "still waiting after 5s: server 42 (gen 3) is up and in its --confirm window: the "
            "servers it replaces are taken down once it has stayed alive that long");
  progress.saw(event("up", "a"));
  EXPECT_TRUE(progress.report(Millis(20000)).empty());
}

}  // namespace
}  // namespace serverswap::cli