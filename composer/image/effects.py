"""What maintainer scripts would have done, done natively and deterministically: no
script runs, and every file written here depends only on the tree and the profile.

Each function takes the tree being assembled and the time to stamp on what it writes
(``SOURCE_DATE_EPOCH``), and returns what it did, for the build's report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from composer.debian.deb import Deb
from composer.errors import ComposeError
from composer.image.assemble import Tree
from composer.image.tree import DIR, FILE, SYMLINK, Entry
from composer.model import INTERPRETER, UserSpec, follow

NSSWITCH = """\
passwd:         files
group:          files
shadow:         files
gshadow:        files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
"""

DEFAULT_USERS = (
    UserSpec("root", 0, 0, "/root", "/sbin/nologin"),
    UserSpec("nobody", 65534, 65534, "/nonexistent", "/sbin/nologin"),
    UserSpec("nonroot", 65532, 65532, "/home/nonroot", "/sbin/nologin"),
)
DEFAULT_GROUPS = (("root", 0), ("nogroup", 65534), ("nonroot", 65532))

CA_SOURCE = "usr/share/ca-certificates/"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def _file(tree: Tree, path: str, data: bytes, mtime: int, mode: int = 0o644) -> None:
    tree.put(Entry(path, FILE, mode, 0, 0, data, mtime=mtime))


def _dir(tree: Tree, path: str, mode: int, uid: int, gid: int, mtime: int) -> None:
    tree.put(Entry(path, DIR, mode, uid, gid, mtime=mtime))


@dataclass(frozen=True)
class Accounts:
    users: tuple[UserSpec, ...]
    groups: tuple[tuple[str, int], ...]

    def resolve(self, user: str) -> str:
        """An image's ``User`` as ``uid:gid``, from a name or a number in the profile."""
        name, _, group = user.partition(":")
        uid = next((u for u in self.users if u.name == name or str(u.uid) == name), None)
        if uid is None and not name.isdigit():
            raise ComposeError(f"[image] user {user!r} is not a user of the image",
                               f"use one of {', '.join(u.name for u in self.users)}, "
                               "a number, or add a [[user]]")
        if group:
            g = next((gid for gname, gid in self.groups if group in (gname, str(gid))), None)
            if g is None and not group.isdigit():
                raise ComposeError(f"[image] user {user!r}: no group {group!r} in the image",
                                   "add a [[group]], or give a number")
            return f"{uid.uid if uid else name}:{g if g is not None else group}"
        return f"{uid.uid}:{uid.gid}" if uid else name


def accounts(users: Iterable[UserSpec], groups: Iterable[tuple[str, int]]) -> Accounts:
    """The default accounts (root, nobody, nonroot) with the profile's added or replacing
    them by name; every user's primary group exists."""
    by_name = {u.name: u for u in DEFAULT_USERS}
    for u in users:
        by_name[u.name] = u
    gmap = dict(DEFAULT_GROUPS)
    for name, gid in groups:
        # A profile's group with a default group's gid renames it (distroless calls
        # 65534 "nobody", Debian "nogroup").
        for old, old_gid in list(gmap.items()):
            if old_gid == gid and old != name and (old, old_gid) in DEFAULT_GROUPS:
                del gmap[old]
        gmap[name] = gid
    gids = set(gmap.values())
    for u in by_name.values():
        if u.gid not in gids:
            gmap[u.name] = u.gid
            gids.add(u.gid)
    ordered_users = tuple(sorted(by_name.values(), key=lambda u: (u.uid, u.name)))
    ordered_groups = tuple(sorted(gmap.items(), key=lambda g: (g[1], g[0])))
    return Accounts(ordered_users, ordered_groups)


