#include "verify/verify_command.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "verify/deploy.h"
#include "verify/test_http_server.h"

namespace serverswap::verify {
namespace {

using std::chrono::milliseconds;
using testing::ClosedPort;
using testing::TestHttpServer;

TEST(VerifyCommandTest, ParsesOptionsAddressAndDeployCommand) {
  CLI::App app("serverswap");
  VerifyArgs args;
  CLI::App* verify = add_verify_command(app, args);
  app.parse(
      "verify --duration 2.5 --clients 7 --mode close --rate 100 --timeout 0.5 --json "
      "--samples s.csv --progress-file p --deploy-at 1.5 --stop-after-deploy "
      "[::1]:8080 -- sh -c 'exit 3'",
      false);
  EXPECT_TRUE(verify->parsed());
  EXPECT_EQ(args.address, "[::1]:8080");
  EXPECT_DOUBLE_EQ(args.duration_s, 2.5);
  EXPECT_EQ(args.clients, 7);
  EXPECT_EQ(args.mode, "close");
  EXPECT_DOUBLE_EQ(args.rate, 100);
  EXPECT_DOUBLE_EQ(args.timeout_s, 0.5);
  EXPECT_TRUE(args.json);
  EXPECT_EQ(args.samples_path, "s.csv");
  EXPECT_EQ(args.progress_path, "p");
  EXPECT_DOUBLE_EQ(args.deploy_at_s, 1.5);
  EXPECT_TRUE(args.stop_after_deploy);
  EXPECT_EQ(args.deploy, (std::vector<std::string>{"sh", "-c", "exit 3"}));
}

TEST(VerifyCommandTest, RejectsBadMode) {
  CLI::App app("serverswap");
  VerifyArgs args;
  add_verify_command(app, args);
  EXPECT_THROW(app.parse("verify --mode sometimes :80", false), CLI::ValidationError);
}

VerifyArgs short_run(uint16_t port) {
  VerifyArgs args;
  args.address = ":" + std::to_string(port);
  args.duration_s = 0.3;
  args.clients = 2;
  return args;
}

TEST(VerifyCommandTest, PassesWithAHealthyServerAndDeploy) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  args.deploy = {"true"};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(verify_main(args, out, err), kVerifyPassed) << out.str() << err.str();
  EXPECT_NE(out.str().find("verify: PASS"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("deploy `true`: exited with status 0"), std::string::npos) << out.str();
}

TEST(VerifyCommandTest, FailsWhenTheDeployFails) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  args.deploy = {"sh", "-c", "exit 3"};
  args.json = true;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(verify_main(args, out, err), kVerifyFailed);
  const nlohmann::json json = nlohmann::json::parse(out.str());
  EXPECT_EQ(json["deploy"]["exit_status"], 3);
  EXPECT_EQ(json["failed"], 0);
  EXPECT_EQ(json["passed"], false);
  // The deploy started about a third of the way into the 300 ms run.
  EXPECT_GE(json["deploy"]["started_after_ms"].get<int>(), 90);
}

TEST(VerifyCommandTest, FailsWhenRequestsFail) {
  ClosedPort closed;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(verify_main(short_run(closed.port()), out, err), kVerifyFailed);
  EXPECT_NE(out.str().find("verify: FAIL"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("connection refused"), std::string::npos) << out.str();
}

TEST(VerifyCommandTest, SamplesFileHasALinePerJudgedRequest) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  args.json = true;
  args.samples_path = ::testing::TempDir() + "verify_samples.csv";
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(verify_main(args, out, err), kVerifyPassed) << out.str() << err.str();
  const nlohmann::json json = nlohmann::json::parse(out.str());
  std::ifstream samples(args.samples_path);
  std::string line;
  ASSERT_TRUE(std::getline(samples, line));
  EXPECT_EQ(line, "completed_ms,latency_us,outcome");
  uint64_t ok_lines = 0;
  uint64_t lines = 0;
  while (std::getline(samples, line)) {
    ++lines;
    if (line.ends_with(",ok")) ++ok_lines;
  }
  EXPECT_GT(lines, 0u);
  EXPECT_EQ(lines, json["ok"].get<uint64_t>());
  EXPECT_EQ(ok_lines, lines);
  std::remove(args.samples_path.c_str());
}

TEST(VerifyCommandTest, ProgressFileHoldsTheFinalCounts) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  args.json = true;
  args.progress_path = ::testing::TempDir() + "verify_progress";
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(verify_main(args, out, err), kVerifyPassed) << out.str() << err.str();
  const nlohmann::json json = nlohmann::json::parse(out.str());
  std::ifstream progress(args.progress_path);
  uint64_t ok = 0;
  uint64_t failed = 1;
  ASSERT_TRUE(progress >> ok >> failed);
  EXPECT_EQ(ok, json["ok"].get<uint64_t>());
  EXPECT_EQ(failed, 0u);
  std::remove(args.progress_path.c_str());
}

TEST(VerifyCommandTest, DeployAtAndStopAfterDeployBoundTheRun) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  args.duration_s = 30;  // ended by the deploy's exit, not by the duration
  args.deploy_at_s = 0.05;
  args.stop_after_deploy = true;
  args.deploy = {"true"};
  args.json = true;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(verify_main(args, out, err), kVerifyPassed) << out.str() << err.str();
  const nlohmann::json json = nlohmann::json::parse(out.str());
  EXPECT_LT(json["duration_ms"].get<double>(), 10000) << out.str();
  EXPECT_GE(json["deploy"]["started_after_ms"].get<int>(), 50);
  EXPECT_LT(json["deploy"]["started_after_ms"].get<int>(), 10000);
}

TEST(VerifyCommandTest, DeployCommandGetsTheStartOfTheRun) {
  std::string error;
  auto server = TestHttpServer::start({}, &error);
  ASSERT_TRUE(server) << error;
  VerifyArgs args = short_run(server->port());
  const std::string file = ::testing::TempDir() + "verify_start_ns";
  args.deploy = {"sh", "-c", "echo \"$SERVERSWAP_VERIFY_START_NS\" > " + file};
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const int64_t before = now_ns();
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(verify_main(args, out, err), kVerifyPassed) << out.str() << err.str();
  const int64_t after = now_ns();
  std::ifstream in(file);
  int64_t start = 0;
  ASSERT_TRUE(in >> start);
  EXPECT_GE(start, before);
  EXPECT_LE(start, after);
  std::remove(file.c_str());
}

TEST(VerifyCommandTest, BadAddressFailsBeforeAnyLoad) {
  VerifyArgs args;
  args.address = "localhost";
  args.deploy = {"false"};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(verify_main(args, out, err), kVerifyFailed);
  EXPECT_NE(err.str().find("bad address \"localhost\""), std::string::npos) << err.str();
  EXPECT_TRUE(out.str().empty());
}

TEST(DeployTest, MissingProgramIsAnError) {
  const DeployResult result =
      run_deploy({"/nonexistent/deploy"}, milliseconds(0), milliseconds(1000));
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.error.find("spawn /nonexistent/deploy: no such file or directory"),
            std::string::npos)
      << result.error;
}

TEST(DeployTest, TimeoutTerminatesTheCommand) {
  const DeployResult result = run_deploy({"sleep", "10"}, milliseconds(0), milliseconds(100));
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.term_signal, SIGTERM);
  EXPECT_FALSE(result.ok());
  EXPECT_LT(result.ran_for, milliseconds(5000));
  EXPECT_NE(result.describe().find("timed out, killed by signal 15"), std::string::npos);
}

}  // namespace
}  // namespace serverswap::verify
