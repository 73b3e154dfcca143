"""Process, socket and /proc helpers shared by swapbench.py and scale.py.

Every wait here has a deadline; processes are ended by pid, and only when their
/proc/PID/cmdline still names what we started (never by name).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Deadlines (seconds). Every loop is bounded by one of these.
SOCKET_WAIT_S = 10.0       # daemon control socket appears
ACCEPT_WAIT_S = 10.0       # a new server accepts connections
OLD_GONE_WAIT_S = 30.0     # an old server exits after SIGTERM / takeDown
SWAP_CMD_TIMEOUT_S = 60.0  # one `serverswap -- SERVER` deploy command
STOP_WAIT_S = 30.0         # `serverswap stop` and the daemon's exit


def log(msg):
    print(f"[swapbench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free ports (held open together while picking, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def accepts(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_accepting(port, deadline_s=ACCEPT_WAIT_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if accepts(port):
            return True
        time.sleep(0.002)
    return False


def wait_for_path(path, proc, deadline_s=SOCKET_WAIT_S):
    end = time.monotonic() + deadline_s
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not appear within {deadline_s:g} s")
        time.sleep(0.01)


def pid_alive(pid):
    """True while the process exists and is not a zombie (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def wait_gone(pid, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.001)
    return not pid_alive(pid)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def end_pid(pid, expect_in_cmdline, grace_s=10.0):
    """SIGTERM, then SIGKILL after grace_s; only if the pid still runs what we started."""
    if not pid or not pid_alive(pid) or expect_in_cmdline not in cmdline(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, grace_s):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 2.0)


def proc_usage(pid):
    """Memory (KiB) and CPU time of a live process: VmRSS, Pss, private (clean+dirty),
    anonymous, and utime+stime in seconds. Values it cannot read are None."""
    usage = {"rss_kib": None, "pss_kib": None, "private_kib": None, "anon_kib": None,
             "cpu_s": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    usage["rss_kib"] = int(line.split()[1])
        rollup = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    rollup[parts[0][:-1]] = int(parts[1])
        usage["pss_kib"] = rollup.get("Pss")
        usage["private_kib"] = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
        usage["anon_kib"] = rollup.get("Anonymous")
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        usage["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return usage


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def server_env(extra=None):
    """Environment for a server outside serverswap: no serverswap variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVERSWAP_")}
    env.update(extra or {})
    return env


def status_pids(serverswap, sock):
    try:
        out = subprocess.run([serverswap, "--socket", sock, "status", "--json"],
                             capture_output=True, text=True, timeout=10).stdout
        return [s["pid"] for s in json.loads(out).get("servers", [])]
    except (subprocess.SubprocessError, ValueError, KeyError, OSError):
        return []


def failed_samples(samples_path, limit=20):
    """The first `limit` failed requests of a verify --samples file: (completed_ms, kind)."""
    out = []
    try:
        with open(samples_path) as f:
            for line in f:
                t, _, outcome = line.rstrip("\n").split(",")
                if outcome not in ("ok", "outcome"):
                    out.append((float(t), outcome))
                    if len(out) >= limit:
                        break
    except (OSError, ValueError):
        pass
    return out


def percentiles(values):
    """p50, p99, p99.9 and max of a list (nearest rank), or Nones when empty."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "p999": None, "max": None}
    v = sorted(values)

    def rank(q):
        return v[min(len(v) - 1, max(0, int(q * len(v) + 0.999999) - 1))]
    return {"n": len(v), "p50": rank(0.50), "p99": rank(0.99), "p999": rank(0.999),
            "max": v[-1]}


class Daemon:
    """A serverswap daemon of our own, on a socket in `rdir`; stop() ends it and its servers."""

    def __init__(self, serverswap, rdir, log_file, env=None):
        self.serverswap = serverswap
        self.sock = os.path.join(rdir, "control.sock")
        self.log_file = log_file
        self.proc = subprocess.Popen([serverswap, "--socket", self.sock, "daemon"],
                                     stdin=subprocess.DEVNULL, stdout=log_file,
                                     stderr=log_file, start_new_session=True, env=env)
        wait_for_path(self.sock, self.proc)

    def deploy(self, argv, env=None):
        rc = subprocess.run([self.serverswap, "--socket", self.sock, "--quiet", "--"] + argv,
                            stdout=subprocess.DEVNULL, stderr=self.log_file, env=env,
                            timeout=SWAP_CMD_TIMEOUT_S).returncode
        if rc != 0:
            raise RuntimeError(f"deploy {argv[0]} failed ({rc})")

    def stop(self, server_name):
        server_pids = status_pids(self.serverswap, self.sock) if self.proc.poll() is None else []
        try:
            subprocess.run([self.serverswap, "--socket", self.sock, "stop"],
                           stdout=subprocess.DEVNULL, stderr=self.log_file, timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            end_pid(self.proc.pid, "serverswap", grace_s=5.0)
            self.proc.wait(timeout=5)
        for p in server_pids:
            end_pid(p, server_name, grace_s=5.0)
