#!/usr/bin/env python3
"""swapbench: how many requests fail while I deploy? serverswap vs. a naive restart.

Runs the same server (build/bin/hello_server) under the same HTTP load
(`serverswap verify --json`) while K deploys happen, in two configurations:

  serverswap  a daemon owns the socket; each deploy is `serverswap -- hello_server ADDR`
  naive       hello_server standalone; each deploy is SIGTERM the old process, wait for
              it to exit, start a new one on the same port, poll connect() until it accepts

in two load modes (close: a connection per request; keepalive: reused connections),
alternating configurations, each at least --runs times, and writes a markdown table
(stdout, OUT/results.md), JSON (OUT/results.json), the 100 ms timelines as CSV
(OUT/timeline.csv) and, when gnuplot or matplotlib is present, OUT/timeline.png.

Python 3 standard library only. Loopback only; every wait has a deadline; every process
this script starts is ended by its pid (never by name), also on error.

The same file is the deploy helper that `serverswap verify` runs a third of the way in:
`swapbench.py --_deploy-loop ...` performs the K swaps and records, per swap, the time
from deploy start to the old server gone and to the new server accepting.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = ("serverswap", "naive")
BUCKET_MS = 100  # timeline resolution of the report and the plot

# Deadlines (seconds). Every loop below is bounded by one of these.
SOCKET_WAIT_S = 10.0      # daemon control socket appears
ACCEPT_WAIT_S = 10.0      # a new server accepts connections
OLD_GONE_WAIT_S = 30.0    # an old server exits after SIGTERM / takeDown
SWAP_CMD_TIMEOUT_S = 60.0  # one `serverswap -- hello_server` deploy command
STOP_WAIT_S = 30.0        # `serverswap stop` and the daemon's exit


# ----------------------------------------------------------------------------- helpers

def log(msg):
    print(f"[swapbench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """(VmRSS in KiB, utime+stime in seconds) of a live process, or (None, None)."""
    rss = cpu = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return rss, cpu


def server_env():
    """Environment for a standalone hello_server: no serverswap variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SERVERSWAP_")}


def status_pids(serverswap, sock):
    try:
        out = subprocess.run([serverswap, "--socket", sock, "status", "--json"],
                             capture_output=True, text=True, timeout=10).stdout
        return [s["pid"] for s in json.loads(out).get("servers", [])]
    except (subprocess.SubprocessError, ValueError, KeyError, OSError):
        return []


