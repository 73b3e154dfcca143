"""python_probe: what the Python client reads from the inherited-socket environment, in the
format of client_probe (REPORT.<pid>); under a daemon it then takes the first RESOURCE
with ready_for (answered from the inherited socket), says server_up and waits for SIGTERM.

    python3 python_probe.py REPORT [RESOURCE...]      (PYTHONPATH: clients/python)
"""
import os
import signal
import sys

import serverswap
from serverswap import inherited


def line(s):
    seen = inherited._inspect(s.fd)
    address = "?" if seen is None else inherited._spell(seen[1], seen[2])
    listening = 1 if seen is not None and seen[0] else 0
    return "fd %d name %s address %s listening %d" % (s.fd, s.name or "-", address, listening)


def report(path, resources):
    convention, found = inherited.read(log=lambda text: sys.stderr.write(text + "\n"))
    lines = ["pid %d" % os.getpid(), "convention %s" % (convention or "-")]
    lines += [line(s) for s in found]
    for resource in resources:
        try:
            match = inherited.find(found, resource)
            lines.append("match %s %s" % (resource, "-" if match is None else match.fd))
        except ValueError:
            lines.append("match %s error" % resource)
    with open("%s.%d" % (path, os.getpid()), "w") as out:
        out.write("\n".join(lines) + "\n")


def main():
    report(sys.argv[1], sys.argv[2:])
    if not os.environ.get("SERVERSWAP_SOCKET") or len(sys.argv) < 3:
        return
    client = serverswap.Client(up_message=True)
    client.ready_for(sys.argv[2])
    client.server_up()
    signal.sigwait([signal.SIGTERM])  # the daemon's takedown signal ends the probe


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        main()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
