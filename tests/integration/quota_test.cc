// What another user can do to a root daemon, with the attacker a real second user (uid
// 65534): through a --user server's per-user socket it opens more connections than its
// quota, and it tries a server's NOTIFY_SOCKET (closed to it; a flood from the daemon's own
// uid is refused and counted). The extra connections are refused, root's
// status and deploys still work, and the log lines the attacker causes are bounded while
// the metrics count every refusal (docs/security.md, "Limits against other users").
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/unique_fd.h"
#include "harness.h"

namespace serverswap::testing {
namespace {

const char* const kSetpriv = "/usr/bin/setpriv";

// The value of `series` ("name{labels}") in a scrape of the daemon's --metrics, or -1.
double metric(DaemonUnderTest& daemon, const std::string& series) {
  std::string address = daemon.status()["daemon"].value("metrics", "");
  return metric_value(http_get(port_of(address)), series);
}

class Quota : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = why_no_second_user(PEER_FLOOD_BIN); !why.empty()) GTEST_SKIP() << why;
  }

  DaemonUnderTest daemon_{
      {"--takedown-timeout", "2s", "--settle", "200ms", "--metrics", "127.0.0.1:0"}};
};

TEST_F(Quota, OtherUserBeyondItsConnectionQuotaIsRefusedAndRootStillWorks) {
  // A server of uid 65534, up and connected; then a second server of that uid (a process of
  // a live server, so let in) that opens 100 connections on their user's socket. (Run as one
  // server, the flood could take the quota before the server's own hello.)
  auto deploy = serverswap(daemon_, {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  auto flood = serverswap(daemon_, {"--user", "nobody", "--ready-after", "100ms", PEER_FLOOD_BIN,
                                    "connections", "100"});
  ASSERT_EQ(flood.code, 0) << flood.output;
  ASSERT_TRUE(daemon_.process().wait_for_output("flood: 100 connections, ", 20s))
      << daemon_.process().output();
  std::string log = daemon_.process().output();
  std::string line = log.substr(log.find("flood: 100 connections, "));
  line = line.substr(0, line.find('\n'));
  int refused = std::stoi(line.substr(line.find(", ") + 2));
  // 64 per uid, one of them the first server's.
  EXPECT_EQ(refused, 100 - 63) << line;
  EXPECT_NE(line.find("too many connections: uid 65534 holds 64 connections, at most 64 per "
                      "user other than the daemon's; try again later"),
            std::string::npos)
      << line;

  // Root's commands get in while uid 65534 holds its whole quota: status, and a swap.
  auto status = serverswap(daemon_, {"status"});
  EXPECT_EQ(status.code, 0) << status.output;
  auto swap = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(swap.code, 0) << swap.output;
  EXPECT_TRUE(http_ok(daemon_.address_of("127.0.0.1:0")));

  // Every refusal counted; a burst of lines, then one line for the rest.
  EXPECT_EQ(metric(daemon_, "serverswap_refused_connections_total{reason=\"quota\"}"), refused);
  EXPECT_TRUE(daemon_.process().wait_for_output(
      "refused control connections from uid 65534: " + std::to_string(refused - 5) +
          " more suppressed",
      5s))
      << daemon_.process().output();
  EXPECT_EQ(count_of(daemon_.process().output(), "refused a control connection from"), 5u);
}

// Descriptors held before a line: one other user gets 64 of the 256, not all of them.
TEST_F(Quota, OtherUserHoldsAtMost64PendingFdsAndRootStillWorks) {
  int fds_before = settled_open_fds(daemon_.process().pid());
  std::string script =
      std::string(PEER_FLOOD_BIN) + " fds 4 & exec " + HELLO_SERVER_BIN + " 127.0.0.1:0";
  auto deploy = serverswap(daemon_, {"--user", "nobody", "/bin/sh", "-c", script});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  ASSERT_TRUE(daemon_.process().wait_for_output("flood: 4 connections sent 64 fds, 3 told: ", 20s))
      << daemon_.process().output();
  EXPECT_TRUE(daemon_.process().wait_for_output(
      "closed 64 file descriptor(s) sent unasked: uid 65534 holds 64 descriptors not yet claimed "
      "by a line, at most that many per user other than the daemon's",
      1s));
  // The nobody server (its sockets, its output pipe), the flood's 4 connections and its 64
  // pending fds.
  EXPECT_LE(open_fds(daemon_.process().pid()), fds_before + 64 + 4 + 9);
  auto status = serverswap(daemon_, {"status"});
  EXPECT_EQ(status.code, 0) << status.output;
  EXPECT_EQ(metric(daemon_, "serverswap_unasked_fds_total"), 3 * 64);
}

// The value of `name` in a process's environment ("" when unset).
std::string environment_of(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.starts_with(name + "=")) return entry.substr(name.size() + 1);
  return "";
}

// A server's NOTIFY_SOCKET, from its environment.
std::string notify_address_of(pid_t pid) {
  return environment_of(pid, "NOTIFY_SOCKET");
}

// Any process of uid 65534 (not a server: just knocking) churns connect()/close() on its
// user's control socket. The daemon stops accepting there for growing pauses, and root's
// commands on the main socket are all answered while the flood goes on.
TEST_F(Quota, ConnectFloodOnTheUserSocketIsThrottledAndRootStatusIsAlwaysAnswered) {
  auto deploy = serverswap(daemon_, {"--user", "nobody", HELLO_SERVER_BIN, "127.0.0.1:0"});
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  auto pids = daemon_.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  std::string user_socket = environment_of(pids[0], "SERVERSWAP_SOCKET");
  ASSERT_NE(user_socket.find("control-uid65534.sock"), std::string::npos) << user_socket;

  Child flood({kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups", PEER_FLOOD_BIN,
               "churn", user_socket, "4"});
  ASSERT_TRUE(flood.wait_for_output("churn: started", 10s)) << flood.output();
  int failed = 0, asked = 0;
  std::string first_failure;
  // Sequential commands for as long as the flood runs (4 s), at least 10 of them.
  for (; asked < 10 || !flood.wait(0ms); ++asked) {
    auto status = serverswap(daemon_, {"status"}, 10s);
    if (status.code != 0 && failed++ == 0) first_failure = status.output;
    if (asked >= 500) break;
  }
  EXPECT_EQ(failed, 0) << "of " << asked << "; first: " << first_failure;
  ASSERT_EQ(flood.wait(30s), 0) << flood.output();
  // The flood did connect, was throttled, and the daemon is whole.
  EXPECT_GT(metric(daemon_, "serverswap_refused_connections_total{reason=\"rate\"}"), 0);
  EXPECT_TRUE(http_ok(daemon_.address_of("127.0.0.1:0")));
  auto swap = daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"});
  EXPECT_EQ(swap.code, 0) << swap.output;
}

TEST_F(Quota, NotifySocketIsClosedToOtherUsersAndAFloodIsCountedAndLoggedBounded) {
  ASSERT_EQ(daemon_.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  auto pids = daemon_.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  // The path is listed in /proc/net/unix for everyone, but its directory is the daemon's
  // alone: another user cannot even send to it.
  std::string address = notify_address_of(pids[0]);
  ASSERT_TRUE(address.starts_with(daemon_.socket() + ".notify/")) << address;
  Child other({kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups", PEER_FLOOD_BIN,
               "notify", address, "1"});
  EXPECT_EQ(other.wait(30s), 2) << other.output();
  EXPECT_NE(other.output().find("Permission denied"), std::string::npos) << other.output();
  // A process of the daemon's own uid that is not the server floods it.
  constexpr int kFlood = 2000;
  Child flood({PEER_FLOOD_BIN, "notify", address, std::to_string(kFlood)});
  ASSERT_EQ(flood.wait(30s), 0) << flood.output();
  EXPECT_TRUE(eventually(
      [&] { return metric(daemon_, "serverswap_notify_rejected_total") == kFlood; }, 10s))
      << metric(daemon_, "serverswap_notify_rejected_total");
  // The first three refusals of a server are logged, then one line says the rest are counted.
  EXPECT_TRUE(daemon_.process().wait_for_output("counted, no longer logged", 5s))
      << daemon_.process().output().substr(0, 4000);
  size_t lines = count_of(daemon_.process().output(), "dropped a notification");
  EXPECT_GE(lines, 1u);
  EXPECT_LE(lines, 3u);
  // The server was not disturbed.
  EXPECT_TRUE(http_ok(daemon_.address_of("127.0.0.1:0")));
  EXPECT_EQ(daemon_.server_pids().size(), 1u);
}

// A --user nobody server that speaks the protocol by hand: it gets its resource and says
// serverUp, then for `seconds` repeats readyFor of what it holds, 20 lines at a time, and
// says hello again each time the daemon closes its connection (over the message rate, or
// refusing the hello). It writes what it saw to RESULT: "started", then one line of counts.
constexpr const char* kReconnectFlood = R"PY(
import json, os, select, socket, sys, time
resource, seconds, result = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def say(text):
    with open(result, "a") as out:
        out.write(text + "\n")
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["SERVERSWAP_SOCKET"])
    hello = {"hello": {"id": os.environ["SERVERSWAP_ID"], "pid": os.getpid(), "protocol": 1,
                       "upMessage": True}}
    s.sendall((json.dumps(hello) + "\n").encode())
    return s
s = connect()
s.sendall((json.dumps({"readyFor": resource}) + "\n").encode())
got = b""
while b"resourceReady" not in got:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("closed before resourceReady: %r" % got)
    got += chunk
s.sendall(b'{"serverUp": true}\n')
say("started")
line = (json.dumps({"readyFor": resource}) + "\n").encode()
sent = reconnects = answered = refused = 0
tail = b""
end = time.time() + seconds
while time.time() < end:
    try:
        s.sendall(line * 20)
        sent += 20
        while select.select([s], [], [], 0)[0]:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("eof")
            data = tail + chunk
            answered += data.count(b"resourceReady")
            refused += data.count(b"too many hellos")
            tail = data[-64:]
    except OSError:
        s.close()
        time.sleep(0.01)
        try:
            s = connect()
            reconnects += 1
        except OSError:
            time.sleep(0.1)
say("sent %d answered %d reconnects %d refused %d" % (sent, answered, reconnects, refused))
time.sleep(3600)
)PY";

