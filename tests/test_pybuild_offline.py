"""CPython source builds, offline: the upstream tarball pinned through a signed Sources
index; a build root that compose assembles from real toolchain .debs (the host's own
gcc, repacked) compiling and running C, sealed; and the whole build step (configure,
make, make install in that root, the result read, its links found, cached) run on a
stand-in source whose configure and Makefile compile a small C program."""

from __future__ import annotations

import io
import lzma
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composer import cpython, lockfile, resolve
from composer.archive.cache import Cache
from composer.archive.index import Archive
from composer.archive.mirrors import Mirrors
from composer.errors import ComposeError, LockError, TrustError
from composer.image import buildroot
from composer.image.tree import FILE, Entry
from composer.model import PythonBuild, SourceSpec
from composer.pipeline import pybuild, sandbox
from composer.pipeline.build import wanted_debs
from composer.pipeline.tree import read_debs
from tests.fakearchive import TEST_KEY, FakeArchive
from tests.toolchain import host_toolchain

KEYRING = str(TEST_KEY.public_binary_path)
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                      check=False).stdout.strip() if shutil.which("dpkg") else ""
pytestmark = pytest.mark.skipif(
    not cpython.supported(ARCH),
    reason="needs a dpkg host of an architecture compose builds CPython for (its toolchain is "
           "repacked into .debs)")
