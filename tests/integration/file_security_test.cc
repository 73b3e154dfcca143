// What a root daemon does with files and descriptors on behalf of others (issue 11): it
// unlinks only the socket file it bound, relative to the directory it bound it in; the
// descriptors it inherited reach no server; the CLI creates nothing in a runtime directory
// that another user controls. Each attack is made as (or for) uid 65534.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "harness.h"

namespace serverswap::testing {
namespace {

constexpr uid_t kNobody = 65534;

// A directory under /tmp that uid 65534 may enter (0755, root's), removed afterwards.
class SharedDir {
 public:
  SharedDir() {
    char pattern[] = "/tmp/ss-files-XXXXXX";
    if (mkdtemp(pattern)) path_ = pattern;
    chmod(path_.c_str(), 0755);
  }
  ~SharedDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  // A directory `name` in it owned by uid 65534 (0755).
  std::string nobody_dir(const std::string& name) const {
    std::string dir = path_ + "/" + name;
    std::filesystem::create_directories(dir);
    chmod(dir.c_str(), 0755);
    EXPECT_EQ(chown(dir.c_str(), kNobody, kNobody), 0) << std::strerror(errno);
    return dir;
  }

 private:
  std::string path_;
};

// A listening Unix socket of the test (root's) at `path`.
UniqueFd listen_unix(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
      << path << ": " << std::strerror(errno);
  EXPECT_EQ(listen(fd.get(), 8), 0);
  return fd;
}

// Whether process `pid` has `target` open (readlink of /proc/PID/fd/*).
bool has_open(pid_t pid, const std::string& target) {
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(e.path(), link_ec).string() == target) return true;
  }
  return false;
}

class SecurityFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = why_no_second_user(HELLO_SERVER_BIN); !why.empty()) GTEST_SKIP() << why;
  }
};

// A --user nobody server's socket lies in a directory of nobody's, which nobody then
// replaces by a symlink to a root directory holding a root socket of the same name. At
// stop the daemon unlinks the file it bound (in the directory it bound it in, moved away),
// and root's socket survives.
TEST_F(SecurityFiles, SocketDirectorySwappedForASymlinkLosesOnlyTheServersOwnSocket) {
  SharedDir shared;
  std::string nb = shared.nobody_dir("nb");
  std::string x = shared.nobody_dir("nb/x");
  std::string rootpub = shared.path() + "/rootpub";
  std::filesystem::create_directory(rootpub);
  chmod(rootpub.c_str(), 0755);
  DaemonUnderTest daemon({"--takedown-timeout", "2s"});
  auto deploy =
      serverswap(daemon, {"--user", "nobody", HELLO_SERVER_BIN, "unix:" + x + "/s.sock"}, 20s);
  ASSERT_EQ(deploy.code, 0) << deploy.output;
  struct stat bound {};
  ASSERT_EQ(lstat((x + "/s.sock").c_str(), &bound), 0);
  EXPECT_EQ(bound.st_uid, kNobody);
  UniqueFd root_socket = listen_unix(rootpub + "/s.sock");
  // What nobody may do in its own directory: move x away, put a symlink in its place.
  ASSERT_EQ(rename(x.c_str(), (nb + "/moved").c_str()), 0);
  ASSERT_EQ(symlink(rootpub.c_str(), x.c_str()), 0);
  ASSERT_EQ(lchown(x.c_str(), kNobody, kNobody), 0);
  auto stop = serverswap(daemon, {"stop"}, 20s);
  EXPECT_EQ(stop.code, 0) << stop.output;
  // `stop` ends the daemon once every server is gone: its sockets are closed then.
  ASSERT_TRUE(daemon.process().wait(20s).has_value());
  struct stat st {};
  EXPECT_EQ(lstat((rootpub + "/s.sock").c_str(), &st), 0) << "root's socket was unlinked";
  EXPECT_EQ(st.st_uid, 0u);
  // The file it did bind went, found through the directory it was bound in.
  EXPECT_NE(lstat((nb + "/moved/s.sock").c_str(), &st), 0)
      << "the server's own socket file was left in the moved directory\n"
      << daemon.process().output();
}

