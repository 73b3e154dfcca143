// docs/fleet.md's Ansible play, run for real against localhost: two deploys through the
// play swap the server; a release that fails to start fails the play with serverswap's
// reason while the old server keeps answering. Skipped when ansible-playbook is missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>

#include "harness.h"

namespace serverswap::testing {
namespace {

std::string find_on_path(const std::string& program) {
  const char* path = getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ansible_ = find_on_path("ansible-playbook");
    if (ansible_.empty()) GTEST_SKIP() << "ansible-playbook is not installed";
  }

  // Runs the play with `server_command` (a JSON array); its exit code and output.
  DaemonUnderTest::Outcome play(const std::string& server_command) {
    std::string extra = R"({"serverswap": ")" + std::string(SERVERSWAP_BIN) +
                        R"(", "server_command": )" + server_command +
                        R"(, "health_url": "", "release": "unused"})";
    Child run({ansible_, "-i", kPlaybookDir + "/inventory-localhost.ini",
               kPlaybookDir + "/rolling-deploy.yml", "-e", extra},
              {{"SERVERSWAP_SOCKET", daemon_.socket()},
               {"ANSIBLE_NOCOLOR", "1"},
               {"ANSIBLE_LOCAL_TEMP", daemon_.dir() + "/ansible-local"},
               {"ANSIBLE_REMOTE_TEMP", daemon_.dir() + "/ansible-remote"}});
    auto code = run.wait(120s);
    return {code.value_or(-1), run.output()};
  }

  const std::string kPlaybookDir = std::string(SOURCE_DIR) + "/contrib/ansible";
  std::string ansible_;
  DaemonUnderTest daemon_;
};

TEST_F(FleetTest, PlayDeploysAndStopsOnAFailedRelease) {
  const std::string hello = R"([")" + std::string(HELLO_SERVER_BIN) + R"(", "127.0.0.1:0"])";
  auto first = play(hello);
  ASSERT_EQ(first.code, 0) << first.output;
  auto second = play(hello);
  ASSERT_EQ(second.code, 0) << second.output;
  auto pids = daemon_.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  std::string address = daemon_.address_of("127.0.0.1:0");
  EXPECT_TRUE(http_ok(address));

  auto failed =
      play(R"([")" + std::string(FAULT_SERVER_BIN) + R"(", "crash-before-ready", "127.0.0.1:0"])");
  EXPECT_NE(failed.code, 0) << failed.output;
  EXPECT_NE(failed.output.find("deploy failed: exited with status 3 before it was up"),
            std::string::npos)
      << failed.output;
  EXPECT_EQ(daemon_.server_pids(), pids) << "the old server must stay";
  EXPECT_TRUE(http_ok(address));
}

}  // namespace
}  // namespace serverswap::testing
