"""How compose builds CPython from source: the build root's packages, configure's
arguments, the script run in the sealed build root, and the key its result is cached
under. Pure: values in, values out.

The source is upstream's release tarball exactly as Debian's source package carries it
(``pythonX.Y_VERSION.orig.tar.xz``, hashed in the signed Sources index); none of
Debian's patches is applied. What the build links comes from the suite's own -dev
packages, so the interpreter uses Debian's OpenSSL, SQLite, zlib, expat and mpdecimal.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from composer.model import PythonBuild

RECIPE = 1
"""The version of this recipe: bumped whenever the build's steps or flags change, so that
no cached result of an older recipe is taken for a newer one."""

PATCHES = "none"
"""What the lock records of Debian's patches: the upstream source is built as released."""

TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
"""The architectures compose builds CPython for (``model.SOURCE_BUILD_ARCHES``), with
their GNU triplets."""

TOOLS = ("dash", "coreutils", "sed", "grep", "mawk", "diffutils", "findutils", "make",
         "binutils", "gcc", "libc6-dev", "pkgconf")
"""What configure, make and the compiler need: a shell and POSIX tools, make, the
compiler, the C library's headers, and pkg-config (how configure finds most libraries)."""

LIBRARIES = ("libssl-dev", "zlib1g-dev", "libffi-dev", "libsqlite3-dev", "libbz2-dev",
             "liblzma-dev", "libexpat1-dev", "uuid-dev", "libncurses-dev", "libmpdec-dev")
"""The -dev packages of the libraries the standard library's extension modules link."""

ZSTD = "libzstd-dev"
"""For ``compression.zstd``, new in 3.14."""

LINE_EDITING = ("libreadline-dev", "libgdbm-dev", "libgdbm-compat-dev")
"""GNU readline (``readline``) and gdbm (``dbm.gnu``, ``dbm.ndbm``): GPL-3, left out with
``readline = false``."""

NATIVE_ONLY = ("gcc", "binutils", "libc6-dev")
"""What of ``TOOLS`` a cross build takes for the architecture built (the C library's
headers) or replaces by the cross toolchain (the compiler and binutils)."""

BUILD_PYTHON = "/build/native"
"""Where a cross build finds the build machine's own CPython of the same version (its
``usr/bin/pythonX.Y``), which CPython's cross build runs (``--with-build-python``)."""

SOURCE_DIR = "/build/src"
DESTDIR = "/build/out"
HOME = "/build"
BUILD_USER = ("build", 1000, 1000)
"""The fixed user the build runs as: name, uid, gid."""

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


def supported(arch: str) -> bool:
    return arch in TRIPLETS


def minor(version: str) -> tuple[int, int]:
    major, _, rest = version.partition(".")
    return int(major), int(rest.split(".")[0])


def libraries(version: str, build: PythonBuild) -> tuple[str, ...]:
    """The -dev packages of what the build links, for the architecture built."""
    roots = list(LIBRARIES)
    if minor(version) >= (3, 14):
        roots.append(ZSTD)
    if build.readline:
        roots += LINE_EDITING
    return tuple(roots)


def build_roots(version: str, build: PythonBuild) -> tuple[str, ...]:
    """The packages a native build root is resolved from (for the architecture built)."""
    return (*TOOLS, *libraries(version, build))


def cross_tools(arch: str) -> tuple[str, ...]:
    """Debian's cross toolchain for ``arch``, as the build machine's packages (named by
    the GNU triplet, ``_`` spelt ``-``)."""
    triplet = TRIPLETS[arch].replace("_", "-")
    return (f"gcc-{triplet}", f"binutils-{triplet}")


def compiler(arch: str, build_arch: str) -> str:
    """The command configure finds the C compiler by."""
    return "cc" if arch == build_arch else f"{TRIPLETS[arch]}-gcc"


