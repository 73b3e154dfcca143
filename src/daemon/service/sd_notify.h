// SdNotify: the daemon's own side of systemd's readiness protocol (sd_notify(3)), for
// `serverswap daemon` run as a Type=notify service. Written by hand rather than linking
// libsystemd: the protocol is one datagram of "KEY=VALUE" lines to the socket named in
// NOTIFY_SOCKET, and servers and containers without systemd should not need the library
// (docs/architecture.md). Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace serverswap::daemon {

class SdNotify {
 public:
  // From NOTIFY_SOCKET ("/run/systemd/notify", or "@name" in the abstract namespace), which
  // is then removed from the environment so that no child inherits the daemon's channel.
  // Inactive when it is unset.
  static SdNotify from_environment();
  explicit SdNotify(std::string address = "") : address_(std::move(address)) {}

  bool active() const { return !address_.empty(); }
  // Sends one datagram: "READY=1", "STOPPING=1", "RELOADING=1\nMONOTONIC_USEC=..." ...
  // A no-op when inactive.
  Status send(std::string_view state) const;

 private:
  std::string address_;
};

// CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC= wants it.
uint64_t monotonic_usec();

}  // namespace serverswap::daemon
