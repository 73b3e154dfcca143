#!/usr/bin/env python3
"""swapbench: how many requests fail while I deploy? serverswap vs. Server::Starter vs. naive.

Runs the same server (hello_server) under the same HTTP load (`serverswap verify --json`)
while K deploys happen, with each tool:

  serverswap    a daemon owns the socket; each deploy is `serverswap -- hello_server ADDR`
  start_server  Server::Starter (Debian's libserver-starter-perl) owns the socket and passes
                it in SERVER_STARTER_PORT; each deploy is SIGHUP to start_server, which
                starts a new generation, waits --interval (default 1 s) and SIGTERMs the old
  naive         hello_server standalone; each deploy is SIGTERM the old process, wait for
                it to exit, start a new one on the same port, poll connect() until it accepts

in two load modes (close: a connection per request; keepalive: reused connections),
alternating the order of the tools, each configuration --runs times. Then the scale
points (scale.py): back-to-back swaps, a server holding 64 resources, 10,000 keep-alive
connections drained through a swap. Writes OUT/results.md (also on stdout),
OUT/results.json, OUT/timeline.csv and OUT/timeline.png (gnuplot or matplotlib).

Python 3 standard library only. Loopback only; every wait has a deadline; every process
this script starts is ended by its pid (never by name), also on error or SIGTERM.

The same file is the deploy helper that `serverswap verify` runs as its deploy command:
`swapbench.py --_deploy-loop ...` performs the K swaps and records, per swap, the time
from deploy start to the old server gone and to the new server up.
"""

import argparse
import base64
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchlib as b
import scale
import tables

TOOLS = ("serverswap", "start_server", "naive")
MODES = ("close", "keepalive")
# Requests completing up to this long after a swap's old server is gone still count as
# "during the swap" (the new server's first requests, a backlog being worked off).
SWAP_TAIL_MS = 100.0
HELPER_HEADSTART_S = 2.0  # the deploy helper starts this long before its first swap
WARMUP_MS = 500.0  # the first requests of a run are neither steady nor swap


# --------------------------------------------------------------- the deploy helper (child)

def encode_cmd(argv):
    """An argv as one argument verify passes through untouched (CLI11 would split a JSON
    list's "[a, b]" into several values)."""
    return base64.urlsafe_b64encode(json.dumps(argv).encode()).decode()


def decode_cmd(text):
    return json.loads(base64.urlsafe_b64decode(text.encode()))


def ss_generations(status_file):
    """Server::Starter's status file: {generation: pid}."""
    gens = {}
    try:
        with open(status_file) as f:
            for line in f:
                gen, _, pid = line.strip().partition(":")
                if gen.isdigit() and pid.isdigit():
                    gens[int(gen)] = int(pid)
    except OSError:
        pass
    return gens


