"""Put the host's own compiler packages into a :class:`~tests.fakearchive.FakeArchive`.

Offline tests that compile C in a build root assembled from ``.deb`` files need
a real toolchain without a network. The host (Debian) has one installed::

    arch = FakeArchive(tmp_path / "mirror")
    names = host_toolchain(arch, "bookworm")   # gcc, make, libc6-dev, ... and their closure
    arch.publish("bookworm", architectures=("amd64",))

:func:`host_toolchain` follows ``Depends`` and ``Pre-Depends`` through the
packages ``dpkg`` has installed and rebuilds each one as a ``.deb`` from the
files ``dpkg-query -L`` lists for it (less documentation, but with each
``copyright`` file), at its installed version and architecture. Paths stay as
dpkg lists them (``/bin/dash`` even on a merged-``/usr`` host) and a diverted
path ships the file dpkg recorded for the package. Maintainer scripts and
``update-alternatives`` links (``/usr/bin/cc``, ``/usr/bin/awk``) are not
included.

Like :mod:`tests.fakearchive`, this does not use ``composer``.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fakearchive import Compression, FakeArchive

__all__ = ["DEFAULT_ROOTS", "HostPackage", "closure", "host_toolchain", "installed_packages"]

DEFAULT_ROOTS = (
    "gcc",
    "make",
    "libc6-dev",
    "dash",
    "coreutils",
    "sed",
    "grep",
    "mawk",
    "diffutils",
    "findutils",
    "pkgconf",
)
"""Enough to run ``make`` with a ``Makefile`` that compiles C with ``gcc``."""

SKIPPED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
)
"""Trees left out of the rebuilt packages, except ``usr/share/doc/<package>/copyright``."""

_FIELDS = (
    "binary:Package",
    "Package",
    "Version",
    "Architecture",
    "db:Status-Status",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Multi-Arch",
    "Essential",
    "Source",
)
_INSTALLED = frozenset({"installed", "triggers-pending", "triggers-awaited"})
_NAME = re.compile(r"\s*([a-z0-9][a-z0-9+.-]*)")


@dataclass(frozen=True)
class HostPackage:
    """A package installed on the host, as ``dpkg-query -W`` shows it."""

    qualified: str
    """``${binary:Package}``: ``libc6:amd64`` for ``Multi-Arch: same``, else the name."""
    name: str
    version: str
    architecture: str
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    multi_arch: str = ""
    """``same``, ``foreign``, ``allowed`` or empty."""
    essential: bool = False
    source: str = ""
    """``Source`` field, e.g. ``gcc-12 (12.2.0-14)``, or empty."""


@dataclass(frozen=True)
class _Contents:
    """A package's tree; regular files stay on disk (``files`` maps each to where)."""

    files: Mapping[str, str]
    symlinks: Mapping[str, str]
    directories: tuple[str, ...]
    modes: Mapping[str, int]


