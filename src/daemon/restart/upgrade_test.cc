#include "daemon/restart/upgrade.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

namespace serverswap::daemon {
namespace {

using namespace std::chrono_literals;

// Runs VersionProbe on a script with `body`, bounded by `timeout`; its outcome and how long
// the loop ran.
class VersionProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/serverswap-probe-XXXXXX";
    ASSERT_TRUE(mkdtemp(pattern));
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::string> probe(const std::string& body, Millis timeout = Millis(300)) {
    std::string path = dir_ + "/x.sh";
    {
      std::ofstream script(path);
      script << "#!/bin/sh\n" << body << "\n";
    }
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    uv_loop_t loop;
    uv_loop_init(&loop);
    std::optional<Result<std::string>> outcome;
    auto started = std::chrono::steady_clock::now();
    auto probe =
        VersionProbe::start(&loop, path, timeout, [&](Result<std::string> r) { outcome = r; });
    if (!probe.ok()) outcome = probe.status();
    uv_run(&loop, UV_RUN_DEFAULT);  // ends once the child is reaped and every handle closed
    took_ = std::chrono::steady_clock::now() - started;
    uv_loop_close(&loop);
    return outcome.value_or(Status::error("done was never called"));
  }

  std::string dir_;
  std::chrono::steady_clock::duration took_{};
};

TEST_F(VersionProbeTest, FirstLineOfAProgramThatExits) {
  auto version = probe("echo 'serverswap 9.9.9'; echo more");
  ASSERT_TRUE(version.ok()) << version.status().message();
  EXPECT_EQ(*version, "serverswap 9.9.9");
}

// Gone or a zombie (killed, not yet reaped by its new parent): no longer running.
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

// What a probe forked is killed with it, even when it answered well and exited in time.
TEST_F(VersionProbeTest, WhatTheProbeForkedDoesNotOutliveIt) {
  std::string child = dir_ + "/child";
  auto version =
      probe("sleep 60 >/dev/null 2>&1 & echo $! > " + child + "; echo 'serverswap 9.9.9'");
  ASSERT_TRUE(version.ok()) << version.status().message();
  std::ifstream in(child);
  pid_t pid = 0;
  ASSERT_TRUE(in >> pid);
  // No event tells when another process's state changes: poll, bounded.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (running(pid) && std::chrono::steady_clock::now() < deadline) usleep(10'000);
  EXPECT_FALSE(running(pid)) << "pid " << pid << " outlived the probe";
  if (running(pid)) ::kill(pid, SIGKILL);
}

TEST_F(VersionProbeTest, RefusesOtherPrograms) {
  auto version = probe("echo 'something 1.0'");
  ASSERT_FALSE(version.ok());
  EXPECT_NE(version.status().message().find("answered 'something 1.0', not serverswap's version"),
            std::string::npos)
      << version.status().message();
  auto failed = probe("echo 'serverswap 9.9.9'; exit 3");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("failed (exit status 3)"), std::string::npos);
}

TEST_F(VersionProbeTest, KillsAProgramThatDoesNotExitWithinTheBound) {
  auto version = probe("echo $$ > " + dir_ + "/pid; echo 'serverswap 9.9.9'; exec sleep 30");
  ASSERT_FALSE(version.ok());
  EXPECT_NE(version.status().message().find("printed 'serverswap 9.9.9' but did not exit within"),
            std::string::npos)
      << version.status().message();
  EXPECT_LT(took_, 5s);
  std::ifstream in(dir_ + "/pid");
  pid_t pid = 0;
  in >> pid;
  ASSERT_GT(pid, 0);
  EXPECT_NE(::kill(pid, 0), 0);  // killed and reaped before the loop ended
}

TEST_F(VersionProbeTest, AProgramThatClosesItsOutputAndStaysIsKilled) {
  auto version = probe("exec >&-; exec sleep 30");
  ASSERT_FALSE(version.ok());
  EXPECT_NE(version.status().message().find("closed its output but did not exit within"),
            std::string::npos)
      << version.status().message();
  EXPECT_LT(took_, 5s);
}

TEST_F(VersionProbeTest, AProgramThatCannotRun) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bool called = false;
  auto probe = VersionProbe::start(&loop, dir_ + "/missing", Millis(300),
                                   [&](Result<std::string>) { called = true; });
  EXPECT_FALSE(probe.ok());
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace serverswap::daemon
