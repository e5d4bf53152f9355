"""``/etc/ld.so.cache`` for an image's file tree: the bytes its own ``ldconfig`` writes.

An image is assembled without running maintainer scripts, so libc-bin's trigger never
runs ``ldconfig``. Without a cache ld.so still finds the libraries in its built-in
directories, but not those that ``/etc/ld.so.conf.d`` adds, and an image built without
one differs from the same packages installed by dpkg. This module computes the cache
from the tree alone (no file system, no subprocess), following what glibc's ldconfig
does (``elf/ldconfig.c``, ``cache.c``, ``readlib.c``, ``readelflib.c``,
``stringtable.c`` and the per-architecture readers), with Debian's configuration:

* Directories: ``/etc/ld.so.conf`` (``include`` globs, sorted, relative to the including
  file; ``hwcap`` lines ignored), then Debian's trusted directories ``/lib/<triplet>``,
  ``/usr/lib/<triplet>``, ``/lib``, ``/usr/lib``. A directory whose (resolved) identity
  was already listed is dropped, so the first spelling wins and is the one recorded:
  ``/lib/x86_64-linux-gnu/libc.so.6``, not the resolved ``/usr/lib/...``. Each listed
  directory's ``glibc-hwcaps/*`` subdirectories follow it.
* Files: names like ``lib*.so*``, ``ld-*.so*``, ``ld.so.*``, ``ld64.so.*``, regular or
  symlinks, that are ELF ``ET_DYN`` objects with a dynamic segment and string table
  (or a.out ``ZMAGIC``/``QMAGIC`` files). The key is the ``DT_SONAME`` (the file name
  when there is none); a symlink is its own key when it is named after the soname or
  is the ``libfoo.so`` link to it. Per directory one file per key: a file beats a
  symlink, then the name that ``_dl_cache_libcmp`` ranks highest.
* Recorded path: ``<directory as listed>/<key>`` (ldconfig relies on the soname link),
  or ``<directory>/glibc-hwcaps/<name>/<file name>`` in a glibc-hwcaps subdirectory.
* Flags per the architecture's reader (``FLAG_X8664_LIB64|FLAG_ELF_LIBC6`` = ``0x303``,
  ``FLAG_AARCH64_LIB64`` ``0xa03``, ARM EABI5 hard/soft float, POWER ``0x503``, s390
  ``0x403``, RISC-V float ABI); the x86 ISA level (``GNU_PROPERTY_X86_ISA_1_NEEDED``)
  goes into the hwcap field of glibc-hwcaps entries only.
* Order: descending ``_dl_cache_libcmp`` of the key, then descending flags,
  glibc-hwcaps entries first (by subdirectory name), then the order found (the
  directory order): every directory's copy of a soname is recorded, the first wins.
* File: the new format only (``glibc-ld.so.cache1.1`` header, 24-byte entries), the
  deduplicated and tail-merged string table, padding to 4, and the extension directory
  with the generator string and, when used, the glibc-hwcaps name table.

Glibc 2.36 (Debian 12) differs in ways that matter here and is followed when the
generator names it: ``dir=libc6`` in ld.so.conf, no skipping of ``.dpkg-new``-style
files, the old library-type flags (``FLAG_ELF`` unless the object needs libc or is
run by a known interpreter) and the legacy hwcap subdirectories (``tls`` and, on x86,
``x86_64``, ``haswell``, ...). Releases in between are treated like 2.41.

API: :func:`build` (the file), :func:`generator_of` (the generator string, from the
tree's ldconfig or libc.so.6), :func:`entries` (the records, in cache order),
:func:`link_changes` (what ldconfig does besides writing the cache), :func:`parse`.

Limits, all cases Debian packages do not produce:

* ldconfig reads directories in the file system's order; it shows only when two
  names in one directory are the same directory (glibc-hwcaps or legacy hwcap
  subdirectories), or one directory holds files whose sonames ``_dl_cache_libcmp``
  finds equal but differ (``libfoo.so.01``, ``libfoo.so.1``) or one soname with
  different flags. Names are taken in sorted order here.
* Relative directories in ld.so.conf are taken from ``/`` (ldconfig uses its working
  directory; dpkg runs triggers there and ``ldconfig -r`` changes to the root).
* An object whose headers point outside the file is skipped (ldconfig may crash);
  an ``include`` cycle is refused (ldconfig recurses until it fails).
* Glibc 2.36 on other architectures than x86: only ``tls`` is known as a legacy
  hwcap subdirectory, and only x86's and ARM's interpreter lists.
"""

from __future__ import annotations

import functools
import re
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from composer.errors import ComposeError, FormatError
from composer.image.tree import DIR, FILE, HARDLINK, SYMLINK, Entry
from composer.model import MAX_SYMLINKS

__all__ = [
    "ARCHES",
    "CacheEntry",
    "build",
    "encode",
    "entries",
    "generator_of",
    "glibc_version",
    "libcmp",
    "link_changes",
    "parse",
]

# Library-type flags (glibc's ldconfig.h).
FLAG_ANY = -1
FLAG_LIBC4 = 0x0000
FLAG_ELF = 0x0001
FLAG_ELF_LIBC5 = 0x0002
FLAG_ELF_LIBC6 = 0x0003
FLAG_IA64_LIB64 = 0x0200
FLAG_X8664_LIB64 = 0x0300
FLAG_S390_LIB64 = 0x0400
FLAG_POWERPC_LIB64 = 0x0500
FLAG_X8664_LIBX32 = 0x0800
FLAG_ARM_LIBHF = 0x0900
FLAG_AARCH64_LIB64 = 0x0A00
FLAG_ARM_LIBSF = 0x0B00
FLAG_RISCV_FLOAT_ABI_SOFT = 0x0F00
FLAG_RISCV_FLOAT_ABI_DOUBLE = 0x1000

