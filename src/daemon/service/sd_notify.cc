#include "daemon/service/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "base/unique_fd.h"

namespace serverswap::daemon {

SdNotify SdNotify::from_environment() {
  const char* address = std::getenv("NOTIFY_SOCKET");
  SdNotify notify(address ? address : "");
  ::unsetenv("NOTIFY_SOCKET");
  return notify;
}

Status SdNotify::send(std::string_view state) const {
  if (!active()) return {};
  std::string what = "sd_notify to " + address_;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (address_.size() > sizeof addr.sun_path || (address_[0] != '/' && address_[0] != '@'))
    return Status::error(what + ": NOTIFY_SOCKET must be an absolute path or @abstract name");
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  if (address_[0] == '@') addr.sun_path[0] = '\0';  // abstract: the length delimits the name
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::system_error(what, errno);
  if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<sockaddr*>(&addr), length) < 0)
    return Status::system_error(what, errno);
  return {};
}

uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000u +
         static_cast<uint64_t>(now.tv_nsec) / 1'000u;
}

}  // namespace serverswap::daemon
