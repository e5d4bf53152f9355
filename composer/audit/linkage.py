"""Which shipped file each ``DT_NEEDED`` of each shipped ELF object loads, as glibc's
ld.so would inside the image, and what that makes reachable.

A licence audit must know which binaries run whose code: a GPL library is a concern for
the programs that load it, directly or through another library. The image is a file
tree, never the host: every path, symlink and directory is looked up in the tree.

Objects: every ELF file of the tree with a dynamic section (executables, shared
libraries, Python extension modules). A file whose headers do not parse is no object
(:attr:`Linker.unreadable` says why). A regular file left out of ``files`` is taken as
absent; leaving out non-ELF files only matters where one sits first on a search path
(ld.so would stop there).

API: :func:`resolve` (one :class:`~composer.audit.report.Link` per ``DT_NEEDED`` of
every object), :func:`closure` (what each object loads, transitively),
:func:`dependants` (who loads a library, directly or through which chain), and
:class:`Linker` for lookups with ld.so's error (:meth:`Linker.lookups`) and the link
map of one program as ``ld.so --list`` shows it (:meth:`Linker.load`).

Lookup of one ``DT_NEEDED`` name by a loading object (glibc's ``_dl_map_new_object``,
``open_path`` and ``open_verify`` in ``elf/dl-load.c``):

1. Dynamic string tokens are expanded first: ``$ORIGIN``/``${ORIGIN}``, ``$LIB``,
   ``$PLATFORM`` (gABI rules: ``$NAME`` not followed by ``[A-Za-z0-9_]``, or ``${NAME}``;
   other ``$`` sequences stay as written). A name whose token has no value resolves to
   nothing here; ld.so skips such a ``DT_NEEDED``.
2. A name with a ``/`` is a path, opened as is (relative to the working directory,
   taken to be ``/``). No search.
3. Otherwise, in order, the first directory holding a suitable file wins:

   a. only when the loading object has no ``DT_RUNPATH``: the ``DT_RPATH`` of the
      loading object, then of the object that loaded it, and so on up to the program,
      then of the program itself (an object that has both ignores its ``DT_RPATH``);
   b. the ``DT_RUNPATH`` of the loading object only;
   c. the ld.so.cache: the first entry for the name; only that path is tried;
   d. the default directories.

   ``DF_1_NODEFLIB`` on the loading object skips cache entries under a default
   directory, and the default directories. Each rpath element is DST-expanded for the
   object that carries it; an element whose DST has no value is dropped, an empty one
   is the working directory, duplicates are tried once.
4. A candidate is used when it is an ELF object of the loading object's class and
   machine; a file of another class or machine is skipped and the search goes on
   (``wrong ELF class`` is the error when nothing else is found). A directory search
   also goes on past a missing file or a non-directory on the way (``ENOENT``,
   ``ENOTDIR``), and abandons that list of directories on a symlink loop (``ELOOP``).
   Anything else ld.so stops at with an error, and so the name loads nothing: a file
   that is not ELF or is shorter than a header, another byte order or OS ABI, an object
   of type other than ``ET_DYN``/``ET_EXEC``, headers that do not parse, a directory;
   and once chosen, an ``ET_EXEC`` or ``DF_1_PIE`` executable or an object without a
   dynamic section.

Symlinks resolve inside the tree, component by component as the kernel does (relative
targets from the link's directory, absolute ones from the tree's root, ``..`` after the
link's target), with at most 40 links per lookup: more is a loop.

Choices where the image alone does not decide:

* ``$ORIGIN`` is the directory of the object's own tree path in :meth:`Linker.resolve`
  (the real file). ld.so uses the directory of the path it opened a library by, without
  resolving the file's own symlinks, and the real path of the program; Debian's soname
  links sit beside their files, so this differs only for a library reached through a
  symlink in another directory. :meth:`Linker.load` follows ld.so exactly.
* In :meth:`Linker.resolve` each object is the loading object and the top of its chain:
  the ``DT_RPATH`` of the objects and program that load a library at run time is not
  known there. :meth:`Linker.load` follows the chain for one program.
* ``$LIB`` is the first default directory without its leading ``/``
  (``lib/x86_64-linux-gnu``), which is what Debian's ld.so uses; ``$PLATFORM`` depends
  on the CPU (``x86_64``, ``haswell``, ...), so an element using it is dropped unless
  ``platform`` is given.
* The CPU is the baseline: ``glibc-hwcaps`` subdirectories are not searched and cache
  entries in them are not used.
* ``LD_LIBRARY_PATH``, ``LD_PRELOAD`` and ``/etc/ld.so.preload`` are not considered,
  nor the kernel version in ``.note.ABI-tag``, nor ARM's float ABI in ``e_flags``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from composer import elf
from composer.audit.report import Link
from composer.elf import DF_1_NODEFLIB, DF_1_PIE, ET_DYN, ET_EXEC, Elf
from composer.errors import FormatError
from composer.model import MAX_SYMLINKS

__all__ = ["Dependants", "Found", "Linked", "Linker", "closure", "dependants", "resolve"]


_ELFOSABI_SYSV, _ELFOSABI_GNU = 0, 3
_LIBC_ABI_MAX = 4
"""glibc's ``LIBC_ABI_MAX``: the GNU OS ABI versions ld.so accepts are below it."""
_EHDR_SIZE = {1: 52, 2: 64}
_NOT_FOUND = "cannot open shared object file: No such file or directory"


