// Identity bound to the peer (issue 11): readiness only from a server's main process (a
// wrapper script without `exec` cannot make its child's READY=1 count), a server id that
// leaked does not let another process speak for that server, ids never reach the log, and
// the Node.js client (whose relay runs in a session of its own) works under --user.
// About 20 s; the --user tests are skipped when not root.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// `serverswap --socket S OPTIONS... -- COMMAND...`, started, not waited for.
std::unique_ptr<Child> start_deploy_with(DaemonUnderTest& daemon,
                                         const std::vector<std::string>& options,
                                         const std::vector<std::string>& command) {
  std::vector<std::string> argv = {SERVERSWAP_BIN, "--socket", daemon.socket()};
  argv.insert(argv.end(), daemon.deploy_options.begin(), daemon.deploy_options.end());
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return std::make_unique<Child>(argv);
}

// HTTP requests on new connections from a thread, until stopped (at most `limit`).
class Load {
 public:
  Load(uint16_t port, Millis limit) {
    thread_ = std::thread([this, port, limit] {
      auto deadline = std::chrono::steady_clock::now() + limit;
      while (!stop_ && std::chrono::steady_clock::now() < deadline) {
        if (http_ok(port))
          ++ok_;
        else
          ++failed_;
      }
    });
  }
  ~Load() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::thread thread_;
};

// sd_notify by hand, as an unmodified Python program would.
const char kNotifyPython[] =
    "import os, socket\n"
    "def notify(text):\n"
    "    address = os.environ['NOTIFY_SOCKET']\n"
    "    if address.startswith('@'): address = '\\0' + address[1:]\n"
    "    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "    s.sendto(text.encode(), address)\n"
    "    s.close()\n";

// An HTTP server on its inherited --listen socket (fd 3) that says READY=1 itself.
const char kServePython[] =
    "import http.server, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', '3')\n"
    "        self.send_header('Connection', 'close')\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b'ok\\n')\n"
    "    def log_message(self, *args): pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "srv = S(('127.0.0.1', 0), H, bind_and_activate=False)\n"
    "srv.socket.close()\n"
    "srv.socket = socket.socket(fileno=3)\n"
    "srv.socket.setblocking(True)\n"
    "notify('READY=1')\n"
    "srv.serve_forever()\n";

bool have_python() {
  return access("/usr/bin/python3", X_OK) == 0;
}

// gunicorn started from a script without `exec`: the script's shell is the main process,
// its child's READY=1 does not count, and the deploy fails saying why, while the old server
// serves throughout.
TEST(Peers, ReadyFromAWrapperScriptsChildIsIgnoredAndTheDeployExplainsWhy) {
  if (!have_python()) GTEST_SKIP() << "python3 is not installed";
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "3s"});
  // Every command here is a version of one app.
  daemon.deploy_options = {"--name", "web"};
  uint16_t port = free_ephemeral_port();
  ASSERT_NE(port, 0);
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  write_text(daemon.dir() + "/serve.py", std::string(kNotifyPython) + kServePython);
  auto old =
      deploy_with(daemon, {"--listen", listen}, {"/usr/bin/python3", daemon.dir() + "/serve.py"});
  ASSERT_EQ(old.code, 0) << old.output;
  EXPECT_TRUE(contains(old.output, "sent READY=1 on NOTIFY_SOCKET")) << old.output;
  pid_t old_pid = daemon.server_pids().at(0);
  ASSERT_TRUE(http_ok(port));

  write_text(daemon.dir() + "/child.py",
             std::string(kNotifyPython) + "import time\nnotify('READY=1')\ntime.sleep(60)\n");
  write_text(daemon.dir() + "/run.sh", "/usr/bin/python3 " + daemon.dir() + "/child.py\n");
  Load load(port, 30s);
  auto wrapped = deploy_with(daemon, {"--listen", listen}, {"/bin/sh", daemon.dir() + "/run.sh"});
  load.finish();
  EXPECT_EQ(wrapped.code, 1) << wrapped.output;
  EXPECT_TRUE(contains(wrapped.output, "not up within --ready-timeout 3s: READY=1 came from pid"))
      << wrapped.output;
  EXPECT_TRUE(contains(wrapped.output, "(python3), not from the main process")) << wrapped.output;
  EXPECT_TRUE(contains(wrapped.output,
                       "(sh): does a wrapper script start the server without "
                       "`exec`?"))
      << wrapped.output;
  EXPECT_TRUE(contains(daemon.process().output(), "is not the server's main process"))
      << daemon.process().output();
  EXPECT_GT(load.ok(), 0);
  EXPECT_EQ(load.failed(), 0) << load.ok() << " requests answered";
  EXPECT_EQ(daemon.server_pids(), std::vector<pid_t>{old_pid});
  EXPECT_TRUE(http_ok(port));
}

