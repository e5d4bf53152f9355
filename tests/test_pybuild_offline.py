"""CPython source builds, offline: the upstream tarball pinned through a signed Sources
index, and a build root that compose assembles from real toolchain .debs (the host's
own gcc, repacked) compiling and running C, sealed."""

from __future__ import annotations

import io
import lzma
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Iterator
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
ARCH = "amd64"
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


def _tarball(version: str) -> bytes:
    """A small upstream-shaped tarball: one top directory, dated files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in ((f"Python-{version}/README.rst", b"This is Python\n", 1_700_000_000),
                                  (f"Python-{version}/configure", b"#!/bin/sh\n", 1_700_000_500)):
            info = tarfile.TarInfo(name)
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
        assert pybuild.source_epoch(data) == 1_700_000_500
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
        with _archive(url, tmp_path / "cache") as archive, pytest.raises(TrustError):
            verified = archive.open_sources((SPEC,))
            pybuild.pin_source(archive.source_package, verified, "3.99", BUILD)
    finally:
        sources.write_bytes(good)
        for by_hash in arch.path("dists/trixie/main/source/by-hash/SHA256").iterdir():
            by_hash.write_bytes(good) if by_hash.name == _sha(good) else None


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def build_root(served: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The build root of cpython.TOOLS, resolved, fetched, verified and assembled by
    compose from the served archive."""
    _, url = served
    cache = Cache(tmp_path_factory.mktemp("cache"))
    with _archive(url, cache.root) as archive:
        verified = archive.open_sources((SPEC,))
        res = resolve.solve(archive.index(verified, ARCH), cpython.TOOLS)
        pkgs = lockfile.build_packages([v.record for v in verified], [res])
        paths = archive.fetch_debs(wanted_debs([v.record for v in verified], list(pkgs)))
    debs = read_debs(list(pkgs), paths, cache, os.cpu_count() or 1)
    return buildroot.assemble_root(debs, ARCH, 1_700_000_000, cpython.BUILD_USER), pkgs


def test_the_build_root_compiles_and_runs_c_sealed(build_root: Any, tmp_path: Path) -> None:
    tree, pkgs = build_root
    names = {p.name for p in pkgs}
    assert {"gcc", "make", "libc6-dev", "binutils"} <= names
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
    env = cpython.environment(1_700_000_000)
    log = tmp_path / "log"
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


def test_a_failing_build_shows_the_end_of_its_log(build_root: Any, tmp_path: Path) -> None:
    tree, _ = build_root
    root = tmp_path / "root"
    root.mkdir()
    sandbox.materialize(tree.entries, root, skip=pybuild.SKIP_IN_ROOT)
    (root / "build" / "broken.c").write_text("int main(void) { return undeclared; }\n")
    with pytest.raises(ComposeError, match=r"(?s)exit 1.*undeclared"):
        sandbox.sealed(root, ["/bin/sh", "-c", "cc -o /build/x /build/broken.c"],
                       cpython.environment(0), "/build", tmp_path / "log", (1000, 1000), 120)


def test_a_build_root_without_a_compiler_is_refused() -> None:
    from composer.image import assemble

    tree = assemble.merged_usr(ARCH, 0)
    with pytest.raises(ComposeError, match=r"no /usr/bin/sh, /usr/bin/cc, /usr/bin/make"):
        buildroot.setup(tree, ARCH, 0, cpython.BUILD_USER)


def test_build_roots_follow_the_options() -> None:
    plain = cpython.build_roots("3.13", PythonBuild("forky"))
    assert "libreadline-dev" in plain and "libgdbm-dev" in plain and "libzstd-dev" not in plain
    lean = cpython.build_roots("3.14", PythonBuild("forky", readline=False))
    assert "libzstd-dev" in lean
    assert not {"libreadline-dev", "libgdbm-dev", "libgdbm-compat-dev"} & set(lean)
    args = cpython.configure_args("3.14", PythonBuild("forky", readline=False, lto=True), ARCH)
    assert "--without-readline" in args and "--with-lto" in args
    assert "--enable-optimizations" not in args
    one = cpython.cache_key("a" * 64, "3.14", PythonBuild("forky"), ARCH, [])
    assert one != cpython.cache_key("a" * 64, "3.14", PythonBuild("forky", pgo=True), ARCH, [])
    assert one != cpython.cache_key("b" * 64, "3.14", PythonBuild("forky"), ARCH, [])
    assert one != cpython.cache_key("a" * 64, "3.14", PythonBuild("forky"), ARCH,
                                    [cpython.Pinned("gcc", "1", ARCH, "c" * 64)])


def test_bwrap_is_there() -> None:
    assert shutil.which("bwrap"), "bubblewrap is needed: .ci/setup installs it"
