"""From verified .debs to the image's file tree: merge like dpkg, strip, and do natively
what maintainer scripts would have done. Pure: values in, a tree out.

Merging. The merged-/usr links (``bin``, ``sbin``, ``lib`` and, where the dynamic
loader lives there, ``lib64``) exist before anything is unpacked, as debootstrap makes
them; Debian 13's base-files ships the same links. Packages are unpacked in name order,
and a member whose parent path runs through a symlink lands where the symlink points
(``lib/x`` becomes ``usr/lib/x``), as unpacking onto a file system would. Directories
merge, and a directory shipped where the tree has a symlink keeps the symlink, as dpkg
does. A path shipped by two packages must have the same content (as Multi-Arch: same
packages do) unless one package ``Replaces`` the other, which then wins whatever the
order; anything else is an error naming both packages.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from composer.debian import relation
from composer.debian.deb import Deb
from composer.errors import ComposeError
from composer.image.tree import DIR, FILE, HARDLINK, SYMLINK, Entry
from composer.model import MAX_SYMLINKS, follow

MERGED_USR = ("bin", "sbin", "lib")
LIB64_ARCHES = ("amd64", "ppc64el", "loong64", "mips64el")
"""Where the dynamic loader is ``/lib64/...``, so that ``lib64 -> usr/lib64`` exists."""

DEFAULT_STRIP = (
    "usr/share/doc/**", "usr/share/man/**", "usr/share/info/**", "usr/share/locale/**",
    "usr/share/lintian/**", "usr/share/linda/**", "usr/share/bug/**", "usr/share/doc-base/**",
    "usr/share/menu/**", "usr/share/common-licenses/**",
)
KEEP_ALWAYS = ("usr/share/doc/*", "usr/share/doc/*/copyright")
"""Every package's copyright file, and the ``usr/share/doc/PKG`` symlink that some
packages ship instead of a directory (it leads to the copyright they share)."""
PYTHON_TRIM = ("idlelib", "ensurepip", "lib2to3", "tkinter", "turtledemo", "turtle.py")
"""Standard library parts a server never uses, left out as the distroless images do."""



class ConflictError(ComposeError):
    """Two packages ship one path with different content and neither Replaces the other."""


class Tree:
    """A tree while it is assembled: ``entries`` maps a path to its Entry."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def resolve_parent(self, path: str, where: str) -> str:
        """``path`` with every symlinked directory on the way replaced by its target."""
        parts = path.split("/")
        for _ in range(MAX_SYMLINKS):
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                e = self.entries.get(prefix)
                if e is not None and e.kind == SYMLINK:
                    base = "" if e.target.startswith("/") else posixpath.dirname(prefix)
                    target = posixpath.normpath(posixpath.join(base, e.target.lstrip("/")))
                    if target.startswith("..") or target == ".":
                        raise ComposeError(f"{where}: /{prefix} links outside the image ({e.target})")
                    parts = target.split("/") + parts[i:]
                    break
            else:
                return "/".join(parts)
        raise ComposeError(f"{where}: too many levels of symbolic links under /{path}")

    def add_dirs(self, path: str, mtime: int, package: str) -> None:
        """The missing parents of ``path``, as directories 0755 root; a parent that is
        something other than a directory is an error."""
        if path.startswith("/") or ".." in path.split("/") or "." in path.split("/"):
            raise ComposeError(f"/{path}: not a plain path inside the image")
        parent = posixpath.dirname(path)
        missing = []
        while parent and parent not in self.entries:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        if parent and self.entries[parent].kind != DIR:
            e = self.entries[parent]
            raise ConflictError(f"/{path} would be inside /{parent}, a {e.kind}"
                                + (f" of {e.package}" if e.package else ""),
                                "exclude the package that ships it")
        for d in reversed(missing):
            self.entries[d] = Entry(d, DIR, 0o755, 0, 0, mtime=mtime, package=package)

    def lookup(self, path: str) -> Entry | None:
        """The entry at ``path`` after following symlinks (in the parents and at the end)
        inside the tree; None when it leads nowhere."""
        found = follow(self.entries, path)
        return None if found is None else self.entries.get(found)

    def put(self, entry: Entry) -> None:
        """Add a file compose writes, where unpacking it would put it: through any
        symlinked directory on its way."""
        path = self.resolve_parent(entry.path, f"/{entry.path}")
        if path != entry.path:
            entry = replace(entry, path=path)
        self.add_dirs(entry.path, entry.mtime, entry.package)
        self.entries[entry.path] = entry


