"""Use cases: the only place that wires I/O (archive, files) to the pure core."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer import __version__, atomic, lockfile
from composer import profile as profile_mod
from composer.errors import ComposeError, LockError, ProfileError, StaleLock, TrustError
from composer.lockfile import Lock
from composer.model import Profile


def _say(msg: str) -> None:
    """One write per message: messages from parallel downloads never share a line."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


@dataclass
class Options:
    mirrors: tuple[str, ...] = ()
    allow_expired: bool = False
    allow_rollback: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    say: Callable[[str], None] = lambda msg: _say(msg)


def default_lock_path(profile_path: Path, name: str) -> Path:
    """``profiles/NAME.toml`` locks into ``locks/NAME.lock.toml`` beside ``profiles/``."""
    folder = profile_path.resolve().parent
    root = folder.parent if folder.name == "profiles" else folder
    return root / "locks" / f"{name}.lock.toml"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing (see ``composer.atomic``)."""
    if path.is_dir():
        raise ComposeError(f"{path} is a directory", "give the path of the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(path, data)


@dataclass(frozen=True)
class LockOutcome:
    lock: Lock
    path: Path
    changed: bool


def lock(prof: Profile, out: Path, opts: Options) -> LockOutcome:
    from composer.archive.cache import Cache, default_root
    from composer.archive.index import Archive
    from composer.archive.mirrors import Mirrors

    mirrors = Mirrors(opts.mirrors, opts.env)
    cache = Cache(default_root(opts.env))
    with Archive(mirrors, cache, f"compose/{__version__}", opts.allow_expired, say=opts.say) as archive:
        sources = archive.open_sources(prof.sources)
        if not opts.allow_rollback:
            _refuse_rollback(sources, out)
        indexes = [archive.index(sources, arch) for arch in prof.architectures]
        built = None
        if prof.python_build is not None:
            from composer.pipeline import pybuild

            built = pybuild.lock_build(prof, archive, sources, indexes, cache, opts.say,
                                       opts.env)
    from composer import resolve

    resolutions = [
        resolve.solve(ix, (*prof.include, *sorted(built.linked[ix.architecture] if built else ())),
                      prof.exclude, dict(prof.prefer), prof.recommends)
        for ix in indexes
    ]
    new = lockfile.from_resolution(prof, [s.record for s in sources], resolutions,
                                   built.linked if built else None)
    if built is not None:
        for res in resolutions:
            pybuild.check_closure(prof, res.architecture, res.packages, built)
        new = pybuild.with_build(new, built)
    if prof.policy_deny or prof.policy_allow:
        from composer.pipeline.audit import gate_lock
        from composer.pipeline.build import BuildOptions

        gate_lock(prof, new, BuildOptions(mirrors=opts.mirrors, env=opts.env, say=opts.say))
    text = lockfile.dumps(new).encode()
    try:
        old = out.read_bytes()
    except FileNotFoundError:
        old = None
    if old != text:
        write_atomic(out, text)
    return LockOutcome(new, out, old != text)


def _refuse_rollback(sources: list[Any], out: Path) -> None:
    """A Release older than the one the lock at ``out`` records for the same suite is a
    mirror that is behind, or one replaying an old Release to hold back security fixes
    (a rollback): refused, as TUF's clients refuse older metadata."""
    from composer.debian.release import parse_date

    try:
        old = lockfile.load(out)
    except LockError:
        return  # no lock, or one that cannot be read: nothing to compare with
    recorded = {(s.archive, s.suite): s for s in old.sources}
    for src in sources:
        rec = src.record
        before = recorded.get((rec.archive, rec.suite))
        if before is None:
            continue
        try:
            older = parse_date(rec.date, "Date") < parse_date(before.date, "Date")
        except ComposeError:
            continue  # an unreadable Date in the old lock proves nothing
        if older:
            raise TrustError(
                f"Release of {rec.archive} {rec.suite} at {src.base} is dated {rec.date}, "
                f"older than the {before.date} that {out} was locked from (a rollback?)",
                "the mirror is behind, or replays an old Release to hold back updates; use "
                "an up-to-date mirror, or pass --allow-rollback to lock the older Release "
                "on purpose")


