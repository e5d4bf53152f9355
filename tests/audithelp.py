"""A small signed archive whose packages carry what a licence audit reads: DEP-5 and
prose copyright files, and real ELF objects copied from the host, so that linkage is
that of real programs. ``DT_NEEDED`` is read here with ``struct`` only, never with
``composer``, so that tests can predict the audit's links on their own.

The world (suite trixie, amd64):

========== =================================== =========================================
package    ships                               copyright
========== =================================== =========================================
libc6      the host's libc.so.6 and ld.so      LGPL-2.1+ (``*``), GPL-2 (``src/*.c``)
libz-fake  the host's libz.so.1.x, soname link GPL-3+ (``*``)
zfix       a host program needing libz.so.1    Expat (``*``), ISC (``tables/*``),
                                               GPL-2+ (``doc/*``: documentation only)
dual       a host program needing a library    ``BSD-3-clause or GPL-2``
           no package has
prose-data a data file                         prose: LGPL 2.1 or any later version
nocopy     a data file                         none
========== =================================== =========================================

and two more packages of libz-fake's source whose ``usr/share/doc/NAME`` is a symlink
(Policy 12.5): ``libz-fake-dev`` to ``libz-fake``, ``zlib-orphan`` to ``libz-fake-dev``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.buildhelp import KEYRING, RELEASE_DATE
from tests.fakearchive import FakeArchive

TRIPLET = "x86_64-linux-gnu"
LIBDIR = f"usr/lib/{TRIPLET}"
LD_SO = "ld-linux-x86-64.so.2"
HOST_LIBDIRS = (f"/usr/lib/{TRIPLET}", f"/lib/{TRIPLET}", "/usr/lib64", "/lib64")
HOST_BINDIRS = ("/usr/bin", "/usr/sbin", f"/usr/lib/{TRIPLET}")
SHIPPED_SONAMES = frozenset({"libc.so.6", LD_SO, "libz.so.1"})

VERSIONS = {
    "libc6": "2.36-9+deb12u9",
    "libz-fake": "1:1.2.13.dfsg-1",
    "zfix": "1.0-1",
    "dual": "2.0-1",
    "prose-data": "3.0-1",
    "nocopy": "0.1-1",
}

LIBC_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GNU C Library

Files: *
Copyright: 1991-2024 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: src/*.c
Copyright: 1991-2024 Free Software Foundation, Inc.
License: GPL-2
"""

LIBZ_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib-fake

Files: *
Copyright: 2024 Nobody
License: GPL-3+
"""

ZFIX_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zfix

Files: *
Copyright: 2024 Nobody
License: Expat

Files: tables/*
Copyright: 2024 Nobody
License: ISC

Files: doc/*
Copyright: 2024 Nobody
License: GPL-2+
"""

DUAL_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dual

Files: *
Copyright: 2024 Nobody
License: BSD-3-clause or GPL-2
"""

PROSE_COPYRIGHT = """\
This is prose-data, packaged for Debian.

Copyright (C) 2001-2024 The Prose Authors

This library is free software; you can redistribute it and/or modify it under the
terms of the GNU Lesser General Public License as published by the Free Software
Foundation; either version 2.1 of the License, or (at your option) any later version.

