"""A build root from .debs: the packages unpacked with dpkg's rules, and what their
maintainer scripts would have set up done natively instead (no script runs).

What a toolchain needs of those scripts is small and known: the alternatives that name
the compiler and awk (``cc``, ``c89``, ``c99``, ``c++``, ``awk``), ``/bin/sh``, the
dynamic linker's cache, accounts for the build user and a writable ``/tmp``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from composer.debian.deb import Deb
from composer.errors import ComposeError
from composer.image import assemble, ldcache
from composer.image.tree import DIR, FILE, SYMLINK, Entry

ALTERNATIVES = (
    ("usr/bin/cc", ("gcc", "clang")),
    ("usr/bin/c89", ("c89-gcc",)),
    ("usr/bin/c99", ("c99-gcc",)),
    ("usr/bin/c++", ("g++", "clang++")),
    ("usr/bin/awk", ("mawk", "gawk", "original-awk")),
    ("usr/bin/nawk", ("mawk", "gawk", "original-awk")),
    ("usr/bin/sh", ("dash", "bash")),
)
"""(link, candidates in order): set up as ``update-alternatives`` would have (Debian's
priorities put the first candidate present first), unless a package ships the link."""

NEEDED = ("usr/bin/sh", "usr/bin/{compiler}", "usr/bin/make", "usr/bin/awk")
"""What a build root cannot do without."""


def assemble_root(debs: Iterable[tuple[str, Deb]], arch: str, user: tuple[str, int, int],
                  skip: tuple[str, ...] = (), compiler: str = "cc") -> assemble.Tree:
    """The build root's tree: the packages (less the paths below the ``skip`` prefixes),
    then the native setup. ``arch`` is the machine's that runs the build root's tools;
    a cross build root holds another architecture's libraries too. (Times are not kept:
    a build root is written to disk as files, never as an archive.)

    Documentation is what ``skip`` is for: the two instances of a Multi-Arch: same
    package may differ there (a binNMU's changelog), and a build never reads it."""
    tree = assemble.merged_usr(arch, 0)
    if skip:
        debs = [(name, dataclasses.replace(deb, members=tuple(
            m for m in deb.members if not m.path.startswith(skip)))) for name, deb in debs]
    assemble.merge(tree, debs)
    setup(tree, arch, user, compiler)
    return tree


def setup(tree: assemble.Tree, arch: str, user: tuple[str, int, int], compiler: str = "cc"
          ) -> None:
    """What the maintainer scripts would have done, for a toolchain. ``compiler``: the
    command the build compiles with (a cross compiler is named by its triplet)."""
    for link, candidates in ALTERNATIVES:
        if tree.lookup(link) is not None:
            continue
        for name in candidates:
            if tree.lookup(f"usr/bin/{name}") is not None:
                tree.put(Entry(link, SYMLINK, 0o777, target=name))
                break
    missing = [p for p in (n.format(compiler=compiler) for n in NEEDED) if tree.lookup(p) is None]
    if missing:
        raise ComposeError(f"[{arch}] the build root has no {', '.join('/' + m for m in missing)}",
                           "the lock's build packages are incomplete: run `compose lock` again")
    name, uid, gid = user
    accounts = {
        "etc/passwd": f"root:x:0:0:root:/root:/bin/sh\n{name}:x:{uid}:{gid}::/build:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "etc/group": f"root:x:0:\n{name}:x:{gid}:\nnogroup:x:65534:\n",
    }
    for path, text in accounts.items():
        tree.put(Entry(path, FILE, 0o644, data=text.encode()))
    for d, mode in (("tmp", 0o1777), ("build", 0o755), ("root", 0o700)):
        tree.put(Entry(d, DIR, mode))
    cache = ldcache.build(tree.entries, arch)
    if cache is not None:
        tree.put(Entry("etc/ld.so.cache", FILE, 0o644, data=cache))
