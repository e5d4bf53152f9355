"""The shipped profiles and their committed locks, offline: every lock is fresh for its
profile (the resolved profile's fingerprint, extends included), pins what the profile
asks for, and the variants differ from their base only as they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from composer import lockfile, pipeline
from composer.model import Profile
from composer.profile import load

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "profiles").glob("*.toml"))
NAMES = [p.stem for p in PROFILES]

# What the distroless python3 images are, and the variants the project ships of them.
EXPECTED = {
    "py311": ("3.11", "bookworm", "3.11-debian12"),
    "py313": ("3.13", "trixie", "3.13-debian13"),
}
VARIANTS = ("", "-nonroot", "-debug", "-compat")
# CPython compiled from source on a base: (base, version, source suite, tag).
FROM_SOURCE = {
    "py313-latest": ("py313", "3.13", "forky", "3.13-latest-debian13"),
}


def _profile(name: str) -> Profile:
    return load(ROOT / "profiles" / f"{name}.toml")


def _lock(name: str) -> lockfile.Lock:
    return lockfile.load(ROOT / "locks" / f"{name}.lock.toml")


def test_every_base_and_variant_is_shipped() -> None:
    assert sorted(NAMES) == sorted([*(base + v for base in EXPECTED for v in VARIANTS),
                                    *FROM_SOURCE])
    assert sorted(p.name for p in (ROOT / "locks").iterdir()) == sorted(
        f"{n}.lock.toml" for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_lock_is_fresh(name: str) -> None:
    prof = _profile(name)
    lk = pipeline.check(prof, ROOT / "locks" / f"{name}.lock.toml")
    assert lk.profile == name and lk.fingerprint == prof.fingerprint()
    assert lk.architectures == prof.architectures == ("amd64", "arm64")
    suites = {s.suite for s in prof.sources if s.binaries}
    assert {s.suite for s in lk.sources} == {s.suite for s in prof.sources}
    for arch in prof.architectures:
        pkgs = {p.name: p for p in lk.for_arch(arch)}
        for wanted in prof.include:
            assert wanted in pkgs and pkgs[wanted].root, (arch, wanted)
        assert not set(prof.exclude) & set(pkgs), arch
        assert {p.suite for p in pkgs.values()} <= suites
        assert all(p.filename.startswith("pool/") for p in pkgs.values())


def test_lock_check_says_every_lock_is_fresh() -> None:
    r = subprocess.run([sys.executable, "-m", "composer", "lock", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(line.split(":")[0] for line in r.stderr.splitlines()) == sorted(
        f"{ROOT}/locks/{n}.lock.toml" for n in NAMES)
    assert all(line.endswith(": fresh") for line in r.stderr.splitlines())


@pytest.mark.parametrize("base", list(EXPECTED))
def test_base_profiles_are_the_distroless_images(base: str) -> None:
    version, suite, tag = EXPECTED[base]
    prof = _profile(base)
    assert prof.python_version == version
    assert prof.sources[0].suite == suite
    assert {s.suite for s in prof.sources} == {suite, f"{suite}-updates", f"{suite}-security"}
    assert prof.image.tags == (tag,)
    assert prof.image.user == "0" and prof.image.workdir == "/"
    assert prof.image.entrypoint in (None, (f"/usr/bin/python{version}",))
    lk = _lock(base)
    for arch in prof.architectures:
        names = {p.name for p in lk.for_arch(arch)}
        # the distroless static, base and cc layers, and CPython
        assert {"base-files", "netbase", "tzdata", "media-types", "ca-certificates", "libc6",
                "libgcc-s1", "libgomp1", "libstdc++6", f"python{version}-minimal",
                f"libpython{version}-stdlib"} <= names
        # no shell, no package manager, no interpreter wrapper
        assert not {"dash", "bash", "busybox", "dpkg", "apt", "python3",
                    "coreutils", "perl-base"} & names, arch
    # of libc-bin, only the C.UTF-8 locale, as distroless takes it
    assert prof.only == (("libc-bin", ("usr/lib/locale/C.utf8/**",)),)


@pytest.mark.parametrize("base", list(EXPECTED))
def test_variants_differ_only_as_they_say(base: str) -> None:
    version, _, tag = EXPECTED[base]
    b = _profile(base)
    blk = _lock(base)
    for suffix in VARIANTS[1:]:
        v = _profile(base + suffix)
        assert v.extra.get("name") == base + suffix
        assert v.sources == b.sources and v.exclude == b.exclude
        assert v.python_version == version
        assert v.image.tags == (f"{tag}{suffix}",)
        assert "latest" not in v.image.tags
        if suffix == "-nonroot":  # only image settings change: the lock inputs are the base's
            assert v.lock_inputs() == b.lock_inputs() | {"name": base + suffix}
        vlk = _lock(base + suffix)
        for arch in b.architectures:
            before = {p.name: p.version for p in blk.for_arch(arch)}
            after = {p.name: p.version for p in vlk.for_arch(arch)}
            added = set(after) - set(before)
            assert set(before) <= set(after), (suffix, arch)
            assert all(after[n] == v for n, v in before.items()), (suffix, arch)
            if suffix == "-nonroot":
                assert added == set()
                assert (v.image.user, v.image.workdir) == ("nonroot", "/home/nonroot")
            elif suffix == "-debug":
                assert added == {"busybox"}
                assert v.busybox_applets and v.image.entrypoint == ("/bin/sh",)
            else:
                # dash for os.system and dash's debianutils; all of libc-bin for ldconfig
                assert added == {"dash", "debianutils"}
                assert v.only == (("libc-bin", ("**",)),)
                assert {"libgcc-s1", "libstdc++6", "libgomp1"} <= set(v.include)
            if suffix != "-nonroot":
                assert (v.image.user, v.image.workdir) == ("0", "/")
            if suffix != "-compat":
                assert v.only == b.only
            if suffix != "-debug":
                assert not v.busybox_applets and v.image.entrypoint == b.image.entrypoint


@pytest.mark.parametrize("name", list(FROM_SOURCE))
def test_source_built_profiles_replace_debians_cpython(name: str) -> None:
    base, version, suite, tag = FROM_SOURCE[name]
    prof, b = _profile(name), _profile(base)
    assert prof.python_version == version and prof.image.tags == (tag,)
    assert prof.python_build is not None and prof.python_build.source_suite == suite
    # The source suite gives only the source; the packages come from the base's suites.
    assert [s for s in prof.sources if s.binaries] == list(b.sources)
    assert [s.suite for s in prof.sources if not s.binaries] == [suite]
    lk = _lock(name)
    assert lk.version == 2 and lk.python_source is not None
    src = lk.python_source
    assert (src.package, src.suite, src.patches) == (f"python{version}", suite, "none")
    assert src.filename == f"pool/main/p/python{version}/python{version}_{src.upstream_version}.orig.tar.xz"
    for arch in prof.architectures:
        names = {p.name: p for p in lk.for_arch(arch)}
        assert not {n for n in names if n.startswith(("python3", "libpython3"))}, arch
        built = lk.python_build(arch)
        assert built is not None
        linked = dict(built.links)
        # Debian's OpenSSL, and the libraries the standard library's modules link, ship
        # because the interpreter's ELF files need them, in the versions it was built with.
        assert linked["libssl.so.3"] == "libssl3t64" and linked["libc.so.6"] == "libc6"
        # arm64 is cross-compiled on amd64, in a root of both architectures' packages
        assert built.built_on == "amd64"
        root = {p.name: p.version for p in lk.build_root(arch)
                if p.deb_architecture in (arch, "all")}
        for package in set(linked.values()):
            assert "cpython" in names[package].required_by
            assert names[package].version == root[package]
        tools = {p.name for p in lk.build_root(arch) if p.deb_architecture == "amd64"}
        assert {"libc6-dev", "libssl-dev"} <= set(root)
        assert {"make"} | ({"gcc"} if arch == "amd64" else {"gcc-aarch64-linux-gnu"}) <= tools
        # the build root comes from the base's suites, as the image does
        assert {p.suite for p in lk.build_root(arch)} <= {s.suite for s in b.sources}
        assert not {"gcc", "make", "libc6-dev"} & set(names)
