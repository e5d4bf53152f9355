"""The dynamic-linking facts of an ELF object, read the way the loader reads them.

Auditing an image needs, per shipped ELF object, what ld.so uses to load it and its
dependencies: class, byte order, machine, type, ``PT_INTERP``, and from the dynamic
segment ``DT_NEEDED``, ``DT_SONAME``, ``DT_RPATH``, ``DT_RUNPATH`` and ``DT_FLAGS_1``.
Only the ELF header, the program headers and the dynamic segment are read (the ELF gABI,
"Program Header" and "Dynamic Section"); section headers are never used, so stripped
objects and objects whose section table is gone read the same. ``DT_STRTAB`` holds an
address, mapped to a file offset through the ``PT_LOAD`` segment whose file-backed part
contains it.

When a tag appears more than once the last entry counts, as in ld.so's
``elf_get_dynamic_info`` (``DT_NEEDED`` excepted: every entry counts, in order); of
several ``PT_DYNAMIC`` headers the last counts, as in ``_dl_map_object_from_fd``; of
several ``PT_INTERP`` the first, as in the kernel. A ``PT_DYNAMIC`` or ``PT_INTERP``
with no file contents (``objcopy --only-keep-debug`` output keeps the headers, not the
data) counts as absent: ld.so and the kernel refuse such files.

Every offset, size and string is checked against the data: a truncated or hostile file
raises :class:`~composer.errors.FormatError` naming the problem, never ``IndexError`` or
``struct.error``. Pure: bytes in, values out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from composer.errors import FormatError

__all__ = [
    "DF_1_NODEFLIB",
    "DF_1_PIE",
    "ET_CORE",
    "ET_DYN",
    "ET_EXEC",
    "ET_NONE",
    "ET_REL",
    "MACHINES",
    "Elf",
    "read",
]

MAGIC = b"\x7fELF"
EI_NIDENT = 16
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2

ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = 0, 1, 2, 3, 4
TYPES = {ET_NONE: "ET_NONE", ET_REL: "ET_REL", ET_EXEC: "ET_EXEC", ET_DYN: "ET_DYN",
         ET_CORE: "ET_CORE"}

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3

DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ = 0, 1, 5, 10
DT_SONAME, DT_RPATH, DT_RUNPATH = 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB = 0x00000800
"""The object's dependencies are not looked up in the cache's system entries or the
default directories."""
DF_1_PIE = 0x08000000
"""A position-independent executable: ld.so refuses to load it as a dependency."""

MACHINES: dict[int, str] = {
    2: "sparc", 3: "i386", 4: "m68k", 8: "mips", 15: "parisc", 18: "sparc32plus",
    20: "powerpc", 21: "powerpc64", 22: "s390", 40: "arm", 42: "sh", 43: "sparcv9",
    50: "ia64", 62: "x86-64", 183: "aarch64", 243: "riscv", 258: "loongarch",
    0x9026: "alpha",
}
"""Names of the ``e_machine`` values Debian architectures use (``EM_*`` of the gABI)."""

# (ELF header after e_ident, program header, one dynamic entry) per class.
_EHDR = {32: "HHIIIIIHHHHHH", 64: "HHIQQQIHHHHHH"}
_PHDR = {32: "IIIIIIII", 64: "IIQQQQQQ"}
_DYN = {32: "iI", 64: "qQ"}
_EHDR_SIZE = {32: 52, 64: 64}
_PHDR_SIZE = {32: 32, 64: 56}


@dataclass(frozen=True, slots=True)
class Elf:
    """What the dynamic loader uses of one ELF object."""

    cls: int
    """32 or 64 (``EI_CLASS``)."""
    endian: str
    """``little`` or ``big`` (``EI_DATA``)."""
    machine: int
    """``e_machine``."""
    machine_name: str
    """A short name for ``machine`` (``x86-64``, ``aarch64``; ``EM_<n>`` when unknown)."""
    type: int
    """``e_type``: ``ET_EXEC``, ``ET_DYN``, ``ET_REL``, ``ET_CORE`` or another value."""
    interpreter: str | None
    """The ``PT_INTERP`` path (the program's dynamic loader)."""
    soname: str | None
    needed: tuple[str, ...]
    """``DT_NEEDED`` names, in order."""
    rpath: tuple[str, ...]
    """``DT_RPATH`` split at ``:`` as written (an empty element means the working
    directory to ld.so); ``()`` when absent or empty."""
    runpath: tuple[str, ...]
    """``DT_RUNPATH``, like ``rpath``."""
    has_dynamic: bool
    """A ``PT_DYNAMIC`` segment with contents: the object takes part in dynamic linking."""
    osabi: int = 0
    """``EI_OSABI`` (0 System V, 3 GNU); ld.so refuses others."""
    abiversion: int = 0
    """``EI_ABIVERSION``."""
    version: int = 1
    """``e_version``, or ``EI_VERSION`` when that is not 1: ld.so loads only version 1
    (``EV_CURRENT``) in both."""
    flags_1: int = 0
    """``DT_FLAGS_1`` (``DF_1_NODEFLIB``, ``DF_1_PIE``, ...)."""

    @property
    def type_name(self) -> str:
        return TYPES.get(self.type, f"ET_{self.type:#x}")


def read(data: bytes, name: str = "ELF object") -> Elf | None:
    """The object's dynamic-linking facts; None when ``data`` does not start with the
    ELF magic. ``name`` is only used in error messages."""
    if len(data) < 4 or data[:4] != MAGIC:
        return None
    return _Reader(data, name).elf()


class _Reader:
    """One object's bytes with bounds-checked accessors."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name

    def fail(self, problem: str) -> FormatError:
        return FormatError(f"{self.name}: {problem}",
                           "the file is truncated or not a valid ELF object")

    def span(self, what: str, offset: int, size: int) -> None:
        """Refuse a range of the file that is not wholly inside it."""
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise self.fail(f"{what} (offset {offset:#x}, {size} bytes) extends past the "
                            f"end of the file ({len(self.data)} bytes)")

    def elf(self) -> Elf:
        data = self.data
        if len(data) < EI_NIDENT:
            raise self.fail(f"e_ident truncated: {len(data)} of {EI_NIDENT} bytes")
        if data[4] not in (ELFCLASS32, ELFCLASS64):
            raise self.fail(f"unknown ELF class {data[4]} (EI_CLASS)")
        if data[5] not in (ELFDATA2LSB, ELFDATA2MSB):
            raise self.fail(f"unknown data encoding {data[5]} (EI_DATA)")
        cls = 32 if data[4] == ELFCLASS32 else 64
        order = "<" if data[5] == ELFDATA2LSB else ">"
        if len(data) < _EHDR_SIZE[cls]:
            raise self.fail(f"ELF header truncated: {len(data)} bytes, a {cls}-bit header "
                            f"needs {_EHDR_SIZE[cls]}")
        (e_type, e_machine, e_version, _entry, e_phoff, _shoff, _flags, _ehsize,
         e_phentsize, e_phnum, _shentsize, _shnum, _shstrndx) = struct.unpack_from(
            order + _EHDR[cls], data, EI_NIDENT)
        phdrs = self.program_headers(cls, order, e_phoff, e_phentsize, e_phnum)
        interp = None
        dynamic = None
        for p_type, p_offset, _vaddr, p_filesz in phdrs:
            if p_type == PT_INTERP and interp is None and p_filesz > 0:
                interp = self.interpreter(p_offset, p_filesz)
            elif p_type == PT_DYNAMIC and p_filesz > 0:
                dynamic = (p_offset, p_filesz)
        soname, needed, rpath, runpath, flags_1 = (
            self.dynamic(cls, order, phdrs, *dynamic) if dynamic else (None, (), None, None, 0))
        return Elf(cls=cls, endian="little" if order == "<" else "big", machine=e_machine,
                   machine_name=MACHINES.get(e_machine, f"EM_{e_machine}"), type=e_type,
                   interpreter=interp, soname=soname, needed=needed, rpath=_split(rpath),
                   runpath=_split(runpath), has_dynamic=dynamic is not None, osabi=data[7],
                   abiversion=data[8], version=e_version if data[6] == 1 else data[6],
                   flags_1=flags_1)

    def program_headers(self, cls: int, order: str, phoff: int, phentsize: int,
                        phnum: int) -> list[tuple[int, int, int, int]]:
        """(p_type, p_offset, p_vaddr, p_filesz) of every program header."""
        if phnum == 0:
            return []
        if phentsize != _PHDR_SIZE[cls]:
            raise self.fail(f"e_phentsize is {phentsize}, a {cls}-bit program header is "
                            f"{_PHDR_SIZE[cls]} bytes")
        self.span(f"program header table ({phnum} entries)", phoff, phnum * phentsize)
        table = self.data[phoff:phoff + phnum * phentsize]
        out = []
        for entry in struct.iter_unpack(order + _PHDR[cls], table):
            if cls == 64:
                p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = entry[:6]
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz = entry[:5]
            out.append((p_type, p_offset, p_vaddr, p_filesz))
        return out

    def interpreter(self, offset: int, size: int) -> str:
        self.span("PT_INTERP segment", offset, size)
        end = self.data.find(b"\0", offset, offset + size)
        if end < 0:
            raise self.fail("PT_INTERP path is not NUL-terminated within its segment")
        return self.data[offset:end].decode("utf-8", "surrogateescape")

    def dynamic(self, cls: int, order: str, phdrs: list[tuple[int, int, int, int]],
                offset: int, size: int
                ) -> tuple[str | None, tuple[str, ...], str | None, str | None, int]:
        """(soname, needed, rpath, runpath, flags_1) from the dynamic segment."""
        self.span("PT_DYNAMIC segment", offset, size)
        entry = struct.calcsize(order + _DYN[cls])
        count = size // entry
        needed: list[int] = []
        single: dict[int, int] = {}
        terminated = False
        for tag, value in struct.iter_unpack(order + _DYN[cls],
                                             self.data[offset:offset + count * entry]):
            if tag == DT_NULL:
                terminated = True
                break
            if tag == DT_NEEDED:
                needed.append(value)
            elif tag in (DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1):
                single[tag] = value
        if not terminated:
            raise self.fail("dynamic segment has no DT_NULL entry")
        wanted = needed + [single[t] for t in (DT_SONAME, DT_RPATH, DT_RUNPATH) if t in single]
        if not wanted:
            return None, (), None, None, single.get(DT_FLAGS_1, 0)
        if DT_STRTAB not in single:
            raise self.fail("dynamic segment names strings but has no DT_STRTAB")
        strings = self.string_table(phdrs, single[DT_STRTAB], single.get(DT_STRSZ))

        def opt(tag: int) -> str | None:
            return strings(single[tag]) if tag in single else None

        return (opt(DT_SONAME), tuple(strings(v) for v in needed), opt(DT_RPATH),
                opt(DT_RUNPATH), single.get(DT_FLAGS_1, 0))

    def string_table(self, phdrs: list[tuple[int, int, int, int]], address: int,
                     strsz: int | None) -> _Strings:
        for p_type, p_offset, p_vaddr, p_filesz in phdrs:
            if p_type == PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
                self.span("PT_LOAD segment holding DT_STRTAB", p_offset, p_filesz)
                start = p_offset + (address - p_vaddr)
                end = p_offset + p_filesz
                if strsz is not None:
                    end = min(end, start + strsz)
                return _Strings(self, start, end)
        raise self.fail(f"DT_STRTAB address {address:#x} is in no PT_LOAD segment's file "
                        "contents")


class _Strings:
    """The dynamic string table: NUL-terminated strings between ``start`` and ``end``."""

    def __init__(self, reader: _Reader, start: int, end: int) -> None:
        self.reader = reader
        self.start = start
        self.end = end

    def __call__(self, offset: int) -> str:
        at = self.start + offset
        if at >= self.end:
            raise self.reader.fail(f"string offset {offset:#x} is outside the string table "
                                   f"({self.end - self.start} bytes)")
        stop = self.reader.data.find(b"\0", at, self.end)
        if stop < 0:
            raise self.reader.fail(f"string at offset {offset:#x} is not NUL-terminated "
                                   "within the string table")
        return self.reader.data[at:stop].decode("utf-8", "surrogateescape")


def _split(path: str | None) -> tuple[str, ...]:
    """An rpath as its elements; ld.so ignores an empty rpath altogether."""
    return tuple(path.split(":")) if path else ()
