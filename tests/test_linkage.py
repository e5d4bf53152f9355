"""Linkage: DT_NEEDED resolved in the image's tree as glibc's ld.so does.

Two kinds of checks: a tree copied from the host's own programs and the libraries ldd
says they load, whose resolution must equal ldd's (names, real files, and for
``Linker.load`` the order); and trees of objects built byte by byte for each rule
(RPATH/RUNPATH precedence and inheritance, the cache, $ORIGIN and the other tokens,
class and machine mismatches, fatal candidates, symlink chains and loops)."""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from composer.audit import linkage
from composer.audit.linkage import Linker, closure, dependants, resolve
from composer.audit.report import Link
from composer.elf import DF_1_NODEFLIB, DF_1_PIE, ET_EXEC
from tests.test_elf import make_elf

DEFAULT = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")
LIBDIR = "usr/lib/x86_64-linux-gnu"
MERGED = {"lib": "usr/lib", "lib64": "usr/lib64", "bin": "usr/bin", "sbin": "usr/sbin"}
INTERP = "/lib64/ld-linux-x86-64.so.2"


# --- the host's own programs against ldd ---------------------------------------------------

def host_tree(paths: list[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """The host files at ``paths`` as a tree: every symlink met on the way (directories
    and files) kept as a symlink with its target as stored, every real file read."""
    files: dict[str, bytes] = {}
    symlinks: dict[str, str] = {}

    def walk_dir(path: str) -> str:
        """Record the symlinks among ``path``'s components; return its real path."""
        at = "/"
        for part in path.strip("/").split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                at = os.path.dirname(at)
                continue
            step = os.path.join(at, part)
            if os.path.islink(step):
                target = os.readlink(step)
                symlinks[step[1:]] = target
                at = walk_dir(os.path.join(at, target))
            else:
                at = step
        return at

    def add(path: str, depth: int = 0) -> None:
        assert depth < 40, path
        parent = walk_dir(os.path.dirname(path))
        leaf = os.path.join(parent, os.path.basename(path))
        if os.path.islink(leaf):
            target = os.readlink(leaf)
            symlinks[leaf[1:]] = target
            add(os.path.join(parent, target), depth + 1)
        else:
            files[leaf[1:]] = Path(leaf).read_bytes()

    for p in paths:
        add(p)
    return files, symlinks


def ldd(path: str) -> list[tuple[str, str | None]]:
    """(name, host path) per line of ldd, in its order; the interpreter's name is its
    path; the vDSO is left out."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    rows: list[tuple[str, str | None]] = []
    for line in out.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"(\S+) => (not found|\S+)(?: \(0x[0-9a-f]+\))?", line):
            rows.append((m.group(1), None if m.group(2) == "not found" else m.group(2)))
        elif (m := re.fullmatch(r"(\S+) \(0x[0-9a-f]+\)", line)) and "vdso" not in line:
            rows.append((m.group(1), m.group(1)))
    return rows


def host_cache() -> list[tuple[str, str]]:
    """The host's own ld.so.cache (``ldconfig -p``), x86-64 entries in cache order."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    return [(m.group(1), m.group(3)) for line in out.splitlines()[1:]
            if (m := re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)$", line)) and "x86-64" in m.group(2)]


HOST_PROGRAMS = ["/bin/ls", "/usr/bin/python3", "/usr/bin/ssh", "/usr/bin/curl", "/usr/bin/gpg",
                 "/usr/lib/x86_64-linux-gnu/libcurl.so.4"]
HOST_GLOBS = ["/usr/lib/jvm/*/bin/java", "/usr/lib/jvm/*/lib/libnet.so"]
"""Objects with $ORIGIN rpaths (and, for libnet, a library ldd does not find), if any."""
HOST_MODULES = ["_ssl", "_hashlib", "_sqlite3", "_ctypes", "_lzma", "_bz2", "_dbm", "_gdbm",
                "readline", "_curses", "_uuid", "_decimal", "pyexpat"]


@pytest.fixture(scope="module")
def host() -> tuple[Linker, list[Link], dict[str, list[tuple[str, str | None]]]]:
    """A tree of host programs and their libraries, its Linker with the host's cache (as
    far as the tree has the files), and ldd's answer per program (by tree path)."""
    if platform.machine() != "x86_64" or not os.path.isdir("/lib/x86_64-linux-gnu"):
        pytest.skip("needs an x86-64 Debian-style multiarch host")
    if not (shutil.which("ldd") and shutil.which("ldconfig")):
        pytest.skip("needs ldd and ldconfig")
    programs = [p for p in HOST_PROGRAMS if os.path.exists(p)]
    programs += [found[0] for pattern in HOST_GLOBS if (found := sorted(glob.glob(pattern)))]
    for d in sorted(Path("/usr/lib").glob("python3*/lib-dynload")):
        programs += [str(m) for name in HOST_MODULES for m in d.glob(f"{name}.cpython-*.so")]
    answers = {os.path.realpath(p)[1:]: ldd(p) for p in programs}
    wanted = [*programs, *(path for rows in answers.values() for _, path in rows if path)]
    files, symlinks = host_tree(wanted)
    linker = Linker(files, symlinks, {k: "pkg" for k in files}, [], DEFAULT)
    cache = [(name, path) for name, path in host_cache()
             if linker.tree.lookup(path).kind == "file"]
    linker = Linker(files, symlinks, {k: "pkg:" + k.rsplit("/", 1)[-1] for k in files}, cache,
                    DEFAULT)
    return linker, linker.resolve(), answers


def real(linker: Linker, path: str) -> str:
    node = linker.tree.lookup(path)
    assert node.kind == "file", (path, node)
    assert "/" + node.key == os.path.realpath(path)
    return node.key


def test_host_programs_load_what_ldd_says(
        host: tuple[Linker, list[Link], dict[str, list[tuple[str, str | None]]]]) -> None:
    linker, _, answers = host
    assert len(answers) >= 3
    interp = real(linker, INTERP)
    for program, rows in answers.items():
        expected = [(name if path != name else "*", real(linker, path) if path else None)
                    for name, path in rows]
        got = [("*" if x.resolved == interp else x.needed, x.resolved)
               for x in linker.load(program, interpreter=INTERP)]
        assert got == expected, program


def test_host_links_and_closure_agree_with_ldd(
        host: tuple[Linker, list[Link], dict[str, list[tuple[str, str | None]]]]) -> None:
    linker, links, answers = host
    reach = closure(links)
    by_binary: dict[str, dict[str, str | None]] = {}
    for link in links:
        by_binary.setdefault(link.binary, {})[link.needed] = link.resolved
    for program, rows in answers.items():
        loaded = {real(linker, path) for _, path in rows if path}
        assert reach[program] == loaded, program
        names = {name: real(linker, path) if path else None for name, path in rows
                 if name != path}
        for name, resolved in by_binary[program].items():
            if name in names:
                assert resolved == names[name], (program, name)
    missing = {name for rows in answers.values() for name, path in rows if path is None}
    for link in links:
        assert link.resolved is not None or link.needed in missing, link
        assert link.package == "pkg:" + link.binary.rsplit("/", 1)[-1]
        assert link.provider == (
            "pkg:" + link.resolved.rsplit("/", 1)[-1] if link.resolved else None)


def test_host_without_cache_finds_the_same(
        host: tuple[Linker, list[Link], dict[str, list[tuple[str, str | None]]]]) -> None:
    linker, links, _ = host
    bare = resolve(linker.tree.files, linker.tree.symlinks, linker.owner, [], DEFAULT)
    assert [(lk.binary, lk.needed, lk.resolved) for lk in bare] == [
        (lk.binary, lk.needed, lk.resolved) for lk in links]


def test_host_links_are_sorted_in_needed_order(
        host: tuple[Linker, list[Link], dict[str, list[tuple[str, str | None]]]]) -> None:
    linker, links, _ = host
    binaries = [lk.binary for lk in links]
    assert binaries == sorted(binaries)
    for key, obj in linker.objects.items():
        assert tuple(lk.needed for lk in links if lk.binary == key) == obj.needed


# --- built trees ---------------------------------------------------------------------------

def lib(soname: str | None, *needed: str, **kw: object) -> bytes:
    return make_elf(soname=soname, needed=needed, **kw).data  # type: ignore[arg-type]


def prog(*needed: str, **kw: object) -> bytes:
    kw.setdefault("interp", INTERP)
    return make_elf(needed=needed, **kw).data  # type: ignore[arg-type]


def base() -> dict[str, bytes]:
    """libc and the dynamic loader, where Debian puts them."""
    return {f"{LIBDIR}/libc.so.6": lib("libc.so.6", "ld-linux-x86-64.so.2"),
            f"{LIBDIR}/ld-linux-x86-64.so.2": lib("ld-linux-x86-64.so.2")}


def image(files: Mapping[str, bytes], symlinks: Mapping[str, str] | None = None,
          cache: list[tuple[str, str]] | None = None, **kw: str) -> Linker:
    links = {**MERGED, "usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
             **(symlinks or {})}
    everything = {**base(), **files}
    return Linker(everything, links, {k: k.split("/")[-1] for k in everything}, cache or [],
                  DEFAULT, **kw)


def found(linker: Linker, binary: str) -> dict[str, str | None]:
    """needed -> resolved tree path, for one object."""
    return {lk.needed: lk.resolved for lk in linker.resolve() if lk.binary == binary}


def why(linker: Linker, binary: str, needed: str) -> str | None:
    obj = linker.objects[binary]
    return linker.lookups(binary)[obj.needed.index(needed)].error


def test_default_directories_through_merged_usr_and_soname_link() -> None:
    ln = image({"usr/bin/p": prog("libfoo.so.1", "libc.so.6"),
                f"{LIBDIR}/libfoo.so.1.2.3": lib("libfoo.so.1", "libc.so.6")},
               {f"{LIBDIR}/libfoo.so.1": "libfoo.so.1.2.3"})
    links = [lk for lk in ln.resolve() if lk.binary == "usr/bin/p"]
    assert links == [
        Link("usr/bin/p", "p", "libfoo.so.1", f"{LIBDIR}/libfoo.so.1.2.3", "libfoo.so.1.2.3"),
        Link("usr/bin/p", "p", "libc.so.6", f"{LIBDIR}/libc.so.6", "libc.so.6")]
    assert ln.lookups("usr/bin/p")[0].path == "/lib/x86_64-linux-gnu/libfoo.so.1"
    assert [x.path for x in ln.load("usr/bin/p")] == [
        "/lib/x86_64-linux-gnu/libfoo.so.1", "/lib/x86_64-linux-gnu/libc.so.6", INTERP]


def test_missing_library() -> None:
    ln = image({"usr/bin/p": prog("libnope.so.9", "libc.so.6")})
    link = next(lk for lk in ln.resolve() if lk.needed == "libnope.so.9")
    assert (link.resolved, link.provider) == (None, None)
    assert why(ln, "usr/bin/p", "libnope.so.9") == (
        "cannot open shared object file: No such file or directory")
    assert ln.load("usr/bin/p")[0] == linkage.Linked(
        "libnope.so.9", None, None, "usr/bin/p",
        "cannot open shared object file: No such file or directory")


def test_rpath_runpath_cache_default_precedence() -> None:
    files = {f"opt/{d}/libfoo.so.1": lib("libfoo.so.1") for d in ("r", "u", "c")}
    files[f"{LIBDIR}/libfoo.so.1"] = lib("libfoo.so.1")
    files |= {"usr/bin/rpath": prog("libfoo.so.1", rpath="/opt/r"),
              "usr/bin/runpath": prog("libfoo.so.1", runpath="/opt/u"),
              "usr/bin/both": prog("libfoo.so.1", rpath="/opt/r", runpath="/opt/u"),
              "usr/bin/plain": prog("libfoo.so.1"),
              "usr/bin/runpath-missing": prog("libfoo.so.1", runpath="/opt/none")}
    ln = image(files, cache=[("libfoo.so.1", "/opt/c/libfoo.so.1")])
    assert found(ln, "usr/bin/rpath")["libfoo.so.1"] == "opt/r/libfoo.so.1"
    assert found(ln, "usr/bin/runpath")["libfoo.so.1"] == "opt/u/libfoo.so.1"
    assert found(ln, "usr/bin/both")["libfoo.so.1"] == "opt/u/libfoo.so.1"
    assert found(ln, "usr/bin/plain")["libfoo.so.1"] == "opt/c/libfoo.so.1"
    assert found(ln, "usr/bin/runpath-missing")["libfoo.so.1"] == "opt/c/libfoo.so.1"
    ln = image(files)
    assert found(ln, "usr/bin/plain")["libfoo.so.1"] == f"{LIBDIR}/libfoo.so.1"


def test_cache_first_entry_only_then_default_dirs() -> None:
    files = {"usr/bin/p": prog("libfoo.so.1"), "opt/two/libfoo.so.1": lib("libfoo.so.1"),
             "usr/lib/libfoo.so.1": lib("libfoo.so.1")}
    # The first entry's file is gone: ld.so goes to the default directories, not to the
    # second entry.
    ln = image(files, cache=[("libfoo.so.1", "/opt/one/libfoo.so.1"),
                             ("libfoo.so.1", "/opt/two/libfoo.so.1")])
    assert found(ln, "usr/bin/p")["libfoo.so.1"] == "usr/lib/libfoo.so.1"
    # Entries in glibc-hwcaps subdirectories are for CPUs above the baseline.
    files["opt/h/glibc-hwcaps/x86-64-v3/libfoo.so.1"] = lib("libfoo.so.1")
    ln = image(files, cache=[("libfoo.so.1", "/opt/h/glibc-hwcaps/x86-64-v3/libfoo.so.1"),
                             ("libfoo.so.1", "/opt/two/libfoo.so.1")])
    assert found(ln, "usr/bin/p")["libfoo.so.1"] == "opt/two/libfoo.so.1"


def test_nodeflib() -> None:
    files = {"usr/bin/p": prog("libfoo.so.1", "libbar.so.1", flags_1=DF_1_NODEFLIB),
             f"{LIBDIR}/libfoo.so.1": lib("libfoo.so.1"), "opt/b/libbar.so.1": lib("libbar.so.1"),
             f"{LIBDIR}/libbar.so.1": lib("libbar.so.1")}
    ln = image(files, cache=[("libfoo.so.1", "/lib/x86_64-linux-gnu/libfoo.so.1"),
                             ("libbar.so.1", "/opt/b/libbar.so.1")])
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": None, "libbar.so.1": "opt/b/libbar.so.1"}


def test_rpath_is_inherited_at_run_time_runpath_is_not() -> None:
    files = {"usr/bin/rp": prog("libA.so.1", "libc.so.6", rpath="/opt/priv"),
             "usr/bin/ru": prog("libA.so.1", "libc.so.6", runpath="/opt/priv"),
             "opt/priv/libA.so.1": lib("libA.so.1", "libB.so.1"),
             "opt/priv/libB.so.1": lib("libB.so.1")}
    ln = image(files)
    loaded = {x.needed: x.resolved for x in ln.load("usr/bin/rp")}
    assert loaded["libB.so.1"] == "opt/priv/libB.so.1"
    assert next(x for x in ln.load("usr/bin/rp") if x.needed == "libB.so.1").loader == (
        "opt/priv/libA.so.1")
    assert {x.needed: x.resolved for x in ln.load("usr/bin/ru")}["libB.so.1"] is None
    # Each object on its own: libA's own lookups know no program.
    assert found(ln, "opt/priv/libA.so.1") == {"libB.so.1": None}
    # A DT_RUNPATH on the loading object turns inherited RPATHs off.
    files["opt/priv/libA.so.1"] = lib("libA.so.1", "libB.so.1", runpath="/nowhere")
    assert {x.needed: x.resolved for x in image(files).load("usr/bin/rp")}["libB.so.1"] is None
    # The chain goes up through every loader: prog -> libA (RPATH /opt/a) -> libB -> libC.
    files = {"usr/bin/p": prog("libA.so.1", rpath="/opt/p"),
             "opt/p/libA.so.1": lib("libA.so.1", "libB.so.1", rpath="/opt/a"),
             "opt/a/libB.so.1": lib("libB.so.1", "libC.so.1", "libD.so.1"),
             "opt/a/libC.so.1": lib("libC.so.1"), "opt/p/libD.so.1": lib("libD.so.1")}
    assert {x.needed: x.resolved for x in image(files).load("usr/bin/p")} == {
        "libA.so.1": "opt/p/libA.so.1", "libB.so.1": "opt/a/libB.so.1",
        "libC.so.1": "opt/a/libC.so.1", "libD.so.1": "opt/p/libD.so.1"}


def test_load_reuses_what_is_loaded_by_name_soname_or_file() -> None:
    files = {"usr/bin/p": prog("libA.so.1", "libB.so.1", rpath="/opt/a"),
             "opt/a/libA.so.1": lib("libA.so.1"),
             f"{LIBDIR}/libA.so.1": lib("libA.so.1"),
             f"{LIBDIR}/libB.so.1": lib("libB.so.1", "libA.so.1", "libC.so.1"),
             f"{LIBDIR}/libC.so.1.0": lib("libC.so.1")}
    ln = image(files, {f"{LIBDIR}/libC.so.1": "libC.so.1.0"})
    # libB alone would take the default directory's libA; in the program it is the one
    # already loaded.
    assert found(ln, f"{LIBDIR}/libB.so.1")["libA.so.1"] == f"{LIBDIR}/libA.so.1"
    assert [(x.needed, x.resolved) for x in ln.load("usr/bin/p")] == [
        ("libA.so.1", "opt/a/libA.so.1"), ("libB.so.1", f"{LIBDIR}/libB.so.1"),
        ("libC.so.1", f"{LIBDIR}/libC.so.1.0")]
    # By soname (libA: asked for by path first) and by file (libC, without a soname,
    # asked for by two names that lead to one file).
    files = {"usr/bin/p": prog("/opt/a/libA.so.1", "libB.so.1", "libC-alias.so"),
             "opt/a/libA.so.1": lib("libA.so.1"),
             f"{LIBDIR}/libB.so.1": lib("libB.so.1", "libA.so.1", "libC.so.1"),
             f"{LIBDIR}/libC.so.1": lib(None)}
    ln = image(files, {f"{LIBDIR}/libC-alias.so": "libC.so.1"})
    rows = [(x.needed, x.path, x.resolved) for x in ln.load("usr/bin/p")]
    assert rows == [
        ("/opt/a/libA.so.1", "/opt/a/libA.so.1", "opt/a/libA.so.1"),
        ("libB.so.1", "/lib/x86_64-linux-gnu/libB.so.1", f"{LIBDIR}/libB.so.1"),
        ("libC-alias.so", "/lib/x86_64-linux-gnu/libC-alias.so", f"{LIBDIR}/libC.so.1")]


def test_load_lists_missing_names_each_time_and_places_the_interpreter() -> None:
    # As ld.so --list: a name that loads nothing is searched again by the next object that
    # needs it, and the interpreter follows the object before it in the search list.
    files = {"usr/lib/j/libnet.so": lib(None, "libjvm.so", "libjava.so", "libc.so.6",
                                        rpath="$ORIGIN"),
             "usr/lib/j/libjava.so": lib(None, "libjvm.so", "libc.so.6", rpath="$ORIGIN"),
             "usr/lib/j/server/libjvm.so": lib("libjvm.so")}
    rows = [(x.needed, x.resolved, x.loader)
            for x in image(files).load("usr/lib/j/libnet.so", interpreter=INTERP)]
    assert rows == [("libjvm.so", None, "usr/lib/j/libnet.so"),
                    ("libjava.so", "usr/lib/j/libjava.so", "usr/lib/j/libnet.so"),
                    ("libc.so.6", f"{LIBDIR}/libc.so.6", "usr/lib/j/libnet.so"),
                    ("ld-linux-x86-64.so.2", f"{LIBDIR}/ld-linux-x86-64.so.2",
                     f"{LIBDIR}/libc.so.6"),
                    ("libjvm.so", None, "usr/lib/j/libjava.so")]
    # A DT_NEEDED whose token has no value is skipped at run time.
    files = {"usr/bin/p": prog("$PLATFORM/libx.so", "libc.so.6")}
    assert [x.needed for x in image(files).load("usr/bin/p")] == [
        "libc.so.6", "ld-linux-x86-64.so.2"]


def test_origin_and_other_tokens() -> None:
    files = {"usr/bin/p": prog("libp.so", "libq.so", "$ORIGIN/../share/libs.so", "${LIB}z.so",
                               rpath="$ORIGIN/../lib/p:${ORIGIN}/../lib/q"),
             "usr/lib/p/libp.so": lib("libp.so"), "usr/lib/q/libq.so": lib("libq.so"),
             "usr/share/libs.so": lib("libs.so"), "usr/lib/x86_64-linux-gnuz.so": lib("z")}
    # "${LIB}z.so" expands to a relative path, opened from the working directory, "/".
    assert found(image(files), "usr/bin/p") == {
        "libp.so": "usr/lib/p/libp.so", "libq.so": "usr/lib/q/libq.so",
        "$ORIGIN/../share/libs.so": "usr/share/libs.so",
        "${LIB}z.so": "usr/lib/x86_64-linux-gnuz.so"}
    # $LIB is Debian's multiarch directory; $PLATFORM is dropped unless known;
    # $ORIGINAL is no token and stays as written.
    files = {"usr/bin/p": prog("libl.so", "libm2.so", "libo.so",
                               rpath="/opt/$LIB:/opt/$PLATFORM:/opt/$ORIGINAL"),
             "opt/lib/x86_64-linux-gnu/libl.so": lib("libl.so"),
             "opt/haswell/libm2.so": lib("libm2.so"), "opt/$ORIGINAL/libo.so": lib("libo.so")}
    assert found(image(files), "usr/bin/p") == {
        "libl.so": "opt/lib/x86_64-linux-gnu/libl.so", "libm2.so": None,
        "libo.so": "opt/$ORIGINAL/libo.so"}
    assert found(image(files, platform="haswell"), "usr/bin/p")["libm2.so"] == (
        "opt/haswell/libm2.so")
    assert found(image(files, lib="lib64"), "usr/bin/p")["libl.so"] is None
    files["usr/bin/p"] = prog("$PLATFORM/x.so")
    assert why(image(files), "usr/bin/p", "$PLATFORM/x.so") == (
        "empty dynamic string token substitution")


def test_origin_is_the_opened_path_at_run_time() -> None:
    # libq's real file is in usr/lib/q, reached through a symlink in the multiarch
    # directory; its RUNPATH $ORIGIN is that directory to ld.so, which does not resolve
    # the file's own symlinks (the real path in an object's own lookups).
    files = {"usr/bin/m": prog("libq.so.1", runpath="/usr/lib/x86_64-linux-gnu"),
             "usr/lib/q/libq.so.1": lib("libq.so.1", "libr.so.1", runpath="$ORIGIN"),
             "usr/lib/q/libr.so.1": lib("libr.so.1")}
    ln = image(files, {f"{LIBDIR}/libq.so.1": "../q/libq.so.1"})
    assert found(ln, "usr/lib/q/libq.so.1") == {"libr.so.1": "usr/lib/q/libr.so.1"}
    assert {x.needed: x.resolved for x in ln.load("usr/bin/m")} == {
        "libq.so.1": "usr/lib/q/libq.so.1", "libr.so.1": None}
    # The program's $ORIGIN is its real directory.
    files = {"usr/lib/app/bin/app": prog("libapp.so", rpath="$ORIGIN/../lib"),
             "usr/lib/app/lib/libapp.so": lib("libapp.so")}
    ln = image(files, {"usr/bin/app": "../lib/app/bin/app"})
    assert {x.needed: x.resolved for x in ln.load("usr/lib/app/bin/app")}["libapp.so"] == (
        "usr/lib/app/lib/libapp.so")


def test_other_class_or_machine_is_skipped() -> None:
    files = {"usr/bin/p": prog("libfoo.so.1", "libbar.so.1"),
             f"{LIBDIR}/libfoo.so.1": lib("libfoo.so.1", cls=32, machine=3),
             "usr/lib/libfoo.so.1": lib("libfoo.so.1"),
             f"{LIBDIR}/libbar.so.1": lib("libbar.so.1", machine=183),
             "usr/lib/libbar.so.1": lib("libbar.so.1")}
    ln = image(files)
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": "usr/lib/libfoo.so.1",
                                      "libbar.so.1": "usr/lib/libbar.so.1"}
    del files["usr/lib/libfoo.so.1"], files["usr/lib/libbar.so.1"]
    ln = image(files)
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": None, "libbar.so.1": None}
    assert why(ln, "usr/bin/p", "libfoo.so.1") == "wrong ELF class: ELFCLASS32"
    # A 32-bit object looks for 32-bit libraries (in the same default directories here).
    files = {"usr/bin/p32": prog("libfoo.so.1", cls=32, machine=3, interp="/lib/ld-linux.so.2"),
             f"{LIBDIR}/libfoo.so.1": lib("libfoo.so.1"),
             "usr/lib/libfoo.so.1": lib("libfoo.so.1", cls=32, machine=3)}
    assert found(image(files), "usr/bin/p32") == {"libfoo.so.1": "usr/lib/libfoo.so.1"}


def test_fatal_candidates_stop_the_search() -> None:
    later = {"usr/lib/libfoo.so.1": lib("libfoo.so.1")}
    cases = {
        b"GROUP ( libfoo.so.1.2 ) /* a linker script padded past an ELF header size */":
            "invalid ELF header",
        b"short": "file too short",
        lib("libfoo.so.1", big=True): "ELF file data encoding not little-endian",
        lib("libfoo.so.1", osabi=9): "ELF file OS ABI invalid",
        make_elf(soname="libfoo.so.1").data[:80]: "usr/lib/x86_64-linux-gnu/libfoo.so.1: "
                                                   "program header table",
        lib("libfoo.so.1", etype=ET_EXEC): "cannot dynamically load executable",
        lib("libfoo.so.1", flags_1=DF_1_PIE): "cannot dynamically load position-independent "
                                              "executable",
        lib("libfoo.so.1", dynamic=False): "object file has no dynamic section",
    }
    for data, message in cases.items():
        ln = image({"usr/bin/p": prog("libfoo.so.1"), f"{LIBDIR}/libfoo.so.1": data, **later})
        assert found(ln, "usr/bin/p") == {"libfoo.so.1": None}, message
        error = why(ln, "usr/bin/p", "libfoo.so.1")
        assert error is not None and error.startswith(message), (error, message)
    # A relocatable object (ET_REL) is refused before the program headers are looked at.
    rel = make_elf(soname="libfoo.so.1", etype=1).data
    ln = image({"usr/bin/p": prog("libfoo.so.1"), f"{LIBDIR}/libfoo.so.1": rel, **later})
    assert why(ln, "usr/bin/p", "libfoo.so.1") == "only ET_DYN and ET_EXEC can be loaded"
    # A directory where the file should be: open succeeds, reading fails.
    ln = image({"usr/bin/p": prog("libfoo.so.1"), f"{LIBDIR}/libfoo.so.1/x": b"", **later})
    assert why(ln, "usr/bin/p", "libfoo.so.1") == "cannot read file data: Is a directory"


def test_symlink_chains() -> None:
    files = {"usr/bin/p": prog("libfoo.so.1", "libbar.so.2"),
             "usr/lib/real/libfoo.so.1.2.3": lib("libfoo.so.1"),
             "opt/vendor/lib/libbar.so.2.0": lib("libbar.so.2")}
    links = {f"{LIBDIR}/libfoo.so.1": "libfoo.so.1.2",
             f"{LIBDIR}/libfoo.so.1.2": "/usr/lib/real/../real/libfoo.so.1.2.3",
             f"{LIBDIR}/libbar.so.2": "../../../opt/vendor-current/lib/libbar.so.2.0",
             "opt/vendor-current": "vendor"}
    ln = image(files, links)
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": "usr/lib/real/libfoo.so.1.2.3",
                                      "libbar.so.2": "opt/vendor/lib/libbar.so.2.0"}
    assert ln.tree.lookup("/lib/x86_64-linux-gnu/libfoo.so.1/").kind == "ENOTDIR"
    assert ln.tree.lookup("/usr/../usr/lib/./real//libfoo.so.1.2.3").key == (
        "usr/lib/real/libfoo.so.1.2.3")


