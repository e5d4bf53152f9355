"""Against the real Debian archive, through the mirror found at run time (the host's apt
sources unless COMPOSE_MIRROR_* says otherwise). Every lock is made afresh in a
temporary directory: nothing here relies on a committed lock's packages still existing.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from composer.archive.cache import Cache
from composer.archive.index import Archive
from composer.archive.mirrors import Mirrors
from composer.archive.trust import keyring_path
from tests.online import PROFILE, ROOT, compose, env, lock, work  # noqa: F401 (fixtures)

pytestmark = pytest.mark.network



@pytest.fixture(scope="module")
def locked(lock: Path) -> Path:
    """The py313 profile locked afresh (tests/online.py)."""
    return lock


def _fingerprints(keyring: Path) -> set[str]:
    out = subprocess.run(["gpg", "--show-keys", "--with-colons", str(keyring)],
                         capture_output=True, text=True, check=True).stdout
    fprs, want = set(), False
    for line in out.splitlines():
        kind = line.split(":", 1)[0]
        if kind in ("pub", "sub"):
            want = True
        elif kind == "fpr" and want:
            fprs.add(line.split(":")[9])
            want = False
    return fprs


def test_lock_py313_both_architectures(locked: Path) -> None:
    data = tomllib.loads(locked.read_text())
    assert data["version"] == 1 and data["profile"] == "py313"
    assert data["architectures"] == ["amd64", "arm64"]
    assert [(s["archive"], s["suite"]) for s in data["source"]] == [
        ("debian", "trixie"), ("debian", "trixie-updates"), ("debian-security", "trixie-security")]
    shipped = _fingerprints(keyring_path("debian"))
    for s in data["source"]:
        assert s["codename"] == s["suite"]
        assert re.fullmatch(r"[0-9a-f]{64}", s["release-sha256"])
        assert s["signed-by"] and set(s["signed-by"]) <= shipped
    for arch in ("amd64", "arm64"):
        pkgs = {p["name"]: p for p in data["package"] if p["architecture"] == arch}
        for name in ("python3.13-minimal", "libpython3.13-stdlib", "libc6", "libssl3t64",
                     "tzdata", "ca-certificates", "base-files", "libreadline8t64"):
            assert name in pkgs, (arch, name)
        for name in ("debconf", "openssl", "mawk"):
            assert name not in pkgs
        for p in pkgs.values():
            assert p["filename"].startswith("pool/") and "/../" not in p["filename"]
            assert re.fullmatch(r"[0-9a-f]{64}", p["sha256"]) and p["size"] > 0
            assert p["source"] and p["source-version"]
            assert p["required-by"] or p.get("root")
            deb_arch = p.get("deb-architecture", arch)
            assert p["filename"].endswith(f"_{deb_arch}.deb")
        assert pkgs["libc6"]["filename"].endswith(f"_{arch}.deb")
    excluded = {(e["architecture"], e["name"]): e["wanted-by"] for e in data["excluded"]}
    assert excluded[("amd64", "mawk")] == ["base-files"]
    assert "ca-certificates" in excluded[("arm64", "openssl")]
    providers = {(p["architecture"], p["virtual"]): p["provider"] for p in data["provider"]}
    assert providers[("amd64", "awk")] == "mawk"


def test_lock_is_deterministic_and_fresh(env: dict[str, str], locked: Path) -> None:
    before = locked.read_bytes()
    r = compose(env, "lock", "--update", str(PROFILE), "-o", str(locked))
    assert r.returncode == 0, r.stderr
    assert "unchanged" in r.stderr
    assert locked.read_bytes() == before
    r = compose(env, "lock", str(PROFILE), "-o", str(locked))
    assert r.returncode == 0 and "fresh" in r.stderr and "kept" in r.stderr, r.stderr
    assert locked.read_bytes() == before
    r = compose(env, "lock", "--check", str(PROFILE), "-o", str(locked))
    assert r.returncode == 0, r.stderr


def test_locked_deb_matches_the_mirror(env: dict[str, str], locked: Path) -> None:
    """The hash chain ends at a real .deb: download a small one and check it."""
    data = tomllib.loads(locked.read_text())
    pkg = next(p for p in data["package"] if p["name"] == "netbase")
    base = Mirrors(env=env).find(pkg["archive"]).urls[0]
    import httpx

    body = httpx.get(f"{base}/{pkg['filename']}", timeout=60, follow_redirects=True).content
    assert len(body) == pkg["size"]
    assert hashlib.sha256(body).hexdigest() == pkg["sha256"]
    assert body.startswith(b"!<arch>\ndebian-binary")


def test_why_explains_readline(env: dict[str, str], locked: Path) -> None:
    r = compose(env, "why", "libreadline8t64", str(PROFILE), "--lock", str(locked))
    assert r.returncode == 0, r.stderr
    assert "libpython3.13-stdlib -> libreadline8t64" in r.stdout
    r = compose(env, "why", "mawk", str(PROFILE), "--lock", str(locked))
    assert "excluded" in r.stdout and "base-files -[awk]-> mawk" in r.stdout


def test_graph_formats(env: dict[str, str], locked: Path) -> None:
    r = compose(env, "graph", str(PROFILE), "--lock", str(locked), "--format", "dot")
    assert r.returncode == 0 and r.stdout.startswith('digraph "py313"')
    assert '"amd64/libpython3.13-stdlib" -> "amd64/libreadline8t64"' in r.stdout


# -- agreement with apt on real package sets --------------------------------------

SETS = {
    "python-distroless": ["base-files", "netbase", "tzdata", "media-types", "ca-certificates",
                          "libc6", "libssl3t64", "python3.13-minimal", "libpython3.13-stdlib"],
    "python3": ["python3"],
    "git": ["git"],
    "compat-base": ["busybox", "dash", "libc-bin", "libgomp1", "libstdc++6"],
    "build-essential": ["build-essential"],
    "java": ["default-jre-headless"],
    "mail": ["bsd-mailx"],
    "postgresql": ["postgresql"],
    "office": ["libreoffice-writer"],
}


@pytest.fixture(scope="module")
def real_indexes(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from composer import pipeline

    prof = pipeline.load_profile(PROFILE)
    cache = Cache(Path(env["COMPOSE_CACHE_DIR"]))
    with Archive(Mirrors(env=env), cache) as archive:
        sources = archive.open_sources(prof.sources)
        out = {}
        for arch in prof.architectures:
            files = [cache.blob_path(s.release.files[f"main/binary-{arch}/Packages"].sha256)
                     for s in sources]
            out[arch] = (archive.index(sources, arch), files)
    return prof, out


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_closure_agrees_with_apt(real_indexes, arch: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from composer import resolve
    from tests.aptoracle import AptOracle, available

    if not available():
        pytest.skip("apt-get is not installed")
    _, indexes = real_indexes
    index, files = indexes[arch]
    apt = AptOracle(tmp_path / "apt", files, arch)
    disagreements = {}
    for label, roots in SETS.items():
        ours = {p.name for p in resolve.solve(index, roots).packages}
        theirs = apt.install_set(roots)
        if ours != theirs:
            disagreements[label] = (sorted(ours - theirs), sorted(theirs - ours))
    assert not disagreements, disagreements


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_exclusions_remove_only_what_nothing_else_needs(real_indexes, arch: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With the profile's exclusions, the closure is apt's minus the excluded packages and
    those that only they needed."""
    import networkx as nx

    from composer import resolve
    from tests.aptoracle import AptOracle, available

    if not available():
        pytest.skip("apt-get is not installed")
    prof, indexes = real_indexes
    index, files = indexes[arch]
    full = resolve.solve(index, prof.include)
    assert {p.name for p in full.packages} == AptOracle(tmp_path / "apt", files, arch).install_set(list(prof.include))
    g = nx.DiGraph((e.dependent, e.target) for e in full.edges)
    g.add_nodes_from(p.name for p in full.packages)
    g.remove_nodes_from(prof.exclude)
    reachable = set(full.roots).union(*(nx.descendants(g, r) for r in full.roots))
    ours = resolve.solve(index, prof.include, prof.exclude, dict(prof.prefer))
    assert {p.name for p in ours.packages} == reachable
    assert {name for name, _ in ours.excluded} == set(prof.exclude)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_random_single_packages_agree_with_apt(real_indexes, arch: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A seeded sample of the archive's packages, each installed alone: compose and apt
    give the same set, or both refuse."""
    import random

    from composer import resolve
    from composer.errors import ResolveError
    from tests.aptoracle import AptOracle, available

    if not available():
        pytest.skip("apt-get is not installed")
    _, indexes = real_indexes
    index, files = indexes[arch]
    apt = AptOracle(tmp_path / "apt", files, arch)
    sample = random.Random(f"compose-{arch}").sample(sorted(index.all_names()), 25)
    disagreements = {}
    for name in sample:
        try:
            ours: set[str] | None = {p.name for p in resolve.solve(index, [name]).packages}
        except ResolveError:
            ours = None
        try:
            theirs: set[str] | None = apt.install_set([name])
        except RuntimeError:
            theirs = None
        if ours != theirs:
            disagreements[name] = (ours, theirs)
    assert not disagreements, disagreements


@pytest.mark.parametrize("readline", [True, False])
def test_cross_build_root_agrees_with_apt(real_indexes, readline: bool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The cross build root of CPython for arm64 (tools of amd64, libraries of arm64) is
    what apt installs on an amd64 machine with arm64 added, to the architecture."""
    from composer import cpython, resolve
    from composer.model import PythonBuild
    from tests.aptoracle import AptOracle, available

    if not available():
        pytest.skip("apt-get is not installed")
    _, indexes = real_indexes
    tools, libs = cpython.cross_roots("3.13.15", PythonBuild("forky", readline=readline), "arm64")
    on, to = resolve.cross(indexes["amd64"][0], indexes["arm64"][0], tools, libs)
    ours = {(p.name, p.architecture) for p in (*on.packages, *to.packages)}
    apt = AptOracle(tmp_path / "apt", [*indexes["amd64"][1], *indexes["arm64"][1]], "amd64",
                    ("arm64",))
    assert ours == apt.install_arch_set([*tools, *(f"{n}:arm64" for n in libs)])
    assert ("gcc-aarch64-linux-gnu", "amd64") in ours and ("libssl-dev", "arm64") in ours
    assert {("libc6", "amd64"), ("libc6", "arm64")} <= ours
