/* serverswap C API: what a server links to take part in zero-downtime restarts.
 *
 * A server started by the serverswap daemon finds SERVERSWAP_SOCKET and SERVERSWAP_ID in its
 * environment. serverswap_open() connects there and says hello; serverswap_ready_for() asks
 * for a resource (":8080", "127.0.0.1:8080", "[::1]:8080", "unix:/path.sock") and returns the
 * listening socket the daemon holds for it, shared with the server it replaces. When the
 * server is serving it calls serverswap_server_up(); when a newer server is up, the daemon
 * takes this one down, by a callback registered with serverswap_on_takedown() or else by a
 * signal. The wire protocol is docs/protocol.md.
 *
 * Without SERVERSWAP_ID (only the daemon sets it, for its servers) the client is
 * "standalone": serverswap_ready_for() binds the resource itself, serverswap_managed() is 0
 * and the calls that talk to the daemon do nothing, so the same program runs unchanged in
 * development, also in a shell that exports SERVERSWAP_SOCKET to pick a daemon for the CLI.
 * A server that has SERVERSWAP_ID but finds no daemon when it starts (SERVERSWAP_SOCKET
 * unset, or its connect() fails with ENOENT or ECONNREFUSED) runs standalone too, after one
 * line on stderr that says so.
 *
 * Inherited sockets: a listening socket that a supervisor left open across exec is used
 * before anything else, managed or standalone, with no round-trip to the daemon. This is how
 * `serverswap --listen ADDR -- COMMAND`, systemd socket activation and Server::Starter's
 * start_server run a server. serverswap_ready_for() looks, in this order, at
 *  - LISTEN_FDS / LISTEN_FDNAMES (fds from 3), only when LISTEN_PID is this process;
 *  - else SERVER_STARTER_PORT ("8080=3;127.0.0.1:8081=4;/run/app.sock=5");
 *  - else EINHORN_FD_COUNT and EINHORN_FD_0, EINHORN_FD_1, ...
 * A socket matches a resource when it listens on the resource's address (for ":8080" any
 * address with port 8080, for "unix:/p" the path /p; checked with getsockname()) or when its
 * LISTEN_FDNAMES name is the resource string (serverswap_ready_for(c, "web", &fd)). The
 * caller gets a new descriptor of it, set non-blocking (a shared flag) like any socket from
 * this library; the inherited descriptor itself stays open and is made close-on-exec, so
 * asking again works. Malformed variables are logged on stderr and ignored. When nothing
 * matches, the resource is asked for (managed) or bound (standalone) as usual; a failed bind
 * then lists what was inherited, the usual cause of "Address already in use".
 *
 * Conventions:
 *  - Functions returning int return 0 on success and -1 on failure; serverswap_error()
 *    then says why, with the resource and errno text ("readyFor :8080: bind :8080: Address
 *    already in use"). The text stays valid until the next call on the same client.
 *  - A serverswap_client is an opaque handle. It is not thread-safe: use each client from
 *    one thread at a time (normally the server's event-loop thread). Distinct clients are
 *    independent.
 *  - Strings passed in are copied; callers keep ownership. Returned file descriptors belong
 *    to the caller, who closes them. All descriptors are close-on-exec.
 *  - Listening sockets are in non-blocking mode (shared O_NONBLOCK, docs/protocol.md §4):
 *    accept() may fail with EAGAIN when another process took the connection; wait for
 *    readability again. Do not make them blocking. Standalone sockets behave the same.
 *  - Every wait has a deadline: serverswap_open() waits at most 10 s for the daemon's
 *    welcome, serverswap_ready_for() at most 60 s for the socket, and sending a message at
 *    most 10 s for the daemon to read it (after which the connection is dropped).
 *  - A server that loses its daemon keeps serving and resumes with the next one when its
 *    loop calls serverswap_dispatch() as serverswap_timeout_ms() asks (see
 *    serverswap_dispatch() below).
 *  - Takedown callbacks run only inside serverswap_dispatch() and serverswap_ready_for()
 *    (for takeDown messages that arrived while it waited), on the calling thread. They may
 *    call serverswap_took_down(), serverswap_server_up() and serverswap_fail(), but not
 *    serverswap_ready_for(), serverswap_dispatch() or serverswap_close().
 *  - No C++ exception ever leaves these functions.
 */
#ifndef SERVERSWAP_SERVERSWAP_H_
#define SERVERSWAP_SERVERSWAP_H_

#include "serverswap/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct serverswap_client serverswap_client;

/* Called with the resource a newer server has taken over: stop accepting on it (close the
 * listening socket), finish what is in flight, and exit when nothing is left to serve. */
typedef void (*serverswap_takedown_fn)(const char* resource, void* user);

/* Flag for serverswap_open_ex: the server promises to call serverswap_server_up() itself
 * (hello's "upMessage": true), so the daemon does not apply its settle rule. */
#define SERVERSWAP_EXPLICIT_UP 1u

/* Connects to the daemon named by SERVERSWAP_SOCKET as SERVERSWAP_ID and waits for its
 * welcome. Standalone (returns 0, serverswap_managed() is 0) when SERVERSWAP_ID is unset or
 * empty, silently, whatever SERVERSWAP_SOCKET says; also when SERVERSWAP_ID is set but no
 * daemon answers (SERVERSWAP_SOCKET unset, or connect() fails with ENOENT or ECONNREFUSED),
 * after one line on stderr ("SERVERSWAP_ID is set but no daemon answers on PATH (No such
 * file or directory); running standalone"). Only this first connection decides: a daemon
 * lost later is reconnected to (see serverswap_dispatch()). Fails (-1) when a daemon is
 * there but the connection or hello does not succeed (EACCES, an error reply, no welcome
 * within 10 s). *out is set even on failure (to NULL only when memory ran out) so that
 * serverswap_error(*out) can say why; close it either way.
 * serverswap_open(out) is serverswap_open_ex(out, 0). */