@dataclass(frozen=True, slots=True)
class Found:
    """What one lookup of a name loads."""

    path: str | None
    """The path ld.so opens (its name for the object): ``/lib/x86_64-linux-gnu/libc.so.6``."""
    resolved: str | None
    """The tree path of the file after following symlinks; None when nothing loads."""
    error: str | None = None
    """Why nothing loads, in ld.so's words."""


@dataclass(frozen=True, slots=True)
class Linked:
    """One object of a program's link map, in ld.so's order (``ld.so --list``)."""

    needed: str
    """The name it was first asked for by (``ld.so --list`` shows the interpreter by
    its path instead)."""
    path: str | None
    resolved: str | None
    loader: str
    """The tree path of the object whose ``DT_NEEDED`` asked for it first."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Dependants:
    """The objects that load one library."""

    library: str
    direct: tuple[str, ...]
    """Objects with a ``DT_NEEDED`` resolving to the library, sorted."""
    chains: Mapping[str, tuple[str, ...]]
    """Every object loading it, directly or not, to a shortest chain from that object
    through the libraries in between to the library."""

    @property
    def transitive(self) -> tuple[str, ...]:
        """Objects that load it only through another library, sorted."""
        direct = set(self.direct)
        return tuple(sorted(b for b in self.chains if b not in direct))


@dataclass(frozen=True, slots=True)
class _Node:
    """What a path lookup reaches: ``file`` or ``dir`` (``key`` its tree path), or the
    error (``ENOENT``, ``ENOTDIR``, ``ELOOP``)."""

    kind: str
    key: str = ""


@dataclass(eq=False)
class _Map:
    """An object as ld.so holds it: the name it was opened by and its origin."""

    path: str
    key: str
    elf: Elf
    origin: str
    loader: _Map | None = None
    names: set[str] = field(default_factory=set)


class _Tree:
    """The image's files, directories and symlinks, looked up as the kernel would."""

    def __init__(self, files: Mapping[str, bytes], symlinks: Mapping[str, str]) -> None:
        self.files = files
        self.symlinks = symlinks
        dirs = {""}
        for key in (*files, *symlinks):
            at = key.rfind("/")
            while at > 0 and key[:at] not in dirs:
                dirs.add(key[:at])
                at = key.rfind("/", 0, at)
        self.dirs = dirs
        self._memo: dict[str, _Node] = {}

    def lookup(self, path: str) -> _Node:
        """Follow ``path`` (absolute, or relative to ``/``) through the tree."""
        node = self._memo.get(path)
        if node is None:
            node = self._memo[path] = self._walk(path)
        return node

    def _walk(self, path: str) -> _Node:
        todo = path.split("/")[::-1]
        done: list[str] = []
        links = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            key = "/".join((*done, part))
            target = self.symlinks.get(key)
            if target is not None:
                links += 1
                if links > MAX_SYMLINKS:
                    return _Node("ELOOP", key)
                if target.startswith("/"):
                    done = []
                todo.extend(target.split("/")[::-1])
            elif key in self.files:
                return _Node("ENOTDIR", key) if todo else _Node("file", key)
            elif key in self.dirs:
                done.append(part)
            else:
                return _Node("ENOENT", key)
        return _Node("dir", "/".join(done))


