// resume_probe: the resume contract's server for the C/C++ client (contract_test.cc,
// "Resume"); resume_probe.py and resume_probe.js do the same with the Python and Node.js
// clients. It takes RESOURCE_A and RESOURCE_B by readyFor (in that order), subscribes to
// takeDown on RESOURCE_A only and appends to REPORT.<pid> (below). UP: 1, the hello promises
// serverUp (upMessage) and it is said; 0, promised but never said (the server stays
// starting); auto, not promised (the daemon counts the server up once it holds its sockets
// and stays alive for --settle; a Node.js server says serverUp by itself once listening).
//   ready <address of A's socket> <address of B's socket>
//   takeDown <resource>          (then tookDown, and it exits 0)
// SIGTERM is ignored: the daemon sends it after takeDown A, as B has no subscription, and
// the probe must live to report the takeDown (a SIGKILL after --takedown-timeout remains).
// Meanwhile the daemon may die and another take it back: the client library resumes.
//   resume_probe REPORT RESOURCE_A RESOURCE_B UP
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "handover/listen_socket.h"
#include "serverswap/serverswap.h"

namespace {

std::string report_path;
bool taken_down = false;

void report(const std::string& line) {
  std::ofstream out(report_path, std::ios::app);
  out << line << "\n";
}

void on_takedown(const char* resource, void*) {
  report(std::string("takeDown ") + resource);
  taken_down = true;
}

int fail(serverswap_client* client, const char* what) {
  std::fprintf(stderr, "resume_probe: %s: %s\n", what, serverswap_error(client));
  serverswap_close(client);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: resume_probe REPORT RESOURCE_A RESOURCE_B UP\n");
    return 2;
  }
  ::signal(SIGTERM, SIG_IGN);
  report_path = std::string(argv[1]) + "." + std::to_string(::getpid());
  serverswap_client* client = nullptr;
  int a = -1, b = -1;
  const std::string up = argv[4];
  if (serverswap_open_ex(&client, up == "auto" ? 0u : SERVERSWAP_EXPLICIT_UP) != 0)
    return fail(client, "open");
  if (serverswap_ready_for(client, argv[2], &a) != 0) return fail(client, "readyFor A");
  if (serverswap_ready_for(client, argv[3], &b) != 0) return fail(client, "readyFor B");
  if (serverswap_on_takedown(client, argv[2], on_takedown, nullptr) != 0)
    return fail(client, "onTakedown");
  if (up == "1" && serverswap_server_up(client) != 0) return fail(client, "serverUp");
  report("ready " + serverswap::handover::bound_address(a) + " " +
         serverswap::handover::bound_address(b));
  while (!taken_down) {
    pollfd p{serverswap_fd(client), POLLIN, 0};
    if (::poll(&p, 1, serverswap_timeout_ms(client)) < 0) continue;
    if (serverswap_dispatch(client) != 0) {
      report(std::string("gone ") + serverswap_error(client));
      for (;;) ::pause();  // serving on without a daemon until killed
    }
  }
  serverswap_took_down(client, argv[2]);
  serverswap_close(client);
  return 0;
}
