"""Published ports for unmodified Python servers in Capsule's python image.

Why this exists. WASI preview1 has no socket(), bind(), listen(), setsockopt() or
getsockname(): a guest cannot open a socket. Capsule instead binds the container's
published ports on the host and hands the guest the listeners, already listening, the
way systemd's socket activation does:

    LISTEN_FDS        how many listeners
    LISTEN_FDNAMES    their container ports, ':'-separated ("8000:9000")
    LISTEN_FDS_START  the first one's descriptor (the rest follow it)

A server written for a normal machine (http.server, wsgiref, socketserver, Django's
runserver) does socket() / setsockopt() / bind() / listen() / accept(). This module,
installed by the image's `python3.15` bootstrap before any user code (through
startup.py), makes that sequence land on the listeners:

* `socket.socket(AF_INET or AF_INET6, SOCK_STREAM)` gives a *pending* socket (the real
  constructor would fail with ENOTSUP);
* `setsockopt` of the usual options (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE,
  SO_LINGER, TCP_NODELAY, TCP_KEEPIDLE/INTVL/CNT, IPV6_V6ONLY) is recorded and accepted,
  before or after adoption, and `getsockopt` returns what was recorded; the host
  listener's own options are Capsule's, so these have no effect;
* `bind((host, port))` adopts the listener of that container port, or raises
  OSError(EADDRNOTAVAIL) naming the fix (`-p PORT`); the host part is recorded for
  getsockname() and otherwise ignored (the host side of the port decides who can
  connect: `-p 8000` binds 127.0.0.1 on the host);
* `listen()` after adoption does nothing (the listener already listens);
* `accept()` returns a working connection socket; its peer address is unknown to the
  guest (preview1 has no getpeername), so it is the unspecified address
  ('0.0.0.0', 0) or ('::', 0, 0, 0);
* `close()` of an adopted listener keeps the descriptor for the next bind() of that port
  (a descriptor given away cannot be opened again);
* `connect()` raises OSError(ENETUNREACH) saying that outgoing connections are not
  available; name lookups answer for numeric addresses, '' and 'localhost' and raise
  socket.gaierror for other names (there is no DNS); socketpair() says it is not
  available (socket.py's fallback would try to bind port 0);
* `socket.socket(fileno=N)` without a family works for the listeners (preview1 cannot
  tell a socket's family: the real constructor would give family -1, and accept() would
  fail with 'getsockaddrlen: bad family');
* socketserver.ThreadingMixIn (ThreadingHTTPServer, `python -m http.server`, Django's
  threaded runserver) handles each request in the serving thread when no thread can be
  started, as preview1 has no threads, after saying so once on stderr.

startup.py applies the patches when `socket` and `socketserver` are first imported,
so a program that never touches sockets pays nothing for them.
"""

import errno
import os
import sys

__all__ = ["patch_socket", "patch_socketserver", "listeners"]

# The options that are recorded and accepted (getsockopt returns them), by name; the
# numbers come from the socket module, or Linux's values where this build lacks them.
_LINUX_CONSTANTS = {
    "SOL_SOCKET": 1,
    "SO_REUSEADDR": 2,
    "SO_TYPE": 3,
    "SO_ERROR": 4,
    "SO_KEEPALIVE": 9,
    "SO_LINGER": 13,
    "SO_REUSEPORT": 15,
    "SO_ACCEPTCONN": 30,
    "IPPROTO_TCP": 6,
    "IPPROTO_IPV6": 41,
    "TCP_NODELAY": 1,
    "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6,
    "IPV6_V6ONLY": 26,
    "SHUT_RD": 0,
    "SHUT_WR": 1,
    "SHUT_RDWR": 2,
    "AI_PASSIVE": 1,
    "AI_CANONNAME": 2,
    "AI_NUMERICHOST": 4,
    "AI_NUMERICSERV": 1024,
    "NI_NUMERICHOST": 1,
    "NI_NUMERICSERV": 2,
    "EAI_NONAME": -2,
    "EAI_SERVICE": -8,
    "EAI_FAMILY": -6,
}
_RECORDED = (
    ("SOL_SOCKET", "SO_REUSEADDR"),
    ("SOL_SOCKET", "SO_REUSEPORT"),
    ("SOL_SOCKET", "SO_KEEPALIVE"),
    ("SOL_SOCKET", "SO_LINGER"),
    ("IPPROTO_TCP", "TCP_NODELAY"),
    ("IPPROTO_TCP", "TCP_KEEPIDLE"),
    ("IPPROTO_TCP", "TCP_KEEPINTVL"),
    ("IPPROTO_TCP", "TCP_KEEPCNT"),
    ("IPPROTO_IPV6", "IPV6_V6ONLY"),
)

