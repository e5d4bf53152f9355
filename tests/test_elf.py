"""ELF dynamic-linking facts: the host's own objects against binutils' readelf, objects
built here byte by byte (both classes, both byte orders), and hostile input, which must
raise FormatError naming the problem and nothing else."""

from __future__ import annotations

import contextlib
import glob
import os
import random
import re
import shutil
import struct
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer import elf
from composer.elf import ET_DYN, ET_EXEC, Elf
from composer.errors import FormatError

# --- building objects ----------------------------------------------------------------

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ = 0, 1, 5, 10
DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 14, 15, 29, 0x6FFFFFFB


@dataclass
class Built:
    """An object made by :func:`make_elf`, with where its parts are (to damage them)."""

    data: bytes
    cls: int
    order: str
    phoff: int
    phdrs: list[int]
    """p_type of each program header, in order."""
    strtab: int
    strsz: int
    dynamic: int
    dynsize: int
    base: int

    def phdr(self, p_type: int) -> int:
        """File offset of the first program header of that type."""
        size = 56 if self.cls == 64 else 32
        return self.phoff + self.phdrs.index(p_type) * size

    def patch(self, offset: int, fmt: str, *values: int) -> bytes:
        data = bytearray(self.data)
        struct.pack_into(self.order + fmt, data, offset, *values)
        return bytes(data)

    def dyn_entry(self, index: int) -> int:
        return self.dynamic + index * (16 if self.cls == 64 else 8)

    def set_phdr(self, p_type: int, *, offset: int | None = None, filesz: int | None = None,
                 data: bytes | None = None) -> bytes:
        """The object (or ``data``) with fields of one program header replaced."""
        at = self.phdr(p_type)
        word, fields = (("Q", {"offset": 8, "filesz": 32}) if self.cls == 64
                        else ("I", {"offset": 4, "filesz": 16}))
        buf = bytearray(self.data if data is None else data)
        for name, value in (("offset", offset), ("filesz", filesz)):
            if value is not None:
                struct.pack_into(self.order + word, buf, at + fields[name], value)
        return bytes(buf)


def make_elf(*, cls: int = 64, big: bool = False, machine: int = 62, etype: int = ET_DYN,
             interp: str | None = None, needed: tuple[str, ...] = (), soname: str | None = None,
             rpath: str | None = None, runpath: str | None = None, flags_1: int | None = None,
             base: int = 0x10000, osabi: int = 0, dynamic: bool = True,
             extra_dyn: tuple[tuple[int, int], ...] = ()) -> Built:
    """A minimal object: ELF header, program headers (PT_INTERP, PT_LOAD covering the whole
    file, PT_DYNAMIC), the string table, the dynamic array."""
    order = ">" if big else "<"
    ehsize, phsize = (64, 56) if cls == 64 else (52, 32)
    types = ([PT_INTERP] if interp is not None else []) + [PT_LOAD] + (
        [PT_DYNAMIC] if dynamic else [])
    phoff = ehsize
    strtab_off = phoff + phsize * len(types)
    strings = bytearray(b"\0")
    offsets: dict[str, int] = {}

    def add(s: str) -> int:
        if s not in offsets:
            offsets[s] = len(strings)
            strings.extend(s.encode() + b"\0")
        return offsets[s]

    entries: list[tuple[int, int]] = [(DT_NEEDED, add(n)) for n in needed]
    if soname is not None:
        entries.append((DT_SONAME, add(soname)))
    if rpath is not None:
        entries.append((DT_RPATH, add(rpath)))
    if runpath is not None:
        entries.append((DT_RUNPATH, add(runpath)))
    if flags_1 is not None:
        entries.append((DT_FLAGS_1, flags_1))
    interp_off = strtab_off + add(interp) if interp is not None else 0
    entries += [(DT_STRTAB, base + strtab_off), (DT_STRSZ, len(strings)), *extra_dyn,
                (DT_NULL, 0)]
    dyn_off = (strtab_off + len(strings) + 7) & ~7
    dynfmt = order + ("qQ" if cls == 64 else "iI")
    dyn = b"".join(struct.pack(dynfmt, t, v) for t, v in entries) if dynamic else b""
    total = dyn_off + len(dyn)
    phdrs = b""
    for t in types:
        off, size = {PT_INTERP: (interp_off, len((interp or "").encode()) + 1),
                     PT_LOAD: (0, total), PT_DYNAMIC: (dyn_off, len(dyn))}[t]
        if cls == 64:
            phdrs += struct.pack(order + "IIQQQQQQ", t, 4, off, base + off, base + off, size,
                                 size, 8)
        else:
            phdrs += struct.pack(order + "IIIIIIII", t, off, base + off, base + off, size,
                                 size, 4, 4)
    ident = b"\x7fELF" + bytes([1 if cls == 32 else 2, 2 if big else 1, 1, osabi]) + bytes(8)
    word = "Q" if cls == 64 else "I"
    header = ident + struct.pack(order + f"HHI{word}{word}{word}IHHHHHH", etype, machine, 1,
                                 base, phoff, 0, 0, ehsize, phsize, len(types), 0, 0, 0)
    data = header + phdrs + bytes(strings)
    data += bytes(dyn_off - len(data)) + dyn
    return Built(data, cls, order, phoff, types, strtab_off, len(strings), dyn_off, len(dyn),
                 base)


