"""A file tree as a value: what a .deb holds, what an image layer holds.

Paths are relative POSIX paths without a leading ``/`` or ``./`` and without ``..``
(``usr/bin/python3.13``); the root directory itself is never an entry. Ownership is
numeric only: names do not leak from the build host into an image.
"""

from __future__ import annotations

# The tree's values live in composer.model, where every stage (image, audit) can use them.
from composer.model import DIR, FILE, HARDLINK, SYMLINK, Entry

__all__ = ["DIR", "FILE", "HARDLINK", "SYMLINK", "Entry"]
