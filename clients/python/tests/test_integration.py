"""The real daemon, real Python servers, loopback: swaps under load and failed starts."""
import http.client
import os
import subprocess
import sys
import unittest

import support

EXAMPLE = os.path.join(support.EXAMPLES, "http_server_example.py")
DEPLOY_LOOP = os.path.join(support.HERE, "deploy_loop.py")
BAD_SERVER = os.path.join(support.HERE, "servers", "bad_server.py")
RESOURCE = "127.0.0.1:0"
SWAPS = 20


def get(address, timeout=5):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class IntegrationTest(unittest.TestCase):
    def setUp(self):
        self.daemon = support.Daemon("--takedown-timeout", "20s")
        self.addCleanup(self.daemon.close)

    def start_example(self, body="v1\n"):
        done = self.daemon.deploy(support.PYTHON + [EXAMPLE, RESOURCE, "--body", body])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        address = self.daemon.address_of(RESOURCE)
        self.assertTrue(address and not address.endswith(":0"), address)
        return address

    def swap_under_load(self, mode):
        address = self.start_example()
        first_pids = self.daemon.server_pids()
        deploy_command = support.PYTHON + [DEPLOY_LOOP, support.SERVERSWAP_BIN,
                                           self.daemon.socket, str(SWAPS), "--"] + \
            support.PYTHON + [EXAMPLE, RESOURCE, "--body", "v1\n"]
        verify = subprocess.run(
            [support.SERVERSWAP_BIN, "verify", "--duration", "21", "--clients", "8",
             "--rate", "400", "--mode", mode, address, "--"] + deploy_command,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            env=support.clean_env())
        report = verify.stdout + verify.stderr
        self.assertEqual(verify.returncode, 0, report)
        self.assertIn("failed 0", report)
        self.assertIn("deploy_loop: %d deploys ok" % SWAPS, report)
        # Every replaced server ran its takedown handler, drained and exited 0.
        log = self.daemon.output.text()
        self.assertEqual(log.count("takeDown: stopped accepting on %s" % RESOURCE), SWAPS, log)
        self.assertEqual(log.count("drained, exiting"), SWAPS, log)
        self.assertEqual(log.count("exited with status 0"), SWAPS, log)
        for pid in first_pids:
            self.assertTrue(support.wait_gone(pid, 10), "pid %d survived" % pid)
        self.assertEqual(len(self.daemon.server_pids()), 1)
        self.assertEqual(get(address)[0], 200)

    def test_twenty_swaps_under_load_new_connection_per_request(self):
        self.swap_under_load("close")

    def test_twenty_swaps_under_load_keep_alive(self):
        self.swap_under_load("keepalive")

    def assert_old_one_kept(self, address, old_pids, done):
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertEqual(self.daemon.server_pids(), old_pids)
        self.assertEqual(get(address), (200, b"v1\n"))
        self.assertNotIn("takeDown: stopped accepting", self.daemon.output.text())

    def test_failed_starts_never_take_the_old_server_down(self):
        address = self.start_example()
        old_pids = self.daemon.server_pids()
        for mode in ("raise", "fail"):
            with self.subTest(mode=mode):
                # A broken release of the example's app (another program, so named).
                done = self.daemon.deploy(support.PYTHON + [BAD_SERVER, mode, RESOURCE],
                                          options=["--name", "http_server_example"])
                self.assert_old_one_kept(address, old_pids, done)
        self.assertIn("bad_server: configuration broken", self.daemon.output.text())

    def test_error_reply_raises_with_the_daemons_text(self):
        address = self.start_example()
        old_pids = self.daemon.server_pids()
        done = self.daemon.deploy(support.PYTHON + [BAD_SERVER, "badresource", RESOURCE])
        self.assert_old_one_kept(address, old_pids, done)
        log = self.daemon.output.text()
        self.assertRegex(log, r"bad_server: RequestError: .*no-such-resource")

    def test_asyncio_example_swaps_and_drains(self):
        command = support.PYTHON + [os.path.join(support.EXAMPLES, "asyncio_example.py"),
                                    RESOURCE]
        for _ in range(2):
            done = self.daemon.deploy(command)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertEqual(get(self.daemon.address_of(RESOURCE)), (200, b"Hello from asyncio!\n"))
        self.assertIn("drained, exiting", self.daemon.output.text())


if __name__ == "__main__":
    unittest.main()
