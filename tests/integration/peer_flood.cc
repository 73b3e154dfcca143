// A hostile local peer for the quota tests (quota_test.cc), run as another user:
//   peer_flood connections N     opens N connections to $SERVERSWAP_SOCKET and holds them;
//                                prints "flood: N connections, R refused: <first refusal>"
//   peer_flood fds N             opens N connections to $SERVERSWAP_SOCKET, sends 64 fds on
//                                each without finishing a line, and holds them; prints
//                                "flood: N connections sent 64 fds, R told: <first reply>"
//   peer_flood notify ADDR N     sends N datagrams "READY=1" to ADDR, a NOTIFY_SOCKET value
//                                (a path, or "@name" for an abstract name);
//                                prints "flood: sent N notifications"
//   peer_flood bind PATH         binds a datagram socket at PATH; exit 0 when it could
//   peer_flood status N          as a server: sends N datagrams "STATUS=flood <i> ..." (with
//                                a line separator, a C1 control and bytes that are not
//                                UTF-8) then READY=1 to $NOTIFY_SOCKET, and waits for a signal
//   peer_flood churn PATH S      two processes connect() to PATH and close() at once, as fast
//                                as they can, for S seconds; prints "churn: started" and
//                                at the end "churn: N connects"
// Everything it waits for is bounded; it exits by itself after a minute at the latest.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int connect_to(const char* path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// sendmsg of "{" (no line ends) with 64 descriptors of /dev/null.
bool send_fds(int fd) {
  constexpr size_t kCount = 64;
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<int> fds(kCount, null_fd);
  std::vector<char> control(CMSG_SPACE(kCount * sizeof(int)));
  char byte = '{';
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(kCount * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds.data(), kCount * sizeof(int));
  bool sent = sendmsg(fd, &msg, MSG_NOSIGNAL) == 1;
  close(null_fd);
  return sent;
}

// Connections are accepted and answered in order: once the last one is refused, every
// earlier refusal is in its socket already.
int flood_connections(int count, bool with_fds) {
  const char* path = std::getenv("SERVERSWAP_SOCKET");
  if (!path) return std::fprintf(stderr, "flood: no SERVERSWAP_SOCKET\n"), 2;
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = connect_to(path);
    if (fd < 0) return std::perror("flood: connect"), 2;
    if (with_fds && !send_fds(fd)) return std::perror("flood: sendmsg"), 2;
    fds.push_back(fd);
  }
  pollfd last{fds.back(), POLLIN, 0};
  if (poll(&last, 1, 10'000) != 1) return std::fprintf(stderr, "flood: last not refused\n"), 2;
  int refused = 0;
  std::string first;
  for (int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) != 1) continue;
    ++refused;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (first.empty() && n > 0) first.assign(buf, static_cast<size_t>(n));
  }
  if (!first.empty() && first.back() == '\n') first.pop_back();
  if (with_fds)
    std::printf("flood: %d connections sent 64 fds, %d told: %s\n", count, refused, first.c_str());
  else
    std::printf("flood: %d connections, %d refused: %s\n", count, refused, first.c_str());
  std::fflush(stdout);
  pause();  // holds the accepted ones until killed (the server's takedown, or the alarm)
  return 0;
}

sockaddr_un address_of(const std::string& address, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, address.c_str(), sizeof addr.sun_path - 1);
  if (address.starts_with("@")) addr.sun_path[0] = '\0';
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                std::min(address.size(), sizeof addr.sun_path - 1));
  return addr;
}

int flood_notify(const std::string& address, int count) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  socklen_t len = 0;
  sockaddr_un addr = address_of(address, &len);
  // Blocking sends: a full queue makes this wait for the daemon rather than lose datagrams.
  for (int i = 0; i < count; ++i)
    if (sendto(fd, "READY=1\n", 8, 0, reinterpret_cast<sockaddr*>(&addr), len) != 8)
      return std::perror("flood: sendto"), 2;
  std::printf("flood: sent %d notifications\n", count);
  return 0;
}

int flood_status(int count) {
  const char* address = std::getenv("NOTIFY_SOCKET");
  if (!address) return std::fprintf(stderr, "flood: no NOTIFY_SOCKET\n"), 2;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  socklen_t len = 0;
  sockaddr_un addr = address_of(address, &len);
  for (int i = 0; i <= count; ++i) {
    std::string text = i < count ? "STATUS=flood " + std::to_string(i) +
                                       " \xe2\x80\xa8"
                                       "forged \xc2\x85 \x85\xff"
                                 : std::string("READY=1");
    if (sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&addr), len) !=
        static_cast<ssize_t>(text.size()))
      return std::perror("flood: sendto"), 2;
  }
  pause();  // a server until its takedown signal
  return 0;
}

int bind_at(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  socklen_t len = 0;
  sockaddr_un addr = address_of(path, &len);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) return std::perror("bind"), 2;
  std::printf("bound %s\n", path.c_str());
  return 0;
}

// Non-blocking connects: a paused listener with a full backlog makes connect() fail with
// EAGAIN instead of waiting, so the loop keeps knocking.
long churn_for(const std::string& path, double seconds) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long connects = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 64; ++i) {
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) return connects;
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) ++connects;
      close(fd);
    }
  }
  return connects;
}

int churn(const std::string& path, double seconds) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return std::perror("churn: pipe"), 2;
  pid_t child = fork();
  if (child < 0) return std::perror("churn: fork"), 2;
  std::printf("churn: started\n");
  std::fflush(stdout);
  long connects = churn_for(path, seconds);
  if (child == 0) {
    (void)!write(pipe_fds[1], &connects, sizeof connects);
    _exit(0);
  }
  long other = 0;
  (void)!read(pipe_fds[0], &other, sizeof other);
  waitpid(child, nullptr, 0);
  std::printf("churn: %ld connects\n", connects + other);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(60);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "connections" && argc == 3) return flood_connections(std::atoi(argv[2]), false);
  if (mode == "fds" && argc == 3) return flood_connections(std::atoi(argv[2]), true);
  if (mode == "notify" && argc == 4) return flood_notify(argv[2], std::atoi(argv[3]));
  if (mode == "bind" && argc == 3) return bind_at(argv[2]);
  if (mode == "status" && argc == 3) return flood_status(std::atoi(argv[2]));
  if (mode == "churn" && argc == 4) return churn(argv[2], std::atof(argv[3]));
  std::fprintf(stderr,
               "usage: peer_flood connections N | fds N | notify ADDR N | bind PATH | status N | "
               "churn PATH S\n");
  return 2;
}