// A --user server that asks again and again for what it holds, and reconnects each time the
// daemon closes its connection, used to make the daemon write thousands of lines a second
// ("handed the listening socket", "connected", "closed its control connection"). A readyFor
// of a held resource is answered (the same socket) without a line, and its hellos are
// refused past a burst with a reason it can print: the log grows by a bounded number of
// lines, and root's status is answered throughout.
TEST_F(Quota, ReadyForRepeatsAndReconnectsOfAServerAddAFewLogLinesOnly) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "needs python3";
  TempDir scripts("reconnect-flood", 0755);
  std::string script = scripts.path() + "/flood.py";
  std::ofstream(script) << kReconnectFlood;
  ASSERT_EQ(chmod(script.c_str(), 0644), 0);
  std::string results = scripts.path() + "/out";
  std::filesystem::create_directory(results);
  ASSERT_EQ(chown(results.c_str(), 65534, 65534), 0);
  std::string result = results + "/result";
  auto lines_of = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };

  auto deploy = std::make_unique<Child>(
      std::vector<std::string>{SERVERSWAP_BIN, "--socket", daemon_.socket(), "--user", "nobody",
                               "--", "/usr/bin/python3", script, "127.0.0.1:0", "3", result});
  ASSERT_TRUE(eventually([&] { return !lines_of(result).empty(); }, 20s)) << deploy->output();
  // What the daemon says from here on is the flood's: the line before it is "is up" (the
  // server's serverUp, sent before "started"). Its own output is read on a thread, so it is
  // found by its text rather than by how much had been read when "started" came.
  const std::string up = "is up (sent serverUp)";
  ASSERT_TRUE(daemon_.process().wait_for_output(up, 10s)) << daemon_.process().output();
  int asked = 0, failed = 0;
  std::string first_failure;
  // Root's status, one after the other, while the flood goes on (3 s).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (lines_of(result).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto status = serverswap(daemon_, {"status"}, 10s);
    if (status.code != 0 && failed++ == 0) first_failure = status.output;
    ++asked;
  }
  ASSERT_EQ(lines_of(result).size(), 2u)
      << "after " << asked << " status (" << failed << " failed: " << first_failure << ")\n"
      << daemon_.process().output().substr(0, 4000);
  EXPECT_EQ(failed, 0) << "of " << asked << "; first: " << first_failure;
  EXPECT_GE(asked, 2);  // under ASan on a loaded machine a status takes up to a second
  std::istringstream counts(lines_of(result)[1]);
  std::string word;
  long sent = 0, answered = 0, reconnects = 0;
  counts >> word >> sent >> word >> answered >> word >> reconnects;
  // The flood did happen: repeats sent, the connection closed over the rate and opened again
  // (how many repeats were answered before each close, and whether reconnects came fast
  // enough to be refused, depends on the machine: under ASan 2 answers of 61,360 were read;
  // the refusal itself is SupervisorTest's ReadyForRepeats...PastTheBurst).
  // Reconnects are welcomed 10 at once, then 1 a second: at most 13 in the flood's 3 s, and
  // under ASan on a loaded machine 5 were seen; 3 show the closing and reopening happened.
  EXPECT_GT(sent, 2500) << lines_of(result)[1];
  EXPECT_GT(answered, 0) << lines_of(result)[1];
  EXPECT_GE(reconnects, 3) << lines_of(result)[1];
  // What was said meanwhile: before, ~6,000 lines a second; now a burst, then a few a second.
  std::string log = daemon_.process().output();
  std::string during = log.substr(log.find(up));
  size_t lines = count_of(during, "\n");
  EXPECT_LT(lines, 100u) << during.substr(0, 6000);
  EXPECT_EQ(count_of(during, "handed the listening socket"), 0u) << during.substr(0, 6000);
  EXPECT_LE(count_of(during, "hello refused"), 10u + 5u) << during.substr(0, 6000);
  // The server is up and serves; the daemon is whole.
  auto status = daemon_.status();
  ASSERT_EQ(status["servers"].size(), 1u) << status.dump();
  EXPECT_EQ(status["servers"][0]["state"], "up") << status.dump();
}

}  // namespace
}  // namespace serverswap::testing
