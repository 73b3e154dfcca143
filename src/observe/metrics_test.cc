#include "observe/metrics.h"

#include <gtest/gtest.h>

#include "daemon/core/event_kind.h"
#include "observe/counters.h"
#include "observe/metrics_endpoint.h"
#include "protocol/control_replies.h"

namespace serverswap::observe {
namespace {

using protocol::Json;
using namespace std::chrono_literals;

Json event(const std::string& kind, const std::string& id, const std::string& text = "") {
  protocol::Event event;
  event.time = "2026-11-25T11:50:01.123Z";
  event.kind = kind;
  event.id = id;
  event.text = text;
  return event.encode();
}

Json deployed(const std::string& id, std::vector<int64_t> replaced) {
  return protocol::Deployed{id, 1, std::nullopt, std::nullopt, std::move(replaced), std::nullopt}
      .encode();
}

// The value of one sample line ("name{labels} value"), or -1 when absent.
double value_of(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsTest, CountsDeploysSwapsAndDurations) {
  Metrics m;
  auto t0 = Metrics::Clock::now();
  m.observe(event("spawned", "1.a"), t0);
  m.observe(deployed("1.a", {}), t0 + 30ms);
  m.observe(event("spawned", "2.b"), t0 + 1s);
  m.observe(deployed("2.b", {42}), t0 + 1s + 700ms);
  m.observe(event("spawned", "3.c"), t0 + 2s);
  m.observe(protocol::DeployFailed{"3.c", "x", std::nullopt, std::nullopt}.encode(), t0 + 3s);
  Json crash = event("exited", "2.b", "server 1 (gen 2): exited with status 1 while serving");
  crash["event"]["crashed"] = true;
  m.observe(crash);
  m.observe(event("restarting", "4.d"));
  protocol::ServerStatus up;
  up.state = "up";
  protocol::ServerStatus draining;
  draining.state = "draining";
  std::string text = m.render({up, draining});

  EXPECT_EQ(value_of(text, "serverswap_deploys_total{outcome=\"deployed\"}"), 2);
  EXPECT_EQ(value_of(text, "serverswap_deploys_total{outcome=\"failed\"}"), 1);
  EXPECT_EQ(value_of(text, "serverswap_swaps_total"), 1);
  EXPECT_EQ(value_of(text, "serverswap_deploy_duration_seconds_bucket{le=\"0.05\"}"), 1);
  EXPECT_EQ(value_of(text, "serverswap_deploy_duration_seconds_bucket{le=\"0.5\"}"), 1);
  EXPECT_EQ(value_of(text, "serverswap_deploy_duration_seconds_bucket{le=\"1\"}"), 2);
  EXPECT_EQ(value_of(text, "serverswap_deploy_duration_seconds_bucket{le=\"+Inf\"}"), 2);
  EXPECT_EQ(value_of(text, "serverswap_deploy_duration_seconds_count"), 2);
  EXPECT_NEAR(value_of(text, "serverswap_deploy_duration_seconds_sum"), 0.73, 1e-9);
  EXPECT_EQ(value_of(text, "serverswap_servers{state=\"up\"}"), 1);
  EXPECT_EQ(value_of(text, "serverswap_servers{state=\"draining\"}"), 1);
  EXPECT_EQ(value_of(text, "serverswap_servers{state=\"starting\"}"), 0);
  EXPECT_EQ(value_of(text, "serverswap_server_crashes_total"), 1);
  EXPECT_EQ(value_of(text, "serverswap_server_restarts_total"), 1);
  EXPECT_NE(text.find("# TYPE serverswap_deploy_duration_seconds histogram\n"), std::string::npos);
}

// Crashes are counted by the event's "crashed" field, never by its wording: an exit whose
// text says "crashed" without the field is not a crash, and one with it is whatever it says.
TEST(MetricsTest, CountsCrashesByFieldNotText) {
  Metrics m;
  m.observe(event("exited", "1.a", "exited with status 1 while serving (crashed)"));
  Json no = event("exited", "2.b", "crashed");
  no["event"]["crashed"] = false;
  m.observe(no);
  Json bad = event("exited", "3.c");
  bad["event"]["crashed"] = "yes";
  m.observe(bad);
  Json other = event("up", "4.d");
  other["event"]["crashed"] = true;
  m.observe(other);
  EXPECT_EQ(value_of(m.render({}), "serverswap_server_crashes_total"), 0);
  Json yes = event(daemon::event_kind_name(daemon::EventKind::kCrashed), "5.e", "exited");
  yes["event"]["crashed"] = true;
  m.observe(yes);
  EXPECT_EQ(value_of(m.render({}), "serverswap_server_crashes_total"), 1);
}

TEST(MetricsTest, IgnoresMessagesItDoesNotKnow) {
  Metrics m;
  m.observe(Json::array());
  m.observe(Json::object());
  m.observe(protocol::make("event", "not an object"));
  // A body that does not decode (protocol/control_replies.h) is not counted.
  m.observe(protocol::make("deployed", {{"replaced", "not an array"}}));
  EXPECT_EQ(value_of(m.render({}), "serverswap_deploys_total{outcome=\"deployed\"}"), 0);
}

TEST(MetricsTest, StateFileWritesAreCountedAndTheLastOutcomeIsAGauge) {
  Metrics m;
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_file_ok"), 1);
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_write_failures_total"), 0);
  m.state_write(false);
  m.state_write(false);
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_file_ok"), 0);
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_write_failures_total"), 2);
  m.state_write(true);
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_file_ok"), 1);
  EXPECT_EQ(value_of(m.render({}), "serverswap_state_write_failures_total"), 2);
}

// The refusals counted where they happen appear in every render, each series even at zero.
TEST(MetricsTest, RendersTheRefusalCounters) {
  Metrics m;
  std::string before = m.render({});
  for (const char* series :
       {"serverswap_refused_connections_total{reason=\"other_user\"}",
        "serverswap_refused_connections_total{reason=\"quota\"}",
        "serverswap_refused_connections_total{reason=\"capacity\"}",
        "serverswap_notify_rejected_total", "serverswap_unasked_fds_total",
        "serverswap_rate_limited_messages_total", "serverswap_rate_limit_closes_total",
        "serverswap_suppressed_log_lines_total"})
    EXPECT_GE(value_of(before, series), 0) << series;
  EXPECT_NE(before.find("# TYPE serverswap_notify_rejected_total counter\n"), std::string::npos);
  count(Refused::kConnectionQuota, 3);
  count(Refused::kNotifyDatagram);
  std::string after = m.render({});
  const std::string quota = "serverswap_refused_connections_total{reason=\"quota\"}";
  EXPECT_EQ(value_of(after, quota) - value_of(before, quota), 3);
  EXPECT_EQ(value_of(after, "serverswap_notify_rejected_total") -
                value_of(before, "serverswap_notify_rejected_total"),
            1);
}

TEST(MetricsResponseTest, AnswersOnlyGetMetrics) {
  std::string ok = metrics_response("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "a 1\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n")) << ok;
  EXPECT_NE(ok.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_TRUE(ok.ends_with("\r\n\r\na 1\n"));
  std::string head = metrics_response("HEAD /metrics HTTP/1.1\r\n\r\n", "a 1\n");
  EXPECT_TRUE(head.ends_with("\r\n\r\n"));
  EXPECT_NE(metrics_response("GET / HTTP/1.1\r\n\r\n", "").find(" 404 "), std::string::npos);
  EXPECT_NE(metrics_response("POST /metrics HTTP/1.1\r\n\r\n", "").find(" 405 "),
            std::string::npos);
  EXPECT_NE(metrics_response("garbage\r\n\r\n", "").find(" 400 "), std::string::npos);
}

}  // namespace
}  // namespace serverswap::observe
