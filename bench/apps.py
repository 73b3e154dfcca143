#!/usr/bin/env python3
"""The daemon's cost per app: its anonymous memory and `status --json` time with N apps.

Each app is one hello_server (the C++ client library: a control connection, an output
pipe, a NOTIFY_SOCKET, a listening Unix socket of its own) deployed as a command of its
own, or with --kind sleep one `sleep` under --ready-after (no connection). The daemon's
anonymous memory (smaps_rollup "Anonymous") is read before the first deploy and after the
last, the difference divided by N; `status --json` is timed 7 times and the median and the
slowest are reported. Goals (issue 13): at most 16 KiB of anonymous memory per app, and
`status --json` under 50 ms with 1,000 apps. Measured side by side with the baseline of
the same daemon (0 apps) in one run, so the machine's noise cancels out of the ratio.

  python3 bench/apps.py [--apps 1000] [--kind hello|sleep] [--parallel 50] [--bin build/bin]

Exit status 1 if a deploy fails or a goal is missed. Every process it starts is ended by pid.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib as b

MEMORY_GOAL_KIB = 16
STATUS_GOAL_MS = 50.0
DEPLOY_DEADLINE_S = 600.0  # the whole deploy phase, bounded


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--kind", choices=("hello", "sleep"), default="hello")
    p.add_argument("--parallel", type=int, default=50, help="deploys at once")
    p.add_argument("--bin", default=os.path.join(b.ROOT, "build", "bin"))
    return p.parse_args()


def app_argv(a, i, rdir):
    # Each is an app of its own (--name): one program's deploys are otherwise versions of
    # one app, each replacing the last.
    name = ["--name", f"app-{i}"]
    if a.kind == "sleep":
        return name + ["--ready-after", "10ms", "--", "/bin/sleep", str(100000 + i)]
    return name + ["--", os.path.join(a.bin, "hello_server"), f"unix:{rdir}/app-{i}.sock"]


def time_status(serverswap, sock, runs=7):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([serverswap, "--socket", sock, "status", "--json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True)
        times.append((time.monotonic() - start) * 1000)
    return statistics.median(times), max(times)


def main():
    a = parse_args()
    serverswap = os.path.join(a.bin, "serverswap")
    rdir = tempfile.mkdtemp(prefix="serverswap-apps-")
    os.chmod(rdir, 0o700)
    log_path = os.path.join(rdir, "daemon.log")
    ok = True
    with open(log_path, "wb") as log_file:
        daemon = b.Daemon(serverswap, rdir, log_file)
        try:
            base_kib = b.proc_usage(daemon.proc.pid)["anon_kib"]
            base_ms, _ = time_status(serverswap, daemon.sock)
            deadline = time.monotonic() + DEPLOY_DEADLINE_S

            def deploy(i):
                if time.monotonic() > deadline:
                    return 124
                return subprocess.run([serverswap, "--socket", daemon.sock, "--quiet"]
                                      + app_argv(a, i, rdir), stdout=subprocess.DEVNULL,
                                      stderr=log_file, timeout=b.SWAP_CMD_TIMEOUT_S).returncode

            start = time.monotonic()
            with ThreadPoolExecutor(max_workers=a.parallel) as pool:
                codes = list(pool.map(deploy, range(a.apps)))
            deploy_s = time.monotonic() - start
            failed = sum(1 for c in codes if c != 0)
            servers = len(b.status_pids(serverswap, daemon.sock))
            usage = b.proc_usage(daemon.proc.pid)
            status_ms, status_max_ms = time_status(serverswap, daemon.sock)
            per_app = (usage["anon_kib"] - base_kib) / max(1, servers)
            b.log(f"apps: {a.apps} deployed ({a.kind}), {failed} failed, {servers} up, "
                  f"in {deploy_s:.1f} s")
            b.log(f"daemon anonymous memory: {base_kib} KiB with 0 apps, {usage['anon_kib']} KiB "
                  f"with {servers}: {per_app:.1f} KiB per app (goal <= {MEMORY_GOAL_KIB})")
            b.log(f"daemon open fds: {b.fd_count(daemon.proc.pid)}")
            b.log(f"status --json: {base_ms:.1f} ms with 0 apps, {status_ms:.1f} ms median "
                  f"({status_max_ms:.1f} ms slowest of 7) with {servers} (goal < "
                  f"{STATUS_GOAL_MS:g} ms)")
            ok = failed == 0 and servers == a.apps and per_app <= MEMORY_GOAL_KIB \
                and status_ms < STATUS_GOAL_MS
        finally:
            daemon.stop("hello_server" if a.kind == "hello" else "sleep")
    if ok:
        shutil.rmtree(rdir, ignore_errors=True)
    else:
        b.log(f"a goal was missed or a deploy failed; the daemon's log: {log_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