def test_symlink_loops() -> None:
    files = {"usr/bin/p": prog("libfoo.so.1", "libbar.so.1", "libbaz.so.1"),
             "usr/lib/libfoo.so.1": lib("libfoo.so.1"), "usr/lib/libbar.so.1": lib("libbar.so.1"),
             "usr/lib/libbaz.so.1": lib("libbaz.so.1")}
    links = {f"{LIBDIR}/libfoo.so.1": "libfoo.so.1b", f"{LIBDIR}/libfoo.so.1b": "libfoo.so.1",
             f"{LIBDIR}/libbar.so.1": "gone/libbar.so.1"}
    ln = image(files, links)
    # A loop ends the list it is met in (the default directories: /usr/lib is not
    # tried); a dangling link is a missing file and the search goes on.
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": None, "libbar.so.1": "usr/lib/libbar.so.1",
                                      "libbaz.so.1": "usr/lib/libbaz.so.1"}
    assert why(ln, "usr/bin/p", "libfoo.so.1") == (
        "cannot open shared object file: No such file or directory")
    assert ln.tree.lookup("/lib/x86_64-linux-gnu/libfoo.so.1").kind == "ELOOP"
    # A loop in an rpath directory itself: that directory is not there, the list goes on.
    files["usr/bin/p"] = prog("libfoo.so.1", rpath="/opt/loop:/opt/ok")
    files["opt/ok/libfoo.so.1"] = lib("libfoo.so.1")
    ln = image(files, {"opt/loop": "loop2", "opt/loop2": "loop"})
    assert found(ln, "usr/bin/p") == {"libfoo.so.1": "opt/ok/libfoo.so.1"}
    # Forty links are followed, the forty-first is a loop.
    ok = {"opt/ok/x": b""}
    chain = {f"opt/l{i}": f"l{i + 1}" for i in range(39)} | {"opt/l39": "ok"}
    assert image(ok, chain).tree.lookup("/opt/l0/x").kind == "file"
    chain |= {"opt/l39": "l40", "opt/l40": "ok"}
    assert image(ok, chain).tree.lookup("/opt/l0/x").kind == "ELOOP"


