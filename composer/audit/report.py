"""What an audit finds, as values: the shipped packages with their licences (from their
copyright files, attributed to the files that ship), the dynamic linkage between shipped
ELF objects, and the profile's policy applied to both. Renderers (terminal table, JSON,
SBOMs, HTML) read these and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# One Files paragraph of a copyright file and what of the package it covers: made by the
# DEP-5 reader, carried here as it is.
from composer.debian.copyright import LicenceUse as LicenceUse

GPL_FAMILY = ("GPL-", "LGPL-", "AGPL-")
"""SPDX identifiers of the GNU copyleft family start with one of these."""


def is_gpl_family(spdx_id: str) -> bool:
    return spdx_id.startswith(GPL_FAMILY)


@dataclass(frozen=True, slots=True)
class ShippedFile:
    path: str
    """Tree path, no leading slash (``usr/lib/x86_64-linux-gnu/libc.so.6``)."""
    sha256: str
    size: int
    kind: str = "file"
    """``file`` or ``symlink`` (a symlink's sha256 is of its target string)."""
    sha1: str = ""
    """SPDX 2.3 requires a SHA1 for every file; "" when not computed."""


@dataclass(frozen=True, slots=True)
class PackageLicences:
    expression: str
    """The licences of what ships, as one SPDX expression (AND of the uses that ship)."""
    ids: tuple[str, ...]
    """Every SPDX identifier in it (and LicenseRef-… for what has none), sorted."""
    machine_readable: bool
    """Whether the copyright file is DEP-5; False means ``ids`` were detected from
    prose and are marked so in every output."""
    uses: tuple[LicenceUse, ...] = ()
    copyright_path: str = ""
    """Tree path of the copyright file read ("" when the package has none)."""
    notes: tuple[str, ...] = ()
    """What the reader could not be sure of (unknown short names, detection used)."""
    possible: tuple[str, ...] = ()
    """Licences only of source files that may or may not be compiled into the package's
    objects (glibc lists GPL programs beside its LGPL library): shown, not counted in
    ``expression``."""

    @property
    def gpl_family(self) -> bool:
        return any(is_gpl_family(i) for i in self.ids)

    @property
    def detected(self) -> bool:
        """The licences were detected from the prose of a copyright file (one that is
        not machine-readable), rather than read from DEP-5."""
        return not self.machine_readable and bool(self.copyright_path)

    @property
    def missing(self) -> bool:
        """The package ships no copyright file at all."""
        return not self.copyright_path


@dataclass(frozen=True, slots=True)
class AuditedPackage:
    name: str
    version: str
    architecture: str
    source: str
    source_version: str
    deb_sha256: str
    deb_size: int
    filename: str
    """Archive-relative path of the .deb (``pool/main/...``)."""
    archive: str
    suite: str
    files: tuple[ShippedFile, ...]
    """What of the package ships after stripping, sorted by path."""
    licences: PackageLicences
    required_by: tuple[str, ...] = ()

    @property
    def shipped_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class Link:
    """One DT_NEEDED entry of a shipped ELF object, resolved as the dynamic loader
    would inside the image."""

    binary: str
    package: str
    needed: str
    resolved: str | None
    """The tree path it resolves to, None when the image has no such library."""
    provider: str | None
    """The package shipping ``resolved``."""


@dataclass(frozen=True, slots=True)
class Violation:
    package: str
    licence: str
    """The denied SPDX identifier."""
    rule: str
    """The deny pattern that matched."""
    file: str
    """The copyright file that carries the licence."""
    why: tuple[tuple[str, ...], ...]
    """Chains of package names from a root of the profile to the package."""
    allowed: str | None = None
    """The reason given by an allow-packages exception, when one covers it."""


@dataclass(frozen=True)
class AuditReport:
    profile: str
    architecture: str
    digest: str
    """The image's manifest digest for this architecture ("" when not built)."""
    epoch: int
    packages: tuple[AuditedPackage, ...]
    links: tuple[Link, ...]
    violations: tuple[Violation, ...] = ()
    sources: tuple[tuple[str, str, str], ...] = ()
    """(archive, suite, release sha256) of the lock's sources: where the .debs come from."""
    generated: tuple[ShippedFile, ...] = field(default=())
    """Files compose wrote itself (passwd, CA bundle, .pyc, ld.so.cache)."""

    @property
    def missing(self) -> tuple[Link, ...]:
        """Needed libraries the image lacks: the image would fail to load these."""
        return tuple(lk for lk in self.links if lk.resolved is None)

    @property
    def denied(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.allowed is None)
