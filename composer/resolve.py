"""The dependency closure, with apt's semantics. Pure: an ``Index`` in, a ``Resolution`` out.

What apt does for ``apt-get install --no-install-recommends ROOTS`` on an empty system,
and so what this does:

* Every root is marked first, then each root's dependencies are followed in order:
  for one package, a target is chosen and marked for each of its unsatisfied groups
  (Pre-Depends before Depends) before any of those targets is followed, depth-first.
* An OR-group already satisfied by a marked package (or an excluded one) needs nothing.
  Otherwise the first alternative whose candidate satisfies it is taken; a virtual name
  goes to the provider apt would pick (``provider_order``), unless the profile says
  ``prefer``.
* The candidate of a name is apt's with default pins: the highest pin priority (500, or
  100/1 for NotAutomatic suites), then the highest version across all sources; apt does
  not fall back to an older version, so neither does this.
* An excluded package satisfies its dependents, is not followed and not shipped.
* Essential and Priority never add a package on their own. Conflicts and Breaks are
  checked on the result.

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
from composer.model import Edge, PackageRecord, Resolution

ROOT = "<request>"
_PRIORITY = {"required": 5, "important": 4, "standard": 3, "optional": 2, "extra": 1}


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
    if rel.arch == "any" and rec.multi_arch not in ("foreign", "allowed"):
        return False
    if rel.op is None:
        return True
    return provide.version is not None and version.satisfies(provide.version, rel.op, rel.version or "")


def provider_order(rec: PackageRecord) -> tuple[int, int, int, str]:
    """Sort key, best first, as apt's CompareProviders ranks the providers of a virtual name."""
    return (-int(rec.essential), 0, -_PRIORITY.get(rec.priority, 0), rec.name)


@dataclass
class _State:
    selected: dict[str, PackageRecord] = field(default_factory=dict)
    provides: dict[str, list[tuple[PackageRecord, Relation]]] = field(default_factory=dict)
    excluded: dict[str, list[str]] = field(default_factory=dict)
    choices: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)


