#!/usr/bin/env python3
"""soak: many swaps under load; does anything fail, and does the daemon grow?

Starts a serverswap daemon and hello_server on 127.0.0.1, puts HTTP load on it (a new
connection per request, paced), and deploys the same command again --swaps times, one
after the other. Every --sample-every swaps it samples the daemon's resident memory
(VmRSS from /proc/PID/status) and its open descriptors (/proc/PID/fd). At the end it
prints the totals and the samples and writes them as JSON (--out).

Exit status 0 when every swap succeeded, no request failed, and the daemon's fd count at
the end equals the one at the start; 1 otherwise. Not part of ctest: a benchmark, bounded
by --max-seconds, not a timed test.

Python 3 standard library only. Loopback only; every wait has a deadline; every process
this script starts is ended by its pid (never by name), also on error or SIGINT/SIGTERM.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Deadlines (seconds). Every wait below is bounded by one of these.
SOCKET_WAIT_S = 10.0   # the daemon's control socket appears
DEPLOY_TIMEOUT_S = 60.0  # one `serverswap -- hello_server` deploy
STOP_WAIT_S = 30.0     # `serverswap stop` and the daemon's exit
LOAD_START_S = 10.0    # the first successful request
DRAIN_GRACE_S = "2"    # hello_server's grace for idle connections when taken down


class Load:
    """Paced HTTP GETs, one connection per request, from a few threads."""

    KINDS = ("ok", "refused", "reset", "timeout", "other")

    def __init__(self, host, port, clients, rate, timeout):
        self.address = (host, port)
        self.clients = clients
        self.interval = clients / rate
        self.timeout = timeout
        self.counts = {k: 0 for k in self.KINDS}
        self.errors = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def ok(self):
        with self.lock:
            return self.counts["ok"]

    def failed(self):
        with self.lock:
            return sum(v for k, v in self.counts.items() if k != "ok")

    def _run(self):
        next_at = time.monotonic()
        while not self.stopping.is_set():
            kind, error = self._request()
            with self.lock:
                self.counts[kind] += 1
                if error:
                    self.errors[error] = self.errors.get(error, 0) + 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)  # pacing, not synchronisation
            else:
                next_at = time.monotonic()

    def _request(self):
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello World!\n"):
                return "ok", None
            return "other", "unexpected response: %r" % data[:60]
        except ConnectionRefusedError as e:
            return "refused", str(e)
        except (ConnectionResetError, BrokenPipeError) as e:
            return "reset", str(e)
        except socket.timeout as e:
            return "timeout", "timeout: %s" % e
        except OSError as e:
            return "other", str(e)


def daemon_sample(pid, swaps, started):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    # The connection of the command that just deployed closes asynchronously in the daemon:
    # the lowest of a few readings 20 ms apart.
    fds = 1 << 30
    for _ in range(5):
        fds = min(fds, len(os.listdir("/proc/%d/fd" % pid)))
        time.sleep(0.02)
    return {"t_s": round(time.monotonic() - started, 1), "swaps": swaps, "rss_kib": rss, "fds": fds}


def ours(pid, name):
    """True when pid is still a process running `name` (checked before signalling it)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return name.encode() in f.read()
    except OSError:
        return False


