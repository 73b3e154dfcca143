"""swapbench's output: summary rows, the markdown tables, results.json, timeline.csv and the
PNG (gnuplot, else matplotlib)."""

import json
import os
import platform
import shutil
import subprocess

import benchlib as b

BUCKET_MS = 100  # timeline resolution of the CSV and the plot
FAILURE_KINDS = ("refused", "reset", "timeout", "other_status", "other_error")


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def worst(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def summarize(runs, tools, modes, swaps_per_run):
    rows = []
    for tool in tools:
        for mode in modes:
            rs = [r for r in runs if r["tool"] == tool and r["mode"] == mode]
            if rs:
                rows.append(summary_row(tool, mode, rs, swaps_per_run))
    return rows


def summary_row(tool, mode, rs, swaps_per_run):
    reps = [r["report"] for r in rs]
    failures = {k: sum(rep["failures"].get(k, 0) for rep in reps) for k in FAILURE_KINDS}
    failed = sum(rep["failed"] for rep in reps)
    swaps = [s for r in rs for s in r["swaps"]]
    gone = [s["old_gone_ms"] for s in swaps if "old_gone_ms" in s]
    up = [s["new_up_ms"] for s in swaps if "new_up_ms" in s]
    split = {}
    for part in ("steady", "during_swaps"):  # the worst run's value of each percentile
        parts = [r["latency_split_ms"][part] for r in rs]
        split[part] = {q: worst(p[q] for p in parts) for q in ("p50", "p99", "p999", "max")}
        split[part]["n"] = sum(p["n"] for p in parts)
    sup = [r.get("supervisor") or {} for r in rs]
    return {
        "tool": tool, "mode": mode, "runs": len(rs),
        "swaps_planned": swaps_per_run * len(rs), "swaps_ok": sum(1 for s in swaps if s.get("ok")),
        "requests": sum(rep["requests"] for rep in reps),
        "ok": sum(rep["ok"] for rep in reps), "failed": failed, "failures": failures,
        "unfinished": sum(rep.get("unfinished", 0) for rep in reps),
        "failures_per_swap": failed / len(swaps) if swaps else None,
        "longest_outage_ms": worst(rep["longest_outage_ms"] for rep in reps),
        "achieved_rate": mean(rep["achieved_rate"] for rep in reps),
        "latency_ms": split,
        "p99_ratio": (split["during_swaps"]["p99"] / split["steady"]["p99"]
                      if split["during_swaps"]["p99"] and split["steady"]["p99"] else None),
        "old_gone_ms": {"mean": mean(gone), "max": worst(gone)},
        "new_up_ms": {"mean": mean(up), "max": worst(up)},
        "supervisor": {"rss_kib": worst(s.get("rss_kib") for s in sup),
                       "pss_kib": worst(s.get("pss_kib") for s in sup),
                       "private_kib": worst(s.get("private_kib") for s in sup),
                       "cpu_s": mean(s.get("cpu_s") for s in sup)},
    }


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def failures_table(rows):
    head = ["tool", "mode", "runs", "swaps ok", "requests ok", "refused", "reset", "timeout",
            "other", "failures/swap", "longest outage ms"]
    return table(head, [[r["tool"], r["mode"], r["runs"], f"{r['swaps_ok']}/{r['swaps_planned']}",
                         r["ok"], r["failures"]["refused"], r["failures"]["reset"],
                         r["failures"]["timeout"],
                         r["failures"]["other_status"] + r["failures"]["other_error"],
                         fmt(r["failures_per_swap"], 2), fmt(r["longest_outage_ms"])]
                        for r in rows])


def latency_table(rows):
    head = ["tool", "mode", "steady p50/p99/p99.9/max ms", "during swaps p50/p99/p99.9/max ms",
            "p99 swaps/steady", "requests steady/swaps"]

    def quad(q):
        return "/".join(fmt(q[k], 2) for k in ("p50", "p99", "p999", "max"))
    return table(head, [[r["tool"], r["mode"], quad(r["latency_ms"]["steady"]),
                         quad(r["latency_ms"]["during_swaps"]), fmt(r["p99_ratio"], 2),
                         f"{r['latency_ms']['steady']['n']}/{r['latency_ms']['during_swaps']['n']}"]
                        for r in rows])


def cost_table(rows):
    head = ["tool", "mode", "deploy start to old gone ms mean/max",
            "deploy start to new up ms mean/max", "supervisor RSS/Pss/private KiB",
            "supervisor CPU s"]
    out = []
    for r in rows:
        s = r["supervisor"]
        mem = "-" if s["rss_kib"] is None else \
            f"{fmt(s['rss_kib'])}/{fmt(s['pss_kib'])}/{fmt(s['private_kib'])}"
        out.append([r["tool"], r["mode"],
                    f"{fmt(r['old_gone_ms']['mean'])}/{fmt(r['old_gone_ms']['max'])}",
                    f"{fmt(r['new_up_ms']['mean'])}/{fmt(r['new_up_ms']['max'])}",
                    mem, fmt(s["cpu_s"], 2)])
    return table(head, out)


def runs_table(runs, swaps_per_run):
    head = ["#", "tool", "mode", "run", "requests ok", "failed", "refused", "reset", "timeout",
            "other", "longest outage ms", "p99 steady/swaps ms", "swaps ok", "verify exit"]
    out = []
    for n, r in enumerate(runs, 1):
        rep, fl, ls = r["report"], r["report"]["failures"], r["latency_split_ms"]
        out.append([n, r["tool"], r["mode"], r["run"], rep["ok"], rep["failed"], fl["refused"],
                    fl["reset"], fl["timeout"], fl["other_status"] + fl["other_error"],
                    rep["longest_outage_ms"],
                    f"{fmt(ls['steady']['p99'], 2)}/{fmt(ls['during_swaps']['p99'], 2)}",
                    f"{sum(1 for s in r['swaps'] if s.get('ok'))}/{swaps_per_run}",
                    rep["verify_exit"]])
    return table(head, out)


def scale_table(points):
    head = ["scale point", "result", "requests ok", "failed", "detail"]
    return table(head, [[p["name"], p["result"], fmt(p.get("ok")), fmt(p.get("failed")),
                         p.get("detail", "")] for p in points])


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


def plot(runs, tools, modes, out):
    """timeline.png: ok and failed per 100 ms of each tool and mode's first run, swaps marked.
    Failures are on the right-hand axis so that a handful stays visible."""
    png = os.path.join(out, "timeline.png")
    panels = [(f"{t} / {m}", rs[0]) for t in tools for m in modes
              if (rs := [r for r in runs if r["tool"] == t and r["mode"] == m])]
    gnuplot = shutil.which("gnuplot")
    if not panels or not gnuplot:
        return "no plot: gnuplot is not installed (the same data is in timeline.csv)"
    ymax = max(max(coarse(r["report"]["timeline"])[0] or [1]) for _, r in panels) * 1.15
    fmax = max([max(coarse(r["report"]["timeline"])[1] or [0]) for _, r in panels] + [4]) * 1.15
    script = [f"set terminal pngcairo size 1100,{190 * len(panels) + 60} font 'sans,9'",
              f"set output '{png}'", "set datafile separator ','",
              "set termoption noenhanced",  # "start_server" is a name, not a subscript
              f"set multiplot layout {len(panels)},1 title 'requests per 100 ms "
              "(green ok, left axis; red failed, right axis); grey lines: deploy starts'",
              f"set yrange [0:{ymax:.0f}]", f"set y2range [0:{fmax:.0f}]", "set ytics nomirror",
              "set y2tics", "set key off", "set lmargin 8", "set rmargin 8"]
    for n, (title, r) in enumerate(panels):
        ok, failed = coarse(r["report"]["timeline"])
        ok, failed = ok[:-1], failed[:-1]  # the last bucket is cut short by the end of the run
        data = os.path.join(out, "logs", f"plot{n}.csv")
        with open(data, "w") as f:
            for i, (o, x) in enumerate(zip(ok, failed)):
                f.write(f"{i * BUCKET_MS / 1000:.1f},{o},{x}\n")
        script.append("unset arrow")
        for s in r["swaps"]:
            if "at_ms" in s:
                x = s["at_ms"] / 1000
                script.append(f"set arrow from {x:.3f}, graph 0 to {x:.3f}, graph 1 "
                              "nohead dt 3 lc rgb 'grey50'")
        failed_total = r["report"]["failed"]
        script.append(f"set title '{title} (run 0: {r['report']['ok']} ok, {failed_total} "
                      f"failed, {len(r['swaps'])} swaps)'")
        if n == len(panels) - 1:
            script.append("set xlabel 'seconds'")
        script.append(f"plot '{data}' using 1:2 axes x1y1 with lines lw 1.5 lc rgb '#1a9850', "
                      f"'' using 1:3 axes x1y2 with impulses lw 3 lc rgb '#d73027'")
    script.append("unset multiplot")
    rc = subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True,
                        capture_output=True, timeout=60)
    if rc.returncode != 0:
        return f"gnuplot failed: {rc.stderr.strip()[:300]}"
    return f"wrote {png}"


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
            "python": platform.python_version(), "loadavg": os.getloadavg()}


