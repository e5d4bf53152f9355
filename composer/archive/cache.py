"""The content-addressed cache: it never holds an unverified byte.

Layout under the cache root (``$COMPOSE_CACHE_DIR`` or ``$XDG_CACHE_HOME/compose``):
``sha256/ab/abcdef…`` for verified content, ``derived/`` for data computed from it
(a Packages file's scan), ``state/`` for the last InRelease that verified at a URL (kept
to send a conditional request; it is verified again on every use), ``tmp/`` for
downloads in flight. Downloads are written unnamed and appear by rename only when whole
and verified (see ``composer.atomic``), so a reader sees a whole file or none, and a
killed process leaves nothing half-written. Concurrent processes may share the cache:
each entry is named by its content, and the last of two identical renames wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from collections.abc import Mapping
from pathlib import Path

from composer import atomic
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
            atomic.sweep(root / "tmp", ".new-", (".part",))
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

    def incoming(self) -> contextlib.AbstractContextManager[atomic.NewFile]:
        """A new, unnamed file in the cache's file system; it gets a name only when
        committed, so nothing of it remains if the process dies first."""
        return atomic.new_file(self.root / "tmp", durable=False)  # all can be made again

    def commit(self, new: atomic.NewFile, sha256: str) -> Path:
        """Put a verified new file in place under its hash."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(exist_ok=True)
        return new.commit(dest)

    def put_bytes(self, data: bytes) -> str:
        """Store verified bytes; returns their sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            with self.incoming() as new:
                new.file.write(data)
                self.commit(new, digest)
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
        with self.incoming() as new:
            new.file.write(data)
            new.file.write(hashlib.sha256(data).digest())
            new.commit(dest)

    def state_path(self, key: str) -> Path:
        return self.root / "state" / hashlib.sha256(key.encode()).hexdigest()

    def write_state(self, key: str, data: bytes) -> None:
        with self.incoming() as new:
            new.file.write(data)
            new.commit(self.state_path(key))

    def read_state(self, key: str) -> bytes | None:
        try:
            return self.state_path(key).read_bytes()
        except FileNotFoundError:
            return None