def swap_serverswap(a, server_log, entry):
    old = [] if a.fast else b.status_pids(a.serverswap, a.socket)
    t0 = time.monotonic()
    entry["t"] = t0
    try:
        rc = subprocess.run([a.serverswap, "--socket", a.socket, "--quiet", "--"]
                            + decode_cmd(a.server_cmd),
                            stdout=subprocess.DEVNULL, stderr=server_log,
                            timeout=b.SWAP_CMD_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    t_cmd = time.monotonic()
    # The command exits 0 once the new server is up and the replaced ones have exited.
    gone = all(b.wait_gone(p, b.OLD_GONE_WAIT_S) for p in old)
    t_gone = time.monotonic()
    entry.update(old_pids=old, old_gone_ms=(t_gone - t0) * 1e3, new_up_ms=(t_cmd - t0) * 1e3)
    if rc != 0:
        return f"deploy command exit {rc}"
    if not a.fast and not old:
        return "no old server found in status"
    return None if gone else "old server still alive"


def swap_start_server(a, entry):
    with open(a.state_file) as f:
        ss_pid = int(f.read().strip())
    gens = ss_generations(a.state_file + ".status")
    if not gens:
        return "no generation in the status file"
    old_gen = max(gens)
    old = gens[old_gen]
    t0 = time.monotonic()
    entry["t"] = t0
    os.kill(ss_pid, signal.SIGHUP)
    # start_server writes the new generation once it considers the new worker started
    # (--interval after the fork), just before it sends SIGTERM to the old one.
    end = t0 + b.ACCEPT_WAIT_S + a.ss_interval
    new_gen = None
    while time.monotonic() < end:
        newer = [g for g in ss_generations(a.state_file + ".status") if g > old_gen]
        if newer:
            new_gen = max(newer)
            break
        time.sleep(0.001)
    t_up = time.monotonic()
    gone = b.wait_gone(old, b.OLD_GONE_WAIT_S)
    t_gone = time.monotonic()
    entry.update(old_pids=[old], old_gone_ms=(t_gone - t0) * 1e3, new_up_ms=(t_up - t0) * 1e3)
    if new_gen is None:
        return "start_server reported no new generation"
    return None if gone else "old server still alive"


def swap_naive(a, server_log, entry):
    with open(a.state_file) as f:
        old = int(f.read().strip())
    t0 = time.monotonic()
    entry["t"] = t0
    entry["old_pids"] = [old]
    error = None
    if "hello_server" in b.cmdline(old):
        os.kill(old, signal.SIGTERM)
    if not b.wait_gone(old, b.OLD_GONE_WAIT_S):
        error = "old server ignored SIGTERM; SIGKILLed"
        b.end_pid(old, "hello_server", grace_s=0.0)
    t_gone = time.monotonic()
    proc = subprocess.Popen(decode_cmd(a.server_cmd), stdin=subprocess.DEVNULL,
                            stdout=server_log, stderr=server_log, env=b.server_env(),
                            start_new_session=True)
    with open(a.state_file + ".tmp", "w") as f:
        f.write(str(proc.pid))
    os.replace(a.state_file + ".tmp", a.state_file)
    up = b.wait_accepting(a.port)
    t_up = time.monotonic()
    entry.update(old_gone_ms=(t_gone - t0) * 1e3, new_up_ms=(t_up - t0) * 1e3,
                 new_pid=proc.pid)
    return error or (None if up else "new server did not accept within deadline")


def deploy_loop(a):
    """Runs inside `serverswap verify` as its deploy command. Must not write to stdout:
    verify's stdout is the JSON report."""
    t_start = time.monotonic()
    swaps = []
    record = {"pid": os.getpid(), "t_start": t_start, "swaps": swaps, "done": False}

    def save():
        tmp = a.result_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, a.result_file)

    save()
    hard_end = t_start + a.budget
    # Swaps are due at fixed times after the start of the load (verify tells us when that
    # was), so that a slow interpreter start does not shift them.
    origin_ns = os.environ.get("SERVERSWAP_VERIFY_START_NS")
    first = int(origin_ns) / 1e9 + a.first_at if origin_ns else t_start
    with open(a.server_log, "ab") as server_log:
        for i in range(a.swaps):
            due = first + i * a.spacing
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            if time.monotonic() > hard_end:
                swaps.append({"i": i, "ok": False, "error": "skipped: time budget exhausted"})
                continue
            entry = {"i": i, "ok": False}
            if a.tool == "serverswap":
                error = swap_serverswap(a, server_log, entry)
            elif a.tool == "start_server":
                error = swap_start_server(a, entry)
            else:
                error = swap_naive(a, server_log, entry)
            entry["ok"] = error is None
            if error:
                entry["error"] = error
            swaps.append(entry)
            if not a.fast or i == a.swaps - 1:
                save()
    record["t_end"] = time.monotonic()
    record["done"] = True
    save()
    return 0 if all(s["ok"] for s in swaps) else 1


# ------------------------------------------------------------------------ one run (parent)

def start_tool(a, tool, port, rdir, log_file):
    """Starts the first server under `tool`; returns (daemon or None, pid to end later)."""
    server = [a.hello_server, f"127.0.0.1:{port}"]
    state_file = os.path.join(rdir, "server.pid")
    if tool == "serverswap":
        daemon = b.Daemon(a.serverswap, rdir, log_file)
        daemon.deploy(server)
        return daemon, None
    if tool == "start_server":
        proc = subprocess.Popen(
            [a.start_server, f"--port=127.0.0.1:{port}", f"--interval={a.ss_interval:g}",
             f"--status-file={state_file}.status", "--"] + server,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=b.server_env(),
            start_new_session=True)
        end = time.monotonic() + b.ACCEPT_WAIT_S + a.ss_interval
        while not ss_generations(state_file + ".status") and time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"start_server exited with {proc.returncode}")
            time.sleep(0.01)
    else:
        proc = subprocess.Popen(server, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=log_file, env=b.server_env(), start_new_session=True)
    with open(state_file, "w") as f:
        f.write(str(proc.pid))
    return None, proc


