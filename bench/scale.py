"""swapbench's scale points, each one line of the table (serverswap only):

  swaps        N back-to-back swaps of hello_server under load: swaps per second reached,
               failures, the daemon's RSS and open fds before and after
  resources    a server holding 64 resources (bench/multi_server.py) swapped 5 times while
               every one of its ports is probed; its readyFor -> resourceReady round trips
  connections  10,000 keep-alive connections on hello_server, then one swap: every
               connection must be drained by the old server (answered with
               `Connection: close`) or left idle until the grace period, none cut

Every run has its own daemon, ports and deadline, and is torn down by pid.
"""

import json
import os
import re
import socket
import sys
import threading
import time

import benchlib as b

MULTI_SERVER = os.path.join(b.HERE, "multi_server.py")


def run_points(a, workdir, errors):
    points = []
    for name, fn in (("swaps", back_to_back), ("resources", many_resources),
                     ("connections", many_connections)):
        if name not in a.scale:
            continue
        rdir = os.path.join(workdir, f"scale-{name}")
        os.makedirs(rdir, mode=0o700)
        b.log(f"scale point: {name}")
        try:
            with open(os.path.join(a.out, "logs", f"scale-{name}.log"), "wb") as log_file:
                point = fn(a, rdir, log_file)
        except Exception as e:  # recorded; fn's finally blocks have cleaned up
            b.log(f"scale point {name}: ERROR {e}")
            errors.append({"point": name, "error": str(e)})
            continue
        b.log(f"scale point {name}: {point['result']}; {point.get('detail', '')}")
        points.append(point)
    return points


def verify_with_helper(a, rdir, port, mode, duration, clients, rate, swaps, spacing, deploy_at,
                       server_cmd, fast=False, env=None, timeout=None):
    import swapbench  # the helper and verify wrapper live there
    budget = duration + 60
    helper = swapbench.helper_cmd(a, "serverswap", port, rdir, server_cmd, swaps, spacing,
                                  budget, deploy_at, fast=fast)
    extra = ["--deploy-at", f"{max(0.1, deploy_at - swapbench.HELPER_HEADSTART_S):g}",
             "--stop-after-deploy"]
    return swapbench.run_verify(a, port, rdir, mode, duration, clients, rate, helper,
                                extra=extra, env=env, timeout_s=budget, request_timeout=timeout)


def back_to_back(a, rdir, log_file):
    n = a.scale_swaps
    port = b.free_port()
    server = [a.hello_server, f"127.0.0.1:{port}"]
    daemon = b.Daemon(a.serverswap, rdir, log_file)
    try:
        daemon.deploy(server)
        before, fds_before = b.proc_usage(daemon.proc.pid), b.fd_count(daemon.proc.pid)
        # Generous duration: the load ends when the helper's last swap returns.
        report, helper, _ = verify_with_helper(a, rdir, port, "close", n * 0.5 + 30, 16, 500,
                                               n, 0.0, 1.0, server, fast=True)
        after, fds_after = b.proc_usage(daemon.proc.pid), b.fd_count(daemon.proc.pid)
    finally:
        daemon.stop("hello_server")
    swaps = helper.get("swaps", [])
    ok_swaps = sum(1 for s in swaps if s.get("ok"))
    loop_s = helper.get("loop_s")
    rate = ok_swaps / loop_s if loop_s else None
    deploy_ms = [s["new_up_ms"] for s in swaps if "new_up_ms" in s]
    return {"name": f"{n} back-to-back swaps (close mode, 500 req/s)",
            "result": f"{ok_swaps}/{n} swaps in {loop_s:.1f} s = {rate:.1f} swaps/s",
            "ok": report["ok"], "failed": report["failed"],
            "detail": (f"deploy command mean {sum(deploy_ms) / max(len(deploy_ms), 1):.1f} ms, "
                       f"max {max(deploy_ms or [0]):.1f} ms; daemon RSS {before['rss_kib']} -> "
                       f"{after['rss_kib']} KiB, fds {fds_before} -> {fds_after}, CPU "
                       f"{before['cpu_s']:.2f} -> {after['cpu_s']:.2f} s"),
            "swaps_per_s": rate, "daemon_before": before, "daemon_after": after,
            "fds_before": fds_before, "fds_after": fds_after, "report_failures": report["failures"]}


