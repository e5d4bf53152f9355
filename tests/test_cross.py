"""Cross-compiling CPython: the cross build root's two walks (``resolve.cross``), checked
against apt with the second architecture added; the recipe's cross parts; the lock's
``build-architecture``; and what a machine that cannot run the build's tools is told.
(The cross build itself, of the real CPython, is built and run under qemu by
tests/test_profiles_online.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from composer import cpython, lockfile, resolve
from composer.archive.cache import Cache
from composer.debian.deb822 import PackagesFile, parse
from composer.debian.packages import Index, IndexPart
from composer.errors import ComposeError, LockError, ResolveError
from composer.model import PackageRecord, PythonBuild
from composer.pipeline import pybuild, sandbox
from tests import aptoracle
from tests.test_resolve_cases import complete_stanza, render

BUILD, HOST = "amd64", "arm64"

# Both architectures' Packages files carry the Architecture: all packages, as the
# archive's do.
ALL = """
Package: foo-common
Version: 1.0
Architecture: all
Multi-Arch: foreign

Package: bar-common
Version: 1.0
Architecture: all

Package: cross-libgcc-dev
Version: 14
Architecture: all
"""

BUILD_ONLY = """
Package: gcc-cross
Version: 14
Multi-Arch: foreign
Depends: libc6 (>= 2.40), cross-libgcc-dev

Package: make
Version: 4.4
Multi-Arch: foreign
Depends: libc6

Package: oldtool
Version: 1
Multi-Arch: foreign
"""

HOST_ONLY = """
Package: oldtool
Version: 2
Multi-Arch: foreign
"""

BOTH = """
Package: ncurses-bin
Version: 6.5
Multi-Arch: foreign
Depends: libc6

Package: libc-dev-bin
Version: 2.41
Multi-Arch: foreign
Depends: libc6

Package: helper
Version: 1
Depends: libc6

Package: libc6
Version: 2.41
Multi-Arch: same

Package: libfoo1
Version: 1.0
Multi-Arch: same
Depends: libc6, foo-common

Package: libfoo-dev
Version: 1.0
Multi-Arch: same
Depends: libfoo1 (= 1.0), ncurses-bin

Package: libc6-dev
Version: 2.41
Multi-Arch: same
Depends: libc6 (= 2.41), libc-dev-bin (= 2.41)

Package: libbar-dev
Version: 1
Multi-Arch: same
Depends: helper

Package: libbaz1
Version: 1
Multi-Arch: same
Depends: bar-common

Package: perl
Version: 5.40
Multi-Arch: allowed
Depends: libc6

Package: libperl-dev
Version: 1
Multi-Arch: same
Depends: perl:any