def stop_tool(tool, daemon, proc, rdir):
    if daemon is not None:
        daemon.stop("hello_server")
    if tool == "start_server" and proc is not None:
        workers = ss_generations(os.path.join(rdir, "server.pid.status")).values()
        b.end_pid(proc.pid, "start_server", grace_s=15.0)  # it TERMs and reaps its workers
        for pid in workers:
            b.end_pid(pid, "hello_server", grace_s=5.0)
    elif tool == "naive":
        try:
            with open(os.path.join(rdir, "server.pid")) as f:
                b.end_pid(int(f.read().strip()), "hello_server", grace_s=15.0)
        except (OSError, ValueError):
            pass
    if proc is not None and proc.poll() is None and tool == "naive":
        b.end_pid(proc.pid, "hello_server", grace_s=5.0)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def helper_cmd(a, tool, port, rdir, server_cmd, swaps, spacing, budget, first_at, fast=False):
    return [sys.executable, os.path.abspath(__file__), "--_deploy-loop",
            "--tool", tool, "--port", str(port), "--socket", os.path.join(rdir, "control.sock"),
            "--state-file", os.path.join(rdir, "server.pid"),
            "--result-file", os.path.join(rdir, "swaps.json"),
            "--server-log", os.path.join(rdir, "deploys.log"), "--swaps", str(swaps),
            "--spacing", f"{spacing:.4f}", "--budget", f"{budget:.1f}",
            "--first-at", f"{first_at:.3f}",
            "--serverswap", a.serverswap, "--server-cmd", encode_cmd(server_cmd),
            "--ss-interval", f"{a.ss_interval:g}"] + (["--fast"] if fast else [])


def run_verify(a, port, rdir, mode, duration, clients, rate, deploy_cmd, extra=(), env=None,
               timeout_s=None, request_timeout=None):
    """`serverswap verify --json` with the deploy helper; returns (report, helper record)."""
    samples = os.path.join(rdir, "samples.csv")
    result_file = os.path.join(rdir, "swaps.json")
    cmd = [a.serverswap, "verify", "--json", "--duration", f"{duration:g}", "--clients",
           str(clients), "--rate", f"{rate:g}", "--mode", mode,
           "--timeout", f"{request_timeout or a.timeout:g}",
           "--samples", samples, "--deploy-timeout", f"{timeout_s or duration + 60:g}",
           *extra, f"127.0.0.1:{port}", "--", *deploy_cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=(timeout_s or duration + 60) + duration + 60, env=env)
    finally:
        # If verify was killed its helper may be orphaned: end it by its pid.
        try:
            with open(result_file) as f:
                helper = json.load(f)
            b.end_pid(helper.get("pid"), "--_deploy-loop", grace_s=2.0)
        except (OSError, ValueError):
            helper = {"swaps": []}
    if proc.stderr.strip():
        with open(os.path.join(rdir, "deploys.log"), "a") as f:
            f.write("\n--- verify stderr ---\n" + proc.stderr)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"verify printed no JSON (exit {proc.returncode}): "
                           f"{proc.stdout[:300]!r} {proc.stderr[-300:]!r}")
    report["verify_exit"] = proc.returncode
    # Place each swap on the load's timeline: both clocks are CLOCK_MONOTONIC.
    start_ms = report.get("started_monotonic_ns", 0) / 1e6
    for s in helper.get("swaps", []):
        if "t" in s:
            s["at_ms"] = s.pop("t") * 1e3 - start_ms
    if "t_end" in helper and "t_start" in helper:
        helper["loop_s"] = helper["t_end"] - helper["t_start"]
    return report, helper, samples


