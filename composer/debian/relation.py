"""Debian relationship fields (Depends, Pre-Depends, Provides, Conflicts, Build-Depends...).

``parse("a (>= 1) | b:any [amd64] <!nocheck>, c")`` gives a tuple of OR-groups, each a
tuple of ``Relation``. Architecture restrictions and build-profile restrictions are
evaluated at parse time against the architecture and the active profiles given (none by
default), as dpkg and apt do; an alternative they rule out is dropped, and a group left
empty disappears.
"""

from __future__ import annotations

import re
from functools import lru_cache

from composer.errors import FormatError
from composer.model import OrGroup, Relation, Relations

__all__ = ["OPS", "OrGroup", "Relation", "Relations", "format_group", "parse", "parse_provides"]

OPS = ("<<", "<=", "=", ">=", ">>")
# Obsolete spellings dpkg still accepts: '<' means '<=', '>' means '>='.
_OBSOLETE = {"<": "<=", ">": ">="}

_ALT = re.compile(
    r"""^\s*
    (?P<name>[a-z0-9][a-z0-9+.\-]*)
    (?::(?P<arch>[a-z0-9-]+))?
    \s*
    (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^)\s<>=][^)\s]*)\s*\))?
    \s*
    (?:\[(?P<archs>[^\]]*)\])?
    \s*
    (?P<profiles>(?:<[^>]*>\s*)*)
    $""",
    re.X,
)


def _arch_matches(restriction: str, host_arch: str | None, where: str) -> bool:
    archs = restriction.split()
    if not archs:
        raise FormatError(f"{where}: empty architecture restriction []")
    negated = [a.startswith("!") for a in archs]
    if any(negated) and not all(negated):
        raise FormatError(f"{where}: architecture restriction mixes negated and plain names")
    if host_arch is None:
        return True
    names = [a.lstrip("!") for a in archs]
    hit = any(_arch_wildcard(n, host_arch) for n in names)
    return not hit if negated[0] else hit


def _arch_wildcard(pattern: str, arch: str) -> bool:
    if pattern in (arch, "any"):
        return True
    # linux-any, any-amd64: Debian architecture wildcards over os-cpu.
    os_, _, cpu = pattern.partition("-")
    if cpu:
        return (os_ in ("any", "linux")) and (cpu in ("any", arch))
    return False


def _profiles_match(text: str, active: frozenset[str], where: str) -> bool:
    # "<a b> <c>": a disjunction of conjunctions of (possibly negated) profile names.
    formulas = re.findall(r"<([^>]*)>", text)
    for formula in formulas:
        terms = formula.split()
        if not terms:
            raise FormatError(f"{where}: empty build profile restriction <>")
        if all((t[1:] not in active) if t.startswith("!") else (t in active) for t in terms):
            return True
    return False


def parse(
    text: str,
    host_arch: str | None = None,
    profiles: frozenset[str] = frozenset(),
    where: str = "relation",
) -> Relations:
    """Parse a relationship field into OR-groups."""
    return _parse(text, host_arch, profiles, where)


@lru_cache(maxsize=32768)
def _parse(text: str, host_arch: str | None, profiles: frozenset[str], where: str) -> Relations:
    groups: list[OrGroup] = []
    text = text.replace("\n", " ").strip()
    if not text:
        return ()
    chunks = text.split(",")
    for i, chunk in enumerate(chunks):
        if not chunk.strip():
            # dpkg tolerates a trailing comma; an empty relation elsewhere is an error.
            if i == len(chunks) - 1 and i > 0:
                continue
            raise FormatError(f"{where}: empty relation in {text!r}")
        alts: list[Relation] = []
        for alt in chunk.split("|"):
            m = _ALT.match(alt)
            if not m:
                raise FormatError(f"{where}: cannot parse relation {alt.strip()!r} in {text!r}")
            if m["archs"] is not None and not _arch_matches(m["archs"], host_arch, where):
                continue
            if m["profiles"] and not _profiles_match(m["profiles"], profiles, where):
                continue
            op = m["op"]
            if op is not None:
                op = _OBSOLETE.get(op, op)
            alts.append(Relation(m["name"], op, m["version"], m["arch"]))
        if alts:
            groups.append(tuple(alts))
    return tuple(groups)


def parse_provides(text: str, where: str = "Provides") -> tuple[Relation, ...]:
    """Parse a Provides field: a list without alternatives, versions only with ``=``."""
    out: list[Relation] = []
    for group in parse(text, where=where):
        if len(group) != 1:
            raise FormatError(f"{where}: alternatives are not allowed in Provides: {text!r}")
        rel = group[0]
        if rel.op not in (None, "="):
            raise FormatError(f"{where}: Provides may only use '=' versions: {rel}")
        out.append(rel)
    return tuple(out)


def format_group(group: OrGroup) -> str:
    return " | ".join(str(r) for r in group)
