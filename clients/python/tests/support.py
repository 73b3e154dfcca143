"""Test helpers: a real serverswap daemon in a private directory, and deploys into it."""
import json
import os
import select
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
EXAMPLES = os.path.join(PACKAGE_ROOT, "examples")
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
SERVERSWAP_BIN = os.environ.get("SERVERSWAP_BIN") or os.path.join(
    REPO_ROOT, "build", "bin", "serverswap")
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)  # the tests import the package from the checkout
PYTHON = [sys.executable, "-S"]  # -S: no site-packages scan, a faster start per deploy


def clean_env(**extra):
    """The test's environment without SERVERSWAP_* and with this package importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVERSWAP_")}
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Output:
    """Collects a child's output on a thread; lets a test wait for a line."""

    def __init__(self, stream):
        self._text = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in iter(stream.readline, ""):
            with self._changed:
                self._text.append(line)
                self._changed.notify_all()
        stream.close()

    def text(self):
        with self._changed:
            return "".join(self._text)

    def wait_for(self, needle, timeout):
        with self._changed:
            return self._changed.wait_for(lambda: needle in "".join(self._text), timeout)


class Daemon:
    """`serverswap daemon` on a socket in a fresh 0700 directory; stopped on close()."""

    def __init__(self, *options):
        self.dir = tempfile.mkdtemp(prefix="serverswap-py-")
        os.chmod(self.dir, 0o700)
        self.socket = os.path.join(self.dir, "control.sock")
        self.options = list(options)
        self._start()

    def _start(self):
        self.process = subprocess.Popen(
            [SERVERSWAP_BIN, "--socket", self.socket] + self.options + ["daemon"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=clean_env())
        self.output = Output(self.process.stdout)
        if not self.output.wait_for("daemon listening on", 10):
            self.close()
            raise RuntimeError("the daemon did not start:\n" + self.output.text())

    def kill_and_restart(self):
        """SIGKILL to the daemon (its servers go on), then a new daemon on the same socket,
        which takes them back from its state file, <socket>.state.json (docs/protocol.md §11)."""
        self.process.kill()
        self.process.wait(10)
        self._start()

    def command(self, *args, timeout=60, env=None):
        return subprocess.run([SERVERSWAP_BIN, "--socket", self.socket] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=env or clean_env())

    def deploy(self, argv, timeout=60, options=(), **env):
        """`serverswap --socket S OPTIONS... -- ARGV...` (options: `--name APP`, ...)."""
        return self.command(*options, "--", *argv, timeout=timeout, env=clean_env(**env))

    def status(self):
        done = self.command("status", "--json")
        if done.returncode != 0:
            raise RuntimeError("status failed: " + done.stdout + done.stderr)
        return json.loads(done.stdout)

    def address_of(self, resource):
        for r in self.status()["daemon"]["resources"]:
            if r["name"] == resource:
                return r["address"]
        return None

    def server_pids(self):
        return [s["pid"] for s in self.status()["servers"]]

    def close(self):
        if self.process.poll() is None:
            try:
                self.command("stop", timeout=60)
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run(["rm", "-rf", self.dir])


def process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(pid, timeout):
    """Waits for a process (not necessarily our child) to exit: a pidfd, no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)
