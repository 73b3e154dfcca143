#!/usr/bin/env python3
"""The daemon's cost per app: its anonymous memory and `status --json` time with N apps.

Each app is deployed as an app of its own (`--name app-N`). With --kind sleep (the default)
it is one `sleep` under `--ready-after 10ms`: the cheapest app for the daemon besides the
app's own state (its server record, process handle, output pipe, NOTIFY_SOCKET, timers and
remembered settings), since it holds no control connection. With --kind hello it is one
hello_server on a Unix socket of its own (the C++ client library: a control connection
too). The daemon's anonymous memory (smaps_rollup "Anonymous") is read before the first
deploy and 1 s after the last (before any `status`), the difference divided by the apps
up, and again after the `status` calls; `status --json` (the CLI
started, connected, answered and exited) is timed 9 times before and after, the median and
the slowest reported.

Several builds are measured side by side in one run (`--bin DIR` given more than once, the
first is the one the goals are checked on), so that a before/after comparison shares the
machine's noise. The deploys carry this script's environment (its size is printed): each
server keeps its deploy's environment, so a larger one costs more per app.

Goals (issue 13): at most 16 KiB of anonymous memory per app, and `status --json` under
50 ms, with 1,000 apps.

  python3 bench/apps.py [--apps 1000] [--kind sleep|hello] [--parallel 16]
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
STATUS_RUNS = 9
DEPLOY_DEADLINE_S = 90.0  # one daemon's deploy phase, bounded
IDLE_BEFORE_READING_S = 1.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--kind", choices=("hello", "sleep"), default="sleep")
    p.add_argument("--parallel", type=int, default=16, help="deploys at once")
    p.add_argument("--bin", action="append", default=None,
                   help="a build's bin directory; repeat to compare builds (default build/bin)")
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


def time_status(serverswap, sock, runs=STATUS_RUNS):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([serverswap, "--socket", sock, "status", "--json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True)
        times.append((time.monotonic() - start) * 1000)
    return statistics.median(times), max(times)


def measure(a, bindir, env):
    """One daemon of the build in `bindir`: 0 apps, then a.apps apps. The figures, as a dict."""
    serverswap = os.path.join(bindir, "serverswap")
    rdir = tempfile.mkdtemp(prefix="serverswap-apps-")
    os.chmod(rdir, 0o700)
    log_path = os.path.join(rdir, "daemon.log")
    r = {"bin": bindir, "kind": a.kind, "apps": a.apps}
    with open(log_path, "wb") as log_file:
        daemon = b.Daemon(serverswap, rdir, log_file, env=env)
        try:
            r["base_anon_kib"] = b.proc_usage(daemon.proc.pid)["anon_kib"]
            r["base_status_ms"], _ = time_status(serverswap, daemon.sock)
            deadline = time.monotonic() + DEPLOY_DEADLINE_S

            def deploy(i):
                if time.monotonic() > deadline:
                    return 124
                return subprocess.run([serverswap, "--socket", daemon.sock, "--quiet"]
                                      + app_argv(a, bindir, i, rdir), stdout=subprocess.DEVNULL,
                                      stderr=log_file, env=env,
                                      timeout=b.SWAP_CMD_TIMEOUT_S).returncode

            start = time.monotonic()
            with ThreadPoolExecutor(max_workers=a.parallel) as pool:
                codes = list(pool.map(deploy, range(a.apps)))
            r["deploy_s"] = time.monotonic() - start
            r["failed"] = sum(1 for c in codes if c != 0)
            # The last --ready-after timers fire and their state writes finish (no waiting
            # on an event is possible from outside: the daemon is idle after this).
            time.sleep(IDLE_BEFORE_READING_S)
            usage = b.proc_usage(daemon.proc.pid)
            r["anon_kib"] = usage["anon_kib"]
            r["rss_kib"] = usage["rss_kib"]
            r["fds"] = b.fd_count(daemon.proc.pid)
            r["up"] = len(b.status_pids(serverswap, daemon.sock))
            r["status_ms"], r["status_max_ms"] = time_status(serverswap, daemon.sock)
            r["anon_after_status_kib"] = b.proc_usage(daemon.proc.pid)["anon_kib"]
            r["per_app_kib"] = (r["anon_kib"] - r["base_anon_kib"]) / max(1, r["up"])
        finally:
            daemon.stop("hello_server" if a.kind == "hello" else "sleep")
    r["ok"] = r.get("failed", 1) == 0 and r.get("up") == a.apps
    if r["ok"]:
        shutil.rmtree(rdir, ignore_errors=True)
    else:
        b.log(f"{bindir}: a deploy failed or an app is not up; the daemon's log: {log_path}")
    return r


def main():
    a = parse_args()
    # The deploys' environment: this script's, without serverswap's own variables.
    env = b.server_env()
    env_bytes = sum(len(k) + len(v) + 2 for k, v in env.items())
    b.log(f"{a.apps} apps ({a.kind}) per build, {a.parallel} deploys at once; the deploys' "
          f"environment: {len(env)} variables, {env_bytes} bytes")
    results = []
    for bindir in a.bin:
        r = measure(a, bindir, env)
        results.append(r)
        b.log(f"{bindir}: {r.get('up')} up, {r.get('failed')} failed, deployed in "
              f"{r.get('deploy_s', 0):.1f} s")
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
