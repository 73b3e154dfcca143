"""Binding a resource without the daemon (standalone mode) and parsing resource names.

A resource is one of ":8080" (TCP on every interface, dual-stack), "127.0.0.1:8080",
"0.0.0.0:8080", "[::1]:8080", "[::]:8080" or "unix:/path/to.sock" (docs/protocol.md §5).
"""
import errno
import os
import socket
import stat

MAX_UNIX_PATH = 107


def _port(text, resource):
    if not text.isdigit() or int(text) > 65535:
        raise ValueError("bad port in resource %r" % resource)
    return int(text)


def parse(resource):
    """Returns (family, address, v6only) for a resource name; raises ValueError."""
    if not isinstance(resource, str) or not resource:
        raise ValueError("resource must be a non-empty string, got %r" % (resource,))
    if resource.startswith("unix:"):
        path = resource[len("unix:"):]
        if not path or len(path.encode()) > MAX_UNIX_PATH:
            raise ValueError("unix socket path empty or longer than %d bytes: %r"
                             % (MAX_UNIX_PATH, resource))
        return socket.AF_UNIX, path, None
    host, sep, port = resource.rpartition(":")
    if not sep:
        raise ValueError("resource %r is not :PORT, HOST:PORT, [V6]:PORT or unix:PATH"
                         % resource)
    port = _port(port, resource)
    if host == "":
        return socket.AF_INET6, ("::", port), False
    if host.startswith("[") and host.endswith("]"):
        socket.inet_pton(socket.AF_INET6, host[1:-1])
        return socket.AF_INET6, (host[1:-1], port), True
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        raise ValueError("resource %r: host must be an IPv4 literal or [IPv6]" % resource)
    return socket.AF_INET, (host, port), None


def _canonical(resource):
    """The resource's one spelling, as the daemon and the C++ client name it
    (protocol::Resource::name): numeric hosts in their canonical form, "localhost" as
    127.0.0.1. Raises ValueError or OSError for a bad resource."""
    if resource.startswith("unix:"):
        parse(resource)
        return resource
    host, _, port = resource.rpartition(":")
    port = _port(port, resource)
    if host == "":
        return ":%d" % port
    if host.startswith("[") and host.endswith("]"):
        packed = socket.inet_pton(socket.AF_INET6, host[1:-1])
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, packed), port)
    if host == "localhost":
        host = "127.0.0.1"
    packed = socket.inet_pton(socket.AF_INET, host)
    return "%s:%d" % (socket.inet_ntop(socket.AF_INET, packed), port)


def same(a, b):
    """Whether two spellings name one resource (the daemon may echo another spelling).

    The rule of the C++ client core (client::same_resource): "[0:0::1]:80" is "[::1]:80"
    and "localhost:80" is "127.0.0.1:80"."""
    if a == b:
        return True
    try:
        return _canonical(a) == _canonical(b)
    except (ValueError, OSError):
        return False


def _remove_stale_unix_socket(path):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _listen(family, address, v6only):
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)  # the same mode as a socket handed over by the daemon
        return sock
    except BaseException:
        sock.close()
        raise


def bind(resource):
    """Binds and listens on a resource like the daemon does; returns a non-blocking socket.

    Raises ValueError for a malformed resource and OSError (with the resource in its
    message) when binding fails.
    """
    family, address, v6only = parse(resource)
    if family == socket.AF_UNIX:
        _remove_stale_unix_socket(address)
    try:
        try:
            return _listen(family, address, v6only)
        except OSError as e:
            if v6only is False and e.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                return _listen(socket.AF_INET, ("0.0.0.0", address[1]), None)
            raise
    except OSError as e:
        raise OSError(e.errno, "bind %s: %s" % (resource, e.strerror or e)) from e


def address_of(sock):
    """The address a listening socket is bound to, written like the daemon writes it."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:" + (name.decode() if isinstance(name, bytes) else name)
    if sock.family == socket.AF_INET6:
        return "[%s]:%d" % (name[0], name[1])
    return "%s:%d" % (name[0], name[1])
