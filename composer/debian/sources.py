"""Sources indexes (``dists/SUITE/COMPONENT/source/Sources``): the stanzas of one source
package, as values. Pure: bytes in, records out.

A Sources index is large (60 MB for Debian's main) and compose wants one package of it,
so the stanzas are found by searching for their ``Package:`` line rather than by parsing
the whole file; only those stanzas are parsed, strictly.
"""

from __future__ import annotations

import json
import mmap
import re
from dataclasses import dataclass

from composer.debian.deb822 import parse_one
from composer.debian.release import FileEntry, sha256_lines
from composer.errors import FormatError
from composer.model import PACKAGE_NAME

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.~_-]*")
"""A file of a source package: a plain name, never a path."""
DIRECTORY = re.compile(r"pool/[A-Za-z0-9+._-]+(/[A-Za-z0-9+._-]+)+")
TARBALL_COMPRESSIONS = ("xz", "gz", "bz2", "zst")


@dataclass(frozen=True)
class SourceRecord:
    """One version of a source package, as a signed Sources index lists it."""

    name: str
    version: str
    directory: str
    """Archive-relative: ``pool/main/p/python3.14``."""
    files: tuple[FileEntry, ...]
    """Each file's ``path`` is a plain name, in ``directory``."""

    def path(self, f: FileEntry) -> str:
        return f"{self.directory}/{f.path}"

    def upstream_tarball(self) -> FileEntry | None:
        """The ``.orig.tar.*`` (the upstream release, for a ``3.0 (quilt)`` package)."""
        prefix = f"{self.name}_{self.upstream_version()}.orig.tar."
        found = [f for f in self.files if f.path.startswith(prefix)
                 and f.path[len(prefix):] in TARBALL_COMPRESSIONS]
        return found[0] if len(found) == 1 else None

    def upstream_version(self) -> str:
        """The version without epoch and Debian revision."""
        v = self.version.split(":", 1)[-1]
        return v.rsplit("-", 1)[0] if "-" in v else v


def lookup(data: bytes | mmap.mmap, name: str, where: str) -> list[SourceRecord]:
    """Every stanza of source package ``name`` in a Sources index (bytes or a map of
    them: nothing is copied but the stanzas found)."""
    needle = f"Package: {name}\n".encode()
    starts = [0] if data[:len(needle)] == needle else []
    at = 0
    while (at := data.find(b"\n" + needle, at)) >= 0:
        at += 1
        starts.append(at)
    records = []
    for start in starts:
        end = data.find(b"\n\n", start)
        raw = data[start:end if end >= 0 else len(data)]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{where}: the {name} stanza is not UTF-8") from exc
        records.append(_record(parse_one(text, f"{where} ({name})"), f"{where} ({name})"))
    return records


def _record(fields: dict[str, str], where: str) -> SourceRecord:
    def need(key: str) -> str:
        value = fields.get(key)
        if not value:
            raise FormatError(f"{where}: no {key} field")
        return value.strip()

    name = need("Package")
    if not PACKAGE_NAME.fullmatch(name):
        raise FormatError(f"{where}: {name!r} is not a package name")
    version = need("Version")
    directory = need("Directory")
    if not DIRECTORY.fullmatch(directory) or ".." in directory.split("/"):
        raise FormatError(f"{where}: Directory {directory!r} is not a pool path")
    files = sha256_lines(need("Checksums-Sha256"), where, "Checksums-Sha256")
    for f in files:
        if not FILE_NAME.fullmatch(f.path):
            raise FormatError(f"{where}: {f.path!r} is not a file name")
    return SourceRecord(name, version, directory, tuple(files))


def dumps(records: list[SourceRecord]) -> bytes:
    return json.dumps([[r.name, r.version, r.directory,
                        [[f.path, f.size, f.sha256] for f in r.files]] for r in records]).encode()


def loads(data: bytes) -> list[SourceRecord]:
    return [SourceRecord(n, v, d, tuple(FileEntry(fn, size, sha) for fn, size, sha in files))
            for n, v, d, files in json.loads(data)]