def users_and_groups(tree: Tree, acc: Accounts, mtime: int) -> None:
    """``/etc/passwd``, ``/etc/group`` and each user's home (0700, owned by the user)."""
    passwd = "".join(f"{u.name}:x:{u.uid}:{u.gid}:{u.name}:{u.home}:{u.shell}\n" for u in acc.users)
    group = "".join(f"{name}:x:{gid}:\n" for name, gid in acc.groups)
    _file(tree, "etc/passwd", passwd.encode(), mtime)
    _file(tree, "etc/group", group.encode(), mtime)
    for u in acc.users:
        home = u.home.strip("/")
        if home and home != "nonexistent":
            _dir(tree, home, 0o700, u.uid, u.gid, mtime)


def ca_bundle(tree: Tree, mtime: int) -> int:
    """``/etc/ssl/certs/ca-certificates.crt`` as update-ca-certificates writes it with
    every shipped certificate enabled: each ``usr/share/ca-certificates/**.crt`` in C
    sort order of its path, each ending in a newline. Returns how many went in."""
    certs = sorted(p for p, e in tree.entries.items()
                   if e.kind == FILE and p.startswith(CA_SOURCE) and p.endswith(".crt"))
    if not certs:
        return 0
    parts = []
    for p in certs:
        data = tree.entries[p].data
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    _file(tree, CA_BUNDLE, b"".join(parts), mtime)
    return len(certs)


def copyrights(tree: Tree, debs: Iterable[tuple[str, Deb]], mtime: int) -> list[str]:
    """Make every shipped package's ``/usr/share/doc/PKG/copyright`` readable.

    A package may ship its doc directory as a symlink to a package of the same source
    that it depends on (Policy 12.5); when the profile leaves that package out, the link
    dangles, and the copyright of the shipped package is lost with it. The copyright
    belongs to the source package, so the link is replaced by a directory holding the
    copyright of a shipped binary built from the same source. Returns the packages whose
    copyright still cannot be found (none of its source's binaries carries one)."""
    source = {name: deb.control.get("Source", name).split(" ", 1)[0] for name, deb in debs}
    by_source: dict[str, list[str]] = {}
    for name in sorted(source):
        by_source.setdefault(source[name], []).append(name)
    missing = []
    for name in sorted(source):
        path = f"usr/share/doc/{name}/copyright"
        found = tree.lookup(path)
        if found is not None and found.kind == FILE:
            continue
        src = source[name]
        donor = None
        for sibling in by_source[src]:
            e = tree.lookup(f"usr/share/doc/{sibling}/copyright")
            if sibling != name and e is not None and e.kind == FILE:
                donor = e
                break
        if donor is None:
            missing.append(name)
            continue
        folder = f"usr/share/doc/{name}"
        old = tree.entries.get(folder)
        if old is not None and old.kind != DIR:
            del tree.entries[folder]
        tree.put(Entry(folder, DIR, 0o755, mtime=mtime, package=name))
        tree.put(Entry(path, FILE, 0o644, data=donor.data, mtime=mtime, package=name))
    return missing


def dpkg_status(tree: Tree, debs: Iterable[tuple[str, Deb]], mtime: int) -> int:
    """``/var/lib/dpkg/status.d/NAME`` (the control stanza) and ``NAME.md5sums``, the
    layout of distroless images that Trivy and syft read."""
    _dir(tree, "var/lib/dpkg/status.d", 0o755, 0, 0, mtime)
    n = 0
    for name, deb in sorted(debs, key=lambda nd: nd[0]):
        control = deb.control_files.get("control", b"")
        _file(tree, f"var/lib/dpkg/status.d/{name}",
              control if control.endswith(b"\n") else control + b"\n", mtime)
        if "md5sums" in deb.control_files:
            _file(tree, f"var/lib/dpkg/status.d/{name}.md5sums", deb.control_files["md5sums"], mtime)
        n += 1
    return n


