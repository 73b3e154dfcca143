"""Inherited listening sockets (LISTEN_FDS, SERVER_STARTER_PORT, EINHORN_FD_n): the parsers,
matching against real sockets, and ready_for standalone, under a fake daemon (no readyFor
sent) and, for systemd's fds from 3, in a child process."""
import json
import os
import socket
import subprocess
import tempfile
import unittest
from unittest import mock

import support
import serverswap
from serverswap import inherited
from serverswap.inherited import Inherited
from test_protocol import FakeDaemon

CONVENTION_VARIABLES = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "SERVER_STARTER_PORT",
                        "EINHORN_FD_COUNT", "EINHORN_FD_0", "SERVERSWAP_SOCKET", "SERVERSWAP_ID"]


def listener(family=socket.AF_INET, address=("127.0.0.1", 0)):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(16)
    return sock


def environment(**variables):
    """os.environ with none of the conventions' variables but `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in CONVENTION_VARIABLES}
    env.update(variables)
    return mock.patch.dict(os.environ, env, clear=True)


class ParseTest(unittest.TestCase):
    def test_systemd_only_for_its_own_pid(self):
        env = {"LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web:admin"}
        self.assertEqual(inherited.parse_systemd(env, 42),
                         ("LISTEN_FDS", [Inherited(3, "web"), Inherited(4, "admin")]))
        self.assertEqual(inherited.parse_systemd(env, 41), ("", []))
        self.assertEqual(inherited.parse_systemd({"LISTEN_FDS": "1", "LISTEN_PID": "42"}, 42),
                         ("LISTEN_FDS", [Inherited(3, "")]))
        with self.assertRaisesRegex(ValueError, "names 1 descriptors but LISTEN_FDS=2"):
            inherited.parse_systemd(dict(env, LISTEN_FDNAMES="web"), 42)
        with self.assertRaises(ValueError):
            inherited.parse_systemd(dict(env, LISTEN_FDS="x"), 42)

    def test_server_starter_as_it_spells_it(self):
        convention, found = inherited.parse_server_starter(
            "8080=3;127.0.0.1:8081=4;[::1]:8082=5;/run/a=b.sock=6;")
        self.assertEqual(convention, "SERVER_STARTER_PORT")
        self.assertEqual([s.fd for s in found], [3, 4, 5, 6])
        for bad in ["8080", "=3", "8080=x", ""]:
            with self.assertRaises(ValueError, msg=bad):
                inherited.parse_server_starter(bad)

    def test_einhorn(self):
        env = {"EINHORN_FD_COUNT": "2", "EINHORN_FD_0": "7", "EINHORN_FD_1": "9"}
        self.assertEqual(inherited.parse_einhorn(env),
                         ("EINHORN_FD_COUNT", [Inherited(7), Inherited(9)]))
        with self.assertRaisesRegex(ValueError, "EINHORN_FD_1=: not a number"):
            inherited.parse_einhorn({"EINHORN_FD_COUNT": "2", "EINHORN_FD_0": "7"})

    def test_first_convention_present_wins_and_malformed_ones_are_skipped(self):
        env = {"LISTEN_FDS": "1", "LISTEN_PID": "42", "SERVER_STARTER_PORT": "8080=5",
               "EINHORN_FD_COUNT": "1", "EINHORN_FD_0": "6"}
        self.assertEqual(inherited.read(env, 42)[1], [Inherited(3)])
        self.assertEqual(inherited.read(env, 43)[1], [Inherited(5)])  # a forked worker
        logged = []
        self.assertEqual(inherited.read(dict(env, SERVER_STARTER_PORT="junk"), 43, logged.append),
                         ("EINHORN_FD_COUNT", [Inherited(6)]))
        self.assertEqual(len(logged), 1)
        self.assertEqual(inherited.read({}, 42), ("", []))


class MatchTest(unittest.TestCase):
    def test_by_the_sockets_own_address(self):
        with listener() as v4:
            fd, port = v4.fileno(), v4.getsockname()[1]
            self.assertTrue(inherited.listens_on(fd, "127.0.0.1:%d" % port))
            self.assertTrue(inherited.listens_on(fd, ":%d" % port))
            self.assertFalse(inherited.listens_on(fd, "127.0.0.2:%d" % port))
            self.assertFalse(inherited.listens_on(fd, "[::1]:%d" % port))
            self.assertFalse(inherited.listens_on(fd, "127.0.0.1:0"))
            self.assertFalse(inherited.listens_on(fd, "web"))
        with tempfile.TemporaryDirectory() as d, \
                listener(socket.AF_UNIX, os.path.join(d, "a.sock")) as local:
            self.assertTrue(inherited.listens_on(local.fileno(), "unix:" + d + "/a.sock"))
            self.assertFalse(inherited.listens_on(local.fileno(), "unix:" + d + "/b.sock"))
        with socket.socket() as unbound:
            self.assertFalse(inherited.listens_on(unbound.fileno(), ":0"))
        self.assertFalse(inherited.listens_on(-1, ":1"))


class ClientTest(unittest.TestCase):
    def test_standalone_uses_the_inherited_socket_twice(self):
        with listener() as original:
            port = original.getsockname()[1]
            with environment(SERVER_STARTER_PORT="%d=%d" % (port, original.fileno())):
                client = serverswap.Client()
                first = client.ready_for(":%d" % port)
                second = client.ready_for("127.0.0.1:%d" % port)
            self.assertFalse(first.getblocking())
            self.assertNotEqual(first.fileno(), original.fileno())
            self.assertFalse(os.get_inheritable(original.fileno()))
            self.assertEqual(client.address(":%d" % port), "127.0.0.1:%d" % port)
            first.close()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                conn, _ = original.accept()  # queued already
                conn.close()
            second.close()

    def test_a_conflicting_bind_names_what_was_inherited(self):
        with listener(address=("0.0.0.0", 0)) as original:
            port = original.getsockname()[1]
            with environment(EINHORN_FD_COUNT="1", EINHORN_FD_0=str(original.fileno())):
                client = serverswap.Client()
                with self.assertRaises(OSError) as raised:
                    client.ready_for("127.0.0.1:%d" % port)
            self.assertIn("(inherited through EINHORN_FD_COUNT: fd %d 0.0.0.0:%d)"
                          % (original.fileno(), port), str(raised.exception))

    def test_managed_sends_no_ready_for_but_the_rest(self):
        with listener() as original:
            resource = "127.0.0.1:%d" % original.getsockname()[1]
            daemon = FakeDaemon()
            self.addCleanup(daemon.close)
            with environment(SERVER_STARTER_PORT="%s=%d" % (resource, original.fileno())):
                client = daemon.connect(up_message=True)
                self.addCleanup(client.close)
                sock = client.ready_for(resource)
            sock.close()
            client.on_takedown(resource, lambda r: None)
            client.server_up()
            self.assertEqual(daemon.read_message(), {"onTakedown": resource})  # no readyFor
            self.assertEqual(daemon.read_message(), {"serverUp": True})


# Run in a child: puts the given fds at 3, 4, ... and sets LISTEN_* for its own pid, as
# systemd or serverswap --listen does, then asks for each resource in argv.
SYSTEMD_CHILD = r"""
import json, os, sys
fds = [os.dup(int(fd)) for fd in os.environ.pop("TEST_FDS").split(",")]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()),
                  LISTEN_FDNAMES="web:other")
import serverswap
client = serverswap.Client()
out = {}
for resource in sys.argv[1:]:
    try:
        out[resource] = client.ready_for(resource).getsockname()[:2]
    except Exception as e:
        out[resource] = str(e)
print(json.dumps(out))
"""


class SystemdTest(unittest.TestCase):
    def test_fds_from_three_by_name_and_address(self):
        with listener() as web, socket.socket() as not_listening:
            port = web.getsockname()[1]
            env = support.clean_env(TEST_FDS="%d,%d" % (web.fileno(), not_listening.fileno()))
            for name in CONVENTION_VARIABLES:
                env.pop(name, None)
            out = subprocess.run(support.PYTHON + ["-c", SYSTEMD_CHILD, "web",
                                                   "127.0.0.1:%d" % port, "other"],
                                 env=env, pass_fds=(web.fileno(), not_listening.fileno()),
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            got = json.loads(out.stdout)
            self.assertEqual(got["web"], ["127.0.0.1", port])
            self.assertEqual(got["127.0.0.1:%d" % port], ["127.0.0.1", port])
            self.assertEqual(got["other"], "readyFor other: inherited fd 4 (LISTEN_FDNAMES "
                             "other) is not a listening stream socket")


if __name__ == "__main__":
    unittest.main()
