"""Downloads over one httpx connection pool (or from ``file:`` mirrors), bounded,
retried and verified.

``get_small`` returns a whole body (InRelease and the like) with a size bound;
``download_verified`` streams into the cache's temporary area, checking the size as it
goes and the sha256 at the end, and only then renames the file into place.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.errors import ComposeError, ConfigError, FetchError, TrustError

if TYPE_CHECKING:

    from composer.archive.cache import Cache

RETRIES = 3
BACKOFF = 0.5
TIMEOUT = 30.0
"""Seconds to connect, and the longest silence while reading (``COMPOSE_HTTP_TIMEOUT``)."""
MIN_RATE = 16 << 10
"""Bytes per second below which a transfer counts as stalled: each attempt must end
within the timeout plus its expected size at this rate, so that a server trickling
bytes cannot hold compose forever."""
RETRY_STATUS = (408, 429)
"""Client errors that are the server's passing state, retried like 5xx."""


def timeout_from(env: Mapping[str, str]) -> float:
    """``COMPOSE_HTTP_TIMEOUT`` in seconds, or the default."""
    return seconds_from(env, "COMPOSE_HTTP_TIMEOUT", TIMEOUT, 3600)


def seconds_from(env: Mapping[str, str], name: str, default: float, most: float) -> float:
    """The environment variable ``name`` as a number of seconds (at most ``most``), or
    ``default`` when it is unset; ConfigError when it is not such a number."""
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= most:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds",
                          f"give a number between 0 and {most:.0f}, like {default:.0f}")
    return value


class _Stalled(Exception):
    """An attempt that ran out of time or ended early: retried, then reported."""


def _check_time(deadline: float, total: int) -> None:
    if time.monotonic() > deadline:
        raise _Stalled(f"too slow: {total} bytes in the time allowed (stalled?)")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None


class NotFound(FetchError):
    """The server answered 404 or 410, or a ``file:`` mirror has no such file."""