def _dpkg_query(*args: str) -> str:
    result = subprocess.run(
        ["dpkg-query", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dpkg-query {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def installed_packages(architecture: str) -> dict[str, HostPackage]:
    """Packages installed on the host for *architecture* or ``all``, by name."""
    listing = _dpkg_query("-W", "-f=" + r"\t".join(f"${{{f}}}" for f in _FIELDS) + r"\n")
    found: dict[str, HostPackage] = {}
    for line in listing.splitlines():
        qualified, name, version, arch, status, *rest = line.split("\t")
        depends, pre_depends, provides, multi_arch, essential, source = rest
        if status in _INSTALLED and arch in (architecture, "all"):
            found[name] = HostPackage(
                qualified=qualified,
                name=name,
                version=version,
                architecture=arch,
                depends=depends,
                pre_depends=pre_depends,
                provides=provides,
                multi_arch="" if multi_arch == "no" else multi_arch,
                essential=essential == "yes",
                source=source,
            )
    return found


def _names(relation: str) -> list[list[str]]:
    """``"a (>= 1) | b:any, c"`` -> ``[["a", "b"], ["c"]]``: names without versions or qualifiers."""
    groups = []
    for group in relation.split(","):
        names = [m.group(1) for m in map(_NAME.match, group.split("|")) if m]
        if names:
            groups.append(names)
    return groups


def closure(installed: Mapping[str, HostPackage], roots: Sequence[str]) -> list[HostPackage]:
    """*roots* and all they depend on, in the order found.

    Each ``Depends``/``Pre-Depends`` group is satisfied by its first alternative
    that is installed, by name or else through an installed package's ``Provides``.
    """
    providers: dict[str, list[HostPackage]] = {}
    for package in sorted(installed.values(), key=lambda p: p.name):
        for [virtual, *_] in _names(package.provides):
            providers.setdefault(virtual, []).append(package)

    def satisfy(alternatives: Sequence[str]) -> HostPackage | None:
        for name in alternatives:
            if name in installed:
                return installed[name]
            if name in providers:
                return providers[name][0]
        return None

    if missing := [root for root in roots if satisfy([root]) is None]:
        raise RuntimeError(
            f"not installed on this host: {', '.join(missing)}; "
            f"install with: apt-get install {' '.join(missing)}"
        )
    chosen: dict[str, HostPackage] = {}
    queue = [[root] for root in roots]
    while queue:
        group = queue.pop(0)
        package = satisfy(group)
        if package is None:
            raise RuntimeError(f"no installed package satisfies {' | '.join(group)}")
        if package.name not in chosen:
            chosen[package.name] = package
            queue += _names(package.pre_depends) + _names(package.depends)
    return list(chosen.values())


def _listed_paths(package: HostPackage) -> dict[str, str]:
    """Paths dpkg lists for *package* (``usr/bin/x``) -> where its file is on disk.

    A path another package (or the admin) diverted holds this package's file
    at the diversion's target; a path the package diverts itself holds its own.
    """
    listed: dict[str, str] = {}
    last = ""
    for line in _dpkg_query("-L", package.qualified).splitlines():
        if line.startswith("/"):
            last = line.strip("/")
            if last and last != ".":
                listed[last] = line
        elif line.startswith(("diverted by ", "locally diverted to: ")) and last in listed:
            listed[last] = line.split(": ", 1)[1]
    return listed


def _kept(path: str, package: str) -> bool:
    if path in (f"usr/share/doc/{package}", f"usr/share/doc/{package}/copyright"):
        return True
    return not any(path == tree or path.startswith(f"{tree}/") for tree in SKIPPED)


def _contents(package: HostPackage) -> _Contents:
    """What *package* has on disk, in its ``.deb`` form; paths missing on disk are left out."""
    listed = _listed_paths(package)
    parents = {path[: m.start()] for path in listed for m in re.finditer("/", path)}
    files: dict[str, str] = {}
    symlinks: dict[str, str] = {}
    directories: list[str] = []
    modes: dict[str, int] = {}
    for path, on_disk in listed.items():
        if not _kept(path, package.name):
            continue
        try:
            # A listed directory may be a symlink on a merged-/usr host (/bin -> usr/bin).
            info = os.stat(on_disk) if path in parents else os.lstat(on_disk)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            symlinks[path] = os.readlink(on_disk)
            continue
        if stat.S_ISDIR(info.st_mode):
            directories.append(path)
        elif stat.S_ISREG(info.st_mode):
            files[path] = on_disk
        else:
            continue
        modes[path] = stat.S_IMODE(info.st_mode)
    return _Contents(files, symlinks, tuple(directories), modes)


@functools.cache
def _deb_compression() -> Compression:
    """``zst`` if the host's ``dpkg-deb`` reads it (dpkg >= 1.21.18), else ``gz``."""
    usage = subprocess.run(["dpkg-deb", "--help"], capture_output=True, text=True, check=False)
    return "zst" if "zstd" in usage.stdout else "gz"


@functools.cache
def _host_packages(
    roots: tuple[str, ...], architecture: str
) -> tuple[tuple[HostPackage, _Contents], ...]:
    """The closure of *roots* and each package's tree: ~0.5 s for the default roots
    (Debian 12, amd64: 71 packages, 2374 files), almost all of it in ``dpkg-query -L``.
    The files' contents (218 MB) are not kept, but read again by each :func:`host_toolchain`."""
    packages = closure(installed_packages(architecture), roots)
    return tuple((package, _contents(package)) for package in packages)


def host_toolchain(
    archive: FakeArchive,
    suite: str,
    roots: Sequence[str] = DEFAULT_ROOTS,
    architecture: str = "amd64",
) -> list[str]:
    """Add *roots* and their dependency closure, as installed on the host, to *suite*.

    Only packages installed for *architecture* (or ``all``) count. Raises
    ``RuntimeError`` naming what to ``apt-get install`` when a root is missing.
    Returns the names of the packages added.

    The package lists are gathered once per process (see :func:`_host_packages`);
    each call then reads the files and builds the ``.deb`` files, zstd (or gzip)
    level 1: ~1.5 s for the default roots, giving 71 packages of 84 MB (gzip: ~3.6 s).
    """
    compression = _deb_compression()
    added = []
    for package, contents in _host_packages(tuple(roots), architecture):
        files = {path: Path(on_disk).read_bytes() for path, on_disk in contents.files.items()}
        archive.add(
            suite,
            package.name,
            package.version,
            package.architecture,
            depends=package.depends or None,
            pre_depends=package.pre_depends or None,
            provides=package.provides or None,
            multi_arch=package.multi_arch or None,
            essential=package.essential,
            source=package.source or None,
            files=files,
            symlinks=contents.symlinks,
            directories=contents.directories,
            modes=contents.modes,
            data_compression=compression,
            control_compression=compression,
            compression_level=1,
        )
        added.append(package.name)
    return added
