"""CPython built from source (``[python] build = "source"``).

At lock time: the upstream tarball is pinned from the signed Sources index of the
profile's ``source-suite``; the build root is resolved from the base suites by the same
solver as the image, and pinned apart from it; the interpreter is built (or taken from
the cache) so that the shared libraries its ELF files need are known, each mapped to the
package of the base suite that ships it; those packages join the image's closure.

At build time, the interpreter's files come from the cache under a key that hashes every
input (``composer.cpython.cache_key``), or are built again in a build root assembled from
the lock's pinned .debs and checked against the digest the lock recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer import cpython
from composer.archive.cache import Cache
from composer.debian import version as debversion
from composer.errors import ComposeError, LockError
from composer.image import buildroot, ldcache
from composer.image.tree import DIR, FILE, SYMLINK, Entry
from composer.lockfile import BuiltPython, Lock, LockedPackage, LockedSource
from composer.model import PackageRecord, Profile, PythonBuild
from composer.pipeline import sandbox

BUILD_TIMEOUT = 4 * 3600.0
SKIP_IN_ROOT = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
                "usr/share/lintian/")
"""What of the build root's packages is not written to disk for a build."""

CONFIG_SITE = """\
# Answers for configure's checks that run a program, so that what it finds does not
# depend on the kernel or the devices of the machine that builds.
ac_cv_file__dev_ptmx=yes
ac_cv_file__dev_ptc=no
ac_cv_buggy_getaddrinfo=no
ac_cv_pthread_is_default=yes
ac_cv_pthread_system_supported=yes
ac_cv_aligned_required=no
ac_cv_posix_semaphores_enabled=yes
ac_cv_broken_sem_getvalue=no
ac_cv_working_tzset=yes
ac_cv_computed_gotos=yes
ac_cv_header_bluetooth_bluetooth_h=no
"""


def pin_source(find: Callable[[Any, str], list[Any]], verified: Sequence[Any], version: str,
               build: PythonBuild) -> LockedSource:
    """The newest ``pythonX.Y`` source package of the ``source-suite`` and its upstream
    tarball. ``find(verified_source, name)`` lists a source package's records."""
    name = f"python{version}"
    src = next(v for v in verified if v.spec.suite == build.source_suite)
    records = find(src, name)
    where = f"{src.spec.archive} {src.spec.suite}"
    if not records:
        raise LockError(f"{where} has no source package {name} in its Sources index",
                        f"name a source-suite that carries Python {version}")
    newest = records[0]
    for r in records[1:]:
        if debversion.compare(r.version, newest.version) > 0:
            newest = r
    tarball = newest.upstream_tarball()
    if tarball is None:
        raise LockError(f"{where}: {name} {newest.version} lists no single upstream tarball "
                        "(.orig.tar.*)", "a native or multi-tarball package cannot be built here")
    return LockedSource(
        package=name, version=newest.version, upstream_version=newest.upstream_version(),
        archive=src.spec.archive, suite=src.spec.suite, filename=newest.path(tarball),
        size=tarball.size, sha256=tarball.sha256, patches=cpython.PATCHES,
        recipe=cpython.RECIPE)


# -- the interpreter's files ------------------------------------------------------------

@dataclass(frozen=True)
class Interpreter:
    """A built CPython: its installed files (tree paths, owned by ``cpython``), their
    digest, and the shared libraries they need with the packages that ship them."""

    entries: Mapping[str, Entry]
    tree_sha256: str
    links: tuple[tuple[str, str], ...]
    built: bool
    """Whether it was compiled now (False: taken from the cache)."""


def tree_digest(entries: Mapping[str, Entry]) -> str:
    h = hashlib.sha256()
    for path in sorted(entries):
        e = entries[path]
        h.update(json.dumps([path, e.kind, e.mode, e.target,
                             hashlib.sha256(e.data).hexdigest() if e.kind == FILE else ""]
                            ).encode() + b"\n")
    return h.hexdigest()