// READY=1 from a process that has already exited, and from a process of the same uid that is
// not the server (this test), both on the server's NOTIFY_SOCKET: neither counts.
TEST(Peers, ReadyFromAnExitedOrOutsideProcessIsRefused) {
  if (!have_python()) GTEST_SKIP() << "python3 is not installed";
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "3s"});
  std::string address_file = daemon.dir() + "/notify-address";
  std::string script = "echo \"$NOTIFY_SOCKET\" > " + address_file + "; exec sleep 60";
  auto deploy = start_deploy_with(daemon, {"--listen", "127.0.0.1:0"}, {"/bin/sh", "-c", script});
  ASSERT_TRUE(eventually([&] { return read_file(address_file).ends_with("\n"); }, 10s));
  std::string address = read_file(address_file);
  address.pop_back();
  ASSERT_TRUE(address.starts_with(daemon.socket() + ".notify/")) << address;
  // The name tells nothing about the server's id.
  std::string id = daemon.status()["servers"].at(0)["id"].get<std::string>();
  EXPECT_FALSE(contains(address, id.substr(id.find('.') + 1))) << address << " " << id;

  std::string send = std::string(kNotifyPython) + "notify('READY=1')\n";
  // Sends and exits at once: gone, most likely, when the daemon reads it.
  Child exited({"/usr/bin/python3", "-c", send}, {{"NOTIFY_SOCKET", address}});
  ASSERT_EQ(exited.wait(10s), 0) << exited.output();
  // Stays alive until the daemon has refused it: a live process that is not the server's.
  Child outside({"/usr/bin/python3", "-c", send + "import time\ntime.sleep(30)\n"},
                {{"NOTIFY_SOCKET", address}});
  EXPECT_TRUE(daemon.process().wait_for_output("(python3) is not the server's main process", 10s))
      << daemon.process().output();
  EXPECT_EQ(deploy->wait(20s), 1) << deploy->output();
  EXPECT_TRUE(contains(deploy->output(), "not up within --ready-timeout 3s")) << deploy->output();
  EXPECT_FALSE(contains(deploy->output(), "sent READY=1")) << deploy->output();
  EXPECT_FALSE(contains(daemon.process().output(), "is up")) << daemon.process().output();
}

// Every server id, as `status --json` and the deploys' own output show them.
std::vector<std::string> ids_of(DaemonUnderTest& daemon) {
  std::vector<std::string> ids;
  nlohmann::json status = daemon.status();  // held: the loop must not outlive it
  for (const auto& s : status["servers"]) ids.push_back(s["id"].get<std::string>());
  return ids;
}

TEST(Peers, ServerIdsNeverAppearInTheJsonLogNorInSocketNames) {
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--log-format", "json"});
  const std::vector<std::string> server = {HELLO_SERVER_BIN, "127.0.0.1:0"};
  ASSERT_EQ(daemon.deploy(server).code, 0);
  auto ids = ids_of(daemon);
  pid_t old_pid = daemon.server_pids().at(0);
  ASSERT_EQ(daemon.deploy(server).code, 0);
  for (const auto& id : ids_of(daemon)) ids.push_back(id);
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_TRUE(daemon.process().wait_for_output("\"kind\":\"exited\"", 10s));
  std::string log = daemon.process().output();
  std::string sockets = read_file("/proc/net/unix");
  for (const auto& id : ids) {
    std::string secret = id.substr(id.find('.') + 1);  // the random part
    EXPECT_FALSE(contains(log, secret)) << id << " in\n" << log;
    EXPECT_FALSE(contains(sockets, secret)) << id << " in /proc/net/unix";
  }
  // The deploy a line is about is named by number: the old server's exit belongs to the
  // second deploy (generation 2).
  bool old_exit_seen = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("{")) continue;
    auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    EXPECT_FALSE(parsed.contains("server")) << line;
    if (parsed.value("kind", "") == "exited" && parsed.value("serverPid", 0) == old_pid) {
      old_exit_seen = true;
      EXPECT_EQ(parsed.value("deploy", 0), 2) << line;
    }
  }
  EXPECT_TRUE(old_exit_seen) << log;
}

