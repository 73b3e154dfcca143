#!/usr/bin/env python3
"""wrk_check: cross-checks `serverswap verify`'s figures against wrk on the same server.

    python3 bench/wrk_check.py [--bin DIR] [--duration S] [--connections N] [--rounds R]

Starts one standalone hello_server on a free loopback port and loads it, alternately, with
wrk (-t1, keep-alive, closed loop, --latency) and with `serverswap verify --mode keepalive
--rate 0` (closed loop too) for the same duration and connection count, R rounds each.
Prints requests/s, p50, p99 and max latency of each run as a markdown table. Both tools
run on the same machine as the server, so they compete with it for the CPUs: compare them
with each other, not with other machines. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import benchlib as b

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS_MS[m.group(2)] if m else None


def run_wrk(wrk, port, duration, connections):
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    dist = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    mx = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"tool": "wrk", "rps": float(rps.group(1)) if rps else None,
            "p50": wrk_ms(dist.get("50", "")), "p99": wrk_ms(dist.get("99", "")),
            "max": wrk_ms(mx.group(1)) if mx else None,
            "errors": (errors.group(1) if errors else "none")
            + (f", non-2xx {non2xx.group(1)}" if non2xx else "")}


def run_verify(serverswap, port, duration, connections):
    out = subprocess.run([serverswap, "verify", "--json", "--duration", str(duration),
                          "--clients", str(connections), "--mode", "keepalive", "--rate", "0",
                          f"127.0.0.1:{port}"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rep = json.loads(out)
    lat = rep["latency_ms"]
    return {"tool": "serverswap verify", "rps": rep["ok"] / (rep["duration_ms"] / 1000),
            "p50": lat["p50"], "p99": lat["p99"], "max": lat["max"],
            "errors": "none" if not rep["failed"] else str(rep["failures"])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(b.ROOT, "build", "bin"))
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    wrk = shutil.which("wrk")
    if not wrk:
        p.error("wrk is not installed (Debian: apt-get install wrk)")
    port = b.free_port()
    server = subprocess.Popen([os.path.join(a.bin, "hello_server"), f"127.0.0.1:{port}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=b.server_env(),
                              start_new_session=True)
    rows = []
    try:
        if not b.wait_accepting(port):
            raise RuntimeError("hello_server does not accept")
        for _ in range(a.rounds):
            rows.append(run_wrk(wrk, port, a.duration, a.connections))
            rows.append(run_verify(os.path.join(a.bin, "serverswap"), port, a.duration,
                                   a.connections))
    finally:
        b.end_pid(server.pid, "hello_server", grace_s=5.0)
        server.wait(timeout=10)
    print(f"hello_server, {a.connections} keep-alive connections, closed loop, "
          f"{a.duration} s per run, alternating\n")
    print("| tool | requests/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} "
              f"| {r['max']:.2f} | {r['errors']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
