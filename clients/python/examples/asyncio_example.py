#!/usr/bin/env python3
"""An asyncio HTTP server under serverswap: loop.create_server(sock=...).

    serverswap -- python3 examples/asyncio_example.py 127.0.0.1:8080

ready_for_async() awaits the listening socket without blocking the loop. On takeDown
(delivered on a serverswap thread, so handed to the loop with call_soon_threadsafe) it
stops accepting, tells the daemon, lets open connections finish their request with
"Connection: close" and exits 0.
"""
import asyncio
import os
import sys

try:
    import serverswap
except ImportError:  # run from a checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import serverswap

BODY = b"Hello from asyncio!\n"
GRACE = float(os.environ.get("SERVERSWAP_DRAIN_GRACE", "10"))


class App:
    def __init__(self):
        self.draining = asyncio.Event()
        self.connections = set()

    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                close = self.draining.is_set() or b"connection: close" in head.lower()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n%s\r\n%s"
                             % (len(BODY), b"Connection: close\r\n" if close else b"", BODY))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.connections.discard(task)


async def main(resource):
    serverswap.init(up_message=True)
    app = App()
    sock = await serverswap.ready_for_async(resource)
    server = await asyncio.get_running_loop().create_server(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), app.handle), sock=sock)
    loop = asyncio.get_running_loop()
    serverswap.on_takedown(resource, lambda _r: loop.call_soon_threadsafe(app.draining.set))
    print("asyncio_example pid %d serving on %s" % (os.getpid(), serverswap.address(resource)),
          file=sys.stderr, flush=True)
    serverswap.server_up()
    await app.draining.wait()
    server.close()  # our copy of the listening socket
    serverswap.took_down(resource)
    # Idle keep-alive connections get the grace period, then are cancelled.
    if app.connections:
        await asyncio.wait(set(app.connections), timeout=GRACE)
    for task in list(app.connections):
        task.cancel()
    print("asyncio_example pid %d drained, exiting" % os.getpid(), file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else ":8080"))
