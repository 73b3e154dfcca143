"""Listening sockets a supervisor left open across exec, found through the environment.

The same contract as the C client (include/serverswap/serverswap.h, "Inherited sockets";
docs/protocol.md, "Inherited sockets and unmodified programs"). The first convention
present wins, in this order:

- systemd socket activation: LISTEN_FDS=n (fds 3 .. 3+n-1) and LISTEN_FDNAMES=a:b, only
  when LISTEN_PID is this process;
- Server::Starter: SERVER_STARTER_PORT="8080=3;127.0.0.1:8081=4;/run/app.sock=5";
- einhorn: EINHORN_FD_COUNT=n and EINHORN_FD_0 .. EINHORN_FD_<n-1>.

serverswap --listen sets all three, so a worker forked by the server (LISTEN_PID is then
its parent's) still finds the sockets through SERVER_STARTER_PORT.

A resource matches a socket that listens on its address (":8080": any address with port
8080; "unix:/p": the path /p), or whose LISTEN_FDNAMES name is the resource string. Only
listening stream sockets match. Malformed variables are logged and ignored.
"""
import os
import socket

from . import resources

SYSTEMD_FIRST_FD = 3          # SD_LISTEN_FDS_START
MAX_FDS = 4096                # more is a mistake in the environment, not a server


class Inherited:
    """One inherited descriptor: fd, and its LISTEN_FDNAMES name ("" otherwise)."""

    __slots__ = ("fd", "name")

    def __init__(self, fd, name=""):
        self.fd = fd
        self.name = name

    def __eq__(self, other):
        return (self.fd, self.name) == (other.fd, other.name)

    def __repr__(self):
        return "Inherited(%d, %r)" % (self.fd, self.name)


def _number(text, variable):
    if text is None or not text.isdigit() or not text.isascii():
        raise ValueError("%s=%s: not a number" % (variable, text or ""))
    return int(text)


def _count(text, variable):
    count = _number(text, variable)
    if count > MAX_FDS:
        raise ValueError("%s=%s: not a count of descriptors" % (variable, text))
    return count


def parse_systemd(env, pid):
    """(convention, [Inherited]) from LISTEN_*; ("", []) when they are not for `pid`."""
    fds, owner = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    if fds is None or owner is None:
        return "", []
    if _number(owner, "LISTEN_PID") != pid:
        return "", []  # our parent's: we are a child that inherited the variables
    count = _count(fds, "LISTEN_FDS")
    names = env.get("LISTEN_FDNAMES")
    names = names.split(":") if names is not None and count > 0 else [""] * count
    if len(names) != count:
        raise ValueError("LISTEN_FDNAMES=%s: names %d descriptors but LISTEN_FDS=%d"
                         % (env["LISTEN_FDNAMES"], len(names), count))
    return "LISTEN_FDS", [Inherited(SYSTEMD_FIRST_FD + i, names[i]) for i in range(count)]


def parse_server_starter(text):
    """(convention, [Inherited]) from SERVER_STARTER_PORT's text."""
    found = []
    for entry in text.split(";"):
        if not entry:
            continue  # a trailing ';'
        # The last '=': a Unix path may hold one, the descriptor never does.
        address, sep, fd = entry.rpartition("=")
        if not sep or not address or not fd.isdigit() or not fd.isascii():
            raise ValueError("SERVER_STARTER_PORT=%s: expected ADDRESS=FD;ADDRESS=FD..." % text)
        found.append(Inherited(int(fd)))
    if not found:
        raise ValueError("SERVER_STARTER_PORT=%s: expected ADDRESS=FD;ADDRESS=FD..." % text)
    return "SERVER_STARTER_PORT", found


def parse_einhorn(env):
    """(convention, [Inherited]) from EINHORN_FD_COUNT and EINHORN_FD_n."""
    if env.get("EINHORN_FD_COUNT") is None:
        return "", []
    count = _count(env["EINHORN_FD_COUNT"], "EINHORN_FD_COUNT")
    found = []
    for i in range(count):
        variable = "EINHORN_FD_%d" % i
        found.append(Inherited(_number(env.get(variable), variable)))
    return "EINHORN_FD_COUNT", found


def read(env=None, pid=None, log=None):
    """(convention, [Inherited]) of the first convention present; ("", []) if none."""
    env = os.environ if env is None else env
    pid = os.getpid() if pid is None else pid
    parsers = [lambda: parse_systemd(env, pid),
               lambda: parse_server_starter(env["SERVER_STARTER_PORT"])
               if "SERVER_STARTER_PORT" in env else ("", []),
               lambda: parse_einhorn(env)]
    for parse in parsers:
        try:
            convention, found = parse()
        except ValueError as e:
            if log is not None:
                log("ignoring inherited sockets: %s" % e)
            continue
        if convention:
            return convention, found
    return "", []


def _inspect(fd):
    """(listening stream socket?, family, getsockname()) of fd, or None if it is no socket."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        with socket.socket(fileno=dup) as sock:
            listening = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
                         and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1)
            return listening, sock.family, sock.getsockname()
    except OSError:
        return None


def _packed(family, host):
    try:
        return socket.inet_pton(family, host)
    except OSError:
        return None


def _same_address(family, name, resource):
    want_family, address, _ = resources.parse(resource)
    if want_family == socket.AF_UNIX:
        if family != socket.AF_UNIX:
            return False
        path = name.decode(errors="replace") if isinstance(name, bytes) else name
        return path == address
    if family not in (socket.AF_INET, socket.AF_INET6) or name[1] != address[1]:
        return False
    if resource.startswith(":"):
        return True  # ":8080": any address with that port
    host = address[0]
    if family == socket.AF_INET6 and want_family == socket.AF_INET:
        host = "::ffff:" + host  # also served by its v4-mapped IPv6 address
    elif family != want_family:
        return False
    return _packed(family, host) == _packed(family, name[0])


def listens_on(fd, resource):
    """Whether fd is a listening stream socket bound to resource's address."""
    try:
        resources.parse(resource)
    except ValueError:
        return False
    seen = _inspect(fd)
    return seen is not None and seen[0] and _same_address(seen[1], seen[2], resource)


def find(found, resource):
    """The Inherited for a resource, or None. A LISTEN_FDNAMES name that matches a fd
    that is not a listening stream socket raises ValueError."""
    for s in found:
        if s.name and s.name == resource:
            seen = _inspect(s.fd)
            if seen is None or not seen[0]:
                raise ValueError("inherited fd %d (LISTEN_FDNAMES %s) is not a listening "
                                 "stream socket" % (s.fd, s.name))
            return s
    for s in found:
        if listens_on(s.fd, resource):
            return s
    return None


def mark_close_on_exec(found):
    """Not for the server's own children, as sd_listen_fds() does. Only for matched fds: one a
    stale variable names may be something else the program owns."""
    for s in found:
        try:
            os.set_inheritable(s.fd, False)
        except OSError:
            pass


def describe(found):
    """"fd 3 [::]:8080 (web), fd 4 unix:/run/a.sock" for messages."""
    parts = []
    for s in found:
        seen = _inspect(s.fd)
        text = "fd %d %s" % (s.fd, "?" if seen is None else _spell(seen[1], seen[2]))
        parts.append(text + (" (%s)" % s.name if s.name else ""))
    return ", ".join(parts)


def _spell(family, name):
    if family == socket.AF_UNIX:
        return "unix:" + (name.decode(errors="replace") if isinstance(name, bytes) else name)
    if family == socket.AF_INET6:
        return "[%s]:%d" % (name[0], name[1])
    return "%s:%d" % (name[0], name[1])