NO_OUTGOING = (
    "outgoing connections are not available under WASI preview1: a Capsule "
    "container can only accept connections on its published ports"
)
NO_DNS = "there is no DNS under WASI preview1 (only numeric addresses and 'localhost')"


def listeners(environ=None):
    """The published ports' listeners from LISTEN_FDS/LISTEN_FDNAMES/LISTEN_FDS_START:
    ({container port: fd}, problem), problem being None or one line saying what in the
    variables is wrong."""
    environ = os.environ if environ is None else environ
    count = environ.get("LISTEN_FDS")
    if not count:
        return {}, None
    names = environ.get("LISTEN_FDNAMES", "")
    start = environ.get("LISTEN_FDS_START", "3")
    try:
        count, start = int(count), int(start)
    except ValueError:
        return {}, f"LISTEN_FDS={count!r} or LISTEN_FDS_START={start!r} is not a number"
    names = names.split(":") if names else []
    if len(names) != count:
        return {}, f"LISTEN_FDNAMES={':'.join(names)!r} does not name LISTEN_FDS={count} ports"
    found = {}
    for i, name in enumerate(names):
        if name.isdigit() and 0 < int(name) < 65536:
            found.setdefault(int(name), start + i)
    return found, None


class _State:
    """What the shim knows about one socket. kind: 'pending' (no descriptor yet),
    'listener' (an adopted listener), 'connection' (accepted), 'closed'."""

    __slots__ = ("kind", "family", "type", "proto", "timeout", "options", "address",
                 "port", "peer", "listening")

    def __init__(self, kind, family, type, proto, timeout):
        self.kind = kind
        self.family, self.type, self.proto = family, type, proto
        self.timeout = timeout
        self.options = {}
        self.address = None
        self.port = None
        self.peer = None
        self.listening = False


