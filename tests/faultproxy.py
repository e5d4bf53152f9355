"""A loopback HTTP server in front of another (a FakeArchive's) that makes chosen request
paths misbehave the way real mirrors and networks do.

::

    with FakeArchive(...).serve() as upstream, FaultProxy(upstream) as proxy:
        proxy.on("/debian/dists/trixie/InRelease", Status(503), times=2)
        proxy.on("/debian/pool/main/t/tools/tools_1_amd64.deb", Trickle())
        url = proxy.url("debian")        # give this to compose as the mirror
        ...
        assert proxy.count("/debian/dists/trixie/InRelease") == 3

Paths without a rule are passed through: the proxy fetches them from the upstream server
and answers with the same status and body. Every response carries ``Connection: close``,
so each request has a connection of its own and a fault never spills over into the next
request. The proxy counts requests per decoded URL path and body bytes sent per path
(:meth:`FaultProxy.sent`), so that a test can tell how often a client retried and how
much of an endless body it read.

A proxy made without an upstream answers 404 for every path without a rule; with
:class:`Body` rules it is "another server" that serves other content.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = [
    "ENDLESS_LIMIT",
    "Body",
    "Endless",
    "Exchange",
    "Fault",
    "FaultProxy",
    "Redirect",
    "Reset",
    "Stall",
    "Status",
    "Trickle",
    "Truncate",
]

ENDLESS_LIMIT = 1 << 30
"""Body bytes after which an endless body gives up: a client still reading by then has
read far more than any file it could have asked for."""

_BLOCK = bytes(range(256)) * 256
"""64 KiB of filler for endless bodies."""


class Exchange:
    """One request on one connection, as a fault sees it."""

    def __init__(self, proxy: FaultProxy, conn: socket.socket, path: str) -> None:
        self.proxy = proxy
        self.conn = conn
        self.path = path
        self.closed = False

    @property
    def stopping(self) -> bool:
        return self.proxy._stop.is_set()

    def upstream(self) -> tuple[int, bytes]:
        """The status and body the upstream server gives for this path."""
        if self.proxy.upstream is None:
            return 404, b"not found\n"
        parts = urlsplit(self.proxy.upstream)
        c = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            c.request("GET", self.path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def head(self, status: int, headers: dict[str, str] | None = None) -> None:
        """The status line and headers (``Connection: close`` added)."""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Whatever"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines += ["Connection: close", "", ""]
        self.conn.sendall("\r\n".join(lines).encode("latin-1"))

    def body(self, data: bytes) -> None:
        """Send body bytes, counted for :meth:`FaultProxy.sent` once the kernel took them."""
        self.conn.sendall(data)
        self.proxy._count_sent(self.path, len(data))

    def whole(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.head(status, {"Content-Type": "application/octet-stream",
                           "Content-Length": str(len(data)), **(headers or {})})
        self.body(data)

    def reset(self) -> None:
        """Abort the connection: with a zero linger time, close sends RST, not FIN."""
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.close()
        self.closed = True

    def wait_for_client(self) -> None:
        """Send nothing until the client hangs up (or the proxy stops)."""
        while not self.stopping:
            ready, _, _ = select.select([self.conn], [], [], 0.05)
            if ready:
                try:
                    if not self.conn.recv(4096):
                        return
                except OSError:
                    return

    def sleep(self, seconds: float) -> bool:
        """Wait; False if the proxy stopped meanwhile."""
        return not self.proxy._stop.wait(seconds)


class Fault:
    """What to do instead of passing a request through."""

    def act(self, ex: Exchange) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Status(Fault):
    """Answer this HTTP status (500, 502, 503, 429, 404...) with a short body."""

    code: int

    def act(self, ex: Exchange) -> None:
        ex.whole(self.code, f"status {self.code}\n".encode(), {"Content-Type": "text/plain"})


@dataclass(frozen=True)
class Reset(Fault):
    """Reset the connection (RST): before any byte of the response, or with
    ``mid_body`` after the headers (whole Content-Length) and half the body."""

    mid_body: bool = False

    def act(self, ex: Exchange) -> None:
        if self.mid_body:
            status, data = ex.upstream()
            ex.head(status, {"Content-Length": str(len(data))})
            ex.body(data[: len(data) // 2])
            time.sleep(0.05)  # let the client read what was sent before the reset
        ex.reset()


@dataclass(frozen=True)
class Stall(Fault):
    """Accept the request and send nothing, or (``headers``) send the headers of the
    right response and then nothing, until the client gives up."""

    headers: bool = False

    def act(self, ex: Exchange) -> None:
        if self.headers:
            status, data = ex.upstream()
            ex.head(status, {"Content-Length": str(len(data))})
        ex.wait_for_client()


@dataclass(frozen=True)
class Trickle(Fault):
    """The right response, its body ``step`` bytes every ``interval`` seconds: never
    silent long enough for a read timeout, yet far too slow."""

    step: int = 1
    interval: float = 0.2

    def act(self, ex: Exchange) -> None:
        status, data = ex.upstream()
        ex.head(status, {"Content-Length": str(len(data))})
        for i in range(0, len(data), self.step):
            ex.body(data[i:i + self.step])
            if not ex.sleep(self.interval):
                return


@dataclass(frozen=True)
class Truncate(Fault):
    """The first half of the right body, then an orderly close (FIN). With ``declared``
    the headers promise the whole length (Content-Length); without, the body is
    delimited by the close alone, so only its size tells it is short."""

    declared: bool = True

    def act(self, ex: Exchange) -> None:
        status, data = ex.upstream()
        ex.head(status, {"Content-Length": str(len(data))} if self.declared else {})
        ex.body(data[: len(data) // 2])
        ex.conn.shutdown(socket.SHUT_WR)
        ex.wait_for_client()


@dataclass(frozen=True)
class Endless(Fault):
    """A 200 whose body never ends (up to :data:`ENDLESS_LIMIT`): ``chunked``,
    delimited by the ``close`` that never comes, or with a ``length`` header that
    declares the whole limit."""

    framing: Literal["chunked", "close", "length"] = "chunked"

    def act(self, ex: Exchange) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if self.framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        elif self.framing == "length":
            headers["Content-Length"] = str(ENDLESS_LIMIT)
        ex.head(200, headers)
        total = 0
        while total < ENDLESS_LIMIT and not ex.stopping:
            if self.framing == "chunked":
                ex.conn.sendall(f"{len(_BLOCK):x}\r\n".encode())
                ex.body(_BLOCK)
                ex.conn.sendall(b"\r\n")
            else:
                ex.body(_BLOCK)
            total += len(_BLOCK)


@dataclass(frozen=True)
class Redirect(Fault):
    """Redirect (301, 302, 307...) to ``location``: a path on this server or a URL."""

    location: str
    code: int = 302

    def act(self, ex: Exchange) -> None:
        ex.whole(self.code, b"", {"Location": self.location})


@dataclass(frozen=True)
class Body(Fault):
    """Serve these bytes (other content than the upstream's) with this status."""

    data: bytes
    code: int = 200
    headers: tuple[tuple[str, str], ...] = ()

    def act(self, ex: Exchange) -> None:
        ex.whole(self.code, self.data, dict(self.headers))


@dataclass
class _Rule:
    fault: Fault
    times: int | None
    used: int = 0


class FaultProxy:
    """An HTTP server on 127.0.0.1 (a port of its own) in front of ``upstream``
    (``http://127.0.0.1:PORT``, or a URL with a path, whose path is ignored)."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        """Each request's decoded path, in arrival order."""
        self._counts: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._rules: dict[str, list[_Rule]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._handlers: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._acceptor.start()

    def url(self, name: str) -> str:
        """The URL of the archive served upstream at ``/<name>``."""
        return f"{self.base_url}/{name}"

    def on(self, path: str, fault: Fault, times: int | None = None) -> None:
        """Make requests for ``path`` (decoded, e.g. ``/debian/dists/trixie/InRelease``)
        misbehave: the first ``times`` of them not yet claimed by an earlier rule, or all
        (``None``); requests no rule claims are passed through."""
        with self._lock:
            self._rules.setdefault(path, []).append(_Rule(fault, times))

    def count(self, path: str) -> int:
        """Requests received for ``path`` so far."""
        with self._lock:
            return self._counts[path]

    def counts(self) -> dict[str, int]:
        """Requests received so far, by path."""
        with self._lock:
            return dict(self._counts)

    def sent(self, path: str) -> int:
        """Body bytes handed to the kernel for ``path`` so far, over all requests."""
        with self._lock:
            return self._sent[path]

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered; False if one still is at timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                busy = [t for t in self._handlers if t.is_alive()]
            if not busy:
                return True
            busy[0].join(max(0.0, end - time.monotonic()))
        return False

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
            handlers = list(self._handlers)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in handlers:
            t.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _count_sent(self, path: str, n: int) -> None:
        with self._lock:
            self._sent[path] += n

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name="faultproxy-conn",
                                 daemon=True)
            with self._lock:
                self._conns.add(conn)
                self._handlers = {h for h in self._handlers if h.is_alive()}
                self._handlers.add(t)
            t.start()

    def _claim(self, path: str) -> Fault | None:
        with self._lock:
            self._counts[path] += 1
            self.log.append(path)
            for rule in self._rules.get(path, []):
                if rule.times is None or rule.used < rule.times:
                    rule.used += 1
                    return rule.fault
        return None

    def _serve(self, conn: socket.socket) -> None:
        ex: Exchange | None = None
        try:
            conn.settimeout(30)
            path = _read_request(conn)
            if path is None:
                return
            ex = Exchange(self, conn, path)
            fault = self._claim(path)
            if fault is not None:
                fault.act(ex)
            else:
                status, data = ex.upstream()
                ex.whole(status, data)
        except OSError:
            pass  # the client hung up, as clients giving up on a fault do
        finally:
            with self._lock:
                self._conns.discard(conn)
            if ex is None or not ex.closed:
                conn.close()


def _read_request(conn: socket.socket) -> str | None:
    """The decoded path of the request on ``conn`` (its headers read whole)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3:
        return None
    return unquote(urlsplit(parts[1]).path)
