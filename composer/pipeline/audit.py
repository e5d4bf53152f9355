"""``compose audit``: the licences that ship, what links the GPL-family ones, SBOMs, and
the profile's policy gate (which ``lock`` and ``build`` apply too).

An audit looks at the image exactly as ``build`` makes it from the lock: the same tree,
after stripping, so that licences are attributed to what actually ships.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from composer.audit.evaluate import evaluate
from composer.audit.policy import PolicyError
from composer.audit.report import AuditReport
from composer.image import ldcache
from composer.lockfile import Lock
from composer.model import Profile
from composer.pipeline import why
from composer.pipeline.build import BuildOptions, _image_digest, arch_image, prepare
from composer.pipeline.tree import BuiltTree


def _why(lk: Lock, arch: str) -> object:
    def chains(name: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(n for n, _ in chain) for chain in why(lk, name, arch, limit=5))
    return chains


def evaluate_tree(prof: Profile, lk: Lock, arch: str, built: BuiltTree, digest: str,
                  epoch: int) -> AuditReport:
    entries = built.entries
    spec = ldcache.ARCHES.get(arch)
    cache: list[tuple[str, str]] = []
    default_dirs: tuple[str, ...] = ()
    if spec is not None:
        default_dirs = spec.system_dirs
        generator = ldcache.generator_of(entries)
        if generator is not None:  # no glibc: no cache, as ld.so would see it
            cache = [(e.key.decode(), e.path.decode())
                     for e in ldcache.entries(entries, arch, generator) if e.hwcaps is None]
    sources = tuple((s.archive, s.suite, s.release_sha256) for s in lk.sources)
    return evaluate(prof.name, arch, digest, epoch, lk.for_arch(arch), entries, cache,
                    default_dirs, prof.policy_deny, prof.policy_allow,
                    _why(lk, arch),  # type: ignore[arg-type]
                    sources)


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
    tree assembled (without byte-compiling, which licences do not depend on)."""
    quick = dataclasses.replace(prof, python_compile=False)
    prep = prepare(quick, Path("(new lock)"), opts, lock=lk)
    for arch in prep.archs:
        image = arch_image(quick, prep, arch, opts, keep_tree=True)
        assert image.built is not None
        enforce(evaluate_tree(quick, lk, arch, image.built, "", prep.epoch))


@dataclass(frozen=True)
class AuditOutcome:
    reports: tuple[AuditReport, ...]
    digest: str


def audit(prof: Profile, lock_path: Path, opts: BuildOptions) -> AuditOutcome:
    """Every architecture's report; the image digest is the one ``build`` prints."""
    from composer.image import oci

    prep = prepare(prof, lock_path, opts)
    reports = []
    manifests = []
    blobs: dict[str, bytes] = {}
    for arch in prep.archs:
        image = arch_image(prof, prep, arch, opts, keep_tree=True)
        assert image.built is not None
        manifests.append(image.manifest)
        blobs |= image.blobs
        reports.append(evaluate_tree(prof, prep.lock, arch, image.built,
                                     image.manifest.digest, prep.epoch))
    if len(manifests) > 1:
        oci.layout_index(manifests, (), blobs)  # adds the image index blob
    return AuditOutcome(tuple(reports), _image_digest(manifests, blobs))
