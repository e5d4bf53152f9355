"""Profiles: ``profiles/NAME.toml`` into a frozen ``Profile``.

Every mistake is a ``ProfileError`` that names the file, the line and the key, and
suggests the fix (a did-you-mean for misspelt keys and values). tomllib gives values but
no positions, so ``_Locator`` finds the line of a key by reading the TOML text's table
headers and assignments.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from composer.errors import ProfileError
from composer.model import (
    ARCHIVE_NAME,
    PACKAGE_NAME,
    SOURCE_BUILD_ARCHES,
    SOURCE_BUILD_MACHINE,
    WANTED,
    ImageSpec,
    Profile,
    PythonBuild,
    SourceSpec,
    UserSpec,
    wanted,
)
from composer.tomllines import TomlLines, decode_error

ARCHITECTURES = (
    "amd64", "arm64", "armel", "armhf", "i386", "loong64", "mips64el", "ppc64el",
    "riscv64", "s390x",
)
SHIPPED_KEYRINGS = ("debian", "debian-12", "debian-13", "debian-14")
_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

# Keys later stages read; this stage checks only that they are tables where expected.
_TOP_KEYS = ("name", "description", "architectures", "source", "packages", "python", "image",
             "user", "group", "strip", "policy", "busybox")
_SOURCE_KEYS = ("archive", "suite", "components", "keyring", "binaries")
_VERSION = re.compile(r"(?:[0-9]+:[0-9][A-Za-z0-9.+~:-]*|[0-9][A-Za-z0-9.+~-]*)(?<!-)")
"""A Debian version's shape (Policy 5.6.12): a colon in it only after an epoch. (The
resolver's reader, ``debian.version``, is a sibling layer's: profile does not import it.)"""
_PACKAGES_KEYS = ("include", "exclude", "prefer", "recommends", "only")
_PYTHON_KEYS = ("version", "compile", "trim", "build", "source-suite", "readline", "pgo", "lto")
_SOURCE_BUILD_KEYS = ("source-suite", "readline", "pgo", "lto")
DEBIAN_PYTHON = re.compile(r"(lib)?python3(\.[0-9]+)?(-minimal|-stdlib|-venv|-full|-nopie)?")
"""Debian's own CPython packages: what a source build replaces."""
GPL3_LINE_EDITING = re.compile(r"libreadline[0-9].*|readline-common|libgdbm.*")
"""GNU readline and gdbm (GPL-3): what ``readline = false`` keeps out of the image."""
_IMAGE_KEYS = ("tag", "tags", "entrypoint", "cmd", "env", "user", "workdir", "labels", "compression", "setuid",
               "sbom")
_USER_KEYS = ("name", "uid", "gid", "home", "shell")
_GROUP_KEYS = ("name", "gid")
_STRIP_KEYS = ("paths", "keep", "defaults")
_POLICY_KEYS = ("deny", "allow-packages")
_ALLOW_KEYS = ("name", "reason")
_LICENCE_PATTERN = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9.+*?-]*( WITH [A-Za-z0-9.+*?-]+)?$")