def _local(url: str) -> Path:
    """The path a ``file:`` URL names (``file:/x``, ``file:///x``, ``file://localhost/x``)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise FetchError(f"cannot read {url}: file: URLs name local paths only")
    return Path(unquote(parsed.path))


def _open_local(url: str) -> tuple[Any, int]:
    path = _local(url)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFound(f"{url}: not found") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {url}: {exc.strerror}") from exc
    return f, os.fstat(f.fileno()).st_size


def _resolve_once_backend() -> Any:
    """An httpcore network backend that looks each host up once per run and reuses the
    addresses for every connection (a lookup per connection can stall for seconds).
    TLS still verifies and sends the host name: only the TCP connect uses the address."""
    import socket
    import threading

    import httpcore

    class ResolveOnce(httpcore.SyncBackend):
        def __init__(self) -> None:
            self._known: dict[tuple[str, int], list[str]] = {}
            self._lock = threading.Lock()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> Any:
            with self._lock:
                addresses = self._known.get((host, port))
                if addresses is None:
                    try:
                        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                    except OSError as exc:
                        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
                    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
                    self._known[(host, port)] = addresses
            last: Exception | None = None
            for address in addresses:
                try:
                    return super().connect_tcp(address, port, timeout, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

    return ResolveOnce()


def _transport(httpx: Any, limits: Any, backend: Any, verify: bool) -> Any:
    import httpcore

    transport = httpx.HTTPTransport(verify=verify, limits=limits)
    # httpx has no public hook for the network backend; swap in an identical pool that uses it.
    old = transport._pool
    transport._pool = httpcore.ConnectionPool(
        ssl_context=old._ssl_context, max_connections=old._max_connections,
        max_keepalive_connections=old._max_keepalive_connections,
        keepalive_expiry=old._keepalive_expiry, http1=True, http2=False, network_backend=backend)
    return transport


def _lazy_tls_transport(httpx: Any, limits: Any, backend: Any) -> Any:
    """An https transport that builds its TLS context (40 ms of loading CA certificates)
    on the first https request, so that plain-http mirrors never pay for it."""

    class LazyTLS(httpx.BaseTransport):  # type: ignore[misc]
        def __init__(self) -> None:
            self._real: Any = None

        def handle_request(self, request: Any) -> Any:
            if self._real is None:
                self._real = _transport(httpx, limits, backend, verify=True)
            return self._real.handle_request(request)

        def close(self) -> None:
            if self._real is not None:
                self._real.close()

    return LazyTLS()


def _no_downgrade(response: Any) -> None:
    """Refuse a redirect from https to plain http, as apt does: the content would still
    be hash-checked, but what was asked in private must not be asked in the open."""
    if response.is_redirect and response.request.url.scheme == "https":
        target = response.request.url.join(response.headers.get("location", ""))
        if target.scheme != "https":
            raise TrustError(f"{response.request.url} redirects to {target}, leaving https",
                             "refusing the downgrade; check the mirror")


class Http:
    def __init__(self, user_agent: str, timeout: float = TIMEOUT) -> None:
        import httpx

        self._httpx = httpx
        self.timeout = timeout
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        backend = _resolve_once_backend()
        self.client = httpx.Client(
            http2=False,
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            event_hooks={"response": [_no_downgrade]},
            # The bytes as the archive holds them, which is what the signed hashes cover:
            # a Content-Encoding decoded on the fly would escape the size bounds (a few
            # KB of zstd can stand for gigabytes), so none is asked for or decoded.
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            trust_env=False,
            mounts={
                "http://": _transport(httpx, limits, backend, verify=False),
                "https://": _lazy_tls_transport(httpx, limits, backend),
            },
        )

    def close(self) -> None:
        self.client.close()

    def _retrying(self, url: str, attempt_fn):  # type: ignore[no-untyped-def]
        httpx = self._httpx
        last: str = ""
        for attempt in range(RETRIES):
            try:
                return attempt_fn()
            except NotFound:
                raise
            except httpx.TooManyRedirects as exc:
                raise FetchError(f"cannot download {url}: more than "
                                 f"{self.client.max_redirects} redirects (a loop?)",
                                 "check the mirror URL, or pick another with --mirror") from exc
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                if code < 500 and code not in RETRY_STATUS:
                    raise FetchError(f"cannot download {url}: HTTP {code}",
                                     "check the mirror URL and that the suite exists there") from exc
                last = f"HTTP {code}"
            except _Stalled as exc:
                last = str(exc)
            except (httpx.TransportError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < RETRIES:
                time.sleep(BACKOFF * (2**attempt))
        raise FetchError(f"cannot download {url}: {last} (tried {RETRIES} times)",
                         "check the network and the mirror, or pick another with --mirror")

    def _deadline(self, expected: int) -> float:
        return time.monotonic() + self.timeout + expected / MIN_RATE

    def get_small(self, url: str, limit: int, etag: str | None = None,
                  last_modified: str | None = None) -> Response:
        """GET a small body (at most ``limit`` bytes); 304 gives an empty body."""
        if url.startswith("file:"):
            f, size = _open_local(url)
            with f:
                if size > limit:
                    raise TrustError(f"{url} is larger than {limit} bytes",
                                     "refusing an oversized file; check the mirror")
                return Response(200, f.read(limit + 1), None, None)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> Response:
            deadline = self._deadline(min(limit, 1 << 20))  # an InRelease is ~150 kB
            with self.client.stream("GET", url, headers=headers) as r:
                if r.status_code in (404, 410):
                    raise NotFound(f"{url}: not found (HTTP {r.status_code})")
                if r.status_code == 304:
                    return Response(304, b"", etag, last_modified)
                r.raise_for_status()
                chunks: list[bytes] = []
                total = 0
                for chunk in r.iter_raw():
                    total += len(chunk)
                    _check_time(deadline, total)
                    if total > limit:
                        raise TrustError(f"{url} is larger than {limit} bytes",
                                         "refusing an oversized response; check the mirror")
                    chunks.append(chunk)
                return Response(r.status_code, b"".join(chunks), r.headers.get("ETag"),
                                r.headers.get("Last-Modified"))

        return self._retrying(url, attempt)  # type: ignore[no-any-return]

    def download_verified(self, urls: list[str], size: int, sha256: str, cache: Cache,
                          what: str, missing_hint: str | None = None) -> Path:
        """Fetch the first URL that gives exactly ``size`` bytes hashing to ``sha256``;
        each URL is retried on faults, and the next tried when it fails or lacks the file.
        ``missing_hint`` explains a file that no URL has."""
        if cache.has(sha256):
            return cache.blob_path(sha256)
        errors: list[ComposeError] = []
        for url in urls:
            try:
                return self._download_one(url, size, sha256, cache, what)
            except (TrustError, FetchError) as exc:
                errors.append(exc)
        problems = [e.message for e in errors] or ["no mirror URL to fetch it from"]
        hint = "the mirror may be out of date or serving other content; try another with --mirror"
        if missing_hint and errors and all(isinstance(e, NotFound) for e in errors):
            hint = missing_hint
        trust = errors and all(isinstance(e, TrustError) for e in errors)
        raise (TrustError if trust else FetchError)(
            f"cannot get {what} (sha256 {sha256}): " + "; ".join(problems), hint)

    def _download_one(self, url: str, size: int, sha256: str, cache: Cache, what: str) -> Path:
        if url.startswith("file:"):
            return self._copy_local(url, size, sha256, cache, what)

        def attempt() -> Path:
            with cache.incoming() as new:
                h = hashlib.sha256()
                total = 0
                deadline = self._deadline(size)
                with self.client.stream("GET", url) as r:
                    if r.status_code in (404, 410):
                        raise NotFound(f"{url}: not found (HTTP {r.status_code})")
                    r.raise_for_status()
                    declared = r.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) != size:
                        # Another file, said whole: not a fault to try again.
                        raise TrustError(f"{what} from {url} has {declared} bytes (its "
                                         f"Content-Length), the signed index says {size}")
                    # Each piece as it arrives: a chunk size would gather the pieces
                    # of a trickle out of sight of the deadline.
                    for chunk in r.iter_raw():
                        total += len(chunk)
                        if total > size:
                            raise TrustError(f"{what} from {url} is larger than the {size} bytes the signed index gives")
                        _check_time(deadline, total)
                        h.update(chunk)
                        new.file.write(chunk)
                if total < size:
                    # A body without a length that ended early: a fault of the
                    # connection, tried again.
                    raise _Stalled(f"the body ended after {total} of {size} bytes")
                if h.hexdigest() != sha256:
                    raise TrustError(f"{what} from {url} has sha256 {h.hexdigest()}, the signed index says {sha256}")
                return cache.commit(new, sha256)

        return self._retrying(url, attempt)  # type: ignore[no-any-return]

    def _copy_local(self, url: str, size: int, sha256: str, cache: Cache, what: str) -> Path:
        src, actual = _open_local(url)
        with src, cache.incoming() as new:
            if actual != size:
                raise TrustError(f"{what} at {url} has {actual} bytes, the signed index says {size}")
            h = hashlib.sha256()
            while chunk := src.read(1 << 20):
                h.update(chunk)
                new.file.write(chunk)
            if h.hexdigest() != sha256:
                raise TrustError(f"{what} at {url} has sha256 {h.hexdigest()}, the signed index says {sha256}")
            return cache.commit(new, sha256)