# --------------------------------------------------------------- the deploy helper (child)

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
    server_log = open(a.server_log, "ab")
    for i in range(a.swaps):
        due = t_start + i * a.spacing
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if time.monotonic() > hard_end:
            swaps.append({"i": i, "ok": False, "error": "skipped: time budget exhausted"})
            save()
            continue
        entry = {"i": i, "ok": False}
        if a.tool == "serverswap":
            old = status_pids(a.serverswap, a.socket)
            t0 = time.monotonic()
            entry["t"] = t0
            try:
                rc = subprocess.run(
                    [a.serverswap, "--socket", a.socket, "--quiet", "--",
                     a.hello_server, f"127.0.0.1:{a.port}"],
                    stdout=subprocess.DEVNULL, stderr=server_log,
                    timeout=SWAP_CMD_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            t_cmd = time.monotonic()
            gone = all(wait_gone(p, OLD_GONE_WAIT_S) for p in old)
            t_gone = time.monotonic()
            entry.update(old_pids=old, deploy_ms=(t_cmd - t0) * 1e3,
                         old_gone_ms=(t_gone - t0) * 1e3,
                         new_up_ms=(t_cmd - t0) * 1e3)  # exits 0 once the new one is up
            if rc != 0:
                entry["error"] = f"deploy command exit {rc}"
            elif not old:
                entry["error"] = "no old server found in status"
            elif not gone:
                entry["error"] = "old server still alive"
            else:
                entry["ok"] = True
        else:  # naive: SIGTERM, wait for exit, start again, wait until it accepts
            with open(a.state_file) as f:
                old = int(f.read().strip())
            t0 = time.monotonic()
            entry["t"] = t0
            entry["old_pids"] = [old]
            error = None
            if "hello_server" in cmdline(old):
                os.kill(old, signal.SIGTERM)
            gone = wait_gone(old, OLD_GONE_WAIT_S)
            if not gone:
                error = "old server ignored SIGTERM; SIGKILLed"
                end_pid(old, "hello_server", grace_s=0.0)
            t_gone = time.monotonic()
            proc = subprocess.Popen([a.hello_server, f"127.0.0.1:{a.port}"],
                                    stdin=subprocess.DEVNULL, stdout=server_log,
                                    stderr=server_log, env=server_env(),
                                    start_new_session=True)
            with open(a.state_file + ".tmp", "w") as f:
                f.write(str(proc.pid))
            os.replace(a.state_file + ".tmp", a.state_file)
            up = wait_accepting(a.port)
            t_up = time.monotonic()
            if not up:
                error = error or "new server did not accept within deadline"
            entry.update(old_gone_ms=(t_gone - t0) * 1e3, new_up_ms=(t_up - t0) * 1e3,
                         deploy_ms=(t_up - t0) * 1e3, new_pid=proc.pid)
            if error:
                entry["error"] = error
            else:
                entry["ok"] = True
        swaps.append(entry)
        save()
    record["done"] = True
    save()
    return 0 if all(s["ok"] for s in swaps) else 1


# ------------------------------------------------------------------------ one run (parent)

def run_one(a, tool, mode, run_index, workdir):
    """One run: start the server(s), load with K deploys, tear everything down."""
    port = free_port()
    tag = f"{tool}-{mode}-{run_index}"
    rdir = os.path.join(workdir, tag)
    os.makedirs(rdir, mode=0o700)
    sock = os.path.join(rdir, "control.sock")
    state_file = os.path.join(rdir, "server.pid")
    result_file = os.path.join(rdir, "swaps.json")
    server_log_path = os.path.join(a.out, "logs", f"{tag}.log")
    server_log = open(server_log_path, "wb")
    daemon = first = None
    result = {"tool": tool, "mode": mode, "run": run_index, "port": port}
    duration = a.duration
    spacing = (duration / 2.0) / a.swaps  # K swaps across [D/3, D/3 + D/2)
    try:
        if tool == "serverswap":
            daemon = subprocess.Popen([a.serverswap, "--socket", sock, "daemon"],
                                      stdin=subprocess.DEVNULL, stdout=server_log,
                                      stderr=server_log, start_new_session=True)
            end = time.monotonic() + SOCKET_WAIT_S
            while not os.path.exists(sock) and time.monotonic() < end:
                if daemon.poll() is not None:
                    raise RuntimeError(f"daemon exited with {daemon.returncode}")
                time.sleep(0.01)
            rc = subprocess.run([a.serverswap, "--socket", sock, "--quiet", "--",
                                 a.hello_server, f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=server_log,
                                timeout=SWAP_CMD_TIMEOUT_S).returncode
            if rc != 0:
                raise RuntimeError(f"first deploy failed ({rc}); see {server_log_path}")
        else:
            first = subprocess.Popen([a.hello_server, f"127.0.0.1:{port}"],
                                     stdin=subprocess.DEVNULL, stdout=server_log,
                                     stderr=server_log, env=server_env(),
                                     start_new_session=True)
            with open(state_file, "w") as f:
                f.write(str(first.pid))
        if not wait_accepting(port):
            raise RuntimeError(f"server on 127.0.0.1:{port} does not accept")

        budget = duration * 2.0 / 3.0 + 30.0
        cmd = [a.serverswap, "verify", "--json", "--duration", str(duration),
               "--clients", str(a.clients), "--rate", str(a.rate), "--mode", mode,
               "--timeout", str(a.timeout), "--deploy-timeout", str(budget + 30),
               f"127.0.0.1:{port}", "--",
               sys.executable, os.path.abspath(__file__), "--_deploy-loop",
               "--tool", tool, "--port", str(port), "--socket", sock,
               "--state-file", state_file, "--result-file", result_file,
               "--server-log", server_log_path, "--swaps", str(a.swaps),
               "--spacing", f"{spacing:.4f}", "--budget", f"{budget:.1f}",
               "--serverswap", a.serverswap, "--hello-server", a.hello_server]
        t_launch = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=duration + budget + 60)
        finally:
            # If verify was killed its helper may be orphaned: end it by its pid.
            try:
                with open(result_file) as f:
                    helper = json.load(f)
                end_pid(helper.get("pid"), "--_deploy-loop", grace_s=2.0)
            except (OSError, ValueError):
                helper = {"swaps": []}
        if proc.stderr.strip():
            with open(server_log_path, "a") as f:
                f.write("\n--- verify stderr ---\n" + proc.stderr)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            raise RuntimeError(f"verify printed no JSON (exit {proc.returncode}): "
                               f"{proc.stdout[:300]!r} {proc.stderr[-300:]!r}")
        result["verify_exit"] = proc.returncode
        result["report"] = report
        swaps = helper.get("swaps", [])
        for s in swaps:
            if "t" in s:
                s["at_ms"] = (s.pop("t") - t_launch) * 1e3
        result["swaps"] = swaps
        result["helper_done"] = helper.get("done", False)
        if tool == "serverswap" and daemon is not None:
            rss, cpu = proc_usage(daemon.pid)
            result["daemon_rss_kib"] = rss
            result["daemon_cpu_s"] = cpu
        return result
    finally:
        # Tear down whatever this run started, by pid.
        if daemon is not None:
            server_pids = status_pids(a.serverswap, sock) if daemon.poll() is None else []
            try:
                subprocess.run([a.serverswap, "--socket", sock, "stop"],
                               stdout=subprocess.DEVNULL, stderr=server_log,
                               timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            try:
                daemon.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                end_pid(daemon.pid, "serverswap", grace_s=5.0)
                daemon.wait(timeout=5)
            for p in server_pids:
                end_pid(p, "hello_server", grace_s=5.0)
        if tool == "naive":
            try:
                with open(state_file) as f:
                    end_pid(int(f.read().strip()), "hello_server", grace_s=15.0)
            except (OSError, ValueError):
                pass
            if first is not None:
                end_pid(first.pid, "hello_server", grace_s=5.0)
                try:
                    first.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        server_log.close()


# ----------------------------------------------------------------------------- summary

def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summarize(runs, swaps_per_run):
    out = {}
    for r in runs:
        key = (r["tool"], r["mode"])
        out.setdefault(key, []).append(r)
    rows = []
    for tool in TOOLS:
        for mode in ("close", "keepalive"):
            rs = out.get((tool, mode))
            if not rs:
                continue
            reps = [r["report"] for r in rs]
            f = {k: sum(rep["failures"].get(k, 0) for rep in reps)
                 for k in ("refused", "reset", "timeout", "other_status", "other_error")}
            failed = sum(rep["failed"] for rep in reps)
            swaps = [s for r in rs for s in r["swaps"]]
            done = [s for s in swaps if s.get("ok")]
            gone = [s["old_gone_ms"] for s in swaps if "old_gone_ms" in s]
            up = [s["new_up_ms"] for s in swaps if "new_up_ms" in s]
            lat = [rep["latency_ms"] for rep in reps]
            row = {
                "tool": tool, "mode": mode, "runs": len(rs),
                "swaps_planned": swaps_per_run * len(rs), "swaps_ok": len(done),
                "requests": sum(rep["requests"] for rep in reps),
                "ok": sum(rep["ok"] for rep in reps),
                "failed": failed,
                "failures": {"refused": f["refused"], "reset": f["reset"],
                             "timeout": f["timeout"],
                             "other": f["other_status"] + f["other_error"]},
                "unfinished": sum(rep.get("unfinished", 0) for rep in reps),
                "failures_per_swap": failed / len(swaps) if swaps else None,
                "longest_outage_ms": max(rep["longest_outage_ms"] for rep in reps),
                # worst run for each percentile
                "latency_ms": {"p50": max(l["p50"] for l in lat),
                               "p99": max(l["p99"] for l in lat),
                               "p999": max(l["p999"] for l in lat),
                               "max": max(l["max"] for l in lat)},
                "achieved_rate": sum(rep["achieved_rate"] for rep in reps) / len(reps),
                "old_gone_ms": {"mean": sum(gone) / len(gone) if gone else None,
                                "max": max(gone) if gone else None},
                "new_up_ms": {"mean": sum(up) / len(up) if up else None,
                              "max": max(up) if up else None},
                "errors": {},
            }
            for rep in reps:
                for k, v in rep.get("errors", {}).items():
                    row["errors"][k] = row["errors"].get(k, 0) + v
            if tool == "serverswap":
                rss = [r.get("daemon_rss_kib") for r in rs if r.get("daemon_rss_kib")]
                cpu = [r.get("daemon_cpu_s") for r in rs if r.get("daemon_cpu_s") is not None]
                row["daemon_rss_kib_max"] = max(rss) if rss else None
                row["daemon_cpu_s_mean"] = sum(cpu) / len(cpu) if cpu else None
            rows.append(row)
    return rows


def markdown(rows, runs, a):
    head = ("| tool | mode | runs | swaps ok | requests ok | refused | reset | timeout | other "
            "| failures/swap | longest outage ms | p50 ms | p99 ms | p99.9 ms "
            "| old gone ms mean/max | new up ms mean/max | daemon RSS KiB | daemon CPU s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        f = r["failures"]
        lines.append(
            f"| {r['tool']} | {r['mode']} | {r['runs']} | {r['swaps_ok']}/{r['swaps_planned']} "
            f"| {r['ok']} | {f['refused']} | {f['reset']} | {f['timeout']} | {f['other']} "
            f"| {fmt(r['failures_per_swap'], 2)} | {r['longest_outage_ms']} "
            f"| {fmt(r['latency_ms']['p50'], 2)} | {fmt(r['latency_ms']['p99'], 2)} "
            f"| {fmt(r['latency_ms']['p999'], 2)} "
            f"| {fmt(r['old_gone_ms']['mean'])}/{fmt(r['old_gone_ms']['max'])} "
            f"| {fmt(r['new_up_ms']['mean'])}/{fmt(r['new_up_ms']['max'])} "
            f"| {fmt(r.get('daemon_rss_kib_max'))} | {fmt(r.get('daemon_cpu_s_mean'), 2)} |")
    lines.append("")
    lines.append("Per run (in the order run):")
    lines.append("")
    lines.append("| # | tool | mode | run | requests ok | failed | refused | reset | timeout "
                 "| other | longest outage ms | p99 ms | swaps ok | verify exit |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        rep = r["report"]
        fl = rep["failures"]
        lines.append(
            f"| {n} | {r['tool']} | {r['mode']} | {r['run']} | {rep['ok']} | {rep['failed']} "
            f"| {fl['refused']} | {fl['reset']} | {fl['timeout']} "
            f"| {fl['other_status'] + fl['other_error']} | {rep['longest_outage_ms']} "
            f"| {fmt(rep['latency_ms']['p99'], 2)} "
            f"| {sum(1 for s in r['swaps'] if s.get('ok'))}/{a.swaps} | {r['verify_exit']} |")
    return "\n".join(lines) + "\n"


def coarse(timeline):
    step = BUCKET_MS // timeline.get("bucket_ms", 10)
    ok, failed = timeline["ok"], timeline["failed"]
    return ([sum(ok[i:i + step]) for i in range(0, len(ok), step)],
            [sum(failed[i:i + step]) for i in range(0, len(failed), step)])


def write_timeline_csv(runs, path):
    with open(path, "w") as f:
        f.write("tool,mode,run,t_s,ok,failed\n")
        for r in runs:
            ok, failed = coarse(r["report"]["timeline"])
            for i, (o, x) in enumerate(zip(ok, failed)):
                f.write(f"{r['tool']},{r['mode']},{r['run']},{i * BUCKET_MS / 1000:.1f},{o},{x}\n")


def plot(runs, out):
    """timeline.png: ok and failed per 100 ms, first run of each tool+mode, swaps marked."""
    png = os.path.join(out, "timeline.png")
    panels = []
    for tool in TOOLS:
        for mode in ("close", "keepalive"):
            rs = [r for r in runs if r["tool"] == tool and r["mode"] == mode]
            if rs:
                panels.append((f"{tool} / {mode} (run 0)", rs[0]))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.6 * len(panels)), sharex=True)
        if len(panels) == 1:
            axes = [axes]
        for ax, (title, r) in zip(axes, panels):
            ok, failed = coarse(r["report"]["timeline"])
            t = [i * BUCKET_MS / 1000 for i in range(len(ok))]
            ax.plot(t, ok, label="ok / 100 ms", color="tab:green")
            ax.plot(t, failed, label="failed / 100 ms", color="tab:red")
            for s in r["swaps"]:
                if "at_ms" in s:
                    ax.axvline(s["at_ms"] / 1000, color="grey", linestyle=":", linewidth=0.8)
            ax.set_title(title)
            ax.legend(loc="upper right", fontsize=8)
        axes[-1].set_xlabel("seconds (dotted lines: deploy starts)")
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        return f"wrote {png} (matplotlib)"
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        script = [f"set terminal pngcairo size 1100,{260 * len(panels)}",
                  f"set output '{png}'", f"set multiplot layout {len(panels)},1",
                  "set datafile separator ','"]
        for n, (title, r) in enumerate(panels):
            ok, failed = coarse(r["report"]["timeline"])
            data = os.path.join(out, "logs", f"plot{n}.csv")
            with open(data, "w") as f:
                for i, (o, x) in enumerate(zip(ok, failed)):
                    f.write(f"{i * BUCKET_MS / 1000:.1f},{o},{x}\n")
            script.append("unset arrow")
            for s in r["swaps"]:
                if "at_ms" in s:
                    x = s["at_ms"] / 1000
                    script.append(f"set arrow from {x:.3f}, graph 0 to {x:.3f}, graph 1 "
                                  "nohead dt 3 lc rgb 'grey'")
            script.append(f"set title '{title}'")
            script.append(f"plot '{data}' using 1:2 with lines lc rgb 'dark-green' "
                          f"title 'ok / 100 ms', '' using 1:3 with lines lc rgb 'red' "
                          f"title 'failed / 100 ms'")
        script.append("unset multiplot")
        rc = subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True,
                            capture_output=True, timeout=60)
        if rc.returncode == 0:
            return f"wrote {png} (gnuplot)"
        return f"gnuplot failed: {rc.stderr.strip()[:300]}"
    return ("no plot: neither matplotlib nor gnuplot is available "
            "(the same data is in timeline.csv)")


def machine():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


# -------------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--swaps", type=int, default=10, help="deploys per run (K)")
    p.add_argument("--rate", type=float, default=1000, help="requests per second")
    p.add_argument("--clients", type=int, default=16, help="concurrent connections")
    p.add_argument("--runs", type=int, default=2, help="runs per tool and mode")
    p.add_argument("--duration", type=float, default=12.0, help="seconds of load per run")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds a request may take")
    p.add_argument("--modes", default="close,keepalive")
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    # the deploy helper (internal)
    p.add_argument("--_deploy-loop", dest="deploy_loop", action="store_true",
                   help=argparse.SUPPRESS)
    for name in ("--tool", "--socket", "--state-file", "--result-file", "--server-log",
                 "--serverswap", "--hello-server"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--spacing", type=float, help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.deploy_loop:
        return deploy_loop(a)

    if a.swaps < 1 or a.runs < 1 or a.duration <= 0 or a.clients < 1:
        p.error("--swaps, --runs, --clients must be >= 1 and --duration > 0")
    modes = [m for m in a.modes.split(",") if m]
    if any(m not in ("close", "keepalive") for m in modes):
        p.error("--modes: close and/or keepalive")
    a.serverswap = os.path.join(a.bin, "serverswap")
    a.hello_server = os.path.join(a.bin, "hello_server")
    for b in (a.serverswap, a.hello_server):
        if not os.access(b, os.X_OK):
            p.error(f"{b} not found: build first (cmake -S . -B build "
                    "-DCMAKE_BUILD_TYPE=Release && cmake --build build -j2)")
    a.out = os.path.abspath(a.out)

    def interrupted(signum, frame):  # so that SIGTERM/SIGINT still run every finally block
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    os.makedirs(os.path.join(a.out, "logs"), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="swapbench-")  # 0700; short path for the socket

    started = datetime.datetime.now(datetime.timezone.utc)
    plan, pair = [], 0
    for run in range(a.runs):
        for mode in modes:  # alternate which tool goes first, pair after pair
            for tool in (TOOLS if pair % 2 == 0 else TOOLS[::-1]):
                plan.append((tool, mode, run))
            pair += 1
    log(f"{len(plan)} runs of {a.duration:g} s, {a.swaps} swaps each, {a.rate:g} req/s, "
        f"{a.clients} clients; about {len(plan) * (a.duration + 1.5):.0f} s")
    runs, errors = [], []
    try:
        for n, (tool, mode, run) in enumerate(plan, 1):
            try:
                r = run_one(a, tool, mode, run, workdir)
            except Exception as e:  # record, clean up (run_one's finally), go on
                log(f"run {n}/{len(plan)} {tool} {mode} #{run}: ERROR {e}")
                errors.append({"tool": tool, "mode": mode, "run": run, "error": str(e)})
                continue
            rep = r["report"]
            log(f"run {n}/{len(plan)} {tool:10} {mode:9} #{run}: ok {rep['ok']}, failed "
                f"{rep['failed']} {rep['failures']}, outage {rep['longest_outage_ms']} ms, "
                f"swaps ok {sum(1 for s in r['swaps'] if s.get('ok'))}/{a.swaps}")
            runs.append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = summarize(runs, a.swaps)
    table = markdown(rows, runs, a)
    info = machine()
    header = (f"swapbench {started:%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}); "
              f"{a.swaps} swaps per run, {a.duration:g} s per run, {a.rate:g} req/s target, "
              f"{a.clients} clients, {a.runs} runs per tool and mode\n")
    if errors:
        table += "\nRuns that failed to complete:\n\n" + "".join(
            f"- {e['tool']} {e['mode']} run {e['run']}: {e['error']}\n" for e in errors)
    print(header)
    print(table)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(header + "\n" + table)
    for r in runs:  # the 10 ms timeline goes to timeline.csv at 100 ms; keep JSON small
        r["timeline_100ms"] = dict(zip(("ok", "failed"), coarse(r["report"]["timeline"])))
    write_timeline_csv(runs, os.path.join(a.out, "timeline.csv"))
    doc = {"started": started.isoformat(), "machine": info,
           "settings": {"swaps": a.swaps, "duration_s": a.duration, "rate": a.rate,
                        "clients": a.clients, "runs": a.runs, "timeout_s": a.timeout,
                        "modes": modes, "bucket_ms": BUCKET_MS},
           "summary": rows, "runs": [
               {k: v for k, v in r.items() if k != "report"} |
               {"report": {k: v for k, v in r["report"].items() if k != "timeline"}}
               for r in runs], "errors": errors}
    # Paths relative to the checkout, so that results say nothing about this machine.
    text = json.dumps(doc, indent=1).replace(json.dumps(ROOT + os.sep)[1:-1], "")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        f.write(text)
    log(plot(runs, a.out))
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # every run's finally has cleaned up by now
        log(f"interrupted ({e or 'SIGINT'}); servers and daemons started so far were ended")
        sys.exit(130)