MAGIC = b"glibc-ld.so.cache1.1"
HEADER_SIZE = 48
ENTRY_SIZE = 24
EXTENSION_MAGIC = 0xEAA42174
"""``(uint32_t) -358342284``, glibc's ``cache_extension_magic``."""
HWCAP_EXTENSION = 1 << 62
TLS_HWCAP_BIT = 63

DEFAULT_CONF = "/etc/ld.so.conf"
MAX_INCLUDE_DEPTH = 32
PAGE = 4096

_ET_DYN = 3
_PT_DYNAMIC, _PT_INTERP, _PT_LOAD = 2, 3, 1
_PT_GNU_PROPERTY = 0x6474E553
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_SONAME = 0, 1, 5, 14
_EM_386, _EM_IA_64, _EM_X86_64 = 3, 50, 62
_NT_GNU_PROPERTY_TYPE_0 = 5
_GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
_ZMAGIC, _QMAGIC = 0o413, 0o314


@dataclass(frozen=True, slots=True)
class Arch:
    """What ldconfig's behaviour depends on, per Debian architecture."""

    name: str
    triplet: str
    bits: int
    """ldconfig's own word size (sizes of ``struct exec`` and ``ElfW(Ehdr)``)."""
    big_endian: bool
    signed_char: bool
    """``char`` is signed on x86 only; it decides ``_dl_cache_libcmp`` on bytes >= 0x80."""
    reader: str
    """The per-architecture ``readelflib.c``: x86, arm, powerpc, s390 or riscv."""
    ld_so: str
    """The dynamic linker's soname (glibc 2.36 classified objects run by it as libc6)."""

    @property
    def system_dirs(self) -> tuple[str, ...]:
        """Debian's trusted directories, which ldconfig always scans after the config."""
        return (f"/lib/{self.triplet}", f"/usr/lib/{self.triplet}", "/lib", "/usr/lib")


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("amd64", "x86_64-linux-gnu", 64, False, True, "x86", "ld-linux-x86-64.so.2"),
        Arch("i386", "i386-linux-gnu", 32, False, True, "x86", "ld-linux.so.2"),
        Arch("arm64", "aarch64-linux-gnu", 64, False, False, "arm", "ld-linux-aarch64.so.1"),
        Arch("armhf", "arm-linux-gnueabihf", 32, False, False, "arm", "ld-linux-armhf.so.3"),
        Arch("armel", "arm-linux-gnueabi", 32, False, False, "arm", "ld-linux.so.3"),
        Arch("ppc64el", "powerpc64le-linux-gnu", 64, False, False, "powerpc", "ld64.so.2"),
        Arch("s390x", "s390x-linux-gnu", 64, True, False, "s390", "ld64.so.1"),
        Arch("riscv64", "riscv64-linux-gnu", 64, False, False, "riscv",
             "ld-linux-riscv64-lp64d.so.1"),
    )
}

_DYNAMIC_LINKERS = frozenset({
    b"ld-linux-aarch64.so.1", b"ld-linux-armhf.so.3", b"ld-linux-riscv64-lp64d.so.1",
    b"ld-linux-x32.so.2", b"ld-linux-x86-64.so.2", b"ld-linux.so.2", b"ld-linux.so.3",
    b"ld64.so.1", b"ld64.so.2",
})
"""Debian's ldconfig never re-points an existing link named after a dynamic linker."""