def test_unreadable_objects_are_reported_not_raised() -> None:
    broken = make_elf(soname="libx.so").data[:100]
    ln = image({"usr/bin/p": prog("libc.so.6"), "usr/lib/x.so": broken,
                "usr/share/doc/readme": b"text"})
    assert list(ln.unreadable) == ["usr/lib/x.so"]
    assert "program header table" in ln.unreadable["usr/lib/x.so"]
    assert set(ln.objects) == {"usr/bin/p", f"{LIBDIR}/libc.so.6",
                               f"{LIBDIR}/ld-linux-x86-64.so.2"}
    with pytest.raises(ValueError):
        ln.load("usr/share/doc/readme")


# --- closure and dependants ----------------------------------------------------------------

def chain_links() -> list[Link]:
    """p -> a -> b -> gpl; q -> gpl; m (a module) -> a; a <-> c (a cycle)."""
    pairs = [("usr/bin/p", "a"), ("a", "b"), ("b", "gpl"), ("usr/bin/q", "gpl"), ("m", "a"),
             ("a", "c"), ("c", "a"), ("usr/bin/p", None)]
    return [Link(x, x, f"lib{y}", y, y) if y else Link(x, x, "libnope", None, None)
            for x, y in pairs]


def test_closure() -> None:
    reach = closure(chain_links())
    assert reach["usr/bin/p"] == {"a", "b", "c", "gpl"}
    assert reach["a"] == {"b", "c", "gpl"}
    assert reach["usr/bin/q"] == {"gpl"}
    assert reach["b"] == {"gpl"}
    assert "gpl" not in reach


def test_dependants() -> None:
    d = dependants(chain_links(), "gpl")
    assert d.direct == ("b", "usr/bin/q")
    assert d.transitive == ("a", "c", "m", "usr/bin/p")
    assert d.chains["usr/bin/p"] == ("usr/bin/p", "a", "b", "gpl")
    assert d.chains["m"] == ("m", "a", "b", "gpl")
    assert d.chains["c"] == ("c", "a", "b", "gpl")
    assert d.chains["usr/bin/q"] == ("usr/bin/q", "gpl")
    assert dependants(chain_links(), "nothing") == linkage.Dependants("nothing", (), {})
