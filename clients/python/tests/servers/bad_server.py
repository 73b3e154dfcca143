"""Servers that must never take the old one down: python3 bad_server.py MODE RESOURCE

raise      asks for the resource, then raises during startup (exits 1 with a traceback)
fail       asks for the resource, then calls serverswap.fail()
badresource  asks for a malformed resource, prints the RequestError text, then fails
"""
import signal
import sys

import serverswap

mode, resource = sys.argv[1], sys.argv[2]
serverswap.init(up_message=True)
if mode == "badresource":
    # The daemon fails a server whose readyFor is refused and signals it: keep running
    # long enough to show that the error reply raised with its text.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        serverswap.ready_for("no-such-resource")
    except serverswap.RequestError as e:
        print("bad_server: RequestError: %s" % e.text, file=sys.stderr, flush=True)
        serverswap.fail("bad resource: %s" % e.text)
        sys.exit(1)
    sys.exit(3)
sock = serverswap.ready_for(resource)
if mode == "raise":
    raise RuntimeError("bad_server: configuration broken")
serverswap.fail("bad_server: cannot start")
sys.exit(1)