# glibc 2.36 legacy hwcap subdirectory names on x86 (dl-procinfo.c): ldconfig covered
# all of them; platforms start at bit 48.
_X86_HWCAPS = (b"sse2", b"x86_64", b"avx512_1")
_X86_PLATFORMS = (b"i586", b"i686", b"haswell", b"xeon_phi")


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One record of the cache, in cache order."""

    key: bytes
    """The soname (or link/file name) ld.so looks up."""
    path: bytes
    flags: int
    hwcaps: bytes | None = None
    """The glibc-hwcaps subdirectory name, for entries found in one."""
    isa_level: int = 0
    hwcap: int = 0
    """The legacy hwcap bits (glibc 2.36 only)."""


# --- generator -----------------------------------------------------------------------

_GENERATOR = re.compile(rb"ldconfig \([^\x00()]*\) [A-Za-z]+ release version \d+(?:\.\d+)+")
_BANNER = re.compile(rb"GNU C Library (\([^\x00()]*\)) ([A-Za-z]+) release version (\d+(?:\.\d+)+)")
_VERSION = re.compile(r" release version (\d+)\.(\d+)")


def generator_of(tree: Mapping[str, Entry]) -> str | None:
    """The string the tree's ldconfig records as the cache's generator, or None when the
    tree has no glibc. Read from ``/sbin/ldconfig``, else from libc.so.6's banner (same
    source package, same ``PKGVERSION``, ``RELEASE`` and ``VERSION``)."""
    fs = _Fs(tree)
    for path in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        data = fs.read(path)
        if data is not None and (m := _GENERATOR.search(data)):
            return m.group(0).decode("ascii", "replace")
    for key in sorted(k for k in tree if k.rsplit("/", 1)[-1] == "libc.so.6"):
        data = fs.read("/" + key)
        if data is not None and (b := _BANNER.search(data)):
            pkg, release, version = (g.decode("ascii", "replace") for g in b.groups())
            return f"ldconfig {pkg} {release} release version {version}"
    return None


def glibc_version(generator: str) -> tuple[int, int]:
    """``(2, 41)`` from ``ldconfig (Debian GLIBC 2.41-12) stable release version 2.41``."""
    m = _VERSION.search(generator)
    if not m:
        raise ValueError(f"not an ldconfig generator string: {generator!r}")
    return int(m.group(1)), int(m.group(2))


# --- entry points --------------------------------------------------------------------

def build(tree: Mapping[str, Entry], arch: str, generator: str | None = None) -> bytes | None:
    """The bytes of ``/etc/ld.so.cache`` for ``tree``, or None when the tree has no
    glibc (no generator given or found) or no shared library in any scanned directory.

    ``generator`` is the string the image's ldconfig records (default: what
    :func:`generator_of` finds); its glibc version also selects the behaviour."""
    scan = _scan(tree, arch, generator)
    if scan is None or not scan.cache:
        return None
    return encode(scan.sorted_entries(), scan.generator, arch, scan.hwcaps_names)


def entries(tree: Mapping[str, Entry], arch: str,
            generator: str | None = None) -> list[CacheEntry]:
    """The cache's records in cache order (what ``ldconfig -p`` lists); empty when the
    tree has no glibc."""
    scan = _scan(tree, arch, generator)
    return scan.sorted_entries() if scan is not None else []


def link_changes(tree: Mapping[str, Entry], arch: str,
                 generator: str | None = None) -> dict[str, str | None]:
    """What ``ldconfig`` without ``-X`` changes in the tree besides the cache: the tree
    path of each soname symlink it creates or re-points -> the link's (relative)
    target, or None for a dangling ``*.so.*`` symlink it deletes. (It also writes
    ``/var/cache/ldconfig/aux-cache``, which records inode numbers and ctimes.)"""
    scan = _scan(tree, arch, generator)
    return dict(scan.links) if scan is not None else {}


def _scan(tree: Mapping[str, Entry], arch: str, generator: str | None) -> _Scan | None:
    if generator is None:
        generator = generator_of(tree)
        if generator is None:
            return None  # no glibc, whatever the architecture: nothing to write
    a = _arch(arch)
    if glibc_version(generator) < (2, 36):
        raise ComposeError(
            f"ld.so.cache: {generator!r} is older than glibc 2.36",
            hint="only the caches of glibc 2.36 (Debian 12) and later are written")
    scan = _Scan(tree, a, generator)
    scan.run()
    return scan


def _arch(arch: str) -> Arch:
    try:
        return ARCHES[arch]
    except KeyError:
        raise ComposeError(
            f"ld.so.cache: architecture {arch!r} is not supported",
            hint="supported: " + ", ".join(sorted(ARCHES))) from None


# --- _dl_cache_libcmp ----------------------------------------------------------------

def _wrap32(v: int) -> int:
    return (v + 0x80000000) % 0x100000000 - 0x80000000


def libcmp(a: bytes, b: bytes, signed_char: bool = False) -> int:
    """glibc's ``_dl_cache_libcmp``: runs of digits compare as numbers (in a wrapping
    32-bit int), other bytes as ``char`` (signed on x86)."""

    def at(s: bytes, i: int) -> int:
        c = s[i] if i < len(s) else 0
        return c - 256 if signed_char and c >= 0x80 else c

    i = j = 0
    while (c1 := at(a, i)) != 0:
        c2 = at(b, j)
        if 0x30 <= c1 <= 0x39:
            if not 0x30 <= c2 <= 0x39:
                return 1
            v1, v2 = c1 - 0x30, c2 - 0x30
            i, j = i + 1, j + 1
            while 0x30 <= (c := at(a, i)) <= 0x39:
                v1, i = _wrap32(v1 * 10 + c - 0x30), i + 1
            while 0x30 <= (c := at(b, j)) <= 0x39:
                v2, j = _wrap32(v2 * 10 + c - 0x30), j + 1
            if v1 != v2:
                return _wrap32(v1 - v2)
        elif 0x30 <= c2 <= 0x39:
            return -1
        elif c1 != c2:
            return c1 - c2
        else:
            i, j = i + 1, j + 1
    return -at(b, j)


def _cache_order(arch: Arch, legacy: bool) -> Callable[[CacheEntry, CacheEntry], int]:
    """cache.c's ``compare``: negative when ``x`` is recorded before ``y``."""

    def compare(x: CacheEntry, y: CacheEntry) -> int:
        res = libcmp(y.key, x.key, arch.signed_char)
        if res:
            return res
        if x.flags != y.flags:
            return 1 if x.flags < y.flags else -1
        if (x.hwcaps is None) != (y.hwcaps is None):
            return -1 if x.hwcaps is not None else 1
        if x.hwcaps is not None and y.hwcaps is not None and x.hwcaps != y.hwcaps:
            return -1 if x.hwcaps < y.hwcaps else 1
        if legacy:
            bx, by = x.hwcap.bit_count(), y.hwcap.bit_count()
            if bx != by:
                return 1 if by > bx else -1
            if x.hwcap != y.hwcap:
                return 1 if y.hwcap > x.hwcap else -1
        return 0

    return compare


# --- the file ------------------------------------------------------------------------

def _string_table(strings: Iterable[bytes]) -> tuple[bytes, dict[bytes, int]]:
    """stringtable.c: distinct strings sorted by their reversed bytes, descending, so
    that a string that ends another follows it and is stored as its tail."""
    order = sorted(set(strings), key=lambda s: s[::-1], reverse=True)
    offsets: dict[bytes, int] = {}
    table = bytearray()
    prev = b""
    for s in order:
        if offsets and prev.endswith(s):
            offsets[s] = offsets[prev] + len(prev) - len(s)
        else:
            offsets[s] = len(table)
            table += s + b"\0"
        prev = s
    return bytes(table), offsets


