"""The dependency closure, with apt's semantics. Pure: an ``Index`` in, a ``Resolution`` out.

What apt does for ``apt-get install --no-install-recommends ROOTS`` on an empty system
(its ``MarkInstall`` and, where that leaves a conflict, its problem resolver), and so
what this does:

* Every root is marked first; then each root's dependencies are followed in order,
  depth-first: Pre-Depends before Depends, each group fully followed before the next.
* An OR-group already satisfied by a marked package needs nothing. Otherwise its
  alternatives are tried in order, each one's targets being the real package's candidate
  and then the providers of that name (ranked by ``provider_order``, or as ``prefer``
  says). A target that conflicts with a marked package (either way) is passed over, and
  so is one whose own dependencies cannot be satisfied: its marks are rolled back.
* A target that is needed but conflicts with packages chosen earlier for some other
  package's OR-group replaces them: they are unmarked, the groups they satisfied are
  satisfied again, and what only they needed is swept away, as apt ends up doing.
* The candidate of a name is apt's with default pins: the highest pin priority (500, or
  100/1 for NotAutomatic suites), then the highest version across all sources; apt does
  not fall back to an older version, so neither does this.
* An excluded package satisfies its dependents when its candidate would, is not followed
  and is not shipped.
* Essential and Priority never add a package on their own. Conflicts and Breaks are
  checked again on the result.

The walk keeps its edges in plain dicts (importing networkx costs 0.1 s, a third of a
warm lock); ``graph()`` turns a walk into a networkx DiGraph, which explains failures
(the shortest chain from a root) and lets the tests check every answer's shape.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from composer.debian import version
from composer.debian.packages import Index
from composer.debian.relation import OrGroup, Relation, format_group
from composer.errors import ResolveError
from composer.model import Edge, PackageRecord, Resolution, wanted

ROOT = "<request>"
# apt's Priority enum; a missing Priority is 0 and, like apt, ranks first.
_PRIORITY = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}
_MISSING = object()


def matches_real(rec: PackageRecord, rel: Relation, arch: str) -> bool:
    if rel.arch is not None:
        if rel.arch == "any":
            if rec.multi_arch != "allowed":
                return False
        elif rel.arch not in ("native", arch) and rec.architecture != rel.arch:
            return False
    return rel.op is None or version.satisfies(rec.version, rel.op, rel.version or "")


def matches_provide(rec: PackageRecord, provide: Relation, rel: Relation) -> bool:
    if provide.name != rel.name:
        return False
    if rel.arch == "any" and rec.multi_arch != "allowed":
        return False
    if rel.op is None:
        return True
    return provide.version is not None and version.satisfies(provide.version, rel.op, rel.version or "")


def provider_order(rec: PackageRecord) -> tuple[int, int, int]:
    """Sort key, best first, as apt's CompareProviders ranks the providers of a virtual
    name: Essential, then Protected, then Priority (a missing one first, then required
    down to extra). Ties go to the package apt's cache created last
    (``Index.creation_order``)."""
    return (-int(rec.essential), -int(rec.protected), _PRIORITY.get(rec.priority, 0))


def graph(edges: dict[tuple[str, str], dict[str, str | None]], nodes: Iterable[str] = ()) -> Any:
    """A networkx DiGraph of a walk: ROOT -> requested packages -> their dependencies."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_node(ROOT)
    g.add_nodes_from(nodes)
    for (u, v), attrs in edges.items():
        g.add_edge(u, v, **attrs)
    return g


@dataclass
class _Failure:
    """Why a package could not be installed (the first reason found wins)."""

    package: PackageRecord
    kind: str
    group: OrGroup
    chain: list[str]
    conflicts: list[str] = field(default_factory=list)


