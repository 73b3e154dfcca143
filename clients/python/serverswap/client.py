"""The serverswap client: one connection to the daemon, shared by every thread.

A Client says `hello` when it is created, then a background reader thread receives the
daemon's messages: `resourceReady` replies (matched to `ready_for` calls by resource
name), `error` replies (raised from the call they answer) and `takeDown` (dispatched to
the `on_takedown` callbacks, each on a thread of its own). All methods are thread-safe.

Without SERVERSWAP_ID in the environment (only the daemon sets it, for its servers) the
client is *standalone*: `ready_for` binds the resource itself and the other calls do
nothing, so the same code runs in development, also in a shell that exports
SERVERSWAP_SOCKET to pick a daemon for the CLI. With SERVERSWAP_ID but no daemon answering
when the client is created (SERVERSWAP_SOCKET unset, or its connect fails with ENOENT or
ECONNREFUSED) it is standalone too, after one line on stderr that says so.

When the daemon goes away (its connection reaches end-of-file: it was killed, or
re-executes itself), the server goes on serving and the reader thread reconnects to
SERVERSWAP_SOCKET after 100 ms, then at doubling intervals up to 1 s, and says the
`resume` hello of docs/protocol.md §11: a duplicate of each listening socket it got by
ready_for (kept for this, closed when the server is taken down on that resource), its
on_takedown subscriptions and whether it is up. Meanwhile server_up, on_takedown and
took_down succeed (the resume carries their effect) and ready_for raises. It does not
reconnect after the daemon closed the connection with an `error`, after fail(), or once
the server was taken down on every resource; an `error` answering the resume ends the
reconnecting for good (said on stderr) and the server goes on without a daemon. These are
the rules of the client core the C/C++ client and the Node.js relay share
(src/client/resume_memory.h); tests/contracts checks that the three resume alike.

Either way, a listening socket inherited at exec that matches the resource (LISTEN_FDS,
SERVER_STARTER_PORT, EINHORN_FD_n: see inherited.py) is used first, with no round-trip:
that is how `serverswap --listen`, systemd and Server::Starter run a server.
"""
import array
import collections
import concurrent.futures
import json
import os
import socket
import struct
import sys
import threading

from . import inherited, resources

PROTOCOL = 1
MAX_LINE = 65536           # bytes, including the "\n" (docs/protocol.md §8)
FD_SLOTS = 16              # ancillary space: more than the 1 fd a message may carry, so
                           # that an excess is seen (and closed) rather than truncated
HELLO_TIMEOUT = 10.0       # seconds to wait for `welcome`
FIRST_RETRY = 0.1          # seconds before the first reconnect after the daemon went away
MAX_RETRY = 1.0            # the interval doubles up to this
MAX_RESUME_FDS = 64        # descriptors in one resume hello (docs/protocol.md §11)


class ServerswapError(Exception):
    """The daemon connection failed or the daemon broke the protocol."""


class RequestError(ServerswapError):
    """The daemon answered a request with {"error": text, "request": {...}}."""

    def __init__(self, text, request=None):
        super().__init__(text)
        self.text = text
        self.request = request


def _log(text):
    sys.stderr.write("serverswap pid %d: %s\n" % (os.getpid(), text))
    sys.stderr.flush()