HELLO = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    char host[64] = "";
    gethostname(host, sizeof host);
    printf("hello %d\n", (int)(cbrt(atof(argv[2])) + 0.5));  /* a call into libm */
    printf("uid=%d gid=%d host=%s\n", (int)getuid(), (int)getgid(), host);
    printf("SOURCE_DATE_EPOCH=%s TZ=%s LC_ALL=%s\n", getenv("SOURCE_DATE_EPOCH"),
           getenv("TZ"), getenv("LC_ALL"));
    printf("HTTP_PROXY=%s\n", getenv("HTTP_PROXY") ? getenv("HTTP_PROXY") : "(unset)");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("connect=%s\n", connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? "yes" : "no");
    return 0;
}
"""
MAKEFILE = "hello: hello.c\n\t$(CC) -O2 -o $@ hello.c -lm\n"

# A stand-in for CPython's source: what the recipe runs (configure with its options,
# make, make install DESTDIR=...) builds a "python3.99" and an extension module, and
# installs byte-code, headers and a licence, as the real install does.
CONFIGURE = """#!/bin/sh
test -f "$CONFIG_SITE" || { echo "configure: no config.site at $CONFIG_SITE" >&2; exit 1; }
echo "$@" > configure.args
echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" >> configure.args
"""
FAKE_MAKEFILE = """\
all: python ext.so
python: main.c
\t$(CC) -O2 -g -o python main.c -lm
ext.so: ext.c
\t$(CC) -O2 -g -shared -fPIC -o ext.so ext.c
install: all
\tmkdir -p $(DESTDIR)/usr/bin $(DESTDIR)/usr/lib/python3.99/lib-dynload \\
\t\t$(DESTDIR)/usr/lib/python3.99/__pycache__ $(DESTDIR)/usr/include/python3.99
\tcp python $(DESTDIR)/usr/bin/python3.99
\tln -s python3.99 $(DESTDIR)/usr/bin/python3
\tcp ext.so $(DESTDIR)/usr/lib/python3.99/lib-dynload/ext.so
\tcp configure.args $(DESTDIR)/usr/lib/python3.99/configure.args
\techo bytecode > $(DESTDIR)/usr/lib/python3.99/__pycache__/os.cpython-399.pyc
\techo header > $(DESTDIR)/usr/include/python3.99/Python.h
\techo "PSF LICENSE AGREEMENT" > $(DESTDIR)/usr/lib/python3.99/LICENSE.txt
"""
MAIN_C = """#include <math.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) { printf("%d\\n", (int)cbrt(atof(argv[1]))); return 0; }
"""


def _tarball(version: str) -> bytes:
    """A small upstream-shaped tarball: one top directory, dated files."""
    raw = io.BytesIO()
    top = f"Python-{version}"
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in (
                ("README.rst", b"This is Python\n", 1_700_000_000),
                ("configure", CONFIGURE.encode(), 1_700_000_500),
                ("Makefile", FAKE_MAKEFILE.encode(), 1_700_000_100),
                ("main.c", MAIN_C.encode(), 1_700_000_100),
                ("ext.c", b"int ext(int x) { return x + 1; }\n", 1_700_000_100)):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o755
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeArchive, str]]:
    arch = FakeArchive(tmp_path_factory.mktemp("mirror") / "debian", name="debian")
    host_toolchain(arch, "trixie", roots=cpython.TOOLS)
    arch.add_source("trixie", "python3.99", "3.99.1-1", {
        "python3.99_3.99.1.orig.tar.xz": _tarball("3.99.1"),
        "python3.99_3.99.1-1.debian.tar.xz": lzma.compress(b"patches"),
        "python3.99_3.99.1-1.dsc": b"Format: 3.0 (quilt)\n"})
    arch.add_source("trixie", "python3.99", "3.99.0-2", {
        "python3.99_3.99.0.orig.tar.xz": _tarball("3.99.0"),
        "python3.99_3.99.0-2.dsc": b"Format: 3.0 (quilt)\n"})
    arch.publish("trixie", architectures=(ARCH,))
    with arch.serve() as url:
        yield arch, url


def _archive(url: str, cache_dir: Path) -> Archive:
    mirrors = Mirrors([f"debian={url}"], {"COMPOSE_CONFIG": "/nonexistent"}, apt_paths=())
    return Archive(mirrors, Cache(cache_dir), "compose-test")


BUILD = PythonBuild("trixie", readline=False)
SPEC = SourceSpec("debian", "trixie", ("main",), KEYRING)


def test_the_newest_source_is_pinned_from_the_signed_sources_index(served: Any, tmp_path: Path) -> None:
    _, url = served
    with _archive(url, tmp_path / "cache") as archive:
        verified = archive.open_sources((SPEC,))
        pinned = pybuild.pin_source(archive.source_package, verified, "3.99", BUILD)
        assert (pinned.package, pinned.version, pinned.upstream_version) == \
            ("python3.99", "3.99.1-1", "3.99.1")
        assert pinned.filename == "pool/main/p/python3.99/python3.99_3.99.1.orig.tar.xz"
        assert pinned.patches == "none" and pinned.recipe == cpython.RECIPE
        got = archive.fetch_debs(wanted_debs([v.record for v in verified], [], pinned))
        data = got[pinned.sha256].read_bytes()
        assert data == _tarball("3.99.1") and len(data) == pinned.size
        # The build's epoch follows from the tarball alone: its newest file.
        root = tmp_path / "root"
        assert pybuild.unpack_source(got[pinned.sha256], "python3.99_3.99.1.orig.tar.xz",
                                     root, "build/src") == 1_700_000_500
        assert (root / "build/src/README.rst").read_text() == "This is Python\n"
        with pytest.raises(LockError, match=r"no source package python3\.98"):
            pybuild.pin_source(archive.source_package, verified, "3.98", BUILD)


def test_a_sources_index_that_is_not_the_signed_one_is_refused(served: Any, tmp_path: Path) -> None:
    arch, url = served
    sources = arch.path("dists/trixie/main/source/Sources.xz")
    good = sources.read_bytes()
    try:
        sources.write_bytes(lzma.compress(lzma.decompress(good).replace(b"3.99.1-1", b"3.99.9-1")))
        for by_hash in arch.path("dists/trixie/main/source/by-hash/SHA256").iterdir():
            if by_hash.read_bytes() == good:
                by_hash.write_bytes(sources.read_bytes())
        with _archive(url, tmp_path / "cache") as archive:
            verified = archive.open_sources((SPEC,))
            with pytest.raises(TrustError, match=r"main/source/Sources"):
                pybuild.pin_source(archive.source_package, verified, "3.99", BUILD)
    finally:
        sources.write_bytes(good)
        for by_hash in arch.path("dists/trixie/main/source/by-hash/SHA256").iterdir():
            if by_hash.name == _sha(good):
                by_hash.write_bytes(good)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@dataclass
class Root:
    tree: Any
    pkgs: tuple[lockfile.LockedPackage, ...]
    source: lockfile.LockedSource
    paths: dict[str, Path]
    """The verified .debs and the tarball, by sha256."""


@pytest.fixture(scope="module")
def build_root(served: Any, tmp_path_factory: pytest.TempPathFactory) -> Root:
    """The build root of cpython.TOOLS, resolved, fetched, verified and assembled by
    compose from the served archive, with the stand-in source pinned."""
    _, url = served
    cache = Cache(tmp_path_factory.mktemp("cache"))
    with _archive(url, cache.root) as archive:
        verified = archive.open_sources((SPEC,))
        res = resolve.solve(archive.index(verified, ARCH), cpython.TOOLS)
        records = [v.record for v in verified]
        pkgs = lockfile.build_packages(records, [res])
        source = pybuild.pin_source(archive.source_package, verified, "3.99", BUILD)
        paths = archive.fetch_debs(wanted_debs(records, list(pkgs), source))
    debs = read_debs(list(pkgs), paths, cache, os.cpu_count() or 1)
    return Root(buildroot.assemble_root(debs, ARCH, cpython.BUILD_USER), pkgs, source, paths)


def test_the_build_root_compiles_and_runs_c_sealed(build_root: Root, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tree, pkgs = build_root.tree, build_root.pkgs
    names = {p.name for p in pkgs}
    # the roots' dependencies followed: the C library, the compiler proper, the assembler
    assert {"libc6", "binutils-common"} <= names
    assert any(n.startswith("cpp-") for n in names) and any(n.startswith("gcc-1") for n in names)
    # What maintainer scripts would have made, made natively:
    for link in ("usr/bin/cc", "usr/bin/awk", "usr/bin/sh"):
        assert tree.lookup(link) is not None, link
    assert tree.entries["etc/ld.so.cache"].data.startswith(b"glibc-ld.so.cache")
    root = tmp_path / "root"
    root.mkdir()
    sandbox.materialize(tree.entries, root, skip=pybuild.SKIP_IN_ROOT)
    work = root / "build"
    (work / "hello.c").write_text(HELLO)
    (work / "Makefile").write_text(MAKEFILE)
    (work / "run.sh").write_text("set -eu\nmake\n./hello \"$1\" 74088 > out.txt\n"
                                 "awk '/^hello/ {print $2}' out.txt > awk.txt\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    env = cpython.environment(1_700_000_000, ARCH, ARCH)
    log = tmp_path / "log"
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.invalid:3128")  # must not leak in
    try:
        sandbox.sealed(root, ["/bin/sh", "/build/run.sh", str(port)], env, "/build", log,
                       (1000, 1000), 120)
    finally:
        listener.close()
    out = (work / "out.txt").read_text()
    assert "hello 42\n" in out
    assert "uid=1000 gid=1000 host=compose\n" in out
    assert "SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C\n" in out
    # Nothing of the host's environment, and no network: the host's listener is not
    # reachable from inside.
    assert "HTTP_PROXY=(unset)\n" in out
    assert "connect=no\n" in out
    assert (work / "awk.txt").read_text() == "42\n"
    # The program is a real x86-64 executable, which the host can run too.
    host = subprocess.run([str(work / "hello"), "1", "74088"], capture_output=True, text=True, check=True)
    assert "hello 42" in host.stdout

    # What it links is found from its ELF file and mapped to the package that ships it.
    built = {"usr/bin/hello": Entry("usr/bin/hello", FILE, 0o755,
                                    data=(work / "hello").read_bytes(), package="cpython")}
    links = dict(pybuild.runtime_links(tree.entries, built, ARCH))
    assert links == {"libc.so.6": "libc6", "libm.so.6": "libc6"}


def test_a_failing_build_shows_the_end_of_its_log(build_root: Root, tmp_path: Path) -> None:
    tree = build_root.tree
    root = tmp_path / "root"
    root.mkdir()
    sandbox.materialize(tree.entries, root, skip=pybuild.SKIP_IN_ROOT)
    (root / "build" / "broken.c").write_text("int main(void) { return undeclared; }\n")
    with pytest.raises(ComposeError, match=r"(?s)exit 1.*undeclared"):
        sandbox.sealed(root, ["/bin/sh", "-c", "cc -o /build/x /build/broken.c"],
                       cpython.environment(0, ARCH, ARCH), "/build", tmp_path / "log", (1000, 1000), 120)


def test_a_build_root_without_a_compiler_is_refused() -> None:
    from composer.image import assemble

    tree = assemble.merged_usr(ARCH, 0)
    with pytest.raises(ComposeError, match=r"no /usr/bin/sh, /usr/bin/cc, /usr/bin/make"):
        buildroot.setup(tree, ARCH, cpython.BUILD_USER)


def test_build_roots_follow_the_options() -> None:
    plain = cpython.build_roots("3.13", PythonBuild("forky"))
    assert "libreadline-dev" in plain and "libgdbm-dev" in plain and "libzstd-dev" not in plain
    lean = cpython.build_roots("3.14", PythonBuild("forky", readline=False))
    assert "libzstd-dev" in lean
    assert not {"libreadline-dev", "libgdbm-dev", "libgdbm-compat-dev"} & set(lean)
    args = cpython.configure_args("3.14", PythonBuild("forky", readline=False, lto=True), ARCH,
                                  ARCH)
    assert "--without-readline" in args and "--with-lto" in args
    assert "--enable-optimizations" not in args
    one = cpython.cache_key("a" * 64, "3.14", PythonBuild("forky"), ARCH, [], ARCH)
    assert one != cpython.cache_key("a" * 64, "3.14", PythonBuild("forky", pgo=True), ARCH, [],
                                    ARCH)
    assert one != cpython.cache_key("b" * 64, "3.14", PythonBuild("forky"), ARCH, [], ARCH)
    assert one != cpython.cache_key("a" * 64, "3.14", PythonBuild("forky"), ARCH,
                                    [cpython.Pinned("gcc", "1", ARCH, "c" * 64)], ARCH)


def test_bwrap_is_there() -> None:
    assert shutil.which("bwrap"), "bubblewrap is needed: .ci/setup installs it"


def test_the_build_step_installs_caches_and_reproduces(build_root: Root, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    said: list[str] = []

    def build(paths: dict[str, Path], reuse: bool = True) -> pybuild.Interpreter:
        return pybuild.interpreter(build_root.source, "3.99", BUILD, ARCH, build_root.pkgs,
                                   paths, cache, said.append, {}, reuse=reuse)

    got = build(build_root.paths)
    files = got.entries
    # What make install put in DESTDIR, read back; the byte-code it wrote is gone
    assert files["usr/bin/python3"].target == "python3.99"
    assert files["usr/bin/python3.99"].kind == FILE and files["usr/bin/python3.99"].mode == 0o755
    assert {"usr/lib/python3.99/lib-dynload/ext.so", "usr/include/python3.99/Python.h",
            "usr/lib/python3.99/LICENSE.txt"} <= set(files)
    assert not [p for p in files if "__pycache__" in p]
    assert {e.package for e in files.values()} == {"cpython"}
    # configure had the recipe's options, the config.site and the tarball's epoch
    args = files["usr/lib/python3.99/configure.args"].data.decode()
    assert args.startswith(" ".join(cpython.configure_args("3.99", BUILD, ARCH, ARCH)) + "\n")
    assert "SOURCE_DATE_EPOCH=1700000500\n" in args
    # stripped as dh_strip does: no debugging sections left
    for path in ("usr/bin/python3.99", "usr/lib/python3.99/lib-dynload/ext.so"):
        assert b".debug_info" not in files[path].data and b".comment" not in files[path].data
    # what the ELF files link, mapped to the build root's packages
    assert got.links == (("libc.so.6", "libc6"), ("libm.so.6", "libc6"))

    # From the cache: nothing is fetched or built (no file is given)
    built_before = len(said)
    assert any("building CPython 3.99" in m for m in said)
    again = build({})
    assert said[built_before:] == []
    assert (again.tree_sha256, again.links) == (got.tree_sha256, got.links)
    assert dict(again.entries) == dict(got.entries)
    # Built again from nothing cached: the same tree, byte for byte
    rebuilt = build(build_root.paths, reuse=False)
    assert rebuilt.tree_sha256 == got.tree_sha256
    pybuild.check_against_lock(rebuilt, lockfile.BuiltPython(ARCH, got.tree_sha256, got.links),
                               ARCH)
    with pytest.raises(ComposeError, match=r"differs from the one the lock was made from"):
        pybuild.check_against_lock(rebuilt, lockfile.BuiltPython(ARCH, "0" * 64, got.links), ARCH)
    # A damaged cache entry is not used: the build is made again
    for damaged in (tmp_path / "cache" / "derived").rglob("*.cpython-tree"):
        raw = damaged.read_bytes()
        damaged.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(KeyError):
        build({})
    assert build(build_root.paths).tree_sha256 == got.tree_sha256


def test_a_failed_build_keeps_its_log(build_root: Root, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # configure fails: the environment names no config.site
    monkeypatch.setattr(pybuild.cpython, "environment",
                        lambda epoch, *_: {"PATH": "/usr/bin:/bin", "CONFIG_SITE": "/nonexistent"})
    with pytest.raises(ComposeError, match=r"(?s)the build failed \(exit 1\).*"
                                           r"configure: no config.site at /nonexistent") as failed:
        pybuild.interpreter(build_root.source, "3.99", BUILD, ARCH, build_root.pkgs,
                            build_root.paths, Cache(tmp_path / "cache"), lambda _: None, {})
    log = Path(str(failed.value).split("log (", 1)[1].split("):", 1)[0])
    assert "compose: configure" in log.read_text()
    assert failed.value.hint is None  # a failed compile is not a sandbox problem
    log.unlink()


def test_a_bad_build_timeout_is_refused(build_root: Root, tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"COMPOSE_BUILD_TIMEOUT='soon' is not a number"):
        pybuild.interpreter(build_root.source, "3.99", BUILD, ARCH, build_root.pkgs,
                            build_root.paths, Cache(tmp_path / "cache"), lambda _: None,
                            {"COMPOSE_BUILD_TIMEOUT": "soon"})


ROOT_DIR = Path(__file__).resolve().parent.parent
LATEST = ROOT_DIR / "locks" / "py313-latest.lock.toml"


def test_a_source_built_lock_reads_back_and_is_checked() -> None:
    text = LATEST.read_text()
    lk = lockfile.loads(text, LATEST)
    assert lk.version == 2 and lockfile.dumps(lk) == text
    # a [[python-build]] for every architecture, and an upstream tarball's path
    no_build = text.replace('[[python-build]]\narchitecture = "amd64"',
                            '[[python-build]]\narchitecture = "arm64"')
    with pytest.raises(LockError, match=r"\[\[python-build\]\] is for arm64, arm64, the lock "
                                        r"needs amd64, arm64"):
        lockfile.loads(no_build, LATEST)
    assert lk.python_source is not None
    bad = text.replace(lk.python_source.filename, "pool/main/p/python3.13/x?y.orig.tar.xz")
    with pytest.raises(LockError, match=r"is not the archive path of an upstream tarball"):
        lockfile.loads(bad, LATEST)
    # the interpreter is a package of what ships: diff and why see it
    shipped = {p.name: p for p in lk.shipped("amd64")}
    assert shipped["cpython"].version == lk.python_source.upstream_version
    newer = lockfile.loads(text.replace(
        f'upstream-version = "{lk.python_source.upstream_version}"', 'upstream-version = "3.13.99"'),
        LATEST)
    assert [(c.architecture, c.name, c.kind, c.new_version) for c in lockfile.diff(lk, newer)] == [
        (arch, "cpython", "upgraded", "3.13.99") for arch in ("amd64", "arm64")]
    from composer import pipeline

    # libffi8 is no root of py313-latest: only the interpreter wants it
    assert pipeline.why(lk, "libffi8", "amd64") == [[("cpython", None), ("libffi8", None)]]