// The inode of the socket bound to the NOTIFY_SOCKET `address` in /proc/net/unix; "" when
// none is. The daemon binds a path through /proc/self/fd/N/NAME (relative to the directory
// it checked), which is what the table shows: the file name is what identifies it.
std::string unix_socket_inode(const std::string& address) {
  std::string name = address.substr(address.rfind('/') + 1);
  std::istringstream table(read_file("/proc/net/unix"));
  for (std::string line; std::getline(table, line);) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string field; fields >> field;) f.push_back(field);
    if (f.size() == 8 && (f[7] == address || f[7].ends_with("/" + name))) return f[6];
  }
  return "";
}

// `serverswap upgrade` keeps each server's NOTIFY_SOCKET open across the exec (the same
// socket, not one bound again by name, which someone could have taken in between), and the
// server's notifications still arrive.
TEST(Peers, NotifySocketIsKeptOpenAcrossAnUpgrade) {
  DaemonUnderTest daemon;
  std::string report = daemon.dir() + "/report";
  // --confirm 100ms (remembered): READY=1's default window would add 5 s to the swap.
  auto first = deploy_with(daemon, {"--listen", "127.0.0.1:0", "--confirm", "100ms"},
                           {LISTEN_PROBE_BIN, report});
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t pid = daemon.server_pids().at(0);
  std::string address = report_env(read_file(report + "." + std::to_string(pid)), "NOTIFY_SOCKET");
  std::string inode = unix_socket_inode(address);
  ASSERT_FALSE(inode.empty()) << address;
  Child upgrade({SERVERSWAP_BIN, "--socket", daemon.socket(), "upgrade"});
  ASSERT_EQ(upgrade.wait(30s), 0) << upgrade.output() << daemon.process().output();
  EXPECT_EQ(unix_socket_inode(address), inode) << daemon.process().output();
  auto second = deploy_with(daemon, {}, {LISTEN_PROBE_BIN, report});
  ASSERT_EQ(second.code, 0) << second.output << daemon.process().output();
  // Sent by the old server on its takedown, after the upgrade.
  EXPECT_TRUE(daemon.process().wait_for_output("(gen 1): said STOPPING=1", 5s))
      << daemon.process().output();
}

