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
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer import cpython
from composer.archive.cache import Cache
from composer.debian import deb as debfmt
from composer.debian import version as debversion
from composer.errors import ComposeError, LockError
from composer.image import buildroot, layer, ldcache
from composer.image.tree import DIR, FILE, HARDLINK, SYMLINK, Entry
from composer.lockfile import BuiltPython, Lock, LockedPackage, LockedSource
from composer.model import INTERPRETER, SOURCE_BUILD_MACHINE, PackageRecord, Profile, PythonBuild
from composer.pipeline import sandbox

BUILD_TIMEOUT = 4 * 3600.0
SKIP_IN_ROOT = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
                "usr/share/lintian/")
"""What of the build root's packages is not written to disk for a build."""

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
    newest = max(records, key=lambda r: debversion.key(r.version))
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


def tree_digest(entries: Mapping[str, Entry]) -> str:
    h = hashlib.sha256()
    for path in sorted(entries):
        e = entries[path]
        h.update(json.dumps([path, e.kind, e.mode, e.target,
                             hashlib.sha256(e.data).hexdigest() if e.kind == FILE else ""]
                            ).encode() + b"\n")
    return h.hexdigest()


def read_output(root: Path, top: str) -> dict[str, Entry]:
    """The tree the build installed at ``top`` below ``root`` as entries: owner root,
    modes 0755/0644 (what make install chose for each, less group and other write), no
    times. The build owned ``root``: nothing on the way to ``top`` may be a symlink,
    or what is read could be a host file."""
    where = root / top
    if where.resolve() != root.resolve() / top or where.is_symlink():
        raise ComposeError(f"the build replaced /{top} with a link out of its root",
                           "the build root or the source is not what the lock pins")
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(where):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            path = full.relative_to(where).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries[path] = Entry(path, SYMLINK, 0o777, target=os.readlink(full),
                                      package=INTERPRETER)
            elif stat.S_ISDIR(st.st_mode):
                entries[path] = Entry(path, DIR, 0o755, package=INTERPRETER)
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                entries[path] = Entry(path, FILE, mode, data=full.read_bytes(),
                                      package=INTERPRETER)
            else:
                raise ComposeError(f"the build installed /{path}, which is not a file, "
                                   "directory or symlink")
    return entries


def unpack_source(tarball: Path, name: str, root: Path, dest: str) -> int:
    """Write the tarball's single top directory as ``dest`` (a path below ``root``),
    read as strictly as a package (no absolute path, no ``..``, no device) and written
    without following a symlink. Returns the build's SOURCE_DATE_EPOCH: the newest time
    in the tarball (its release), so that it follows from the source's hash alone."""
    members = [m for m in debfmt.read_tarball(tarball.read_bytes(), name, name) if m.path]
    tops = sorted({m.path.split("/", 1)[0] for m in members})
    if len(tops) != 1 or any(m.path == tops[0] and m.kind != DIR for m in members):
        raise ComposeError(f"{name}: expected one top directory, found "
                           f"{', '.join(tops[:5]) or 'nothing'}")

    def moved(path: str) -> str:
        return dest + path[len(tops[0]):]

    entries = {moved(m.path): Entry(moved(m.path), m.kind, m.mode, data=m.data,
                                    target=moved(m.target) if m.kind == HARDLINK else m.target)
               for m in members}
    sandbox.materialize(entries, root, skip=())
    return max(m.mtime for m in members)


def runtime_links(root: Mapping[str, Entry], output: Mapping[str, Entry], arch: str
                  ) -> tuple[tuple[str, str], ...]:
    """Each shared library the output's ELF objects need, with the build root's package
    that ships the file ld.so would load (its libraries are those of the base suite)."""
    from composer.audit import linkage
    from composer.audit.evaluate import linker_inputs

    merged = {**root, **output}
    files, symlinks, owner = linker_inputs(merged)
    cache = [(c.key.decode(), c.path.decode()) for c in ldcache.entries(merged, arch)
             if c.hwcaps is None]
    linker = linkage.Linker(files, symlinks, owner, cache, ldcache.ARCHES[arch].system_dirs)
    found: dict[str, str] = {}
    for key in sorted(set(linker.objects) & set(output)):
        for needed, hit in zip(linker.objects[key].needed, linker.lookups(key), strict=True):
            package = owner.get(hit.resolved or "", "")
            if not package:
                raise ComposeError(f"[{arch}] the built /{key} needs {needed}, which no package "
                                   "of the build root ships", hit.error)
            if package != INTERPRETER:
                found.setdefault(needed, package)
    return tuple(sorted(found.items()))


