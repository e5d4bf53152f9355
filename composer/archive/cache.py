"""The content-addressed cache: it never holds an unverified byte.

Layout under the cache root (``$COMPOSE_CACHE_DIR`` or ``$XDG_CACHE_HOME/compose``):
``sha256/ab/abcdef…`` for verified content, ``derived/`` for data computed from it
(a Packages file's scan), ``state/`` for the last InRelease that verified at a URL (kept
to send a conditional request; it is verified again on every use), ``tmp/`` for
downloads in flight. Everything appears by ``os.replace`` from ``tmp/``, so a reader
sees a whole file or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from composer.errors import ConfigError
from composer.model import SHA256_HEX


def default_root(env: Mapping[str, str]) -> Path:
    if env.get("COMPOSE_CACHE_DIR"):
        return Path(env["COMPOSE_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(base) / "compose"


def _hex64(sha256: str) -> None:
    """Cache names are sha256 digests: anything else is a bug that must not become a
    path outside the cache."""
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            for sub in ("sha256", "state", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use the cache directory {root}: {exc.strerror}",
                              "set COMPOSE_CACHE_DIR to a writable directory") from exc

    def blob_path(self, sha256: str) -> Path:
        _hex64(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def open_map(self, sha256: str) -> mmap.mmap | bytes:
        """The blob's bytes, memory-mapped (an empty file gives b"")."""
        with open(self.blob_path(sha256), "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    @contextlib.contextmanager
    def incoming(self) -> Iterator[tuple[IO[bytes], Path]]:
        """A temporary file in the cache's filesystem; removed unless committed."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="in-")
        path = Path(name)
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f, path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def commit(self, tmp: Path, sha256: str) -> Path:
        """Move a verified temporary file into place under its hash."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)
        return dest

    def put_bytes(self, data: bytes) -> str:
        """Store verified bytes; returns their sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            with self.incoming() as (f, tmp):
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                self.commit(tmp, digest)
        return digest

    def derived_path(self, sha256: str, kind: str) -> Path:
        _hex64(sha256)
        if not kind.replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"not a cache entry kind: {kind!r}")
        return self.root / "derived" / sha256[:2] / f"{sha256}.{kind}"

    def read_derived(self, sha256: str, kind: str) -> bytes | None:
        """Data computed from a verified blob (a Packages scan, a repacked .deb, byte-code,
        a compressed layer), if present and intact: each entry ends with the sha256 of
        what precedes it, and an entry that does not match is removed, to be made again."""
        path = self.derived_path(sha256, kind)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        data, check = raw[:-32], raw[-32:]
        if len(raw) < 32 or hashlib.sha256(data).digest() != check:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        return data

    def write_derived(self, sha256: str, kind: str, data: bytes) -> None:
        dest = self.derived_path(sha256, kind)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.incoming() as (f, tmp):
            f.write(data)
            f.write(hashlib.sha256(data).digest())
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, dest)

    def state_path(self, key: str) -> Path:
        return self.root / "state" / hashlib.sha256(key.encode()).hexdigest()

    def write_state(self, key: str, data: bytes) -> None:
        with self.incoming() as (f, tmp):
            f.write(data)
            f.flush()
            os.replace(tmp, self.state_path(key))

    def read_state(self, key: str) -> bytes | None:
        try:
            return self.state_path(key).read_bytes()
        except FileNotFoundError:
            return None
