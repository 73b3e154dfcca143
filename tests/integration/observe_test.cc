// Observability against the real daemon: the Prometheus endpoint scraped over a real socket,
// the JSON log format with a deploy id on every line about a deploy, `status --json`
// against the process table, and `status --watch`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/unique_fd.h"
#include "harness.h"

namespace serverswap::testing {
namespace {

// Parses the exposition text into series -> value ("name{labels}" as written).
std::map<std::string, double> parse_exposition(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

uint16_t metrics_port(DaemonUnderTest& daemon) {
  std::string address = daemon.status()["daemon"].value("metrics", "");
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

TEST(ObserveTest, MetricsEndpointCountsDeploysSwapsAndFailures) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--metrics", "127.0.0.1:0"});
  const std::vector<std::string> server = {HELLO_SERVER_BIN, "127.0.0.1:0"};
  ASSERT_EQ(daemon.deploy(server).code, 0);
  ASSERT_EQ(daemon.deploy(server).code, 0);
  auto failed = daemon.deploy({FAULT_SERVER_BIN, "crash-before-ready", "127.0.0.1:0"});
  ASSERT_EQ(failed.code, 1) << failed.output;

  std::string response = http_get(metrics_port(daemon));
  ASSERT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  auto samples = parse_exposition(response.substr(response.find("\r\n\r\n") + 4));
  EXPECT_EQ(samples["serverswap_deploys_total{outcome=\"deployed\"}"], 2);
  EXPECT_EQ(samples["serverswap_deploys_total{outcome=\"failed\"}"], 1);
  EXPECT_EQ(samples["serverswap_swaps_total"], 1);
  EXPECT_EQ(samples["serverswap_deploy_duration_seconds_count"], 2);
  EXPECT_EQ(samples["serverswap_deploy_duration_seconds_bucket{le=\"+Inf\"}"], 2);
  EXPECT_GT(samples["serverswap_deploy_duration_seconds_sum"], 0);
  EXPECT_EQ(samples["serverswap_servers{state=\"up\"}"], 1);
  EXPECT_EQ(samples["serverswap_servers{state=\"draining\"}"], 0);

  EXPECT_NE(http_get(metrics_port(daemon), "/other").find(" 404 "), std::string::npos);

  // The endpoint must not keep a stopped daemon alive.
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  ASSERT_EQ(stop.wait(10s), 0) << stop.output();
  EXPECT_EQ(daemon.process().wait(10s), 0) << daemon.process().output();
}

// Idle connections (a port scan, clients that connect and wait) must not keep scrapes out:
// past the cap a new connection closes the oldest one that has sent no request.
TEST(ObserveTest, IdleConnectionsDoNotStarveScrapes) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--metrics", "127.0.0.1:0"});
  uint16_t port = metrics_port(daemon);
  std::vector<UniqueFd> idle;
  auto open_idle = [&](int count) {
    for (int i = 0; i < count; ++i) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
      idle.push_back(std::move(fd));
    }
  };
  // Idle connections the daemon has closed (evicted): readable, at end of file.
  auto evicted = [&] {
    size_t closed = 0;
    for (const UniqueFd& fd : idle) {
      pollfd p{fd.get(), POLLIN, 0};
      char byte;
      if (::poll(&p, 1, 0) == 1 && ::recv(fd.get(), &byte, 1, MSG_PEEK) == 0) ++closed;
    }
    return closed;
  };
  for (int count : {16, 100}) {
    open_idle(count);
    // Until the daemon has accepted them all (a full accept queue would delay the scrape's
    // connect by a SYN retransmission, which is the kernel's doing, not the endpoint's).
    size_t beyond_cap = idle.size() > 16 ? idle.size() - 16 : 0;
    ASSERT_TRUE(eventually([&] { return evicted() >= beyond_cap; }, 10s)) << evicted();
    auto started = std::chrono::steady_clock::now();
    std::string response = http_get(port);
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n"))
        << idle.size() << " idle: '" << response.substr(0, 100) << "'";
    EXPECT_LT(took, 2s) << idle.size() << " idle connections";
  }
}
TEST(ObserveTest, MetricsAddressInUseIsAClearStartError) {
  DaemonUnderTest first({"--metrics", "127.0.0.1:0"});
  std::string taken = first.status()["daemon"].value("metrics", "");
  char dir[] = "/tmp/serverswap-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  Child second(
      {SERVERSWAP_BIN, "--socket", std::string(dir) + "/c.sock", "--metrics", taken, "daemon"});
  EXPECT_EQ(second.wait(10s), 4);
  EXPECT_NE(second.output().find("Address already in use"), std::string::npos) << second.output();
  std::filesystem::remove_all(dir);
}