def split_latency(samples_path, swaps, duration_ms):
    """Latency percentiles (ms) of ok requests completing during swaps vs. steady state."""
    windows = [(s["at_ms"], s["at_ms"] + max(s.get("old_gone_ms", 0), s.get("new_up_ms", 0))
                + SWAP_TAIL_MS) for s in swaps if "at_ms" in s]
    during, steady = [], []
    try:
        with open(samples_path) as f:
            next(f)
            for line in f:
                t, lat, outcome = line.rstrip("\n").split(",")
                if outcome != "ok":
                    continue
                t = float(t)
                if any(lo <= t <= hi for lo, hi in windows):
                    during.append(int(lat) / 1000)
                elif WARMUP_MS <= t <= duration_ms:
                    steady.append(int(lat) / 1000)
    except (OSError, StopIteration, ValueError):
        pass
    return {"during_swaps": b.percentiles(during), "steady": b.percentiles(steady)}


def run_one(a, tool, mode, run_index, workdir):
    """One run: start the server under `tool`, load with K deploys, tear everything down."""
    port = b.free_port()
    tag = f"{tool}-{mode}-{run_index}"
    rdir = os.path.join(workdir, tag)
    os.makedirs(rdir, mode=0o700)
    log_path = os.path.join(a.out, "logs", f"{tag}.log")
    daemon = proc = None
    result = {"tool": tool, "mode": mode, "run": run_index, "port": port}
    spacing = (a.duration / 2.0) / a.swaps  # K swaps across [D/3, D/3 + D/2)
    with open(log_path, "wb") as log_file:
        try:
            daemon, proc = start_tool(a, tool, port, rdir, log_file)
            if not b.wait_accepting(port):
                raise RuntimeError(f"server on 127.0.0.1:{port} does not accept")
            budget = a.duration * 2.0 / 3.0 + 30.0
            first_at = a.duration / 3.0
            deploy = helper_cmd(a, tool, port, rdir, [a.hello_server, f"127.0.0.1:{port}"],
                                a.swaps, spacing, budget, first_at)
            # The helper is started early: an interpreter can take a second to start on a
            # busy machine. It waits for first_at itself.
            extra = ["--deploy-at", f"{max(0.1, first_at - HELPER_HEADSTART_S):g}"]
            report, helper, samples = run_verify(a, port, rdir, mode, a.duration, a.clients,
                                                 a.rate, deploy, extra=extra,
                                                 timeout_s=budget + 30)
            result["report"] = report
            result["swaps"] = helper.get("swaps", [])
            result["helper_done"] = helper.get("done", False)
            result["latency_split_ms"] = split_latency(samples, result["swaps"],
                                                       report["duration_ms"])
            supervisor = daemon.proc.pid if daemon else proc.pid if tool == "start_server" else None
            if supervisor:
                result["supervisor"] = b.proc_usage(supervisor)
            return result
        finally:
            stop_tool(tool, daemon, proc, rdir)
            for name in ("deploys.log",):
                path = os.path.join(rdir, name)
                if os.path.exists(path):
                    with open(path, "rb") as src:
                        log_file.write(b"\n--- " + name.encode() + b" ---\n" + src.read())


