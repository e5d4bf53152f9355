"""ld.so.cache from a tree: the bytes the image's own ldconfig writes.

Three kinds of checks: the host's ldconfig on a tree of the host's own libraries
(whatever glibc the host has), recorded outputs of Debian 13's ldconfig (2.41) for
seven architectures and Debian 12's (2.36) for amd64 on one small tree, and pure tests
of the pieces (order, flags, glibc-hwcaps, configuration, links)."""

from __future__ import annotations

import base64
import os
import platform
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from composer.errors import ComposeError
from composer.image import ldcache
from composer.image.tree import DIR, FILE, HARDLINK, SYMLINK, Entry

GEN_13 = "ldconfig (Debian GLIBC 2.41-12+deb13u4) stable release version 2.41"
GEN_12 = "ldconfig (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36"

EM = {"amd64": 62, "i386": 3, "arm64": 183, "armhf": 40, "ppc64el": 21, "s390x": 22,
      "riscv64": 243}
"""e_machine of each architecture's own objects."""


# --- building trees ------------------------------------------------------------------

class Link(str):
    """A symlink target in :func:`tree`'s input."""


def make_elf(soname: bytes | None = b"libx.so.1", *, cls: int = 64, big: bool = False,
             machine: int = 62, e_flags: int = 0, e_type: int = 3,
             needed: tuple[bytes, ...] = (), interp: bytes | None = None,
             isa_needed: int | None = None, dynamic: bool = True, extra: bytes = b"") -> bytes:
    """A minimal ELF object ldconfig accepts: one PT_LOAD over the file (at a load bias,
    so that DT_STRTAB needs translating), PT_DYNAMIC with DT_STRTAB, DT_SONAME and
    DT_NEEDED, and optionally PT_INTERP and an x86 ISA-needed property note."""
    e = ">" if big else "<"
    wide = cls == 64
    ehsize, phsize, dsize = (64, 56, 16) if wide else (52, 32, 8)
    bias = 0x10000
    strs = bytearray(b"\0")

    def add(s: bytes) -> int:
        strs.extend(s + b"\0")
        return len(strs) - len(s) - 1

    dyn = [(14, add(soname))] if soname is not None else []
    dyn += [(1, add(n)) for n in needed]
    nph = 1 + int(dynamic) + int(interp is not None) + int(isa_needed is not None)
    off = ehsize + phsize * nph
    interp_off = off
    if interp is not None:
        off += len(interp) + 1
    off = -(-off // 8) * 8
    note = b""
    note_off = off
    if isa_needed is not None:
        desc = struct.pack(e + "III", 0xC0008002, 4, isa_needed)
        desc += b"\0" * (-len(desc) % (8 if wide else 4))
        note = struct.pack(e + "III", 4, len(desc), 5) + b"GNU\0" + desc
        off = -(-(off + len(note)) // 8) * 8
    str_off = off
    off = -(-(off + len(strs)) // 8) * 8
    dyn = [(5, str_off + bias), *dyn, (0, 0)]
    dyn_off = off
    total = off + dsize * len(dyn) + len(extra)

    def ph(ptype: int, poff: int, size: int, align: int) -> bytes:
        if wide:
            return struct.pack(e + "IIQQQQQQ", ptype, 4, poff, poff + bias, poff + bias, size,
                               size, align)
        return struct.pack(e + "IIIIIIII", ptype, poff, poff + bias, poff + bias, size, size, 4,
                           align)

    phdrs = ph(1, 0, total, 0x1000)
    if interp is not None:
        phdrs += ph(3, interp_off, len(interp) + 1, 1)
    if isa_needed is not None:
        phdrs += ph(0x6474E553, note_off, len(note), 8 if wide else 4)
    if dynamic:
        phdrs += ph(2, dyn_off, dsize * len(dyn), 8 if wide else 4)
    ident = b"\x7fELF" + bytes([1 if cls == 32 else 2, 2 if big else 1, 1]) + b"\0" * 9
    fmt = "HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"
    hdr = ident + struct.pack(e + fmt, e_type, machine, 1, 0, ehsize, 0, e_flags, ehsize,
                              phsize, nph, 64 if wide else 40, 0, 0)
    buf = bytearray(total)
    buf[:len(hdr)] = hdr
    buf[ehsize:ehsize + len(phdrs)] = phdrs
    if interp is not None:
        buf[interp_off:interp_off + len(interp)] = interp
    buf[note_off:note_off + len(note)] = note
    buf[str_off:str_off + len(strs)] = strs
    dyn_bytes = b"".join(struct.pack(e + ("qQ" if wide else "iI"), t, v) for t, v in dyn)
    buf[dyn_off:dyn_off + len(dyn_bytes)] = dyn_bytes
    buf[total - len(extra):] = extra
    return bytes(buf)


def own_elf(arch: str, soname: bytes | None, **kw: object) -> bytes:
    """An object of the architecture's own kind (class, byte order, ABI flags)."""
    base: dict[str, object] = {
        "machine": EM[arch], "cls": 32 if arch in ("i386", "armhf") else 64,
        "big": arch == "s390x", "needed": (b"libc.so.6",),
        "e_flags": {"armhf": 0x05000400, "ppc64el": 2, "riscv64": 0x5}.get(arch, 0),
    }
    return make_elf(soname, **{**base, **kw})  # type: ignore[arg-type]


def tree(files: Mapping[str, bytes | str]) -> dict[str, Entry]:
    """Entries from ``path -> content`` (bytes: a file, Link: a symlink, "": a
    directory, "=path": a hardlink), parents added as directories."""
    out: dict[str, Entry] = {}
    for path, content in files.items():
        parent = path.rpartition("/")[0]
        while parent and parent not in out:
            out[parent] = Entry(parent, DIR, 0o755)
            parent = parent.rpartition("/")[0]
        if isinstance(content, Link):
            out[path] = Entry(path, SYMLINK, 0o777, target=str(content))
        elif isinstance(content, bytes):
            out[path] = Entry(path, FILE, 0o644, data=content)
        elif content.startswith("="):
            out[path] = Entry(path, HARDLINK, 0o644, target=content[1:])
        else:
            out[path] = Entry(path, DIR, 0o755)
    return out


def triplet(arch: str) -> str:
    return ldcache.ARCHES[arch].triplet


def golden_tree(arch: str) -> dict[str, Entry]:
    """A small tree with most of what ldconfig decides on: config includes, comments,
    hwcap lines, a symlinked lib directory, soname and dev links, two directories with
    one soname, glibc-hwcaps subdirectories (one empty), legacy hwcap subdirectories,
    dpkg temporaries, foreign objects and non-ELF files."""
    t = triplet(arch)
    lib = f"usr/lib/{t}"
    x86 = arch in ("amd64", "i386")
    files: dict[str, bytes | str] = {
        "lib": Link("usr/lib"),
        "etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n",
        "etc/ld.so.conf.d/libc.conf": b"# libc default configuration\n/usr/local/lib\n",
        f"etc/ld.so.conf.d/{t}.conf":
            f"/usr/local/lib/{t}\n/lib/{t}\n/usr/lib/{t}\n".encode(),
        "etc/ld.so.conf.d/zz.conf": b"/opt/b   # trailing\nhwcap 0 nosegneg\n/opt/alias/\n"
                                    b"/opt/typed=libc6\ninclude sub/*.conf\n",
        "etc/ld.so.conf.d/sub/a.conf": b"/opt/sub\n",
        f"{lib}/libc.so.6": own_elf(arch, b"libc.so.6", needed=()),
        f"{lib}/libfoo.so.1.2.3": own_elf(arch, b"libfoo.so.1"),
        f"{lib}/libfoo.so.1": Link("libfoo.so.1.2.3"),
        f"{lib}/libfoo.so": Link("libfoo.so.1"),
        f"{lib}/libbar.so.10": own_elf(arch, b"libbar.so.10"),
        f"{lib}/libbar.so.9": own_elf(arch, b"libbar.so.9"),
        f"{lib}/libnosoname.so": own_elf(arch, None),
        f"{lib}/libscript.so": b"/* GNU ld script */\nGROUP ( libc.so.6 )\n",
        f"{lib}/libgone.so.2": Link("libgone.so.2.0"),
        f"{lib}/libnew.so.4.dpkg-new": own_elf(arch, b"libnew.so.4"),
        f"{lib}/glibc-hwcaps/x86-64-v3/libfoo.so.1.2.3": own_elf(arch, b"libfoo.so.1",
                                                                  isa_needed=4),
        f"{lib}/glibc-hwcaps/x86-64-v2": "",
        f"{lib}/glibc-hwcaps/power10/libbar.so.10": own_elf(arch, b"libbar.so.10"),
        f"{lib}/tls/libfoo.so.1": own_elf(arch, b"libfoo.so.1"),
        "usr/local/lib/libfoo.so.1": own_elf(arch, b"libfoo.so.1"),
        "usr/local/lib/x86_64/libfoo.so.1": own_elf(arch, b"libfoo.so.1"),
        "usr/local/lib/haswell/libfoo.so.1": own_elf(arch, b"libfoo.so.1"),
        "opt/b/libbaz.so.2": own_elf(arch, b"libbaz.so.2"),
        "opt/b/libbaz-hard.so.2": "=opt/b/libbaz.so.2",
        "opt/alias": Link("/opt/real"),
        "opt/real/libreal.so.5": own_elf(arch, b"libreal.so.5"),
        "opt/real/libbar.so.10": own_elf(arch, b"libbar.so.10"),
        "opt/typed/libtyped.so.1": own_elf(arch, b"libtyped.so.1", needed=()),
        "opt/sub/libsub.so.1": own_elf(arch, b"libsub.so.1"),
        "opt/sub/lib32.so.1": make_elf(b"lib32.so.1", cls=32, machine=3 if x86 else 40),
        "opt/sub/lib64.so.1": make_elf(b"lib64.so.1", machine=62),
        "opt/sub/libexec.so.1": own_elf(arch, b"libexec.so.1", e_type=2),
    }
    return tree(files)


def write(entries: Mapping[str, Entry], root: Path) -> None:
    """The tree on disk (for the host's ldconfig); hardlinks last."""
    for path in sorted(entries, key=lambda k: (entries[k].kind == HARDLINK, k)):
        e = entries[path]
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if e.kind == DIR:
            p.mkdir(exist_ok=True)
        elif e.kind == SYMLINK:
            p.symlink_to(e.target)
        elif e.kind == HARDLINK:
            os.link(root / e.target, p)
        else:
            p.write_bytes(e.data)


def read(root: Path) -> dict[str, Entry]:
    """Entries from a directory on disk, hardlinks as HARDLINK."""
    out: dict[str, Entry] = {}
    seen: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Entry(rel, SYMLINK, target=os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Entry(rel, DIR)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    out[rel] = Entry(rel, HARDLINK, target=seen[key])
                else:
                    seen[key] = rel
                    out[rel] = Entry(rel, FILE, data=full.read_bytes())
    return out


# --- recorded outputs of the real ldconfig -------------------------------------------

GOLDEN: dict[tuple[str, str], str] = {
    ("amd64", GEN_12): (
        "eNqFk79Lw0AUx8+2g+Di0N3oIIokadIaFBdRUQRXcVMuyZkGz1zJJU0VBP8BZzdRcdfd2T+gmyCC"
        "o/gHuOq79Gfaa3vkcZfP+957L3cvHvVtR6WuxpnmYKdKDM0oIoTucgjBg14KKDPyeYSKwGYG+BTY"
        "ErA5if4b7DM/zP/AfiX8ERLf5ob5LrCShL8Be5bwJthHrlcfLDc7/Cib97rDrzK80I3z2ua5gfj3"
        "eXneVQlfhM2zkjpvgCUSvgy2IInzAGdcz57zZodvFOT6Ywk/g5yHA3l16Ae9sWadWBWV+kHcUL0g"
        "FvCUMeiR0f6AcRbgczJWZONQNNr6aIUj/BbSWS3SMfUxFzAkmAq+OiY9SYSigsCpgrNeHqH10oav"
        "Jg6ucb0r7n2hZmimVu6GMVul2K3qL4XAnHRImjFCEVGeVcU81ClzME31VcwTQuk4yRhXK1tWIUqP"
        "LmrEFThd9Dl4nMaDaRhalWFWNlusxhISGqWJtywkmWvs45Ovpp0luw+haP7pp79lv6Cvt9v/txjv"
        "8D4NcxnmJgip67Dg1PeUpR1i+zhQ9g72t7YVuGJLXV9xiW2YsVFZVniEbUqUkFCCOVHqJOQ+C1Ld"
        "PzuEFak="
    ),
    ("amd64", GEN_13): (
        "eNqFkjtPwzAQx910QSxMHRFh46E45EGArVAkhMQHYENO6qaRTFzFTYtYWdhgRGJlZu6CxAdAzCwM"
        "rEhMSIgNzumDpnFpJOfi3/3vzjlfyCI/MFgdC44DEjSpha0FhNB3CSEN7HUZ5Z4y7L/A8aFNcFjz"
        "8Cop9G+gfdGKfA3YkoI/Q+1eqcifQLs70Es3fFaH/EFT628V/B6CbxT5K6D9UfAr4JeKPBewjvP/"
        "Wx3yxbJaX1XwT6j5OlHXhHsxz7a9E881WBSnZ0YYpxI2OIe7mu6PueAxOaX/inySyAvfma4IpN9D"
        "Jm+1TcIiIiRMKGGSbyIIMSCk40zJEGZj1ewGpCXMkfjv/NjCNnZGaex+Ib9/tnMpsGe1AFvITEVi"
        "Mh4QlmlzLplPpBkEU4SeW2SO3Wct3qWJtTGzf1KSa9AYn92WQZV8XHv57n181B5hPmqDeZdPD/Zz"
        "YCtgt0DI6gGPG1Gor+xTPyKxfnB0uFfTbexahmWv16lvOam7qos28RnVE8ooEVTv0EREPM50v+NL"
        "1/0="
    ),
    ("arm64", GEN_13): (
        "eNqNkr1OwzAQgN10ALHAiliCuoBQHJKGCMRSUVCFxDsgJ3XTSCau4qateAXExtCRgZ2ZDYmFEfEA"
        "MCKxIjExcE5/05gWK4mVz5/PPvsCFnq+wepYcOwTv0ktbK0iaFr6oH4RZVpxBaEfGPjSZji8a/BZ"
        "Uvgf4L5peY6BlRT8pYDQQyHPX8E9GfrD4cqI32pq/0nB72FyXxF/Xeas8G+AXSv4FeR6ns23MuKl"
        "otqvKfg37OV9Zj8m3ItJSOw3XcdgYZT0jCBKJG1wDpc1R4i44BG5oPMtj8Tyzg/mKL4UXGTyVtsk"
        "LCRCwpgSJvke6u27BkzplP8KEaS11ez6pCXMsT3JAVvYxuVxHHuwkjfY3aUU7IXngC1kJiI2GfcJ"
        "S+XMkAwokhRCl4euk2dle8BavEtja3fxGUonc0ZT/B8nM1wnO7G9efc5XXLPUDfVSd2jR/hfhn4D"
        "+kMQWd3nUSMM9K1j6oUk0mtnp0dV3caOZVj2Tp16VjlxtnXRJh6jekwZJYLqHRqLkEep9wvZMdzs"
    ),
    ("armhf", GEN_13): (
        "eNqNk7tOwzAUQG/bpbCAxMqQToCqJORBBBuiSBUSfISTumkkN67ipq34EZCQmBgQGzMfAQMDEwsb"
        "KysSXKdpqzxoiRJbOT6+tq9tnwWup7KOJrjmEa9HDc3YAIDNKgC+cF+DzFNbB6gj+6nmOH7bWGzl"
        "/TWAL3Q/q0XuIGuW8NcKwFOlyN/RvUj9tPl4xh+q5f5zCX/Eztcl8Rvo1kv8W2RXJfwG19rPrvd4"
        "xtu1cl8v4d84l4/cfHTcF51EfZUFYTxR/TCmxA16Xcm7nON2LVVCLnhI+nSV55JI7vzRUsmTigM6"
        "Hwx1wgIiJIwoYZIfwOTQUR1bHVl/B/GTU9Ybe2Qg9Lm/WItmaKZmzSOZ07Hc6QwvpWD+IyOaAXos"
        "Ip1xj7BEzzTJkCJOIFZF6NhFZplTNuBjGhn7uRyk2ZN8dY6XWZn8pGNluw4bd5kr9IbnqLW4B/CC"
        "/3WsdyRHkXU8HnYDX9k9pW5AQqV9fnbSUkzNNlTDbHaoa1ixvaeIIXEZVSLKKBFUGdFIBDxMvF8o"
        "Aub8"
    ),
    ("i386", GEN_13): (
        "eNqFkr1OwzAQx912gQEhJtbABEJxcBIiulUUCYF4CSd100gmruKmrRgQCw/AxgMwMDDAwsyMWBkY"
        "2VAlRgYWxDn9oGnd1lJy8e/+vnPuLuSRH5i8hqXAAQ0ajGCyihD6LCBUBHtZQrlVgn0PHB/FCQ7P"
        "L7BvDX8D9qrhm8DWNfwFcj8VpvkzaMsDvXLDZ2XIr4t6/aOG38PhG038FdD+aPgV8AtNHAmvk3x9"
        "KkO+VtLrbQ3/gpzvE3kt6IsVOfueyaM47ZphnCpUFwI6NcsbCyliesbmSHyaqFaXZ/kD5fWQJZot"
        "i/KISgUTRrnie6gLes812472fJgNU6MT0Ka0RtL/e2OCbeyMgtj9NH7/XudKYM//cUyQlcrE4iKg"
        "PFPmXCqaTDMIZhp67jRz7D5rig5LyO6CuilBrjRjfFFBBhnyp1obt73x0XqAgagO5lutO9gvgV0G"
        "a4GQ1wIR16PQ2DpkfkRj4+j0+KBq2NglJrF3aswnTupuG7JFfc6MhHFGJTPaLJGRiDPdH5Nb0zI="
    ),
    ("ppc64el", GEN_13): (
        "eNqNk89KwzAYwLMOQRD04t1625C2pq1FEUScIKJXHyDNsq4Qm9Ks29AX8Sp4EDzqwYvvIXjxpuwB"
        "vOrX7m/X4Fbahv7y+74kX9KAhz41eNOUwqSEthk28QZCSNcQghu9VlHhqq4gtAlsbZ7DU4PXlsL/"
        "hUQ/WpkfAXMU/L2C0FulzAfgXo38UffxmH9oav9FwZ8h+E6Rvw7uusJ/BHav4E+w1tvieo/H/LCq"
        "9qmCa5D7a24+FuyLFYseS2LquZwZPIzSvhFEadbTEgI2bIEUCSkics0Wmz5Jsv0/WKDRTPKQJeKO"
        "RXhIZAYTRnjG91B/3zM81+g6/6UJ8vPW7lESS2sSMV2TiU3bdCa57OFo/nCWN5lgL1UbEyMrlYnF"
        "BSU8Dyh0ZUllmkNoytBzy8yxhywfGe8uV9PMK9Rrhi9ZpdF4xeDO9sNg9kh+w7lqTP8L9Anfq9A6"
        "0F6AyJtURK0w0GunzA9JpJ9dnp80dNt0sYHtnSbzsZO6dV12iM+ZnjDOiGR6lyUyFFHu/QECAust"
    ),
    ("riscv64", GEN_13): (
        "eNqNkj9Lw0AUwK/poJtdxSXSRZFcvKQGxaVYpQh+B7mk1zRw5kquaYtfQdwcOjq4O7sJLo7iB9BR"
        "cBWcHHyX/k0TW4/Akd/73bt7d8/ngesZvIGlwB71WoxgsoZgaMmHBkWUGkUI/kDgS8vyErgr834J"
        "oQ9w37Qsx8DKOfylgNBDIctfwT0Z+aNwdcyftHz/Noffw+JBTv51VXOOfwPsOodfQa3n6XqrY14u"
        "5vv1HP4NZ3mfO48J72JGgfS6TsXgQRj3DT+MFW0KAY+1QAiFFCG9YIstl0bqzQ8WKJ4SHGSKdsek"
        "PKBSwYhRrvge6u87Bizp2n+l8JPeavU82pbmxJ7WgAm2sD3JYw13coenu1SCtfQeMEFmLCOTC4/y"
        "RE6FVEIZJxCmLHQqWWZbQ9YWPRaR3eV3qJzUHc3wf9zMaJ/0ws7m3edsyz1D39SmfY8e4X8V5g2Y"
        "D0HkDU+EzcDXt46ZG9BQr5+dHtV0C1eIQaydBnOJHVe2ddmhLmd6xDijkuldFslAhIn3CzfJ3o4="
    ),
    ("s390x", GEN_13): (
        "eNqFkrFOwzAQht2GgaXvEMQCQnGapFR0QxQJIbGxICYc100jGbuKm7ZCYuYNmJhQtz4AI4wMvERX"
        "2JHYOCeoTVSHWvod+fOf8519EY9D6vAeVhJTQgfMwx5CqIFQ7d1CelhNVBpbgOtz0PM6r32Dvgz8"
        "CfRgiPMIaujVcQ5rBV7l7xvi34MGBr4AfRjiXIMu17m1C/ynkE+Rv1b4F4Zz30DzInXhnl0VdJpT"
        "h8cinTqRSDXrSwlXX7ktpJKC3LL/PCFJ9Ot1Kg1Ub7eRK4cjl/CYKA0TRrjmh2h61HbaLWccmANE"
        "WYcMJpQMlbv0rnLHHvZxsIzi5+eEeWZ32uBvqB46zk1V4nJJCc+spS0dTqUZhE8Oh3LCEq+56U60"
        "o1R1gW+s9e+M8m+fs50RPGd99bLWDUzdvHez9RVM22B5AVm8R6Xox5G9d8rCmAj77OL8pGv7uOU5"
        "nn/QY6EXpK19W41IyJmdMM6IYvaYJSqWIvP9AlEDxyM="
    ),
}
"""zlib + base64 of the /etc/ld.so.cache that ldconfig (2.41: Debian 13's, run in
bubblewrap, under qemu-user for the foreign architectures; 2.36: Debian 12's,
``ldconfig -r``) wrote for :func:`golden_tree`."""


def golden(arch: str, generator: str) -> bytes:
    return zlib.decompress(base64.b64decode(GOLDEN[arch, generator]))


@pytest.mark.parametrize(("arch", "generator"), sorted(GOLDEN))
def test_recorded_ldconfig_output(arch: str, generator: str) -> None:
    assert ldcache.build(golden_tree(arch), arch, generator) == golden(arch, generator)


# --- the host's ldconfig on the host's libraries -------------------------------------

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "armv7l": "armhf",
             "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}.get(platform.machine())
HOST_LIBS = ("ld-linux*", "libc.so*", "libm.so*", "libmvec*", "libpthread*", "libdl.so*",
             "libresolv*", "libnss_*", "libz.so*", "libgcc_s*", "libstdc++*", "libffi*",
             "libcrypt.so*", "libuuid*", "libzstd*", "liblzma*", "libbz2*", "libtinfo*",
             "libselinux*", "libpcre2-8*", "libacl*", "libattr*", "libexpat*", "libssl*",
             "libcrypto*", "libsqlite3*")


def host_ldconfig() -> Path:
    found = next((p for p in (Path("/sbin/ldconfig"), Path("/usr/sbin/ldconfig")) if p.is_file()),
                 None)
    if found is None and (w := shutil.which("ldconfig")):
        found = Path(w)
    if found is None:
        pytest.skip("no ldconfig on this host (package libc-bin)")
    if HOST_ARCH is None:
        pytest.skip(f"no Debian architecture known for machine {platform.machine()!r}")
    return found


def host_tree(root: Path) -> None:
    """The host's libc and some common libraries, its ld.so.conf, and a few shapes
    Debian packages do not ship: a symlinked directory listed before its target, a
    soname in two directories, glibc-hwcaps subdirectories, a dangling link, a link
    named neither after the soname nor ``.so``, and objects for other machines."""
    assert HOST_ARCH is not None
    t = triplet(HOST_ARCH)
    src = next(p for p in (Path("/usr/lib") / t, Path("/lib") / t) if p.is_dir())
    lib = root / "usr/lib" / t
    lib.mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    for pattern in HOST_LIBS:
        for f in sorted(src.glob(pattern)):
            if f.is_symlink() or f.is_file():
                shutil.copy2(f, lib / f.name, follow_symlinks=False)
    etc = root / "etc"
    (etc / "ld.so.conf.d").mkdir(parents=True)
    if Path("/etc/ld.so.conf").is_file():
        shutil.copy(Path("/etc/ld.so.conf"), etc / "ld.so.conf")
    else:
        (etc / "ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    for conf in sorted(Path("/etc/ld.so.conf.d").glob("*.conf")):
        if conf.is_file():
            shutil.copy(conf, etc / "ld.so.conf.d" / conf.name)
    (etc / "ld.so.conf.d/zz-test.conf").write_text(
        f"/opt/alias\n/opt/real/\n/usr/lib/{t}/extra   # comment\n")
    (root / "var/cache/ldconfig").mkdir(parents=True)
    libz = sorted(p for p in lib.glob("libz.so.*") if not p.is_symlink())
    if libz:
        for d in ("opt/real", f"usr/lib/{t}/glibc-hwcaps/x86-64-v3", "usr/local/lib"):
            (root / d).mkdir(parents=True, exist_ok=True)
            shutil.copy(libz[0], root / d / libz[0].name)
        (root / "usr/local/lib/libz.so").symlink_to(libz[0].name)
        (root / "usr/local/lib/libz-renamed.so.1").symlink_to(libz[0].name)
    (root / "opt/alias").symlink_to("real")
    (lib / "glibc-hwcaps/x86-64-v2").mkdir(parents=True)
    (lib / "libgone.so.3").symlink_to("libgone.so.3.0")
    extra = lib / "extra"
    extra.mkdir()
    em = EM[HOST_ARCH]
    (extra / "libown.so.2.0").write_bytes(make_elf(b"libown.so.2", machine=em,
                                                    cls=32 if HOST_ARCH in ("i386", "armhf") else 64,
                                                    needed=(b"libc.so.6",)))
    (extra / "lib32.so.1").write_bytes(make_elf(b"lib32.so.1", cls=32, machine=3))
    (extra / "libx32.so.1").write_bytes(make_elf(b"libx32.so.1", cls=32, machine=62))
    (extra / "libarm.so.1").write_bytes(make_elf(b"libarm.so.1", cls=32, machine=40,
                                                 e_flags=0x05000400))
    (extra / "libnotelf.so.1").write_bytes(b"INPUT ( libc.so.6 )\n")


def test_host_ldconfig_writes_the_same_bytes(tmp_path: Path) -> None:
    ldconfig = host_ldconfig()
    root = tmp_path / "root"
    host_tree(root)
    entries = read(root)
    generator = ldcache.generator_of(
        {"sbin/ldconfig": Entry("sbin/ldconfig", FILE, data=ldconfig.read_bytes())})
    assert generator is not None
    subprocess.run([str(ldconfig), "-r", str(root), "-X"], check=True, capture_output=True)
    expected = (root / "etc/ld.so.cache").read_bytes()
    assert HOST_ARCH is not None
    got = ldcache.build(entries, HOST_ARCH, generator)
    assert got is not None
    assert ldcache.parse(got) == ldcache.parse(expected)
    assert got == expected
    # Without the ldconfig binary the generator comes from libc.so.6's banner.
    assert ldcache.generator_of(entries) == generator


def test_host_ldconfig_makes_the_links_link_changes_names(tmp_path: Path) -> None:
    ldconfig = host_ldconfig()
    root = tmp_path / "root"
    host_tree(root)
    before = read(root)
    subprocess.run([str(ldconfig), "-r", str(root)], check=True, capture_output=True)
    after = read(root)
    changed: dict[str, str | None] = {}
    for path in sorted(set(before) | set(after)):
        if path.startswith(("etc/ld.so.cache", "var/cache/ldconfig")):
            continue
        b, a = before.get(path), after.get(path)
        if a is None:
            changed[path] = None
        elif b is None or (b.kind, b.target) != (a.kind, a.target):
            changed[path] = a.target
    assert HOST_ARCH is not None
    assert ldcache.link_changes(before, HOST_ARCH) == changed
    t = triplet(HOST_ARCH)
    assert changed[f"usr/lib/{t}/libgone.so.3"] is None
    assert changed[f"usr/lib/{t}/extra/libown.so.2"] == "libown.so.2.0"


# --- pure tests ----------------------------------------------------------------------

def test_libcmp_compares_digit_runs_as_numbers() -> None:
    cmp = ldcache.libcmp
    assert cmp(b"libfoo.so.10", b"libfoo.so.9") > 0
    assert cmp(b"libfoo.so.9", b"libfoo.so.10") < 0
    assert cmp(b"libfoo.so.01", b"libfoo.so.1") == 0
    assert cmp(b"libfoo.so.1", b"libfoo.so.1.0") < 0
    assert cmp(b"libfoo.so.1a", b"libfoo.so.1") > 0
    assert cmp(b"lib1", b"liba") > 0  # a digit ranks above any other byte
    assert cmp(b"liba", b"lib1") < 0
    assert cmp(b"libA.so", b"liba.so") < 0
    assert cmp(b"", b"") == 0
    # numbers overflow a 32-bit int as in C: 4294967297 wraps to 1
    assert cmp(b"libbig.so.4294967297", b"libbig.so.1") == 0
    # bytes >= 0x80 are negative chars on x86 only
    assert cmp(b"lib\xc3\xa9", b"libz", signed_char=True) < 0
    assert cmp(b"lib\xc3\xa9", b"libz", signed_char=False) > 0


def test_cache_order() -> None:
    arch = "amd64"
    lib = f"usr/lib/{triplet(arch)}"
    t = tree({
        f"{lib}/libc.so.6": own_elf(arch, b"libc.so.6"),
        f"{lib}/libz.so.1": own_elf(arch, b"libz.so.1"),
        f"{lib}/libz.so.10": own_elf(arch, b"libz.so.10"),
        f"{lib}/libz.so.9": own_elf(arch, b"libz.so.9"),
        f"{lib}/libaa.so.1": own_elf(arch, b"libaa.so.1"),
        f"{lib}/glibc-hwcaps/x86-64-v3/libaa.so.1": own_elf(arch, b"libaa.so.1"),
        f"{lib}/glibc-hwcaps/x86-64-v2/libaa.so.1": own_elf(arch, b"libaa.so.1"),
        "usr/local/lib/libaa.so.1": own_elf(arch, b"libaa.so.1"),
        "opt/i386/libaa.so.1": make_elf(b"libaa.so.1", cls=32, machine=3),
        "etc/ld.so.conf": b"/opt/i386\n/usr/local/lib\n",
    })
    got = [(e.key, e.path, e.flags, e.hwcaps) for e in ldcache.entries(t, arch, GEN_13)]
    assert got == [
        (b"libz.so.10", f"/{lib}/libz.so.10".encode(), 0x303, None),
        (b"libz.so.9", f"/{lib}/libz.so.9".encode(), 0x303, None),
        (b"libz.so.1", f"/{lib}/libz.so.1".encode(), 0x303, None),
        (b"libc.so.6", f"/{lib}/libc.so.6".encode(), 0x303, None),
        # one soname: higher flags first, then glibc-hwcaps by name, then directory order
        (b"libaa.so.1", f"/{lib}/glibc-hwcaps/x86-64-v2/libaa.so.1".encode(), 0x303,
         b"x86-64-v2"),
        (b"libaa.so.1", f"/{lib}/glibc-hwcaps/x86-64-v3/libaa.so.1".encode(), 0x303,
         b"x86-64-v3"),
        (b"libaa.so.1", b"/usr/local/lib/libaa.so.1", 0x303, None),
        (b"libaa.so.1", f"/{lib}/libaa.so.1".encode(), 0x303, None),
        (b"libaa.so.1", b"/opt/i386/libaa.so.1", 0x003, None),
    ]


def test_string_table_is_deduplicated_and_tail_merged() -> None:
    table, offsets = ldcache._string_table(
        [b"/a/libc.so.6", b"libc.so.6", b"/b/libc.so.6", b"libc.so.6", b"x"])
    assert table == b"x\0/b/libc.so.6\0/a/libc.so.6\0"
    assert offsets == {b"x": 0, b"/b/libc.so.6": 2, b"/a/libc.so.6": 15, b"libc.so.6": 18}


FLAG_CASES = [
    ("amd64", {"machine": 62}, 0x303),
    ("amd64", {"machine": 62, "cls": 32}, 0x803),          # x32
    ("amd64", {"machine": 3, "cls": 32}, 0x003),           # i386
    ("amd64", {"machine": 183}, None),                     # not an x86 object
    ("amd64", {"machine": 62, "big": True}, None),         # other byte order
    ("i386", {"machine": 3, "cls": 32}, 0x003),
    ("i386", {"machine": 62}, 0x303),
    ("i386", {"machine": 50}, None),                       # IA-64: gone in 2.41
    ("arm64", {"machine": 183}, 0xA03),
    ("arm64", {"machine": 62}, 0xA03),                     # ARM's reader ignores e_machine
    ("arm64", {"machine": 40, "cls": 32, "e_flags": 0x05000400}, 0x903),
    ("armhf", {"machine": 40, "cls": 32, "e_flags": 0x05000400}, 0x903),
    ("armhf", {"machine": 40, "cls": 32, "e_flags": 0x05000200}, 0xB03),
    ("armel", {"machine": 40, "cls": 32, "e_flags": 0x05000200}, 0xB03),
    ("armhf", {"machine": 40, "cls": 32, "e_flags": 0x05000000}, 0x003),
    ("armhf", {"machine": 40, "cls": 32, "e_flags": 0x04000000}, 0x003),
    ("ppc64el", {"machine": 21}, 0x503),
    ("ppc64el", {"machine": 20, "cls": 32}, 0x003),
    ("s390x", {"machine": 22, "big": True}, 0x403),
    ("s390x", {"machine": 22}, None),                      # little-endian
    ("riscv64", {"machine": 243, "e_flags": 0x5}, 0x1003),  # double-float, RVC
    ("riscv64", {"machine": 243, "e_flags": 0x1}, 0xF03),   # soft-float
    ("riscv64", {"machine": 243, "e_flags": 0x3}, None),    # single-float
    ("riscv64", {"machine": 243, "e_flags": 0x15}, None),   # TSO
]


@pytest.mark.parametrize(("arch", "kw", "flags"), FLAG_CASES)
def test_flags_per_architecture(arch: str, kw: dict[str, object], flags: int | None) -> None:
    lib = f"usr/lib/{triplet(arch)}"
    t = tree({f"{lib}/libx.so.1": make_elf(b"libx.so.1", **kw)})  # type: ignore[arg-type]
    got = [e.flags for e in ldcache.entries(t, arch, GEN_13)]
    assert got == ([] if flags is None else [flags])


def test_big_endian_cache() -> None:
    t = tree({"lib/s390x-linux-gnu/libx.so.1": own_elf("s390x", b"libx.so.1")})
    data = ldcache.build(t, "s390x", GEN_13)
    assert data is not None
    assert data[28] == 3  # cache_file_new_flags_endian_big
    assert struct.unpack_from(">I", data, 20)[0] == 1
    records, generator = ldcache.parse(data)
    assert generator == GEN_13
    assert records == [ldcache.CacheEntry(b"libx.so.1", b"/lib/s390x-linux-gnu/libx.so.1", 0x403)]


def test_glibc_hwcaps_subdirectories() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    t = tree({
        f"{lib}/libfoo.so.1.2": own_elf("amd64", b"libfoo.so.1"),
        f"{lib}/libfoo.so.1": Link("libfoo.so.1.2"),
        f"{lib}/glibc-hwcaps/x86-64-v4/libfoo.so.1.2": own_elf("amd64", b"libfoo.so.1",
                                                              isa_needed=8),
        f"{lib}/glibc-hwcaps/x86-64-v3/libfoo.so.1.2": own_elf("amd64", b"libfoo.so.1",
                                                              isa_needed=4 | 2 | 1),
        # a symlink in a glibc-hwcaps directory counts whatever its name, and like any
        # link not named after the soname it is a file: it ranks above libfoo.so.1.2
        f"{lib}/glibc-hwcaps/x86-64-v3/plainname": Link("libfoo.so.1.2"),
        f"{lib}/glibc-hwcaps/x86-64-v2": "",                 # empty: named, not used
        f"{lib}/glibc-hwcaps/.hidden/libfoo.so.1": own_elf("amd64", b"libfoo.so.1"),
        f"{lib}/glibc-hwcaps/a:b/libfoo.so.1": own_elf("amd64", b"libfoo.so.1"),
        f"{lib}/glibc-hwcaps/afile": b"",
    })
    data = ldcache.build(t, "amd64", GEN_13)
    assert data is not None
    records, _ = ldcache.parse(data)
    hw = [(r.path.rsplit(b"/", 2)[-2:], r.hwcaps, r.isa_level) for r in records]
    assert hw == [
        ([b"x86-64-v3", b"plainname"], b"x86-64-v3", 2),
        ([b"x86-64-v4", b"libfoo.so.1.2"], b"x86-64-v4", 3),
        ([b"x86_64-linux-gnu", b"libfoo.so.1"], None, 0),
    ]
    # the hwcap field: extension bit, ISA level, index into the sorted used names
    hwcaps = [struct.unpack_from("<Q", data, 48 + 24 * i + 16)[0] for i in range(3)]
    assert hwcaps == [1 << 62 | 2 << 32 | 0, 1 << 62 | 3 << 32 | 1, 0]
    # every subdirectory name met is in the string table, used or not
    assert b"\0x86-64-v2\0" in data
    assert b".hidden" not in data and b"a:b" not in data


def test_isa_level_is_only_recorded_on_x86() -> None:
    lib = "usr/lib/aarch64-linux-gnu"
    t = tree({f"{lib}/glibc-hwcaps/x86-64-v3/libfoo.so.1":
              own_elf("arm64", b"libfoo.so.1", isa_needed=4)})
    (record,) = ldcache.entries(t, "arm64", GEN_13)
    assert (record.hwcaps, record.isa_level) == (b"x86-64-v3", 0)


def test_symlinked_directories_are_recorded_as_listed() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    t = tree({
        "lib": Link("usr/lib"),
        "lib64": Link("/usr/lib64"),
        f"{lib}/libc.so.6": own_elf("amd64", b"libc.so.6"),
        "opt/real/libr.so.1": own_elf("amd64", b"libr.so.1"),
        "opt/alias": Link("../opt/./real/"),
        "etc/ld.so.conf": b"/opt/alias/\n/opt/real\n/usr/lib/x86_64-linux-gnu\n",
    })
    paths = [r.path for r in ldcache.entries(t, "amd64", GEN_13)]
    assert paths == [b"/opt/alias/libr.so.1", b"/usr/lib/x86_64-linux-gnu/libc.so.6"]
    del t["etc/ld.so.conf"]
    paths = [r.path for r in ldcache.entries(t, "amd64", GEN_13)]
    # the built-in directories: /lib/<triplet> comes first and is what is recorded
    assert paths == [b"/lib/x86_64-linux-gnu/libc.so.6"]


def test_one_soname_in_two_directories_is_recorded_twice_first_wins() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    t = tree({
        f"{lib}/libz.so.1": own_elf("amd64", b"libz.so.1"),
        "usr/local/lib/libz.so.1.3": own_elf("amd64", b"libz.so.1"),
        "usr/local/lib/libz.so.1.10": own_elf("amd64", b"libz.so.1"),  # the newest wins
        "usr/local/lib/libz.so.1": Link("libz.so.1.3"),  # a link loses to a file
        "etc/ld.so.conf": b"/usr/local/lib\n",
    })
    records = ldcache.entries(t, "amd64", GEN_13)
    assert [r.path for r in records] == [b"/usr/local/lib/libz.so.1", f"/{lib}/libz.so.1".encode()]
    assert ldcache.link_changes(t, "amd64", GEN_13) == {"usr/local/lib/libz.so.1": "libz.so.1.10"}


def test_link_naming_and_skipped_files() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    t = tree({
        f"{lib}/libfoo.so.1.2": own_elf("amd64", b"libfoo.so.1"),
        f"{lib}/libfoo.so.1": Link("libfoo.so.1.2"),
        f"{lib}/libfoo.so": Link("libfoo.so.1"),             # the dev link: its own key
        f"{lib}/libbar.so.5": Link("libfoo.so.1.2"),         # neither: like a file
        f"{lib}/libdangling.so.1": Link("nowhere.so.1"),
        f"{lib}/libdir.so.1": Link("/usr"),
        f"{lib}/libscript.so": b"GROUP ( libfoo.so.1 )\n",
        f"{lib}/libexec.so.2": own_elf("amd64", b"libexec.so.2", e_type=2),
        f"{lib}/libnodyn.so.2": own_elf("amd64", b"libnodyn.so.2", dynamic=False),
        f"{lib}/libtiny.so.2": b"\x7fELF",
        f"{lib}/libnew.so.3.dpkg-new": own_elf("amd64", b"libnew.so.3"),
        f"{lib}/librpm.so.3;5f00": own_elf("amd64", b"librpm.so.3"),
        f"{lib}/libpre.so.3.#prelink#.x1y2z3": own_elf("amd64", b"libpre.so.3"),
        f"{lib}/notlib.so.3": own_elf("amd64", b"notlib.so.3"),
        f"{lib}/ld64.so.3": own_elf("amd64", None),
        f"{lib}/libsub.so.3/x": b"",
    })
    keys = [(r.key, r.path.rsplit(b"/", 1)[1]) for r in ldcache.entries(t, "amd64", GEN_13)]
    assert keys == [(b"libfoo.so.1", b"libfoo.so.1"), (b"libfoo.so", b"libfoo.so"),
                    (b"ld64.so.3", b"ld64.so.3")]
    # glibc 2.36 does not skip dpkg's and RPM's temporary files
    keys12 = [r.key for r in ldcache.entries(t, "amd64", GEN_12)]
    assert keys12 == [b"librpm.so.3", b"libnew.so.3", b"libfoo.so.1", b"libfoo.so", b"ld64.so.3"]
    # libbar.so.5 counts as a file with soname libfoo.so.1, but libfoo.so.1.2 ranks
    # above it, and libfoo.so.1 already points there; the dangling link goes
    assert ldcache.link_changes(t, "amd64", GEN_13) == {f"{lib}/libdangling.so.1": None}


def test_configuration() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    conf = (b"# comment\n  /opt/a   # trailing comment\ninclude conf.d/*.conf /etc/x[0-9].conf\n"
            b"hwcap 1 nosegneg\n/opt/typed=libc6\n/\n/opt/missing\n")
    t = tree({
        "etc/ld.so.conf": conf,
        "etc/conf.d/b.conf": b"/opt/b\r\n",   # trailing white space goes, \r too
        "etc/conf.d/a.conf": b"/opt/a2//\n",
        "etc/conf.d/.hidden.conf": b"/opt/hidden\n",
        "etc/conf.d/c.conf.bak": b"/opt/bak\n",
        "etc/x1.conf": b"include /etc/conf.d/a.conf\n",
        **{f"opt/{d}/lib{d}.so.1": own_elf("amd64", f"lib{d}.so.1".encode())
           for d in ("a", "a2", "b", "hidden", "bak", "typed")},
        "opt/b\r/libcr.so.1": own_elf("amd64", b"libcr.so.1"),
        f"{lib}/libc.so.6": own_elf("amd64", b"libc.so.6"),
    })
    paths = [r.path for r in ldcache.entries(t, "amd64", GEN_13)]
    assert paths == [f"/{lib}/libc.so.6".encode(), b"/opt/b/libb.so.1", b"/opt/a2/liba2.so.1",
                     b"/opt/a/liba.so.1"]
    # glibc 2.36 still reads "dir=libc6"
    paths = [r.path for r in ldcache.entries(t, "amd64", GEN_12)]
    assert paths[0] == b"/opt/typed/libtyped.so.1"


def test_include_cycle_is_refused() -> None:
    t = tree({"etc/ld.so.conf": b"include /etc/ld.so.conf\n"})
    with pytest.raises(ComposeError, match="nest too deeply"):
        ldcache.build(t, "amd64", GEN_13)


def test_tree_without_glibc() -> None:
    t = tree({"usr/lib/x86_64-linux-gnu/libz.so.1": own_elf("amd64", b"libz.so.1"),
              "etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n"})
    assert ldcache.generator_of(t) is None
    assert ldcache.build(t, "amd64") is None
    assert ldcache.entries(t, "amd64") == []
    assert ldcache.build(tree({"etc/hostname": b"x\n"}), "amd64", GEN_13) is None


def test_generator_from_ldconfig_or_libc_banner() -> None:
    banner = b"\0GNU C Library (Debian GLIBC 2.41-12+deb13u4) stable release version 2.41.\n"
    libc = own_elf("amd64", b"libc.so.6", extra=banner)
    t = tree({"usr/lib/x86_64-linux-gnu/libc.so.6": libc, "lib": Link("usr/lib")})
    assert ldcache.generator_of(t) == GEN_13
    t |= tree({"usr/sbin/ldconfig": b"\0" + GEN_12.encode() + b"\0", "sbin": Link("usr/sbin")})
    assert ldcache.generator_of(t) == GEN_12
    data = ldcache.build(t, "amd64")
    assert data is not None and data.endswith(GEN_12.encode())


def test_unknown_architecture_and_old_glibc() -> None:
    with pytest.raises(ComposeError, match="not supported"):
        ldcache.build(tree({}), "m68k", GEN_13)
    with pytest.raises(ComposeError, match=r"older than glibc 2\.36"):
        ldcache.build(tree({}), "amd64", "ldconfig (Debian GLIBC 2.31-13) stable release "
                                         "version 2.31")


def test_hardlinks_are_one_file() -> None:
    lib = "usr/lib/x86_64-linux-gnu"
    t = tree({
        "opt/a/libz.so.1.3": own_elf("amd64", b"libz.so.1"),
        "opt/b": Link("a"),
        f"{lib}/libz.so.1": "=opt/a/libz.so.1.3",
        "etc/ld.so.conf": b"/opt/b\n/opt/a\n",
    })
    paths = [r.path for r in ldcache.entries(t, "amd64", GEN_13)]
    assert paths == [b"/opt/b/libz.so.1", f"/{lib}/libz.so.1".encode()]
