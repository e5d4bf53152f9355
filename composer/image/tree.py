"""A file tree as a value: what a .deb holds, what an image layer holds.

Paths are relative POSIX paths without a leading ``/`` or ``./`` and without ``..``
(``usr/bin/python3.13``); the root directory itself is never an entry. Ownership is
numeric only: names do not leak from the build host into an image.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from composer.errors import FormatError

FILE, DIR, SYMLINK, HARDLINK = "file", "dir", "symlink", "hardlink"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    kind: str
    """``file``, ``dir``, ``symlink`` or ``hardlink``."""
    mode: int = 0o644
    """Permission bits, including setuid/setgid/sticky (``0o7777`` at most)."""
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    """A file's content."""
    target: str = ""
    """A symlink's target as stored, or the tree path a hardlink points to."""
    mtime: int = 0
    package: str = ""
    """The package that shipped it ("" for files compose generates)."""


def normalize(path: str, where: str) -> str:
    """A member name from a tar (``./usr/bin/x``, ``/etc/y/``) as a tree path; refuses
    anything that would leave the tree."""
    p = path
    while p.startswith("./"):
        p = p[2:]
    p = p.strip("/")
    if p in ("", "."):
        return ""
    norm = posixpath.normpath(p)
    if norm.startswith("../") or norm == ".." or "/../" in f"/{p}/" or norm != p.rstrip("/"):
        raise FormatError(f"{where}: member {path!r} is not a plain relative path")
    return norm