class Linker:
    """The image as ld.so sees it: its objects, and name lookups for them."""

    def __init__(self, files: Mapping[str, bytes], symlinks: Mapping[str, str],
                 owner: Mapping[str, str], cache: Sequence[tuple[str, str]],
                 default_dirs: Sequence[str], *, lib: str | None = None,
                 platform: str | None = None) -> None:
        """``cache``: the image's ld.so.cache as (soname, absolute path) in cache order,
        for this architecture. ``default_dirs``: ld.so's built-in directories, in order.
        ``lib``/``platform``: the values of ``$LIB`` and ``$PLATFORM`` (see the module's
        documentation for the defaults)."""
        self.tree = _Tree(files, symlinks)
        self.owner = owner
        self.cache: dict[str, str] = {}
        for soname, path in cache:
            if "/glibc-hwcaps/" not in path:
                self.cache.setdefault(soname, path)
        self.default_dirs = _dir_list(default_dirs)
        self.lib = lib if lib is not None else (
            default_dirs[0].lstrip("/") if default_dirs else None)
        self.platform = platform
        self._parsed: dict[str, Elf | str | None] = {}
        self.objects: dict[str, Elf] = {}
        """Tree path to object, for every ELF file with a dynamic section."""
        self.unreadable: dict[str, str] = {}
        """Tree path to why, for ELF files whose headers do not parse."""
        for key in sorted(files):
            parsed = self._elf(key)
            if isinstance(parsed, Elf) and parsed.has_dynamic:
                self.objects[key] = parsed
            elif isinstance(parsed, str):
                self.unreadable[key] = parsed

    # --- the whole image --------------------------------------------------------------

    def resolve(self) -> list[Link]:
        """Every ``DT_NEEDED`` of every object, each object being the loading object,
        sorted by object and then in ``DT_NEEDED`` order."""
        links = []
        for key, obj in self.objects.items():
            for needed, found in zip(obj.needed, self.lookups(key), strict=True):
                links.append(Link(key, self.owner.get(key, ""), needed, found.resolved,
                                  self.owner.get(found.resolved) if found.resolved else None))
        return links

    def lookups(self, key: str) -> tuple[Found, ...]:
        """What each ``DT_NEEDED`` of the object at tree path ``key`` loads."""
        obj = self.objects[key]
        me = _Map("/" + key, key, obj, _dirname("/" + key))
        return tuple(self._need(name, me, None) for name in obj.needed)

    def load(self, program: str, interpreter: str | None = None) -> list[Linked]:
        """What ``ld.so --list`` shows for the program at tree path ``program``: its
        dependencies breadth first (``_dl_map_object_deps``), each search following the
        chain of loaders. A name already loaded (a name it was asked for, its path or its
        soname) or a file already loaded loads nothing new. A name that loads nothing is
        listed with its error wherever it is needed, and the rest goes on; a ``DT_NEEDED``
        whose token has no value is skipped. The interpreter (the program's
        ``PT_INTERP``, else ``interpreter``: the loader of the program that would load
        this object, or of ``ld.so --list``) is listed after the object before it in the
        search list, and only when some object needs it."""
        if program not in self.objects:
            raise ValueError(f"{program} is not an ELF object with a dynamic section")
        prog = self.objects[program]
        main = _Map("", program, prog, _dirname("/" + program))
        loaded: list[_Map] = [main]
        by_key: dict[str, _Map] = {}
        rtld = self._interpreter(prog.interpreter or interpreter)
        if rtld is not None:
            loaded.append(rtld)
            by_key[rtld.key] = rtld
        rows: list[tuple[_Map | None, Linked]] = []
        rtld_row: Linked | None = None
        searchlist = [main]
        queue = deque([main])
        while queue:
            current = queue.popleft()
            for raw in current.elf.needed:
                name = self._expand(raw, current)
                if name is None:
                    continue
                dep = self._loaded(loaded, name)
                if dep is None:
                    found = self._search(name, current, main)
                    error = found.error
                    if found.resolved is not None and found.path is not None:
                        if (same := by_key.get(found.resolved)) is not None:
                            same.names.add(name)
                            dep = same
                        elif (error := _unloadable(self._elf(found.resolved))) is None:
                            dep = _Map(found.path, found.resolved, self.objects[found.resolved],
                                       _dirname(found.path), current, {name})
                            loaded.append(dep)
                            by_key[dep.key] = dep
                            rows.append((dep, Linked(name, dep.path, dep.key, current.key)))
                    if dep is None:
                        rows.append((None, Linked(name, found.path, None, current.key, error)))
                        continue
                if dep not in searchlist:
                    searchlist.append(dep)
                    queue.append(dep)
                    if dep is rtld:
                        rtld_row = Linked(name, dep.path, dep.key, current.key)
        out = [row for _, row in rows]
        if rtld is not None and rtld_row is not None:
            before = searchlist[searchlist.index(rtld) - 1]
            at = next((i + 1 for i, (m, _) in enumerate(rows) if m is before), 0)
            out.insert(at, rtld_row)
        return out

    # --- one lookup -------------------------------------------------------------------

    def _need(self, raw: str, loader: _Map, main: _Map | None) -> Found:
        name = self._expand(raw, loader)
        if name is None:
            return Found(None, None, "empty dynamic string token substitution")
        found = self._search(name, loader, main)
        if found.resolved is not None:
            error = _unloadable(self._elf(found.resolved))
            if error is not None:
                return Found(found.path, None, error)
        return found

    def _search(self, name: str, loader: _Map, main: _Map | None) -> Found:
        want = loader.elf
        other_class = [False]
        if "/" in name:
            opened = self._open(name, want, other_class)
            if isinstance(opened, Found):
                return opened
        else:
            found = self._search_dirs(name, loader, main, other_class)
            if found is not None:
                return found
        if other_class[0]:
            return Found(None, None, "wrong ELF class: ELFCLASS" + ("64" if want.cls == 32
                                                                     else "32"))
        return Found(None, None, _NOT_FOUND)

    def _search_dirs(self, name: str, loader: _Map, main: _Map | None,
                     other_class: list[bool]) -> Found | None:
        want = loader.elf
        lists: list[tuple[str, ...]] = []
        if want.runpath:
            lists.append(self._dirs(want.runpath, loader))
        else:
            chain: list[_Map] = []
            at: _Map | None = loader
            while at is not None:
                chain.append(at)
                at = at.loader
            if main is not None and main not in chain:
                chain.append(main)
            lists += [self._rpath(m) for m in chain]
        for dirs in lists:
            if found := self._open_path(name, dirs, want, other_class):
                return found
        nodeflib = bool(want.flags_1 & DF_1_NODEFLIB)
        cached = self.cache.get(name)
        if cached is not None and not (nodeflib and cached.startswith(self.default_dirs)):
            opened = self._open(cached, want, other_class)
            if isinstance(opened, Found):
                return opened
        if not nodeflib:
            return self._open_path(name, self.default_dirs, want, other_class)
        return None

    def _rpath(self, obj: _Map) -> tuple[str, ...]:
        if obj.elf.runpath or not obj.elf.rpath:
            return ()
        return self._dirs(obj.elf.rpath, obj)

    def _dirs(self, elements: Sequence[str], obj: _Map) -> tuple[str, ...]:
        """An rpath's directories as ld.so's ``fillin_rpath`` makes them: expanded for
        the object carrying it, ending in ``/`` ("" for the working directory)."""
        out: list[str] = []
        for element in elements:
            if element:
                expanded = self._expand(element, obj)
                if not expanded:
                    continue
                element = expanded.rstrip("/") + "/" if expanded.strip("/") else "/"
            if element not in out:
                out.append(element)
        return tuple(out)

    def _open_path(self, name: str, dirs: Sequence[str], want: Elf,
                   other_class: list[bool]) -> Found | None:
        for directory in dirs:
            hit = self._open(directory + name, want, other_class)
            if isinstance(hit, Found):
                return hit
            if hit == "ELOOP" and self.tree.lookup(directory or "/").kind == "dir":
                return None
        return None

    def _open(self, path: str, want: Elf, other_class: list[bool]) -> Found | str:
        """``open_verify``: a Found (the object, or a fatal error), or why the search
        goes on (an errno name, or ``other`` for another class or machine)."""
        node = self.tree.lookup(path)
        if node.kind == "dir":
            return Found(path, None, "cannot read file data: Is a directory")
        if node.kind != "file":
            return node.kind
        data = self.tree.files[node.key]
        problem = _header_problem(data, want)
        if problem == "class":
            other_class[0] = True
            return "other"
        if problem == "machine":
            return "other"
        if problem is not None:
            return Found(path, None, problem)
        return Found(path, node.key)

    def _interpreter(self, path: str | None) -> _Map | None:
        if path is None:
            return None
        node = self.tree.lookup(path)
        obj = self.objects.get(node.key) if node.kind == "file" else None
        if obj is None:
            return None
        names = {path} | ({obj.soname} if obj.soname else set())
        return _Map(path, node.key, obj, _dirname(path), None, names)

    @staticmethod
    def _loaded(loaded: Sequence[_Map], name: str) -> _Map | None:
        """``_dl_lookup_map``: the loaded object known by ``name`` or with it as soname."""
        for m in loaded:
            if name in m.names or (m.path and name == m.path):
                return m
            if m.elf.soname == name:
                m.names.add(name)
                return m
        return None

    def _expand(self, text: str, obj: _Map) -> str | None:
        """``_dl_dst_substitute``: None when a known token has no value."""
        if "$" not in text:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            if text[i] != "$":
                out.append(text[i])
                i += 1
                continue
            i += 1
            for token, value in (("ORIGIN", obj.origin), ("PLATFORM", self.platform),
                                 ("LIB", self.lib)):
                length = _dst_length(text, i, token)
                if length:
                    if value is None:
                        return None
                    out.append(value)
                    i += length
                    break
            else:
                out.append("$")
        return "".join(out)

    def _elf(self, key: str) -> Elf | str | None:
        """The parsed file at tree path ``key``: None when not ELF, the problem when its
        headers do not parse."""
        if key not in self._parsed:
            try:
                self._parsed[key] = elf.read(self.tree.files[key], key)
            except FormatError as e:
                self._parsed[key] = e.message
        return self._parsed[key]


