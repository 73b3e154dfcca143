#!/usr/bin/env python3
"""An http.server server that serverswap replaces without dropping a request.

    serverswap -- python3 examples/http_server_example.py 127.0.0.1:8080 [--body TEXT]

It asks for its listening socket with ready_for() (through serverswap.ThreadingHTTPServer),
declares itself up, and on takeDown drains: stops accepting, answers what still arrives on
keep-alive connections with "Connection: close", closes idle ones after the grace period
(SERVERSWAP_DRAIN_GRACE, default 10 s) and exits 0. Without serverswap it binds by itself.
"""
import argparse
import http.server
import os
import sys

try:
    import serverswap
except ImportError:  # run from a checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import serverswap


def make_handler(body):
    data = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        wbufsize = -1                  # headers and body in one write (flushed per request)
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass  # one line per request would drown the daemon's log

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("resource", nargs="?", default=":8080")
    parser.add_argument("--body", default="Hello World!\n")
    args = parser.parse_args()

    serverswap.init(up_message=True)  # we say when we are up: no 1 s settle wait
    try:
        server = serverswap.ThreadingHTTPServer(args.resource, make_handler(args.body))
    except (serverswap.ServerswapError, OSError, ValueError) as e:
        print("http_server_example: %s" % e, file=sys.stderr)
        serverswap.fail(str(e))  # the old server keeps serving
        return 1
    print("http_server_example pid %d serving on %s"
          % (os.getpid(), serverswap.address(args.resource)), file=sys.stderr, flush=True)
    serverswap.server_up()
    with server:
        server.serve_forever(poll_interval=0.1)  # returns once drained after takeDown / SIGTERM
    print("http_server_example pid %d drained, exiting" % os.getpid(), file=sys.stderr,
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
