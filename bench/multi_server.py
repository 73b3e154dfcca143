#!/usr/bin/env python3
"""multi_server: a bench server that holds many resources at once and times readyFor.

    multi_server.py --timings FILE RESOURCE...      (run under serverswap)

It speaks docs/protocol.md directly (no client library, so that nothing but a socket
round trip sits between the two clock readings): hello, then one `readyFor` per resource,
timing each from just before the send to just after the `resourceReady` with its fd is
received; `onTakedown` for each; `serverUp`. It then answers `GET` on every resource with
a small 200 response (keep-alive unless asked to close). On `takeDown` of a resource it
closes its copy of that listener; once every resource is taken down it answers each open
connection's next request with `Connection: close`, closes idle ones after a 2 s grace,
and exits. One JSON line per process goes to FILE: {"pid", "ready_for_us": [...]}.

Standard library only; one thread, selectors.
"""

import array
import json
import os
import selectors
import signal
import socket
import sys
import time

BODY = b"ok\n"
DRAIN_GRACE_S = 2.0
MAX_LINE = 65536


class Control:
    """The control connection: line framing and fds from SCM_RIGHTS."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.fds = []

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def fill(self):
        """One recvmsg; False at end of stream."""
        fds = array.array("i")
        data, anc, flags, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize),
                                                socket.MSG_CMSG_CLOEXEC)
        if flags & socket.MSG_CTRUNC:
            raise RuntimeError("control socket: MSG_CTRUNC")
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        self.fds.extend(fds)
        self.buf += data
        if len(self.buf) > MAX_LINE and b"\n" not in self.buf:
            raise RuntimeError("control socket: line too long")
        return bool(data)

    def lines(self):
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)

    def next_message(self):
        while True:
            for message in self.lines():
                return message
            if not self.fill():
                raise RuntimeError("daemon closed the control connection")


def ready_for_all(control, resources):
    """readyFor each resource in turn; returns ({resource: listening socket}, [round trip us])."""
    listeners, times = {}, []
    for resource in resources:
        t0 = time.perf_counter_ns()
        control.send({"readyFor": resource})
        reply = control.next_message()
        t1 = time.perf_counter_ns()
        if "resourceReady" not in reply or not control.fds:
            raise RuntimeError(f"readyFor {resource}: {reply}")
        fd = control.fds.pop(0)
        listeners[resource] = socket.socket(fileno=fd)
        listeners[resource].setblocking(False)
        times.append((t1 - t0) / 1000)
    return listeners, times


class Server:
    def __init__(self, control, listeners):
        self.control = control
        self.listeners = listeners
        self.sel = selectors.DefaultSelector()
        self.sel.register(control.sock, selectors.EVENT_READ, ("control", None))
        for resource, sock in listeners.items():
            self.sel.register(sock, selectors.EVENT_READ, ("listen", resource))
        self.connections = {}  # socket -> pending input
        self.draining_since = None

    def run(self):
        while self.draining_since is None or self.connections:
            if self.draining_since and time.monotonic() - self.draining_since > DRAIN_GRACE_S:
                break
            for key, _ in self.sel.select(timeout=0.1):
                kind, what = key.data
                if key.fileobj.fileno() < 0:
                    continue  # closed by an earlier event of this batch (a takeDown)
                if kind == "control":
                    self.on_control()
                elif kind == "listen":
                    self.accept(key.fileobj)
                else:
                    self.serve(key.fileobj)
        for conn in list(self.connections):
            conn.close()

    def on_control(self):
        if not self.control.fill():
            self.sel.unregister(self.control.sock)  # daemon gone: keep serving until killed
            return
        for message in self.control.lines():
            resource = message.get("takeDown")
            if resource in self.listeners:
                sock = self.listeners.pop(resource)
                self.sel.unregister(sock)
                sock.close()
                self.control.send({"tookDown": resource})
                if not self.listeners:
                    self.draining_since = time.monotonic()

    def accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self.connections[conn] = b""
            self.sel.register(conn, selectors.EVENT_READ, ("conn", None))

    def serve(self, conn):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self.drop(conn)
        pending = self.connections[conn] + data
        while b"\r\n\r\n" in pending:
            head, pending = pending.split(b"\r\n\r\n", 1)
            close = self.draining_since is not None or b"connection: close" in head.lower()
            extra = b"Connection: close\r\n" if close else b""
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                             % (len(BODY), extra, BODY))
            except OSError:
                return self.drop(conn)
            if close:
                return self.drop(conn)
        self.connections[conn] = pending

    def drop(self, conn):
        self.sel.unregister(conn)
        del self.connections[conn]
        conn.close()


def main():
    if len(sys.argv) < 4 or sys.argv[1] != "--timings":
        print(__doc__, file=sys.stderr)
        return 2
    timings_path, resources = sys.argv[2], sys.argv[3:]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    path = os.environ.get("SERVERSWAP_SOCKET")
    if not path:
        print("multi_server: run it under serverswap", file=sys.stderr)
        return 1
    control = Control(path)
    control.send({"hello": {"id": os.environ.get("SERVERSWAP_ID", ""), "pid": os.getpid(),
                            "protocol": 1, "upMessage": True}})
    welcome = control.next_message()
    if "welcome" not in welcome:
        raise RuntimeError(f"hello: {welcome}")
    listeners, times = ready_for_all(control, resources)
    with open(timings_path, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "ready_for_us": times}) + "\n")
    for resource in resources:
        control.send({"onTakedown": resource})
    control.send({"serverUp": True})
    Server(control, listeners).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