// A daemon killed with SIGKILL leaves its servers' NOTIFY_SOCKETs unbound until it is
// restarted. Their paths lie in SOCKET.notify/, the daemon's alone: meanwhile another user
// can neither bind a server's path nor send to it, and the restarted daemon binds the same
// path again and hears the READY=1 the server sends after the restart.
TEST(Peers, NotifySocketCannotBeTakenWhileTheDaemonIsDownAndReadyAfterARestartCounts) {
  if (!have_python()) GTEST_SKIP() << "python3 is not installed";
  if (std::string why = why_no_second_user(PEER_FLOOD_BIN); !why.empty()) GTEST_SKIP() << why;
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--adopt-timeout", "10s"});
  // The server says READY=1 only when the test writes to this FIFO: after the restart.
  std::string fifo = daemon.dir() + "/go";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << strerror(errno);
  std::string address_file = daemon.dir() + "/notify-address";
  std::string server = std::string(kNotifyPython) + "import socket\nopen('" + address_file +
                       "', 'w').write(os.environ['NOTIFY_SOCKET'] + '\\n')\nopen('" + fifo +
                       "').read()\n" + kServePython;
  auto deploy =
      start_deploy_with(daemon, {"--listen", "127.0.0.1:0"}, {"/usr/bin/python3", "-c", server});
  ASSERT_TRUE(eventually([&] { return read_file(address_file).ends_with("\n"); }, 10s));
  std::string address = read_file(address_file);
  address.pop_back();
  ASSERT_TRUE(address.starts_with(daemon.socket() + ".notify/")) << address;
  daemon.process().signal(SIGKILL);
  ASSERT_TRUE(daemon.process().wait(10s).has_value());
  deploy->wait(10s);

  // Another user, while the daemon is down: no bind at the path, no send to it (and an
  // abstract name, as before, it could have bound: that is what this closes).
  auto as_nobody = [](const std::vector<std::string>& command) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups", PEER_FLOOD_BIN};
    argv.insert(argv.end(), command.begin(), command.end());
    Child child(argv);
    auto code = child.wait(10s);
    return std::make_pair(code.value_or(-1), child.output());
  };
  auto [bind_code, bind_out] = as_nobody({"bind", address});
  EXPECT_EQ(bind_code, 2) << bind_out;
  EXPECT_TRUE(contains(bind_out, "Permission denied")) << bind_out;
  auto [send_code, send_out] = as_nobody({"notify", address, "1"});
  EXPECT_EQ(send_code, 2) << send_out;
  EXPECT_TRUE(contains(send_out, "Permission denied")) << send_out;

  Child again({SERVERSWAP_BIN, "--socket", daemon.socket(), "--takedown-timeout", "5s",
               "--adopt-timeout", "10s", "daemon"});
  ASSERT_TRUE(again.wait_for_output("daemon listening on", 10s)) << again.output();
  // A --listen server takes its sockets back by pidfd_getfd; then it still has to say READY=1.
  ASSERT_TRUE(again.wait_for_output("took its listening sockets back", 10s)) << again.output();
  EXPECT_FALSE(contains(again.output(), "notifyLost")) << again.output();
  EXPECT_FALSE(contains(again.output(), "NOTIFY_SOCKET not reopened")) << again.output();
  {
    std::ofstream go(fifo);
    go << "go\n";
  }
  EXPECT_TRUE(again.wait_for_output("sent READY=1 on NOTIFY_SOCKET", 10s)) << again.output();
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_EQ(again.wait(30s), 0) << again.output();
  // The server is gone: so is its socket file.
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(address))) << address;
}

// --user nobody: the tests below need root and a nobody that can run what they run.
class PeersAsNobody : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0) GTEST_SKIP() << "needs root to start servers as another user";
    if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs setpriv for the probe";
  }
  static bool nobody_can(const std::vector<std::string>& command) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups"};
    argv.insert(argv.end(), command.begin(), command.end());
    Child probe(argv);
    return probe.wait(10s) == 0;
  }
  // A directory every user can read and write (the daemon's own is 0700).
  std::string shared_dir() {
    char pattern[] = "/tmp/serverswap-test-XXXXXX";
    if (!mkdtemp(pattern)) return "";
    chmod(pattern, 0777);
    shared_ = pattern;
    return shared_;
  }
  void TearDown() override {
    if (!shared_.empty()) std::filesystem::remove_all(shared_);
  }
  std::string shared_;
};