def resolve(files: Mapping[str, bytes], symlinks: Mapping[str, str], owner: Mapping[str, str],
            cache: Sequence[tuple[str, str]], default_dirs: Sequence[str], *,
            lib: str | None = None, platform: str | None = None) -> list[Link]:
    """Every ``DT_NEEDED`` of every ELF object of the tree, resolved as ld.so would (see
    the module's documentation), sorted by object and then in ``DT_NEEDED`` order."""
    return Linker(files, symlinks, owner, cache, default_dirs, lib=lib,
                  platform=platform).resolve()


def closure(links: Iterable[Link]) -> dict[str, set[str]]:
    """For each object, every library it loads, directly or through others (itself
    excluded)."""
    graph = _graph(links)
    out: dict[str, set[str]] = {}
    for start, direct in graph.items():
        seen: set[str] = set()
        stack = list(direct)
        while stack:
            at = stack.pop()
            if at == start or at in seen:
                continue
            seen.add(at)
            stack.extend(graph.get(at, ()))
        out[start] = seen
    return out


def dependants(links: Iterable[Link], library: str) -> Dependants:
    """The objects that load ``library`` (a tree path), directly and through others, each
    with a shortest chain."""
    graph = _graph(links)
    users: dict[str, list[str]] = {}
    for binary in sorted(graph):
        for lib in graph[binary]:
            users.setdefault(lib, []).append(binary)
    toward: dict[str, str] = {}
    queue = deque([library])
    while queue:
        at = queue.popleft()
        for user in users.get(at, ()):
            if user != library and user not in toward:
                toward[user] = at
                queue.append(user)
    chains: dict[str, tuple[str, ...]] = {}
    for binary in sorted(toward):
        chain = [binary]
        while chain[-1] != library:
            chain.append(toward[chain[-1]])
        chains[binary] = tuple(chain)
    return Dependants(library, tuple(users.get(library, ())), chains)


