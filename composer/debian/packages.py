"""A query view over several Packages files for one architecture.

``Index`` answers what the solver asks: every version of a package name, the providers
of a virtual name, apt's candidate version. Paragraphs are parsed into
``PackageRecord`` only when asked for, so opening an index costs one scan per file.
"""

from __future__ import annotations

from dataclasses import dataclass

from composer.debian import relation, version
from composer.debian.deb822 import PackagesFile
from composer.errors import FormatError
from composer.model import PackageRecord


@dataclass(frozen=True)
class IndexPart:
    """One Packages file and where it came from."""

    file: PackagesFile
    origin: int
    pin: int = 500


class Index:
    def __init__(self, architecture: str, parts: list[IndexPart]) -> None:
        self.architecture = architecture
        self.parts = parts
        self._records: dict[str, list[PackageRecord]] = {}
        self._order: dict[str, tuple[int, int, int, int]] = {}

    def _record(self, part: IndexPart, offset: int) -> PackageRecord:
        f = part.file.stanza(offset)
        where = f"{part.file.where}, package {f.get('Package', '?')}"
        arch = self.architecture
        try:
            src = f.get("Source", f["Package"])
            src_name, _, src_ver = src.partition(" ")
            src_ver = src_ver.strip("() ") or f["Version"]
            version.key(f["Version"])

            def rel(field: str) -> relation.Relations:
                return relation.parse(f[field], arch, where=f"{where}: {field}") if field in f else ()

            return PackageRecord(
                name=f["Package"],
                version=f["Version"],
                architecture=f["Architecture"],
                filename=f["Filename"],
                size=int(f["Size"]),
                sha256=f["SHA256"],
                source=src_name,
                source_version=src_ver,
                depends=rel("Depends"),
                pre_depends=rel("Pre-Depends"),
                recommends=rel("Recommends"),
                provides=relation.parse_provides(f["Provides"], where) if "Provides" in f else (),
                conflicts=rel("Conflicts"),
                breaks=rel("Breaks"),
                multi_arch=f.get("Multi-Arch", "no"),
                essential=f.get("Essential", "no") == "yes",
                priority=f.get("Priority", ""),
                origin=part.origin,
                pin=part.pin,
                protected=f.get("Protected", f.get("Important", "no")) == "yes",
            )
        except KeyError as exc:
            raise FormatError(f"{where}: required field {exc.args[0]} is missing") from exc
        except ValueError as exc:
            raise FormatError(f"{where}: {exc}") from exc

    def versions(self, name: str) -> list[PackageRecord]:
        """Every version of ``name`` for this architecture (or all), best candidate first."""
        cached = self._records.get(name)
        if cached is not None:
            return cached
        found: dict[tuple[str, str], PackageRecord] = {}
        for part in self.parts:
            for off in part.file.lookup(name):
                rec = self._record(part, off)
                if rec.architecture not in (self.architecture, "all"):
                    continue
                k = (rec.version, rec.architecture)
                prev = found.get(k)
                # The same version in two suites is one package; keep the higher pin.
                if prev is None or rec.pin > prev.pin:
                    found[k] = rec
        records = sorted(found.values(), key=lambda r: (r.pin, version.key(r.version)), reverse=True)
        self._records[name] = records
        return records

    def candidate(self, name: str) -> PackageRecord | None:
        """apt's candidate: highest pin priority, then highest version."""
        v = self.versions(name)
        return v[0] if v else None

    def provider_names(self, virtual: str) -> list[str]:
        """Names of real packages whose Provides mention ``virtual`` (any version)."""
        names: list[str] = []
        for part in self.parts:
            for off in part.file.providing(virtual):
                pkg = part.file.stanza(off)["Package"]
                if pkg not in names:
                    names.append(pkg)
        return names

    def creation_order(self, name: str) -> tuple[int, int, int, int]:
        """The order in which apt's cache would create ``name`` (files in source order);
        remembered, since finding a name's first mention searches the whole file."""
        order = self._order.get(name)
        if order is None:
            order = (len(self.parts), 0, 0, 0)
            for i, part in enumerate(self.parts):
                found = part.file.first_mention(name)
                if found is not None:
                    order = (i, *found)
                    break
            self._order[name] = order
        return order

    def has_name(self, name: str) -> bool:
        return any(part.file.lookup(name) for part in self.parts)

    def all_names(self) -> set[str]:
        out: set[str] = set()
        for part in self.parts:
            out.update(part.file.names())
        return out
