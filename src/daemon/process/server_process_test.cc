#include "daemon/process/server_process.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace serverswap::daemon {
namespace {

SpawnSpec command(std::vector<std::string> argv) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  return spec;
}

TEST(ParseSignal, NamesAndNumbers) {
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("QUIT"), SIGQUIT);
  EXPECT_EQ(*parse_signal("SIGWINCH"), SIGWINCH);
  EXPECT_EQ(*parse_signal("9"), 9);
  EXPECT_FALSE(parse_signal("SIGNOPE").ok());
  EXPECT_FALSE(parse_signal("0").ok());
  EXPECT_FALSE(parse_signal("").ok());
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
}

TEST(ServerProcess, SpawnsInItsOwnGroupAndReportsExit) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int64_t status = -1;
  int term = -1;
  {
    auto p = ServerProcess::spawn(&loop, command({"/bin/sh", "-c", "exit 3"}),
                                  [&](int64_t s, int t) { status = s, term = t; });
    ASSERT_TRUE(p.ok()) << p.status().message();
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_TRUE((*p)->exited());
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(status, 3);
  EXPECT_EQ(term, 0);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(ServerProcess, SignalReachesTheWholeGroup) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int term = -1;
  {
    // The shell waits on a child; SIGTERM to the group ends both.
    auto p = ServerProcess::spawn(&loop, command({"/bin/sh", "-c", "sleep 60 & wait"}),
                                  [&](int64_t, int t) { term = t; });
    ASSERT_TRUE(p.ok());
    (*p)->signal_group(SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(term, SIGTERM);
  uv_loop_close(&loop);
}

TEST(ServerProcess, MissingProgramIsAnErrorNamingIt) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto p = ServerProcess::spawn(&loop, command({"/nonexistent/server"}), [](int64_t, int) {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "start /nonexistent/server: no such file or directory");
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

}  // namespace
}  // namespace serverswap::daemon