def _replaces(control: Mapping[str, str]) -> set[str]:
    if "Replaces" not in control:
        return set()
    return {alt.name for group in relation.parse(control["Replaces"]) for alt in group}


def merged_usr(arch: str, mtime: int) -> Tree:
    tree = Tree()
    for d in ("usr/bin", "usr/sbin", "usr/lib"):
        tree.put(Entry(d, DIR, 0o755, mtime=mtime))
    links = MERGED_USR + (("lib64",) if arch in LIB64_ARCHES else ())
    for name in links:
        tree.put(Entry(name, SYMLINK, 0o777, target=f"usr/{name}", mtime=mtime))
    return tree


def merge(tree: Tree, debs: Iterable[tuple[str, Deb]]) -> Tree:
    """Unpack packages into ``tree`` (name order), with dpkg's rules for shared paths."""
    replaces: dict[str, set[str]] = {}
    for name, deb in sorted(debs, key=lambda nd: nd[0]):
        replaces[name] = _replaces(deb.control)
        where = f"{name} {deb.control.get('Version', '')}"
        for m in deb.members:
            if not m.path:
                continue
            path = tree.resolve_parent(m.path, where)
            entry = Entry(path, m.kind, m.mode, m.uid, m.gid, m.data, m.target, m.mtime, name)
            if m.kind == HARDLINK:
                entry = replace(entry, target=tree.resolve_parent(m.target, where))
                if tree.entries.get(entry.target, Entry("", "")).kind != FILE:
                    raise ComposeError(f"{where}: hardlink /{m.path} points to /{m.target}, "
                                       "which is not a file shipped before it")
            old = tree.entries.get(path)
            if old is None:
                tree.add_dirs(path, m.mtime, name)
                tree.entries[path] = entry
            elif (m.kind == DIR and old.kind in (DIR, SYMLINK)) or _same(old, entry):
                continue
            elif old.kind == DIR or m.kind == DIR:
                # dpkg never replaces a directory with something else, nor the reverse.
                shipper = old.package or "compose's merged-/usr layout"
                raise ConflictError(
                    f"{name} ships /{path} as a {m.kind}, where {shipper} has a {old.kind}",
                    f"exclude {name} or {shipper}: dpkg would refuse to unpack it")
            elif old.package in replaces[name]:
                tree.entries[path] = entry
            elif name in replaces.get(old.package, set()):
                continue
            else:
                shipper = old.package or "compose's merged-/usr layout"
                raise ConflictError(
                    f"{name} and {shipper} both ship /{path}, differently",
                    f"exclude one of them, or check that {name} declares Replaces: {old.package}")
    return tree


def overlay(tree: Tree, entries: Mapping[str, Entry], mtime: int) -> None:
    """Add files compose built (a compiled CPython) over the packages' tree: the same
    path shipped by a package is a conflict, as between two packages."""
    for path in sorted(entries):
        e = replace(entries[path], mtime=mtime)
        old = tree.entries.get(tree.resolve_parent(path, f"/{path}"))
        if old is None:
            tree.put(e)
        elif not (old.kind == DIR and e.kind == DIR):
            raise ConflictError(f"{old.package or 'compose'} ships /{path}, which the built "
                                f"{e.package} installs too",
                                f"exclude {old.package}: the built interpreter replaces it")


def _same(a: Entry, b: Entry) -> bool:
    return (a.kind, a.mode, a.data, a.target) == (b.kind, b.mode, b.data, b.target)


