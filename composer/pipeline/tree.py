"""From a lock to an image's file tree, for one architecture: read the verified .debs,
merge them, strip, do what maintainer scripts would have done, byte-compile Python with
the image's own interpreter, and write ld.so.cache. Only the lock is read: no index, no
resolution.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from composer import cpython
from composer.archive.cache import Cache
from composer.debian import deb as debfmt
from composer.errors import ComposeError
from composer.image import assemble, effects, ldcache, pycompile
from composer.image.tree import FILE, Entry
from composer.lockfile import Lock, LockedPackage
from composer.model import Profile


@dataclass
class TreeReport:
    arch: str
    packages: int = 0
    files: int = 0
    certificates: int = 0
    compiled: int = 0
    applets: int = 0
    special_bits_dropped: list[str] = field(default_factory=list)
    """Files whose package made them setuid or setgid, without the profile allowing it."""
    not_compiled: list[str] = field(default_factory=list)
    """Sources the image's interpreter would not compile (reported, not shipped as .pyc)."""
    no_copyright: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuiltTree:
    arch: str
    entries: Mapping[str, Entry]
    user: str
    """The config's ``User``, resolved to ``uid:gid``."""
    report: TreeReport


def read_debs(pkgs: list[LockedPackage], paths: Mapping[str, Path], cache: Cache,
              workers: int, reuse: bool = True) -> list[tuple[str, debfmt.Deb]]:
    """Every locked package read from the cache, in parallel (decompression releases the
    GIL). The cache holds only verified bytes, so no hash is computed again here. A
    package is decompressed once, into a zstd copy kept beside it, which this and later
    builds read (xz is most of the time of reading a package)."""
    def one(p: LockedPackage) -> tuple[str, debfmt.Deb]:
        where = f"{p.name} {p.version} {p.architecture}"
        fast = cache.read_derived(p.sha256, "deb-zst") if reuse else None
        if fast is None:
            fast = debfmt.repack(paths[p.sha256].read_bytes(), where)
            cache.write_derived(p.sha256, "deb-zst", fast)
        return p.name, debfmt.read(fast, where)

    biggest_first = sorted(pkgs, key=lambda p: -p.size)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, biggest_first))


_SHARED_OBJECT = re.compile(r"\.so(\.[0-9]+)*$")

RunProgram = Callable[[Mapping[str, Entry], str, list[list[str]], list[str]], list[bytes]]
"""(tree, arch, shares of stdin lines, argv) -> the program's output per share."""


def assemble_tree(prof: Profile, lock: Lock, arch: str, debs: list[tuple[str, debfmt.Deb]],
                  epoch: int, cache: Cache, run_program: RunProgram, workers: int,
                  reuse: bool = True, interpreter: Mapping[str, Entry] | None = None
                  ) -> BuiltTree:
    """The image's tree; with ``reuse`` off, nothing derived earlier (byte-code) is
    taken from the cache. ``interpreter``: the files of a CPython built from source."""
    report = TreeReport(arch, packages=len(debs))
    tree = assemble.merged_usr(arch, epoch)
    assemble.merge(tree, debs)
    if interpreter is not None and lock.python_source is not None:
        runtime = assemble.glob_any(cpython.RUNTIME_STRIP)
        assert runtime is not None
        assemble.overlay(tree, {p: e for p, e in interpreter.items() if not runtime.match(p)},
                         epoch)
        effects.built_copyright(tree, lock.python_source, prof.python_version or "", epoch)
    if prof.only:
        locked = {name for name, _ in debs}
        for name, _ in prof.only:
            if name not in locked:
                raise ComposeError(f"[{arch}] [packages] only names {name}, which the lock does not hold",
                                   f"add {name} to [packages] include, or drop it from only")
        assemble.only(tree, dict(prof.only))
    report.special_bits_dropped = assemble.drop_special_bits(tree, prof.image.setuid)

    # The CA bundle is made from the shipped certificates before stripping, so that a
    # profile can strip usr/share/ca-certificates and ship the bundle alone.
    report.certificates = effects.ca_bundle(tree, epoch)
    if report.certificates == 0 and any(name == "ca-certificates" for name, _ in debs):
        raise ComposeError(f"[{arch}] ca-certificates is locked but ships no certificate",
                           "check the lock; the image would have no CA bundle")
    patterns: list[str] = []
    if prof.strip_defaults:
        patterns += assemble.DEFAULT_STRIP
    if prof.python_version and prof.python_trim:
        patterns += assemble.python_trim(prof.python_version)
    patterns += prof.strip
    assemble.strip(tree, patterns, prof.keep)

    acc = effects.accounts(prof.users, prof.groups)
    effects.users_and_groups(tree, acc, epoch)
    report.no_copyright = effects.copyrights(tree, debs, epoch)
    effects.dpkg_status(tree, debs, epoch)
    effects.system_files(tree, prof.python_version, epoch)
    if prof.busybox_applets:
        report.applets = _applets(tree, arch, epoch, cache, run_program, reuse)

    if prof.python_version and prof.python_compile:
        _compile(tree, prof.python_version, lock, arch, epoch, cache, run_program, workers,
                 report, reuse)

    cache_bytes = ldcache.build(tree.entries, arch)
    if cache_bytes is not None:
        tree.put(Entry("etc/ld.so.cache", FILE, 0o644, data=cache_bytes, mtime=epoch))
    report.files = len(tree.entries)
    return BuiltTree(arch, dict(tree.entries), acc.resolve(prof.image.user), report)