def patch_socket(sm):
    """Patches the socket module `sm` in place (idempotent)."""
    if getattr(sm, "_capsule_shim", False):
        return
    import _socket

    for name, value in _LINUX_CONSTANTS.items():
        if not hasattr(sm, name):
            setattr(sm, name, value)
        if not hasattr(_socket, name):  # create_server() looks in _socket
            setattr(_socket, name, getattr(sm, name))
    af_inet, af_inet6 = sm.AF_INET, getattr(sm, "AF_INET6", 10)
    sock_stream = sm.SOCK_STREAM
    type_flags = getattr(sm, "SOCK_NONBLOCK", 0) | getattr(sm, "SOCK_CLOEXEC", 0)
    recorded = {(getattr(sm, level), getattr(sm, opt)) for level, opt in _RECORDED}
    base = sm.socket
    fds, problem = listeners()
    held = {}  # container port -> the socket holding its listener
    unspecified = {af_inet: ("0.0.0.0", 0), af_inet6: ("::", 0, 0, 0)}

    def family_enum(value):
        return sm._intenum_converter(value, sm.AddressFamily)

    def kind_enum(value):
        return sm._intenum_converter(value, sm.SocketKind)

    def is_socket_fd(fd):
        try:
            import stat
            return stat.S_ISSOCK(os.fstat(fd).st_mode)
        except (OSError, ValueError):
            return False

    def resolve_host(host, family):
        """The numeric address a bind() or lookup of `host` means, or gaierror."""
        if host in ("", None):
            return "0.0.0.0" if family == af_inet else "::"
        if host == "<broadcast>":
            return "255.255.255.255"
        if host.lower() in ("localhost", "localhost.localdomain", _hostname().lower()):
            return "127.0.0.1" if family == af_inet else "::1"
        numeric = _numeric(host)
        if numeric is not None and numeric[0] == family:
            return numeric[1]
        if numeric is not None:
            raise sm.gaierror(sm.EAI_FAMILY, "Address family for hostname not supported")
        raise sm.gaierror(sm.EAI_NONAME, f"Name or service not known: {host!r}: {NO_DNS}")

    def _numeric(host):
        try:
            sm.inet_pton(af_inet, host)
            return af_inet, host
        except (OSError, ValueError, AttributeError):
            pass
        try:
            sm.inet_pton(af_inet6, host.split("%")[0])
            return af_inet6, host
        except (OSError, ValueError, AttributeError):
            return None

    class socket(base):
        __slots__ = ("_capsule",)

        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            self._capsule = None
            if fileno is None:
                fam = af_inet if family == -1 else family
                typ = sock_stream if type == -1 else type
                prt = 0 if proto == -1 else proto
                if (fam in (af_inet, af_inet6) and typ & ~type_flags == sock_stream
                        and prt in (0, getattr(sm, "IPPROTO_TCP", 6))):
                    self._io_refs = 0
                    self._closed = False
                    timeout = sm.getdefaulttimeout()
                    if typ & getattr(sm, "SOCK_NONBLOCK", 0):
                        timeout = 0.0
                    self._capsule = _State("pending", int(fam), int(typ & ~type_flags),
                                           int(prt), timeout)
                    return
            elif family == -1 or type == -1:
                # preview1 cannot say what a descriptor is: a stream socket here is TCP
                if fileno in fds.values() or is_socket_fd(fileno):
                    family = af_inet if family == -1 else family
                    type = sock_stream if type == -1 else type
                    proto = 0 if proto == -1 else proto
            super().__init__(family, type, proto, fileno)

        # -- what a pending socket reports ------------------------------------------
        def _pending(self):
            st = self._capsule
            return st is not None and st.kind in ("pending", "closed")

        @property
        def family(self):
            if self._pending():
                return family_enum(self._capsule.family)
            return super().family

        @property
        def type(self):
            if self._pending():
                return kind_enum(self._capsule.type)
            return super().type

        @property
        def proto(self):
            if self._pending():
                return self._capsule.proto
            return base.proto.__get__(self)

        @property
        def timeout(self):
            if self._pending():
                return self._capsule.timeout
            return base.timeout.__get__(self)

        def fileno(self):
            if self._pending():
                return -1
            return super().fileno()

        def gettimeout(self):
            if self._pending():
                return self._capsule.timeout
            return super().gettimeout()

        def settimeout(self, value):
            if self._pending():
                if value is not None:
                    value = float(value)
                    if value < 0:
                        raise ValueError("Timeout value out of range")
                self._capsule.timeout = value
                return
            super().settimeout(value)

        def setblocking(self, flag):
            if self._pending():
                self._capsule.timeout = None if flag else 0.0
                return
            super().setblocking(flag)

        def getblocking(self):
            if self._pending():
                return self._capsule.timeout != 0.0
            return super().getblocking()

        # -- options ------------------------------------------------------------------
        def setsockopt(self, level, optname, value, optlen=None):
            st = self._capsule
            if (level, optname) in recorded:
                if st is None:
                    st = self._capsule = _State("connection", int(super().family),
                                                int(super().type), 0, None)
                if st.kind == "closed":
                    raise OSError(errno.EBADF, "Bad file descriptor")
                st.options[(level, optname)] = value if optlen is None else (None, optlen)
                return None
            if self._pending():
                raise OSError(errno.ENOPROTOOPT, "Protocol not available")
            if optlen is None:
                return self._native("setsockopt")(level, optname, value)
            return self._native("setsockopt")(level, optname, value, optlen)

        def getsockopt(self, level, optname, buflen=None):
            st = self._capsule
            key = (level, optname)
            value = None
            if st is not None and key in st.options:
                value = st.options[key]
                value = 0 if isinstance(value, tuple) else value
            elif key in recorded:
                value = 0
            elif level == sm.SOL_SOCKET and optname == sm.SO_TYPE:
                value = int(self.type)
            elif level == sm.SOL_SOCKET and optname == sm.SO_ERROR:
                value = 0
            elif level == sm.SOL_SOCKET and optname == sm.SO_ACCEPTCONN:
                value = int(bool(st is not None and st.listening))
            if value is None:
                if self._pending():
                    raise OSError(errno.ENOPROTOOPT, "Protocol not available")
                if buflen is None:
                    return self._native("getsockopt")(level, optname)
                return self._native("getsockopt")(level, optname, buflen)
            if buflen is None:
                return int(value) if not isinstance(value, (bytes, bytearray)) else 0
            if isinstance(value, (bytes, bytearray)):
                return bytes(value[:buflen])
            return int(value).to_bytes(4, sys.byteorder, signed=True)[:buflen]

        # -- bind, listen, accept -------------------------------------------------------
        def bind(self, address):
            st = self._capsule
            if st is None or st.kind == "connection":
                return self._native("bind")(address)
            if st.kind == "closed":
                raise OSError(errno.EBADF, "Bad file descriptor")
            if st.kind == "listener":
                raise OSError(errno.EINVAL, "Invalid argument (the socket is already bound)")
            host, port, rest = self._split_address(address)
            host = resolve_host(host, st.family)
            if problem:
                raise OSError(errno.EADDRNOTAVAIL, f"cannot bind port {port}: {problem}")
            fd = fds.get(port)
            if fd is None:
                published = ", ".join(str(p) for p in sorted(fds)) or "none"
                if port == 0:
                    why = ("port 0 (any free port) cannot be chosen inside the container: "
                           "publish a port with -p PORT and bind to it")
                else:
                    why = (f"port {port} is not published: run the container with -p {port} "
                           f"(or -p HOSTPORT:{port})")
                raise OSError(errno.EADDRNOTAVAIL, f"{why}; published ports: {published}")
            holder = held.get(port)
            if holder is not None and holder is not self:
                raise OSError(errno.EADDRINUSE,
                              f"Address already in use: port {port} is held by another socket")
            _socket.socket.__init__(self, st.family, st.type, st.proto, fd)
            super().settimeout(st.timeout)
            st.kind = "listener"
            st.port = port
            st.address = (host, port) + rest
            held[port] = self
            return None

        def _split_address(self, address):
            family = self._capsule.family
            if not isinstance(address, tuple):
                raise TypeError(f"{'AF_INET' if family == af_inet else 'AF_INET6'} address "
                                f"must be tuple, not {address.__class__.__name__}")
            if family == af_inet and len(address) != 2:
                raise TypeError("AF_INET address must be a pair (host, port)")
            if family == af_inet6 and not 2 <= len(address) <= 4:
                raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
            host, port = address[0], address[1]
            if isinstance(host, (bytes, bytearray)):
                host = bytes(host).decode("idna")
            if not isinstance(host, str):
                raise TypeError(f"str, bytes or bytearray expected, not {host.__class__.__name__}")
            if not isinstance(port, int):
                raise TypeError(f"'{port.__class__.__name__}' object cannot be interpreted as an integer")
            if not 0 <= port <= 65535:
                raise OverflowError("bind(): port must be 0-65535.")
            rest = tuple(address[2:]) + (0, 0)[len(address) - 2:] if family == af_inet6 else ()
            return host, port, rest

        def listen(self, *backlog):
            st = self._capsule
            if st is not None and st.kind == "listener":
                st.listening = True
                return None
            if st is not None and st.kind == "pending":
                raise OSError(errno.EDESTADDRREQ,
                              "listen() before bind(): under Capsule a socket listens only on "
                              "a published port; bind((host, PORT)) it first")
            return self._native("listen")(*backlog)

        def accept(self):
            st = self._capsule
            if st is not None and st.kind == "pending":
                raise OSError(errno.EINVAL, "Invalid argument (the socket is not listening)")
            fd, addr = self._accept()
            family = st.family if st is not None else int(super().family)
            if not (isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[0], str)):
                # preview1's sock_accept gives no peer address: CPython makes (0, b'')
                addr = unspecified.get(family, ("0.0.0.0", 0))
            conn = socket(self.family, self.type, self.proto, fileno=fd)
            conn._capsule = _State("connection", family, int(self.type), int(self.proto), None)
            conn._capsule.address = st.address if st is not None else None
            conn._capsule.peer = addr
            if sm.getdefaulttimeout() is None and self.gettimeout():
                conn.setblocking(True)
            return conn, addr

        def getsockname(self):
            st = self._capsule
            if st is not None:
                if st.kind == "closed":
                    raise OSError(errno.EBADF, "Bad file descriptor")
                if st.kind == "pending":
                    return unspecified.get(st.family, ("0.0.0.0", 0))
                if st.address is not None:
                    return st.address
            return self._native("getsockname")()

        def getpeername(self):
            st = self._capsule
            if st is not None and st.peer is not None:
                return st.peer
            if st is not None and st.kind != "connection":
                raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
            return self._native("getpeername")()

        def _native(self, name):
            """The build's own method, or one that says preview1 lacks the call."""
            method = getattr(base, name, None)
            if method is not None:
                return method.__get__(self)

            def missing(*args):
                raise OSError(errno.ENOTSUP, f"{name}() is not available under WASI preview1")
            return missing

        # -- what there is not: outgoing connections --------------------------------------
        def connect(self, address):
            if self._pending() or self._capsule is not None:
                raise OSError(errno.ENETUNREACH, NO_OUTGOING)
            return self._native("connect")(address)

        def connect_ex(self, address):
            if self._pending() or self._capsule is not None:
                return errno.ENETUNREACH
            return self._native("connect_ex")(address)

        # -- closing ------------------------------------------------------------------------
        def _real_close(self, _ss=_socket.socket):
            st = self._capsule
            if st is not None and st.kind == "pending":
                st.kind = "closed"
                return
            if st is not None and st.kind == "listener":
                # Keep the host's listener: a later bind() of this port adopts it again.
                if held.get(st.port) is self:
                    del held[st.port]
                st.kind = "closed"
                _ss.detach(self)
                return
            if st is not None:
                st.kind = "closed"
            _ss.close(self)

        def detach(self):
            st = self._capsule
            if st is not None and st.kind == "pending":
                st.kind = "closed"
                return -1
            if st is not None and st.kind == "listener" and held.get(st.port) is self:
                del held[st.port]
            if st is not None:
                st.kind = "closed"
            return super().detach()

    socket.__module__ = sm.__name__
    socket.__qualname__ = socket.__name__ = "socket"
    socket.__doc__ = base.__doc__

    # -- name lookups: numeric addresses and this machine only ----------------------------
    orig = {name: getattr(sm, name, None) for name in
            ("gethostname", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
             "getaddrinfo", "getnameinfo")}

    def _hostname():
        if orig["gethostname"] is not None:
            try:
                name = orig["gethostname"]()
                if name and name != "(none)":  # wasi-libc's answer: no name
                    return name
            except OSError:
                pass
        return os.environ.get("HOSTNAME") or "localhost"

    def gethostname():
        """Return the current host name (HOSTNAME, else 'localhost' under WASI)."""
        return _hostname()

    def gethostbyname(hostname):
        """Return the IPv4 address of a numeric address or of this machine."""
        return resolve_host(hostname, af_inet)

    def gethostbyname_ex(hostname):
        """As gethostbyname, as (name, aliases, addresses)."""
        return hostname, [], [resolve_host(hostname, af_inet)]

    def gethostbyaddr(ip_address):
        """Names only the loopback addresses: there is no DNS under WASI preview1."""
        if ip_address in ("127.0.0.1", "::1", "localhost", _hostname()):
            address = "::1" if ip_address == "::1" else "127.0.0.1"
            return "localhost", [], [address]
        raise sm.herror(1, f"Unknown host: {NO_DNS}")

    services = {"http": 80, "https": 443, "http-alt": 8080}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        """Resolve numeric addresses, '' / None and 'localhost' (no DNS under WASI)."""
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("idna")
        if isinstance(port, (bytes, bytearray)):
            port = bytes(port).decode()
        if port is None:
            port = 0
        elif isinstance(port, str):
            if port.isdigit():
                port = int(port)
            elif port in services and not flags & sm.AI_NUMERICSERV:
                port = services[port]
            else:
                raise sm.gaierror(sm.EAI_SERVICE, "Servname not supported for ai_socktype")
        elif not isinstance(port, int):
            raise OSError("Int or String expected")
        families = [af_inet, af_inet6] if family in (0, sm.AF_UNSPEC) else [family]
        if host in (None, ""):
            addresses = [(f, ("0.0.0.0" if f == af_inet else "::") if flags & sm.AI_PASSIVE
                          else ("127.0.0.1" if f == af_inet else "::1")) for f in families]
        else:
            numeric = _numeric(host)
            if numeric is not None:
                if numeric[0] not in families:
                    raise sm.gaierror(sm.EAI_FAMILY, "Address family for hostname not supported")
                addresses = [numeric]
            elif flags & sm.AI_NUMERICHOST:
                raise sm.gaierror(sm.EAI_NONAME, "Name or service not known")
            else:
                addresses = [(f, resolve_host(host, f)) for f in families]
        kinds = [type] if type else [sock_stream, sm.SOCK_DGRAM]
        result = []
        for fam, address in addresses:
            if fam not in (af_inet, af_inet6):
                continue
            sockaddr = (address, port) if fam == af_inet else (address, port, 0, 0)
            for kind in kinds:
                p = proto or (6 if kind == sock_stream else 17)
                result.append((family_enum(fam), kind_enum(kind), p, "", sockaddr))
        if not result:
            raise sm.gaierror(sm.EAI_FAMILY, "Address family for hostname not supported")
        return result

    def getnameinfo(sockaddr, flags):
        """Numeric answers only: there is no DNS under WASI preview1."""
        host, port = sockaddr[0], sockaddr[1]
        if not flags & sm.NI_NUMERICHOST and host in ("127.0.0.1", "::1"):
            host = "localhost"
        return host, str(port)

    def create_connection(address, *args, **kwargs):
        """Raise at once: there are no outgoing connections under WASI preview1."""
        raise OSError(errno.ENETUNREACH, NO_OUTGOING)

    def socketpair(family=None, type=sock_stream, proto=0):
        """Not available: preview1 has neither pipes nor local sockets (so asyncio's
        event loops, which need one for their self-pipe, cannot start)."""
        raise OSError(errno.ENOTSUP, "socketpair() is not available under WASI preview1 "
                                     "(no pipes, no local sockets; asyncio needs one)")

    sm.socket = socket
    sm.gethostname = gethostname
    sm.gethostbyname = gethostbyname
    sm.gethostbyname_ex = gethostbyname_ex
    sm.gethostbyaddr = gethostbyaddr
    sm.getaddrinfo = getaddrinfo
    sm.getnameinfo = getnameinfo
    sm.create_connection = create_connection
    if not hasattr(_socket, "socketpair"):  # socket.py's fallback would bind port 0
        sm.socketpair = socketpair
    sm._capsule_shim = True
    sm._capsule_listeners = dict(fds)


def _threads_start():
    """Whether this build can start a thread (WASI preview1 cannot)."""
    try:
        import _thread
        _thread.start_new_thread(lambda: None, ())
        return True
    except (RuntimeError, ImportError, AttributeError):
        return False


def patch_socketserver(ss):
    """ThreadingMixIn serves each request in the calling thread when there are no
    threads, instead of failing every request with 'can't start new thread'."""
    if getattr(ss, "_capsule_shim", False) or _threads_start():
        return
    threaded = ss.ThreadingMixIn.process_request
    told = []

    def process_request(self, request, client_address):
        if not told:
            told.append(True)
            print("capsule: no threads under WASI preview1: "
                  f"{type(self).__name__} handles one request at a time", file=sys.stderr)
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    process_request.__doc__ = threaded.__doc__
    ss.ThreadingMixIn.process_request = process_request
    ss._capsule_shim = True