def glob(pattern: str) -> re.Pattern[str]:
    """A path glob where ``*`` and ``?`` stay within one path part and ``**`` crosses
    them; a trailing ``/**`` also matches the directory itself."""
    out = ""
    i = 0
    pattern = pattern.strip("/")
    tail = ""
    if pattern.endswith("/**"):
        # "dir/**" is what is under dir, and dir itself once nothing is left in it
        pattern, tail = pattern[:-3], "(/.*)?"
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + tail + r"\Z")


def glob_any(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching a path when any of the globs does."""
    parts = [glob(p).pattern for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def strip(tree: Tree, patterns: Iterable[str], keep: Iterable[str] = ()) -> list[str]:
    """Remove what matches ``patterns`` (files, links, and directories left empty), never
    what matches ``keep`` or a package's copyright. Returns the removed paths, sorted."""
    drop = glob_any(patterns)
    if drop is None:
        return []
    hold = glob_any((*KEEP_ALWAYS, *keep))
    assert hold is not None
    return _remove(tree, lambda path: bool(drop.match(path)) and not hold.match(path))


def only(tree: Tree, selections: Mapping[str, Sequence[str]]) -> list[str]:
    """Of each package named, keep only the paths that match its globs (and its
    copyright), as distroless takes just the C.utf8 locale out of libc-bin; directories
    it owns that are left empty go too. Returns the removed paths, sorted."""
    rules = {name: glob_any(globs) for name, globs in selections.items()}
    hold = glob_any(KEEP_ALWAYS)
    assert hold is not None

    def dropped(path: str) -> bool:
        e = tree.entries[path]
        if e.package not in rules or hold.match(path):
            return False
        wanted = rules[e.package]
        return wanted is None or not wanted.match(path)

    return _remove(tree, dropped)


SPECIAL_BITS = 0o6000
"""setuid and setgid."""


def drop_special_bits(tree: Tree, allowed: Iterable[str] = ()) -> list[str]:
    """Clear the setuid and setgid bits of every file not matched by ``allowed``: a
    package must not make a program in the image run with its owner's rights unless the
    profile says so for that path. (A directory's setgid bit only passes its group on to
    new files, and stays; a hard link has the mode of its file.) Returns the paths
    changed, sorted."""
    keep = glob_any(allowed)
    changed = []
    for path, e in tree.entries.items():
        if e.kind == FILE and e.mode & SPECIAL_BITS and not (keep and keep.match(path)):
            tree.entries[path] = replace(e, mode=e.mode & ~SPECIAL_BITS)
            changed.append(path)
    return sorted(changed)


def _remove(tree: Tree, dropped: Callable[[str], bool]) -> list[str]:
    """Remove the files and links for which ``dropped`` holds, then the directories
    for which it holds that are left empty."""
    removed = [p for p, e in tree.entries.items() if e.kind != DIR and dropped(p)]
    gone = {p: tree.entries.pop(p) for p in removed}
    # A kept hardlink to a removed file becomes that file; later links point to it.
    moved: dict[str, str] = {}
    for path, e in sorted(tree.entries.items()):
        if e.kind == HARDLINK and e.target in gone:
            if e.target in moved:
                tree.entries[path] = replace(e, target=moved[e.target])
            else:
                base = gone[e.target]
                tree.entries[path] = replace(base, path=path, package=e.package)
                moved[e.target] = path
    children: dict[str, int] = {}
    for p in tree.entries:
        parent = posixpath.dirname(p)
        children[parent] = children.get(parent, 0) + 1
    for path in sorted((p for p, e in tree.entries.items() if e.kind == DIR and dropped(p)),
                       reverse=True):
        if not children.get(path):
            del tree.entries[path]
            removed.append(path)
            children[posixpath.dirname(path)] -= 1
    return sorted(removed)


def python_trim(python_version: str) -> list[str]:
    base = f"usr/lib/python{python_version}"
    return [f"{base}/{part}" if part.endswith(".py") else f"{base}/{part}/**"
            for part in PYTHON_TRIM]