def encode(records: list[CacheEntry], generator: str, arch: str,
           hwcaps_names: Iterable[bytes] = ()) -> bytes:
    """The cache file for ``records`` (already in cache order), as cache.c's
    ``save_cache`` writes it with the default ``--format=new``. ``hwcaps_names`` are
    glibc-hwcaps subdirectory names ldconfig met (they are in the string table even
    when no library was found in them)."""
    a = _arch(arch)
    end = ">" if a.big_endian else "<"
    used = sorted({r.hwcaps for r in records if r.hwcaps is not None})
    index = {name: i for i, name in enumerate(used)}
    strings = [s for r in records for s in (r.key, r.path)]
    table, offsets = _string_table([*strings, *hwcaps_names, *used])
    base = HEADER_SIZE + ENTRY_SIZE * len(records)
    ext_offset = (base + len(table) + 3) & ~3
    gen = generator.encode()

    out = bytearray()
    out += MAGIC
    out += struct.pack(end + "IIB3xI12x", len(records), len(table),
                       3 if a.big_endian else 2, ext_offset)
    for r in records:
        hwcap = r.hwcap
        if r.hwcaps is not None:
            if r.isa_level > 0x3FF:
                raise FormatError(f"{r.path.decode(errors='replace')}: ISA level is too high "
                                  f"({r.isa_level} > 1023)")
            hwcap = HWCAP_EXTENSION | (r.isa_level << 32) | index[r.hwcaps]
        out += struct.pack(end + "iIIIQ", r.flags, base + offsets[r.key],
                           base + offsets[r.path], 0, hwcap)
    out += table
    out += b"\0" * (ext_offset - len(out))
    # The directory has room for all known sections (8 + 2 * 16 bytes); the
    # glibc-hwcaps array follows it, the generator string comes last.
    hwcaps_offset = ext_offset + 8 + 2 * 16
    hwcaps_size = 4 * len(used)
    sections = []
    if used:
        gen_offset = hwcaps_offset + hwcaps_size
        sections.append((0, 0, gen_offset, len(gen)))
        sections.append((1, 0, hwcaps_offset, hwcaps_size))
    else:
        sections.append((0, 0, hwcaps_offset - 16, len(gen)))
    out += struct.pack(end + "II", EXTENSION_MAGIC, len(sections))
    for s in sections:
        out += struct.pack(end + "IIII", *s)
    for name in used:
        out += struct.pack(end + "I", base + offsets[name])
    out += gen
    return bytes(out)


def parse(data: bytes) -> tuple[list[CacheEntry], str | None]:
    """The records and generator of a new-format cache file (for tests and tools);
    glibc-hwcaps records carry their subdirectory name and ISA level."""
    if data[:20] != MAGIC:
        raise FormatError("not a glibc-ld.so.cache1.1 file")
    end = ">" if data[28] == 3 else "<"
    nlibs, _lenstr, _flags, ext_offset = struct.unpack_from(end + "IIB3xI", data, 20)

    def string(off: int) -> bytes:
        return data[off:data.index(b"\0", off)]

    hwcaps: list[bytes] = []
    generator = None
    if ext_offset:
        magic, count = struct.unpack_from(end + "II", data, ext_offset)
        if magic != EXTENSION_MAGIC:
            raise FormatError("bad ld.so.cache extension magic")
        for i in range(count):
            tag, _f, off, size = struct.unpack_from(end + "IIII", data, ext_offset + 8 + 16 * i)
            if tag == 0:
                generator = data[off:off + size].decode(errors="replace")
            elif tag == 1:
                hwcaps = [string(x) for x in struct.unpack_from(end + f"{size // 4}I", data, off)]
    out = []
    for i in range(nlibs):
        flags, key, value, _os, hwcap = struct.unpack_from(end + "iIIIQ", data,
                                                           HEADER_SIZE + ENTRY_SIZE * i)
        if hwcap >> 32 & ~0x3FF == HWCAP_EXTENSION >> 32:
            out.append(CacheEntry(string(key), string(value), flags, hwcaps[hwcap & 0xFFFFFFFF],
                                  hwcap >> 32 & 0x3FF))
        else:
            out.append(CacheEntry(string(key), string(value), flags, hwcap=hwcap))
    return out, generator


# --- the tree as a file system -------------------------------------------------------

_REG, _LNK, _DIRT = "reg", "lnk", "dir"


class _Fs:
    """Path resolution inside the tree (never on the host): symlinks are followed as
    the kernel would under chroot, hardlinks are the file they link to, and parents of
    entries that have none of their own are directories."""

    def __init__(self, tree: Mapping[str, Entry]) -> None:
        self.tree = tree
        children: dict[str, set[str]] = {}
        for key in tree:
            child = key
            while child:
                parent, _, name = child.rpartition("/")
                names = children.setdefault(parent, set())
                if name in names:
                    break
                names.add(name)
                child = parent
        # readdir order is the file system's; sorted names make ties deterministic.
        self.children = {k: sorted(v, key=_enc) for k, v in children.items()}

    def kind(self, key: str) -> str | None:
        """The ``d_type`` of a tree key as stored (symlinks not followed)."""
        if key == "":
            return _DIRT
        e = self.tree.get(key)
        if e is None:
            return _DIRT if key in self.children else None
        seen = 0
        while e.kind == HARDLINK and seen < MAX_SYMLINKS:
            target = self.tree.get(e.target)
            if target is None:
                return None
            e, seen = target, seen + 1
        return {FILE: _REG, HARDLINK: _REG, DIR: _DIRT, SYMLINK: _LNK}.get(e.kind)

    def resolve(self, path: str, follow: bool = True) -> str | None:
        """The tree key ``path`` names (absolute, or relative to ``/``), or None."""
        parts = deque(p for p in path.split("/") if p not in ("", "."))
        cur = ""
        hops = 0
        while parts:
            name = parts.popleft()
            if self.kind(cur) != _DIRT:
                return None
            if name == "..":
                cur = cur.rpartition("/")[0]
                continue
            child = f"{cur}/{name}" if cur else name
            k = self.kind(child)
            if k is None:
                return None
            if k == _LNK and (parts or follow):
                hops += 1
                if hops > MAX_SYMLINKS:
                    return None
                target = self.tree[self.identity(child)].target
                if target.startswith("/"):
                    cur = ""
                parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            cur = child
        return cur

    def identity(self, key: str) -> str:
        """What ``st_dev``/``st_ino`` tell apart: a hardlink is the file it links to."""
        e = self.tree.get(key)
        seen = 0
        while e is not None and e.kind == HARDLINK and seen < MAX_SYMLINKS:
            key, e, seen = e.target, self.tree.get(e.target), seen + 1
        return key

    def read(self, path: str) -> bytes | None:
        """A regular file's content, following symlinks."""
        key = self.resolve(path)
        if key is None or self.kind(key) != _REG:
            return None
        return self.tree[self.identity(key)].data

    def listdir(self, key: str) -> list[str]:
        return self.children.get(key, []) if self.kind(key) == _DIRT else []


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# --- glob and ld.so.conf -------------------------------------------------------------

