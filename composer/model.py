"""Frozen values that flow between stages (see docs/design.md)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
"""A Debian package name (Policy 5.6.1): what may become a path in a cache or an image."""
ARCHIVE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""An archive name: the last path part of its mirrors' URLs, and a folder of a vendored copy."""
WANTED = re.compile(r"(\S+?)\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^\s()]+)\s*\))?")
"""A profile's ``include`` item: a package name, optionally with one version constraint."""


def wanted(item: str) -> Relation:
    """An ``include`` item (checked by the profile) as a relation."""
    m = WANTED.fullmatch(item)
    if m is None:
        raise ValueError(f"not an include item: {item!r}")
    return Relation(m.group(1), m.group(2), m.group(3))


INTERPRETER = "cpython"
"""The package name a CPython compiled from source goes by: its files in an image and
what the lock's ``required-by`` names for the libraries it links."""

SOURCE_BUILD_ARCHES = ("amd64", "arm64")
"""The architectures compose compiles CPython for."""

SOURCE_BUILD_MACHINE = "amd64"
"""The machine CPython is compiled on: amd64 natively, the others cross-compiled. Fixed,
so that a lock does not depend on the machine that made it."""

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
"""A sha256 as lower-case hex, as Release, Packages and locks write it."""


@dataclass(frozen=True, slots=True)
class Relation:
    """One alternative: ``name[:arch] (op version)``. ``op``/``version`` are None when unversioned."""

    name: str
    op: str | None = None
    version: str | None = None
    arch: str | None = None

    def __str__(self) -> str:
        s = self.name + (f":{self.arch}" if self.arch else "")
        if self.op:
            s += f" ({self.op} {self.version})"
        return s


OrGroup = tuple[Relation, ...]
Relations = tuple[OrGroup, ...]


@dataclass(frozen=True)
class SourceSpec:
    """One ``[[source]]`` of a profile: a suite of a named archive."""

    archive: str
    suite: str
    components: tuple[str, ...] = ("main",)
    keyring: str = "debian"
    """A shipped keyring's name, or the absolute path of a keyring file."""
    keyring_as_written: str = field(default="", compare=False)
    """What the profile wrote (a name, or a path relative to the profile): what the
    fingerprint records, so that a lock does not depend on where the project lives."""
    binaries: bool = True
    """False: only the suite's Sources index is read (a CPython source comes from it);
    no binary package is taken from it."""


@dataclass(frozen=True)
class ImageSpec:
    """``[image]`` of a profile; defaults match the distroless python3 image."""

    tags: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    """None: ``/usr/bin/pythonX.Y`` when the profile names a Python, else no entrypoint."""
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """Added to (and overriding) the defaults: PATH, LANG=C.UTF-8, SSL_CERT_FILE."""
    user: str = "0"
    workdir: str = "/"
    labels: tuple[tuple[str, str], ...] = ()
    compression: str = "gzip"
    sbom: str = ""
    """"spdx" or "cyclonedx": the SBOM of the image's packages written into it too."""
    setuid: tuple[str, ...] = ()
    """Globs of files that keep a setuid or setgid bit their package gives them; every
    other file loses it."""


@dataclass(frozen=True)
class PythonBuild:
    """``[python] build = "source"``: CPython compiled from the upstream tarball that the
    Sources index of ``source_suite`` lists, in a sealed build root."""

    source_suite: str
    readline: bool = True
    """False: built without GNU readline and gdbm (both GPL-3)."""
    pgo: bool = False
    lto: bool = False

    def inputs(self) -> dict[str, Any]:
        return {"build": "source", "source-suite": self.source_suite,
                "readline": self.readline, "pgo": self.pgo, "lto": self.lto}


@dataclass(frozen=True)
class UserSpec:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/sbin/nologin"


