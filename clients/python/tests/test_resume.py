"""Resume after a daemon restart (docs/protocol.md §11) against fake daemons: the client
reconnects when its connection reaches end-of-file and hands its sockets back."""
import array
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

import support  # noqa: F401  (puts the package on sys.path)
import serverswap

WAIT = 5  # seconds; only reached when a test fails


class DaemonSocket:
    """A daemon's control socket on a real path; each accept() is one daemon connection."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="serverswap-resume-")
        self.path = os.path.join(self.dir, "control.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)

    def accept(self, timeout=WAIT):
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT)
        return Peer(conn)

    def has_client(self, timeout):
        try:
            self.accept(timeout).close()
            return True
        except socket.timeout:
            return False

    def close(self):
        self.listener.close()
        shutil.rmtree(self.dir)


class Peer:
    """The daemon's end of one connection."""

    def __init__(self, conn):
        self.conn = conn
        self.buffer = b""
        self.fds = []

    def read_message(self):
        fd_size = array.array("i").itemsize
        while b"\n" not in self.buffer:
            data, ancillary, flags, _ = self.conn.recvmsg(
                65536, socket.CMSG_SPACE(70 * fd_size))
            if not data:
                return None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % fd_size])
                    self.fds.extend(fds)
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, message, fds=()):
        data = (json.dumps(message) + "\n").encode()
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.conn.sendmsg([data], ancillary)

    def close(self):
        self.conn.close()
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def wait_until(condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polls client state that has no event to wait on
    return True


class ResumeTest(unittest.TestCase):
    def setUp(self):
        self.sockets = DaemonSocket()
        self.addCleanup(self.sockets.close)
        greeted = {}

        def greet():
            peer = self.sockets.accept()
            greeted["hello"] = peer.read_message()
            peer.send({"welcome": {"protocol": 1, "id": "t", "version": "fake"}})
            greeted["peer"] = peer

        greeter = threading.Thread(target=greet)
        greeter.start()
        self.client = serverswap.Client(socket_path=self.sockets.path, server_id="t")
        self.addCleanup(self.client.close)
        greeter.join(WAIT)
        self.daemon = greeted["peer"]
        self.addCleanup(lambda: self.daemon.close())
        self.taken = []
        self.web = self.listening_socket()
        self.admin = self.listening_socket()

    def listening_socket(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        self.addCleanup(sock.close)
        return sock

    def hand(self, resource, listener):
        result = {}
        caller = threading.Thread(
            target=lambda: result.update(sock=self.client.ready_for(resource, timeout=WAIT)))
        caller.start()
        self.assertEqual(self.daemon.read_message(), {"readyFor": resource})
        self.daemon.send({"resourceReady": resource}, fds=[listener.fileno()])
        caller.join(WAIT)
        self.addCleanup(result["sock"].close)
        return result["sock"]

    def serve(self):
        self.hand("127.0.0.1:8080", self.web)
        self.hand("unix:/run/admin.sock", self.admin)
        self.client.on_takedown("127.0.0.1:8080", self.taken.append)
        self.client.server_up()
        self.assertEqual(self.daemon.read_message(), {"onTakedown": "127.0.0.1:8080"})
        self.assertEqual(self.daemon.read_message(), {"serverUp": True})

    def restart_daemon(self):
        """The daemon dies; the client reconnects to the next one."""
        self.daemon.close()
        self.daemon = self.sockets.accept()
        return self.daemon.read_message()

    def test_hands_back_its_sockets_in_order_with_subscriptions_and_up(self):
        self.serve()
        lost_at = time.monotonic()
        hello = self.restart_daemon()
        self.assertGreaterEqual(time.monotonic() - lost_at, 0.1)
        self.assertEqual(hello, {"hello": {"id": "t", "pid": os.getpid(), "protocol": 1, "resume": {
            "holding": ["127.0.0.1:8080", "unix:/run/admin.sock"],
            "onTakedown": ["127.0.0.1:8080"], "up": True}}})
        fds = self.daemon.fds
        self.assertEqual(len(fds), 2)
        self.assertEqual(os.fstat(fds[0]).st_ino, os.fstat(self.web.fileno()).st_ino)
        self.assertEqual(os.fstat(fds[1]).st_ino, os.fstat(self.admin.fileno()).st_ino)
        with socket.socket(fileno=os.dup(fds[0])) as returned:
            self.assertEqual(returned.getsockname(), self.web.getsockname())
        # Then a server of the new daemon in every respect.
        self.daemon.send({"welcome": {"protocol": 1, "id": "t", "version": "2", "resumed": True}})
        self.daemon.send({"takeDown": "127.0.0.1:8080"})
        self.assertTrue(wait_until(lambda: self.taken == ["127.0.0.1:8080"]))
        self.client.took_down("127.0.0.1:8080")
        self.assertEqual(self.daemon.read_message(), {"tookDown": "127.0.0.1:8080"})
        self.assertFalse(self.client.closed)

    def test_taken_down_resources_are_not_handed_back(self):
        self.serve()
        self.daemon.send({"takeDown": "127.0.0.1:8080"})
        self.assertTrue(wait_until(lambda: self.taken))
        hello = self.restart_daemon()
        self.assertEqual(hello["hello"]["resume"]["holding"], ["unix:/run/admin.sock"])
        self.assertEqual(len(self.daemon.fds), 1)
        self.assertEqual(os.fstat(self.daemon.fds[0]).st_ino, os.fstat(self.admin.fileno()).st_ino)

    def test_calls_while_reconnecting_go_into_the_resume(self):
        self.hand(":8080", self.web)
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client._reconnecting))
        self.client.on_takedown(":8080", self.taken.append)  # no error: the resume says it
        self.client.server_up()
        with self.assertRaisesRegex(serverswap.ServerswapError, "reconnecting"):
            self.client.ready_for(":9090")
        self.daemon = self.sockets.accept()
        self.assertEqual(self.daemon.read_message()["hello"]["resume"],
                         {"holding": [":8080"], "onTakedown": [":8080"], "up": True})

    def test_an_error_reply_ends_reconnecting(self):
        self.serve()
        self.restart_daemon()
        self.daemon.send({"error": "resume: unknown server id", "request": {"hello": {}}})
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client.closed))
        self.assertFalse(self.sockets.has_client(0.4))  # longer than two retry intervals
        with self.assertRaisesRegex(serverswap.ServerswapError, "refused to resume"):
            self.client.server_up()

    def test_no_reconnect_after_the_daemon_closed_with_an_error(self):
        self.serve()
        self.daemon.send({"error": "too many connections"})
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client.closed))
        self.assertFalse(self.sockets.has_client(0.4))

    def test_no_reconnect_once_taken_down_on_every_resource(self):
        self.serve()
        self.daemon.send({"takeDown": "127.0.0.1:8080"})
        self.assertTrue(wait_until(lambda: self.taken))
        self.client.took_down("unix:/run/admin.sock")
        self.assertEqual(self.daemon.read_message(), {"tookDown": "unix:/run/admin.sock"})
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client.closed))
        self.assertFalse(self.sockets.has_client(0.4))

    def test_fail_while_the_daemon_is_away_ends_reconnecting(self):
        self.serve()
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client._reconnecting))
        self.client.fail("broken")
        self.assertTrue(wait_until(lambda: self.client.closed))
        self.assertFalse(self.sockets.has_client(0.4))

    def test_no_reconnect_after_fail(self):
        self.serve()
        self.client.fail("broken")
        self.daemon.close()
        self.assertTrue(wait_until(lambda: self.client.closed))
        self.assertFalse(self.sockets.has_client(0.4))


if __name__ == "__main__":
    unittest.main()