def graph(edges: dict[tuple[str, str], dict[str, str | None]], nodes: Iterable[str] = ()) -> Any:
    """A networkx DiGraph of a walk: ROOT -> requested packages -> their dependencies."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_node(ROOT)
    g.add_nodes_from(nodes)
    for (u, v), attrs in edges.items():
        g.add_edge(u, v, **attrs)
    return g


class Solver:
    def __init__(self, index: Index, exclude: Iterable[str] = (), prefer: dict[str, str] | None = None,
                 recommends: bool = False) -> None:
        self.index = index
        self.arch = index.architecture
        self.exclude = frozenset(exclude)
        self.prefer = dict(prefer or {})
        self.recommends = recommends

    # -- queries -----------------------------------------------------------------

    def _targets(self, rel: Relation) -> list[tuple[PackageRecord, str | None]]:
        """Candidates that can satisfy one alternative, best first: (record, virtual name)."""
        out: list[tuple[PackageRecord, str | None]] = []
        cand = self.index.candidate(rel.name)
        if cand is not None and matches_real(cand, rel, self.arch):
            out.append((cand, None))
        providers: list[PackageRecord] = []
        for name in self.index.provider_names(rel.name):
            if name == rel.name:
                continue
            p = self.index.candidate(name)
            if p is not None and any(matches_provide(p, prov, rel) for prov in p.provides):
                providers.append(p)
        preferred = self.prefer.get(rel.name)
        providers.sort(key=lambda p: (p.name != preferred, *provider_order(p)))
        out += [(p, rel.name) for p in providers]
        return out

    def _satisfied(self, st: _State, group: OrGroup) -> tuple[str, str | None] | None:
        for rel in group:
            rec = st.selected.get(rel.name)
            if rec is not None and matches_real(rec, rel, self.arch):
                return rel.name, None
            if rel.name in st.excluded:
                return rel.name, None
            for p, prov in st.provides.get(rel.name, ()):
                if matches_provide(p, prov, rel):
                    return p.name, rel.name
        return None

    # -- the walk ----------------------------------------------------------------

    def _select(self, st: _State, rec: PackageRecord) -> None:
        st.selected[rec.name] = rec
        for prov in rec.provides:
            st.provides.setdefault(prov.name, []).append((rec, prov))

    def _edge(self, st: _State, dependent: str, target: str, group: OrGroup, kind: str, via: str | None) -> None:
        st.edges.setdefault((dependent, target), {"relation": format_group(group), "kind": kind, "via": via})

    def _groups(self, rec: PackageRecord) -> list[tuple[str, OrGroup]]:
        groups = [("Pre-Depends", g) for g in rec.pre_depends] + [("Depends", g) for g in rec.depends]
        if self.recommends:
            groups += [("Recommends", g) for g in rec.recommends]
        return groups

    def _expand(self, st: _State, rec: PackageRecord) -> None:
        # Like apt's MarkInstall: first choose and mark a target for every unsatisfied
        # group of this package, then follow each newly marked target in turn.
        marked: list[PackageRecord] = []
        for kind, group in self._groups(rec):
            sat = self._satisfied(st, group)
            if sat is not None:
                self._edge(st, rec.name, sat[0], group, kind, sat[1])
                continue
            pick = self._choose(st, rec, kind, group)
            if pick is None:
                continue
            target, via = pick
            self._edge(st, rec.name, target.name, group, kind, via)
            if via is not None:
                st.choices[via] = (target.name, [])
            if target.name in self.exclude:
                st.excluded.setdefault(target.name, [])
                continue
            self._select(st, target)
            marked.append(target)
        for target in marked:
            self._expand(st, target)

    def _choose(self, st: _State, rec: PackageRecord, kind: str,
                group: OrGroup) -> tuple[PackageRecord, str | None] | None:
        for rel in group:
            targets = self._targets(rel)
            if targets:
                return targets[0]
        if kind == "Recommends":
            return None
        raise self._unsatisfiable(st, rec, kind, group)

    # -- errors ------------------------------------------------------------------

    def _chain(self, st: _State, name: str) -> list[str]:
        """The shortest chain of packages from a root to ``name`` in the walk so far."""
        import networkx as nx

        try:
            return list(nx.shortest_path(graph(st.edges), ROOT, name))[1:]
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return [name]

    def _unsatisfiable(self, st: _State, rec: PackageRecord, kind: str, group: OrGroup) -> ResolveError:
        lines = []
        for rel in group:
            versions = self.index.versions(rel.name)
            providers = self.index.provider_names(rel.name)
            if versions:
                lines.append(f"  {rel.name}: available {', '.join(v.version for v in versions)}"
                             + (f"; the candidate is {versions[0].version}" if rel.op else ""))
            elif providers:
                lines.append(f"  {rel.name}: virtual, provided by {', '.join(providers)} "
                             "(none with a matching version)")
            else:
                lines.append(f"  {rel.name}: not in any source of the profile")
        chain = " -> ".join(self._chain(st, rec.name))
        return ResolveError(
            f"cannot satisfy {rec.name} {rec.version} {kind}: {format_group(group)}\n"
            f"  needed through: {chain}\n" + "\n".join(lines),
            "add the source that carries it, exclude the package that needs it, or "
            "check the profile's suites",
        )

    def _root(self, name: str) -> PackageRecord:
        cand = self.index.candidate(name)
        if cand is not None:
            return cand
        providers = [p for p in (self.index.candidate(n) for n in self.index.provider_names(name)) if p]
        if name in self.prefer:
            providers = [p for p in providers if p.name == self.prefer[name]] or providers
        if len(providers) == 1:
            return providers[0]
        if providers:
            raise ResolveError(
                f"{name} is a virtual package provided by {', '.join(sorted(p.name for p in providers))}",
                f"include one of them instead, or add prefer = {{ {name} = \"{sorted(p.name for p in providers)[0]}\" }} to [packages]",
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
        for name in roots:
            rec = self._root(name)
            self._select(st, rec)
            st.edges[(ROOT, rec.name)] = {"relation": name, "kind": "request",
                                          "via": name if rec.name != name else None}
            recs.append(rec)
        for rec in recs:
            self._expand(st, rec)
        self._check_conflicts(st)
        for via, (provider, _) in list(st.choices.items()):
            wanted = sorted({u for (u, v), d in st.edges.items() if v == provider and d["via"] == via})
            st.choices[via] = (provider, wanted)
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
                        other = st.selected.get(rel.name)
                        if other is not None and other.name != rec.name and matches_real(other, rel, self.arch):
                            raise self._conflict(st, rec, kind, rel, other.name)
                        for p, prov in st.provides.get(rel.name, ()):
                            if p.name != rec.name and matches_provide(p, prov, rel):
                                raise self._conflict(st, rec, kind, rel, p.name)

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
