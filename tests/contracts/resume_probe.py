"""resume_probe: the resume contract's server for the Python client (see resume_probe.cc,
which does the same with the C/C++ client, for the report it appends to REPORT.<pid>).

    python3 resume_probe.py REPORT RESOURCE_A RESOURCE_B UP     (PYTHONPATH: clients/python)
"""
import os
import signal
import sys
import threading

import serverswap
from serverswap import resources


def main():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as resume_probe.cc: report takeDown first
    path, a, b, up = sys.argv[1:5]
    path = "%s.%d" % (path, os.getpid())

    def report(line):
        with open(path, "a") as out:
            out.write(line + "\n")

    client = serverswap.Client(up_message=up != "auto")
    sock_a = client.ready_for(a)
    sock_b = client.ready_for(b)
    done = threading.Event()

    def on_takedown(resource):
        report("takeDown %s" % resource)
        client.took_down(resource)
        done.set()

    client.on_takedown(a, on_takedown)
    if up == "1":
        client.server_up()
    report("ready %s %s" % (resources.address_of(sock_a), resources.address_of(sock_b)))
    done.wait()


if __name__ == "__main__":
    main()
