// --listen: the daemon binds each address once and starts the server with the sockets at
// fds 3, 4, ... described in systemd's, Server::Starter's and einhorn's conventions at once.
// Checked against what the reference parsers read: libsystemd's sd_listen_fds_with_names
// (inside listen_probe) and Server::Starter's server_ports (perl). About 3 s.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "unmodified.h"

namespace serverswap::testing {
namespace {

// Server::Starter's own parser of SERVER_STARTER_PORT, as "addr=fd;..." sorted by address.
std::string server_starter_reads(const std::string& value) {
  Child perl({"/usr/bin/perl", "-MServer::Starter=server_ports", "-e",
              "my $p = server_ports(); print join(';', map { \"$_=$p->{$_}\" } sort keys %$p)"},
             {{"SERVER_STARTER_PORT", value}});
  if (perl.wait(10s) != 0) return "perl failed: " + perl.output();
  return perl.output();
}

TEST(Listen, EnvironmentMatchesWhatTheReferenceParsersRead) {
  DaemonUnderTest daemon;
  std::string report = daemon.dir() + "/report";
  std::string unix_path = daemon.dir() + "/app.sock";
  auto first = deploy_with(daemon, {"--listen", "web=127.0.0.1:0", "--listen", "unix:" + unix_path},
                           {LISTEN_PROBE_BIN, report});
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_TRUE(contains(first.output, "sent READY=1 on NOTIFY_SOCKET")) << first.output;
  auto pids = daemon.server_pids();
  ASSERT_EQ(pids.size(), 1u);
  std::string text = read_file(report + "." + std::to_string(pids[0]));
  std::string tcp = daemon.address_of("127.0.0.1:0");
  std::string unix_name = "unix:" + unix_path;
  for (char& c : unix_name)
    if (c == ':' || c == '/') c = '_';

  // sd_listen_fds_with_names accepted LISTEN_PID (the shim made it the probe's own pid).
  EXPECT_TRUE(contains(text, "listen_fds 2\n")) << text;
  EXPECT_TRUE(contains(text, "fd 3 name web address " + tcp + " nonblock 1 listening 1\n")) << text;
  EXPECT_TRUE(contains(
      text, "fd 4 name " + unix_name + " address unix:" + unix_path + " nonblock 1 listening 1\n"))
      << text;
  std::string starter = report_env(text, "SERVER_STARTER_PORT");
  EXPECT_EQ(starter, tcp + "=3;" + unix_path + "=4");
  if (std::filesystem::exists("/usr/share/perl5/Server/Starter.pm")) {
    EXPECT_EQ(server_starter_reads(starter), unix_path + "=4;" + tcp + "=3");
  }
  EXPECT_EQ(report_env(text, "EINHORN_FD_COUNT"), "2");
  EXPECT_EQ(report_env(text, "EINHORN_FD_0"), "3");
  EXPECT_EQ(report_env(text, "EINHORN_FD_1"), "4");
  // A path in the daemon's own directory beside its socket (not an abstract name: anyone
  // could bind one of those while the daemon is down).
  EXPECT_TRUE(report_env(text, "NOTIFY_SOCKET").starts_with(daemon.socket() + ".notify/")) << text;
}

TEST(Listen, SameCommandAgainSwapsOnTheRememberedSocketsAndSignal) {
  DaemonUnderTest daemon;
  std::string report = daemon.dir() + "/report";
  const std::vector<std::string> probe = {LISTEN_PROBE_BIN, report};
  auto first =
      // --confirm 100ms (remembered too): READY=1's default window would add 5 s.
      deploy_with(daemon,
                  {"--listen", "127.0.0.1:0", "--takedown-signal", "SIGUSR1", "--confirm", "100ms"},
                  probe);
  ASSERT_EQ(first.code, 0) << first.output;
  pid_t old_pid = daemon.server_pids().at(0);
  std::string tcp = daemon.address_of("127.0.0.1:0");

  auto again = deploy_with(daemon, {}, probe);  // no --listen: the remembered set
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "replaced pid " + std::to_string(old_pid))) << again.output;
  pid_t new_pid = daemon.server_pids().at(0);
  EXPECT_TRUE(contains(read_file(report + "." + std::to_string(new_pid)),
                       "fd 3 name 127.0.0.1_0 address " + tcp + " "));
  // The command's own takedown signal, not the daemon's SIGTERM.
  EXPECT_EQ(read_file(report + "." + std::to_string(old_pid) + ".signal"), "SIGUSR1\n");
}

TEST(Listen, BadAddressIsAUsageErrorAndABusyOneFailsTheDeploy) {
  DaemonUnderTest daemon;
  auto bad = deploy_with(daemon, {"--listen", "web=nohost:80"}, {"/bin/true"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--listen web=nohost:80")) << bad.output;

  // Someone else listens on the address: the deploy fails, naming it and errno's text.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string busy = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto taken = deploy_with(daemon, {"--listen", busy}, {"/bin/true"});
  ::close(fd);
  EXPECT_EQ(taken.code, 1) << taken.output;
  EXPECT_TRUE(contains(taken.output, busy)) << taken.output;
  EXPECT_TRUE(contains(taken.output, "Address already in use")) << taken.output;
}

}  // namespace
}  // namespace serverswap::testing