def _pack(entries: Mapping[str, Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            e = entries[path]
            info = tarfile.TarInfo(path)
            info.mode = e.mode
            if e.kind == DIR:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == SYMLINK:
                info.type = tarfile.SYMTYPE
                info.linkname = e.target
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(out.getvalue())


def _unpack(blob: bytes) -> dict[str, Entry]:
    import zstandard

    raw = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    entries: dict[str, Entry] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar.getmembers():
            if m.isdir():
                entries[m.name] = Entry(m.name, DIR, m.mode, package=cpython.INTERPRETER_PACKAGE)
            elif m.issym():
                entries[m.name] = Entry(m.name, SYMLINK, 0o777, target=m.linkname,
                                        package=cpython.INTERPRETER_PACKAGE)
            else:
                f = tar.extractfile(m)
                entries[m.name] = Entry(m.name, FILE, m.mode, data=f.read() if f else b"",
                                        package=cpython.INTERPRETER_PACKAGE)
    return entries


def read_output(top: Path) -> dict[str, Entry]:
    """An installed tree as entries: owner root, modes 0755/0644 (what make install
    chose for each, less group and other write), no times."""
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            path = full.relative_to(top).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries[path] = Entry(path, SYMLINK, 0o777, target=os.readlink(full),
                                      package=cpython.INTERPRETER_PACKAGE)
            elif stat.S_ISDIR(st.st_mode):
                entries[path] = Entry(path, DIR, 0o755, package=cpython.INTERPRETER_PACKAGE)
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                entries[path] = Entry(path, FILE, mode, data=full.read_bytes(),
                                      package=cpython.INTERPRETER_PACKAGE)
            else:
                raise ComposeError(f"the build installed /{path}, which is not a file, "
                                   "directory or symlink")
    return entries


def source_epoch(tarball: bytes) -> int:
    """SOURCE_DATE_EPOCH of a build: the newest time in the upstream tarball (its
    release), so that it follows from the source's hash alone."""
    newest = 0
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(tarball) if tarball[:6] == b"\xfd7zXZ\x00"
                                         else tarball), mode="r:*") as tar:
        for m in tar:
            newest = max(newest, int(m.mtime))
    return newest