Package: libold-dev
Version: 1
Multi-Arch: same
Depends: oldtool (>= 2)
"""


def _packages(arch: str) -> bytes:
    text = ALL + BOTH + (BUILD_ONLY if arch == BUILD else HOST_ONLY)
    return render([complete_stanza(p, arch) for p in parse(text, arch)])


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Index, Path]]:
    out = {}
    for arch in (BUILD, HOST):
        data = _packages(arch)
        path = tmp_path_factory.mktemp(arch) / "Packages"
        path.write_bytes(data)
        out[arch] = (Index(arch, [IndexPart(PackagesFile(data, f"{arch} Packages"), 0)]), path)
    return out


def _cross(indexes: dict[str, tuple[Index, Path]], tools: list[str], libs: list[str]
           ) -> set[tuple[str, str]]:
    on, to = resolve.cross(indexes[BUILD][0], indexes[HOST][0], tools, libs)
    assert (on.architecture, to.architecture) == (BUILD, HOST)
    return {(p.name, p.architecture) for p in (*on.packages, *to.packages)}


def _apt(indexes: dict[str, tuple[Index, Path]], tmp: Path, tools: list[str],
         libs: list[str]) -> set[tuple[str, str]]:
    oracle = aptoracle.AptOracle(tmp, [indexes[BUILD][1], indexes[HOST][1]], BUILD, (HOST,))
    return oracle.install_arch_set([*tools, *(f"{name}:{HOST}" for name in libs)])


def test_foreign_tools_come_from_the_build_machine(indexes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tools, libs = ["gcc-cross", "make"], ["libc6-dev", "libfoo-dev"]
    got = _cross(indexes, tools, libs)
    assert got == {
        ("gcc-cross", BUILD), ("make", BUILD), ("libc6", BUILD), ("cross-libgcc-dev", "all"),
        # what the host's -dev packages run is the build machine's (Multi-Arch: foreign)
        ("ncurses-bin", BUILD), ("libc-dev-bin", BUILD),
        # what they link is the host's; libc6 is there twice (Multi-Arch: same)
        ("libc6-dev", HOST), ("libc6", HOST), ("libfoo-dev", HOST), ("libfoo1", HOST),
        # Architecture: all and Multi-Arch: foreign: once, the build machine's
        ("foo-common", "all"),
    }
    if aptoracle.available():
        assert _apt(indexes, tmp_path / "apt", tools, libs) == got


def test_a_package_of_all_that_is_not_foreign_meets_no_host_dependency(
        indexes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tools, libs = ["make"], ["libbaz1"]
    with pytest.raises(ResolveError) as err:
        resolve.cross(indexes[BUILD][0], indexes[HOST][0], tools, libs)
    assert "packages (libbaz1) need bar-common, which is Architecture: all" in err.value.message
    if aptoracle.available():  # apt: "Depends: bar-common:arm64 but it is not installable"
        with pytest.raises(RuntimeError, match="bar-common:arm64"):
            _apt(indexes, tmp_path / "apt", tools, libs)


def test_name_any_of_a_multi_arch_allowed_package_is_the_build_machines(
        indexes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tools, libs = ["make"], ["libperl-dev"]
    got = _cross(indexes, tools, libs)
    assert ("perl", BUILD) in got and ("perl", HOST) not in got
    if aptoracle.available():
        assert _apt(indexes, tmp_path / "apt", tools, libs) == got


def test_a_foreign_package_of_the_build_machine_too_old_for_the_host_is_refused(
        indexes) -> None:  # type: ignore[no-untyped-def]
    # amd64's oldtool is 1, arm64's libold-dev wants >= 2 (arm64's is 2): the archive's
    # architectures are out of step. (apt would take arm64's oldtool, which the build
    # machine cannot run.)
    with pytest.raises(ResolveError) as err:
        resolve.cross(indexes[BUILD][0], indexes[HOST][0], ["make"], ["libold-dev"])
    assert err.value.message == ("libold-dev:arm64 1 depends on oldtool (>= 2), and the amd64 "
                                 "side of the cross build root has only oldtool 1")
    assert "out of step" in (err.value.hint or "")


def test_both_instances_of_a_package_that_is_not_multi_arch_same(indexes, tmp_path: Path
                                                                 ) -> None:  # type: ignore[no-untyped-def]
    tools, libs = ["helper"], ["libbar-dev"]
    with pytest.raises(ResolveError) as err:
        resolve.cross(indexes[BUILD][0], indexes[HOST][0], tools, libs)
    assert "helper of both amd64 (1) and arm64 (1)" in err.value.message
    assert "Multi-Arch: no" in (err.value.hint or "")
    if aptoracle.available():  # apt cannot install them either
        with pytest.raises(RuntimeError):
            _apt(indexes, tmp_path / "apt", tools, libs)


# -- the recipe --------------------------------------------------------------------------

def test_cross_recipe() -> None:
    from composer.model import SOURCE_BUILD_ARCHES

    assert tuple(cpython.TRIPLETS) == SOURCE_BUILD_ARCHES
    build = PythonBuild("forky", readline=False)
    tools, libs = cpython.cross_roots("3.14.8", build, "arm64")
    assert {"gcc-aarch64-linux-gnu", "binutils-aarch64-linux-gnu", "make", "pkgconf"} <= set(tools)
    assert not {"gcc", "binutils", "libc6-dev"} & set(tools)
    assert libs[0] == "libc6-dev" and "libzstd-dev" in libs and "libreadline-dev" not in libs
    args = cpython.configure_args("3.14.8", build, "arm64", "amd64")
    assert args[:2] == ["--build=x86_64-linux-gnu", "--host=aarch64-linux-gnu"]
    assert "--with-build-python=/build/native/usr/bin/python3.14" in args
    assert not any(a.startswith("--with-build-python") for a in
                   cpython.configure_args("3.14.8", build, "amd64", "amd64"))
    env = cpython.environment(0, "arm64", "amd64")
    assert env["PKG_CONFIG_LIBDIR"] == "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig"
    assert "PKG_CONFIG_LIBDIR" not in cpython.environment(0, "amd64", "amd64")
    assert cpython.config_site("arm64", "amd64").endswith("ac_cv_wchar_t_signed=no\n")
    assert cpython.config_site("amd64", "amd64") == cpython.CONFIG_SITE
    script = cpython.script("3.14.8", build, "arm64", 2, "amd64")
    assert "aarch64-linux-gnu-strip --remove-section" in script
    assert cpython.compiler("arm64", "amd64") == "aarch64-linux-gnu-gcc"
    assert cpython.compiler("amd64", "amd64") == "cc"
    # the build machine's own CPython is an input of the cross build's key
    root = [cpython.Pinned("gcc-aarch64-linux-gnu", "14", "amd64", "0" * 64)]
    keys = {cpython.cache_key("1" * 64, "3.14.8", build, "arm64", root, "amd64", python)
            for python in ("a" * 64, "b" * 64)}
    assert len(keys) == 2


# -- the lock ------------------------------------------------------------------------------

LATEST = Path(__file__).resolve().parent.parent / "locks" / "py313-latest.lock.toml"


def test_build_architecture_in_the_lock() -> None:
    """py313-latest's lock: arm64 cross-compiled on amd64, whose own build is there."""
    text = LATEST.read_text()
    lk = lockfile.loads(text, LATEST)
    crossed, native = lk.python_build("arm64"), lk.python_build("amd64")
    assert crossed is not None and native is not None
    assert (crossed.build_architecture, native.build_architecture) == ("amd64", "")
    assert 'build-architecture = "amd64"' in text and lockfile.dumps(lk) == text
    root = lk.build_root("arm64")
    kinds = {p.deb_architecture for p in root}
    assert kinds == {"amd64", "arm64", "all"}
    # both instances of a Multi-Arch: same package, in one cross build root
    assert {p.deb_architecture for p in root if p.name == "libc6"} == {"amd64", "arm64"}
    # the builder's own build must be there, and be native
    without = text.replace('[[python-build]]\narchitecture = "amd64"',
                           '[[python-build]]\narchitecture = "arm64"')
    with pytest.raises(LockError, match="the lock needs amd64, arm64"):
        lockfile.loads(without, LATEST)
    chain = lockfile.dumps(dataclasses.replace(lk, python_builds=(
        dataclasses.replace(native, build_architecture="arm64"), crossed)))
    with pytest.raises(LockError, match="must be built natively"):
        lockfile.loads(chain, LATEST)
    # a lock that ships arm64 alone keeps the build of amd64, which compiles it
    arm_only = dataclasses.replace(lk, architectures=("arm64",), packages=tuple(
        p for p in lk.packages if p.architecture == "arm64"))
    back = lockfile.loads(lockfile.dumps(arm_only), LATEST)
    assert back.python_builds == lk.python_builds and back.for_arch("amd64") == []
    with pytest.raises(LockError, match="is for arm64, the lock needs amd64, arm64"):
        lockfile.loads(lockfile.dumps(dataclasses.replace(arm_only, python_builds=(crossed,))),
                       LATEST)
    # a package locked twice for one architecture and one deb-architecture is refused
    twice = lockfile.dumps(dataclasses.replace(lk, build_packages=(*lk.build_packages,
                                                                   root[0])))
    with pytest.raises(LockError, match=f"{root[0].name} is locked twice for arm64"):
        lockfile.loads(twice, LATEST)