def system_files(tree: Tree, python_version: str | None, mtime: int) -> list[str]:
    """``/tmp`` 1777, ``/etc/nsswitch.conf`` when no package ships one, and the
    ``python3`` and ``python`` links to the profile's interpreter."""
    made = []
    _dir(tree, "tmp", 0o1777, 0, 0, mtime)
    if "etc/nsswitch.conf" not in tree.entries:
        _file(tree, "etc/nsswitch.conf", NSSWITCH.encode(), mtime)
        made.append("etc/nsswitch.conf")
    if python_version:
        interpreter = f"usr/bin/python{python_version}"
        if interpreter in tree.entries:
            for alias in ("usr/bin/python3", "usr/bin/python"):
                if alias not in tree.entries:
                    tree.put(Entry(alias, SYMLINK, 0o777, target=f"python{python_version}", mtime=mtime))
                    made.append(alias)
    return made


BUSYBOX = ("usr/bin/busybox", "bin/busybox")
BUSYBOX_LIST = "--list-full"
"""busybox's option listing each applet where ``--install`` would put it (``bin/sh``)."""


def busybox_binary(tree: Tree) -> str | None:
    """Where the shipped busybox is, symlinks resolved; None when none ships."""
    for candidate in BUSYBOX:
        found = follow(tree.entries, candidate)
        if found is not None and tree.entries[found].kind == FILE:
            return found
    return None


def busybox_applets(tree: Tree, binary: str, listing: bytes, mtime: int) -> list[str]:
    """A symlink to ``/binary`` for each applet of ``listing`` (the output of ``busybox
    --list-full``), as ``busybox --install -s`` makes them, with each link put where
    unpacking would put it (``bin/sh`` becomes ``usr/bin/sh`` in a merged-/usr tree).
    A path that something already occupies (dash's ``sh``, coreutils' ``ls``) keeps what
    the package shipped (a symlink leading nowhere gives way), and ``linuxrc`` (at the top, for booting an initramfs) is left
    out. Returns the links made."""
    owner = tree.entries[binary].package
    try:
        names = sorted(set(listing.decode("ascii").split()))
    except UnicodeDecodeError:
        names = []
    if not names:
        raise ComposeError(f"/{binary} {BUSYBOX_LIST} printed no list of applets",
                           "is it busybox? set [busybox] applets = false otherwise")
    made = []
    for rel in names:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ComposeError(f"/{binary} {BUSYBOX_LIST} named {rel!r}, not a path below /")
        if len(parts) == 1:  # linuxrc, which only an initramfs boots with
            continue
        path = tree.resolve_parent(rel, f"busybox applet /{rel}")
        old = tree.entries.get(path)
        if old is not None and not (old.kind == SYMLINK and follow(tree.entries, path) is None):
            continue  # shipped; a link leading nowhere is replaced
        tree.put(Entry(path, SYMLINK, 0o777, target=f"/{binary}", mtime=mtime, package=owner))
        made.append(path)
    return made


def built_copyright(tree: Tree, source: Any, python_version: str, mtime: int) -> None:
    """The machine-readable copyright file of a CPython compiled from source, where a
    package's would be (``/usr/share/doc/cpython/copyright``): upstream's licence (the
    PSF License Agreement, whose whole text, with the notices of what CPython bundles,
    ``LICENSE.txt`` beside the standard library holds and this file repeats)."""
    path = f"usr/share/doc/{INTERPRETER}/copyright"
    licence = tree.entries.get(f"usr/lib/python{python_version}/LICENSE.txt")
    body = licence.data.decode("utf-8", "replace") if licence is not None else ""
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: CPython\n"
        f"Source: {source.filename} (sha256 {source.sha256}), upstream's release "
        f"{source.upstream_version} as the Debian source package {source.package} "
        f"{source.version} carries it; Debian's patches: {source.patches}\n"
        "Comment: compiled from source by compose; the licence text below is upstream's "
        f"LICENSE.txt (/usr/lib/python{python_version}/LICENSE.txt)\n\n"
        "Files: *\n"
        "Copyright: Python Software Foundation and others\n"
        "License: PSF-2.0\n"
        + "".join(f" {line}\n" if line.strip() else " .\n" for line in body.splitlines()))
    tree.put(Entry(path, FILE, 0o644, data=text.encode(), mtime=mtime, package=INTERPRETER))
