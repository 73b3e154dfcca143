// The load generator against real loopback servers, one misbehaviour per test.
#include "verify/load.h"

#include <gtest/gtest.h>

#include "verify/report.h"
#include "verify/test_http_server.h"

namespace serverswap::verify {
namespace {

using std::chrono::milliseconds;
using testing::ClosedPort;
using testing::TestHttpServer;
using Behaviour = TestHttpServer::Behaviour;

std::unique_ptr<TestHttpServer> start_server(TestHttpServer::Options options = {}) {
  std::string error;
  auto server = TestHttpServer::start(options, &error);
  EXPECT_TRUE(server) << error;
  return server;
}

LoadOptions options_for(uint16_t port, Mode mode, int connections = 4,
                        milliseconds duration = milliseconds(300)) {
  LoadOptions options;
  options.port = port;
  options.mode = mode;
  options.connections = connections;
  options.duration = duration;
  return options;
}

void expect_only_ok(const LoadReport& report) {
  EXPECT_TRUE(report.setup_error.empty()) << report.setup_error;
  EXPECT_GT(report.counts.ok, 0u) << to_text(report);
  EXPECT_EQ(report.counts.failed(), 0u) << to_text(report);
  EXPECT_TRUE(report.clean());
}

TEST(LoadTest, KeepAliveReusesConnections) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const LoadReport report = run_load(options_for(server->port(), Mode::kKeepAlive));
  expect_only_ok(report);
  EXPECT_EQ(server->accepted(), 4u);  // one connection per client, never reopened
  EXPECT_GE(server->requests(), report.counts.ok);
  EXPECT_LE(server->requests(), report.counts.ok + report.unfinished);
  EXPECT_EQ(report.target, "127.0.0.1:" + std::to_string(server->port()));
}

TEST(LoadTest, CloseModeOpensAConnectionPerRequest) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const LoadReport report = run_load(options_for(server->port(), Mode::kClose));
  expect_only_ok(report);
  EXPECT_GE(server->accepted(), report.counts.ok);
  EXPECT_LE(server->accepted(), report.counts.ok + report.unfinished);
}

TEST(LoadTest, ConnectionCloseHeaderMeansReconnectNotFailure) {
  auto server = start_server({.connection_close_every = 3});
  ASSERT_TRUE(server);
  const LoadReport report = run_load(options_for(server->port(), Mode::kKeepAlive));
  expect_only_ok(report);
  EXPECT_GE(server->accepted(), report.counts.ok / 3);
}

TEST(LoadTest, IdleCloseBetweenRequestsIsNotAFailure) {
  // The server closes after each answer without saying so; at 40 req/s on one connection the
  // close arrives long before the next request, and must only cause a reconnect.
  auto server = start_server({.behaviour = Behaviour::kCloseAfterResponse});
  ASSERT_TRUE(server);
  LoadOptions options = options_for(server->port(), Mode::kKeepAlive, 1);
  options.rate = 40;
  const LoadReport report = run_load(options);
  expect_only_ok(report);
  EXPECT_EQ(server->accepted(), server->requests());
}

TEST(LoadTest, ChunkedResponsesCount) {
  auto server = start_server({.chunked = true});
  ASSERT_TRUE(server);
  expect_only_ok(run_load(options_for(server->port(), Mode::kKeepAlive)));
}

TEST(LoadTest, RateIsKept) {
  auto server = start_server();
  ASSERT_TRUE(server);
  LoadOptions options = options_for(server->port(), Mode::kKeepAlive, 4, milliseconds(500));
  options.rate = 200;
  const LoadReport report = run_load(options);
  expect_only_ok(report);
  EXPECT_GE(report.counts.total() + report.unfinished, 80u) << to_text(report);
  EXPECT_LE(report.counts.total() + report.unfinished, 101u) << to_text(report);
}

