"""From an image's tree and its lock to an AuditReport: what each package ships after
stripping, the licences of exactly that (read from its copyright file), the dynamic
linkage between shipped ELF objects, and the policy applied. Pure: values in, a report
out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from composer.audit import linkage, policy
from composer.audit.report import (
    AuditedPackage,
    AuditReport,
    PackageLicences,
    ShippedFile,
)
from composer.debian import copyright as dep5
from composer.elf import MAGIC as ELF_MAGIC
from composer.model import DIR, FILE, HARDLINK, SYMLINK, Entry, follow


class Locked(Protocol):
    """What the audit reads of a locked package (``composer.lockfile.LockedPackage``)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def deb_architecture(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def filename(self) -> str: ...
    @property
    def archive(self) -> str: ...
    @property
    def suite(self) -> str: ...
    @property
    def required_by(self) -> tuple[str, ...]: ...


def _content(entries: Mapping[str, Entry], e: Entry) -> bytes:
    """A file's bytes, a hard link's those of its target."""
    return entries[e.target].data if e.kind == HARDLINK else e.data


def shipped_files(entries: Mapping[str, Entry]) -> dict[str, list[ShippedFile]]:
    """Every shipped file and symlink, by the package that shipped it ("" for what
    compose generated), with its sha256, sha1 and size."""
    out: dict[str, list[ShippedFile]] = {}
    for path in sorted(entries):
        e = entries[path]
        if e.kind in (FILE, HARDLINK):
            data = _content(entries, e)
            kind = "file"
        elif e.kind == SYMLINK:
            data = e.target.encode()
            kind = "symlink"
        else:
            continue
        out.setdefault(e.package, []).append(ShippedFile(
            path, hashlib.sha256(data).hexdigest(), len(data), kind,
            hashlib.sha1(data, usedforsecurity=False).hexdigest()))
    return out


def _copyright(entries: Mapping[str, Entry], name: str) -> tuple[str, bytes] | None:
    """The package's copyright file (compose has made every shipped package's
    copyright reachable, through a symlinked doc directory or not)."""
    path = follow(entries, f"usr/share/doc/{name}/copyright")
    if path is None:
        return None
    e = entries[path]
    return (path, _content(entries, e)) if e.kind in (FILE, HARDLINK) else None


def licences(entries: Mapping[str, Entry], name: str, files: Sequence[ShippedFile],
             elf: Collection[str]) -> PackageLicences:
    """The package's licences, attributed to its shipped ``files`` (``elf``: the ELF
    objects among all shipped files)."""
    found = _copyright(entries, name)
    if found is None:
        return PackageLicences(policy.UNKNOWN, (policy.UNKNOWN,), False,
                               notes=(f"{name} ships no copyright file",))
    path, data = found
    parsed = dep5.parse(data, f"{name}: /{path}")
    paths = [f.path for f in files]
    result = dep5.attribute(parsed, paths, [p for p in paths if p in elf], name)
    return PackageLicences(result.expression, result.ids, result.machine_readable,
                           result.uses, path, result.notes, result.possible)


def linker_inputs(entries: Mapping[str, Entry]
                  ) -> tuple[dict[str, bytes], dict[str, str], dict[str, str]]:
    """What ``linkage`` reads of a tree: its ELF files' bytes, its symlinks, and the
    package of every path."""
    files: dict[str, bytes] = {}
    symlinks: dict[str, str] = {}
    owner: dict[str, str] = {}
    for path, e in entries.items():
        if e.kind in (FILE, HARDLINK) and _content(entries, e)[:4] == ELF_MAGIC:
            files[path] = _content(entries, e)
        elif e.kind == SYMLINK:
            symlinks[path] = e.target
        if e.kind != DIR:
            owner[path] = e.package
    return files, symlinks, owner


def evaluate(profile: str, arch: str, digest: str, epoch: int,
             packages: Sequence[Locked], entries: Mapping[str, Entry],
             cache: Sequence[tuple[str, str]], default_dirs: Sequence[str],
             deny: Sequence[str], allow: Sequence[tuple[str, str]],
             why: Callable[[str], tuple[tuple[str, ...], ...]],
             sources: Sequence[tuple[str, str, str]] = ()) -> AuditReport:
    by_package = shipped_files(entries)
    files_by_path, symlinks, owner = linker_inputs(entries)
    audited = []
    for p in sorted(packages, key=lambda p: p.name):
        files = tuple(by_package.get(p.name, ()))
        audited.append(AuditedPackage(
            p.name, p.version, p.deb_architecture, p.source, p.source_version, p.sha256,
            p.size, p.filename, p.archive, p.suite, files,
            licences(entries, p.name, files, files_by_path), p.required_by))
    links = tuple(linkage.resolve(files_by_path, symlinks, owner, cache, default_dirs))
    violations = policy.check(audited, deny, allow, why)
    return AuditReport(profile, arch, digest, epoch, tuple(audited), links, violations,
                       tuple(sources), tuple(by_package.get("", ())))