@dataclass(frozen=True)
class Profile:
    path: Path
    name: str
    architectures: tuple[str, ...]
    sources: tuple[SourceSpec, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    prefer: tuple[tuple[str, str], ...] = ()
    recommends: bool = False
    python_version: str | None = None
    python_build: PythonBuild | None = None
    """None: Debian's own python3.X packages (``build = "debian"``)."""
    only: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(package, globs): of that package, only the paths matching the globs ship."""
    image: ImageSpec = field(default_factory=ImageSpec)
    users: tuple[UserSpec, ...] = ()
    groups: tuple[tuple[str, int], ...] = ()
    strip: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    strip_defaults: bool = True
    python_compile: bool = True
    python_trim: bool = True
    policy_deny: tuple[str, ...] = ()
    """SPDX licence identifiers or globs (``AGPL-3.0-*``) that may not ship."""
    policy_allow: tuple[tuple[str, str], ...] = ()
    """(package, reason): exceptions to ``policy_deny``, shown in every audit."""
    busybox_applets: bool = False
    """A link for every applet of the shipped busybox, as ``busybox --install -s``."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def lock_inputs(self) -> dict[str, Any]:
        """Everything that decides what ``lock`` resolves, in a canonical form."""
        return {
            "name": self.name,
            "architectures": list(self.architectures),
            "sources": [
                {"archive": s.archive, "suite": s.suite, "components": list(s.components),
                 "keyring": s.keyring_as_written or s.keyring}
                | ({} if s.binaries else {"binaries": False})
                for s in self.sources
            ],
            "include": list(self.include),
            "exclude": sorted(self.exclude),
            "prefer": dict(sorted(self.prefer)),
            "recommends": self.recommends,
            "python": self.python_version,
        } | ({"python-build": self.python_build.inputs()} if self.python_build else {}) | ({"policy": {"deny": list(self.policy_deny),
                         "allow": [list(a) for a in self.policy_allow]}}
             if self.policy_deny or self.policy_allow else {})

    def fingerprint(self) -> str:
        blob = json.dumps(self.lock_inputs(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ReleaseRecord:
    """A verified Release, as recorded in a lock."""

    archive: str
    suite: str
    codename: str
    date: str
    release_sha256: str
    signed_by: tuple[str, ...]
    valid_until: str | None = None


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """One binary package version from a verified Packages index."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    source: str
    source_version: str
    depends: Relations
    pre_depends: Relations
    recommends: Relations
    provides: tuple[Relation, ...]
    conflicts: Relations
    breaks: Relations
    multi_arch: str
    essential: bool
    priority: str
    origin: int
    """Index of the profile source (0-based) whose Packages listed this version."""
    pin: int = 500
    """apt's default pin priority for that source: 500, 100 (ButAutomaticUpgrades), 1 (NotAutomatic)."""
    protected: bool = False
    """``Protected: yes`` (formerly ``Important: yes``)."""


@dataclass(frozen=True)
class Edge:
    """``dependent`` needed ``target`` through ``relation`` (``via`` names a virtual package)."""

    dependent: str
    target: str
    relation: str
    kind: str = "Depends"
    via: str | None = None


@dataclass(frozen=True)
class Resolution:
    """The solver's answer for one architecture."""

    architecture: str
    roots: tuple[str, ...]
    packages: tuple[PackageRecord, ...]
    edges: tuple[Edge, ...]
    excluded: tuple[tuple[str, tuple[str, ...]], ...]
    """(excluded name, the packages that wanted it)."""
    choices: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(virtual name, provider chosen, the packages that wanted it)."""


# -- trees: what a .deb holds, what an image layer holds ------------------------------

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


MAX_SYMLINKS = 40
"""As the kernel's limit on symbolic links followed in one lookup."""


def follow(entries: Mapping[str, Entry], path: str) -> str | None:
    """``path`` (a tree path) with every symlink on the way, in its parents and at its
    end, resolved inside the tree as the kernel would with the tree as root (``..``
    stops at the root); None when it leads to nothing or loops."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = "/".join([*done, part])
        e = entries.get(here)
        if e is None:
            return None
        if e.kind == SYMLINK:
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            parts = [p for p in e.target.split("/") if p and p != "."] + parts
            if e.target.startswith("/"):
                done = []
            continue
        done.append(part)
    return "/".join(done)
