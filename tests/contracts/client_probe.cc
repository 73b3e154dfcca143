// client_probe: what the C/C++ client reads from the inherited-socket environment, in the
// format of systemd_probe. Writes REPORT.<pid>:
//   pid <pid>
//   convention <LISTEN_FDS|SERVER_STARTER_PORT|EINHORN_FD_COUNT|->
//   fd <n> name <name|-> address <getsockname> listening <0|1>
//   match <resource> <fd|->                                      (one per RESOURCE)
// Under a daemon (SERVERSWAP_SOCKET set) it then takes the first RESOURCE through the public
// API (readyFor answered from the inherited socket), says serverUp and waits for SIGTERM.
//   client_probe REPORT [RESOURCE...]
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <string>

#include "client/inherited_sockets.h"
#include "handover/listen_socket.h"
#include "serverswap/serverswap.h"

namespace {

using serverswap::client::InheritedSockets;

int listening(int fd) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting == 1;
}

void write_report(std::ostream& out, int argc, char** argv) {
  InheritedSockets inherited = InheritedSockets::from_environment();
  const auto& set = inherited.set();
  out << "pid " << ::getpid() << "\n";
  out << "convention " << (set.convention.empty() ? "-" : set.convention) << "\n";
  for (const auto& s : set.sockets)
    out << "fd " << s.fd << " name " << (s.name.empty() ? "-" : s.name) << " address "
        << serverswap::handover::bound_address(s.fd) << " listening " << listening(s.fd) << "\n";
  for (int i = 2; i < argc; ++i) {
    auto found = inherited.find(argv[i]);
    out << "match " << argv[i] << " ";
    if (!found.ok())
      out << "error\n";
    else if (!*found)
      out << "-\n";
    else
      out << (*found)->fd << "\n";
  }
}

// The public API's path under a daemon: no readyFor for an inherited resource, then up.
int serve(const char* resource) {
  serverswap_client* client = nullptr;
  int fd = -1;
  if (serverswap_open_ex(&client, SERVERSWAP_EXPLICIT_UP) != 0 ||
      serverswap_ready_for(client, resource, &fd) != 0 || serverswap_server_up(client) != 0) {
    std::fprintf(stderr, "client_probe: %s\n", serverswap_error(client));
    serverswap_close(client);
    return 1;
  }
  for (;;) ::pause();  // SIGTERM's default action ends it
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: client_probe REPORT [RESOURCE...]\n");
    return 2;
  }
  {
    std::ofstream out(std::string(argv[1]) + "." + std::to_string(::getpid()));
    write_report(out, argc, argv);
  }
  if (std::getenv("SERVERSWAP_SOCKET") == nullptr || argc < 3) return 0;
  return serve(argv[2]);
}