// A descriptor the daemon inherited (a root-only file) reaches none of its servers: not one
// of its own user's, not one run as nobody. Also for the CLI's foreground first-run daemon.
TEST_F(SecurityFiles, DescriptorsTheDaemonInheritedReachNoServer) {
  SharedDir shared;
  std::string secret = shared.path() + "/secret";
  std::ofstream(secret) << "root only\n";
  chmod(secret.c_str(), 0600);
  TempDir dir;
  std::string sock = dir.path() + "/c.sock";
  Child daemon({"/bin/sh", "-c",
                "exec 7<\"$1\"; exec \"$2\" --socket \"$3\" --takedown-timeout 2s daemon", "sh",
                secret, SERVERSWAP_BIN, sock});
  ASSERT_TRUE(daemon.wait_for_output("daemon listening on", 20s)) << daemon.output();
  ASSERT_TRUE(has_open(daemon.pid(), secret));  // the test sees what it means to
  // Two servers side by side: on sockets of their own.
  auto mine = serverswap(
      sock, {"--name", "mine", HELLO_SERVER_BIN, "unix:" + dir.path() + "/mine.sock"}, 20s);
  ASSERT_EQ(mine.code, 0) << mine.output;
  auto theirs = serverswap(sock,
                           {"--name", "theirs", "--user", "nobody", HELLO_SERVER_BIN,
                            "127.0.0.1:" + std::to_string(free_ephemeral_port())},
                           20s);
  ASSERT_EQ(theirs.code, 0) << theirs.output;
  auto status = serverswap(sock, {"status", "--json"}, 20s);
  std::vector<pid_t> pids;
  auto json = nlohmann::json::parse(status.output, nullptr, false);
  for (const auto& server : json.value("servers", nlohmann::json::array()))
    if (server.contains("pid")) pids.push_back(server["pid"].get<pid_t>());
  ASSERT_EQ(pids.size(), 2u) << status.output;
  for (pid_t pid : pids) EXPECT_FALSE(has_open(pid, secret)) << "server " << pid;
  serverswap(sock, {"stop"}, 20s);
  daemon.wait(20s);

  // `serverswap COMMAND` with no daemon running: the daemon it runs in the foreground.
  TempDir dir2;
  std::string sock2 = dir2.path() + "/c.sock";
  Child first(
      {"/bin/sh", "-c",
       "exec 7<\"$1\"; exec \"$2\" --socket \"$3\" --takedown-timeout 2s \"$4\" 127.0.0.1:0", "sh",
       secret, SERVERSWAP_BIN, sock2, HELLO_SERVER_BIN});
  ASSERT_TRUE(first.wait_for_output("serving on", 20s)) << first.output();
  auto status2 = serverswap(sock2, {"status", "--json"}, 20s);
  auto json2 = nlohmann::json::parse(status2.output, nullptr, false);
  std::vector<pid_t> pids2;
  for (const auto& server : json2.value("servers", nlohmann::json::array()))
    if (server.contains("pid")) pids2.push_back(server["pid"].get<pid_t>());
  ASSERT_EQ(pids2.size(), 1u) << status2.output;
  EXPECT_FALSE(has_open(pids2[0], secret));
  serverswap(sock2, {"stop"}, 20s);
  first.wait(20s);
}

// XDG_RUNTIME_DIR through another user's symlink to a root-only directory, or naming a
// directory of another user: refused (exit 4) before anything is created there.
TEST_F(SecurityFiles, RuntimeDirectoryOfAnotherUserGetsNothingCreated) {
  SharedDir shared;
  std::string nb = shared.nobody_dir("nb");
  std::string rootonly = shared.path() + "/rootonly";
  std::filesystem::create_directory(rootonly);
  chmod(rootonly.c_str(), 0700);
  ASSERT_EQ(symlink(rootonly.c_str(), (nb + "/lnk").c_str()), 0);
  ASSERT_EQ(lchown((nb + "/lnk").c_str(), kNobody, kNobody), 0);
  Child via_link({SERVERSWAP_BIN, "status"}, {{"XDG_RUNTIME_DIR", nb + "/lnk"}});
  EXPECT_EQ(via_link.wait(10s), 4) << via_link.output();
  EXPECT_FALSE(std::filesystem::exists(rootonly + "/serverswap")) << via_link.output();
  Child plain({SERVERSWAP_BIN, "status"}, {{"XDG_RUNTIME_DIR", nb}});
  EXPECT_EQ(plain.wait(10s), 4) << plain.output();
  EXPECT_NE(plain.output().find("belongs to uid 65534"), std::string::npos) << plain.output();
  EXPECT_FALSE(std::filesystem::exists(nb + "/serverswap")) << plain.output();
}

