// A server's stdout and stderr are a pipe the daemon reads (docs/security.md, "Server
// output"): never the daemon's own log, every line said as that server's, and nothing lost
// or fatal while no daemon reads (between a SIGKILL of the daemon and its restart).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "harness.h"

namespace serverswap::testing {
namespace {

// What descriptor `fd` of process `pid` is ("pipe:[1234]", a path).
std::string fd_target(pid_t pid, int fd) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd),
                                       ec)
      .string();
}

// Deploys a --listen program that writes `text`, then for each line on the FIFO `*go` (made
// here) writes "line 2", "line 3", ...; its pid, or 0 when the deploy failed. It holds the
// FIFO open for reading and writing, so a writer that comes and goes is never its EOF.
pid_t deploy_talker(DaemonUnderTest& daemon, const std::string& text, std::string* go) {
  *go = daemon.dir() + "/go";
  if (::mkfifo(go->c_str(), 0600) != 0) return 0;
  auto deploy = serverswap(
      daemon, {"--listen", "127.0.0.1:0", "--ready-after", "100ms", "--", "/bin/sh", "-c",
               "printf '" + text + "\\n'; exec 7<>'" + *go +
                   "'; n=2; while read x <&7; do echo line $n; n=$((n + 1)); done"});
  EXPECT_EQ(deploy.code, 0) << deploy.output;
  return deploy.code == 0 ? daemon.server_pids().at(0) : 0;
}

// Waits (bounded) until the FIFO has a reader, and writes one line to it.
bool release(const std::string& fifo) {
  int fd = -1;
  eventually(
      [&] {
        fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        return fd >= 0;
      },
      10s);
  if (fd < 0) return false;
  bool written = ::write(fd, "go\n", 3) == 3;
  ::close(fd);
  return written;
}

TEST(ServerOutput, AServersLinesAreItsOwnEscapedAndItHoldsNoneOfTheDaemonsDescriptors) {
  DaemonUnderTest daemon;
  std::string go;
  // A line that tries to pass for the daemon's own and to clear the terminal.
  pid_t server = deploy_talker(daemon, "\\033[2J2026-01-01T00:00:00.000Z serverswap[1]: x", &go);
  ASSERT_NE(server, 0);
  std::string prefix = "server " + std::to_string(server) + " (gen 1) | ";
  ASSERT_TRUE(daemon.process().wait_for_output(prefix + "\\x1b[2J2026-01-01", 10s))
      << daemon.process().output();
  // Its stdout and stderr are one pipe, not the daemon's stdout or stderr.
  std::string out = fd_target(server, 1);
  EXPECT_TRUE(out.starts_with("pipe:")) << out;
  EXPECT_EQ(fd_target(server, 2), out);
  EXPECT_NE(out, fd_target(daemon.process().pid(), 1));
  EXPECT_NE(out, fd_target(daemon.process().pid(), 2));
  ASSERT_TRUE(release(go));
  EXPECT_TRUE(daemon.process().wait_for_output(prefix + "line 2", 10s))
      << daemon.process().output();
}

TEST(ServerOutput, WhatAServerWritesWhileTheDaemonIsDeadIsReadByTheNextOneAndKillsNothing) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--adopt-timeout", "10s"});
  std::string go;
  pid_t server = deploy_talker(daemon, "first line", &go);
  ASSERT_NE(server, 0);
  ASSERT_TRUE(daemon.process().wait_for_output("| first line", 10s));
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());

  // Written while no daemon reads: without a reader it would die of SIGPIPE.
  ASSERT_TRUE(release(go));
  Child again({SERVERSWAP_BIN, "--socket", daemon.socket(), "--adopt-timeout", "1s", "daemon"});
  std::string prefix = "server " + std::to_string(server) + " (gen 1) | ";
  EXPECT_TRUE(again.wait_for_output(prefix + "line 2", 10s)) << again.output();
  EXPECT_TRUE(process_exists(server));

  // Across an upgrade (the daemon executes itself again) the pipe is read on. An upgrade is
  // refused while servers of the previous daemon may still resume (this one, a program
  // without a client, never says hello): asked again until --adopt-timeout has passed.
  std::string upgraded;
  ASSERT_TRUE(eventually(
      [&] {
        Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
        bool done = upgrade.wait(30s) == 0;
        upgraded = upgrade.output();
        return done;
      },
      20s))
      << upgraded;
  ASSERT_TRUE(release(go));
  EXPECT_TRUE(again.wait_for_output(prefix + "line 3", 10s)) << again.output();
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(again.wait(30s), 0) << again.output();
}

