#!/usr/bin/env python3
"""The daemon's cost per app: its anonymous memory and `status --json` time with N apps.

Each app is deployed as an app of its own (`--name app-N`). With --kind sleep (the default)
it is one `sleep` under `--ready-after 10ms`: the cheapest app for the daemon besides the
app's own state (its server record, process handle, output pipe, NOTIFY_SOCKET, timers and
remembered settings), since it holds no control connection. With --kind hello it is one
hello_server on a Unix socket of its own (the C++ client library: a control connection
too). The daemon's anonymous memory (smaps_rollup "Anonymous") is read before the first
deploy and 1 s after the last (before any `status`), the difference divided by the apps
up, and again after the `status` calls; `status --json` (the CLI started, connected,
answered and exited) is timed 15 times with N apps, the median and the slowest reported.

Several builds are measured side by side in one run (`--bin DIR` given more than once, the
first is the one the goals are checked on): each build's daemon is deployed to in turn and
kept running, then the `status --json` calls go to each daemon in turn, round after round,
so that a before/after comparison shares the machine's noise. The deploys carry this
script's environment (its size is printed; --env-bytes pads it): each server keeps its
deploy's environment, so a larger one costs more per app.

Goals (issue 13): at most 16 KiB of anonymous memory per app, and `status --json` under
50 ms, with 1,000 apps.

  python3 bench/apps.py [--apps 1000] [--kind sleep|hello] [--parallel 16] [--env-bytes N]
                        [--bin build/bin [--bin OTHER/bin ...]] [--json FILE]

Exit status 1 if a deploy fails or a goal is missed on the first build. Every process it
starts is ended by pid; each daemon's deploy phase is bounded (DEPLOY_DEADLINE_S).
"""

import argparse
import json
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
STATUS_RUNS = 15
DEPLOY_DEADLINE_S = 90.0  # one daemon's deploy phase, bounded
IDLE_BEFORE_READING_S = 1.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--kind", choices=("hello", "sleep"), default="sleep")
    p.add_argument("--parallel", type=int, default=16, help="deploys at once")
    p.add_argument("--bin", action="append", default=None,
                   help="a build's bin directory; repeat to compare builds (default build/bin)")
    p.add_argument("--env-bytes", type=int, default=0,
                   help="pad the deploys' environment to this many bytes (one variable "
                        "BENCH_PAD; 0: as it is)")
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    a.bin = a.bin or [os.path.join(b.ROOT, "build", "bin")]
    return a


def app_argv(a, bindir, i, rdir):
    # Each is an app of its own (--name): one program's deploys are otherwise versions of
    # one app, each replacing the last.
    name = ["--name", f"app-{i}"]
    if a.kind == "sleep":
        return name + ["--ready-after", "10ms", "--", "/bin/sleep", str(100000 + i)]
    return name + ["--", os.path.join(bindir, "hello_server"), f"unix:{rdir}/app-{i}.sock"]


