/* systemd_probe: what libsystemd, the reference reader of systemd's socket-activation
 * contract, finds in this process. Writes REPORT.<pid>:
 *   pid <pid>
 *   fd <n> name <name> address <getsockname> listening <0|1>     (one per fd)
 * then, under a daemon (NOTIFY_SOCKET set), says READY=1 and waits to be taken down.
 *   systemd_probe REPORT [IGNORED...] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static void address_of(int fd, char* out, size_t size) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  char host[INET6_ADDRSTRLEN] = "";
  memset(&addr, 0, sizeof addr);
  snprintf(out, size, "?");
  if (getsockname(fd, (struct sockaddr*)&addr, &len) != 0) return;
  if (addr.ss_family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)&addr;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(out, size, "%s:%u", host, (unsigned)ntohs(a->sin_port));
  } else if (addr.ss_family == AF_INET6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&addr;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    snprintf(out, size, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
  } else if (addr.ss_family == AF_UNIX) {
    snprintf(out, size, "unix:%s", ((struct sockaddr_un*)&addr)->sun_path);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: systemd_probe REPORT\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s.%d", argv[1], (int)getpid());
  FILE* report = fopen(path, "w");
  if (report == NULL) {
    perror(path);
    return 1;
  }
  char** names = NULL;
  /* 0: keep LISTEN_* so that what the clients read can be compared in the same process. */
  int n = sd_listen_fds_with_names(0, &names);
  fprintf(report, "pid %d\n", (int)getpid());
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    char address[256];
    address_of(fd, address, sizeof address);
    fprintf(report, "fd %d name %s address %s listening %d\n", fd, names[i], address,
            sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0);
    free(names[i]);
  }
  free(names);
  if (n < 0) fprintf(report, "error %s\n", strerror(-n));
  fclose(report);
  if (getenv("NOTIFY_SOCKET") == NULL) return 0;
  sd_notify(0, "READY=1");
  for (;;) pause(); /* SIGTERM's default action ends it */
}