// A process that left its server's process group and session (setsid) keeps the pipe open:
// `stop` still ends the daemon at once (reading output keeps nothing alive).
TEST(ServerOutput, StopEndsTheDaemonWhileAProcessThatLeftItsServerHoldsThePipe) {
  DaemonUnderTest daemon;
  std::string pidfile = daemon.dir() + "/stray.pid";
  auto deploy = serverswap(
      daemon, {"--listen", "127.0.0.1:0", "--ready-after", "100ms", "--", "/bin/sh", "-c",
               "setsid sleep 60 & echo $! > '" + pidfile + "'; echo started; exec sleep 600"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  ASSERT_TRUE(daemon.process().wait_for_output("| started", 10s));
  pid_t stray = 0;
  ASSERT_TRUE(eventually(
      [&] {
        std::ifstream in(pidfile);
        return static_cast<bool>(in >> stray) && stray > 0;
      },
      10s));
  auto stop = serverswap(daemon, {"stop"});
  EXPECT_EQ(stop.code, 0) << stop.output;
  EXPECT_EQ(daemon.process().wait(10s), 0) << daemon.process().output();
  ::kill(stray, SIGKILL);  // started by this test's server
}

// What a server writes costs the log what it weighs once escaped: 3,000 lines of 1,000 bytes
// 0xff (12 MB as "\xff") leave a log of about the burst (1 MiB), and a line that says how
// many were held back.
TEST(ServerOutput, AFloodOfOutputIsBoundedInBytesOfLog) {
  DaemonUnderTest daemon;
  auto deploy = serverswap(
      daemon, {"--listen", "127.0.0.1:0", "--ready-after", "100ms", "--", "/bin/sh", "-c",
               "line=$(printf '\\377%.0s' $(seq 1 1000)); i=0; while [ $i -lt 3000 ]; do "
               "echo \"$line\"; i=$((i + 1)); done; echo flood over; exec sleep 600"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  ASSERT_TRUE(daemon.process().wait_for_output("lines of output from server", 20s));
  size_t size = daemon.process().output().size();
  EXPECT_LT(size, 2u * 1024 * 1024);
  EXPECT_GT(size, 512u * 1024);
}

// Servers of another user share one output budget: processes such a server leaves behind
// (setsid, crash restarts) add no budget of their own. Three --user 65534 workers that each
// write 1,200 lines of 1,000 bytes 0xff (4.8 MB each, escaped) leave a log of about one
// burst (1 MiB), not three, and the summary names the uid.
TEST(ServerOutput, ServersOfAnotherUserShareOneOutputBudget) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  DaemonUnderTest daemon;
  auto deploy = serverswap(
      daemon, {"--user", "65534", "--group", "65534", "--workers", "3", "--listen", "127.0.0.1:0",
               "--ready-after", "100ms", "--", "/bin/sh", "-c",
               "line=$(printf '\\377%.0s' $(seq 1 1000)); i=0; while [ $i -lt 1200 ]; do "
               "echo \"$line\"; i=$((i + 1)); done; exec sleep 600"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  std::vector<pid_t> pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 3u);
  // Each has written everything but what its pipe holds (64 KiB) once it runs sleep.
  EXPECT_TRUE(eventually(
      [&] {
        for (pid_t pid : pids) {
          std::string name;
          std::ifstream("/proc/" + std::to_string(pid) + "/comm") >> name;
          if (name != "sleep") return false;
        }
        return true;
      },
      60s));
  EXPECT_TRUE(daemon.process().wait_for_output("lines of output from uid 65534: ", 20s))
      << daemon.process().output().substr(0, 2000);
  size_t size = daemon.process().output().size();
  EXPECT_LT(size, 2u * 1024 * 1024);
  EXPECT_GT(size, 512u * 1024);
}

// Pipes (FIFOs) among the descriptors of process `pid`: the output pipes it reads, and
// libuv's own.
int pipes_of(pid_t pid) {
  int count = 0;
  std::error_code ec;
  for (const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    struct stat st;
    if (::stat(fd.path().c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) ++count;
  }
  return count;
}

// Every server of uid 65534 leaves a process of its own session holding its output pipe
// (as a crash loop could, one per restart): the daemon reads 16 such pipes of that uid at
// most, closing the oldest with a line that says so, and root's status is answered.
TEST(ServerOutput, PipesLeftByAnotherUsersServersAreCappedAndStatusAnswers) {
  if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  DaemonUnderTest daemon;
  pid_t daemon_pid = daemon.process().pid();
  const int pipes_before = pipes_of(daemon_pid);
  const std::vector<std::string> deploy = {
      "--user", "65534", "--group", "65534", "--workers", "10", "--batch", "10", "--max-surge",
      "10", "--listen", "127.0.0.1:0", "--ready-after", "100ms", "--", "/bin/sh", "-c",
      // The leftover lives 30 s at most, should this test not end it.
      "setsid sleep 30 </dev/null & echo \"leftover $!\"; exec sleep 600"};
  // Four deploys of ten workers: thirty servers replaced, each with a leftover.
  for (int i = 0; i < 4; ++i) {
    auto run = serverswap(daemon, deploy);
    ASSERT_EQ(run.code, 0) << run.output;
  }
  Child& log = daemon.process();
  EXPECT_TRUE(log.wait_for_output("output pipes of uid 65534 that the daemon reads", 10s))
      << log.output().substr(0, 4000);
  // Ten servers' pipes and sixteen leftovers' (thirty without the cap).
  EXPECT_TRUE(eventually([&] { return pipes_of(daemon_pid) == pipes_before + 10 + 16; }, 10s))
      << pipes_of(daemon_pid) - pipes_before << " pipes beyond the " << pipes_before
      << " the daemon had before";
  auto started = std::chrono::steady_clock::now();
  auto status = serverswap(daemon, {"status"}, 5s);
  EXPECT_EQ(status.code, 0) << status.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);

  // The leftovers, by the pids they said.
  std::string out = log.output();
  for (size_t at = out.find("| leftover "); at != std::string::npos;
       at = out.find("| leftover ", at + 1)) {
    pid_t pid = std::atoi(out.c_str() + at + 11);
    std::string name;
    std::ifstream("/proc/" + std::to_string(pid) + "/comm") >> name;
    if (pid > 0 && name == "sleep") ::kill(pid, SIGKILL);
  }
}

}  // namespace
}  // namespace serverswap::testing