"""http.server servers that take their socket from serverswap and drain on takeDown."""
import http.server
import socketserver

from . import client as client_module
from .drain import drain


def _adopt_socket(server, sock):
    server.socket.close()  # the one TCPServer.__init__ made, never bound
    server.socket = sock
    server.address_family = sock.family
    server.server_address = sock.getsockname()
    if isinstance(server.server_address, tuple):
        server.server_name = str(server.server_address[0])
        server.server_port = server.server_address[1]
    else:
        server.server_name, server.server_port = "localhost", 0


class _ServerswapMixin:
    def __init__(self, resource, handler_class, client=None, grace=None, drain_on_takedown=True):
        client = client or client_module.default_client()
        sock = client.ready_for(resource)
        try:
            super().__init__(("127.0.0.1", 0), handler_class, bind_and_activate=False)
        except BaseException:
            sock.close()
            raise
        _adopt_socket(self, sock)
        self.serverswap_client = client
        self.serverswap_resource = resource
        if drain_on_takedown and not client.has_takedown_handler(resource):
            self.begin_drain = drain(self, grace=grace, client=client, resource=resource)


class ThreadingHTTPServer(_ServerswapMixin, http.server.ThreadingHTTPServer):
    """http.server.ThreadingHTTPServer on ready_for(resource), draining on takeDown.

        server = serverswap.ThreadingHTTPServer(":8080", MyHandler)
        serverswap.server_up()          # if the client was created with up_message=True
        with server:
            server.serve_forever()      # returns once drained after a takeDown

    The drain (see serverswap.drain) is installed unless a takedown handler is already
    registered for the resource or drain_on_takedown=False.
    """


class HTTPServer(_ServerswapMixin, http.server.HTTPServer):
    """http.server.HTTPServer (one request at a time) on ready_for(resource)."""


class ThreadingTCPServer(_ServerswapMixin, socketserver.ThreadingTCPServer):
    """socketserver.ThreadingTCPServer on ready_for(resource); no HTTP drain by default."""

    def __init__(self, resource, handler_class, client=None):
        super().__init__(resource, handler_class, client=client, drain_on_takedown=False)