On Debian systems, the complete text of the GNU Lesser General Public License
version 2.1 can be found in `/usr/share/common-licenses/LGPL-2.1'.
"""


# -- reading ELF objects without composer -----------------------------------------------


def needed(path: Path | str) -> list[str] | None:
    """The DT_NEEDED names of a little-endian ELF64 file for x86-64, in order; None for
    anything else (not ELF, another class or machine, no dynamic section)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            (machine,) = struct.unpack_from("<H", head, 18)
            if machine != 62:
                return None
            shoff, = struct.unpack_from("<Q", head, 40)
            shentsize, shnum = struct.unpack_from("<HH", head, 58)
            if not shoff or shentsize != 64 or not shnum:
                return None
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [struct.unpack_from("<IIQQQQIIQQ", table, i * 64) for i in range(shnum)]
            for _, kind, _, _, offset, size, link, _, _, entsize in sections:
                if kind != 6 or entsize != 16:  # SHT_DYNAMIC
                    continue
                f.seek(offset)
                dynamic = f.read(size)
                strtab = sections[link]
                f.seek(strtab[4])
                strings = f.read(strtab[5])
                out = []
                for k in range(0, len(dynamic) - 15, 16):
                    tag, value = struct.unpack_from("<qQ", dynamic, k)
                    if tag == 0:
                        break
                    if tag == 1:
                        end = strings.index(b"\0", value)
                        out.append(strings[value:end].decode())
                return out
    except (OSError, struct.error, ValueError, IndexError):
        return None
    return None


def _host_file(soname: str) -> Path | None:
    for d in HOST_LIBDIRS:
        p = Path(d) / soname
        if p.exists():
            return p.resolve()
    return None


def _candidates(dirs: Iterable[str]) -> Iterator[tuple[int, str, list[str]]]:
    """(size, path, DT_NEEDED) of every regular ELF file under 400 KB in ``dirs``."""
    seen: set[str] = set()
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            real = os.path.realpath(path)
            size = os.path.getsize(real)
            if real in seen or size > 400_000:
                continue
            seen.add(real)
            got = needed(real)
            if got:
                yield size, real, got


@dataclass(frozen=True)
class HostObjects:
    """Real files of this host: glibc's two objects, libz, a program that needs libz
    (and libc) only, and one that also needs a library no fake package ships."""

    libc: Path
    ld_so: Path
    libz: Path
    zlib_user: Path
    lacking: Path
    missing_soname: str

    def needed(self) -> dict[str, list[str]]:
        """DT_NEEDED of each object, by its tree path in the fake world."""
        return {tree: needed(host) or [] for tree, host in self.tree_paths().items()}

    def tree_paths(self) -> dict[str, Path]:
        return {
            f"{LIBDIR}/libc.so.6": self.libc,
            f"{LIBDIR}/{LD_SO}": self.ld_so,
            f"{LIBDIR}/{self.libz_name}": self.libz,
            "usr/bin/zfix": self.zlib_user,
            "usr/bin/dual-tool": self.lacking,
        }

    @property
    def libz_name(self) -> str:
        return self.libz.name if self.libz.name != "libz.so.1" else "libz.so.1.2.13"


def host_objects() -> HostObjects | None:
    """What the world needs from this host, or None when it has not got it (a host that
    is not x86-64 Linux with glibc and zlib)."""
    libc, ld_so, libz = _host_file("libc.so.6"), _host_file(LD_SO), _host_file("libz.so.1")
    if libc is None or ld_so is None or libz is None:
        return None
    if needed(libc) is None or needed(ld_so) is None or needed(libz) != ["libc.so.6"]:
        return None
    zlib_user = lacking = None
    missing = ""
    for dirs in (HOST_BINDIRS[:2], HOST_BINDIRS[2:]):  # programs first, then libraries
        for _, path, names in sorted(_candidates(dirs)):
            if zlib_user is None and set(names) in ({"libz.so.1"}, {"libz.so.1", "libc.so.6"}):
                zlib_user = Path(path)
            other = [n for n in names if n not in SHIPPED_SONAMES]
            if (lacking is None and len(other) == 1 and "libc.so.6" in names
                    and not other[0].startswith("ld-")):
                lacking, missing = Path(path), other[0]
            if zlib_user and lacking:
                return HostObjects(libc, ld_so, libz, zlib_user, lacking, missing)
    return None


# -- the archive and profiles ------------------------------------------------------------


def make_world(root: Path, host: HostObjects) -> FakeArchive:
    d = FakeArchive(root, "debian")
    doc = "usr/share/doc"
    d.add("trixie", "libc6", VERSIONS["libc6"], source="glibc", multi_arch="same",
          files={f"{LIBDIR}/libc.so.6": host.libc.read_bytes(),
                 f"{LIBDIR}/{LD_SO}": host.ld_so.read_bytes(),
                 f"{doc}/libc6/copyright": LIBC_COPYRIGHT},
          symlinks={f"usr/lib64/{LD_SO}": f"../lib/{TRIPLET}/{LD_SO}"},
          modes={f"{LIBDIR}/{LD_SO}": 0o755})
    d.add("trixie", "libz-fake", VERSIONS["libz-fake"], source="zlib-fake",
          depends="libc6 (>= 2.36)",
          files={f"{LIBDIR}/{host.libz_name}": host.libz.read_bytes(),
                 f"{doc}/libz-fake/copyright": LIBZ_COPYRIGHT},
          symlinks={f"{LIBDIR}/libz.so.1": host.libz_name})
    d.add("trixie", "zfix", VERSIONS["zfix"], depends="libz-fake, libc6",
          files={"usr/bin/zfix": host.zlib_user.read_bytes(),
                 "usr/share/zfix/tables/crc.txt": "crc table\n",
                 f"{doc}/zfix/manual.html": "<p>the manual, stripped</p>\n",
                 f"{doc}/zfix/copyright": ZFIX_COPYRIGHT},
          modes={"usr/bin/zfix": 0o755})
    d.add("trixie", "dual", VERSIONS["dual"], depends="libz-fake",
          files={"usr/bin/dual-tool": host.lacking.read_bytes(),
                 f"{doc}/dual/copyright": DUAL_COPYRIGHT},
          modes={"usr/bin/dual-tool": 0o755})
    d.add("trixie", "prose-data", VERSIONS["prose-data"],
          files={"usr/share/prose/words.txt": "alpha\nbeta\n",
                 f"{doc}/prose-data/copyright": PROSE_COPYRIGHT})
    d.add("trixie", "nocopy", VERSIONS["nocopy"],
          files={"usr/share/nocopy/readme.txt": "no licence here\n"})
    zlib = f"zlib-fake ({VERSIONS['libz-fake']})"
    d.add("trixie", "libz-fake-dev", VERSIONS["libz-fake"], source=zlib, depends="libz-fake",
          files={"usr/include/zlib.h": "/* zlib */\n"},
          symlinks={f"{doc}/libz-fake-dev": "libz-fake"})
    d.add("trixie", "zlib-orphan", VERSIONS["libz-fake"], source=zlib,
          files={"usr/share/zlib/orphan.txt": "orphan\n"},
          symlinks={f"{doc}/zlib-orphan": "libz-fake-dev"})
    d.publish("trixie", date=RELEASE_DATE, architectures=("amd64",))
    return d


ALL = ["zfix", "dual", "prose-data", "nocopy"]
"""What the main profile includes (libz-fake and libc6 come in as dependencies)."""


def profile(name: str, include: list[str], policy: str = "") -> str:
    """A profile of the world; ``policy`` is the body of a ``[policy]`` table."""
    text = f"""\
name = "{name}"
architectures = ["amd64"]

[[source]]
archive = "debian"
suite = "trixie"
keyring = "{KEYRING}"

[packages]
include = {json.dumps(include)}

[python]
compile = false
"""
    return text + (f"\n[policy]\n{policy}" if policy else "")
