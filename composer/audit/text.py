"""The audit for people at a terminal, and as JSON for machines. Pure: reports in, text
or plain data out; colour only when the caller asks for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from composer.audit.html import human_size
from composer.audit.report import AuditReport, Link, PackageLicences, is_gpl_family

RED, YELLOW, DIM, BOLD, RESET = "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


def _how(lic: PackageLicences) -> str:
    if lic.missing:
        return " (no copyright file)"
    return " (detected)" if lic.detected else ""


def family(ids: Sequence[str]) -> str:
    """The strongest copyleft among licence ids: AGPL, GPL, LGPL, or ""."""
    for fam in ("AGPL-", "GPL-", "LGPL-"):
        if any(i.startswith(fam) for i in ids):
            return fam.rstrip("-")
    return ""


def loaders(links: Sequence[Link]) -> dict[str, dict[str, list[str]]]:
    """For every shipped library: the objects that load it directly (``direct``) and
    those that load it only through other libraries (``indirect``)."""
    needs: dict[str, set[str]] = {}
    for lk in links:
        if lk.resolved:
            needs.setdefault(lk.binary, set()).add(lk.resolved)
    out: dict[str, dict[str, list[str]]] = {}
    for binary in sorted(needs):
        seen: set[str] = set()
        frontier = sorted(needs[binary])
        direct = set(frontier)
        while frontier:
            lib = frontier.pop()
            if lib in seen or lib == binary:
                continue
            seen.add(lib)
            frontier.extend(sorted(needs.get(lib, ())))
        for lib in seen:
            slot = out.setdefault(lib, {"direct": [], "indirect": []})
            slot["direct" if lib in direct else "indirect"].append(binary)
    return out


def files(reports: Sequence[AuditReport]) -> str:
    """For every package, which paragraph of its copyright file (its Files globs) covers
    which shipped files, and the paragraphs that cover nothing that ships."""
    lines = []
    for r in reports:
        lines.append(f"{r.profile} [{r.architecture}]: licences by shipped file")
        for p in sorted(r.packages, key=lambda p: p.name):
            lines.append(f"{p.name} {p.version}: {p.licences.expression}{_how(p.licences)}")
            if p.licences.copyright_path:
                lines.append(f"  from /{p.licences.copyright_path}")
            for use in p.licences.uses:
                globs = " ".join(use.patterns) or "(whole file, not machine-readable)"
                lines.append(f"  Files: {globs}  [{use.how}] {use.expression}")
                for f in use.files[:20]:
                    lines.append(f"    /{f}")
                if len(use.files) > 20:
                    lines.append(f"    … and {len(use.files) - 20} more")
        lines.append("")
    return "\n".join(lines)


def table(reports: Sequence[AuditReport], colour: bool = False) -> str:
    lines = []
    for r in reports:
        lines.append(f"{r.profile} [{r.architecture}] {r.digest}")
        rows = [("package", "version", "licences (SPDX)", "size", "copyleft")]
        for p in sorted(r.packages, key=lambda p: (-p.shipped_size, p.name)):
            suffix = _how(p.licences)
            if p.licences.possible:
                suffix += f" [+{len(p.licences.possible)} possible]"
            room = 60 - len(suffix)
            expr = p.licences.expression
            lic = (expr if len(expr) <= room else expr[:room - 1] + "…") + suffix
            rows.append((p.name, p.version, lic, human_size(p.shipped_size), family(p.licences.ids)))
        widths = [min(max(len(row[i]) for row in rows), cap)
                  for i, cap in enumerate((28, 26, 60, 10, 8))]
        for n, row in enumerate(rows):
            cells = [c if len(c) <= w else c[:w - 1] + "…" for c, w in zip(row, widths, strict=True)]
            text = "  ".join(c.ljust(w) if i != 3 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
            if colour and n == 0:
                text = BOLD + text + RESET
            elif colour and row[4] in ("GPL", "AGPL"):
                text = RED + text + RESET
            elif colour and row[4] == "LGPL":
                text = YELLOW + text + RESET
            lines.append(text)
        total = sum(p.shipped_size for p in r.packages) + sum(f.size for f in r.generated)
        gpl = sum(1 for p in r.packages if p.licences.gpl_family)
        prose = sum(1 for p in r.packages if p.licences.detected)
        lines.append(f"{len(r.packages)} packages, {human_size(total)} shipped (with what compose "
                     f"generated); {gpl} of the GPL family; {prose} with licences detected "
                     "from a copyright file that is not machine-readable")
        lines += _problems(r)
        lines.append("")
    return "\n".join(lines)


def _problems(r: AuditReport) -> list[str]:
    out = []
    for lk in r.missing:
        out.append(f"missing: /{lk.binary} ({lk.package}) needs {lk.needed}, which the image "
                   "does not have")
    for v in r.violations:
        verdict = f"allowed: {v.allowed}" if v.allowed else "DENIED"
        out.append(f"policy: {v.package} ships {v.licence} ({v.rule}); {verdict}")
    return out


def gpl(reports: Sequence[AuditReport]) -> str:
    """Only the GPL family: each package, its licence, the files of it that ship, and
    which shipped binaries and extension modules load its libraries."""
    lines = []
    for r in reports:
        by_loader = loaders(r.links)
        owner = {f.path: p.name for p in r.packages for f in p.files}
        lines.append(f"{r.profile} [{r.architecture}]: GPL, LGPL and AGPL code that ships")
        for p in sorted(r.packages, key=lambda p: p.name):
            if not p.licences.gpl_family and not any(map(is_gpl_family, p.licences.possible)):
                continue
            copyleft = [i for i in p.licences.ids if is_gpl_family(i)]
            maybe = [i for i in p.licences.possible if is_gpl_family(i)]
            lines.append(f"{p.name} {p.version}: {p.licences.expression}"
                         + _how(p.licences))
            lines.append("  licences of the GPL family: "
                         + (", ".join(copyleft) if copyleft else "none declared"))
            if maybe:
                lines.append("  possibly compiled in (source files the copyright file lists, "
                             f"which may not be in what ships): {', '.join(maybe)}")
            for use in p.licences.uses:
                if family([t for t in use.expression.replace("(", " ").replace(")", " ").split()]):
                    shown = (", ".join(use.patterns[:3]) + ("…" if len(use.patterns) > 3 else "")
                             if use.patterns else "(the whole copyright file: not machine-readable)")
                    lines.append(f"  {use.expression} [{use.how}] Files: {shown} -> "
                                 f"{len(use.files)} shipped file(s)")
            libs = [f.path for f in p.files if f.path in by_loader]
            if not libs:
                files = [f.path for f in p.files if not f.path.startswith("usr/share/doc/")]
                lines.append(f"  ships {len(files)} file(s); no shipped object loads them")
            for lib in libs:
                for how in ("direct", "indirect"):
                    users = by_loader[lib][how]
                    if users:
                        word = "linked by" if how == "direct" else "loaded through others by"
                        shown = ", ".join(f"/{b} ({owner.get(b, '?')})" for b in users[:8])
                        extra = f" and {len(users) - 8} more" if len(users) > 8 else ""
                        lines.append(f"  /{lib} {word} {shown}{extra}")
        lines.append("")
    return "\n".join(lines)


def as_json(reports: Sequence[AuditReport]) -> list[dict[str, Any]]:
    out = []
    for r in reports:
        by_loader = loaders(r.links)
        doc = {
            "profile": r.profile, "architecture": r.architecture, "digest": r.digest,
            "packages": [{
                "name": p.name, "version": p.version, "architecture": p.architecture,
                "source": p.source, "source_version": p.source_version,
                "deb_sha256": p.deb_sha256, "filename": p.filename,
                "shipped_size": p.shipped_size, "files": len(p.files),
                "licences": p.licences.expression, "ids": list(p.licences.ids),
                "machine_readable": p.licences.machine_readable,
                "copyright": p.licences.copyright_path, "notes": list(p.licences.notes),
                "gpl_family": p.licences.gpl_family,
                "possible": list(p.licences.possible),
                "uses": [{"files_globs": list(u.patterns), "licence": u.expression,
                          "as_written": u.debian, "how": u.how, "shipped": list(u.files)}
                         for u in p.licences.uses],
                "loaded_by": {f.path: by_loader[f.path] for f in p.files
                              if f.path in by_loader},
            } for p in r.packages],
            "links": [asdict(lk) for lk in r.links],
            "missing": [asdict(lk) for lk in r.missing],
            "violations": [asdict(v) for v in r.violations],
        }
        out.append(doc)
    return out