_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def _has_magic(pattern: str) -> bool:
    """glob's test: an unescaped ``*`` or ``?``, or ``[`` with a ``]`` after it."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?" or (c == "[" and "]" in pattern[i + 1:]):
            return True
        i += 1
    return False


@functools.lru_cache(maxsize=256)
def _fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch(3) in the C locale with backslash escapes, as glob(3) calls it."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            negate = j < n and pattern[j] in "!^"
            if negate:
                j += 1
            items = []
            first = True
            closed = False
            while j < n:
                ch = pattern[j]
                if ch == "]" and not first:
                    closed = True
                    j += 1
                    break
                first = False
                if ch == "[" and pattern.startswith(":", j + 1):
                    end = pattern.find(":]", j + 2)
                    cls = pattern[j + 2:end] if end >= 0 else ""
                    if cls in _CLASSES:
                        items.append(_CLASSES[cls])
                        j = end + 2
                        continue
                if ch == "\\" and j + 1 < n:
                    j += 1
                    ch = pattern[j]
                if j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
                    hi = pattern[j + 2]
                    items.append(re.escape(ch) + "-" + re.escape(hi))
                    j += 3
                    continue
                items.append(re.escape(ch))
                j += 1
            if not closed:
                out.append(re.escape("["))
                continue
            i = j
            out.append("[" + ("^" if negate else "") + "".join(items) + "]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.S)


def _fnmatch(pattern: str, name: str) -> bool:
    if name.startswith(".") and not (pattern.startswith(".") or pattern.startswith("\\.")):
        return False
    return _fnmatch_regex(pattern).fullmatch(name) is not None


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _glob(fs: _Fs, pattern: str) -> list[str]:
    """glob(3) with no flags over the tree: the sorted list of matching paths."""

    def expand(pat: str) -> list[str]:
        head, sep, tail = pat.rpartition("/")
        if not sep:
            head, tail = "", pat
        if not _has_magic(pat):
            path = _unescape(pat)
            return [path] if fs.resolve(path, follow=False) is not None else []
        if _has_magic(head):
            dirs = expand(head)
        else:
            dirs = [_unescape(head) if head else ("/" if sep else "")]
        found = []
        for d in dirs:
            key = fs.resolve(d or "/")
            if key is None or fs.kind(key) != _DIRT:
                continue
            prefix = "" if not d else (d if d.endswith("/") else d + "/")
            if not _has_magic(tail):
                name = _unescape(tail)
                if fs.resolve(prefix + name, follow=False) is not None:
                    found.append(prefix + name)
                continue
            found += [prefix + name for name in fs.listdir(key) if _fnmatch(tail, name)]
        return found

    return sorted(expand(pattern), key=_enc)


_SPACE = b" \t\n\v\f\r"


def _lines(data: bytes) -> Iterable[bytes]:
    for raw in data.split(b"\n"):
        line = raw.split(b"\0", 1)[0].split(b"#", 1)[0]
        yield line.lstrip(_SPACE)


# --- ELF -----------------------------------------------------------------------------

class _Bad(Exception):
    """The object cannot be read (ldconfig skips it, or would read out of bounds)."""


@dataclass(frozen=True, slots=True)
class _Object:
    flag: int
    soname: bytes | None
    isa_level: int


class _Reader:
    """readlib.c's ``process_file`` and readelflib.c for one file."""

    def __init__(self, data: bytes, arch: Arch, legacy: bool) -> None:
        self.data = data
        self.mapped = len(data) + -len(data) % PAGE
        """ldconfig maps the file: bytes up to the page end read as zeros."""
        self.arch = arch
        self.legacy = legacy
        self.end = ">" if arch.big_endian else "<"

    def u(self, fmt: str, off: int) -> int:
        size = struct.calcsize(fmt)
        if off < 0 or off + size > self.mapped:
            raise _Bad
        if off + size <= len(self.data):
            value: int = struct.unpack_from(self.end + fmt, self.data, off)[0]
        else:
            value = struct.unpack(self.end + fmt, self.data[off:].ljust(size, b"\0"))[0]
        return value

    def check(self, off: int) -> None:
        if off < 0 or off > len(self.data):
            raise _Bad

    def cstring(self, off: int) -> bytes:
        if off > len(self.data):
            raise _Bad
        end = self.data.find(b"\0", off)
        if end < 0:
            if self.mapped == len(self.data):
                raise _Bad
            end = len(self.data)
        return self.data[off:end]

    def process(self, name: bytes) -> _Object | None:
        a = self.arch
        exec_size = 40 if a.bits == 64 else 32
        ehdr_size = 64 if a.bits == 64 else 52
        if len(self.data) < max(exec_size, ehdr_size):
            return None
        a_info = self.u("Q" if a.bits == 64 else "I", 0) & 0xFFFF
        if a_info in (_ZMAGIC, _QMAGIC):
            soname = name
            major = name.find(b".so.")
            if major >= 0:
                dot = name.find(b".", major + 4)
                if dot >= 0:
                    soname = name[:dot]
            return _Object(FLAG_LIBC4 if self.legacy else FLAG_ELF_LIBC6, soname, 0)
        if self.data[:4] != b"\x7fELF" or self.u("H", 16) != _ET_DYN:
            return None
        try:
            return self.by_arch()
        except _Bad:
            return None

    def by_arch(self) -> _Object | None:
        cls = self.data[4]
        reader = self.arch.reader
        if reader == "x86":
            machine = self.u("H", 18)
            forced = 0
            if machine == _EM_X86_64:
                forced = FLAG_X8664_LIB64 if cls == 2 else FLAG_X8664_LIBX32
                forced |= FLAG_ELF_LIBC6
            elif machine == _EM_IA_64 and self.arch.bits == 32 and self.legacy:
                # 32-bit x86 ldconfig knew IA-64 objects until glibc dropped the port.
                if cls != 2:
                    return None
                forced = FLAG_IA64_LIB64 | FLAG_ELF_LIBC6
            elif machine != _EM_386 or cls != 1:
                return None
            obj = self.elf(32 if cls == 1 else 64)
            return _Object(forced, obj.soname, obj.isa_level) if obj and forced else obj
        if reader == "arm":
            if cls == 1:
                obj = self.elf(32)
                flags = self.u("I", 36)
                if obj and flags & 0xFF000000 == 0x05000000:
                    if flags & 0x400:
                        return _Object(FLAG_ARM_LIBHF | FLAG_ELF_LIBC6, obj.soname, obj.isa_level)
                    if flags & 0x200:
                        return _Object(FLAG_ARM_LIBSF | FLAG_ELF_LIBC6, obj.soname, obj.isa_level)
                    return _Object(FLAG_ELF_LIBC6, obj.soname, obj.isa_level)
                return obj
            obj = self.elf(64)
            return _Object(FLAG_AARCH64_LIB64 | FLAG_ELF_LIBC6, obj.soname, obj.isa_level) \
                if obj else None
        if reader in ("powerpc", "s390"):
            if cls == 1:
                return self.elf(32)
            obj = self.elf(64)
            lib64 = FLAG_POWERPC_LIB64 if reader == "powerpc" else FLAG_S390_LIB64
            return _Object(lib64 | FLAG_ELF_LIBC6, obj.soname, obj.isa_level) if obj else None
        # riscv: the float ABI is in e_flags; objects using others are not for this libc.
        flags = self.u("I", 36) if cls == 1 else self.u("I", 48)
        obj = self.elf(32 if cls == 1 else 64)
        abi = flags & 0x6
        if abi not in (0x0, 0x4) or flags & ~0x7:
            return None
        if obj is None:
            return None
        float_flag = FLAG_RISCV_FLOAT_ABI_SOFT if abi == 0 else FLAG_RISCV_FLOAT_ABI_DOUBLE
        return _Object(obj.flag | float_flag, obj.soname, obj.isa_level)

    def elf(self, bits: int) -> _Object | None:
        """Generic readelflib.c for one ELF class. Offsets wrap like ldconfig's
        pointers (``pmask``) and the class's ``ElfW(Off)`` (``cmask``)."""
        if self.data[4] != (1 if bits == 32 else 2):
            return None
        wide = bits == 64
        cmask = (1 << bits) - 1
        pmask = (1 << self.arch.bits) - 1
        addr = "Q" if wide else "I"
        phoff = self.u(addr, 32 if wide else 28) & pmask
        phnum = self.u("H", 56 if wide else 44)
        phsize = 56 if wide else 32
        self.check(phoff)
        flag = FLAG_ELF if self.legacy else FLAG_ELF_LIBC6
        isa_level = 0
        dynamic_addr = dynamic_size = 0
        loads: list[tuple[int, int, int]] = []
        for i in range(phnum):
            seg = (phoff + i * phsize) & pmask
            self.check(seg)
            p_type = self.u("I", seg)
            if wide:
                p_offset, p_vaddr = self.u("Q", seg + 8), self.u("Q", seg + 16)
                p_filesz, p_align = self.u("Q", seg + 32), self.u("Q", seg + 48)
            else:
                p_offset, p_vaddr = self.u("I", seg + 4), self.u("I", seg + 8)
                p_filesz, p_align = self.u("I", seg + 16), self.u("I", seg + 28)
            if p_type == _PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dynamic_addr, dynamic_size = p_offset & 0xFFFFFFFF, p_filesz
            elif p_type == _PT_INTERP:
                self.check(p_offset & pmask)
                if self.legacy and \
                        self.cstring(p_offset & pmask) in _legacy_interpreters(self.arch):
                    flag = FLAG_ELF_LIBC6
            elif p_type == _PT_GNU_PROPERTY and p_align == bits // 8 \
                    and self.arch.reader == "x86":
                isa_level = self.isa_level(p_offset & pmask, p_filesz, p_align, bits // 8)
        if dynamic_size == 0:
            return None
        self.check(dynamic_addr)
        dynsize = 16 if wide else 8
        tag_fmt = "q" if wide else "i"
        strings = None
        off = dynamic_addr
        while self.u(tag_fmt, off) != _DT_NULL:
            self.check(off)
            if self.u(tag_fmt, off) == _DT_STRTAB:
                val = self.u(addr, off + dynsize // 2)
                loadoff = cmask
                for vaddr, offset, filesz in loads:
                    if val >= vaddr and val - vaddr < filesz:
                        loadoff = (vaddr - offset) & cmask
                        break
                if loadoff == cmask:
                    loadoff = 0
                strings = (val - loadoff) & pmask
                self.check(strings)
                break
            off += dynsize
        if strings is None:
            return None
        soname = None
        off = dynamic_addr
        while (tag := self.u(tag_fmt, off)) != _DT_NULL:
            if tag == _DT_SONAME or (self.legacy and tag == _DT_NEEDED):
                name_off = (strings + self.u(addr, off + dynsize // 2)) & pmask
                self.check(name_off)
                name = self.cstring(name_off)
                if tag == _DT_SONAME:
                    soname = name
                    if not self.legacy:
                        break
                elif flag == FLAG_ELF:
                    flag = _LEGACY_KNOWN_LIBS.get(name, flag)
                if self.legacy and soname is not None and flag != FLAG_ELF:
                    break
            off += dynsize
        return _Object(flag, soname, isa_level)

    def isa_level(self, start: int, size: int, align: int, addr_size: int) -> int:
        """The x86 ISA level the NT_GNU_PROPERTY_TYPE_0 note requires (0 if none)."""
        note = 0
        while note + 12 < size:
            base = start + note
            namesz, descsz, ntype = self.u("I", base), self.u("I", base + 4), self.u("I", base + 8)
            if namesz == 4 and ntype == _NT_GNU_PROPERTY_TYPE_0 and \
                    self.data[base + 12:base + 16] == b"GNU\0":
                if descsz < 8 or descsz % addr_size:
                    return 0
                ptr = base + 16
                end = ptr + descsz
                last = 0
                while True:
                    ptype, datasz = self.u("I", ptr), self.u("I", ptr + 4)
                    if ptype < last:
                        return 0
                    ptr += 8
                    if ptr + datasz > end:
                        return 0
                    last = ptype
                    if ptype > _GNU_PROPERTY_X86_ISA_1_NEEDED:
                        return 0
                    if ptype == _GNU_PROPERTY_X86_ISA_1_NEEDED:
                        if datasz == 4:
                            needed = self.u("I", ptr)
                            return needed.bit_length() - 1 if needed else 0
                        return 0
                    ptr += -(-datasz // addr_size) * addr_size
                    if end - ptr < 8:
                        return 0
            desc = -(-(12 + namesz) // align) * align
            note += -(-(desc + descsz) // align) * align
        return 0


_LEGACY_KNOWN_LIBS = {b"libc.so.6": FLAG_ELF_LIBC6, b"libm.so.6": FLAG_ELF_LIBC6}
"""glibc 2.36's readlib.c ``known_libs``: needing one of these makes an object libc6."""

_LEGACY_INTERPRETERS = {
    "x86": (b"/lib/ld-linux.so.2", b"/libx32/ld-linux-x32.so.2", b"/lib64/ld-linux-x86-64.so.2"),
    "arm": (b"/lib/ld-linux-aarch64.so.1", b"/lib/ld-linux-aarch64_be.so.1",
            b"/lib/ld-linux-aarch64_ilp32.so.1", b"/lib/ld-linux-aarch64_be_ilp32.so.1",
            b"/lib/ld-linux.so.3", b"/lib/ld-linux-armhf.so.3"),
}
"""glibc 2.36's per-architecture ``SYSDEP_KNOWN_INTERPRETER_NAMES`` (x86 and arm; the
others are taken to know only ``/lib/`` + their own dynamic linker): being run by one
of these makes an object libc6."""


def _legacy_interpreters(arch: Arch) -> frozenset[bytes]:
    return frozenset((b"/lib/" + _enc(arch.ld_so), *_LEGACY_INTERPRETERS.get(arch.reader, ())))


# --- the scan ------------------------------------------------------------------------

@dataclass(slots=True)
class _Dir:
    path: bytes
    """As listed (the string ldconfig records), trailing slashes removed."""
    identity: str
    flag: int
    hwcaps: bytes | None = None


@dataclass(slots=True)
class _Lib:
    name: bytes
    soname: bytes
    flag: int
    is_link: bool
    isa_level: int


def _is_dso(name: bytes) -> bool:
    """elf/dl-is_dso.h."""
    return ((name.startswith((b"lib", b"ld-")) and b".so" in name)
            or name.startswith((b"ld.so.", b"ld64.so.")))


def _skip_temporary(name: bytes, legacy: bool) -> bool:
    """Files ldconfig never opens: prelink's temporaries; since 2.37 also RPM's and
    dpkg's (checked: Debian 13's ldconfig skips them, Debian 12's does not)."""
    if name.endswith(b".#prelink#") or (
            len(name) >= 17 and name[-17:-6] == b".#prelink#."):
        return True
    if legacy:
        return False
    return b";" in name or name.endswith((b".dpkg-new", b".dpkg-tmp"))


_LIB_TYPES = {b"libc4": FLAG_LIBC4, b"libc5": FLAG_ELF_LIBC5, b"libc6": FLAG_ELF_LIBC6,
              b"glibc2": FLAG_ELF_LIBC6}


class _Scan:
    """ldconfig's ``main``: configuration, directory list, one pass over it."""

    def __init__(self, tree: Mapping[str, Entry], arch: Arch, generator: str) -> None:
        self.fs = _Fs(tree)
        self.arch = arch
        self.generator = generator
        self.legacy = glibc_version(generator) < (2, 37)
        self.dirs: list[_Dir] = []
        self.cache: list[CacheEntry] = []
        self.hwcaps_names: set[bytes] = set()
        self.links: dict[str, str | None] = {}

    def run(self) -> None:
        self.parse_conf(DEFAULT_CONF, 0)
        for d in self.arch.system_dirs:
            self.add_dir(_enc(d + "/"))
        i = 0
        while i < len(self.dirs):  # legacy hwcap subdirectories are appended as found
            self.search_dir(self.dirs[i])
            i += 1

    def sorted_entries(self) -> list[CacheEntry]:
        return sorted(self.cache, key=functools.cmp_to_key(_cache_order(self.arch, self.legacy)))

    # configuration

    def parse_conf(self, filename: str, depth: int) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise FormatError(f"{filename}: ld.so.conf includes nest too deeply (a cycle?)")
        data = self.fs.read(filename)
        if data is None:
            return
        for cp in _lines(data):
            if not cp:
                continue
            if cp.startswith(b"include") and len(cp) > 7 and cp[7] in b" \t":
                for word in re.split(rb"[ \t]", cp[8:]):
                    if word:
                        self.include(filename, _dec(word), depth)
            elif cp[:5].lower() == b"hwcap" and len(cp) > 5 and cp[5] in b" \t":
                continue
            else:
                self.add_dir(cp)

    def include(self, config: str, pattern: str, depth: int) -> None:
        if not pattern.startswith("/") and "/" in config:
            pattern = config.rsplit("/", 1)[0] + "/" + pattern
        for path in _glob(self.fs, pattern):
            self.parse_conf(path, depth + 1)

    def add_dir(self, line: bytes) -> None:
        path = line
        flag = FLAG_ANY
        if self.legacy and b"=" in path:
            path, _, kind = path.partition(b"=")
            flag = _LIB_TYPES.get(kind, FLAG_ANY)
        path = path.rstrip(_SPACE).rstrip(b"/")
        if not path:
            return
        key = self.fs.resolve(_dec(path))
        if key is None:
            return
        if self.add_single_dir(_Dir(path, self.fs.identity(key), flag)):
            self.add_hwcaps_subdirs(self.dirs[-1])

    def add_single_dir(self, d: _Dir) -> bool:
        for old in self.dirs:
            if old.identity == d.identity:
                old.flag = d.flag
                return False
        self.dirs.append(d)
        return True

    def add_hwcaps_subdirs(self, d: _Dir) -> None:
        base = self.fs.resolve(_dec(d.path) + "/glibc-hwcaps")
        if base is None or self.fs.kind(base) != _DIRT:
            return
        for name in self.fs.listdir(base):
            child = f"{base}/{name}" if base else name
            if name.startswith(".") or ":" in name or self.fs.kind(child) == _REG:
                continue
            key = self.fs.resolve(child)
            if key is None or self.fs.kind(key) != _DIRT:
                continue
            self.hwcaps_names.add(_enc(name))
            self.add_single_dir(_Dir(d.path + b"/glibc-hwcaps/" + _enc(name),
                                     self.fs.identity(key), d.flag, _enc(name)))

    # legacy hwcap subdirectories (glibc 2.36)

    def hwcap_bit(self, name: bytes) -> int | None:
        if name == b"tls":
            return TLS_HWCAP_BIT
        if self.arch.reader == "x86":
            if name in _X86_HWCAPS:
                return _X86_HWCAPS.index(name)
            if name in _X86_PLATFORMS:
                return 48 + _X86_PLATFORMS.index(name)
        return None

    def path_hwcap(self, path: bytes) -> int:
        hwcap = 0
        while b"/" in path:
            path, _, last = path.rpartition(b"/")
            bit = self.hwcap_bit(last)
            if bit is None:
                break
            hwcap = (hwcap + (1 << bit)) & 0xFFFFFFFFFFFFFFFF
        return hwcap

    # one directory

    def search_dir(self, d: _Dir) -> None:
        dir_key = self.fs.resolve(_dec(d.path))
        if dir_key is None or self.fs.kind(dir_key) != _DIRT:
            return
        legacy = self.legacy
        dlibs: list[_Lib] = []
        for sname in self.fs.listdir(dir_key):
            name = _enc(sname)
            child = f"{dir_key}/{sname}" if dir_key else sname
            kind = self.fs.kind(child)
            # Other names only for subdirectories (legacy hwcap ones, by name) and,
            # inside glibc-hwcaps subdirectories, for symlinks.
            other_names = d.hwcaps is None and not (legacy and self.hwcap_bit(name) is not None)
            if not _is_dso(name) and (kind == _REG or other_names):
                continue
            if _skip_temporary(name, legacy):
                continue
            is_link = kind == _LNK
            target = self.fs.resolve(child) if is_link else child
            if target is None:
                if b".so." in name:
                    self.links[child] = None
                continue
            if legacy and d.hwcaps is None and self.fs.kind(target) == _DIRT \
                    and self.hwcap_bit(name) is not None:
                self.add_single_dir(_Dir(d.path + b"/" + name, self.fs.identity(target), d.flag))
                continue
            if self.fs.kind(target) != _REG:
                continue
            obj = _Reader(self.fs.tree[self.fs.identity(target)].data, self.arch,
                          legacy).process(name)
            if obj is None:
                continue
            soname = obj.soname if obj.soname is not None else name
            if is_link and name != soname and not (
                    name.endswith(b".so") and soname.startswith(name)):
                is_link = False
            if is_link:
                soname = name
            flag = obj.flag
            if legacy and flag == FLAG_ELF and d.flag in (FLAG_ELF_LIBC5, FLAG_ELF_LIBC6):
                flag = d.flag
            self.add_lib(dlibs, _Lib(name, soname, flag, is_link, obj.isa_level))
        hwcap = self.path_hwcap(d.path) if legacy and d.hwcaps is None else 0
        for lib in reversed(dlibs):  # ldconfig keeps them newest first
            if d.hwcaps is None:
                if not lib.is_link:
                    self.create_link(dir_key, lib.name, lib.soname)
                filename = lib.soname
            else:
                filename = lib.name
            isa_level = lib.isa_level if d.hwcaps is not None else 0
            self.cache.append(CacheEntry(lib.soname, d.path + b"/" + filename, lib.flag,
                                         d.hwcaps, isa_level, hwcap))

    def add_lib(self, dlibs: list[_Lib], new: _Lib) -> None:
        for lib in dlibs:
            if lib.soname != new.soname:
                continue
            if (not new.is_link and lib.is_link) or (
                    new.is_link == lib.is_link
                    and libcmp(lib.name, new.name, self.arch.signed_char) < 0):
                typed = (FLAG_ELF_LIBC5, FLAG_ELF_LIBC6)
                if self.legacy and ((lib.flag == FLAG_ELF and new.flag in typed)
                                    or (lib.flag in typed and new.flag == FLAG_ELF)):
                    lib.flag = new.flag
                lib.name, lib.is_link, lib.isa_level = new.name, new.is_link, new.isa_level
            return
        dlibs.append(new)

    def create_link(self, dir_key: str, libname: bytes, soname: bytes) -> None:
        """create_links: make ``soname`` a symlink to ``libname`` unless it already
        names the same file or is not a symlink."""
        prefix = f"{dir_key}/" if dir_key else ""
        so_path = prefix + _dec(soname)
        so_key = self.fs.resolve(so_path)
        if so_key is not None:
            lib_key = self.fs.resolve(prefix + _dec(libname))
            if lib_key is None or soname in _DYNAMIC_LINKERS:
                return
            if self.fs.identity(so_key) == self.fs.identity(lib_key):
                return
            if self.fs.kind(so_path) != _LNK:
                return
        self.links[so_path] = _dec(libname)
