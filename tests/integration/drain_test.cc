// Draining: a deploy while older servers still finish long requests is allowed. Several
// generations drain at once, each exits when its own requests are done, and each has its
// own --takedown-timeout, counted from its own takedown.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

namespace serverswap::testing {
namespace {

// A client of fault_server's "hold" mode: one connection is one long request, answered
// "held by PID" when accepted and "done by PID" once we send a line.
class LongRequest {
 public:
  explicit LongRequest(const std::string& address) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    size_t colon = address.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
    timeval tv{10, 0};  // bounds every read below
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      holder_ = pid_in(read_line(), "held by ");
  }
  pid_t holder() const { return holder_; }
  // Ends the request; the pid that answered "done", or 0 when it was cut off.
  pid_t finish() {
    if (::send(fd_.get(), "end\n", 4, MSG_NOSIGNAL) != 4) return 0;
    return pid_in(read_line(), "done by ");
  }
  // True when the server closed the connection without answering (it was killed).
  bool cut_off() { return read_line().empty(); }

 private:
  std::string read_line() {
    std::string line;
    char c;
    while (line.size() < 100 && ::read(fd_.get(), &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  static pid_t pid_in(const std::string& line, const std::string& prefix) {
    return line.starts_with(prefix) ? std::stoi(line.substr(prefix.size())) : 0;
  }

  UniqueFd fd_;
  pid_t holder_ = 0;
};

TEST(Drain, ThreeGenerationsDrainAtOnceEachWithItsOwnGrace) {
  DaemonUnderTest daemon({"--takedown-timeout", "4s"});
  const std::vector<std::string> hold = {FAULT_SERVER_BIN, "hold", "127.0.0.1:0"};
  auto first = daemon.deploy(hold);
  ASSERT_EQ(first.code, 0) << first.output;
  std::string address = daemon.address_of("127.0.0.1:0");

  // Generation g holds request g; deploy g+1 takes it down while that request runs.
  // The deploy commands stay until the server they replace has exited.
  std::vector<std::unique_ptr<LongRequest>> requests;
  std::vector<std::unique_ptr<Child>> deploys;
  std::vector<pid_t> holders;
  for (int g = 0; g < 3; ++g) {
    requests.push_back(std::make_unique<LongRequest>(address));
    pid_t holder = requests.back()->holder();
    ASSERT_NE(holder, 0);
    if (!holders.empty()) {
      ASSERT_NE(holder, holders.back()) << "a draining server accepted";
    }
    holders.push_back(holder);
    deploys.push_back(daemon.start_deploy(hold));
    // Once it has said tookDown it accepts no more: the next request goes to the new one.
    ASSERT_TRUE(deploys.back()->wait_for_output("stopped accepting", 10s))
        << deploys.back()->output();
  }
  // A fourth request on the newest server, which never drains.
  LongRequest newest(address);
  ASSERT_NE(newest.holder(), 0);

  // Three generations draining at once.
  int draining = 0;
  nlohmann::json status = daemon.status();
  for (const auto& s : status["servers"]) draining += s["state"] == "draining";
  EXPECT_EQ(draining, 3) << daemon.status().dump();

  // Deploys 0 and 1 were superseded: their servers were replaced before the servers they
  // replaced had exited, so neither may say it succeeded (docs/architecture.md, I4).
  for (int g : {0, 1}) {
    EXPECT_EQ(deploys[g]->wait(10s), 1) << deploys[g]->output();
    EXPECT_NE(deploys[g]->output().find("superseded by generation "), std::string::npos)
        << deploys[g]->output();
  }
  // The youngest draining server finishes first, then the oldest: each exits when its own
  // request ends, and the newest deploy exits 0 once the server it replaced has.
  EXPECT_EQ(requests[2]->finish(), holders[2]);
  EXPECT_EQ(deploys[2]->wait(10s), 0) << deploys[2]->output();
  EXPECT_TRUE(process_exists(holders[0]) && process_exists(holders[1]));
  EXPECT_EQ(requests[0]->finish(), holders[0]);
  ASSERT_TRUE(eventually([&] { return !process_exists(holders[0]); }, 10s));

  // The middle one's request never ends: it is killed after its own grace, not anyone else's.
  ASSERT_TRUE(eventually([&] { return !process_exists(holders[1]); }, 10s));
  EXPECT_TRUE(requests[1]->cut_off());
  // The daemon's log is read on a thread: wait for the line rather than read a snapshot.
  EXPECT_TRUE(daemon.process().wait_for_output("still running after --takedown-timeout 4s", 10s))
      << daemon.process().output();
  std::string log = daemon.process().output();
  std::string killed = "server " + std::to_string(holders[1]) + " (gen ";
  size_t at = log.find(killed);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.find("still running after --takedown-timeout 4s"), std::string::npos) << log;
  size_t kill_line = log.find("still running after");
  EXPECT_EQ(log.find("still running after", kill_line + 1), std::string::npos)
      << "only the middle one is killed:\n"
      << log;
  EXPECT_NE(log.rfind(killed, kill_line), std::string::npos) << log;

  EXPECT_EQ(newest.finish(), newest.holder());  // the new server served throughout
  EXPECT_EQ(daemon.server_pids().size(), 1u);
}

}  // namespace
}  // namespace serverswap::testing