// A root-owned link whose target passes through another user's link: the second link is met
// only by following the first, and is as much theirs to point elsewhere later. `--socket`
// and XDG_RUNTIME_DIR through it are refused (exit 4) naming that link and its owner, and
// nothing is created where it points now. (realpath() of the path saw only root's
// directories, and the daemon took the directory.)
TEST_F(SecurityFiles, SocketThroughAnotherUsersLinkBehindRootsLinkIsRefused) {
  SharedDir shared;
  std::string hops = shared.path() + "/hops";  // root's, 0755
  std::filesystem::create_directory(hops);
  chmod(hops.c_str(), 0755);
  std::string target = shared.path() + "/private";
  std::filesystem::create_directories(target + "/sub");
  chmod(target.c_str(), 0700);
  chmod((target + "/sub").c_str(), 0700);
  std::string theirs = hops + "/hop";
  ASSERT_EQ(symlink(target.c_str(), theirs.c_str()), 0);
  ASSERT_EQ(lchown(theirs.c_str(), kNobody, kNobody), 0);
  std::string via = shared.path() + "/via";  // root's link to nobody's
  ASSERT_EQ(symlink(theirs.c_str(), via.c_str()), 0);

  for (const char* command : {"daemon", "status"}) {
    Child cli({SERVERSWAP_BIN, "--socket", via + "/sub/c.sock", command});
    EXPECT_EQ(cli.wait(10s), 4) << command << ": " << cli.output();
    EXPECT_NE(cli.output().find(theirs + ", a symbolic link that belongs to uid 65534"),
              std::string::npos)
        << command << ": " << cli.output();
  }
  Child xdg({SERVERSWAP_BIN, "status"}, {{"XDG_RUNTIME_DIR", via + "/sub"}});
  EXPECT_EQ(xdg.wait(10s), 4) << xdg.output();
  EXPECT_NE(xdg.output().find(theirs + ", a symbolic link that belongs to uid 65534"),
            std::string::npos)
      << xdg.output();
  EXPECT_TRUE(std::filesystem::is_empty(target + "/sub")) << "created through nobody's link";

  // The same links, root's: the directory is accepted (the daemon's own checks pass).
  ASSERT_EQ(lchown(theirs.c_str(), 0, 0), 0);
  Child ok({SERVERSWAP_BIN, "--socket", via + "/sub/c.sock", "status"});
  auto rc = ok.wait(10s);
  EXPECT_TRUE(rc.has_value() && *rc != 4) << ok.output();
  EXPECT_EQ(ok.output().find("symbolic link"), std::string::npos) << ok.output();
}

// ".." after another user's link: the link is checked before it is followed to take the
// ".." out (re-attack F4: `nl/../real` was resolved through nobody's link unchecked, so
// nobody chose which daemon a root command reached). The same made root's is accepted,
// and ".." is taken from the link's target, as the kernel takes it.
TEST_F(SecurityFiles, DotDotAfterAnotherUsersLinkIsRefusedAndAfterRootsLinkFollowsTheTarget) {
  SharedDir shared;
  for (const char* name : {"real", "pub", "pub/x", "pub/real"}) {
    std::string dir = shared.path() + "/" + name;
    std::filesystem::create_directory(dir);
    chmod(dir.c_str(), 0700);
  }
  chmod((shared.path() + "/pub").c_str(), 0755);
  std::string link = shared.path() + "/nl";
  ASSERT_EQ(symlink((shared.path() + "/pub/x").c_str(), link.c_str()), 0);
  ASSERT_EQ(lchown(link.c_str(), kNobody, kNobody), 0);
  Child by_flag({SERVERSWAP_BIN, "--socket", link + "/../real/c.sock", "status"});
  EXPECT_EQ(by_flag.wait(10s), 4) << by_flag.output();
  EXPECT_NE(by_flag.output().find(link + ", a symbolic link that belongs to uid 65534"),
            std::string::npos)
      << by_flag.output();
  Child by_env({SERVERSWAP_BIN, "status"}, {{"SERVERSWAP_SOCKET", link + "/../real/c.sock"}});
  EXPECT_EQ(by_env.wait(10s), 4) << by_env.output();
  Child by_xdg({SERVERSWAP_BIN, "status"}, {{"XDG_RUNTIME_DIR", link + "/../real"}});
  EXPECT_EQ(by_xdg.wait(10s), 4) << by_xdg.output();
  EXPECT_FALSE(std::filesystem::exists(shared.path() + "/real/serverswap"));
  EXPECT_FALSE(std::filesystem::exists(shared.path() + "/pub/real/serverswap"));

  // Root's link: accepted, and the socket is the one the kernel reaches, beside the target.
  ASSERT_EQ(lchown(link.c_str(), 0, 0), 0);
  Child ok({SERVERSWAP_BIN, "--socket", link + "/../real/c.sock", "status"});
  EXPECT_EQ(ok.wait(10s), 3) << ok.output();  // no daemon there yet
  EXPECT_NE(ok.output().find("no daemon is running on " + shared.path() + "/pub/real/c.sock"),
            std::string::npos)
      << ok.output();
}

}  // namespace
}  // namespace serverswap::testing