def interpreter(source: LockedSource, version: str, build: PythonBuild, arch: str,
                root_pkgs: Sequence[LockedPackage], paths: Mapping[str, Path], cache: Cache,
                say: Callable[[str], None], env: Mapping[str, str], reuse: bool = True,
                build_python: tuple[str, str, Callable[[], Interpreter]] | None = None
                ) -> Interpreter:
    """The interpreter for ``arch``, from the cache (unless ``reuse`` is off) or built
    now. ``paths`` gives the verified files (the tarball and the build root's .debs) by
    sha256; it is read only when the interpreter is built. ``build_python``: for a cross
    build, the build machine's architecture, the tree digest of its own build of this
    CPython, and how to get that build (asked for only when this one is built)."""
    from composer.pipeline.tree import read_debs

    machine = build_python[0] if build_python else arch
    if not cpython.supported(arch):
        raise ComposeError(f"[{arch}] compose cannot build CPython for {arch}",
                           f"it builds for {', '.join(sorted(cpython.TRIPLETS))}; use build = "
                           f"\"debian\" for {arch}")
    if not sandbox.native(machine):
        how = "natively" if machine == arch else "by cross-compiling"
        raise ComposeError(f"[{arch}] the lock builds CPython for {arch} on an {machine} machine "
                           f"({how}), and this one cannot run {machine} programs",
                           f"build on an {machine} machine")
    pinned = [cpython.Pinned(p.name, p.version, p.deb_architecture, p.sha256) for p in root_pkgs]
    key = cpython.cache_key(source.sha256, version, build, arch, pinned, machine,
                            build_python[1] if build_python else None)
    # Derived cache entries carry their own checksum: one that is damaged reads as None.
    meta_raw = cache.read_derived(key, "cpython-meta") if reuse else None
    blob = cache.read_derived(key, "cpython-tree") if meta_raw is not None else None
    if meta_raw is not None and blob is not None:
        meta = json.loads(meta_raw)
        entries = {m.path: Entry(m.path, m.kind, m.mode, data=m.data, target=m.target,
                                 package=INTERPRETER)
                   for m in debfmt.read_tarball(blob, "cpython.tar.zst", "cached CPython")
                   if m.path}
        return Interpreter(entries, meta["tree-sha256"], tuple(map(tuple, meta["links"])))
    from composer.archive.http import seconds_from

    timeout = seconds_from(env, "COMPOSE_BUILD_TIMEOUT", BUILD_TIMEOUT, 7 * 86400)
    fd, log_name = tempfile.mkstemp(prefix=f"compose-cpython-{arch}-", suffix=".log")
    os.close(fd)
    log = Path(log_name)
    cross = "" if machine == arch else f", cross-compiled on {machine}"
    with tempfile.TemporaryDirectory(prefix="compose-cpython-") as tmp:
        root = Path(tmp) / "root"
        epoch = unpack_source(paths[source.sha256], source.filename.rsplit("/", 1)[-1], root,
                              cpython.SOURCE_DIR.lstrip("/"))
        say(f"[{arch}] assembling the build root ({len(root_pkgs)} packages{cross})")
        debs = read_debs(list(root_pkgs), paths, cache, os.cpu_count() or 1)
        tree = buildroot.assemble_root(debs, machine, cpython.BUILD_USER, SKIP_IN_ROOT,
                                       cpython.compiler(arch, machine))
        sandbox.materialize(tree.entries, root, skip=())
        if build_python:
            where = cpython.BUILD_PYTHON.lstrip("/")
            sandbox.materialize({f"{where}/{k}": dataclasses.replace(e, path=f"{where}/{k}")
                                 for k, e in build_python[2]().entries.items()}, root, skip=())
        home = root / cpython.HOME.lstrip("/")
        (home / "config.site").write_text(cpython.config_site(arch, machine))
        jobs = len(os.sched_getaffinity(0))
        (home / "build.sh").write_text(cpython.script(version, build, arch, jobs, machine))
        say(f"[{arch}] building CPython {source.upstream_version} (sealed{cross}; {jobs} jobs; "
            f"log {log})")
        _, uid, gid = cpython.BUILD_USER
        sandbox.sealed(root, ["/bin/sh", "-eu", f"{cpython.HOME}/build.sh"],
                       cpython.environment(epoch, arch, machine), cpython.SOURCE_DIR, log,
                       (uid, gid), timeout)
        entries = read_output(root, cpython.DESTDIR.lstrip("/"))
    log.unlink()
    if not entries:
        raise ComposeError(f"[{arch}] the CPython build installed nothing")
    links = runtime_links(tree.entries, entries, arch)
    digest = tree_digest(entries)
    cache.write_derived(key, "cpython-tree",
                        layer.compress(layer.tar_layer(entries.values(), 0), "zstd"))
    cache.write_derived(key, "cpython-meta", json.dumps(
        {"tree-sha256": digest, "links": [list(x) for x in links]}).encode())
    return Interpreter(entries, digest, links)


def check_against_lock(got: Interpreter, locked: BuiltPython, arch: str) -> None:
    """A build must give what the lock was made from: the same files, hence the same
    runtime libraries."""
    if got.tree_sha256 != locked.tree_sha256:
        raise ComposeError(
            f"[{arch}] the CPython built here (tree sha256:{got.tree_sha256[:16]}…) differs from "
            f"the one the lock was made from (sha256:{locked.tree_sha256[:16]}…)",
            "the build is not reproducible on this machine, or the lock was made by another "
            "version of compose; please report it, with both machines' kernels")