def cross_roots(version: str, build: PythonBuild, arch: str
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A cross build root's packages: (those of the build machine's architecture: the
    tools and the cross toolchain; those of ``arch``: the C library's headers and the
    -dev packages of what the build links)."""
    tools = tuple(t for t in TOOLS if t not in NATIVE_ONLY) + cross_tools(arch)
    return tools, ("libc6-dev", *libraries(version, build))


def xy(version: str) -> str:
    return ".".join(str(n) for n in minor(version))


def configure_args(version: str, build: PythonBuild, arch: str, build_arch: str) -> list[str]:
    """configure's arguments; ``build_arch``, when not ``arch``, is the machine that
    cross-compiles."""
    args = [
        f"--build={TRIPLETS[build_arch]}", f"--host={TRIPLETS[arch]}", "--prefix=/usr",
        "--with-ensurepip=no",          # no pip wheels: an image installs what it needs
        "--disable-test-modules",       # the test suite is not shipped
        "--with-system-expat",          # Debian's expat, which the audit sees
        "--with-system-libmpdec",       # Debian's mpdecimal, as upstream recommends
        "--without-static-libpython",   # no libpython3.X.a: nothing links against it here
    ]
    args.append("--with-readline=readline" if build.readline else "--without-readline")
    args.append("--with-dbmliborder=gdbm:ndbm" if build.readline else "--with-dbmliborder=")
    if build.pgo:
        args.append("--enable-optimizations")
    if build.lto:
        args.append("--with-lto")
    if build_arch != arch:
        args.append(f"--with-build-python={BUILD_PYTHON}/usr/bin/python{xy(version)}")
    return args


def environment(epoch: int, arch: str, build_arch: str) -> dict[str, str]:
    """The whole environment of the build: nothing of the host's. A cross build's
    pkg-config reads only the .pc files of the architecture built."""
    name, _, _ = BUILD_USER
    env = {
        "PATH": "/usr/bin:/bin", "HOME": HOME, "USER": name, "LOGNAME": name,
        "SHELL": "/bin/sh", "TZ": "UTC", "LC_ALL": "C", "LANG": "C",
        "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0",
        "TMPDIR": "/tmp", "TERM": "dumb", "CONFIG_SITE": f"{HOME}/config.site",
    }
    if arch != build_arch:
        env |= {"PKG_CONFIG": "pkg-config",
                "PKG_CONFIG_LIBDIR": f"/usr/lib/{TRIPLETS[arch]}/pkgconfig:/usr/share/pkgconfig"}
    return env


CROSS_SITE = {
    # configure cannot run a program of the architecture built, so these are answered
    # as the architecture's ABI says (its default would be a guess).
    "arm64": "ac_cv_wchar_t_signed=no\n",
    "amd64": "ac_cv_wchar_t_signed=yes\n",
}


def config_site(arch: str, build_arch: str) -> str:
    """The config.site of a build: ``CONFIG_SITE``, and for a cross build what configure
    would otherwise guess."""
    return CONFIG_SITE if arch == build_arch else CONFIG_SITE + CROSS_SITE[arch]


def script(version: str, build: PythonBuild, arch: str, jobs: int, build_arch: str) -> str:
    """The shell script run in the build root, from the unpacked source, as the build
    user: configure, make, make install into ``DESTDIR``; then what does not belong in a
    runtime image's interpreter is left for the image to strip."""
    v = xy(version)
    configure = " ".join(shlex.quote(a) for a in configure_args(version, build, arch,
                                                                  build_arch))
    strip = "strip" if arch == build_arch else f"{TRIPLETS[arch]}-strip"
    return f"""\
set -eu
cd {SOURCE_DIR}
echo "compose: configure"
./configure {configure}
echo "compose: make"
make -j{max(1, jobs)}
echo "compose: make install"
make install DESTDIR={DESTDIR}
# The image byte-compiles with its own interpreter (or not at all, as the profile
# says): the byte-code make install wrote is not kept.
find {DESTDIR} -name __pycache__ -type d -prune -exec rm -rf {{}} +
# As Debian's dh_strip does: no debugging information in what ships.
{strip} --remove-section=.comment --remove-section=.note --strip-unneeded \\
    {DESTDIR}/usr/bin/python{v} {DESTDIR}/usr/lib/python{v}/lib-dynload/*.so
echo "compose: done"
"""


RUNTIME_STRIP = ("usr/include/**", "usr/lib/pkgconfig/**", "usr/bin/python3*-config",
                 "usr/bin/idle3*",
                 "usr/lib/python3.*/config-3.*/**", "usr/share/man/**")
"""What of the install is for building against CPython, not for running it: left out
of images (Debian ships it in pythonX.Y-dev)."""


@dataclass(frozen=True)
class Pinned:
    """A build root's package as the key hashes it."""

    name: str
    version: str
    architecture: str
    sha256: str


def cache_key(source_sha256: str, version: str, build: PythonBuild, arch: str,
              build_root: Iterable[Pinned], build_arch: str, build_python: str | None = None
              ) -> str:
    """The inputs of a build, hashed: the source (which gives the epoch, too), the build
    root's exact packages, the options that reach configure, the architecture, and this
    recipe: its number, its script and config.site. What compose does around them (the
    build root's setup, the sandbox, how the result is read) is covered by RECIPE, which
    a change to any of them bumps. (The number of make jobs is not an input.) A cross
    build adds the machine that builds and the tree digest of the build machine's own
    CPython, which it runs."""
    inputs: dict[str, object] = {
        "recipe": RECIPE, "source": source_sha256, "version": version,
        "options": [build.readline, build.pgo, build.lto], "arch": arch,
        "root": sorted([p.name, p.version, p.architecture, p.sha256] for p in build_root),
        "script": script(version, build, arch, 0, build_arch),
        "config.site": config_site(arch, build_arch),
        "environment": environment(0, arch, build_arch),
    }
    if arch != build_arch:
        inputs |= {"build-arch": build_arch, "build-python": build_python}
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