def run(args):
    serverswap = os.path.join(args.bin, "serverswap")
    hello = os.path.join(args.bin, "hello_server")
    for program in (serverswap, hello):
        if not os.access(program, os.X_OK):
            sys.exit("soak: %s not found; build first (see bench/README.md)" % program)
    workdir = tempfile.mkdtemp(prefix="serverswap-soak-")
    os.chmod(workdir, 0o700)
    control = os.path.join(workdir, "control.sock")
    base = [serverswap, "--socket", control]
    env = dict(os.environ, SERVERSWAP_DRAIN_GRACE=DRAIN_GRACE_S)
    env.pop("SERVERSWAP_SOCKET", None)
    log = open(os.path.join(workdir, "daemon.log"), "w")
    daemon = subprocess.Popen(base + ["--takedown-timeout", "10s", "daemon"], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    server_pids = set()
    load = None
    result = {"settings": vars(args), "swaps_ok": 0, "swaps_failed": 0, "samples": []}

    def status():
        out = subprocess.run(base + ["status", "--json"], capture_output=True, text=True,
                             timeout=DEPLOY_TIMEOUT_S, check=True).stdout
        return json.loads(out)

    def deploy():
        done = subprocess.run(base + ["-q", "--", hello, "127.0.0.1:0"], capture_output=True,
                              text=True, timeout=DEPLOY_TIMEOUT_S, env=env)
        return done.returncode, done.stderr

    try:
        deadline = time.monotonic() + SOCKET_WAIT_S
        while not os.path.exists(control):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("the daemon did not start; log in %s" % workdir)
            time.sleep(0.02)
        code, text = deploy()
        if code != 0:
            raise RuntimeError("first deploy failed: " + text)
        current = status()
        address = current["daemon"]["resources"][0]["address"]
        host, port = address.rsplit(":", 1)
        server_pids.update(s["pid"] for s in current["servers"])

        load = Load(host, int(port), args.clients, args.rate, args.timeout)
        load.start()
        deadline = time.monotonic() + LOAD_START_S
        while load.ok() < 10:
            if time.monotonic() > deadline:
                raise RuntimeError("the load never got going: %s" % load.errors)
            time.sleep(0.05)

        started = time.monotonic()
        result["samples"].append(daemon_sample(daemon.pid, 0, started))
        for i in range(1, args.swaps + 1):
            if time.monotonic() - started > args.max_seconds:
                print("soak: --max-seconds reached after %d swaps" % (i - 1), file=sys.stderr)
                break
            code, text = deploy()
            if code == 0:
                result["swaps_ok"] += 1
            else:
                result["swaps_failed"] += 1
                print("soak: swap %d failed: %s" % (i, text.strip()), file=sys.stderr)
            if i % args.sample_every == 0 or i == args.swaps:
                sample = daemon_sample(daemon.pid, i, started)
                sample.update(ok=load.ok(), failed=load.failed())
                result["samples"].append(sample)
                print("swaps %4d  t %6.1f s  rss %6d KiB  fds %3d  ok %7d  failed %d"
                      % (i, sample["t_s"], sample["rss_kib"], sample["fds"], sample["ok"],
                         sample["failed"]), flush=True)
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        load.stop()
        result["requests"] = dict(load.counts)
        result["errors"] = dict(load.errors)
        current = status()
        server_pids.update(s["pid"] for s in current["servers"])
    finally:
        if load:
            load.stop()
        stop = subprocess.run(base + ["stop"], capture_output=True, timeout=STOP_WAIT_S)
        try:
            daemon.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for pid in server_pids:
            if ours(pid, "hello_server"):
                os.kill(pid, signal.SIGKILL)
        log.close()
        if stop.returncode != 0:
            print("soak: serverswap stop: %s" % stop.stderr.decode().strip(), file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, total")
    parser.add_argument("--timeout", type=float, default=5, help="seconds a request may take")
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=1800, help="bound on the swap loop")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    parser.add_argument("--out", default=os.path.join(HERE, "out", "soak.json"))
    args = parser.parse_args()
    # SIGTERM runs the same cleanup as an exception (the finally block above).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: terminated"))

    result = run(args)
    first, last = result["samples"][0], result["samples"][-1]
    requests = result.get("requests", {})
    failed = sum(v for k, v in requests.items() if k != "ok")
    print("swaps ok %d/%d in %.1f s; requests ok %d, failed %d %s"
          % (result["swaps_ok"], args.swaps, result.get("elapsed_s", 0), requests.get("ok", 0),
             failed, result.get("errors") or ""))
    print("daemon RSS %d -> %d KiB (max %d); open fds %d -> %d (max %d)"
          % (first["rss_kib"], last["rss_kib"], max(s["rss_kib"] for s in result["samples"]),
             first["fds"], last["fds"], max(s["fds"] for s in result["samples"])))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    clean = (result["swaps_ok"] == args.swaps and failed == 0 and first["fds"] == last["fds"])
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
