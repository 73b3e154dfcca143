"""The client against a scripted fake daemon: framing, fd hygiene, replies and errors."""
import array
import asyncio
import json
import os
import select
import shutil
import socket
import tempfile
import threading
import unittest

import support  # noqa: F401  (puts the package on sys.path)
import serverswap


def pipe_closed(read_end, timeout=5):
    """True once every write end of the pipe is closed (read gives EOF)."""
    if not select.select([read_end], [], [], timeout)[0]:
        return False
    return os.read(read_end, 1) == b""


class FakeDaemon:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="serverswap-fake-")
        self.path = os.path.join(self.dir, "control.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.conn = None
        self.hello = None
        self.buffer = b""
        self._accepted = threading.Thread(target=self._accept)
        self._accepted.start()

    def _accept(self):
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(10)
        self.hello = self.read_message()
        self.send({"welcome": {"protocol": 1, "id": "t", "version": "fake"}})

    def connect(self, **options):
        client = serverswap.Client(socket_path=self.path, server_id="t", **options)
        self._accepted.join(10)
        return client

    def read_message(self):
        while b"\n" not in self.buffer:
            data = self.conn.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, message, fds=(), raw=None):
        data = raw if raw is not None else (json.dumps(message) + "\n").encode()
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.conn.sendmsg([data], ancillary)

    def close(self):
        if self.conn:
            self.conn.close()
        self.listener.close()
        shutil.rmtree(self.dir)


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.daemon = FakeDaemon()
        self.addCleanup(self.daemon.close)
        self.client = self.daemon.connect(up_message=True)
        self.addCleanup(self.client.close)

    def pipe(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        return r, w

    def listening_socket(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        self.addCleanup(sock.close)
        return sock

    def test_hello_is_first_and_complete(self):
        self.assertEqual(self.daemon.hello, {"hello": {"id": "t", "pid": os.getpid(),
                                                       "protocol": 1, "upMessage": True}})
        self.assertEqual(self.client.welcome["version"], "fake")

    def test_ready_for_gets_the_fd_even_when_the_line_arrives_in_pieces(self):
        listener = self.listening_socket()
        result = {}
        caller = threading.Thread(target=lambda: result.update(sock=self.client.ready_for(":1")))
        caller.start()
        self.assertEqual(self.daemon.read_message(), {"readyFor": ":1"})
        self.daemon.send(None, fds=[listener.fileno()], raw=b'{"resourceReady": ":1", ')
        self.daemon.send(None, raw=b'"address": "127.0.0.1:5"}\n')
        caller.join(10)
        sock = result["sock"]
        self.addCleanup(sock.close)
        self.assertEqual(sock.getsockname(), listener.getsockname())
        self.assertFalse(sock.getblocking())
        self.assertEqual(self.client.address(":1"), "127.0.0.1:5")
        self.assertEqual(self.client.resource_of(sock), ":1")

    def test_replies_are_matched_by_resource_and_errors_raise_with_their_text(self):
        listener = self.listening_socket()
        results = {}

        def ask(resource):
            try:
                results[resource] = self.client.ready_for(resource, timeout=10)
            except serverswap.RequestError as e:
                results[resource] = e

        callers = [threading.Thread(target=ask, args=(r,)) for r in ("a:1", "b:2")]
        for c in callers:
            c.start()
        asked = {self.daemon.read_message()["readyFor"] for _ in callers}
        self.assertEqual(asked, {"a:1", "b:2"})
        # Two messages in one write, the second first; an empty line is ignored.
        self.daemon.send(None, raw=b'{"error": "no such thing", "request": {"readyFor": "b:2"}}'
                                   b'\n\n{"welcome": {}}\n')
        self.daemon.send({"resourceReady": "a:1", "address": "x"}, fds=[listener.fileno()])
        for c in callers:
            c.join(10)
        self.addCleanup(results["a:1"].close)
        self.assertIsInstance(results["a:1"], socket.socket)
        self.assertIsInstance(results["b:2"], serverswap.RequestError)
        self.assertEqual(results["b:2"].text, "no such thing")
        self.assertEqual(results["b:2"].request, {"readyFor": "b:2"})

    def test_a_stray_fd_is_closed_and_take_down_is_dispatched(self):
        ran = threading.Event()
        self.client.on_takedown(":9", lambda resource: ran.set())
        self.assertEqual(self.daemon.read_message(), {"onTakedown": ":9"})
        r, w = self.pipe()
        self.daemon.send({"takeDown": ":9"}, fds=[w])
        os.close(w)
        self.assertTrue(pipe_closed(r), "the stray fd was kept open")
        self.assertTrue(ran.wait(10))

    def test_resource_ready_with_two_fds_closes_both_and_fails_the_request(self):
        r1, w1 = self.pipe()
        r2, w2 = self.pipe()
        future = self.client._request_ready(":3")
        self.assertEqual(self.daemon.read_message(), {"readyFor": ":3"})
        self.daemon.send({"resourceReady": ":3"}, fds=[w1, w2])
        os.close(w1)
        os.close(w2)
        with self.assertRaises(serverswap.ServerswapError):
            future.result(10)
        self.assertTrue(pipe_closed(r1) and pipe_closed(r2))

    def test_truncated_ancillary_data_is_an_error_and_nothing_leaks(self):
        pipes = [self.pipe() for _ in range(40)]  # more than the client has room for
        future = self.client._request_ready(":4")
        self.daemon.read_message()
        self.daemon.send({"resourceReady": ":4"}, fds=[w for _, w in pipes])
        for _, w in pipes:
            os.close(w)
        with self.assertRaisesRegex(serverswap.ServerswapError, "MSG_CTRUNC"):
            future.result(10)
        self.assertTrue(all(pipe_closed(r) for r, _ in pipes))
        self.assertTrue(self.client.closed)

    def test_a_line_longer_than_the_limit_ends_the_connection(self):
        future = self.client._request_ready(":5")
        self.daemon.read_message()
        self.daemon.send(None, raw=b'{"x": "' + b"a" * serverswap.MAX_LINE)
        with self.assertRaisesRegex(serverswap.ServerswapError, "longer than"):
            future.result(10)
        self.assertIsNone(self.daemon.read_message())  # the client closed its end
        with self.assertRaises(serverswap.ServerswapError):
            self.client.server_up()

    def test_requests_are_sent_as_lines(self):
        self.client.server_up()
        self.client.took_down(":6")
        self.client.fail("why")
        self.assertEqual(self.daemon.read_message(), {"serverUp": True})
        self.assertEqual(self.daemon.read_message(), {"tookDown": ":6"})
        self.assertEqual(self.daemon.read_message(), {"fail": "why"})

    def test_serving_is_sent_as_a_line(self):
        self.client.serving(":6")
        self.assertEqual(self.daemon.read_message(), {"serving": ":6"})

    def test_ready_for_async(self):
        listener = self.listening_socket()

        async def main():
            task = asyncio.ensure_future(self.client.ready_for_async(":7"))
            message = await asyncio.get_running_loop().run_in_executor(
                None, self.daemon.read_message)
            self.assertEqual(message, {"readyFor": ":7"})
            self.daemon.send({"resourceReady": ":7"}, fds=[listener.fileno()])
            return await asyncio.wait_for(task, 10)

        sock = asyncio.run(main())
        self.addCleanup(sock.close)
        self.assertEqual(sock.getsockname(), listener.getsockname())



class ResourceSpellingTest(unittest.TestCase):
    """resources.same follows the C++ client core (client::same_resource): a takeDown or
    resourceReady in another spelling of a resource is about that resource."""

    def test_spellings_of_one_resource(self):
        same = serverswap.resources.same
        self.assertTrue(same("[0:0::1]:8080", "[::1]:8080"))
        self.assertTrue(same("localhost:8080", "127.0.0.1:8080"))
        self.assertTrue(same(":08080", ":8080"))
        self.assertFalse(same(":8080", "0.0.0.0:8080"))
        self.assertFalse(same("[::1]:8080", "127.0.0.1:8080"))
        self.assertFalse(same("unix:/a.sock", "unix:/b.sock"))
        self.assertFalse(same("no port", "no port either"))

class FramerTest(unittest.TestCase):
    def test_an_fd_not_at_the_start_of_a_line_is_closed(self):
        framer = serverswap.LineFramer()
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.assertEqual(framer.feed(b'{"a"'), [])
        framer.feed(b": 1}\n", [w])
        self.assertTrue(pipe_closed(r))

    def test_lines_split_and_joined(self):
        framer = serverswap.LineFramer()
        self.assertEqual(framer.feed(b'{"a": 1}\n{"b"'), [(b'{"a": 1}', [])])
        self.assertEqual(framer.feed(b': 2}\n'), [(b'{"b": 2}', [])])


if __name__ == "__main__":
    unittest.main()


class ImpostorTest(unittest.TestCase):
    """A socket where the daemon's should be, listened on by another user: the client
    refuses it, naming the uid, and sends nothing (a hello would give away the id)."""

    @unittest.skipUnless(os.geteuid() == 0, "needs root to listen as another user")
    def test_a_socket_of_another_user_is_not_the_daemon(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        os.chmod(directory, 0o777)
        path = os.path.join(directory, "control.sock")
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child == 0:  # the impostor, as uid 65534: listens, says so, waits to be killed
            try:
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(path)
                listener.listen()
                os.write(ready_w, b"x")
                while True:
                    conn, _ = listener.accept()
                    if conn.recv(1):  # anything sent: the test fails on the exit status
                        os._exit(3)
            finally:
                os._exit(2)
        os.close(ready_w)
        self.assertEqual(os.read(ready_r, 1), b"x", "the impostor could not listen")
        os.close(ready_r)
        try:
            with self.assertRaises(serverswap.ServerswapError) as raised:
                serverswap.Client(socket_path=path, server_id="t")
            self.assertIn("served by uid 65534", str(raised.exception))
            self.assertIn("not the daemon", str(raised.exception))
        finally:
            os.kill(child, 9)
            _, status = os.waitpid(child, 0)
        self.assertEqual(os.WTERMSIG(status), 9, "the impostor was sent something")
