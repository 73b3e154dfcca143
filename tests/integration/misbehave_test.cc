// Servers that misbehave while up: one forks children that stay in its process group, one
// closes its control connection, one exits although nobody took it down. Each is handled
// and logged, and afterwards the daemon has no zombie child and no more open fds.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>

#include "harness.h"

namespace serverswap::testing {
namespace {

// "R", "S", "Z"... from /proc/PID/stat; "" when the process is gone.
std::string state_of(pid_t pid, pid_t* parent = nullptr) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return "";
  std::istringstream rest(stat.substr(paren + 2));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  if (parent) *parent = ppid;
  return state;
}

// Children of `parent` in zombie state (exited, never reaped).
std::vector<pid_t> zombie_children(pid_t parent) {
  std::vector<pid_t> zombies;
  DIR* proc = opendir("/proc");
  while (dirent* entry = proc ? readdir(proc) : nullptr) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    pid_t ppid = 0;
    if (pid > 0 && state_of(pid, &ppid) == "Z" && ppid == parent) zombies.push_back(pid);
  }
  if (proc) closedir(proc);
  return zombies;
}

bool running(pid_t pid) {
  std::string state = state_of(pid);
  return !state.empty() && state != "Z";  // a zombie reparented to init has ended too
}

TEST(Misbehave, ForkedChildrenClosedConnectionAndUntoldExitLeaveNoZombieNoFd) {
  DaemonUnderTest daemon({"--takedown-timeout", "2s", "--settle", "200ms"});
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  const std::vector<std::string> hello = {HELLO_SERVER_BIN, "127.0.0.1:0"};
  ASSERT_EQ(daemon.deploy(hello).code, 0);
  std::string address = daemon.address_of("127.0.0.1:0");
  const int fds_before = settled_open_fds(daemon.process().pid());
  Child& log = daemon.process();

  // 1. A server that forks two children into its group and exits alone on takeDown.
  auto forking = daemon.deploy({FAULT_SERVER_BIN, "fork-children", "127.0.0.1:0"});
  ASSERT_EQ(forking.code, 0) << forking.output;
  ASSERT_TRUE(log.wait_for_output("fork-children: children ", 5s)) << log.output();
  std::istringstream line(log.output().substr(log.output().find("fork-children: children ") + 24));
  pid_t child1 = 0, child2 = 0;
  line >> child1 >> child2;
  ASSERT_TRUE(running(child1) && running(child2));

  // 2. Its replacement comes up, then closes its control connection.
  auto closing = daemon.deploy({FAULT_SERVER_BIN, "close-control", "127.0.0.1:0"});
  ASSERT_EQ(closing.code, 0) << closing.output;
  EXPECT_TRUE(log.wait_for_output(
      "processes it started still run in its process group; sending SIGTERM", 5s))
      << log.output();
  EXPECT_TRUE(eventually([&] { return !running(child1) && !running(child2); }, 5s))
      << "the forked children outlived their server";
  ASSERT_TRUE(
      log.wait_for_output("closed its control connection (a takedown will have to be by "
                          "signal)",
                          5s))
      << log.output();

  // 3. Replacing the disconnected server takes it down by signal.
  auto back = daemon.deploy(hello);
  ASSERT_EQ(back.code, 0) << back.output;
  EXPECT_NE(back.output.find("sent SIGTERM"), std::string::npos) << back.output;
  EXPECT_TRUE(http_ok(address));

  // 4. The server exits by itself (SIGTERM from outside, exit status 0): nobody took it
  // down, nothing else serves, so it is restarted.
  pid_t untold = daemon.server_pids().at(0);
  ASSERT_EQ(kill(untold, SIGTERM), 0);
  ASSERT_TRUE(log.wait_for_output("exited with status 0 while serving (crashed)", 10s))
      << log.output();
  ASSERT_TRUE(eventually(
      [&] {
        auto pids = daemon.server_pids();
        return pids.size() == 1 && pids[0] != untold && http_ok(address);
      },
      10s))
      << log.output();

  EXPECT_TRUE(eventually([&] { return zombie_children(daemon.process().pid()).empty(); }, 5s));
  EXPECT_TRUE(eventually([&] { return daemon.open_fds() <= fds_before; }, 5s))
      << "open fds before " << fds_before << ", after " << daemon.open_fds();
}

}  // namespace
}  // namespace serverswap::testing
