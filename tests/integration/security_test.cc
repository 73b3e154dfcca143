// The control socket: 0600 in a private directory, and peers of another uid refused even
// when the file permissions would let them in (SO_PEERCRED).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

namespace serverswap::testing {
namespace {

TEST(Security, ControlSocketIsPrivateToItsOwner) {
  DaemonUnderTest daemon;
  struct stat st {};
  ASSERT_EQ(stat(daemon.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, getuid());
}

TEST(Security, DefaultDirectoryOpenToOthersIsRefused) {
  char pattern[] = "/tmp/serverswap-test-XXXXXX";
  ASSERT_TRUE(mkdtemp(pattern));
  std::string runtime = pattern;
  std::filesystem::create_directory(runtime + "/serverswap");
  chmod((runtime + "/serverswap").c_str(), 0755);
  Child status({SERVERSWAP_BIN, "status"}, {{"XDG_RUNTIME_DIR", runtime}});
  EXPECT_EQ(status.wait(10s), 4) << status.output();
  EXPECT_NE(status.output().find("has mode 0755; it must be 0700"), std::string::npos)
      << status.output();
  std::filesystem::remove_all(runtime);
}

TEST(Security, PeerOfAnotherUidIsRefused) {
  if (getuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
    GTEST_SKIP() << "needs root and setpriv to act as another user";
  Child probe({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               SERVERSWAP_BIN, "--version"});
  if (probe.wait(10s) != 0) GTEST_SKIP() << "uid 65534 cannot run " << SERVERSWAP_BIN;
  DaemonUnderTest daemon;
  // Open the door as wide as file permissions go; only the credential check remains.
  chmod(daemon.dir().c_str(), 0755);
  chmod(daemon.socket().c_str(), 0666);
  // The CLI trusts root's directory (no one else can plant a file there), connects, and is
  // refused by the daemon's credential check (exit 4) ...
  Child intruder({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  SERVERSWAP_BIN, "--socket", daemon.socket(), "status"});
  EXPECT_EQ(intruder.wait(10s), 4) << intruder.output();
  EXPECT_NE(intruder.output().find("permission denied: the daemon runs as another user"),
            std::string::npos)
      << intruder.output();
  // ... and so is a bare connection, which no CLI check stands before.
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "needs python3 for a bare connect";
  Child bare({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "/usr/bin/python3", "-c",
              "import socket, sys\n"
              "s = socket.socket(socket.AF_UNIX)\n"
              "s.connect(sys.argv[1])\n"
              "print(s.recv(4096).decode())\n",
              daemon.socket()});
  EXPECT_EQ(bare.wait(10s), 0) << bare.output();
  EXPECT_NE(bare.output().find("permission denied: the daemon runs as another user"),
            std::string::npos)
      << bare.output();
  EXPECT_TRUE(daemon.process().wait_for_output("refused a control connection", 5s));
}

}  // namespace
}  // namespace serverswap::testing