TEST(LoadTest, Ipv6Loopback) {
  std::string error;
  auto server = TestHttpServer::start({.host = "::1"}, &error);
  if (!server) GTEST_SKIP() << "no IPv6 loopback: " << error;
  LoadOptions options = options_for(server->port(), Mode::kKeepAlive);
  options.host = "::1";
  const LoadReport report = run_load(options);
  expect_only_ok(report);
  EXPECT_EQ(report.target, "[::1]:" + std::to_string(server->port()));
}

TEST(LoadTest, ClosedPortIsRefused) {
  ClosedPort closed;
  ASSERT_NE(closed.port(), 0);
  for (Mode mode : {Mode::kKeepAlive, Mode::kClose}) {
    const LoadReport report = run_load(options_for(closed.port(), mode, 2, milliseconds(100)));
    EXPECT_GT(report.counts.refused, 0u) << to_text(report);
    EXPECT_EQ(report.counts.refused, report.counts.total()) << to_text(report);
    ASSERT_EQ(report.errors.size(), 1u) << to_text(report);
    EXPECT_NE(report.errors.begin()->first.find("connection refused"), std::string::npos);
    EXPECT_FALSE(report.clean());
  }
}

TEST(LoadTest, SamplesMatchTheCounts) {
  auto server = start_server();
  ASSERT_TRUE(server);
  LoadOptions options = options_for(server->port(), Mode::kKeepAlive);
  std::vector<RequestSample> samples;
  options.on_sample = [&](const RequestSample& sample) { samples.push_back(sample); };
  const LoadReport report = run_load(options);
  expect_only_ok(report);
  ASSERT_EQ(samples.size(), report.counts.total());
  EXPECT_GT(report.started_monotonic_ns, 0u);
  for (const RequestSample& sample : samples) {
    EXPECT_STREQ(sample.outcome, "ok");
    EXPECT_LE(sample.completed, report.elapsed);
    EXPECT_LE(sample.latency_us, report.latency_us.max());
  }
}

TEST(LoadTest, SamplesNameTheFailureKind) {
  ClosedPort closed;
  LoadOptions options = options_for(closed.port(), Mode::kClose, 1, milliseconds(50));
  std::vector<std::string> outcomes;
  options.on_sample = [&](const RequestSample& sample) { outcomes.emplace_back(sample.outcome); };
  const LoadReport report = run_load(options);
  ASSERT_GT(report.counts.refused, 0u) << to_text(report);
  EXPECT_EQ(outcomes.size(), report.counts.total());
  EXPECT_EQ(outcomes.front(), "refused");
}

TEST(LoadTest, CloseWithoutResponseIsReset) {
  auto server = start_server({.behaviour = Behaviour::kCloseWithoutResponse});
  ASSERT_TRUE(server);
  for (Mode mode : {Mode::kKeepAlive, Mode::kClose}) {
    const LoadReport report = run_load(options_for(server->port(), mode, 2, milliseconds(150)));
    EXPECT_GT(report.counts.reset, 0u) << to_text(report);
    EXPECT_EQ(report.counts.reset, report.counts.total()) << to_text(report);
  }
}

TEST(LoadTest, SilentServerTimesOut) {
  auto server = start_server({.behaviour = Behaviour::kNeverRespond});
  ASSERT_TRUE(server);
  LoadOptions options = options_for(server->port(), Mode::kKeepAlive, 2, milliseconds(450));
  options.request_timeout = milliseconds(100);
  const LoadReport report = run_load(options);
  // Each client times out about every 100 ms; the tick that notices runs every 10 ms.
  EXPECT_GE(report.counts.timeout, 4u) << to_text(report);
  EXPECT_LE(report.counts.timeout, 10u) << to_text(report);
  EXPECT_EQ(report.counts.timeout, report.counts.total()) << to_text(report);
  EXPECT_EQ(report.unfinished, 2u);
  EXPECT_GE(server->accepted(), 4u);  // a timed-out connection is not reused
}