int serverswap_open(serverswap_client** out);
int serverswap_open_ex(serverswap_client** out, unsigned flags);

/* 1 when connected to a serverswap daemon, 0 when standalone (or the open failed). */
int serverswap_managed(const serverswap_client* client);

/* Asks for the listening socket of `resource` and blocks until it comes (or the daemon's
 * error reply, or the 60 s deadline). On success *fd_out is a new descriptor owned by the
 * caller. An inherited socket that matches (see "Inherited sockets" above) is returned at
 * once, without asking. Standalone: binds the resource itself (SO_REUSEADDR, backlog
 * SOMAXCONN); asking again for the same resource string returns another descriptor of the
 * same socket. */
int serverswap_ready_for(serverswap_client* client, const char* resource, int* fd_out);

/* Registers `cb` (not NULL) for `resource`, replacing an earlier callback, and asks the
 * daemon to send takeDown for it instead of a signal. The callback is registered even when
 * sending the request fails. Standalone: only registers. */
int serverswap_on_takedown(serverswap_client* client, const char* resource,
                           serverswap_takedown_fn cb, void* user);

/* The server is serving on every resource it asked for. Standalone: no-op. */
int serverswap_server_up(serverswap_client* client);

/* The server cannot start; the daemon kills it and keeps the old servers. Standalone: no-op. */
int serverswap_fail(serverswap_client* client, const char* reason);

/* Staggered handover: the server accepts on `resource` now (before serverswap_server_up()),
 * so the daemon takes the older holders down on that resource alone. Standalone: no-op. */
int serverswap_serving(serverswap_client* client, const char* resource);

/* Optional: the server has stopped accepting on `resource`. Standalone: no-op. */
int serverswap_took_down(serverswap_client* client, const char* resource);

/* The control socket, for the server's own event loop: when it is readable, call
 * serverswap_dispatch(). -1 when standalone or while there is no connection (poll() ignores
 * negative descriptors, so it can stay in a pollfd array). It changes when the client
 * reconnects to a restarted daemon: read it again before every poll(). */
int serverswap_fd(const serverswap_client* client);

/* How long the server's poll() may wait before serverswap_dispatch() must run even though
 * serverswap_fd() did not become readable, in milliseconds: -1 for no limit (connected,
 * standalone, or gone for good), 0 for at once. It is not -1 while the client reconnects to
 * a restarted daemon (see "Daemon restarts" below). Take the smaller of this and the
 * server's own timeout. */
int serverswap_timeout_ms(const serverswap_client* client);

/* Reads what the daemon sent without blocking, runs takedown callbacks and, after the daemon
 * went away, makes the reconnect attempt that serverswap_timeout_ms() said was due. Calling
 * it when nothing is due is harmless. Returns 0, also while reconnecting; -1 once the
 * connection is gone for good (the daemon closed it after an error, refused to resume this
 * server, or the server was taken down or called serverswap_fail()): serverswap_fd() and
 * serverswap_timeout_ms() are -1 from then on and the server goes on on its own.
 * Standalone: returns 0.
 *
 * Daemon restarts (docs/protocol.md section 11). When the daemon's connection reaches
 * end-of-file (the daemon was killed, or re-executes itself for an upgrade) the server keeps
 * serving on its sockets. A loop that does
 *
 *     for (;;) {
 *       struct pollfd fds[] = {{serverswap_fd(c), POLLIN, 0}, ...the server's own...};
 *       poll(fds, n, serverswap_timeout_ms(c));      // or the smaller of it and its own
 *       if (fds[0].revents || serverswap_timeout_ms(c) == 0) serverswap_dispatch(c);
 *       ...
 *     }
 *
 * (or simply calls serverswap_dispatch() after every wakeup) reconnects to SERVERSWAP_SOCKET
 * after 100 ms, then at doubling intervals up to 1 s, and says the `resume` hello: it hands
 * back a duplicate of each listening socket serverswap_ready_for() got from the daemon (the
 * library keeps one per resource until the server is taken down on it or calls
 * serverswap_took_down() for it), its serverswap_on_takedown() subscriptions and whether it
 * called serverswap_server_up(). Once the new daemon welcomes it, it is that daemon's server
 * in every respect: takedown callbacks run, serverswap_server_up() etc. reach it. While
 * reconnecting, serverswap_server_up(), serverswap_on_takedown() and serverswap_took_down()
 * succeed (the resume carries their effect) and serverswap_ready_for() fails. Each attempt
 * is one non-blocking connect() and sendmsg(); the welcome is read by later dispatches, so
 * the loop never waits for the daemon. Losing the daemon and resuming are said on stderr. */
int serverswap_dispatch(serverswap_client* client);

/* Why the last failing call on this client failed; "" if none did. Never NULL. */
const char* serverswap_error(const serverswap_client* client);

/* Closes the connection (the daemon sees the server leave) and frees the client. Listening
 * descriptors returned earlier stay open; they belong to the caller. NULL is allowed. */
void serverswap_close(serverswap_client* client);

#ifdef __cplusplus
}
#endif

#endif /* SERVERSWAP_SERVERSWAP_H_ */
