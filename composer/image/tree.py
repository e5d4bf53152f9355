"""A file tree as a value: what a .deb holds, what an image layer holds.

Paths are relative POSIX paths without a leading ``/`` or ``./`` and without ``..``
(``usr/bin/python3.13``); the root directory itself is never an entry. Ownership is
numeric only: names do not leak from the build host into an image.
"""

from __future__ import annotations

import posixpath

from composer.errors import FormatError
from composer.model import DIR, FILE, HARDLINK, SYMLINK, Entry

# The tree's values live in composer.model, where every stage (image, audit) can use them.
__all__ = ["DIR", "FILE", "HARDLINK", "SYMLINK", "Entry", "normalize"]


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