class Prober(threading.Thread):
    """Round-robin GET (Connection: close) on every port until stopped; counts outcomes."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.stop = threading.Event()
        self.counts = {"ok": 0, "refused": 0, "reset": 0, "timeout": 0, "other": 0}

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.counts[self.probe(self.ports[i % len(self.ports)])] += 1
            i += 1

    @staticmethod
    def probe(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            return "ok" if data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok\n") else "other"
        except ConnectionRefusedError:
            return "refused"
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except socket.timeout:
            return "timeout"
        except OSError:
            return "other"


def many_resources(a, rdir, log_file):
    count, swaps = a.scale_resources, 5
    ports = b.free_ports(count)
    timings = os.path.join(rdir, "ready_for.jsonl")
    server = [sys.executable, MULTI_SERVER, "--timings", timings] + [
        f"127.0.0.1:{p}" for p in ports]
    daemon = b.Daemon(a.serverswap, rdir, log_file)
    prober = Prober(ports)
    try:
        daemon.deploy(server)
        prober.start()
        report, helper, samples = verify_with_helper(a, rdir, ports[0], "keepalive", 30, 8, 200,
                                                     swaps, 1.0, 1.5, server)
    finally:
        prober.stop.set()
        prober.join(timeout=10)
        daemon.stop("multi_server")
    gens = []
    with open(timings) as f:
        gens = [json.loads(line)["ready_for_us"] for line in f if line.strip()]
    first = b.percentiles(gens[0]) if gens else {}
    later = b.percentiles([t for g in gens[1:] for t in g])
    swaps_ok = sum(1 for s in helper.get("swaps", []) if s.get("ok"))
    gone = [s["old_gone_ms"] for s in helper.get("swaps", []) if "old_gone_ms" in s]
    probe_failed = sum(v for k, v in prober.counts.items() if k != "ok")
    return {"name": f"a server holding {count} resources, {swaps} swaps",
            "result": f"{swaps_ok}/{swaps} swaps, {probe_failed} failed probes of "
                      f"{sum(prober.counts.values())} across all {count} ports",
            "ok": report["ok"], "failed": report["failed"],
            "detail": (f"readyFor->resourceReady round trip (server side, {len(gens) - 1} swapped "
                       f"generations x {count}): p50 {later['p50']:.0f} us, p99 "
                       f"{later['p99']:.0f} us, max {later['max']:.0f} us; first generation "
                       f"(binds): p50 {first.get('p50', 0):.0f} us; deploy start to old gone "
                       f"mean {sum(gone) / max(len(gone), 1):.0f} ms"),
            "ready_for_us": {"first_generation": first, "swapped_generations": later},
            "report_failures": report["failures"], "errors": report.get("errors"),
            "failed_samples": b.failed_samples(samples),
            "swaps": [{k: s.get(k) for k in ("at_ms", "old_gone_ms", "new_up_ms")}
                      for s in helper.get("swaps", [])],
            "probes": prober.counts}


def many_connections(a, rdir, log_file):
    conns, grace, rate, deploy_at = a.scale_connections, 10.0, a.scale_connections / 5.0, 8.0
    port = b.free_port()
    server = [a.hello_server, f"127.0.0.1:{port}"]
    env = dict(os.environ, SERVERSWAP_DRAIN_GRACE=f"{grace:g}")
    daemon = b.Daemon(a.serverswap, rdir, log_file)
    try:
        daemon.deploy(server, env=env)
        report, helper, _ = verify_with_helper(a, rdir, port, "keepalive", deploy_at + grace + 6,
                                               conns, rate, 1, 0.0, deploy_at, server, env=env,
                                               timeout=5)
        # stop-after-deploy would end the load at the swap; here the load must go on while
        # the old server drains, so the helper's deploy returned only after it exited.
    finally:
        daemon.stop("hello_server")
    log_file.flush()
    with open(log_file.name, errors="replace") as f:
        text = f.read()
    drained = [int(m) for m in re.findall(r"takeDown: stopped accepting on \S+, draining (\d+)",
                                          text)]
    cut_at_grace = [int(m) for m in re.findall(r"grace period over: closing (\d+)", text)]
    swaps = helper.get("swaps", [])
    gone = swaps[0].get("old_gone_ms") if swaps else None
    return {"name": f"{conns} keep-alive connections drained through a swap "
                    f"({rate:g} req/s, grace {grace:g} s)",
            "result": (f"{drained[0] if drained else '?'} connections open at takedown, "
                       f"{cut_at_grace[0] if cut_at_grace else 0} idle ones closed at the grace "
                       f"end, old server gone after {gone / 1000 if gone else 0:.1f} s"),
            "ok": report["ok"], "failed": report["failed"],
            "detail": (f"failures {report['failures']}, unfinished {report.get('unfinished')}, "
                       f"swap ok {bool(swaps and swaps[0].get('ok'))}"),
            "drained_at_takedown": drained, "closed_at_grace": cut_at_grace,
            "report_failures": report["failures"], "errors": report.get("errors")}