def check(prof: Profile, path: Path) -> Lock:
    """The lock at ``path`` if it is fresh for ``prof``; StaleLock otherwise."""
    try:
        current = lockfile.load(path)
    except LockError as exc:
        if "no lock" in exc.message:
            raise StaleLock(f"{path}: missing: profile {prof.name} has never been locked",
                            f"run `compose lock {prof.path}`") from exc
        raise
    if current.fingerprint != prof.fingerprint():
        raise StaleLock(f"{path}: stale: profile {prof.path} has changed since it was locked",
                        f"run `compose lock {prof.path}`")
    if current.python_source is not None:
        from composer import cpython

        if current.python_source.recipe != cpython.RECIPE:
            raise StaleLock(f"{path}: stale: its CPython was built with recipe "
                            f"{current.python_source.recipe}, this compose builds with recipe "
                            f"{cpython.RECIPE}", f"run `compose lock {prof.path}`")
    return current


def load_profile(path: Path) -> Profile:
    return profile_mod.load(path)


def all_profiles(folder: Path) -> list[Path]:
    paths = profile_mod.discover(folder)
    if not paths:
        raise ProfileError(f"no profiles in {folder}/", "name a profile file, or run from the project's top folder")
    return paths


# -- reading a lock: why and graph ------------------------------------------------

ROOT_NODE = "(profile)"


def lock_graph(lk: Lock, arch: str) -> Any:
    """The locked dependency graph of one architecture as a networkx DiGraph."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_node(ROOT_NODE)
    via = {(a, p): v for a, v, p, _ in lk.providers if a == arch}
    for p in lk.shipped(arch):  # a CPython built from source as a root, ``cpython``
        g.add_node(p.name, version=p.version, excluded=False)
        if p.root:
            g.add_edge(ROOT_NODE, p.name)
        for dep in p.required_by:
            g.add_edge(dep, p.name, via=via.get((arch, p.name)))
    for a, name, wanted in lk.excluded:
        if a != arch:
            continue
        g.add_node(name, excluded=True)
        for dep in wanted:
            g.add_edge(dep, name, via=via.get((arch, name)))
    return g


def why(lk: Lock, package: str, arch: str, limit: int = 50,
        graph: Any = None) -> list[list[tuple[str, str | None]]]:
    """Every chain (up to ``limit``) from the profile's roots to ``package``; ``graph``
    is ``lock_graph(lk, arch)`` when the caller has it already."""
    import networkx as nx

    g = lock_graph(lk, arch) if graph is None else graph
    if package not in g:
        import difflib

        close = difflib.get_close_matches(package, [n for n in g if n != ROOT_NODE], n=3)
        raise LockError(f"{package} is not in the {arch} lock of {lk.profile}",
                        f"did you mean {' or '.join(close)}?" if close else "see `compose graph`")
    chains = []
    for path in nx.all_simple_paths(g, ROOT_NODE, package):
        chains.append([(n, g.edges[u, n].get("via")) for u, n in itertools.pairwise(path)])
        if len(chains) >= limit:
            break
    chains.sort(key=lambda c: (len(c), [n for n, _ in c]))
    return chains


def graph_dot(lk: Lock) -> str:
    lines = [f'digraph "{lk.profile}" {{', "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for arch in lk.architectures:
        g = lock_graph(lk, arch)
        lines.append(f'  subgraph "cluster_{arch}" {{')
        lines.append(f'    label="{arch}";')
        for n, d in sorted(g.nodes(data=True)):
            label = n if n == ROOT_NODE else f"{n}\\n{d.get('version', 'excluded')}"
            style = ", style=dashed" if d.get("excluded") else ""
            lines.append(f'    "{arch}/{n}" [label="{label}"{style}];')
        for u, v, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1])):
            lab = f' [label="{d["via"]}"]' if d.get("via") else ""
            lines.append(f'    "{arch}/{u}" -> "{arch}/{v}"{lab};')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_json(lk: Lock) -> dict[str, Any]:
    out: dict[str, Any] = {"profile": lk.profile, "architectures": {}}
    for arch in lk.architectures:
        g = lock_graph(lk, arch)
        out["architectures"][arch] = {
            "nodes": [{"name": n, **d} for n, d in sorted(g.nodes(data=True)) if n != ROOT_NODE],
            "roots": sorted(v for _, v in g.out_edges(ROOT_NODE)),
            "edges": [{"from": u, "to": v, **({"via": d["via"]} if d.get("via") else {})}
                      for u, v, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1]))
                      if u != ROOT_NODE],
        }
    return out
