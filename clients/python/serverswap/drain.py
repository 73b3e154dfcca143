"""Draining an http.server server when it is taken down, like examples/hello_server.cc.

drain(server) makes a socketserver/http.server server (ThreadingHTTPServer above all)
leave without dropping a request when a newer server takes its resource over:

1. on takeDown (or SIGTERM/SIGINT) it stops accepting: serve_forever() leaves its loop and
   the server's copy of the listening socket is closed (the daemon's copy keeps queueing
   connections for the new server); tookDown is sent;
2. every request that still arrives on an open keep-alive connection is answered with
   "Connection: close" and the connection is closed after that answer;
3. connections still idle when the grace period ends are closed;
4. then serve_forever() returns, so the program ends and exits 0.
"""
import os
import signal
import socket
import threading
import time

from . import client as client_module

DEFAULT_GRACE = 10.0  # seconds; SERVERSWAP_DRAIN_GRACE overrides it


def grace_from_env(default=DEFAULT_GRACE):
    text = os.environ.get("SERVERSWAP_DRAIN_GRACE")
    try:
        return max(float(text), 0.0) if text else default
    except ValueError:
        return default


class _DrainState:
    """The connections of one server and whether it is draining."""

    def __init__(self, server, grace, client, resource):
        self.server = server
        self.grace = grace
        self.client = client
        self.resource = resource
        self.lock = threading.Condition()
        self.handlers = {}   # handler -> busy (a request is being read or answered)
        # Connections accepted whose handler has not started yet (ThreadingMixIn starts a
        # thread per connection): the drain waits for them too, or a connection accepted
        # just before it began would be closed unanswered when the program exits.
        self.accepted = 0
        self.draining = False
        self.why = None
        self.done = threading.Event()

    def begin(self, why):
        with self.lock:
            if self.draining:
                return
            self.draining = True
            self.why = why
        # shutdown() waits for serve_forever() to leave its loop: not on its own thread.
        threading.Thread(target=self.server.shutdown, name="serverswap-drain",
                         daemon=True).start()

    def _none_open(self):
        return not self.handlers and self.accepted == 0

    def finish(self, log):
        """Runs on serve_forever()'s thread once it stopped accepting."""
        self.server.socket.close()  # our copy only
        with self.lock:
            count = len(self.handlers) + self.accepted
        log("%s: stopped accepting on %s, draining %d connections"
            % (self.why, self.resource, count))
        if self.resource is not None:
            try:
                self.client.took_down(self.resource)
            except client_module.ServerswapError as e:
                log(str(e))
        deadline = time.monotonic() + self.grace
        with self.lock:
            self.lock.wait_for(self._none_open, max(deadline - time.monotonic(), 0))
            idle = [h for h, busy in self.handlers.items() if not busy]
        if idle:
            log("grace period over: closing %d idle connections" % len(idle))
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:  # busy ones close after their answer
            self.lock.wait_for(self._none_open, self.grace + 5)
        self.done.set()


def _draining_handler(base, state):
    class DrainingHandler(base):
        """Answers with Connection: close once the server drains."""

        def setup(self):
            with state.lock:
                state.accepted = max(state.accepted - 1, 0)
                state.handlers[self] = False
            super().setup()

        def finish(self):
            try:
                super().finish()
            finally:
                with state.lock:
                    state.handlers.pop(self, None)
                    state.lock.notify_all()

        def handle_one_request(self):
            try:
                super().handle_one_request()
            finally:
                with state.lock:
                    if self in state.handlers:
                        state.handlers[self] = False
                    if state.draining:
                        self.close_connection = True

        def parse_request(self):
            with state.lock:
                state.handlers[self] = True
            return super().parse_request()

        def address_string(self):
            address = self.client_address
            return address[0] if isinstance(address, tuple) and address else "unix"

        def send_header(self, keyword, value):
            if keyword.lower() == "connection":
                self._serverswap_sent_connection = True
            super().send_header(keyword, value)

        def end_headers(self):
            if state.draining and not getattr(self, "_serverswap_sent_connection", False):
                self.send_header("Connection", "close")
            self._serverswap_sent_connection = False
            self.close_connection = self.close_connection or state.draining
            super().end_headers()

    DrainingHandler.__name__ = DrainingHandler.__qualname__ = "Draining" + base.__name__
    return DrainingHandler


def drain(server, grace=None, client=None, resource=None, signals=True, log=None):
    """Makes an http.server server drain on takeDown; call it before serve_forever().

    server    a socketserver.BaseServer with a BaseHTTPRequestHandler subclass, serving
              the socket from ready_for() (server.socket)
    grace     seconds idle keep-alive connections may stay open (default 10, or
              $SERVERSWAP_DRAIN_GRACE)
    client    the serverswap client (default: the module's default client)
    resource  the resource name (default: the one ready_for() returned server.socket for)
    signals   also drain on SIGTERM and SIGINT (only possible from the main thread)

    Registers the takeDown handler, so the daemon sends takeDown instead of a signal.
    serve_forever() returns once the drain is over. Returns a function that starts the
    drain by hand: begin(why="...").
    """
    client = client or client_module.default_client()
    resource = resource or client.resource_of(server.socket)
    grace = grace_from_env() if grace is None else grace
    log = log or (lambda text: client_module._log(text))
    state = _DrainState(server, grace, client, resource)
    server.RequestHandlerClass = _draining_handler(server.RequestHandlerClass, state)
    process_request = server.process_request

    def counted_process_request(request, client_address):
        with state.lock:  # before its handler thread exists (see _DrainState.accepted)
            state.accepted += 1
        process_request(request, client_address)

    server.process_request = counted_process_request
    serve_forever = server.serve_forever

    def serve_then_drain(*args, **kwargs):
        serve_forever(*args, **kwargs)
        if state.draining:
            state.finish(log)

    server.serve_forever = serve_then_drain
    server._serverswap_drain = state
    if resource is not None:
        client.on_takedown(resource, lambda _r: state.begin("takeDown"))
    if signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda n, _f: state.begin(signal.Signals(n).name))
    return state.begin
