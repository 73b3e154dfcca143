#!/usr/bin/env python3
"""The tally and the plot of scripts/demo.sh.

    demo_report.py OUT_DIR MODE...

For each MODE it reads OUT_DIR/MODE.json (`serverswap verify --json`) and OUT_DIR/MODE.swaps
(one line per swap: milliseconds since the deploy command started), prints the tally and
draws OUT_DIR/demo.png (one panel per mode, swaps marked) when gnuplot is installed.
"""

import json
import os
import sys

import tables


def main():
    out, modes = sys.argv[1], sys.argv[2:]
    runs, failed = [], 0
    print(f"{'mode':10} {'requests ok':>12} {'failed':>7} {'swaps':>6} {'longest outage':>15} "
          f"{'p50':>8} {'p99':>8} {'max':>8}")
    for mode in modes:
        with open(os.path.join(out, f"{mode}.json")) as f:
            report = json.load(f)
        started = report.get("deploy", {}).get("started_after_ms", 0)
        with open(os.path.join(out, f"{mode}.swaps")) as f:
            swaps = [{"at_ms": started + float(line)} for line in f if line.strip()]
        lat = report["latency_ms"]
        print(f"{mode:10} {report['ok']:>12} {report['failed']:>7} {len(swaps):>6} "
              f"{report['longest_outage_ms']:>12} ms {lat['p50']:>6.2f}ms {lat['p99']:>6.2f}ms "
              f"{lat['max']:>6.2f}ms")
        failed += report["failed"]
        if report["failed"]:
            print(f"           failures: {report['failures']}")
        runs.append({"tool": "serverswap", "mode": mode, "report": report, "swaps": swaps})
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    message = tables.plot(runs, ["serverswap"], modes, out)
    png = os.path.join(out, "timeline.png")
    if os.path.exists(png):
        os.replace(png, os.path.join(out, "demo.png"))
        message = f"plot: {os.path.join(out, 'demo.png')}"
    print(message)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