# -------------------------------------------------------------------------------- main

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a short pass (~2 min): 8 s runs, 4 swaps, smaller scale points")
    p.add_argument("--swaps", type=int, help="deploys per run (K); default 10 (quick: 4)")
    p.add_argument("--rate", type=float, default=1000, help="requests per second")
    p.add_argument("--clients", type=int, default=16, help="concurrent connections")
    p.add_argument("--runs", type=int, default=2, help="runs per tool and mode")
    p.add_argument("--duration", type=float, help="seconds of load per run; default 24 (quick: 8)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds a request may take")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--ss-interval", type=float, default=1.0,
                   help="start_server --interval (its default: 1 s; whole seconds)")
    p.add_argument("--scale", default="swaps,resources,connections",
                   help="scale points to run (comma list, '' for none)")
    p.add_argument("--scale-swaps", type=int, help="back-to-back swaps; default 1000 (quick: 100)")
    p.add_argument("--scale-resources", type=int, default=64)
    p.add_argument("--scale-connections", type=int,
                   help="keep-alive connections drained; default 10000 (quick: 2000)")
    p.add_argument("--out", default=os.path.join(b.HERE, "out"))
    p.add_argument("--bin", default=os.path.join(b.ROOT, "build", "bin"),
                   help="where serverswap and hello_server are")
    # the deploy helper (internal)
    p.add_argument("--_deploy-loop", dest="deploy_loop", action="store_true",
                   help=argparse.SUPPRESS)
    for name in ("--tool", "--socket", "--state-file", "--result-file", "--server-log",
                 "--serverswap", "--server-cmd"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--spacing", type=float, help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    p.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first-at", type=float, default=0.0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.deploy_loop:
        return p, a
    a.swaps = a.swaps or (4 if a.quick else 10)
    a.duration = a.duration or (8.0 if a.quick else 24.0)
    a.scale_swaps = a.scale_swaps or (100 if a.quick else 1000)
    a.scale_connections = a.scale_connections or (2000 if a.quick else 10000)
    if a.swaps < 1 or a.runs < 0 or a.duration <= 0 or a.clients < 1:
        p.error("--swaps, --runs, --clients must be >= 1 and --duration > 0")
    a.modes = [m for m in a.modes.split(",") if m]
    a.tools = [t for t in a.tools.split(",") if t]
    a.scale = [s for s in a.scale.split(",") if s]
    if a.tools in ([], ["none"]):  # only the scale points
        a.tools, a.runs = [], 0
    if any(m not in MODES for m in a.modes) or any(t not in TOOLS for t in a.tools):
        p.error(f"--modes: {MODES}; --tools: {TOOLS}")
    a.serverswap = os.path.join(a.bin, "serverswap")
    a.hello_server = os.path.join(a.bin, "hello_server")
    for path in (a.serverswap, a.hello_server):
        if not os.access(path, os.X_OK):
            p.error(f"{path} not found: build first (cmake -S . -B build "
                    "-DCMAKE_BUILD_TYPE=Release && cmake --build build -j2)")
    a.start_server = shutil.which("start_server")
    if "start_server" in a.tools and not a.start_server:
        b.log("start_server not found (Debian: libserver-starter-perl): skipping that tool")
        a.tools.remove("start_server")
    a.out = os.path.abspath(a.out)
    return p, a


def plan_runs(a):
    """Each (mode, run) pair runs every tool, in an order that rotates pair after pair."""
    plan, pair = [], 0
    for run in range(a.runs):
        for mode in a.modes:
            k = pair % len(a.tools)
            for tool in a.tools[k:] + a.tools[:k]:
                plan.append((tool, mode, run))
            pair += 1
    return plan


def main():
    p, a = parse_args()
    if a.deploy_loop:
        return deploy_loop(a)

    def interrupted(signum, frame):  # so that SIGTERM/SIGINT still run every finally block
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    os.makedirs(os.path.join(a.out, "logs"), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="swapbench-")  # 0700; short path for the socket
    started = datetime.datetime.now(datetime.timezone.utc)
    plan = plan_runs(a)
    b.log(f"{len(plan)} runs of {a.duration:g} s, {a.swaps} swaps each, {a.rate:g} req/s, "
          f"{a.clients} clients; scale points: {', '.join(a.scale) or 'none'}")
    runs, errors, points = [], [], []
    t_begin = time.monotonic()
    try:
        for n, (tool, mode, run) in enumerate(plan, 1):
            try:
                r = run_one(a, tool, mode, run, workdir)
            except Exception as e:  # record, clean up (run_one's finally), go on
                b.log(f"run {n}/{len(plan)} {tool} {mode} #{run}: ERROR {e}")
                errors.append({"tool": tool, "mode": mode, "run": run, "error": str(e)})
                continue
            rep = r["report"]
            b.log(f"run {n}/{len(plan)} {tool:12} {mode:9} #{run}: ok {rep['ok']}, failed "
                  f"{rep['failed']} {rep['failures']}, outage {rep['longest_outage_ms']} ms, "
                  f"swaps ok {sum(1 for s in r['swaps'] if s.get('ok'))}/{a.swaps}")
            runs.append(r)
        points = scale.run_points(a, workdir, errors)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall_s = time.monotonic() - t_begin
    doc = tables.write_all(a, started, wall_s, runs, points, errors)
    print(doc)
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # every run's finally has cleaned up by now
        b.log(f"interrupted ({e or 'SIGINT'}); servers and daemons started so far were ended")
        sys.exit(130)
