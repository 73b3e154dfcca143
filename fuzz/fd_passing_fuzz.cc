// Fuzz target: recv_with_fd against a peer that sends any number of descriptors (0 to the
// kernel's 253) with any data, in one or two SCM_RIGHTS headers, read into a buffer of any
// size. Property: at most one fd comes out, and every other fd the peer sent is closed
// (the process's fd count is back where it was).
//
// Input: byte 0 the fd count, byte 1 the receive buffer size and the header split; the
// rest is the data (at least one byte, as a sendmsg with descriptors needs).
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "handover/fd_passing.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

int open_fd_count() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  check(dir != nullptr);
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count;
}

// sendmsg of `data` with `fds` attached, split over two SCM_RIGHTS headers when `split`.
void send_fds(int sock, const uint8_t* data, size_t size, const std::vector<int>& fds, bool split) {
  iovec iov{const_cast<uint8_t*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  size_t first = split ? fds.size() / 2 : fds.size();
  std::vector<char> control(CMSG_SPACE(first * sizeof(int)) +
                            CMSG_SPACE((fds.size() - first) * sizeof(int)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(first * sizeof(int));
    if (first < fds.size()) msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    size_t done = 0;
    for (size_t count : {first, fds.size() - first}) {
      if (count == 0) continue;
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(count * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data() + done, count * sizeof(int));
      done += count;
      c = CMSG_NXTHDR(&msg, c);
    }
  }
  check(sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  size_t fd_count = data[0] % 254;
  size_t buffer_size = data[1] % 64 + 1;
  bool split = data[1] & 0x80;
  data += 2;
  size -= 2;
  if (size > 4096) size = 4096;  // one datagram-sized write into the socket buffer
  int before = open_fd_count();
  int pair[2];
  check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  {
    std::vector<int> fds;
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    check(null_fd >= 0);
    fds.assign(fd_count, null_fd);
    send_fds(pair[0], data, size, fds, split && fd_count > 1);
    close(null_fd);
  }
  std::vector<char> buffer(buffer_size);
  size_t received_bytes = 0;
  while (received_bytes < size) {
    auto received = serverswap::handover::recv_with_fd(pair[1], buffer.data(), buffer.size());
    if (!received.ok()) break;  // MSG_CTRUNC or more than one fd: reported, fds closed
    check(received->bytes > 0);
    // The descriptors ride on the first byte only.
    check(!received->fd || received_bytes == 0);
    received_bytes += received->bytes;
  }
  close(pair[0]);
  close(pair[1]);
  check(open_fd_count() == before);
  return 0;
}
