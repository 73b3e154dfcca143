"""Without SERVERSWAP_ID: ready_for binds by itself; the drain helper in-process. With
SERVERSWAP_SOCKET alone, or SERVERSWAP_ID and no daemon: a real server runs standalone."""
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import support  # noqa: F401  (puts the package on sys.path)
import serverswap


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class StandaloneTest(unittest.TestCase):
    def setUp(self):
        self.client = serverswap.Client(socket_path=None) if "SERVERSWAP_ID" not in \
            os.environ else self.skipTest("running under serverswap")
        self.assertTrue(self.client.standalone)

    def ready(self, resource):
        sock = self.client.ready_for(resource)
        self.addCleanup(sock.close)
        return sock

    def assert_accepts(self, listener, family, address):
        with socket.socket(family) as c:
            c.connect(address)
            conn, _ = listener.accept()  # queued already: no EAGAIN
            conn.close()

    def test_ipv4_binds_port_zero_non_blocking(self):
        sock = self.ready("127.0.0.1:0")
        self.assertFalse(sock.getblocking())
        self.assertEqual(sock.family, socket.AF_INET)
        with self.assertRaises(BlockingIOError):
            sock.accept()  # nothing queued
        port = sock.getsockname()[1]
        self.assertEqual(self.client.address("127.0.0.1:0"), "127.0.0.1:%d" % port)
        self.assert_accepts(sock, socket.AF_INET, ("127.0.0.1", port))
        again = self.ready("127.0.0.1:0")  # the same resource gets the same socket
        self.assertEqual(again.getsockname(), sock.getsockname())

    @unittest.skipUnless(ipv6_available(), "no IPv6")
    def test_any_interface_is_dual_stack_and_brackets_are_v6_only(self):
        sock = self.ready(":0")
        port = sock.getsockname()[1]
        self.assert_accepts(sock, socket.AF_INET, ("127.0.0.1", port))
        self.assert_accepts(sock, socket.AF_INET6, ("::1", port))
        v6 = self.ready("[::1]:0")
        self.assertEqual(v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1)

    def test_unix_socket_replaces_a_stale_file(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "s.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()  # the file stays
        sock = self.ready("unix:" + path)
        self.assert_accepts(sock, socket.AF_UNIX, path)

    def test_bad_resources_and_no_ops(self):
        for bad in ("8080", "host:80", "1.2.3.4:99999", "unix:", ""):
            with self.assertRaises(ValueError, msg=bad):
                self.client.ready_for(bad)
        self.client.on_takedown(":1", lambda r: None)
        self.client.server_up()
        self.client.took_down(":1")
        self.client.fail("nothing happens")

    def test_drain_answers_with_connection_close_then_closes_idle_connections(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        server = serverswap.ThreadingHTTPServer("127.0.0.1:0", Handler, client=self.client,
                                                grace=0.5)
        port = server.server_address[1]
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()
        busy = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for c in (busy, idle):
            c.request("GET", "/")
            response = c.getresponse()
            self.assertEqual(response.read(), b"ok")
            self.assertIsNone(response.getheader("Connection"))
        server.begin_drain("test")
        busy.request("GET", "/")  # still on the open keep-alive connection
        response = busy.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"ok"))
        self.assertEqual(response.getheader("Connection"), "close")
        serving.join(10)  # returns once the idle one was closed after the grace period
        self.assertFalse(serving.is_alive())
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            idle.request("GET", "/")
            idle.getresponse()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        server.server_close()
        busy.close()
        idle.close()


class ProgramTest(unittest.TestCase):
    """examples/http_server_example.py run by hand: it serves on the resource it asked for."""

    def serve(self, **env):
        """Runs the example on a free port with `env`; returns (body, its stderr)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            support.PYTHON + [os.path.join(support.EXAMPLES, "http_server_example.py"),
                              "127.0.0.1:%d" % port, "--body", "by hand\n"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=support.clean_env(**env))
        output = support.Output(server.stderr)
        try:
            self.assertTrue(output.wait_for("serving on", 10), output.text())
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/")
            body = connection.getresponse().read().decode()
            connection.close()
            # What it said up to serving a request (what SIGTERM makes it say is not ours).
            said = [line for line in output.text().splitlines() if "serving on" not in line]
        finally:
            server.terminate()  # SIGTERM: it drains and exits
            server.wait(20)
        return body, said

    def test_socket_without_id_is_standalone_and_silent(self):
        # An operator's shell that exports SERVERSWAP_SOCKET for the CLI (contrib/systemd).
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        body, said = self.serve(SERVERSWAP_SOCKET=os.path.join(directory, "none.sock"))
        self.assertEqual(body, "by hand\n")
        self.assertEqual(said, [])

    def test_id_without_a_daemon_is_standalone_with_one_warning(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "none.sock")
        body, said = self.serve(SERVERSWAP_SOCKET=path, SERVERSWAP_ID="test-1")
        self.assertEqual(body, "by hand\n")
        self.assertEqual(len(said), 1, said)
        self.assertIn("SERVERSWAP_ID is set but no daemon answers on %s (No such file or "
                      "directory); running standalone" % path, said[0])

    def test_id_with_a_refusing_socket_file_is_standalone_with_one_warning(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "dead.sock")
        with socket.socket(socket.AF_UNIX) as dead:  # what a killed daemon leaves
            dead.bind(path)
        body, said = self.serve(SERVERSWAP_SOCKET=path, SERVERSWAP_ID="test-1")
        self.assertEqual(body, "by hand\n")
        self.assertEqual(len(said), 1, said)
        self.assertIn("no daemon answers on %s (Connection refused); running standalone" % path,
                      said[0])

    def test_id_without_socket_is_standalone_with_one_warning(self):
        body, said = self.serve(SERVERSWAP_ID="test-1")
        self.assertEqual(body, "by hand\n")
        self.assertEqual(len(said), 1, said)
        self.assertIn("SERVERSWAP_ID is set but SERVERSWAP_SOCKET is not; running standalone",
                      said[0])


if __name__ == "__main__":
    unittest.main()
