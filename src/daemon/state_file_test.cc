#include "daemon/state_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

namespace serverswap::daemon {
namespace {

DaemonState sample() {
  DaemonState state;
  ServerRecord server;
  server.id = "3.00000000deadbeef";
  server.pid = 1234;
  server.start_time = 987654;
  server.generation = 3;
  server.state = "up";
  server.request.argv = {"./server", "--port", "8080"};
  server.request.cwd = "/srv/app";
  server.request.env = {"A=1", "B=x=y"};
  server.request.listen = {{"web", ":8080"}};
  server.request.ready_after = Millis(500);
  server.request.takedown_signal = SIGQUIT;
  server.request.user = "app";
  server.request.workers = 4;
  server.request.batch = 2;
  server.request.max_surge = 3;
  server.request.worker = 1;
  server.held = {{":8080", ":8080", "[::]:8080"}};
  server.restarts = 2;
  server.notify = "serverswap-notify-00112233445566778899aabbccddeeff";
  server.notify_fd = 9;
  state.servers.push_back(server);
  state.sockets = {{":8080", "[::]:8080", 7}};
  state.control_fd = 5;
  return state;
}

TEST(StateFile, RoundTripsEveryField) {
  auto back = state_from_json(state_to_json(sample()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  const ServerRecord& s = back->servers.at(0);
  EXPECT_EQ(s.id, "3.00000000deadbeef");
  EXPECT_EQ(s.pid, 1234);
  EXPECT_EQ(s.start_time, 987654u);
  EXPECT_EQ(s.generation, 3u);
  EXPECT_EQ(s.state, "up");
  EXPECT_EQ(s.request.argv, (std::vector<std::string>{"./server", "--port", "8080"}));
  EXPECT_EQ(s.request.cwd, "/srv/app");
  EXPECT_EQ(s.request.env, (std::vector<std::string>{"A=1", "B=x=y"}));
  EXPECT_EQ(s.request.listen, (std::vector<ListenAddress>{{"web", ":8080"}}));
  EXPECT_EQ(s.request.ready_after, Millis(500));
  EXPECT_EQ(s.request.takedown_signal, SIGQUIT);
  EXPECT_EQ(s.request.user, "app");
  EXPECT_EQ(s.request.workers, 4);
  EXPECT_EQ(s.request.batch, 2);
  EXPECT_EQ(s.request.max_surge, 3);
  EXPECT_EQ(s.request.worker, 1);
  EXPECT_EQ(s.held, (std::vector<HeldRecord>{{":8080", ":8080", "[::]:8080"}}));
  EXPECT_EQ(s.restarts, 2);
  EXPECT_EQ(s.notify, "serverswap-notify-00112233445566778899aabbccddeeff");
  EXPECT_EQ(s.notify_fd, 9);
  EXPECT_EQ(back->sockets, (std::vector<SocketRecord>{{":8080", "[::]:8080", 7}}));
  EXPECT_EQ(back->control_fd, 5);
}

TEST(StateFile, WritesAtomicallyReadsBackAndRemoves) {
  std::string dir = ::testing::TempDir() + "state-file-test-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  StateFile file(state_path_for(dir + "/control.sock"));
  EXPECT_EQ(file.path(), dir + "/state.json");
  auto none = file.read();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(file.write(sample()).ok());
  EXPECT_FALSE(std::filesystem::exists(file.path() + ".tmp"));
  EXPECT_EQ(std::filesystem::status(file.path()).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto back = file.read();
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->servers.at(0).id, "3.00000000deadbeef");
  file.remove();
  EXPECT_FALSE(std::filesystem::exists(file.path()));
  std::filesystem::remove_all(dir);
}

TEST(StateFile, StartTimeOfThisProcessIsStableAndAGoneProcessHasNone) {
  auto first = process_start_time(getpid());
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_GT(*first, 0u);
  EXPECT_EQ(*process_start_time(getpid()), *first);
  EXPECT_FALSE(process_start_time(0x3fffffff).ok());
}

}  // namespace
}  // namespace serverswap::daemon