// The NOTIFY_SOCKET of a --user nobody server: a file of nobody's, 0600, in a directory of
// root's that nobody may pass but not list or write (0711); nobody's READY=1 counts; the
// file and the directory are gone with the server.
TEST_F(PeersAsNobody, NotifySocketOfAUserNobodyServerIsItsUidsAlone) {
  if (!have_python() || !nobody_can({"/usr/bin/python3", "-c", "pass"}))
    GTEST_SKIP() << "nobody cannot run python3";
  DaemonUnderTest daemon({"--takedown-timeout", "5s"});
  auto deploy = deploy_with(daemon, {"--user", "nobody", "--listen", "127.0.0.1:0"},
                            {"/usr/bin/python3", "-c", std::string(kNotifyPython) + kServePython});
  ASSERT_EQ(deploy.code, 0) << deploy.output << daemon.process().output();
  EXPECT_TRUE(contains(deploy.output, "sent READY=1 on NOTIFY_SOCKET")) << deploy.output;
  pid_t pid = daemon.server_pids().at(0);
  std::string environ = read_file("/proc/" + std::to_string(pid) + "/environ");
  size_t at = environ.find("NOTIFY_SOCKET=");
  ASSERT_NE(at, std::string::npos);
  std::string address = environ.substr(at + 14, environ.find('\0', at) - at - 14);
  std::string dir = std::filesystem::path(address).parent_path();
  ASSERT_TRUE(std::filesystem::path(dir).filename().string().starts_with("serverswap-users-"))
      << address;
  struct stat file {
  }, parent{};
  ASSERT_EQ(lstat(address.c_str(), &file), 0) << address;
  ASSERT_EQ(lstat(dir.c_str(), &parent), 0) << dir;
  EXPECT_TRUE(S_ISSOCK(file.st_mode));
  EXPECT_EQ(file.st_uid, 65534u);
  EXPECT_EQ(file.st_mode & 07777, 0600u);
  EXPECT_EQ(parent.st_uid, 0u);
  EXPECT_EQ(parent.st_mode & 07777, 0711u);
  // nobody may not create anything beside it (nor bind a name of its choosing there).
  EXPECT_FALSE(nobody_can({"/usr/bin/touch", dir + "/planted"}));
  Child stop({SERVERSWAP_BIN, "--socket", daemon.socket(), "stop"});
  EXPECT_EQ(stop.wait(30s), 0) << stop.output();
  EXPECT_TRUE(daemon.process().wait(30s).has_value());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(address))) << address;
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(dir))) << dir;
}

// A --user nobody server that learned a starting root server's id says hello with it and
// sends fail: refused; the root server comes up and its deploy succeeds.
TEST_F(PeersAsNobody, AnotherServerCannotSpeakForAServerWhoseIdItLearned) {
  if (!have_python() || !nobody_can({"/usr/bin/python3", "-c", "pass"}))
    GTEST_SKIP() << "nobody cannot run python3";
  std::string dir = shared_dir();
  ASSERT_FALSE(dir.empty());
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--ready-timeout", "20s"});
  // Starting for 4 s: long enough for the impostor to try while it is still starting.
  auto victim = start_deploy_with(daemon, {"--listen", "127.0.0.1:0", "--ready-after", "4s"},
                                  {"/bin/sleep", "60"});
  std::string id;
  ASSERT_TRUE(eventually(
      [&] {
        auto servers = daemon.status()["servers"];
        if (servers.empty()) return false;
        id = servers.at(0)["id"].get<std::string>();
        return true;
      },
      10s));
  write_text(dir + "/id", id);
  std::string impostor =
      "import os, socket, sys, time\n"
      "victim = open(sys.argv[1]).read().strip()\n"
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "s.connect(os.environ['SERVERSWAP_SOCKET'])\n"
      "s.sendall(('{\"hello\":{\"id\":\"%s\",\"protocol\":1}}\\n' % victim).encode())\n"
      "try:\n"
      "    s.sendall(b'{\"fail\":\"an impostor says so\"}\\n')\n"
      "except OSError:\n"
      "    pass  # refused and closed already\n"
      "s.settimeout(5)\n"
      "reply = b''\n"
      "try:\n"
      "    while True:\n"
      "        chunk = s.recv(4096)\n"
      "        if not chunk: break\n"
      "        reply += chunk\n"
      "except OSError:\n"
      "    pass\n"
      "open(sys.argv[2], 'wb').write(reply + b'\\nDONE\\n')\n"
      "time.sleep(60)\n";
  write_text(dir + "/impostor.py", impostor);
  chmod((dir + "/impostor.py").c_str(), 0644);
  chmod((dir + "/id").c_str(), 0644);
  std::string out = dir + "/impostor.out";
  auto attack = start_deploy_with(daemon, {"--user", "nobody", "--ready-after", "200ms"},
                                  {"/usr/bin/python3", dir + "/impostor.py", dir + "/id", out});
  ASSERT_TRUE(eventually([&] { return contains(read_file(out), "DONE"); }, 10s))
      << daemon.process().output();
  EXPECT_TRUE(contains(read_file(out), "this connection is not from a process of that server"))
      << read_file(out);
  // Still starting when the impostor had its answer: the test could have seen the harm.
  bool still_starting = false;
  nlohmann::json status = daemon.status();
  for (const auto& s : status["servers"])
    if (s["id"].get<std::string>() == id) still_starting = s["state"].get<std::string>() != "up";
  EXPECT_TRUE(still_starting) << status.dump();
  EXPECT_EQ(victim->wait(20s), 0) << victim->output() << daemon.process().output();
  EXPECT_FALSE(contains(victim->output(), "impostor")) << victim->output();
  EXPECT_EQ(attack->wait(20s), 0) << attack->output();
}