TEST(ObserveTest, JsonLogsCarryTheDeployNumberOnEveryLineAboutIt) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--log-format", "json"});
  const std::vector<std::string> server = {HELLO_SERVER_BIN, "127.0.0.1:0"};
  ASSERT_EQ(daemon.deploy(server).code, 0);
  pid_t old_pid = daemon.server_pids().at(0);
  ASSERT_EQ(daemon.deploy(server).code, 0);
  ASSERT_TRUE(daemon.process().wait_for_output("\"kind\":\"exited\"", 10s));

  std::vector<nlohmann::json> lines;
  std::istringstream output(daemon.process().output());
  for (std::string line; std::getline(output, line);) {
    if (!line.starts_with("{")) continue;  // a server's own output
    auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    ASSERT_TRUE(parsed.contains("time") && parsed.contains("msg")) << line;
    lines.push_back(parsed);
  }
  // The old server's takedown and exit belong to the second deploy, named by its number
  // (the generation of the server it started; never an id, which is a credential).
  uint64_t second_deploy = 0;
  bool old_exit_seen = false;
  for (const auto& l : lines) {
    if (l.value("kind", "") == "spawned" && l.value("generation", 0) == 2)
      second_deploy = l.value("deploy", uint64_t{0});
    if (l.value("kind", "") == "exited" && l.value("serverPid", 0) == old_pid) {
      old_exit_seen = true;
      EXPECT_EQ(l.value("deploy", uint64_t{0}), second_deploy) << l.dump();
      EXPECT_FALSE(l.contains("crashed")) << "taken down, not crashed: " << l.dump();
    }
  }
  EXPECT_EQ(second_deploy, 2u);
  EXPECT_TRUE(old_exit_seen);
}

// A crash is told by the event's fields (kind "exited", "crashed": true), never only by its
// wording, so that log readers and metrics need not parse prose (docs/protocol.md, "event").
TEST(ObserveTest, JsonLogsMarkACrashByAField) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--log-format", "json"});
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  pid_t victim = daemon.server_pids().at(0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ASSERT_TRUE(daemon.process().wait_for_output("\"crashed\":true", 10s))
      << daemon.process().output();

  bool crash_seen = false;
  std::istringstream output(daemon.process().output());
  for (std::string line; std::getline(output, line);) {
    if (!line.starts_with("{")) continue;  // a server's own output
    auto l = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(l.is_discarded()) << line;
    if (!l.contains("crashed")) continue;
    crash_seen = true;
    EXPECT_EQ(l.value("kind", ""), "exited") << line;
    EXPECT_EQ(l.value("serverPid", 0), victim) << line;
    EXPECT_EQ(l["crashed"], true) << line;
  }
  EXPECT_TRUE(crash_seen);
}

std::string cmdline_of(pid_t pid) {
  std::string all = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : all)
    if (c == '\0') c = ' ';
  while (!all.empty() && all.back() == ' ') all.pop_back();
  return all;
}

TEST(ObserveTest, StatusJsonMatchesTheProcessTable) {
  DaemonUnderTest daemon;
  // Two apps side by side (one program: else the second would be a new version of the first).
  daemon.deploy_options = {"--name", "a"};
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  daemon.deploy_options = {"--name", "b"};
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "unix:" + daemon.dir() + "/b.sock"}).code, 0);
  auto status = daemon.status();
  ASSERT_EQ(status["servers"].size(), 2u) << status.dump();
  for (const auto& s : status["servers"]) {
    pid_t pid = s["pid"].get<pid_t>();
    EXPECT_TRUE(process_exists(pid)) << pid;
    std::string argv;
    for (const auto& a : s["argv"]) argv += (argv.empty() ? "" : " ") + a.get<std::string>();
    EXPECT_EQ(cmdline_of(pid), argv);
    EXPECT_EQ(s["state"], "up");
    EXPECT_EQ(getsid(pid), pid) << "each server leads a session of its own";
  }
}

TEST(ObserveTest, StatusWatchRefreshesUntilItsCount) {
  DaemonUnderTest daemon;
  ASSERT_EQ(daemon.deploy({HELLO_SERVER_BIN, "127.0.0.1:0"}).code, 0);
  Child watch({SERVERSWAP_BIN, "--socket", daemon.socket(), "status", "--watch", "--interval",
               "50ms", "--count", "3"});
  ASSERT_EQ(watch.wait(10s), 0) << watch.output();
  std::string out = watch.output();
  size_t tables = 0;
  for (size_t at = 0; (at = out.find("daemon pid", at)) != std::string::npos; ++at) ++tables;
  EXPECT_EQ(tables, 3u) << out;
}

}  // namespace
}  // namespace serverswap::testing