def _check_daemon_peer(sock, path):
    """Raises ServerswapError unless the socket `sock` (connected to `path`) was listened on
    by root or by this process's uid: a daemon runs as one or the other. Anyone else may have
    bound a socket where the daemon's was while it was down, and must not be sent this
    server's id and listening sockets (SO_PEERCRED: the listener's credentials)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    if uid in (0, os.geteuid()):
        return
    raise ServerswapError(
        "connect %s: it is served by uid %d (pid %d), neither root nor this process's uid %d, "
        "so it is not the daemon; nothing is sent to it" % (path, uid, pid, os.geteuid()))


def _warn_standalone(why):
    """The one line a server run by serverswap but finding no daemon says (protocol.md §1)."""
    _log("SERVERSWAP_ID is set but %s; running standalone" % why)


def _close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _decode(line):
    """The message as (name, value, whole object), or None for a malformed line."""
    try:
        message = json.loads(line.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(message, dict) or not message:
        return None
    name = next(iter(message))
    return name, message[name], message


def _is_resource_ready(line):
    decoded = _decode(line)
    return decoded is not None and decoded[0] == "resourceReady"


class LineFramer:
    """Splits a byte stream into lines and gives each line the fds that came with it.

    Descriptors come with the recvmsg() that read the start of the line carrying them,
    but one read may also hold earlier lines (the kernel joins data sent without fds
    to the next message that has some). Like the C++ client, the fds of a read go to
    the first line that starts within that read's bytes and may carry fds (v1: a
    resourceReady); fds of a read in which no such line starts are closed at once.
    """

    def __init__(self, max_line=MAX_LINE, carries_fds=_is_resource_ready):
        self._buffer = bytearray()
        self._groups = []        # [fds, first byte offset, end offset] of each read with fds
        self._received = 0       # stream offset of the end of the buffer
        self._line_start = 0     # stream offset of the start of the buffer
        self._max_line = max_line
        self._carries_fds = carries_fds

    def feed(self, data, fds=()):
        """Returns [(line_bytes, fds)] for every complete line; raises ServerswapError."""
        begin = self._received
        self._received += len(data)
        if fds:
            self._groups.append([list(fds), begin, self._received])
        self._buffer += data
        lines = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            if end + 1 > self._max_line:
                self.close()
                raise ServerswapError("line longer than %d bytes" % self._max_line)
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            start = self._line_start
            self._line_start += end + 1
            lines.append((line, self._take_fds(line, start)))
        while self._groups and self._groups[0][2] <= self._line_start:
            _close_fds(self._groups.pop(0)[0])  # no line that may carry them starts there
        if len(self._buffer) >= self._max_line:
            self.close()
            raise ServerswapError("line longer than %d bytes" % self._max_line)
        return lines

    def _take_fds(self, line, start):
        if not line.strip() or not self._carries_fds(line):
            return []
        for group in self._groups:
            if group[0] and group[1] <= start < group[2]:
                fds, group[0] = group[0], []
                return fds
        return []

    def close(self):
        for group in self._groups:
            _close_fds(group[0])
        self._groups = []
        self._buffer.clear()


def receive(sock, framer):
    """One recvmsg(); returns the complete lines with their fds, or None at end of stream.

    MSG_CTRUNC (descriptors lost) is an error: whatever did arrive is closed.
    """
    fd_size = array.array("i").itemsize
    data, ancillary, flags, _ = sock.recvmsg(
        MAX_LINE, socket.CMSG_SPACE(FD_SLOTS * fd_size), socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fd_size])
    if flags & socket.MSG_CTRUNC:
        _close_fds(fds)
        raise ServerswapError("recvmsg: ancillary data truncated (MSG_CTRUNC)")
    if not data:
        _close_fds(fds)
        return None
    return framer.feed(data, list(fds))


class Client:
    """A connection to the serverswap daemon (or a standalone stand-in).

    Client()                       from SERVERSWAP_ID / SERVERSWAP_SOCKET, else standalone
    Client(up_message=True)        promise to call server_up() (no 1 s settle wait)
    Client(socket_path=..., server_id=...)   explicit: connects or raises

    From the environment: standalone, silently, without SERVERSWAP_ID (whatever
    SERVERSWAP_SOCKET says); standalone after one line on stderr when SERVERSWAP_ID is set
    but SERVERSWAP_SOCKET is not, or connecting to it fails with ENOENT or ECONNREFUSED.
    Only this first connection decides: a daemon lost later is reconnected to. Any other
    failure (EACCES, an error reply to hello, no welcome in time) raises ServerswapError.
    """

    def __init__(self, socket_path=None, server_id=None, up_message=False,
                 hello_timeout=HELLO_TIMEOUT):
        from_environment = socket_path is None
        if from_environment and (server_id or os.environ.get("SERVERSWAP_ID")):
            # SERVERSWAP_ID, which only the daemon sets, says "run by serverswap";
            # SERVERSWAP_SOCKET alone is an operator's choice of daemon for the CLI.
            socket_path = os.environ.get("SERVERSWAP_SOCKET") or None
            if socket_path is None:
                _warn_standalone("SERVERSWAP_SOCKET is not")
        if server_id is None:
            server_id = os.environ.get("SERVERSWAP_ID", "")
        self.standalone = socket_path is None
        self.up_message = up_message
        self.welcome = None
        self._lock = threading.Lock()          # guards everything below and sends
        self._waiters = collections.defaultdict(collections.deque)  # resource -> Futures
        self._callbacks = collections.defaultdict(list)             # resource -> [fn]
        self._sockets = {}                     # standalone: resource -> socket
        self._addresses = {}                   # resource -> address actually bound
        self._resource_of_fd = {}              # fileno -> resource, for drain()
        self._inherited = None                 # (convention, [Inherited]), read on first use
        self._closed_reason = None
        self._sock = None
        self._reader = None
        # For a resume after a daemon restart (docs/protocol.md §11):
        self._socket_path = socket_path
        self._server_id = server_id
        self._hello_timeout = hello_timeout
        self._holding = []                     # [resource, dup fd] in the order received
        self._subscribed = []                  # onTakedown resources, in order
        self._up = False                       # server_up() was called
        self._failed = False                   # fail() was called
        self._taken_down = False               # a takeDown came, or took_down() was said
        self._last_line_error = False          # the daemon's last line was an error
        self._reconnecting = False
        self._stop = threading.Event()         # close(): no more reconnect attempts
        if not self.standalone:
            self.standalone = not self._connect(socket_path, server_id, hello_timeout,
                                                may_run_standalone=from_environment)

    # ---- connection ---------------------------------------------------------------

    def _connect(self, path, server_id, timeout, may_run_standalone=False):
        """Connects and says hello: True once welcomed; False when no daemon answers and
        `may_run_standalone` (said on stderr); raises ServerswapError otherwise."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if not may_run_standalone:
                    raise
                # No daemon at all (never started, or gone before this server came up):
                # serve on our own rather than not at all.
                sock.close()
                _warn_standalone("no daemon answers on %s (%s)" % (path, e.strerror or e))
                return False
            _check_daemon_peer(sock, path)
            hello = {"id": server_id, "pid": os.getpid(), "protocol": PROTOCOL}
            if self.up_message:
                hello["upMessage"] = True
            sock.sendall(self._encode({"hello": hello}))
            framer = LineFramer()
            backlog = self._await_welcome(sock, framer)
            sock.settimeout(None)
        except socket.timeout:
            sock.close()
            raise ServerswapError("no welcome from the daemon at %s within %gs" % (path, timeout))
        except OSError as e:
            sock.close()
            raise ServerswapError("connect %s: %s" % (path, e.strerror or e)) from e
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        for line, fds in backlog:
            self._handle(line, fds)
        self._reader = threading.Thread(target=self._read_loop, args=(framer,),
                                        name="serverswap-reader", daemon=True)
        self._reader.start()
        return True

    def _await_welcome(self, sock, framer):
        while True:
            lines = receive(sock, framer)
            if lines is None:
                raise ServerswapError("the daemon closed the connection before welcome")
            for i, (line, fds) in enumerate(lines):
                decoded = _decode(line)
                if decoded is None:
                    _close_fds(fds)
                    continue
                name, value, _ = decoded
                if name == "welcome":
                    _close_fds(fds)
                    self.welcome = value
                    return lines[i + 1:]
                _close_fds(fds)
                if name == "error":
                    raise RequestError(str(value), decoded[2].get("request"))

    @staticmethod
    def _encode(message):
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
        if len(data) > MAX_LINE:
            raise ValueError("message longer than %d bytes" % MAX_LINE)
        return data

    def _send(self, message):
        data = self._encode(message)
        with self._lock:
            if self._closed_reason is not None:
                raise ServerswapError(self._closed_reason)
            if self._reconnecting:
                return  # the resume hello carries what this message says
            try:
                self._sock.sendall(data)
            except OSError as e:
                raise ServerswapError("send to the daemon: %s" % (e.strerror or e)) from e

    def _read_loop(self, framer):
        while framer is not None:
            reason, went_away = self._read_until_lost(framer)
            if not went_away or not self._may_resume():
                self._connection_lost(reason)
                return
            _log("lost the daemon (%s); serving on and reconnecting to %s"
                 % (reason, self._socket_path))
            self._lost_for_now(reason)
            framer = self._resume()

    def _read_until_lost(self, framer):
        """Reads and handles lines until the connection ends; returns why it did, and
        whether the daemon went away (end-of-file, a reset) rather than broke the protocol."""
        reason = "the daemon closed the connection"
        went_away = True
        sock = self._sock
        try:
            while True:
                lines = receive(sock, framer)
                if lines is None:
                    break
                for line, fds in lines:
                    self._handle(line, fds)
        except ServerswapError as e:
            reason, went_away = str(e), False
        except OSError as e:
            reason = "receive from the daemon: %s" % (e.strerror or e)
            went_away = isinstance(e, ConnectionResetError)
        framer.close()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # the daemon sees us go
        except OSError:
            pass
        return reason, went_away

    # ---- resume after a daemon restart (docs/protocol.md §11) -------------------------

    def _may_resume(self):
        with self._lock:
            if self._closed_reason is not None or self._failed or self._last_line_error:
                return False
            return not (self._taken_down and not self._holding)

    def _lost_for_now(self, reason):
        """The connection is gone until a resume: requests waiting for a reply fail."""
        with self._lock:
            self._reconnecting = True
            old, self._sock = self._sock, None
            waiters = [f for queue in self._waiters.values() for f in queue]
            self._waiters.clear()
        if old is not None:
            old.close()
        for future in waiters:
            if future.set_running_or_notify_cancel():
                future.set_exception(ServerswapError(reason))

    def _resume_hello(self):
        hello = {"id": self._server_id, "pid": os.getpid(), "protocol": PROTOCOL}
        if self.up_message:
            hello["upMessage"] = True
        hello["resume"] = {
            "holding": [resource for resource, _ in self._holding],
            "onTakedown": list(self._subscribed),
            "up": self._up or (not self.up_message and bool(self._holding)),
        }
        return {"hello": hello}

    def _resume(self):
        """Reconnects until welcomed (returns the new framer) or told no (returns None)."""
        delay = FIRST_RETRY
        while not self._stop.wait(delay):
            if not self._may_resume():  # fail(), or taken down on every resource, meanwhile
                self._connection_lost("the daemon went away and this server is done")
                return None
            delay = min(delay * 2, MAX_RETRY)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._hello_timeout)
                sock.connect(self._socket_path)
                _check_daemon_peer(sock, self._socket_path)
                with self._lock:
                    hello = self._resume_hello()
                    fds = [fd for _, fd in self._holding]
                data = self._encode(hello)
                sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                              array.array("i", fds))] if fds else [])
                if sent < len(data):  # the descriptors went with the first byte
                    sock.sendall(data[sent:])
                framer = LineFramer()
                backlog = self._await_welcome(sock, framer)
                sock.settimeout(None)
            except RequestError as e:
                sock.close()
                self._give_up("the daemon refused to resume this server: %s" % e.text)
                return None
            except (OSError, ServerswapError):
                sock.close()
                continue
            self._resumed(sock, hello)
            for line, line_fds in backlog:
                self._handle(line, line_fds)
            return framer
        return None

    def _resumed(self, sock, hello):
        with self._lock:
            self._sock = sock
            self._reconnecting = False
            said = hello["hello"]["resume"]
            late = [r for r in self._subscribed if r not in said["onTakedown"]]
            up_late = self._up and not said["up"]
        _log("resumed with the daemon")
        # What the server said between the hello and the welcome.
        for resource in late:
            self._send({"onTakedown": resource})
        if up_late:
            self._send({"serverUp": True})

    def _give_up(self, why):
        _log("%s; serving on without a daemon" % why)
        with self._lock:
            self._reconnecting = False
            self._closed_reason = why
            holding, self._holding = self._holding, []
        _close_fds(fd for _, fd in holding)

    def _keep(self, resource, fd):
        """Keeps a duplicate of a listening socket from the daemon, to hand it back."""
        with self._lock:
            if any(r == resource for r, _ in self._holding):
                return  # the same socket again: one copy is enough
            if len(self._holding) >= MAX_RESUME_FDS:
                _log("more than %d resources; %s will not be handed back to a restarted "
                     "daemon" % (MAX_RESUME_FDS, resource))
                return
            self._holding.append([resource, os.dup(fd)])

    def _release(self, resource):
        with self._lock:
            self._taken_down = True
            gone = [h for h in self._holding if resources.same(h[0], resource)]
            self._holding = [h for h in self._holding if h not in gone]
        _close_fds(fd for _, fd in gone)

    def _connection_lost(self, reason):
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = reason
            waiters = [f for queue in self._waiters.values() for f in queue]
            self._waiters.clear()
        for future in waiters:
            if future.set_running_or_notify_cancel():
                future.set_exception(ServerswapError(reason))

    # ---- incoming messages --------------------------------------------------------

    def _handle(self, line, fds):
        if not line.strip():
            _close_fds(fds)
            return
        decoded = _decode(line)
        if decoded is None:
            _close_fds(fds)
            _log("ignored a malformed line from the daemon: %r" % line[:200])
            return
        name, value, message = decoded
        self._last_line_error = name == "error"
        if name == "resourceReady" and len(fds) == 1:
            self._on_resource_ready(value, message.get("address"), fds[0])
            return
        _close_fds(fds)  # only resourceReady carries an fd, and exactly one
        if name == "resourceReady":
            self._settle(value, error=ServerswapError(
                "resourceReady %s came with %d descriptors, not 1" % (value, len(fds))))
        elif name == "error":
            self._on_error(value, message.get("request"))
        elif name == "takeDown":
            self._on_takedown(value)

    def _pop_waiter(self, resource):
        with self._lock:
            queue = self._waiters.get(resource)
            if not queue:  # the daemon may answer in another spelling, as in the C++ client
                queue = next((q for r, q in self._waiters.items()
                              if q and resources.same(r, resource)), None)
            while queue:
                future = queue.popleft()
                if future.set_running_or_notify_cancel():
                    return future
        return None

    def _on_resource_ready(self, resource, address, fd):
        future = self._pop_waiter(resource)
        if future is None:
            os.close(fd)  # nobody is waiting for it (timed out or cancelled)
            return
        self._keep(resource, fd)
        future.set_result((fd, address))

    def _settle(self, resource, error):
        future = self._pop_waiter(resource)
        if future is not None:
            future.set_exception(error)
        else:
            _log(str(error))

    def _on_error(self, text, request):
        error = RequestError(str(text), request)
        if isinstance(request, dict) and isinstance(request.get("readyFor"), str):
            self._settle(request["readyFor"], error)
        else:
            _log("error from the daemon: %s (request %s)" % (text, json.dumps(request)))

    def _on_takedown(self, resource):
        self._release(resource)
        with self._lock:
            callbacks = list(self._callbacks.get(resource, ()))
        for fn in callbacks:
            threading.Thread(target=fn, args=(resource,),
                             name="serverswap-takedown %s" % resource).start()

    # ---- requests -----------------------------------------------------------------

    def _request_ready(self, resource):
        """Sends readyFor and returns the Future of its reply: (fd, address)."""
        if not isinstance(resource, str):
            raise TypeError("resource must be a str")
        future = concurrent.futures.Future()
        with self._lock:
            if self._closed_reason is not None:
                raise ServerswapError(self._closed_reason)
            if self._reconnecting:
                raise ServerswapError("readyFor %s: not connected to the daemon "
                                      "(reconnecting after it went away)" % resource)
            self._waiters[resource].append(future)
        try:
            self._send({"readyFor": resource})
        except BaseException:
            future.cancel()
            raise
        return future

    def _adopt(self, resource, fd, address):
        sock = socket.socket(fileno=fd)  # family and type are read from the fd
        sock.setblocking(False)  # already O_NONBLOCK; this makes Python's view match
        with self._lock:
            self._addresses[resource] = address
            self._resource_of_fd[sock.fileno()] = resource
        return sock

    def _inherited_for(self, resource):
        """A new socket object on the inherited fd for `resource`, or None."""
        with self._lock:
            if self._inherited is None:
                self._inherited = inherited.read(log=_log)
            try:
                found = inherited.find(self._inherited[1], resource)
            except ValueError as e:
                raise ServerswapError("readyFor %s: %s" % (resource, e)) from None
            if found is None:
                return None
            inherited.mark_close_on_exec([found])
            # A duplicate: the inherited fd stays open, so asking again works. Non-blocking
            # like every socket from ready_for (a shared flag; systemd and Server::Starter
            # pass blocking ones).
            sock = socket.socket(fileno=os.dup(found.fd))
            sock.setblocking(False)
            self._addresses[resource] = resources.address_of(sock)
            self._resource_of_fd[sock.fileno()] = resource
        return sock

    def _inherited_hint(self):
        if not self._inherited or not self._inherited[1]:
            return ""
        return " (inherited through %s: %s)" % (self._inherited[0],
                                                 inherited.describe(self._inherited[1]))

    def _bind_standalone(self, resource):
        with self._lock:
            first = self._sockets.get(resource)
            if first is not None and first.fileno() >= 0:
                sock = first.dup()
                sock.setblocking(False)
            else:
                try:
                    sock = resources.bind(resource)
                except OSError as e:
                    hint = self._inherited_hint()
                    if not hint:
                        raise
                    raise OSError(e.errno, e.strerror + hint) from e
                self._sockets[resource] = sock
            self._addresses[resource] = resources.address_of(sock)
            self._resource_of_fd[sock.fileno()] = resource
        return sock

    def ready_for(self, resource, timeout=None):
        """The listening socket for `resource` (non-blocking; shared, never make it blocking).

        Raises RequestError with the daemon's text if it refuses, ServerswapError if the
        connection fails, TimeoutError after `timeout` seconds. An inherited socket that
        matches is returned at once, without asking the daemon.
        """
        sock = self._inherited_for(resource)
        if sock is not None:
            return sock
        if self.standalone:
            return self._bind_standalone(resource)
        future = self._request_ready(resource)
        try:
            fd, address = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if future.cancelled():
                raise TimeoutError("no resourceReady for %s within %gs" % (resource, timeout))
            fd, address = future.result()
        return self._adopt(resource, fd, address)

    async def ready_for_async(self, resource):
        """ready_for() for asyncio code: awaits the reply without blocking the loop."""
        sock = self._inherited_for(resource)
        if sock is not None:
            return sock
        if self.standalone:
            return self._bind_standalone(resource)
        future = self._request_ready(resource)
        import asyncio  # here: most servers never need it, and it is slow to import
        fd, address = await asyncio.wrap_future(future)
        return self._adopt(resource, fd, address)

    def address(self, resource):
        """The address bound for a resource received so far ("127.0.0.1:41234"), or None."""
        with self._lock:
            return self._addresses.get(resource)

    def resource_of(self, sock):
        """The resource name a socket from ready_for() was asked as, or None."""
        with self._lock:
            return self._resource_of_fd.get(sock.fileno())

    def on_takedown(self, resource, fn):
        """Calls fn(resource) (on a new thread) when a newer server takes `resource` over.

        Subscribing replaces the daemon's takedown signal for this server. The callback
        should stop accepting, call took_down(resource), finish what is in flight and let
        the process exit. Does nothing standalone (but the callback is kept).
        """
        with self._lock:
            first = not self._callbacks[resource]
            self._callbacks[resource].append(fn)
            if resource not in self._subscribed:
                self._subscribed.append(resource)
        if first and not self.standalone:
            self._send({"onTakedown": resource})

    def has_takedown_handler(self, resource):
        with self._lock:
            return bool(self._callbacks.get(resource))

    def server_up(self):
        """Declares the server up on every resource it asked for."""
        with self._lock:
            self._up = True
        if not self.standalone:
            self._send({"serverUp": True})

    def fail(self, reason):
        """The server cannot start; the daemon kills it and the old servers keep serving."""
        with self._lock:
            self._failed = True
        if not self.standalone:
            self._send({"fail": str(reason)})

    def serving(self, resource):
        """Staggered handover: this server accepts on `resource` now, so the daemon takes
        the older holders down on that resource alone (docs/protocol.md, section 6)."""
        if not self.standalone:
            self._send({"serving": resource})

    def took_down(self, resource):
        """Optional: tells the daemon this server stopped accepting on `resource`."""
        self._release(resource)
        if not self.standalone:
            self._send({"tookDown": resource})

    @property
    def closed(self):
        return self._closed_reason is not None

    def close(self):
        """Closes the connection (a server that closes it before it is up has failed)."""
        if self.standalone:
            return
        self._stop.set()
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = "the client was closed"
            sock = self._sock
            holding, self._holding = self._holding, []
        _close_fds(fd for _, fd in holding)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join()
        if sock is not None:
            sock.close()


_default = None
_default_lock = threading.Lock()


def init(**options):
    """Creates the default client with options (e.g. up_message=True); call it first."""
    global _default
    with _default_lock:
        if _default is not None:
            raise ServerswapError("the default serverswap client already exists")
        _default = Client(**options)
        return _default


def default_client():
    """The client the module-level functions use, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default