@dataclass
class _State:
    selected: dict[str, PackageRecord] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)
    excluded: dict[str, list[str]] = field(default_factory=dict)
    choices: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    roots: set[str] = field(default_factory=set)
    trail: list[tuple[str, Any, Any]] = field(default_factory=list)
    failure: _Failure | None = None
    path: list[str] = field(default_factory=list)
    """The packages being installed, root first: the chain to report on failure."""
    replacing: bool = False

    def set(self, table: str, key: Any, value: Any) -> None:
        d = getattr(self, table)
        self.trail.append((table, key, d.get(key, _MISSING)))
        d[key] = value

    def delete(self, table: str, key: Any) -> None:
        d = getattr(self, table)
        if key in d:
            self.trail.append((table, key, d.pop(key)))

    def rollback(self, mark: int) -> None:
        while len(self.trail) > mark:
            table, key, old = self.trail.pop()
            d = getattr(self, table)
            if old is _MISSING:
                d.pop(key, None)
            else:
                d[key] = old


class Solver:
    def __init__(self, index: Index, exclude: Iterable[str] = (), prefer: dict[str, str] | None = None,
                 recommends: bool = False) -> None:
        self.index = index
        self.arch = index.architecture
        self.exclude = frozenset(exclude)
        self.prefer = dict(prefer or {})
        self.recommends = recommends

    # -- queries -----------------------------------------------------------------

    def _providers(self, name: str) -> list[PackageRecord]:
        out = []
        for n in self.index.provider_names(name):
            if n != name:
                p = self.index.candidate(n)
                if p is not None:
                    out.append(p)
        return out

    def _targets(self, rel: Relation) -> list[tuple[PackageRecord, str | None]]:
        """Candidates that can satisfy one alternative, best first: (record, virtual name)."""
        out: list[tuple[PackageRecord, str | None]] = []
        cand = self.index.candidate(rel.name)
        if cand is not None and matches_real(cand, rel, self.arch):
            out.append((cand, None))
        providers = [p for p in self._providers(rel.name)
                     if any(matches_provide(p, prov, rel) for prov in p.provides)]
        preferred = self.prefer.get(rel.name)
        ranked = [(p.name != preferred, *provider_order(p)) for p in providers]
        if len(set(ranked)) < len(ranked):  # a tie: apt's creation order decides
            providers.sort(key=lambda p: self.index.creation_order(p.name), reverse=True)
        providers.sort(key=lambda p: (p.name != preferred, *provider_order(p)))
        out += [(p, rel.name) for p in providers]
        return out

    def _satisfied(self, st: _State, group: OrGroup) -> tuple[str, str | None] | None:
        for rel in group:
            rec = st.selected.get(rel.name)
            if rec is not None and matches_real(rec, rel, self.arch):
                return rel.name, None
            if rel.name in st.excluded:
                cand = self.index.candidate(rel.name)
                if cand is not None and matches_real(cand, rel, self.arch):
                    return rel.name, None
            for p in self._providers(rel.name):
                if st.selected.get(p.name) is p and any(matches_provide(p, prov, rel) for prov in p.provides):
                    return p.name, rel.name
        return None

    def _hits(self, st: _State, rec: PackageRecord, rel: Relation) -> list[str]:
        """Marked packages (other than ``rec``) that a Conflicts/Breaks relation of ``rec`` hits."""
        hits = []
        other = st.selected.get(rel.name)
        if other is not None and other.name != rec.name and matches_real(other, rel, self.arch):
            hits.append(other.name)
        for p in self._providers(rel.name):
            if p.name != rec.name and st.selected.get(p.name) is p and \
                    any(matches_provide(p, prov, rel) for prov in p.provides):
                hits.append(p.name)
        return hits

    def _clash_details(self, st: _State, rec: PackageRecord) -> list[tuple[str, str]]:
        """(marked package, explanation) for each conflict between ``rec`` and the marked set."""
        found: list[tuple[str, str]] = []
        for kind, groups in (("Conflicts", rec.conflicts), ("Breaks", rec.breaks)):
            for group in groups:
                for rel in group:
                    found += [(h, f"{rec.name} {rec.version} {kind}: {rel}, and {h} is selected")
                              for h in self._hits(st, rec, rel)]
        for other in st.selected.values():
            if other.name == rec.name:
                continue
            for kind, groups in (("Conflicts", other.conflicts), ("Breaks", other.breaks)):
                for group in groups:
                    for rel in group:
                        if (rel.name == rec.name and matches_real(rec, rel, self.arch)) or any(
                                matches_provide(rec, prov, rel) for prov in rec.provides):
                            found.append((other.name, f"{other.name} {other.version} {kind}: {rel}, "
                                                      f"and {rec.name} is selected"))
        return found

    def _clashes(self, st: _State, rec: PackageRecord) -> list[str]:
        """Marked packages that ``rec`` conflicts with, or that conflict with it."""
        return sorted({name for name, _ in self._clash_details(st, rec)})

    # -- the walk ----------------------------------------------------------------

    def _groups(self, rec: PackageRecord) -> list[tuple[str, OrGroup]]:
        groups = [("Pre-Depends", g) for g in rec.pre_depends] + [("Depends", g) for g in rec.depends]
        if self.recommends:
            groups += [("Recommends", g) for g in rec.recommends]
        return groups

    def _link(self, st: _State, dependent: str, target: str, group: OrGroup, kind: str, via: str | None) -> None:
        if (dependent, target) not in st.edges:
            st.set("edges", (dependent, target), {"relation": format_group(group), "kind": kind, "via": via})
        if via is not None:
            st.set("choices", via, (target, []))

    def _install(self, st: _State, rec: PackageRecord) -> bool:
        """Mark ``rec`` and follow its dependencies; False (marks kept) if one fails."""
        if st.selected.get(rec.name) is rec:
            return True
        st.set("selected", rec.name, rec)
        st.path.append(rec.name)
        try:
            return all(self._satisfy(st, rec, kind, group) for kind, group in self._groups(rec))
        finally:
            st.path.pop()

    def _satisfy(self, st: _State, rec: PackageRecord, kind: str, group: OrGroup) -> bool:
        sat = self._satisfied(st, group)
        if sat is not None:
            self._link(st, rec.name, sat[0], group, kind, sat[1])
            return True
        blocked: list[tuple[PackageRecord, str | None, list[str]]] = []
        for rel in group:
            for target, via in self._targets(rel):
                if target.name in self.exclude:
                    self._link(st, rec.name, target.name, group, kind, via)
                    if target.name not in st.excluded:
                        st.set("excluded", target.name, [])
                    return True
                clashes = self._clashes(st, target)
                if clashes:
                    blocked.append((target, via, clashes))
                    continue
                mark = len(st.trail)
                if self._install(st, target):
                    self._link(st, rec.name, target.name, group, kind, via)
                    return True
                st.rollback(mark)
        for target, via, clashes in blocked:
            if self._replace(st, rec, kind, group, target, via, clashes):
                return True
        if kind == "Recommends":
            return True
        if st.failure is None:
            details = []
            for t, _, _ in blocked:
                for other, detail in self._clash_details(st, t):
                    details += [detail,
                                f"  {t.name} needed through: {' -> '.join([*st.path, t.name])}",
                                f"  {other} needed through: {' -> '.join(self._chain(st, other))}"]
            st.failure = _Failure(rec, kind, group, list(st.path), details)
        return False

    def _replace(self, st: _State, rec: PackageRecord, kind: str, group: OrGroup,
                 target: PackageRecord, via: str | None, clashes: list[str]) -> bool:
        """Install ``target`` in place of auto-chosen packages it conflicts with, as apt's
        problem resolver ends up doing; False (rolled back) if that cannot work. Only a
        package every dependent of which had other alternatives can be replaced."""
        if st.replacing or any(c in st.roots for c in clashes):
            return False
        for c in clashes:
            if any(v == c and " | " not in (attrs["relation"] or "") for (_, v), attrs in st.edges.items()):
                return False
        mark = len(st.trail)
        dependents: list[tuple[str, str, str]] = []
        for c in clashes:
            st.delete("selected", c)
            for (u, v), attrs in list(st.edges.items()):
                if v == c or u == c:
                    st.delete("edges", (u, v))
                    if v == c and u in st.selected:
                        dependents.append((u, attrs["kind"] or "Depends", attrs["relation"] or ""))
        st.replacing = True
        try:
            if self._install(st, target):
                self._link(st, rec.name, target.name, group, kind, via)
                ok = True
                for u, k, _ in dependents:
                    dep = st.selected.get(u)
                    if dep is None:
                        continue
                    for gkind, g in self._groups(dep):
                        if gkind == k and not self._satisfy(st, dep, gkind, g):
                            ok = False
                if ok and not any(self._clashes(st, st.selected[n]) for n in list(st.selected)):
                    return True
        finally:
            st.replacing = False
        st.rollback(mark)
        return False

    def _sweep(self, st: _State) -> None:
        """Drop what nothing reachable from a root needs any more (apt's sweep of new,
        automatically installed packages)."""
        children: dict[str, list[str]] = {}
        for (u, v) in st.edges:
            children.setdefault(u, []).append(v)
        seen: set[str] = set()
        todo = [ROOT]
        while todo:
            n = todo.pop()
            for c in children.get(n, ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        for name in [n for n in st.selected if n not in seen]:
            del st.selected[name]
        for name in [n for n in st.excluded if n not in seen]:
            del st.excluded[name]
        for key in [k for k in st.edges if k[0] != ROOT and (k[0] not in seen or k[1] not in seen)]:
            del st.edges[key]
        for via in [v for v, (p, _) in st.choices.items() if p not in seen]:
            del st.choices[via]

    # -- errors ------------------------------------------------------------------

    def _chain(self, st: _State, name: str) -> list[str]:
        """The shortest chain of packages from a root to ``name`` in the walk so far."""
        import networkx as nx

        try:
            return list(nx.shortest_path(graph(st.edges), ROOT, name))[1:]
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return [name]

    def _unsatisfiable(self, st: _State, failure: _Failure, root: str) -> ResolveError:
        rec, kind, group = failure.package, failure.kind, failure.group
        lines = []
        for rel in group:
            versions = self.index.versions(rel.name)
            providers = self.index.provider_names(rel.name)
            if versions:
                lines.append(f"  {rel.name}: available {', '.join(v.version for v in versions)}"
                             + (f"; the candidate is {versions[0].version}" if rel.op else ""))
            elif providers:
                lines.append(f"  {rel.name}: virtual, provided by {', '.join(providers)}"
                             + (" (none with a matching version)" if rel.op else ""))
            elif self.index.has_name(rel.name):
                lines.append(f"  {rel.name}: exists only for other architectures than {self.arch}")
            else:
                lines.append(f"  {rel.name}: not in any source of the profile")
        lines += [f"  {detail}" for detail in dict.fromkeys(failure.conflicts)]
        chain = " -> ".join(failure.chain or [root, rec.name])
        return ResolveError(
            f"cannot satisfy {rec.name} {rec.version} {kind}: {format_group(group)}\n"
            f"  needed through: {chain}\n" + "\n".join(lines),
            "add the source that carries it, exclude the package that needs it, or "
            "check the profile's suites",
        )

    def _root(self, item: str) -> PackageRecord:
        """The package a profile's ``include`` item names: ``name`` or ``name (op v)``,
        where the constraint is a floor (or pin) the candidate must meet, never a reason
        to pick another version than apt would."""
        rel = wanted(item)
        name = rel.name
        cand = self.index.candidate(name)
        if cand is not None and rel.op is not None and not matches_real(cand, rel, self.arch):
            others = [r.version for r in self.index.versions(name)[1:]]
            raise ResolveError(
                f"{item} cannot be met for {self.arch}: the candidate is {cand.name} "
                f"{cand.version}" + (f" (other versions in the sources: {', '.join(others)})"
                                     if others else ""),
                f"loosen the constraint in [packages] include, or add the suite that carries "
                f"the version wanted (such as {name}'s -updates or -security)")
        if cand is not None:
            return cand
        if rel.op is not None:
            raise ResolveError(f"{item}: {name} is not a real package for {self.arch}",
                               "a version constraint applies to a real package; name one")
        providers = self._providers(name)
        if name in self.prefer:
            providers = [p for p in providers if p.name == self.prefer[name]] or providers
        if len(providers) == 1:
            return providers[0]
        if providers:
            names = sorted(p.name for p in providers)
            raise ResolveError(
                f"{name} is a virtual package provided by {', '.join(names)}",
                f"include one of them instead, or add prefer = {{ {name} = \"{names[0]}\" }} to [packages]",
            )
        close = difflib.get_close_matches(name, sorted(self.index.all_names()), n=3)
        raise ResolveError(
            f"package {name} is not in any source of the profile for {self.arch}",
            (f"did you mean {' or '.join(close)}?" if close else
             "check the name with `apt-cache search`, or add the suite that carries it"),
        )

    # -- the answer --------------------------------------------------------------

    def solve(self, roots: Iterable[str]) -> Resolution:
        roots = tuple(roots)
        st = _State()
        recs = []
        for item in roots:
            rec = self._root(item)
            name = wanted(item).name
            st.selected[rec.name] = rec
            st.roots.add(rec.name)
            st.edges[(ROOT, rec.name)] = {"relation": item, "kind": "request",
                                          "via": name if rec.name != name else None}
            recs.append(rec)
        for rec in recs:
            st.failure = None
            st.path = [rec.name]
            ok = all(self._satisfy(st, rec, kind, group) for kind, group in self._groups(rec))
            if not ok:
                assert st.failure is not None
                raise self._unsatisfiable(st, st.failure, rec.name)
        self._sweep(st)
        self._check_conflicts(st)
        for via, (provider, _) in list(st.choices.items()):
            users = sorted({u for (u, v), d in st.edges.items() if v == provider and d["via"] == via})
            st.choices[via] = (provider, users)
        for name in st.excluded:
            st.excluded[name] = sorted(u for (u, v) in st.edges if v == name)
        edges = tuple(sorted(
            (Edge(u, v, d["relation"] or "", d["kind"] or "", d["via"]) for (u, v), d in st.edges.items()
             if u != ROOT),
            key=lambda e: (e.dependent, e.target, e.kind, e.relation),
        ))
        return Resolution(
            architecture=self.arch,
            roots=tuple(r.name for r in recs),
            packages=tuple(sorted(st.selected.values(), key=lambda r: r.name)),
            edges=edges,
            excluded=tuple(sorted((k, tuple(v)) for k, v in st.excluded.items())),
            choices=tuple(sorted((k, p, tuple(w)) for k, (p, w) in st.choices.items())),
        )

    def _check_conflicts(self, st: _State) -> None:
        for rec in st.selected.values():
            for kind, groups in (("Conflicts", rec.conflicts), ("Breaks", rec.breaks)):
                for group in groups:
                    for rel in group:
                        hits = self._hits(st, rec, rel)
                        if hits:
                            raise self._conflict(st, rec, kind, rel, hits[0])

    def _conflict(self, st: _State, rec: PackageRecord, kind: str, rel: Relation, other: str) -> ResolveError:
        return ResolveError(
            f"{rec.name} {rec.version} {kind}: {rel}, and {other} is selected\n"
            f"  {rec.name} needed through: {' -> '.join(self._chain(st, rec.name))}\n"
            f"  {other} needed through: {' -> '.join(self._chain(st, other))}",
            "exclude one of the two, or choose another provider with [packages] prefer",
        )


def solve(index: Index, roots: Iterable[str], exclude: Iterable[str] = (),
          prefer: dict[str, str] | None = None, recommends: bool = False) -> Resolution:
    return Solver(index, exclude, prefer, recommends).solve(roots)


def cross(build_index: Index, host_index: Index, build_roots: Iterable[str],
          host_roots: Iterable[str]) -> tuple[Resolution, Resolution]:
    """A cross build root, as apt installs ``BUILD_ROOTS HOST_ROOTS:HOST`` on a machine of
    the build architecture with the host one added (``dpkg --add-architecture``): the
    build machine's tools and the host architecture's libraries.

    A host package's dependency on a ``Multi-Arch: foreign`` package is met by the build
    architecture's instance (a tool, such as ``ncurses-bin`` for ``libncurses-dev``, or
    an Architecture: all package), and so is one on ``NAME:any`` of a ``Multi-Arch:
    allowed`` package (``perl:any``): those are excluded from the host's walk, taken as
    roots of the build's, and solved with it; the build's instance must then meet each
    such dependency's version too. As for apt, an Architecture: all package that is not
    ``Multi-Arch: foreign`` is the build architecture's and meets no host package's
    dependency; a name both walks choose must be ``Multi-Arch: same``, of one version
    (both instances are installed: ``libc6``). Returns (build, host) resolutions."""
    host_roots = tuple(host_roots)
    foreign: set[str] = set()
    while True:
        host = solve(host_index, host_roots, exclude=foreign)
        plain = {*host_roots, *(r.name for p in host.packages for g in (*p.pre_depends, *p.depends)
                                for r in g if r.arch != "any")}
        more = {p.name for p in host.packages if p.multi_arch == "foreign"
                or (p.multi_arch == "allowed" and p.name not in plain)}
        if not more:
            break
        foreign |= more
    arch, other = host_index.architecture, build_index.architecture
    for p in host.packages:
        if p.architecture == "all":
            wanted_by = sorted({e.dependent for e in host.edges if e.target == p.name})
            raise ResolveError(
                f"the cross build root's {arch} packages ({', '.join(wanted_by)}) need "
                f"{p.name}, which is Architecture: all without Multi-Arch: foreign: apt "
                f"installs it as {other}'s, and it meets no {arch} package's dependency",
                "Debian marks such packages Multi-Arch: foreign; report it to the package")
    needed = sorted({name for name, _ in host.excluded if name in foreign})
    build = solve(build_index, (*build_roots, *needed))
    _check_foreign(host, build, arch, other)
    mine = {p.name: p for p in build.packages}
    for p in host.packages:
        other_p = mine.get(p.name)
        if other_p is not None and not (p.multi_arch == other_p.multi_arch == "same"
                                        and p.version == other_p.version):
            raise ResolveError(
                f"the cross build root needs {p.name} of both {other} ({other_p.version}) and "
                f"{arch} ({p.version}), which cannot be installed together",
                f"only Multi-Arch: same packages of one version can be; this is "
                f"Multi-Arch: {p.multi_arch or 'no'}")
    return build, host


def _check_foreign(host: Resolution, build: Resolution, arch: str, other: str) -> None:
    """Each dependency of a host package is met by the host's walk, or by a package of
    the build's that may meet another architecture's dependency (``Multi-Arch:
    foreign``, or ``allowed`` for ``NAME:any``), in a version the relation accepts: the
    two architectures' packages may be out of step in the archive."""
    def meets(rec: PackageRecord, rel: Relation, foreign_only: bool) -> bool:
        if foreign_only and not (rec.multi_arch == "foreign"
                                 or (rec.multi_arch == "allowed" and rel.arch == "any")):
            return False
        if rec.name == rel.name:
            return rel.op is None or version.satisfies(rec.version, rel.op, rel.version or "")
        return any(matches_provide(rec, p, rel) for p in rec.provides)

    for p in host.packages:
        for group in (*p.pre_depends, *p.depends):
            if any(meets(r, rel, False) for rel in group for r in host.packages) or any(
                    meets(r, rel, True) for rel in group for r in build.packages):
                continue
            found = {r.name: r.version for r in build.packages if any(r.name == rel.name
                                                                      for rel in group)}
            has = (f"has only {', '.join(f'{n} {v}' for n, v in sorted(found.items()))}"
                   if found else "has no package that meets it")
            raise ResolveError(
                f"{p.name}:{arch} {p.version} depends on {format_group(group)}, and the "
                f"{other} side of the cross build root {has}",
                f"the archive's {arch} and {other} packages are out of step (one built "
                "later than the other): lock again later")