// The Node.js client's relay runs in a session of its own; under --user the daemon lets it
// in as a process of the server. First run, then two swaps under load on a privileged port.
//
// The deploy's options, in one place (an operator grant for the privileged port, when the
// daemon asks for one, goes here).
// A privileged port is a --user server's only when the operator grants it.
std::vector<std::string> node_deploy_options(const std::string& address) {
  return {"--user", "nobody", "--grant", address};
}

// The Node.js client, its test app and serverswap itself (the server, run as nobody, runs
// `serverswap node-relay` from the daemon's binary) copied to `dir`, every directory 0755 and
// every file readable by all: the checkout may lie under a home nobody cannot enter (CI runs
// as root from a clone). Returns the client's directory in the copy; "" on failure.
std::string public_copy_of_node_client(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path from(NODE_CLIENT_DIR), to = fs::path(dir) / "node";
  fs::create_directories(to / "test" / "servers", error);
  for (const char* part : {"index.js", "package.json", "lib"})
    fs::copy(from / part, to / part, fs::copy_options::recursive, error);
  fs::copy(from / "test" / "servers" / "app.js", to / "test" / "servers" / "app.js", error);
  fs::copy(SERVERSWAP_BIN, fs::path(dir) / "serverswap", error);
  if (error) return "";
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    bool program = entry.is_directory() || entry.path().filename() == "serverswap";
    fs::permissions(entry.path(), program ? fs::perms(0755) : fs::perms(0644), error);
  }
  fs::permissions(dir, fs::perms(0755), error);
  return error ? "" : to.string();
}

TEST_F(PeersAsNobody, NodeClientServesAPrivilegedPortUnderUserNobody) {
  const std::string node = "/usr/bin/node";
  if (access(node.c_str(), X_OK) != 0) GTEST_SKIP() << "node is not installed";
  TempDir copy;
  const std::string client = public_copy_of_node_client(copy.path());
  ASSERT_FALSE(client.empty()) << "copying the Node.js client to " << copy.path();
  const std::string serverswap = copy.path() + "/serverswap";
  const std::string app = client + "/test/servers/app.js";
  // What nobody must be able to do, from the copy: load the client, run the relay's binary.
  ASSERT_TRUE(nobody_can({node, "-e", "require('" + client + "')"}));
  ASSERT_TRUE(nobody_can({serverswap, "--version"}));
  uint16_t port = free_privileged_port(960, 999);
  if (port == 0) GTEST_SKIP() << "no free privileged port in 960-999 on 127.0.0.1";
  const std::string address = "127.0.0.1:" + std::to_string(port);
  DaemonUnderTest daemon({"--takedown-timeout", "5s", "--settle", "200ms"}, serverswap);
  const std::vector<std::string> command = {node, app, "handle", address};
  auto first = deploy_with(daemon, node_deploy_options(address), command);
  ASSERT_EQ(first.code, 0) << first.output << daemon.process().output();
  ASSERT_TRUE(http_ok(port));
  Load load(port, 60s);
  for (int swap = 0; swap < 2; ++swap) {
    auto again = deploy_with(daemon, node_deploy_options(address), command);
    EXPECT_EQ(again.code, 0) << again.output << daemon.process().output();
    EXPECT_TRUE(contains(again.output, "replaced pid")) << again.output;
  }
  load.finish();
  EXPECT_GT(load.ok(), 0);
  EXPECT_EQ(load.failed(), 0) << load.ok() << " requests answered";
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_TRUE(
      contains(read_file("/proc/" + std::to_string(pids[0]) + "/status"), "Uid:\t65534\t65534"));
  EXPECT_TRUE(http_ok(port));
}

}  // namespace
}  // namespace serverswap::testing
