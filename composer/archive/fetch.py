"""Locked .debs into the cache: by archive-relative path, verified by size and sha256.

Nothing here reads an index: the lock says what to get and what it must hash to. What
the cache already holds is not downloaded; the rest comes over one small connection
pool, several at a time, each file landing in the cache only once verified.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from composer.archive.cache import Cache
from composer.archive.http import Http
from composer.archive.mirrors import Mirrors

WORKERS = 6


@dataclass(frozen=True)
class Wanted:
    archive: str
    filename: str
    size: int
    sha256: str
    what: str
    """For messages: ``name version architecture``."""
    release_date: datetime | None = None
    """The Date of the Release the lock took it from: fills a snapshot URL's ``{date}``."""


@dataclass
class Progress:
    total_files: int
    total_bytes: int
    done_files: int = 0
    done_bytes: int = 0


def file_matches(path: Path, size: int, sha256: str) -> bool:
    """Whether ``path`` (not a symlink) holds exactly ``size`` bytes hashing to ``sha256``."""
    h = hashlib.sha256()
    total = 0
    try:
        with open(path, "rb") as f:
            if path.is_symlink():
                return False
            while chunk := f.read(1 << 20):
                h.update(chunk)
                total += len(chunk)
    except OSError:
        return False
    return total == size and h.hexdigest() == sha256


def _intact(cache: Cache, w: Wanted) -> bool:
    """Whether the cached file still has the lock's size and sha256 (a cache on a
    shared or failing disk can change under us); a file that does not is removed, to be
    downloaded again."""
    path = cache.blob_path(w.sha256)
    if file_matches(path, w.size, w.sha256):
        return True
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return False


def fetch(http: Callable[[], Http], cache: Cache, mirrors: Mirrors, wanted: Iterable[Wanted],
          progress: Callable[[Progress], None] = lambda _: None) -> dict[str, Path]:
    """Cache paths of every wanted .deb, by sha256, each checked against its size and
    sha256 whether it was cached or downloaded; raises on the first that cannot be had."""
    unique: dict[str, Wanted] = {}
    for w in wanted:
        unique.setdefault(w.sha256, w)
    cached = [w for sha, w in sorted(unique.items()) if cache.has(sha)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        intact = list(pool.map(lambda w: _intact(cache, w), cached))
    paths = {w.sha256: cache.blob_path(w.sha256) for w, ok in zip(cached, intact, strict=True)
             if ok}
    missing = [w for sha, w in sorted(unique.items()) if sha not in paths]
    state = Progress(len(missing), sum(w.size for w in missing))
    if not missing:
        return paths
    progress(state)

    client = http()  # made only when something is missing

    def one(w: Wanted) -> Path:
        urls = [f"{base}/{w.filename}" for base in mirrors.find(w.archive).for_date(w.release_date)]
        return client.download_verified(
            urls, w.size, w.sha256, cache, w.what,
            missing_hint="Debian's mirrors drop superseded versions within days: add a mirror that "
            "keeps them (a list, or a snapshot URL with {date}), or build from a "
            "`compose vendor` copy")

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {pool.submit(one, w): w for w in missing}
        try:
            for future in as_completed(futures):
                w = futures[future]
                paths[w.sha256] = future.result()
                state.done_files += 1
                state.done_bytes += w.size
                progress(state)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return paths