def write_all(a, started, wall_s, runs, points, errors):
    """Writes results.md, results.json, timeline.csv and timeline.png; returns the markdown."""
    rows = summarize(runs, a.tools, a.modes, a.swaps)
    info = machine()
    doc = (f"swapbench {started:%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}), "
           f"Linux {info['kernel']}; load average at the end {info['loadavg'][0]:.1f}; "
           f"{a.swaps} swaps per run, {a.duration:g} s per run, {a.rate:g} req/s target, "
           f"{a.clients} clients, {a.runs} runs per tool and mode; "
           f"start_server --interval={a.ss_interval:g}; {wall_s:.0f} s wall time\n\n")
    doc += "Failures (summed over runs):\n\n" + failures_table(rows)
    doc += ("\nLatency of ok requests (worst run), steady state vs. during swaps (deploy "
            f"start to old server gone + {100} ms):\n\n" + latency_table(rows))
    doc += "\nDeploy time and the supervisor's cost (end of run):\n\n" + cost_table(rows)
    if points:
        doc += "\nScale points (serverswap):\n\n" + scale_table(points)
    doc += "\nPer run (in the order run):\n\n" + runs_table(runs, a.swaps)
    if errors:
        doc += "\nRuns that failed to complete:\n\n" + "".join(
            f"- {e.get('tool', e.get('point'))} {e.get('mode', '')} {e.get('run', '')}: "
            f"{e['error']}\n" for e in errors)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(doc)
    write_timeline_csv(runs, os.path.join(a.out, "timeline.csv"))
    for r in runs:  # the 10 ms timeline goes to the CSV at 100 ms; keep the JSON small
        r["timeline_100ms"] = dict(zip(("ok", "failed"), coarse(r["report"]["timeline"])))
    result = {"started": started.isoformat(), "wall_s": wall_s, "machine": info,
              "settings": {"swaps": a.swaps, "duration_s": a.duration, "rate": a.rate,
                           "clients": a.clients, "runs": a.runs, "timeout_s": a.timeout,
                           "modes": a.modes, "tools": a.tools, "ss_interval_s": a.ss_interval,
                           "quick": a.quick, "bucket_ms": BUCKET_MS},
              "summary": rows, "scale_points": points, "errors": errors,
              "runs": [{k: v for k, v in r.items() if k != "report"}
                       | {"report": {k: v for k, v in r["report"].items() if k != "timeline"}}
                       for r in runs]}
    # Paths relative to the checkout, so that results say nothing about this machine; the
    # deploy helper's command line (temporary paths, the interpreter's) is left out.
    for r in result["runs"]:
        if "deploy" in r["report"]:
            r["report"]["deploy"].pop("argv", None)
    text = json.dumps(result, indent=1).replace(json.dumps(b.ROOT + os.sep)[1:-1], "")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        f.write(text)
    b.log(plot(runs, a.tools, a.modes, a.out))
    return doc