def _applets(tree: assemble.Tree, arch: str, epoch: int, cache: Cache,
             run_program: RunProgram, reuse: bool) -> int:
    """busybox's applet links; its list is asked of the image's busybox itself, once per
    binary (the answer is kept in the cache under the binary's digest)."""
    binary = effects.busybox_binary(tree)
    if binary is None:
        raise ComposeError(f"[{arch}] [busybox] applets = true, but no busybox is in the image",
                           "check [packages] and [strip]: /usr/bin/busybox must ship")
    h = hashlib.sha256(f"busybox\0{arch}\0{effects.BUSYBOX_LIST}\0".encode())
    h.update(tree.entries[binary].data)
    key = h.hexdigest()
    listing = cache.read_derived(key, "applets") if reuse else None
    fresh = listing is None
    if listing is None:
        listing = run_program(tree.entries, arch, [[]], [f"/{binary}", effects.BUSYBOX_LIST])[0]
    made = effects.busybox_applets(tree, binary, listing, epoch)  # checks the listing
    if fresh:
        cache.write_derived(key, "applets", listing)
    return len(made)


def _interpreter_identity(tree: assemble.Tree, version: str, lock: Lock, arch: str) -> list[str]:
    """The packages the byte-code can depend on, by sha256: those shipping the interpreter
    or a shared object it could load. A package that adds neither (busybox, dash, tzdata)
    leaves the byte-code of the same interpreter and sources as it was."""
    interpreter = pycompile.interpreter(version).lstrip("/")
    owners = {e.package for p, e in tree.entries.items()
              if e.kind == FILE and (p == interpreter or _SHARED_OBJECT.search(p))}
    built = lock.python_build(arch)
    return [arch, *sorted(p.sha256 for p in lock.for_arch(arch) if p.name in owners),
            *([built.tree_sha256] if built else [])]


def _compile(tree: assemble.Tree, version: str, lock: Lock, arch: str, epoch: int, cache: Cache,
             run_program: RunProgram, workers: int, report: TreeReport, reuse: bool) -> None:
    if pycompile.interpreter(version).lstrip("/") not in tree.entries:
        return
    srcs = pycompile.sources(tree.entries, version)
    if not srcs:
        return
    key = pycompile.key(_interpreter_identity(tree, version, lock, arch), tree.entries, srcs)
    blob = cache.read_derived(key, "pyc") if reuse else None
    if blob is not None:
        pycs, failed, tag = pycompile.parse(blob)
    else:
        outputs = run_program(tree.entries, arch, pycompile.split(srcs, workers),
                              pycompile.argv(version))
        pycs, failed, tag = {}, [], ""
        for out in outputs:
            p, f, tag = pycompile.parse(out)
            pycs.update(p)
            failed += f
        cache.write_derived(key, "pyc", pycompile.pack(pycs, failed, tag))
    for e in pycompile.entries(tree.entries, pycs, tag, epoch):
        tree.put(e)
    report.compiled = len(pycs)
    report.not_compiled = sorted(failed)

