"""A Python server under the real daemon survives a SIGKILL of the daemon: it serves on,
resumes with the next daemon (docs/protocol.md §11), and is then swapped under load with
no failed request."""
import os
import subprocess
import unittest

import support

EXAMPLE = os.path.join(support.EXAMPLES, "http_server_example.py")
DEPLOY_LOOP = os.path.join(support.HERE, "deploy_loop.py")
RESOURCE = "127.0.0.1:0"


class DaemonRestartTest(unittest.TestCase):
    def setUp(self):
        self.daemon = support.Daemon("--takedown-timeout", "20s", "--adopt-timeout", "10s")
        self.addCleanup(self.daemon.close)

    def test_server_resumes_after_sigkill_and_then_swaps_under_load(self):
        done = self.daemon.deploy(support.PYTHON + [EXAMPLE, RESOURCE, "--body", "v1\n"])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        address = self.daemon.address_of(RESOURCE)
        [old_pid] = self.daemon.server_pids()

        self.daemon.kill_and_restart()
        self.assertTrue(self.daemon.output.wait_for("resumed, up", 15), self.daemon.output.text())
        [server] = self.daemon.status()["servers"]
        self.assertEqual((server["pid"], server["state"]), (old_pid, "up"), server)
        self.assertEqual(self.daemon.address_of(RESOURCE), address)

        deploy_command = support.PYTHON + [DEPLOY_LOOP, support.SERVERSWAP_BIN,
                                           self.daemon.socket, "1", "--"] + \
            support.PYTHON + [EXAMPLE, RESOURCE, "--body", "v2\n"]
        verify = subprocess.run(
            [support.SERVERSWAP_BIN, "verify", "--duration", "6", "--clients", "4",
             "--rate", "200", "--mode", "close", address, "--"] + deploy_command,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            env=support.clean_env())
        report = verify.stdout + verify.stderr
        self.assertEqual(verify.returncode, 0, report)
        self.assertIn("failed 0", report)
        self.assertIn("deploy_loop: 1 deploys ok", report)
        # The resumed server got takeDown from the new daemon, drained and exited.
        self.assertTrue(support.wait_gone(old_pid, 30), "the resumed server did not exit")
        self.assertNotIn(old_pid, self.daemon.server_pids())


if __name__ == "__main__":
    unittest.main()