# -- lock ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedBuild:
    source: LockedSource
    build_packages: tuple[LockedPackage, ...]
    builds: tuple[BuiltPython, ...]

    @property
    def linked(self) -> dict[str, set[str]]:
        """Per architecture, the packages the interpreter links."""
        return {b.architecture: {package for _, package in b.links} for b in self.builds}


def lock_build(prof: Profile, archive: Any, verified: Sequence[Any], indexes: Sequence[Any],
               cache: Cache, say: Callable[[str], None], env: Mapping[str, str]) -> LockedBuild:
    """Pin the source and the build roots, and build (or take from the cache) each
    architecture's interpreter to learn what it links. The build machine's
    (``SOURCE_BUILD_MACHINE``) is built natively, shipped or not; the others are
    cross-compiled on it."""
    from composer import lockfile, resolve
    from composer.pipeline.build import _Debs, wanted_debs

    build = prof.python_build
    version = prof.python_version
    assert build is not None and version is not None
    source = pin_source(archive.source_package, verified, version, build)
    records = [v.record for v in verified]
    by_arch = {ix.architecture: ix for ix in indexes}

    def index(arch: str) -> Any:
        if arch not in by_arch:
            by_arch[arch] = archive.index(verified, arch)
        return by_arch[arch]

    machine = SOURCE_BUILD_MACHINE
    if not sandbox.native(machine):
        import platform

        raise ComposeError(f"CPython is compiled from source on {machine} machines ({machine} "
                           f"natively, the others cross-compiled), and this one is "
                           f"{platform.machine()}",
                           f"lock on an {machine} machine, or use build = \"debian\"")
    pkgs: list[LockedPackage] = []
    done: dict[str, tuple[BuiltPython, Interpreter]] = {}

    def run(arch: str, root_pkgs: list[LockedPackage],
            build_python: tuple[str, str, Callable[[], Interpreter]] | None) -> None:
        files = _Debs(functools.partial(archive.fetch_debs,
                                        wanted_debs(records, root_pkgs, source)))
        got = interpreter(source, version, build, arch, root_pkgs, files, cache, say, env,
                          build_python=build_python)
        pkgs.extend(root_pkgs)
        done[arch] = (BuiltPython(arch, got.tree_sha256, got.links,
                                  build_python[0] if build_python else ""), got)

    res = resolve.solve(index(machine), cpython.build_roots(version, build))
    run(machine, list(lockfile.build_packages(records, [res])), None)
    # The build machine's CPython runs in a cross build root: what it links too.
    native_build, native = done[machine]
    runs_with = sorted({package for _, package in native_build.links})
    for arch in sorted(a for a in prof.architectures if a != machine):
        tools, libraries = cpython.cross_roots(version, build, arch)
        on, to = resolve.cross(index(machine), index(arch), (*tools, *runs_with), libraries)
        root_pkgs = [dataclasses.replace(p, architecture=arch)
                     for p in lockfile.build_packages(records, [on])]
        root_pkgs += lockfile.build_packages(records, [to])
        run(arch, sorted(root_pkgs, key=lambda p: (p.name, p.deb_architecture)),
            (machine, native.tree_sha256, lambda: native))
    return LockedBuild(source, tuple(sorted(pkgs, key=lambda p: (p.architecture, p.name,
                                                                  p.deb_architecture))),
                       tuple(done[a][0] for a in sorted(done)))


def check_closure(prof: Profile, arch: str, packages: Sequence[PackageRecord],
                  build: LockedBuild) -> None:
    """The image's closure against the build: a library the interpreter was linked with
    ships in the very version it was built against, Debian's own CPython does not come
    in by another way (its files would clash with the built one's), and ``readline =
    false`` holds."""
    from composer.profile import DEBIAN_PYTHON, GPL3_LINE_EDITING

    assert prof.python_build is not None
    shipped = {p.name: p.version for p in packages}
    built_with = {p.name: p.version for p in build.build_packages
                  if p.architecture == arch and p.deb_architecture in (arch, "all")}
    for name in sorted(build.linked.get(arch, ())):
        if shipped.get(name) != built_with.get(name):
            raise LockError(
                f"[{arch}] CPython was built against {name} {built_with.get(name)}, but the "
                f"image would ship {shipped.get(name, 'none')}",
                "the build root and the image must take it from the same suite: check the "
                "profile's [packages] prefer and exclude")
    debian = sorted(n for n in shipped if DEBIAN_PYTHON.fullmatch(n))
    if debian:
        raise LockError(f"[{arch}] {', '.join(debian)}, Debian's CPython, would ship beside "
                        "the one built from source",
                        "find what wants it with `compose why`, and exclude it")
    if not prof.python_build.readline:
        gpl = sorted(n for n in shipped if GPL3_LINE_EDITING.fullmatch(n))
        if gpl:
            raise LockError(f"[{arch}] {', '.join(gpl)} would ship, although [python] readline "
                            "= false", "find what wants it with `compose why`, and exclude it")


def with_build(lk: Lock, built: LockedBuild) -> Lock:
    return dataclasses.replace(lk, python_source=built.source,
                               build_packages=built.build_packages, python_builds=built.builds)