def _graph(links: Iterable[Link]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for link in links:
        edges = graph.setdefault(link.binary, [])
        if link.resolved is not None and link.resolved not in edges:
            edges.append(link.resolved)
    return graph


def _header_problem(data: bytes, want: Elf) -> str | None:
    """``open_verify``'s checks of a candidate against the loading object: None when
    usable, ``class``/``machine`` when ld.so skips it, else ld.so's error."""
    size = _EHDR_SIZE[2 if want.cls == 64 else 1]
    if len(data) < size:
        return "file too short"
    if data[:4] != elf.MAGIC:
        return "invalid ELF header"
    if data[4] != (2 if want.cls == 64 else 1):
        return "class"
    endian = "little" if data[5] == 1 else "big" if data[5] == 2 else ""
    if endian != want.endian:
        return f"ELF file data encoding not {want.endian}-endian"
    if data[6] != 1:
        return "ELF file version ident does not match current one"
    if data[7] not in (_ELFOSABI_SYSV, _ELFOSABI_GNU):
        return "ELF file OS ABI invalid"
    if data[8] != 0 and not (data[7] == _ELFOSABI_GNU and data[8] < _LIBC_ABI_MAX):
        return "ELF file ABI version invalid"
    if any(data[9:16]):
        return "nonzero padding in e_ident"
    e_type, e_machine, e_version = struct.unpack_from(
        "<HHI" if endian == "little" else ">HHI", data, 16)
    if e_version != 1:
        return "ELF file version does not match current one"
    if e_machine != want.machine:
        return "machine"
    if e_type not in (ET_DYN, ET_EXEC):
        return "only ET_DYN and ET_EXEC can be loaded"
    return None


def _unloadable(candidate: Elf | str | None) -> str | None:
    """``_dl_map_object_from_fd``'s refusals of the file a search chose."""
    if isinstance(candidate, str):
        return candidate
    if candidate is None:
        return "invalid ELF header"
    if candidate.type == ET_EXEC:
        return "cannot dynamically load executable"
    if not candidate.has_dynamic:
        return "object file has no dynamic section"
    if candidate.flags_1 & DF_1_PIE:
        return "cannot dynamically load position-independent executable"
    return None


def _dst_length(text: str, at: int, token: str) -> int:
    """``is_dst``: the length of ``$token`` or ``${token}`` at ``text[at:]`` (after the
    ``$``), 0 when it is not there."""
    curly = text.startswith("{", at)
    start = at + curly
    if not text.startswith(token, start):
        return 0
    end = start + len(token)
    if curly:
        return len(token) + 2 if text.startswith("}", end) else 0
    following = text[end:end + 1]
    if following and following.isascii() and (following.isalnum() or following == "_"):
        return 0
    return len(token)


def _dirname(path: str) -> str:
    """``_dl_new_object``'s origin: the path without its last component ("/" for
    ``/name``)."""
    if not path.startswith("/"):
        path = "/" + path
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/"


def _dir_list(dirs: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for d in dirs:
        d = d.rstrip("/") + "/" if d.strip("/") else "/"
        if d not in out:
            out.append(d)
    return tuple(out)