TEST(LoadTest, Non200IsOtherStatus) {
  auto server = start_server({.behaviour = Behaviour::kStatus503});
  ASSERT_TRUE(server);
  const LoadReport report = run_load(options_for(server->port(), Mode::kKeepAlive));
  EXPECT_GT(report.counts.other_status, 0u);
  EXPECT_EQ(report.counts.other_status, report.counts.total());
  EXPECT_EQ(server->accepted(), 4u);  // a 503 with keep-alive keeps the connection
  EXPECT_EQ(
      report.errors.count("127.0.0.1:" + std::to_string(server->port()) + ": HTTP status 503"), 1u);
}

TEST(LoadTest, StatisticsOfARealRun) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const LoadReport report = run_load(options_for(server->port(), Mode::kKeepAlive));
  expect_only_ok(report);
  const LatencyHistogram& latency = report.latency_us;
  EXPECT_EQ(latency.count(), report.counts.ok);
  EXPECT_GT(latency.percentile(0.5), 0u);
  EXPECT_LE(latency.percentile(0.5), latency.percentile(0.99));
  EXPECT_LE(latency.percentile(0.99), latency.percentile(0.999));
  EXPECT_LE(latency.percentile(0.999), latency.max());
  EXPECT_GE(report.elapsed, milliseconds(300));
  EXPECT_EQ(report.timeline.size(),
            static_cast<size_t>((report.elapsed + Timeline::kBucket - std::chrono::nanoseconds(1)) /
                                Timeline::kBucket));
  EXPECT_LT(report.longest_outage_ms(), 150u) << to_text(report);
  EXPECT_GT(report.achieved_rate(), 0.0);
  const nlohmann::json json = to_json(report);
  EXPECT_EQ(json["ok"], report.counts.ok);
  EXPECT_EQ(json["failures"]["reset"], 0);
  EXPECT_EQ(json["timeline"]["ok"].size(), report.timeline.size());
  EXPECT_TRUE(json["latency_ms"].contains("p999"));
}

TEST(LoadTest, ServerGoingAwayShowsAsOutageAtTheEnd) {
  auto server = start_server();
  ASSERT_TRUE(server);
  LoadRun load(options_for(server->port(), Mode::kKeepAlive, 4, milliseconds(400)));
  ASSERT_TRUE(load.wait_for_ok(20, milliseconds(2000)));
  server.reset();  // closes the listener and every connection
  const LoadReport report = load.join();
  EXPECT_GT(report.counts.refused, 0u) << to_text(report);
  EXPECT_GT(report.longest_outage_ms(), 0u) << to_text(report);
  EXPECT_EQ(report.timeline.ok().back(), 0u);
  EXPECT_FALSE(report.clean());
}

TEST(LoadRunTest, StopEndsTheRunEarly) {
  auto server = start_server();
  ASSERT_TRUE(server);
  LoadRun load(options_for(server->port(), Mode::kKeepAlive, 4, milliseconds(10000)));
  ASSERT_TRUE(load.wait_for_ok(50, milliseconds(2000)));
  load.stop();
  ASSERT_TRUE(load.wait_done(milliseconds(2000)));
  const LoadReport report = load.join();
  expect_only_ok(report);
  EXPECT_GE(report.counts.ok, 50u);
  EXPECT_LT(report.elapsed, milliseconds(5000));
}

TEST(LoadRunTest, SetupErrorsAreReported) {
  LoadOptions options;
  options.port = 80;
  options.connections = 0;
  EXPECT_EQ(run_load(options).setup_error, "connections must be at least 1");
  LoadRun load(options);
  EXPECT_FALSE(load.wait_for_ok(1, milliseconds(1000)));
  EXPECT_FALSE(load.join().clean());
}

TEST(LoadTest, ExternalStopFlag) {
  auto server = start_server();
  ASSERT_TRUE(server);
  std::atomic<bool> stop{true};  // already set: the first tick ends the run
  const LoadReport report =
      run_load(options_for(server->port(), Mode::kKeepAlive, 2, milliseconds(5000)), &stop);
  EXPECT_LT(report.elapsed, milliseconds(1000));
}

}  // namespace
}  // namespace serverswap::verify