def time_status_once(serverswap, sock):
    start = time.monotonic()
    subprocess.run([serverswap, "--socket", sock, "status", "--json"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True)
    return (time.monotonic() - start) * 1000


def time_status_side_by_side(runs):
    """`status --json` of every build's daemon in turn, `STATUS_RUNS` rounds: each build's
    times, measured interleaved so that the machine's noise falls on all alike."""
    times = [[] for _ in runs]
    for k in range(STATUS_RUNS):
        # Each round starts at the next build: none is always first after a pause.
        for j in range(len(runs)):
            i = (k + j) % len(runs)
            times[i].append(time_status_once(runs[i].serverswap, runs[i].daemon.sock))
    return times


class Run:
    """One daemon of the build in `bindir`, with its apps; stop() ends it and them by pid."""

    def __init__(self, a, bindir, env):
        self.a, self.env = a, env
        self.serverswap = os.path.join(bindir, "serverswap")
        self.rdir = tempfile.mkdtemp(prefix="serverswap-apps-")
        os.chmod(self.rdir, 0o700)
        self.log_path = os.path.join(self.rdir, "daemon.log")
        self.log_file = open(self.log_path, "wb")
        self.r = {"bin": bindir, "kind": a.kind, "apps": a.apps}
        self.daemon = b.Daemon(self.serverswap, self.rdir, self.log_file, env=env)

    def deploy_all(self):
        a, r, sock = self.a, self.r, self.daemon.sock
        r["base_anon_kib"] = b.proc_usage(self.daemon.proc.pid)["anon_kib"]
        r["base_status_ms"] = statistics.median(
            time_status_once(self.serverswap, sock) for _ in range(3))
        deadline = time.monotonic() + DEPLOY_DEADLINE_S

        def deploy(i):
            if time.monotonic() > deadline:
                return 124
            return subprocess.run([self.serverswap, "--socket", sock, "--quiet"]
                                  + app_argv(a, r["bin"], i, self.rdir),
                                  stdout=subprocess.DEVNULL, stderr=self.log_file,
                                  env=self.env, timeout=b.SWAP_CMD_TIMEOUT_S).returncode

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=a.parallel) as pool:
            codes = list(pool.map(deploy, range(a.apps)))
        r["deploy_s"] = time.monotonic() - start
        r["failed"] = sum(1 for c in codes if c != 0)
        # The last --ready-after timers fire and their state writes finish (nothing to wait
        # on from outside: the daemon is idle after this).
        time.sleep(IDLE_BEFORE_READING_S)
        usage = b.proc_usage(self.daemon.proc.pid)
        r["anon_kib"] = usage["anon_kib"]
        r["rss_kib"] = usage["rss_kib"]
        r["fds"] = b.fd_count(self.daemon.proc.pid)
        r["up"] = len(b.status_pids(self.serverswap, sock))
        r["per_app_kib"] = (r["anon_kib"] - r["base_anon_kib"]) / max(1, r["up"])

    def stop(self):
        self.daemon.stop("hello_server" if self.a.kind == "hello" else "sleep")
        self.log_file.close()
        self.r["ok"] = self.r.get("failed", 1) == 0 and self.r.get("up") == self.a.apps
        if self.r["ok"]:
            shutil.rmtree(self.rdir, ignore_errors=True)
        else:
            b.log(f"{self.r['bin']}: a deploy failed or an app is not up; the daemon's log: "
                  f"{self.log_path}")


def main():
    a = parse_args()
    # The deploys' environment: this script's, without serverswap's own variables.
    env = b.server_env()
    env_bytes = sum(len(k) + len(v) + 2 for k, v in env.items())
    if a.env_bytes > env_bytes + 32:
        env["BENCH_PAD"] = "x" * (a.env_bytes - env_bytes - len("BENCH_PAD") - 2)
        env_bytes = a.env_bytes
    b.log(f"{a.apps} apps ({a.kind}) per build, {a.parallel} deploys at once; the deploys' "
          f"environment: {len(env)} variables, {env_bytes} bytes")
    runs = []
    try:
        # One build's deploys at a time (each its own daemon, kept running), then the status
        # calls of all of them interleaved.
        for bindir in a.bin:
            runs.append(Run(a, bindir, env))
            runs[-1].deploy_all()
            r = runs[-1].r
            b.log(f"{bindir}: {r.get('up')} up, {r.get('failed')} failed, deployed in "
                  f"{r.get('deploy_s', 0):.1f} s")
        for run, times in zip(runs, time_status_side_by_side(runs)):
            run.r["status_ms"], run.r["status_max_ms"] = statistics.median(times), max(times)
            run.r["anon_after_status_kib"] = b.proc_usage(run.daemon.proc.pid)["anon_kib"]
    finally:
        for run in runs:
            run.stop()
    results = [run.r for run in runs]
    print(f"\n| build | apps up | daemon anon KiB, 0 apps -> {a.apps} | KiB per app "
          f"(goal <= {MEMORY_GOAL_KIB}) | anon KiB after the status calls | status --json ms, "
          f"0 apps | median / slowest of {STATUS_RUNS}, {a.apps} apps (goal < "
          f"{STATUS_GOAL_MS:g}) | deploys s | daemon fds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['bin']} | {r.get('up')} | {r.get('base_anon_kib')} -> {r.get('anon_kib')} | "
              f"**{r.get('per_app_kib', float('nan')):.1f}** | {r.get('anon_after_status_kib')} | "
              f"{r.get('base_status_ms', 0):.1f} | "
              f"**{r.get('status_ms', 0):.1f}** / {r.get('status_max_ms', 0):.1f} | "
              f"{r.get('deploy_s', 0):.1f} | {r.get('fds')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"env_bytes": env_bytes, "results": results}, f, indent=1)
    first = results[0]
    ok = all(r["ok"] for r in results) and first["per_app_kib"] <= MEMORY_GOAL_KIB \
        and first["status_ms"] < STATUS_GOAL_MS
    if not ok:
        b.log("a goal was missed on the first build, or a deploy failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
