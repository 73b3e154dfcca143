// Readiness without a client library: sd_notify on the server's own NOTIFY_SOCKET (a real
// server process speaking through libsystemd: READY=1, STATUS=, MAINPID=, STOPPING=1),
// --ready-after for programs that can say nothing, and the message a program gets when it
// has neither. About 4 s.
#include <gtest/gtest.h>
#include <unistd.h>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

TEST(Notify, ReadyStatusMainPidAndStoppingFromARealServer) {
  DaemonUnderTest daemon;
  std::string report = daemon.dir() + "/report";
  // With a --listen socket, so that the second deploy replaces the first.
  // --confirm 100ms (remembered): READY=1's default window would add 5 s to the swap.
  auto first = deploy_with(daemon, {"--listen", "127.0.0.1:0", "--confirm", "100ms"},
                           {LISTEN_PROBE_BIN, report});
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_TRUE(contains(first.output, "is up (sent READY=1 on NOTIFY_SOCKET)")) << first.output;
  pid_t pid = daemon.server_pids().at(0);
  Child& log = daemon.process();
  EXPECT_TRUE(log.wait_for_output("STATUS=probe serving 1 sockets", 5s)) << log.output();
  EXPECT_TRUE(log.wait_for_output("MAINPID=" + std::to_string(pid), 5s)) << log.output();

  auto second = deploy_with(daemon, {}, {LISTEN_PROBE_BIN, report});
  ASSERT_EQ(second.code, 0) << second.output;
  // Sent just before it exited: read before its notify socket is closed.
  EXPECT_TRUE(log.wait_for_output("(gen 1): said STOPPING=1", 5s)) << log.output();
  EXPECT_EQ(read_file(report + "." + std::to_string(pid) + ".signal"), "SIGTERM\n");
}

// A server's main process may send STATUS= as often as it likes, with any bytes: the log
// gets a burst of lines, then one line counting the rest, each escaped.
TEST(Notify, StatusFloodIsLoggedBoundedCountedAndEscaped) {
  DaemonUnderTest daemon;
  auto deploy =
      deploy_with(daemon, {"--listen", "127.0.0.1:0"}, {PEER_FLOOD_BIN, "status", "5000"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  pid_t pid = daemon.server_pids().at(0);
  Child& log = daemon.process();
  std::string summary = "log lines from server " + std::to_string(pid) + " (gen 1): ";
  ASSERT_TRUE(log.wait_for_output(summary, 5s)) << log.output().substr(0, 4000);
  ASSERT_TRUE(log.wait_for_output(" more suppressed", 5s));
  // The burst of 10, and one a second while the flood went on.
  size_t lines = count_of(log.output(), "STATUS=flood ");
  EXPECT_GE(lines, 10u);
  EXPECT_LE(lines, 14u) << log.output().substr(0, 4000);
  // A line separator, NEL (well-formed and not) and 0xff, escaped.
  EXPECT_TRUE(contains(log.output(), "STATUS=flood 0 \\u{2028}forged \\u{0085} \\x85\\xff\n"))
      << log.output().substr(0, 2000);
  EXPECT_EQ(daemon.server_pids(), std::vector<pid_t>{pid});
}

TEST(Notify, SilentServerWithListenIsUpAfterReadyAfter) {
  DaemonUnderTest daemon;
  auto outcome = deploy_with(daemon, {"--listen", "127.0.0.1:0", "--ready-after", "200ms"},
                             {LISTEN_PROBE_BIN, daemon.dir() + "/report", "silent"});
  ASSERT_EQ(outcome.code, 0) << outcome.output;
  EXPECT_TRUE(contains(outcome.output, "is up (alive for --ready-after 200ms")) << outcome.output;
}

TEST(Notify, PlainProgramThatCannotSayAnythingIsToldWhatItNeeds) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "1500ms"});
  // Binds a port of its own, knows nothing of serverswap or systemd.
  auto outcome = deploy_with(daemon, {},
                             {"/usr/bin/python3", "-m", "http.server", "0", "--bind", "127.0.0.1"});
  EXPECT_EQ(outcome.code, 1) << outcome.output;
  EXPECT_TRUE(contains(outcome.output, "never said it was ready")) << outcome.output;
  EXPECT_TRUE(contains(outcome.output, "--listen ADDR")) << outcome.output;
  EXPECT_TRUE(contains(outcome.output, "--ready-after S")) << outcome.output;
}

}  // namespace
}  // namespace serverswap::testing