def _unpack_source(tarball: Path, dest: Path) -> None:
    """The tarball's single top directory becomes ``dest`` (checked by tarfile's
    ``data`` filter: no absolute path, no link out of it, no device)."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".src-") as tmp, \
            tarfile.open(tarball, mode="r:*") as tar:
        tar.extractall(tmp, filter="data")
        tops = os.listdir(tmp)
        if len(tops) != 1 or not (Path(tmp) / tops[0]).is_dir():
            raise ComposeError(f"{tarball.name}: expected one top directory, found "
                               f"{', '.join(sorted(tops)[:5]) or 'nothing'}")
        os.rename(Path(tmp) / tops[0], dest)


def runtime_links(root: Mapping[str, Entry], output: Mapping[str, Entry], arch: str
                  ) -> tuple[tuple[str, str], ...]:
    """Each shared library the output's ELF objects need, with the build root's package
    that ships the file ld.so would load (its libraries are those of the base suite)."""
    from composer.audit import linkage

    merged = {**root, **output}
    files: dict[str, bytes] = {}
    symlinks: dict[str, str] = {}
    owner: dict[str, str] = {}
    for path, e in merged.items():
        if e.kind == SYMLINK:
            symlinks[path] = e.target
        elif e.kind == FILE and e.data[:4] == b"\x7fELF" and (
                path in output or ".so" in path.rsplit("/", 1)[-1]):
            files[path] = e.data
        if e.kind != DIR:
            owner[path] = e.package
    spec = ldcache.ARCHES[arch]
    cache = [(c.key.decode(), c.path.decode()) for c in ldcache.entries(merged, arch)
             if c.hwcaps is None]
    linker = linkage.Linker(files, symlinks, owner, cache, spec.system_dirs)
    found: dict[str, str] = {}
    for key in sorted(linker.objects):
        if key not in output:
            continue
        for needed, hit in zip(linker.objects[key].needed, linker.lookups(key), strict=True):
            package = owner.get(hit.resolved or "", "")
            if hit.resolved is None or not package:
                raise ComposeError(f"[{arch}] the built /{key} needs {needed}, which no package "
                                   "of the build root ships", hit.error)
            if package != cpython.INTERPRETER_PACKAGE:
                found.setdefault(needed, package)
    return tuple(sorted(found.items()))


def interpreter(source: LockedSource, version: str, build: PythonBuild, arch: str,
                root_pkgs: Sequence[LockedPackage], paths: Mapping[str, Path], cache: Cache,
                read_debs: Callable[[list[LockedPackage]], list[tuple[str, Any]]],
                say: Callable[[str], None], env: Mapping[str, str]) -> Interpreter:
    """The interpreter for ``arch``, from the cache or built now. ``paths`` gives the
    verified files (the tarball and the build root's .debs) by sha256; it is read only
    when the cache does not have the build."""
    if not cpython.supported(arch) or not sandbox.native(arch):
        raise ComposeError(f"[{arch}] CPython can be built from source only for the machine's "
                           "own architecture so far",
                           f"build on an {arch} machine, or use build = \"debian\" for {arch}")
    pinned = [cpython.Pinned(p.name, p.version, p.deb_architecture, p.sha256) for p in root_pkgs]
    # The recipe's text is hashed too: a change to it that forgot to bump RECIPE still
    # misses the cache. (The number of jobs is not an input: it changes no output.)
    key = cpython.cache_key(source.sha256, version, build, arch, pinned,
                            [cpython.script(version, build, arch, 0), CONFIG_SITE])
    meta_raw = cache.read_state(f"cpython-meta-{key}")
    blob = cache.read_state(f"cpython-tree-{key}")
    if meta_raw is not None and blob is not None:
        meta = json.loads(meta_raw)
        try:
            entries = _unpack(blob)
        except (tarfile.TarError, ValueError, OSError):
            entries = {}
        if entries and tree_digest(entries) == meta["tree-sha256"]:
            return Interpreter(entries, meta["tree-sha256"],
                               tuple((k, v) for k, v in meta["links"]), built=False)
        say(f"[{arch}] the cached CPython build is damaged: building it again")
    tarball = paths[source.sha256]
    epoch = source_epoch(tarball.read_bytes())
    say(f"[{arch}] assembling the build root ({len(root_pkgs)} packages)")
    tree = buildroot.assemble_root(read_debs(list(root_pkgs)), arch, epoch, cpython.BUILD_USER)
    with tempfile.TemporaryDirectory(prefix="compose-cpython-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        sandbox.materialize(tree.entries, root, skip=SKIP_IN_ROOT)
        build_dir = root / cpython.HOME.lstrip("/")
        _unpack_source(tarball, root / cpython.SOURCE_DIR.lstrip("/"))
        (build_dir / "config.site").write_text(CONFIG_SITE)
        jobs = os.cpu_count() or 1
        (build_dir / "build.sh").write_text(cpython.script(version, build, arch, jobs))
        log = Path(tmp) / "build.log"
        run_env = cpython.environment(epoch) | {"CONFIG_SITE": f"{cpython.HOME}/config.site"}
        timeout = float(env.get("COMPOSE_BUILD_TIMEOUT", BUILD_TIMEOUT))
        say(f"[{arch}] building CPython {source.upstream_version} (sealed; {jobs} jobs)")
        _, uid, gid = cpython.BUILD_USER
        try:
            sandbox.sealed(root, ["/bin/sh", "-eu", f"{cpython.HOME}/build.sh"], run_env,
                           cpython.SOURCE_DIR, log, (uid, gid), timeout)
        except ComposeError as exc:
            kept = Path(tempfile.gettempdir()) / f"compose-cpython-{key[:12]}.log"
            shutil.copyfile(log, kept)
            raise ComposeError(exc.message.replace(str(log), str(kept)), exc.hint) from None
        entries = read_output(root / cpython.DESTDIR.lstrip("/"))
    if not entries:
        raise ComposeError(f"[{arch}] the CPython build installed nothing")
    links = runtime_links(tree.entries, entries, arch)
    digest = tree_digest(entries)
    cache.write_state(f"cpython-tree-{key}", _pack(entries))
    cache.write_state(f"cpython-meta-{key}", json.dumps(
        {"tree-sha256": digest, "links": [list(x) for x in links]}).encode())
    return Interpreter(entries, digest, links, built=True)


def check_against_lock(got: Interpreter, locked: BuiltPython | None, arch: str) -> None:
    """A build must give what the lock was made from: the same files, hence the same
    runtime libraries."""
    if locked is None:
        raise LockError(f"the lock records no CPython build for {arch}",
                        "run `compose lock` again")
    if got.tree_sha256 != locked.tree_sha256:
        raise ComposeError(
            f"[{arch}] the CPython built here (tree sha256:{got.tree_sha256[:16]}…) differs from "
            f"the one the lock was made from (sha256:{locked.tree_sha256[:16]}…)",
            "the build is not reproducible on this machine; please report it, with both "
            "machines' kernels")


# -- lock ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedBuild:
    source: LockedSource
    build_packages: tuple[LockedPackage, ...]
    builds: tuple[BuiltPython, ...]
    linked: dict[str, set[str]]
    """Per architecture, the packages the interpreter links."""


def lock_build(prof: Profile, archive: Any, verified: Sequence[Any], indexes: Sequence[Any],
               cache: Cache, say: Callable[[str], None], env: Mapping[str, str]) -> LockedBuild:
    """Pin the source and the build roots, and build (or take from the cache) each
    architecture's interpreter to learn what it links."""
    from composer import lockfile, resolve
    from composer.pipeline.build import _Debs, wanted_debs

    build = prof.python_build
    version = prof.python_version
    assert build is not None and version is not None
    source = pin_source(archive.source_package, verified, version, build)
    records = [v.record for v in verified]
    roots = cpython.build_roots(version, build)
    resolutions = [resolve.solve(ix, roots) for ix in indexes]
    pkgs = lockfile.build_packages(records, resolutions)
    builds = []
    linked: dict[str, set[str]] = {}
    for arch in prof.architectures:
        root_pkgs = [p for p in pkgs if p.architecture == arch]
        files = _Debs(functools.partial(archive.fetch_debs,
                                        wanted_debs(records, root_pkgs, source)))
        got = interpreter(source, version, build, arch, root_pkgs, files, cache,
                          functools.partial(_read, files=files, cache=cache), say, env)
        builds.append(BuiltPython(arch, got.tree_sha256, got.links))
        linked[arch] = {package for _, package in got.links}
    return LockedBuild(source, pkgs, tuple(builds), linked)


def _read(pkgs: list[LockedPackage], files: Mapping[str, Path], cache: Cache
          ) -> list[tuple[str, Any]]:
    from composer.pipeline.tree import read_debs

    return read_debs(pkgs, files, cache, os.cpu_count() or 1)


def check_closure(prof: Profile, arch: str, packages: Sequence[PackageRecord],
                  build: LockedBuild) -> None:
    """The image's closure against the build: a library the interpreter was linked with
    ships in the very version it was built against, and ``readline = false`` holds."""
    from composer.profile import GPL3_LINE_EDITING

    assert prof.python_build is not None
    shipped = {p.name: p.version for p in packages}
    built_with = {p.name: p.version for p in build.build_packages if p.architecture == arch}
    for name in sorted(build.linked.get(arch, ())):
        if shipped.get(name) != built_with.get(name):
            raise LockError(
                f"[{arch}] CPython was built against {name} {built_with.get(name)}, but the "
                f"image would ship {shipped.get(name, 'none')}",
                "the build root and the image must take it from the same suite: check the "
                "profile's [packages] prefer and exclude")
    if not prof.python_build.readline:
        gpl = sorted(n for n in shipped if GPL3_LINE_EDITING.fullmatch(n))
        if gpl:
            raise LockError(f"[{arch}] {', '.join(gpl)} would ship, although [python] readline "
                            "= false", "find what wants it with `compose why`, and exclude it")


def with_build(lk: Lock, built: LockedBuild) -> Lock:
    return dataclasses.replace(lk, version=2, python_source=built.source,
                               build_packages=built.build_packages, python_builds=built.builds)
