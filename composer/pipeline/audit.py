"""``compose audit``: the licences that ship, what links the GPL-family ones, SBOMs, and
the profile's policy gate (which ``lock`` and ``build`` apply too).

An audit looks at the image exactly as ``build`` makes it from the lock: the same tree,
after stripping, so that licences are attributed to what actually ships.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from composer.audit.evaluate import evaluate
from composer.audit.policy import PolicyError
from composer.audit.report import AuditReport
from composer.image import ldcache
from composer.lockfile import Lock
from composer.model import Profile
from composer.pipeline import lock_graph, why
from composer.pipeline.build import (
    BuildOptions,
    _run_program,
    arch_image,
    image_digest,
    interpreter,
    prepare,
)
from composer.pipeline.tree import BuiltTree, assemble_tree, read_debs


def _why(lk: Lock, arch: str) -> Callable[[str], tuple[tuple[str, ...], ...]]:
    graph = lock_graph(lk, arch)  # once, for every package the policy asks about

    def chains(name: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(n for n, _ in chain)
                     for chain in why(lk, name, arch, limit=5, graph=graph))
    return chains


def evaluate_tree(prof: Profile, lk: Lock, arch: str, built: BuiltTree, digest: str,
                  epoch: int) -> AuditReport:
    entries = built.entries
    spec = ldcache.ARCHES.get(arch)
    default_dirs = spec.system_dirs if spec is not None else ()
    # The cache the image ships (none without glibc), as its ld.so reads it.
    shipped = entries.get("etc/ld.so.cache")
    cache = [(e.key.decode(), e.path.decode())
             for e in (ldcache.parse(shipped.data)[0] if shipped is not None else [])
             if e.hwcaps is None]
    sources = tuple((s.archive, s.suite, s.release_sha256) for s in lk.sources)
    return evaluate(prof.name, arch, digest, epoch, lk.shipped(arch), entries, cache,
                    default_dirs, prof.policy_deny, prof.policy_allow,
                    _why(lk, arch), sources)


def enforce(report: AuditReport) -> None:
    """Stop when a denied licence ships, naming every such package: the licence, the
    file that carries it, and how a root of the profile brings the package in."""
    denied = report.denied
    if not denied:
        return
    lines = []
    for v in denied:
        chain = " -> ".join(v.why[0]) if v.why else v.package
        if v.why and len(v.why[0]) == 1:
            chain = "[packages] include"
        source = f"licence from /{v.file}" if v.file else "no copyright file"
        lines.append(f"  {v.package}: {v.licence} (denied by {v.rule!r}); {source}; "
                     f"brought in by {chain}")
    names = sorted({v.package for v in denied})
    raise PolicyError(
        f"[{report.architecture}] {len(names)} package(s) ship licences the policy denies:\n"
        + "\n".join(lines),
        f"exclude {', '.join(names)} from the profile, or add each to [policy] "
        "allow-packages with a reason")


def gate_lock(prof: Profile, lk: Lock, opts: BuildOptions) -> None:
    """The policy applied to a lock before it is written: its .debs are fetched and the
    tree assembled (without byte-compiling or busybox's applet links, which licences do
    not depend on: nothing of the image runs; no layer is made)."""
    quick = dataclasses.replace(prof, python_compile=False, busybox_applets=False)
    prep = prepare(quick, Path("(new lock)"), opts, lock=lk)
    for arch in prep.archs:
        debs = read_debs(lk.for_arch(arch), prep.paths, prep.cache, opts.workers)
        interp = interpreter(prof, prep, arch, opts).entries if lk.python_source else None
        built = assemble_tree(quick, lk, arch, debs, prep.epoch, prep.cache, _run_program,
                              opts.workers, interpreter=interp)
        enforce(evaluate_tree(quick, lk, arch, built, "", prep.epoch))


@dataclass(frozen=True)
class AuditOutcome:
    reports: tuple[AuditReport, ...]
    digest: str


def audit(prof: Profile, lock_path: Path, opts: BuildOptions) -> AuditOutcome:
    """Every architecture's report; the image digest is the one ``build`` prints."""
    prep = prepare(prof, lock_path, opts)
    reports = []
    manifests = []
    for arch in prep.archs:
        image = arch_image(prof, prep, arch, opts, keep_tree=True)
        assert image.built is not None
        manifests.append(image.manifest)
        reports.append(evaluate_tree(prof, prep.lock, arch, image.built,
                                     image.manifest.digest, prep.epoch))
    return AuditOutcome(tuple(reports), image_digest(manifests))
