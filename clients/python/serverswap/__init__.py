"""serverswap: zero-downtime restarts. The Python client (standard library only).

    import serverswap
    sock = serverswap.ready_for(":8080")       # listening socket, non-blocking, shared
    serverswap.on_takedown(":8080", stop_accepting_and_drain)
    serverswap.server_up()                      # optional unless init(up_message=True)

Module-level functions use a default Client made on first use from SERVERSWAP_ID and
SERVERSWAP_SOCKET (call init(up_message=True) first to promise server_up()). Without
SERVERSWAP_ID (or, after one line on stderr, with no daemon answering at start),
ready_for() binds the resource itself and the rest does nothing.
See README.md.
"""
from .client import (Client, RequestError, ServerswapError, default_client, init,
                     LineFramer, MAX_LINE, PROTOCOL)
from .drain import drain
from .http import HTTPServer, ThreadingHTTPServer, ThreadingTCPServer
from .resources import bind as bind_standalone

__version__ = "0.1.0"


def ready_for(resource, timeout=None):
    """The listening socket for a resource (see Client.ready_for)."""
    return default_client().ready_for(resource, timeout)


async def ready_for_async(resource):
    """ready_for() without blocking an asyncio loop."""
    return await default_client().ready_for_async(resource)


def on_takedown(resource, fn):
    """Calls fn(resource) on its own thread when a newer server takes the resource over."""
    default_client().on_takedown(resource, fn)


def server_up():
    """Declares this server up on every resource it asked for."""
    default_client().server_up()


def fail(reason):
    """This server cannot start: the daemon kills it and the old one keeps serving."""
    default_client().fail(reason)


def took_down(resource):
    """Tells the daemon this server has stopped accepting on the resource."""
    default_client().took_down(resource)


def address(resource):
    """The address actually bound for a resource received so far (useful with port 0)."""
    return default_client().address(resource)


def standalone():
    """True when not running under serverswap (no SERVERSWAP_ID, or no daemon at start)."""
    return default_client().standalone


__all__ = ["Client", "RequestError", "ServerswapError", "default_client", "init", "drain",
           "HTTPServer", "ThreadingHTTPServer", "ThreadingTCPServer", "ready_for",
           "ready_for_async", "on_takedown", "server_up", "fail", "took_down", "address",
           "standalone", "bind_standalone", "LineFramer", "MAX_LINE", "PROTOCOL"]