class _Checker:
    """Checks values and says where they are written: in the profile, or in a profile
    it extends when the profile itself does not set them."""

    def __init__(self, path: Path, text: str, bases: tuple[tuple[Path, str], ...] = ()) -> None:
        self.path = path
        self.loc = TomlLines(text)
        self.bases = [(p, TomlLines(t)) for p, t in bases]

    def fail(self, where: tuple[str | int, ...], message: str, hint: str | None = None) -> ProfileError:
        path, line = self.path, None
        if where and self.bases and self.loc.exact(where) is None:
            for base_path, loc in self.bases:
                if loc.exact(where) is not None:
                    path, line = base_path, loc.exact(where)
                    break
        if line is None and path == self.path:
            line = self.loc.line(where) if where else None
        key = _dotted(where)
        prefix = f"{path}:{line}" if line else str(path)
        return ProfileError(f"{prefix}: {key}: {message}" if key else f"{prefix}: {message}", hint)

    def keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: tuple[str | int, ...]) -> None:
        for k in table:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = (f"did you mean '{close[0]}'?" if close
                        else "known keys here: " + ", ".join(allowed))
                raise self.fail((*where, k), "unknown key", hint)

    def typed(self, value: Any, kind: type | tuple[type, ...], where: tuple[str | int, ...], what: str) -> Any:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(where, f"expected {what}, found {_tname(value)}", f"write it as {what}")
        return value

    def strings(self, value: Any, where: tuple[str | int, ...], check: Callable[[str, tuple[str | int, ...]], None] | None = None) -> tuple[str, ...]:
        self.typed(value, list, where, "a list of strings")
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(where, f"item {i + 1} should be a string, found {_tname(item)}",
                                'quote it: ["like", "this"]')
            if check:
                check(item, where)
            if item in out:
                raise self.fail(where, f"{item!r} is listed twice", "remove the duplicate")
            out.append(item)
        return tuple(out)


    def tables(self, value: Any, name: str, allowed: tuple[str, ...], required: tuple[str, ...],
               base: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
        """Each table of an array of tables (``[[name]]``, or ``name = [{...}]`` inside
        the table at ``base``), checked for its keys, with where it is."""
        for i, table in enumerate(self.typed(value, list, (*base, name), f"[[{name}]] tables")):
            where: tuple[str | int, ...] = (*base, name, i)
            self.typed(table, dict, where, "a table")
            self.keys(table, allowed, where)
            for key in required:
                if key not in table:
                    raise self.fail(where, f"[[{name}]] number {i + 1} has no '{key}'",
                                    f"add {key} = ... to it")
            yield where, table


def _dotted(where: tuple[str | int, ...]) -> str:
    out = ""
    for p in where:
        out += f"[{p + 1}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def load(path: Path) -> Profile:
    """Read and check a profile file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ProfileError(f"{path}: no such profile", "profiles live in profiles/NAME.toml") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc}") from exc
    return parse(text, path)


def _toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(decode_error(exc, path), "see https://toml.io for the syntax") from exc


MAX_EXTENDS = 8


def _merge(base: Any, child: Any, ck: _Checker, where: tuple[str | int, ...]) -> Any:
    """``child`` over ``base``: tables merge key by key; a list is replaced, or edited
    with ``{ add = [...], remove = [...] }``; anything else is replaced."""
    if isinstance(child, dict) and isinstance(base, dict):
        out = dict(base)
        for k, v in child.items():
            out[k] = _merge(base.get(k), v, ck, (*where, k))
        return out
    return _edit(base, child, ck, where)


def _edit(base: Any, child: Any, ck: _Checker, where: tuple[str | int, ...]) -> Any:
    if not (isinstance(child, dict) and child and set(child) <= {"add", "remove"}):
        return child
    base = [] if base is None else base  # nothing to edit: add to an empty list
    if not isinstance(base, list):
        raise ck.fail(where, "add/remove needs a list to edit", "set the whole value instead")
    add = ck.strings(child.get("add", []), (*where, "add"))
    remove = ck.strings(child.get("remove", []), (*where, "remove"))
    missing = [r for r in remove if r not in base]
    if missing:
        raise ck.fail((*where, "remove"), f"{missing[0]!r} is not in the profile extended",
                      "remove only what the base profile lists")
    return [x for x in base if x not in remove] + [x for x in add if x not in base]


def _extended(text: str, path: Path, seen: tuple[Path, ...]
              ) -> tuple[dict[str, Any], tuple[tuple[Path, str], ...]]:
    """The profile's data with what it extends merged under it, and the texts of the
    profiles extended (nearest first), for locating errors."""
    data = _toml(text, path)
    if "extends" not in data:
        return data, ()
    ck = _Checker(path, text)
    ref = ck.typed(data.pop("extends"), str, ("extends",), 'a profile file, like "py313.toml"')
    base_path = (path.parent / ref).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ck.fail(("extends",), f"{ref} extends {path.name} again: a cycle",
                      "a profile may extend another, never itself")
    if len(seen) >= MAX_EXTENDS:
        raise ck.fail(("extends",), "too many profiles extend each other", "flatten the chain")
    try:
        base_text = base_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ck.fail(("extends",), f"cannot read {ref}: {getattr(exc, 'strerror', exc)}",
                      "give a path relative to this profile's directory") from None
    base, more = _extended(base_text, base_path, (*seen, path.resolve()))
    if "name" not in data:
        raise ck.fail((), "a profile that extends another needs its own 'name'",
                      'add for example name = "py313-nonroot"')
    merged = _merge(base, data, ck, ())
    return merged, ((base_path, base_text), *more)


def parse(text: str, path: Path) -> Profile:
    data, bases = _extended(text, path, ())
    ck = _Checker(path, text, bases)
    ck.keys(data, _TOP_KEYS, ())

    name = ck.typed(data.get("name", path.stem), str, ("name",), "a string")
    if not _PROFILE_NAME.match(name):
        raise ck.fail(("name",), f"{name!r} is not a valid profile name",
                      "use lower-case letters, digits, '.', '_' and '-'")
    if "description" in data:
        ck.typed(data["description"], str, ("description",), "a string")

    if "architectures" not in data:
        raise ck.fail((), "no 'architectures' key", 'add for example architectures = ["amd64", "arm64"]')

    def arch_ok(a: str, where: tuple[str | int, ...]) -> None:
        if a not in ARCHITECTURES:
            close = difflib.get_close_matches(a, ARCHITECTURES, n=1)
            raise ck.fail(where, f"unknown Debian architecture {a!r}",
                          f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(ARCHITECTURES))

    architectures = ck.strings(data["architectures"], ("architectures",), arch_ok)
    if not architectures:
        raise ck.fail(("architectures",), "the list is empty", 'name at least one, e.g. ["amd64"]')

    raw_sources = data.get("source")
    if raw_sources is None:
        raise ck.fail((), "no [[source]] table", 'add [[source]] with archive = "debian" and suite = "trixie"')
    sources: list[SourceSpec] = []
    for where, src in ck.tables(raw_sources, "source", _SOURCE_KEYS, ("archive", "suite")):
        archive = ck.typed(src["archive"], str, (*where, "archive"), "a string")
        if not ARCHIVE_NAME.fullmatch(archive):
            raise ck.fail((*where, "archive"), f"{archive!r} is not an archive name",
                          "an archive name is the last path part of a mirror URL, e.g. 'debian'")
        suite = ck.typed(src["suite"], str, (*where, "suite"), "a string")
        if not suite or "/" in suite or suite.strip() != suite:
            raise ck.fail((*where, "suite"), f"{suite!r} is not a suite name")
        components = ck.strings(src.get("components", ["main"]), (*where, "components"))
        if not components:
            raise ck.fail((*where, "components"), "the list is empty", 'use ["main"]')
        keyring = ck.typed(src.get("keyring", "debian"), str, (*where, "keyring"), "a string")
        written = keyring
        if keyring not in SHIPPED_KEYRINGS:
            if "/" not in keyring and not keyring.endswith((".gpg", ".pgp", ".asc")):
                close = difflib.get_close_matches(keyring, SHIPPED_KEYRINGS, n=1)
                raise ck.fail((*where, "keyring"), f"unknown keyring {keyring!r}",
                              (f"did you mean '{close[0]}'? " if close else "")
                              + "name a shipped keyring (" + ", ".join(SHIPPED_KEYRINGS)
                              + ") or a path to a keyring file")
            kpath = (path.parent / keyring).resolve()
            if not kpath.is_file():
                raise ck.fail((*where, "keyring"), f"keyring file {kpath} does not exist",
                              "a relative path is read from the profile's folder; or name a "
                              "shipped keyring: " + ", ".join(SHIPPED_KEYRINGS))
            keyring = str(kpath)
        binaries = ck.typed(src.get("binaries", True), bool, (*where, "binaries"), "true or false")
        spec = SourceSpec(archive, suite, components, keyring, written, binaries)
        if spec in sources:
            raise ck.fail(where, f"source {archive} {suite} is listed twice", "remove the duplicate")
        sources.append(spec)
    if not sources:
        raise ck.fail(("source",), "no [[source]] tables")
    if not any(s.binaries for s in sources):
        raise ck.fail(("source",), "every [[source]] has binaries = false: no package can be found",
                      "keep binaries = false only on a suite read for its sources")

    pk = data.get("packages")
    if pk is None:
        raise ck.fail((), "no [packages] table", 'add [packages] with include = ["python3.13-minimal", ...]')
    ck.typed(pk, dict, ("packages",), "a table")
    ck.keys(pk, _PACKAGES_KEYS, ("packages",))

    def name_ok(n: str, where: tuple[str | int, ...]) -> None:
        if not PACKAGE_NAME.fullmatch(n):
            raise ck.fail(where, f"{n!r} is not a Debian package name",
                          "package names are lower-case letters, digits and + - .")

    def wanted_ok(item: str, where: tuple[str | int, ...]) -> None:
        m = WANTED.fullmatch(item)
        if m is None:
            raise ck.fail(where, f"{item!r} is not a package name or 'name (op version)'",
                          'write "libssl3t64" or "libssl3t64 (>= 3.5.1)", with << <= = >= >>')
        name_ok(m.group(1), where)
        if m.group(3) and not _VERSION.fullmatch(m.group(3)):
            raise ck.fail(where, f"{item!r}: {m.group(3)!r} is not a Debian version",
                          "a Debian version is [epoch:]upstream[-revision], its upstream "
                          "part starting with a digit")

    if "include" not in pk:
        raise ck.fail(("packages",), "no 'include' list", "name the packages the image needs")
    include = ck.strings(pk["include"], ("packages", "include"), wanted_ok)
    names = [wanted(i).name for i in include]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ck.fail(("packages", "include"), f"{n} is listed twice", "keep one of them")
        seen.add(n)
    if not include:
        raise ck.fail(("packages", "include"), "the list is empty", "name at least one package")
    exclude = ck.strings(pk.get("exclude", []), ("packages", "exclude"), name_ok)
    both = sorted(set(names) & set(exclude))
    if both:
        raise ck.fail(("packages", "exclude"), f"{', '.join(both)} is both included and excluded",
                      "remove it from one of the two lists")
    prefer_raw = ck.typed(pk.get("prefer", {}), dict, ("packages", "prefer"), "a table like { awk = \"mawk\" }")
    prefer: list[tuple[str, str]] = []
    for virtual, provider in prefer_raw.items():
        name_ok(virtual, ("packages", "prefer"))
        ck.typed(provider, str, ("packages", "prefer"), f"a package name for {virtual!r}")
        name_ok(provider, ("packages", "prefer"))
        prefer.append((virtual, provider))
    recommends = ck.typed(pk.get("recommends", False), bool, ("packages", "recommends"), "true or false")
    only_raw = ck.typed(pk.get("only", {}), dict, ("packages", "only"),
                        'a table like { libc-bin = ["usr/lib/locale/C.utf8/**"] }')
    only = []
    for pkg, globs in sorted(only_raw.items()):
        name_ok(pkg, ("packages", "only"))
        if pkg in exclude:
            raise ck.fail(("packages", "only", pkg), f"{pkg} is excluded: nothing of it ships",
                          "remove it from one of the two")
        only.append((pkg, tuple(ck.strings(globs, ("packages", "only", pkg)))))

    python_version = None
    py = data.get("python")
    if py is not None:
        ck.typed(py, dict, ("python",), "a table")
        ck.keys(py, _PYTHON_KEYS, ("python",))
        if "version" in py:
            python_version = ck.typed(py["version"], str, ("python", "version"), 'a string like "3.13"')
            if not re.fullmatch(r"3\.\d{1,2}", python_version):
                raise ck.fail(("python", "version"), f"{python_version!r} is not a Python version",
                              'write it as "3.13"')

    python_build = _python_build(ck, py or {}, python_version, sources, include, names)
    if python_build is not None:
        other = [a for a in architectures if a not in SOURCE_BUILD_ARCHES]
        if other:
            raise ck.fail(("architectures",), f"CPython is built from source for "
                          f"{' and '.join(SOURCE_BUILD_ARCHES)} only, not {', '.join(other)}",
                          f"remove {', '.join(other)}, or use build = \"debian\" (the suite's "
                          "CPython)")
        crossed = [a for a in architectures if a != SOURCE_BUILD_MACHINE]
        if python_build.pgo and crossed:
            raise ck.fail(("python", "pgo"), f"PGO runs the interpreter being built, which "
                          f"cannot run where {', '.join(crossed)} is cross-compiled (on "
                          f"{SOURCE_BUILD_MACHINE})",
                          f"set pgo = false, or build {SOURCE_BUILD_MACHINE} only")
    py_compile = ck.typed((py or {}).get("compile", True), bool, ("python", "compile"), "true or false")
    py_trim = ck.typed((py or {}).get("trim", True), bool, ("python", "trim"), "true or false")
    image = _image(ck, data.get("image", {}))
    users, groups = _accounts(ck, data)
    strip_paths: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    strip_defaults = True
    if "strip" in data:
        st = ck.typed(data["strip"], dict, ("strip",), "a table")
        ck.keys(st, _STRIP_KEYS, ("strip",))
        strip_paths = ck.strings(st.get("paths", []), ("strip", "paths"))
        keep = ck.strings(st.get("keep", []), ("strip", "keep"))
        strip_defaults = ck.typed(st.get("defaults", True), bool, ("strip", "defaults"), "true or false")
    deny, allow = _policy(ck, data.get("policy", {}))
    applets = False
    if "busybox" in data:
        bb = ck.typed(data["busybox"], dict, ("busybox",), "a table")
        ck.keys(bb, ("applets",), ("busybox",))
        applets = ck.typed(bb.get("applets", False), bool, ("busybox", "applets"), "true or false")
        if applets and not {"busybox", "busybox-static"} & set(names):
            raise ck.fail(("busybox", "applets"), "applets of a busybox the profile does not include",
                          'add "busybox" (or "busybox-static") to [packages] include')
    return Profile(
        path=path, name=name, architectures=architectures, sources=tuple(sources),
        include=include, exclude=exclude, prefer=tuple(sorted(prefer)), recommends=recommends,
        only=tuple(only),
        python_version=python_version, python_build=python_build, image=image, users=users, groups=groups,
        strip=strip_paths, keep=keep, strip_defaults=strip_defaults,
        python_compile=py_compile, python_trim=py_trim, policy_deny=deny,
        policy_allow=allow, busybox_applets=applets, extra=data,
    )


def _python_build(ck: _Checker, py: dict[str, Any], version: str | None,
                  sources: list[SourceSpec], include: tuple[str, ...], names: list[str]
                  ) -> PythonBuild | None:
    """``names``: the package names of ``include``'s items, in order."""
    build = ck.typed(py.get("build", "debian"), str, ("python", "build"), '"debian" or "source"')
    if build not in ("debian", "source"):
        raise ck.fail(("python", "build"), f"unknown build {build!r}",
                      '"debian": the suite\'s python3.X packages; "source": CPython '
                      "compiled from its upstream source")
    if build == "debian":
        for key in _SOURCE_BUILD_KEYS:
            if key in py:
                raise ck.fail(("python", key), 'only for build = "source"',
                              f'add build = "source", or remove {key}')
        return None
    if version is None:
        raise ck.fail(("python", "build"), "a source build needs the Python version",
                      'add version = "3.14" to [python]')
    if "source-suite" not in py:
        raise ck.fail(("python",), 'build = "source" needs source-suite',
                      'name the [[source]] suite whose Sources index has the python'
                      f'{version} source package, like source-suite = "forky"')
    suite = ck.typed(py["source-suite"], str, ("python", "source-suite"), "a suite name")
    suites = [s.suite for s in sources]
    if suite not in suites:
        close = difflib.get_close_matches(suite, suites, n=1)
        raise ck.fail(("python", "source-suite"), f"no [[source]] has suite {suite!r}",
                      (f"did you mean '{close[0]}'? " if close else "")
                      + f'add [[source]] with suite = "{suite}" (and binaries = false to take '
                      "only sources from it)")
    flags = {k: ck.typed(py.get(k, k == "readline"), bool, ("python", k), "true or false")
             for k in ("readline", "pgo", "lto")}
    debian = [n for n in names if DEBIAN_PYTHON.fullmatch(n)]
    if debian:
        raise ck.fail(("packages", "include"),
                      f"{', '.join(debian)}: Debian's CPython, which a source build replaces",
                      "remove them: in a profile that extends another, write [packages] "
                      "include = { remove = [" + ", ".join(f'"{i}"' for i, n in zip(include, names, strict=True)
                                                          if n in debian) + "] }")
    if not flags["readline"]:
        gpl = [n for n in names if GPL3_LINE_EDITING.fullmatch(n)]
        if gpl:
            raise ck.fail(("packages", "include"),
                          f"{', '.join(gpl)} is GPL-3 line editing, which readline = false keeps out",
                          "remove it from include (include = { remove = [...] } in a profile "
                          "that extends another), or set readline = true")
    return PythonBuild(suite, flags["readline"], flags["pgo"], flags["lto"])


def _image(ck: _Checker, raw: Any) -> ImageSpec:
    where: tuple[str | int, ...] = ("image",)
    im = ck.typed(raw, dict, where, "a table")
    ck.keys(im, _IMAGE_KEYS, where)
    tagged: list[tuple[str, str]] = []
    if "tag" in im:
        tagged.append((ck.typed(im["tag"], str, ("image", "tag"), "a string"), "tag"))
    if "tags" in im:
        tagged += [(t, "tags") for t in ck.strings(im["tags"], ("image", "tags"))]
    for t, key in tagged:
        if t == "latest":
            raise ck.fail(("image", key), "the tag 'latest' is refused: it names no version",
                          'name what the image is, like "3.13-debian13"')
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", t):
            raise ck.fail(("image", key), f"{t!r} is not a valid image tag",
                          "letters, digits, '_', '.' and '-', at most 128")
    tags = tuple(t for t, _ in tagged)
    entrypoint = tuple(ck.strings(im["entrypoint"], ("image", "entrypoint"))) if "entrypoint" in im else None
    cmd = ck.strings(im.get("cmd", []), ("image", "cmd"))
    env_raw = ck.typed(im.get("env", {}), dict, ("image", "env"), 'a table like { LANG = "C.UTF-8" }')
    env = []
    for k, v in env_raw.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ck.fail(("image", "env"), f"{k!r} is not an environment variable name",
                          "letters, digits and '_', not starting with a digit")
        env.append((k, ck.typed(v, str, ("image", "env"), f"a string for {k}")))
    user = im.get("user", "0")
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    user = ck.typed(user, str, ("image", "user"), 'a user name or id, like "65532" or "nonroot"')
    workdir = ck.typed(im.get("workdir", "/"), str, ("image", "workdir"), "an absolute path")
    if not workdir.startswith("/"):
        raise ck.fail(("image", "workdir"), f"{workdir!r} is not an absolute path", "start it with /")
    labels_raw = ck.typed(im.get("labels", {}), dict, ("image", "labels"), "a table of strings")
    labels = tuple(sorted((k, ck.typed(v, str, ("image", "labels"), "a string")) for k, v in labels_raw.items()))
    compression = ck.typed(im.get("compression", "gzip"), str, ("image", "compression"), '"gzip" or "zstd"')
    if compression not in ("gzip", "zstd"):
        raise ck.fail(("image", "compression"), f"unknown compression {compression!r}", 'use "gzip" or "zstd"')
    sbom = ck.typed(im.get("sbom", ""), str, ("image", "sbom"), '"spdx" or "cyclonedx"')
    if sbom not in ("", "spdx", "cyclonedx"):
        raise ck.fail(("image", "sbom"), f"unknown SBOM format {sbom!r}", 'use "spdx" or "cyclonedx"')
    def relative(item: str, where: tuple[str | int, ...]) -> None:
        if item.startswith("/") or ".." in item.split("/") or not item:
            raise ck.fail(where, f"{item!r} is not a path glob inside the image",
                          'write it without a leading /, like "usr/bin/ping"')

    setuid = ck.strings(im.get("setuid", []), ("image", "setuid"), relative)
    return ImageSpec(tags, entrypoint, cmd, tuple(env), user, workdir, labels, compression, sbom,
                     setuid)


def _accounts(ck: _Checker, data: dict[str, Any]) -> tuple[tuple[UserSpec, ...], tuple[tuple[str, int], ...]]:
    users = []
    for where, u in ck.tables(data.get("user", []), "user", _USER_KEYS, ("name", "uid")):
        name = ck.typed(u["name"], str, (*where, "name"), "a string")
        uid = ck.typed(u["uid"], int, (*where, "uid"), "a number")
        gid = ck.typed(u.get("gid", uid), int, (*where, "gid"), "a number")
        home = ck.typed(u.get("home", f"/home/{name}"), str, (*where, "home"), "an absolute path")
        if not home.startswith("/") or posixpath.normpath(home) != home or "/../" in home + "/":
            raise ck.fail((*where, "home"), f"{home!r} is not a plain absolute path",
                          'like "/home/app"')
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*[$]?", name):
            raise ck.fail((*where, "name"), f"{name!r} is not a user name",
                          "lower-case letters, digits, '_' and '-'")
        shell = ck.typed(u.get("shell", "/sbin/nologin"), str, (*where, "shell"), "a path")
        users.append(UserSpec(name, uid, gid, home, shell))
    groups = []
    for where, g in ck.tables(data.get("group", []), "group", _GROUP_KEYS, ("name", "gid")):
        groups.append((ck.typed(g["name"], str, (*where, "name"), "a string"),
                       ck.typed(g["gid"], int, (*where, "gid"), "a number")))
    return tuple(users), tuple(groups)


def _policy(ck: _Checker, raw: Any) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    pol = ck.typed(raw, dict, ("policy",), "a table")
    ck.keys(pol, _POLICY_KEYS, ("policy",))

    def licence(item: str, where: tuple[str | int, ...]) -> None:
        if not _LICENCE_PATTERN.match(item):
            raise ck.fail(where, f"{item!r} is not an SPDX licence identifier or pattern",
                          'like "GPL-3.0-or-later", "AGPL-3.0-*" or "GPL-2.0-only WITH *"')

    deny = ck.strings(pol.get("deny", []), ("policy", "deny"), licence)
    allow: list[tuple[str, str]] = []
    for where, a in ck.tables(pol.get("allow-packages", []), "allow-packages", _ALLOW_KEYS,
                              ("name", "reason"), ("policy",)):
        name = ck.typed(a["name"], str, (*where, "name"), "a package name")
        reason = ck.typed(a["reason"], str, (*where, "reason"), "a string")
        if not reason.strip():
            raise ck.fail((*where, "reason"), f"the exception for {name} gives no reason",
                          "say why this package may ship despite the policy")
        if any(n == name for n, _ in allow):
            raise ck.fail(where, f"{name} is allowed twice", "keep one entry")
        allow.append((name, reason.strip()))
    return deny, tuple(allow)


def discover(directory: Path) -> list[Path]:
    """Every profile in a directory, sorted by name."""
    return sorted(p for p in directory.glob("*.toml") if p.is_file())