# --- readelf ---------------------------------------------------------------------------

READELF = shutil.which("readelf")
needs_readelf = pytest.mark.skipif(READELF is None, reason="binutils' readelf is not installed")


@dataclass
class Seen:
    """What readelf says about one file."""

    cls: int = 0
    endian: str = ""
    type: str = ""
    interp: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    dynamic: bool = False


def readelf(paths: list[str]) -> dict[str, Seen]:
    """readelf -h -l -d of many files in one run."""
    out: dict[str, Seen] = {}
    for chunk in range(0, len(paths), 100):
        part = paths[chunk:chunk + 100]
        r = subprocess.run([READELF or "readelf", "-W", "-h", "-l", "-d", *part],
                           capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
                           check=False)
        current = Seen()
        name = part[0]
        for line in r.stdout.splitlines():
            if line.startswith("File: "):
                name = line[6:].strip()
                current = out.setdefault(name, Seen())
                continue
            current = out.setdefault(name, current)
            text = line.strip()
            if text.startswith("Class:"):
                current.cls = 64 if "ELF64" in text else 32
            elif text.startswith("Data:"):
                current.endian = "big" if "big endian" in text else "little"
            elif text.startswith("Type:"):
                current.type = text.split()[1]
            elif m := re.search(r"\[Requesting program interpreter: (.*)\]$", text):
                current.interp = m.group(1)
            elif m := re.search(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[^[]*\[(.*)\]$", text):
                current.dynamic = True
                tag, value = m.groups()
                if tag == "NEEDED":
                    current.needed += (value,)
                else:
                    setattr(current, tag.lower(), value)
            elif text.startswith("Dynamic section at offset"):
                current.dynamic = True
    return out


def host_objects() -> list[str]:
    """A deterministic sample of the host's ELF files: the named ones, every Python
    extension module of the running interpreter, libraries, programs, and anything
    32-bit or big-endian binutils' arch-test ships."""
    named = ["/bin/ls", "/usr/lib/x86_64-linux-gnu/libc.so.6", os.path.realpath("/usr/bin/python3")]
    dynload = sorted(glob.glob("/usr/lib/python3*/lib-dynload/*.so")) + sorted(
        glob.glob(os.path.join(sysconfig.get_config_var("DESTSHARED") or "/nonexistent", "*.so")))
    pools = [sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*"))[:150],
             sorted(glob.glob("/usr/bin/*"))[:150], sorted(glob.glob("/usr/lib/arch-test/*")),
             sorted(glob.glob("/usr/lib/jvm/*/lib/*.so"))[:20],
             sorted(glob.glob("/usr/lib/systemd/*.so"))]
    out: list[str] = []
    for path in [*named, *dynload, *(p for pool in pools for p in pool)]:
        if path in out or not os.path.isfile(path) or os.path.islink(path):
            continue
        with open(path, "rb") as f:
            if f.read(4) == elf.MAGIC:
                out.append(path)
    return out


@pytest.fixture(scope="module")
def host() -> dict[str, tuple[Elf, Seen]]:
    if READELF is None:
        pytest.skip("binutils' readelf is not installed")
    paths = host_objects()
    seen = readelf(paths)
    parsed = {}
    for p in paths:
        e = elf.read(Path(p).read_bytes(), p)
        assert e is not None, p
        parsed[p] = (e, seen[p])
    return parsed


@needs_readelf
def test_host_objects_match_readelf(host: dict[str, tuple[Elf, Seen]]) -> None:
    assert len(host) >= 20
    for path, (e, seen) in host.items():
        assert (e.cls, e.endian, e.type_name) == (seen.cls, seen.endian, "ET_" + seen.type), path
        assert e.interpreter == seen.interp, path
        assert e.has_dynamic == seen.dynamic, path
        assert e.needed == seen.needed, path
        assert e.soname == seen.soname, path
        assert e.rpath == (tuple(seen.rpath.split(":")) if seen.rpath else ()), path
        assert e.runpath == (tuple(seen.runpath.split(":")) if seen.runpath else ()), path


@needs_readelf
def test_named_host_objects(host: dict[str, tuple[Elf, Seen]]) -> None:
    ls, _ = host["/bin/ls"]
    assert ls.machine == 62 and ls.machine_name == "x86-64" and ls.cls == 64
    assert ls.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in ls.needed
    libc, _ = host["/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert libc.soname == "libc.so.6" and libc.type == ET_DYN
    assert libc.needed == ("ld-linux-x86-64.so.2",)
    modules = [p for p in host if ".cpython-" in p]
    assert modules, "the host's Python has no extension modules in lib-dynload"
    for p in modules:
        e, _ = host[p]
        assert e.has_dynamic and e.interpreter is None and e.type == ET_DYN


@needs_readelf
def test_host_32_bit_and_big_endian_if_present(host: dict[str, tuple[Elf, Seen]]) -> None:
    odd = [(p, e) for p, (e, _) in host.items() if e.cls == 32 or e.endian == "big"]
    if not odd:
        pytest.skip("no 32-bit or big-endian ELF files on this host")
    for p, e in odd:  # e_machine and e_type, read here from the header bytes
        head = Path(p).read_bytes()[:20]
        order = ">" if head[5] == 2 else "<"
        assert (e.type, e.machine) == struct.unpack(order + "HH", head[16:20]), p


@needs_readelf
@pytest.mark.parametrize("cls,big,machine", [(64, False, 62), (32, False, 3), (64, True, 22),
                                             (32, True, 20)])
def test_built_objects_read_the_same_by_readelf(tmp_path: Path, cls: int, big: bool,
                                                machine: int) -> None:
    b = make_elf(cls=cls, big=big, machine=machine, interp="/lib/ld.so.1",
                 needed=("liba.so.1", "libb.so.2"), soname="libme.so.3", rpath="$ORIGIN:/opt/x",
                 runpath="/r")
    path = tmp_path / "obj"
    path.write_bytes(b.data)
    seen = readelf([str(path)])[str(path)]
    e = elf.read(b.data)
    assert e is not None
    assert seen == Seen(cls, "big" if big else "little", "DYN", "/lib/ld.so.1",
                        ("liba.so.1", "libb.so.2"), "libme.so.3", "$ORIGIN:/opt/x", "/r", True)
    assert (e.cls, e.endian, e.interpreter, e.needed, e.soname, e.rpath, e.runpath) == (
        cls, "big" if big else "little", "/lib/ld.so.1", ("liba.so.1", "libb.so.2"),
        "libme.so.3", ("$ORIGIN", "/opt/x"), ("/r",))


# --- built objects ---------------------------------------------------------------------

def test_big_endian_64_bit_object() -> None:
    b = make_elf(big=True, machine=22, etype=ET_EXEC, interp="/lib/ld64.so.1",
                 needed=("libc.so.6",), flags_1=elf.DF_1_NODEFLIB, base=0x1000000)
    e = elf.read(b.data)
    assert e == Elf(cls=64, endian="big", machine=22, machine_name="s390", type=ET_EXEC,
                    interpreter="/lib/ld64.so.1", soname=None, needed=("libc.so.6",), rpath=(),
                    runpath=(), has_dynamic=True, flags_1=elf.DF_1_NODEFLIB)
    assert e.type_name == "ET_EXEC"


def test_32_bit_object() -> None:
    e = elf.read(make_elf(cls=32, machine=3, needed=("libm.so.6", "libc.so.6")).data)
    assert e is not None and (e.cls, e.machine_name, e.needed) == (32, "i386",
                                                                   ("libm.so.6", "libc.so.6"))


def test_no_dynamic_segment_and_unknown_machine() -> None:
    e = elf.read(make_elf(dynamic=False, machine=0x1234).data)
    assert e is not None and not e.has_dynamic and e.needed == ()
    assert e.machine_name == "EM_4660"


def test_last_entry_counts_and_empty_rpath_is_none() -> None:
    b = make_elf(needed=("a",), rpath="")
    assert elf.read(b.data).rpath == ()  # type: ignore[union-attr]
    b = make_elf(needed=("a",), rpath="/one", runpath="a::b")
    e = elf.read(b.data)
    assert e is not None and e.rpath == ("/one",) and e.runpath == ("a", "", "b")


def test_debuginfo_style_empty_segments_are_absent() -> None:
    b = make_elf(interp="/lib/ld.so", needed=("a",))
    e = elf.read(b.set_phdr(PT_DYNAMIC, filesz=0, data=b.set_phdr(PT_INTERP, filesz=0)))
    assert e is not None and e.interpreter is None and not e.has_dynamic


# --- hostile input ---------------------------------------------------------------------

def test_not_elf() -> None:
    assert elf.read(b"") is None
    assert elf.read(b"\x7fEL") is None
    assert elf.read(b"#!/bin/sh\necho hi\n") is None
    assert elf.read(b"\x7fELG" + bytes(60)) is None


def fails(data: bytes, words: str) -> None:
    with pytest.raises(FormatError) as e:
        elf.read(data, "usr/lib/libx.so")
    assert e.value.message.startswith("usr/lib/libx.so: ")
    assert words in e.value.message, e.value.message
    assert e.value.hint


def test_truncated_headers() -> None:
    b = make_elf(needed=("libc.so.6",))
    fails(b.data[:10], "e_ident truncated")
    fails(b.data[:40], "ELF header truncated: 40 bytes, a 64-bit header needs 64")
    fails(make_elf(cls=32).data[:50], "a 32-bit header needs 52")
    fails(b.data[:4] + b"\x03" + b.data[5:], "unknown ELF class 3")
    fails(b.data[:5] + b"\x07" + b.data[6:], "unknown data encoding 7")


def test_program_header_table_out_of_bounds() -> None:
    b = make_elf(needed=("libc.so.6",))
    fails(b.patch(32, "Q", len(b.data) - 10), "program header table (2 entries)")
    fails(b.patch(56, "H", 0xFFFF), "program header table (65535 entries)")
    fails(b.patch(54, "H", 32), "e_phentsize is 32, a 64-bit program header is 56 bytes")
    fails(b.data[:b.phoff + 20], "extends past the end of the file")


def test_dynamic_segment_out_of_bounds() -> None:
    b = make_elf(needed=("libc.so.6",))
    fails(b.set_phdr(PT_DYNAMIC, offset=len(b.data) + 8), "PT_DYNAMIC segment")
    fails(b.set_phdr(PT_DYNAMIC, filesz=b.dynsize + 16), "PT_DYNAMIC segment")
    fails(b.data[:-8], "PT_DYNAMIC segment")
    fails(b.set_phdr(PT_DYNAMIC, filesz=b.dynsize - 16), "no DT_NULL")


def test_string_table_out_of_bounds() -> None:
    b = make_elf(needed=("libc.so.6",))
    strtab = 1  # NEEDED, STRTAB, STRSZ, NULL
    fails(b.patch(b.dyn_entry(strtab) + 8, "Q", 0x900000), "DT_STRTAB address 0x900000 is in")
    fails(b.patch(b.dyn_entry(0) + 8, "Q", b.strsz), "outside the string table")
    fails(b.patch(b.dyn_entry(0) + 8, "Q", 1 << 40), "outside the string table")
    fails(b.set_phdr(PT_LOAD, filesz=len(b.data) + 4096), "PT_LOAD segment holding DT_STRTAB")
    no_strtab = b.patch(b.dyn_entry(strtab), "q", 0x7FFF)
    fails(no_strtab, "has no DT_STRTAB")


def test_unterminated_strings() -> None:
    b = make_elf(needed=("libc.so.6",))
    # DT_STRSZ one short: the last string's NUL is outside the table.
    fails(b.patch(b.dyn_entry(2) + 8, "Q", b.strsz - 1), "not NUL-terminated")
    b = make_elf(interp="/lib64/ld.so")
    fails(b.set_phdr(PT_INTERP, filesz=4), "PT_INTERP path is not NUL-terminated")
    fails(b.set_phdr(PT_INTERP, offset=len(b.data) - 2), "PT_INTERP segment")


def test_every_truncation_is_none_or_a_format_error() -> None:
    for b in (make_elf(interp="/lib/ld.so", needed=("a", "b"), soname="s", runpath="/x"),
              make_elf(cls=32, big=True, needed=("a",))):
        for n in range(len(b.data)):
            # None, an Elf or FormatError; nothing else escapes
            with contextlib.suppress(FormatError):
                elf.read(b.data[:n])


def test_damaged_real_headers_raise_only_format_error() -> None:
    path = Path("/bin/ls")
    if not path.exists():
        pytest.skip("no /bin/ls")
    data = path.read_bytes()
    e = elf.read(data)
    assert e is not None
    dynamic = [at for at in range(0, 64 * 56, 56) if data[64 + at:68 + at] == b"\2\0\0\0"]
    assert dynamic
    dyn_off = struct.unpack_from("<Q", data, 64 + dynamic[0] + 8)[0]
    rng = random.Random(20240601)
    for _ in range(2000):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            at = rng.choice([rng.randrange(4, 64 + 14 * 56), dyn_off + rng.randrange(512)])
            damaged[at] = rng.randrange(256)
        cut = rng.choice([len(damaged), rng.randrange(len(damaged))])
        with contextlib.suppress(FormatError):
            elf.read(bytes(damaged[:cut]))