def test_a_machine_that_cannot_run_the_build_is_told(tmp_path: Path) -> None:
    lk = lockfile.load(LATEST)
    foreign = next(a for a in cpython.TRIPLETS if not sandbox.native(a))
    mine = next(a for a in cpython.TRIPLETS if sandbox.native(a))
    assert lk.python_source is not None
    with pytest.raises(ComposeError) as err:
        pybuild.interpreter(lk.python_source, "3.13.15", PythonBuild("forky"), mine,
                            lk.build_root(mine), {}, Cache(tmp_path / "cache"), print, {},
                            build_python=(foreign, "0" * 64, lambda: pybuild.Interpreter({}, "", ())))
    assert f"on an {foreign} machine (by cross-compiling)" in err.value.message
    assert err.value.hint == f"build on an {foreign} machine"
    # whichever machine locks, amd64 compiles: a lock does not depend on where it was made
    assert all(b.built_on == "amd64" for b in lk.python_builds)


# -- the image's closure against the build ----------------------------------------------------

def _record(name: str, version: str) -> PackageRecord:
    return PackageRecord(name, version, "arm64", f"pool/main/x/{name}.deb", 1, "0" * 64, name,
                         version, (), (), (), (), (), (), "same", False, "optional", 0)


def test_the_closure_is_checked_against_the_build() -> None:
    """What lock refuses of the image's closure (``pybuild.check_closure``), on the
    committed py313-latest lock's build (arm64 and its cross build root)."""
    from composer.profile import load

    lk = lockfile.load(LATEST)
    prof = load(LATEST.parent.parent / "profiles" / "py313-latest.toml")
    assert lk.python_source is not None
    built = pybuild.LockedBuild(lk.python_source, lk.build_packages, lk.python_builds)
    shipped = [_record(p.name, p.version) for p in lk.for_arch("arm64")]
    pybuild.check_closure(prof, "arm64", shipped, built)  # as locked: fine
    # a library the interpreter links, in another version than it was built against
    other = [_record(p.name, "9.9" if p.name == "libssl3t64" else p.version)
             for p in lk.for_arch("arm64")]
    with pytest.raises(LockError, match=r"\[arm64\] CPython was built against libssl3t64 "
                                        r"\S+, but the image would ship 9\.9"):
        pybuild.check_closure(prof, "arm64", other, built)
    # Debian's CPython, brought in by some dependency
    with pytest.raises(LockError, match=r"python3\.13-minimal, Debian's CPython, would ship"):
        pybuild.check_closure(prof, "arm64", [*shipped, _record("python3.13-minimal", "1")],
                              built)
    # readline = false, and readline ships all the same
    from composer.profile import GPL3_LINE_EDITING

    lean = dataclasses.replace(prof, python_build=dataclasses.replace(
        prof.python_build, readline=False))  # type: ignore[type-var]
    unlinked = dataclasses.replace(built, builds=tuple(
        dataclasses.replace(b, links=()) for b in built.builds))
    without = [r for r in shipped if not GPL3_LINE_EDITING.fullmatch(r.name)]
    pybuild.check_closure(lean, "arm64", without, unlinked)
    with pytest.raises(LockError, match=r"\[arm64\] libreadline8t64 would ship, although "
                                        r"\[python\] readline = false"):
        pybuild.check_closure(lean, "arm64", [*without, _record("libreadline8t64", "8")],
                              unlinked)
