"""Licences from a Debian ``copyright`` file, as SPDX, attributed to what ships.

A binary package's ``/usr/share/doc/PKG/copyright`` is the only licence record Debian
ships. This module reads it (``parse``), names its licences in SPDX (``spdx``) and
decides which of its paragraphs cover the files that end up in an image (``attribute``).
It is pure: text in, values out, and it never fails on a badly written file: what it
cannot read is noted, and what it cannot name is ``LicenseRef-unknown``.

Reading
    A file whose first paragraph has a ``Format`` field is machine-readable (DEP-5,
    copyright-format 1.0 and its drafts, any URL spelling). The header's ``License``, if
    it gives short names, applies to the whole package; if it is prose it is a summary,
    used only when no Files paragraph covers what ships. A ``Files`` paragraph gives
    whitespace-separated globs and a ``License`` whose first line is an expression and
    whose other lines are text; a paragraph with ``License`` and no ``Files`` is a
    standalone licence text. Field names ignore case, ``#`` lines are comments, `` .`` is
    a blank line of text. Sloppiness is tolerated where nothing is lost: a repeated
    field is joined, a stray unindented line continues the field above, a comma after a
    glob is dropped, and a ``License`` whose first line is prose or empty is detected
    from its text, like a prose file (all noted).

    A file without ``Format`` is prose, and its licences are *detected*: grants of the
    GNU licences ("... under the terms of the GNU General Public License ... either
    version 2 ... or (at your option) any later version", "LGPL (v2.1 or later)"),
    references to ``/usr/share/common-licenses/NAME``, and the texts or names of
    Apache, Artistic, BSD (its clauses counted), MIT, X11, ISC, HPND, zlib, OpenSSL,
    Python/PSF, Sleepycat, MPL, OpenLDAP, Boost, CC0, Creative Commons, the FSF
    permissive notices and public domain. A GNU licence only named where its text is
    ("the complete text ... is in /usr/share/common-licenses/GPL-2"), with no sentence
    granting it, counts as that version only; boilerplate ("see the GNU General Public
    License for more details") counts for nothing. Everything found is ANDed, with a
    note saying it was detected from prose; nothing found is ``LicenseRef-unknown``,
    never an empty result a policy could take as allowed.

Naming
    DEP-5 expressions use ``or``, ``and``, ``with X exception`` and ``+`` for "or any
    later version"; names ignore case. ``and`` binds tighter than ``or`` unless preceded
    by a comma: ``A or B and C`` is ``A OR (B AND C)``, ``A or B, and C`` is
    ``(A OR B) AND C``. ``and/or`` and a bare comma are read as ``and`` (noted). Debian
    short names become SPDX identifiers: ``GPL-2+`` → ``GPL-2.0-or-later``, ``GPL-2`` →
    ``GPL-2.0-only``, ``Expat`` → ``MIT``, ``BSD-3-clause`` → ``BSD-3-Clause``,
    ``Artistic`` → ``Artistic-1.0-Perl`` (the text in /usr/share/common-licenses),
    ``PSF-2`` → ``PSF-2.0``, ``Python`` → ``Python-2.0``, ``zlib/libpng`` → ``Zlib``,
    ``Perl`` → ``Artistic-1.0-Perl OR GPL-1.0-or-later``. A name without a version takes
    the lowest, as DEP-5 says; for the GNU licences, which let the recipient choose any
    version when none is stated, that is the lowest or later (``GPL`` →
    ``GPL-1.0-or-later``). ``+`` on a licence without ``-or-later`` identifiers is
    dropped with a note (validators reject ``MPL-1.1+``). An exception on the SPDX list
    follows ``WITH`` (``GPL-3+ with GCC-exception-3.1`` → ``GPL-3.0-or-later WITH
    GCC-exception-3.1``, ``with Font exception`` → ``WITH Font-exception-2.0``). SPDX
    2.3 allows nothing else after ``WITH``, so another exception is kept beside its
    licence: ``GPL-2+ with OpenSSL exception`` → ``GPL-2.0-or-later AND
    LicenseRef-OpenSSL-exception``; the licence stays visible, and an exception only
    ever grants more. A single token such as ``GPL-2+-with-link-exception`` is read the
    same way. A name SPDX does not list becomes ``LicenseRef-NAME`` (characters outside
    SPDX's ``[A-Za-z0-9.-]`` replaced by ``-``, a final ``+`` by ``-or-later``), noted;
    ``public-domain`` is ``LicenseRef-public-domain``. Both operators commute, so
    expressions are written with their operands sorted and duplicates dropped.

Attributing
    DEP-5 globs name paths in the *source* tree. They are matched against what a package
    ships (its tree paths, less ``usr/share/doc/``: the copyright file is the notice,
    not the work) in three ways:

    * whole path, as DEP-5 says (``*`` and ``?`` match ``/`` too): ``*``, ``*.py``;
    * suffix: drop the glob's leading directories up to its last directory written
      without wildcards that is not a generic name (``usr``, ``lib``, ``src``,
      ``include``, ``bin``, ``share`` ...); the rest must match the shipped path from one
      of its ``/`` boundaries to its end. ``Lib/json/*`` matches
      ``usr/lib/python3.13/json/decoder.py`` through ``json/decoder.py``;
      ``sbin/update-ca-certificates`` matches ``usr/sbin/update-ca-certificates`` (a
      file name written out may keep a generic directory); ``Lib/turtle.py`` does not
      match ``usr/lib/python3.13/turtle.py``, and ``src/lib/*``, ``*.c`` or ``foo.c``
      never match by suffix: a named directory and the file name below it must agree;
    * object name: an ELF object or shared library (``libuuid.so.1.3.0``) is matched by
      a glob for a whole directory or a name (``libuuid/*``, ``keyutils.*``) whose name
      is the object's, with or without ``lib``: the source of that object.

    Each shipped file belongs to the last paragraph that matches it (DEP-5's "last
    match wins"), and each paragraph becomes one ``LicenceUse``:

    * ``all``: ``Files: *``, covering every shipped file no later paragraph claims (the
      header's short names and a prose file cover every shipped file);
    * ``matched``: it claimed shipped files, which it covers;
    * ``compiled``: it matched nothing and names compiled sources (``*.c``, ``*.h``,
      ``*.cc``, ``*.S``, ``*.x`` ...) or, in a package with ELF objects, a whole
      directory or name (``Modules/_decimal/libmpdec/*``, ``divsufsort.*``): it covers
      the package's ELF objects, into which they may be compiled. An object matched to
      its own source directory D (``libuuid/*`` above) is covered only by the compiled
      paragraphs whose globs lie under D (noted); nothing, in a package without ELF
      objects;
    * ``unshipped``: it matched nothing and names only what packages do not install:
      ``debian/``, documentation, tests (``tests/``, ``tst-*.c``, ``*_test.cc``),
      examples, translations, build files and templates (``configure``,
      ``Makefile.in``, ``*.m4``, ``install-sh``, scripts at the top of the tree), other
      platforms' ports, bundled perl tooling. It covers nothing and adds no licence;
    * anything else matched nothing but may ship under another name (data, scripts,
      ``licenses/GPL-*``, a directory in a package without ELF objects): it is counted
      as ``all``, covering the whole package, with a note. Unsure means counted.

    The package's expression is the AND of the distinct expressions of the uses that
    cover at least one file; ``ids`` are every licence, exception and LicenseRef
    identifier in it, sorted. If no use covers anything, every paragraph not
    recognisably unshipped is counted (noted); failing that, ``LicenseRef-unknown``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LicenceUse:
    """One Files paragraph of a copyright file, and what of the shipped package it
    covers."""

    patterns: tuple[str, ...]
    """The paragraph's Files globs as written."""
    expression: str
    """SPDX licence expression (``GPL-3.0-or-later``, ``LGPL-2.1-or-later AND MIT``)."""
    debian: str
    """The License field as written (``GPL-3+``)."""
    files: tuple[str, ...]
    """Shipped tree paths it covers."""
    how: str
    """``all`` (``Files: *``), ``matched`` (globs matched shipped files), ``compiled``
    (source files compiled into the package's ELF objects), ``unshipped`` (covers
    nothing that ships: documentation, tests, build files)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """What ``attribute`` finds for one package: the fields of the audit's
    ``PackageLicences`` that come from its copyright file."""

    expression: str
    ids: tuple[str, ...]
    machine_readable: bool
    uses: tuple[LicenceUse, ...]
    notes: tuple[str, ...]
    possible: tuple[str, ...] = ()
    """Ids only ``compiled`` paragraphs carry (source files that may or may not be
    compiled into the package's objects), when a definite paragraph covers them."""


@dataclass(frozen=True, slots=True)
class _Term:
    id: str
    exception: str | None = None


@dataclass(frozen=True, slots=True)
class _Op:
    op: str  # "AND" | "OR"
    args: tuple[_Node, ...]


_Node = _Term | _Op


@dataclass(frozen=True, slots=True)
class FilesParagraph:
    """A Files paragraph (or, with no patterns, the header's or a prose file's licence)."""

    patterns: tuple[str, ...]
    licence: str
    """The License field's first line as written ("" for prose)."""
    expression: str
    """The licence as an SPDX expression."""
    copyright: str = ""
    text: str = ""
    """The License field's other lines (the licence text, if given here)."""
    tree: _Node = field(default=_Term("LicenseRef-unknown"), repr=False)
    detected: bool = False
    """The licence was detected from prose, not read from short names."""


@dataclass(frozen=True, slots=True)
class Copyright:
    """A copyright file as read: what ``attribute`` needs, and what it could not read."""

    where: str
    machine_readable: bool
    header: FilesParagraph | None
    """The header's License (DEP-5), or what was detected in a prose file."""
    files: tuple[FilesParagraph, ...] = ()
    licences: tuple[tuple[str, str], ...] = ()
    """Standalone License paragraphs: (short name as written, text)."""
    notes: tuple[str, ...] = ()


# --- SPDX names ---------------------------------------------------------------------------

UNKNOWN = "LicenseRef-unknown"
PUBLIC_DOMAIN = "LicenseRef-public-domain"

# SPDX licence identifiers that Debian copyright files use or name closely; matched
# ignoring case. The GNU family is built by rule (_gnu), not listed.
_SPDX_IDS = (
    "0BSD AFL-2.0 AFL-2.1 AFL-3.0 Apache-1.0 Apache-1.1 Apache-2.0 APSL-2.0 Artistic-1.0 "
    "Artistic-1.0-cl8 Artistic-1.0-Perl Artistic-2.0 Beerware blessing BSD-1-Clause "
    "BSD-2-Clause BSD-2-Clause-Patent BSD-2-Clause-Views BSD-3-Clause "
    "BSD-3-Clause-Attribution BSD-3-Clause-Clear BSD-3-Clause-LBNL BSD-4-Clause "
    "BSD-4-Clause-UC BSD-Source-Code BSL-1.0 bzip2-1.0.6 CC-PDDC CC0-1.0 CDDL-1.0 CDDL-1.1 "
    "CECILL-2.0 CECILL-2.1 CECILL-B CECILL-C ClArtistic CNRI-Python CPL-1.0 curl ECL-2.0 "
    "EFL-1.0 EFL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 FSFAP FSFUL FSFULLR FTL HPND "
    "HPND-sell-variant ICU IJG Imlib2 Info-ZIP Inner-Net-2.0 Intel IPA ISC JasPer-2.0 JSON "
    "Libpng libpng-2.0 libtiff LPL-1.02 LPPL-1.0 LPPL-1.1 LPPL-1.2 LPPL-1.3a LPPL-1.3c "
    "MirOS MIT MIT-0 MIT-advertising MIT-CMU MIT-enna MIT-feh MIT-Modern-Variant "
    "MIT-open-group MITNFA MPL-1.0 MPL-1.1 MPL-2.0 MPL-2.0-no-copyleft-exception MS-PL "
    "MS-RL NCSA NTP OFL-1.0 OFL-1.1 OLDAP-1.1 OLDAP-1.2 OLDAP-1.3 OLDAP-1.4 OLDAP-2.0 "
    "OLDAP-2.0.1 OLDAP-2.1 OLDAP-2.2 OLDAP-2.2.1 OLDAP-2.2.2 OLDAP-2.3 OLDAP-2.4 OLDAP-2.5 "
    "OLDAP-2.6 OLDAP-2.7 OLDAP-2.8 OpenSSL OSL-1.0 OSL-2.0 OSL-2.1 OSL-3.0 PHP-3.0 PHP-3.01 "
    "PostgreSQL PSF-2.0 Python-2.0 Python-2.0.1 QPL-1.0 Ruby SGI-B-2.0 SISSL Sleepycat "
    "SMLNJ Spencer-86 Spencer-94 Spencer-99 SSLeay-standalone SunPro TCL TCP-wrappers "
    "Unicode-3.0 Unicode-DFS-2015 Unicode-DFS-2016 Unicode-TOU Unlicense UPL-1.0 Vim W3C "
    "W3C-19980720 W3C-20150513 WTFPL X11 X11-distribute-modifications-variant XFree86-1.1 "
    "Xnet xinetd Zed Zlib zlib-acknowledgement ZPL-1.1 ZPL-2.0 ZPL-2.1 "
    + " ".join(f"CC-BY{v}-{n}" for v in ("", "-SA", "-ND", "-NC", "-NC-SA", "-NC-ND")
               for n in ("1.0", "2.0", "2.5", "3.0", "4.0"))
).split()
_SPDX_BY_LOWER = {i.lower(): i for i in _SPDX_IDS}

# Debian's names (and common spellings) that differ from SPDX's.
_ALIASES = {
    "expat": "MIT", "mit/expat": "MIT", "expat/mit": "MIT", "mit/x11": "X11",
    "x11/mit": "X11", "zlib/libpng": "Zlib", "libpng/zlib": "Zlib",
    "public-domain": PUBLIC_DOMAIN, "publicdomain": PUBLIC_DOMAIN, "pd": PUBLIC_DOMAIN,
    "permissive": "LicenseRef-permissive", "other": "LicenseRef-other",
    "unknown": UNKNOWN, "psf": "PSF-2.0", "psf-2": "PSF-2.0", "psfl": "PSF-2.0",
    "python": "Python-2.0", "python-2": "Python-2.0", "python-cnri": "CNRI-Python",
    "boost": "BSL-1.0", "bsl": "BSL-1.0", "cc0": "CC0-1.0", "ssleay": "SSLeay-standalone",
    "artistic": "Artistic-1.0-Perl", "artistic-1": "Artistic-1.0-Perl",
    "artistic-1.0": "Artistic-1.0-Perl", "freebsd": "BSD-2-Clause-Views",
    "bsd-2-clause-freebsd": "BSD-2-Clause-Views", "sleepycat": "Sleepycat",
    "openssl": "OpenSSL", "w3c": "W3C", "qpl": "QPL-1.0", "wtfpl": "WTFPL",
}
# Families whose SPDX identifiers carry a version; without one DEP-5 implies the lowest.
_LOWEST = {"apache": "1.0", "mpl": "1.0", "cddl": "1.0", "cpl": "1.0", "efl": "1.0",
           "epl": "1.0", "lppl": "1.0", "zpl": "1.1", "ofl": "1.0", "cc-by": "1.0",
           "cc-by-sa": "1.0", "cc-by-nd": "1.0", "cc-by-nc": "1.0", "cc-by-nc-sa": "1.0",
           "cc-by-nc-nd": "1.0", "oldap": "1.1", "afl": "2.0", "osl": "1.0", "eupl": "1.1"}
_FAMILY_ALIAS = {"zope": "zpl"}

_GNU_VERSIONS = {"gpl": ("1", "2", "3"), "lgpl": ("2", "2.1", "3"), "agpl": ("1", "3"),
                 "gfdl": ("1.1", "1.2", "1.3")}
_GNU = re.compile(
    r"(?P<fam>agpl|lgpl|gpl|gfdl|fdl)(?P<niv>-niv)?"
    r"(?:[-_ ]?v?(?P<ver>\d+(?:\.\d+)*))?(?P<niv2>-no-invariants)?"
    r"(?P<suffix>\+|-or-later|-or-newer|-only|[-_ ]?or[-_ ]later)?")

# SPDX-listed exceptions, by a key with "exception" removed, ignoring case.
_EXCEPTIONS = {
    "font": "Font-exception-2.0", "font-2.0": "Font-exception-2.0",
    "gcc-3.1": "GCC-exception-3.1", "gcc-runtime-3.1": "GCC-exception-3.1",
    "gcc-runtime": "GCC-exception-3.1", "gcc-runtime-library": "GCC-exception-3.1",
    "gcc-2.0": "GCC-exception-2.0", "libtool": "Libtool-exception",
    "bison": "Bison-exception-2.2", "bison-2.2": "Bison-exception-2.2",
    "bison-1.24": "Bison-exception-1.24", "classpath": "Classpath-exception-2.0",
    "classpath-2.0": "Classpath-exception-2.0", "llvm": "LLVM-exception",
    "texinfo": "Texinfo-exception", "autoconf-2.0": "Autoconf-exception-2.0",
    "autoconf-3.0": "Autoconf-exception-3.0", "autoconf-generic": "Autoconf-exception-generic",
    "autoconf-generic-3.0": "Autoconf-exception-generic-3.0",
    "autoconf-macro": "Autoconf-exception-macro", "gnat": "GNAT-exception",
    "qt-gpl-1.0": "Qt-GPL-exception-1.0", "qt-lgpl-1.1": "Qt-LGPL-exception-1.1",
    "wxwindows-3.1": "WxWindows-exception-3.1", "u-boot-2.0": "u-boot-exception-2.0",
    "linux-syscall-note": "Linux-syscall-note", "openvpn-openssl": "openvpn-openssl-exception",
    "lzma": "LZMA-exception", "ocaml-lgpl-linking": "OCaml-LGPL-linking-exception",
    "ecos-2.0": "eCos-exception-2.0", "sane": "SANE-exception",
    "universal-foss-1.0": "Universal-FOSS-exception-1.0",
}
# Exceptions whose SPDX version follows the licence's: "GPL-3+ with GCC exception".
_EXCEPTION_BY_GPL = {"gcc": {"3": "GCC-exception-3.1", "2": "GCC-exception-2.0"},
                     "autoconf": {"3": "Autoconf-exception-3.0", "2": "Autoconf-exception-2.0"}}

_NOT_IDSTRING = re.compile(r"[^A-Za-z0-9.-]+")
_OPERATORS = ("and", "or", "with", "and/or")


def _ref(name: str) -> str:
    """``LicenseRef-`` plus ``name`` in SPDX's idstring alphabet."""
    bare = name[len("LicenseRef-"):] if name.lower().startswith("licenseref-") else name
    if bare.endswith("+"):
        bare = bare[:-1] + "-or-later"
    return "LicenseRef-" + (_NOT_IDSTRING.sub("-", bare).strip("-.") or "unknown")


def _exception_key(keyword: str) -> str:
    words = [w for w in re.split(r"[-_\s]+", keyword.lower().strip()) if w]
    return "-".join(w for w in words if w not in ("exception", "the"))


def _exception(keyword: str, base: _Node, notes: list[str]) -> _Node:
    """``base`` with the exception called ``keyword`` (Debian's word, or SPDX's id)."""
    key = _exception_key(keyword)
    spdx_id = _EXCEPTIONS.get(key)
    if spdx_id is None and key in _EXCEPTION_BY_GPL and isinstance(base, _Term):
        m = re.match(r"(?:A|L)?GPL-(\d)", base.id)
        spdx_id = _EXCEPTION_BY_GPL[key].get(m.group(1)) if m else None
    if spdx_id is not None and isinstance(base, _Term) and base.exception is None:
        return _Term(base.id, spdx_id)
    ref = _ref(f"{keyword.strip()}-exception" if key else "exception")
    notes.append(f"exception {keyword.strip()!r} is not on the SPDX exception list: "
                 f"written as {_render(base)} AND {ref}")
    return _op("AND", (base, _Term(ref)))


def _gnu(m: re.Match[str], notes: list[str], name: str) -> _Node | None:
    fam = "gfdl" if m["fam"] == "fdl" else m["fam"]
    ver = m["ver"]
    if ver is not None:
        while ver.endswith(".0") and ver.count(".") >= 1:
            ver = ver[:-2]
        if ver not in _GNU_VERSIONS[fam]:
            return None
    suffix = (m["suffix"] or "").strip("-_ ").lower()
    later = suffix not in ("", "only")
    if ver is None:
        ver = _GNU_VERSIONS[fam][0]
        if not later:
            notes.append(f"{name}: no version given; the GNU licences then allow any "
                         "version, read as the lowest or later")
        later = True
    spdx_ver = ver if "." in ver else ver + ".0"
    niv = "-no-invariants" if (m["niv"] or m["niv2"]) and fam == "gfdl" else ""
    return _Term(f"{fam.upper()}-{spdx_ver}{niv}-{'or-later' if later else 'only'}")


def _versioned(low: str, notes: list[str], name: str) -> str | None:
    """SPDX id for ``Family-N`` names: ``Apache-2`` → ``Apache-2.0``, ``MPL`` → ``MPL-1.0``."""
    m = re.fullmatch(r"([a-z][a-z0-9-]*?)-?v?(\d+(?:\.\d+)*)?", low)
    if not m:
        return None
    fam, ver = m.group(1), m.group(2)
    fam = _FAMILY_ALIAS.get(fam, fam)
    if ver is None:
        if fam not in _LOWEST:
            return None
        notes.append(f"{name}: no version given; DEP-5 implies the lowest, {_LOWEST[fam]}")
        ver = _LOWEST[fam]
    for candidate in (f"{fam}-{ver}", f"{fam}-{ver}.0", f"{fam}-{ver.removesuffix('.0')}"):
        if candidate in _SPDX_BY_LOWER:
            return _SPDX_BY_LOWER[candidate]
    return None


_SPLIT_EXCEPTION = (
    re.compile(r"(?P<base>.+?)[-_]with[-_](?P<exc>.+?)(?:[-_]exception)?", re.I),
    re.compile(r"(?P<base>.+?)[-_](?P<exc>[a-z][a-z0-9.]*)[-_]exception", re.I),
)


def _name(raw: str, notes: list[str], split: bool = True) -> _Node:
    """One short name (no spaces) as SPDX; unknown names become noted LicenseRefs."""
    name = raw.strip().strip(",;").rstrip(".") or raw.strip()
    low = name.lower()
    if low.startswith("licenseref-"):
        return _Term(_ref(name))
    plus = low.endswith("+") and not _GNU.fullmatch(low)
    if plus:
        low = low[:-1]
    if low in _ALIASES:
        return _Term(_ALIASES[low])
    if low == "perl":
        return _op("OR", (_Term("Artistic-1.0-Perl"), _Term("GPL-1.0-or-later")))
    m = _GNU.fullmatch(low)
    if m:
        node = _gnu(m, notes, name)
        if node is not None:
            return node
    else:
        spdx_id = _SPDX_BY_LOWER.get(low) or _versioned(low, notes, name)
        if spdx_id is not None:
            if plus:
                notes.append(f"{name}: SPDX validators reject '+' on licences without "
                             f"-or-later identifiers: written as {spdx_id}")
            return _Term(spdx_id)
    if split:
        for pattern in _SPLIT_EXCEPTION:
            sm = pattern.fullmatch(name)
            if sm:
                sub: list[str] = []
                base = _name(sm["base"], sub, split=False)
                if not (isinstance(base, _Term) and base.id.startswith("LicenseRef-")):
                    notes.extend(sub)
                    return _exception(sm["exc"], base, notes)
    ref = _ref(name)
    notes.append(f"{name!r} is not a known short name: {ref}")
    return _Term(ref)


# --- DEP-5 expressions --------------------------------------------------------------------


def _op(op: str, args: Iterable[_Node]) -> _Node:
    """``op`` over ``args``: nested ``op``s flattened, duplicates dropped, sorted (both
    operators commute, so this is the one spelling of each expression)."""
    flat: list[_Node] = []
    for a in args:
        for b in (a.args if isinstance(a, _Op) and a.op == op else (a,)):
            if b not in flat:
                flat.append(b)
    flat.sort(key=_render)
    if len(flat) == 1:
        return flat[0]
    return _Op(op, tuple(flat))


def _render(node: _Node, parent: str | None = None) -> str:
    if isinstance(node, _Term):
        return f"{node.id} WITH {node.exception}" if node.exception else node.id
    inner = f" {node.op} ".join(_render(a, node.op) for a in node.args)
    return f"({inner})" if parent is not None else inner


def _ids(node: _Node) -> set[str]:
    if isinstance(node, _Term):
        return {node.id} | ({node.exception} if node.exception else set())
    return set().union(*(_ids(a) for a in node.args))


_TOKENS = re.compile(r"\(|\)|,|[^\s,()]+")


class _NotAnExpression(ValueError):
    """The License first line is prose, not short names."""


_MAX_NESTING = 16
"""Parentheses nested deeper than this make a License line prose, not an expression that
would be read by recursing once per level."""


def _expression(line: str, notes: list[str]) -> _Node:
    """A DEP-5 License first line as a tree. Precedence, loosest first: ``, and``;
    ``or``; ``and``; ``with``."""
    tokens = _TOKENS.findall(line)
    if not tokens:
        raise _NotAnExpression(line)
    pos = 0

    def peek(k: int = 0) -> str:
        return tokens[pos + k].lower() if pos + k < len(tokens) else ""

    depth = 0

    def term() -> _Node:
        nonlocal pos, depth
        if peek() == "(":
            if depth == _MAX_NESTING:
                raise _NotAnExpression(line)
            pos += 1
            depth += 1
            inner = comma_and()
            depth -= 1
            if peek() == ")":
                pos += 1
            return inner
        words: list[str] = []
        while pos < len(tokens) and peek() not in (*_OPERATORS, ",", "(", ")"):
            words.append(tokens[pos])
            pos += 1
        if not words:
            raise _NotAnExpression(line)
        if len(words) > 2:
            raise _NotAnExpression(line)
        if len(words) == 2:
            if words[1].lower() in ("license", "licence"):
                words = words[:1]
            else:
                notes.append(f"licence name written with a space, {' '.join(words)!r}: "
                             f"read as {'-'.join(words)!r}")
        node = _name("-".join(words), notes)
        if peek() == "with":
            pos += 1
            kw: list[str] = []
            while pos < len(tokens) and peek() not in ("and", "or", "and/or", ",", ")"):
                word = tokens[pos]
                pos += 1
                if word.lower() == "exception":
                    break
                kw.append(word)
            if not kw:
                raise _NotAnExpression(line)
            node = _exception("-".join(kw), node, notes)
        return node

    def and_() -> _Node:
        nonlocal pos
        args = [term()]
        while peek() in ("and", "and/or"):
            if peek() == "and/or":
                notes.append(f"'and/or' in {line!r} read as 'and'")
            pos += 1
            args.append(term())
        return _op("AND", args)

    def or_() -> _Node:
        nonlocal pos
        args = [and_()]
        while peek() == "or" or (peek() == "," and peek(1) == "or"):
            pos += 2 if peek() == "," else 1
            args.append(and_())
        return _op("OR", args)

    def comma_and() -> _Node:
        nonlocal pos
        args = [or_()]
        while peek() == ",":
            if peek(1) in ("and", "and/or"):
                pos += 2
            else:
                notes.append(f"a comma without 'and' or 'or' in {line!r} read as 'and'")
                pos += 1
            args.append(or_())
        return _op("AND", args)

    node = comma_and()
    if pos != len(tokens):
        raise _NotAnExpression(line)
    return node


def spdx(debian: str) -> str:
    """A DEP-5 licence expression (``GPL-2+ or Artistic, and BSD-3-clause``) as one SPDX
    2.3 expression; unknown names become ``LicenseRef-…``."""
    try:
        return _render(_expression(debian, []))
    except _NotAnExpression:
        return _ref(debian)


# --- prose detection ------------------------------------------------------------------------

_GNU_NAME = re.compile(
    r"GNU\s+(?P<a>Affero\s+)?(?P<l>(?:Lesser|Library)\s+)?General\s+Public\s+Licen[cs]e"
    r"|GNU\s+Free\s+Documentation\s+Licen[cs]e"
    r"|\b(?P<abbr>[AL]?GPL|GFDL)\s*[-(]?\s*(?:v|version\s*)?(?=\d)"
    r"|/usr/share/common-licenses/(?P<path>(?:[AL]?GPL|GFDL)(?:-\d+(?:\.\d+)?)?)", re.I)
_VERSION = re.compile(r"(?:\bversion|\bv\.?)\s*(\d(?:\.\d)?)\b", re.I)
_LATER = re.compile(r"any\s+later\s+version|\bor[-\s]+(?:any\s+)?(?:later|newer|higher)\b"
                    r"|\(at\s+your\s+option\)\s+any\s+later|\d\+", re.I)
_GRANT = re.compile(r"under\s+the\s+terms\s+of|licen[cs]ed\s+under|released\s+under"
                    r"|available\s+under|covered\s+by|redistribute\s+it|is\s+free\s+software",
                    re.I)
_POINTER = re.compile(r"can\s+be\s+found|complete\s+text|full\s+text|copy\s+of|is\s+in\b"
                      r"|found\s+in|common-licenses|for\s+more\s+details|included\s+in"
                      r"|texts?\s+(?:is|are)\s+in", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])|\n\n")
_COMMON = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+-]*[A-Za-z0-9+])")

# (pattern, id): a licence's text or unambiguous name. Applied to whitespace-collapsed text.
_TEXTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.I), i) for p, i in (
        (r"Apache\s+License,?\s+(?:Version\s+)?2\.0|\bApache-2(?:\.0)?\b", "Apache-2.0"),
        (r"Apache\s+License,?\s+(?:Version\s+)?1\.1", "Apache-1.1"),
        (r"Artistic\s+License\s+2\.0|\bArtistic-2(?:\.0)?\b", "Artistic-2.0"),
        (r"Mozilla\s+Public\s+License,?\s+(?:v\.?\s*|version\s+)2\.0|\bMPL-2\.0\b", "MPL-2.0"),
        (r"Mozilla\s+Public\s+License,?\s+(?:v\.?\s*|version\s+)1\.1|\bMPL-1\.1\b", "MPL-1.1"),
        (r"This\s+software\s+is\s+provided\s+['‘`]?as-is['’`]?,\s+without\s+any\s+express"
         r"\s+or\s+implied\s+warranty", "Zlib"),
        (r"\bzlib(?:/libpng)?\s+licen[cs]e", "Zlib"),
        (r"OpenSSL\s+License|developed\s+by\s+the\s+OpenSSL\s+Project", "OpenSSL"),
        (r"accompanied\s+by\s+information\s+on\s+how\s+to\s+obtain\s+complete\s+source"
         r"|Sleepycat\s+License", "Sleepycat"),
        (r"Permission\s+to\s+use,\s+copy,\s+modify,\s+and(?:/or)?\s+distribute\s+this"
         r"\s+software\s+for\s+any\s+purpose\s+with\s+or\s+without\s+fee|\bISC\s+licen[cs]e",
         "ISC"),
        (r"Permission\s+to\s+use,\s+copy,\s+modify,?\s+and\s+distribute\s+this\s+software"
         r"\s+and\s+its\s+documentation\s+for\s+any\s+purpose", "HPND"),
        (r"\b(?:MIT|Expat)(?:/X11)?\s+licen[cs]e", "MIT"),
        (r"Creative\s+Commons\s+Zero|\bCC0\b", "CC0-1.0"),
        (r"Boost\s+Software\s+License", "BSL-1.0"),
        (r"gives\s+unlimited\s+permission\s+to\s+copy\s+and/or\s+distribute\s+it,\s+with"
         r"\s+or\s+without\s+modifications", "FSFULLR"),
        (r"gives\s+unlimited\s+permission\s+to\s+copy,\s+distribute,?\s+and\s+modify\s+it",
         "FSFUL"),
        (r"Copying\s+and\s+distribution\s+of\s+this\s+file,\s+with\s+or\s+without"
         r"\s+modification,\s+are\s+permitted\s+in\s+any\s+medium\s+without\s+royalty",
         "FSFAP"),
        (r"\b0-clause\s+BSD\b|\bBSD-0-clause\b|\b0BSD\b", "0BSD"),
        (r"\b2-clause\s+BSD\b|\bBSD-2-clause\b", "BSD-2-Clause"),
        (r"\b3-clause\s+BSD\b|\bBSD-3-clause\b", "BSD-3-Clause"),
        (r"\b4-clause\s+BSD\b|\bBSD-4-clause\b", "BSD-4-Clause"),
    ))
_BSD = re.compile(r"Redistribution\s+and\s+use\s+in\s+source\s+and\s+binary\s+forms", re.I)
_MIT = re.compile(r"Permission\s+is\s+hereby\s+granted,\s+free\s+of\s+charge,\s+to\s+any"
                  r"\s+person\s+obtaining\s+a\s+copy", re.I)
_PD = re.compile(r"\bpublic[- ]domain\b", re.I)
_PSF = re.compile(r"PYTHON\s+SOFTWARE\s+FOUNDATION\s+LICENSE\s+VERSION\s+2", re.I)
_OLDAP = re.compile(r"OpenLDAP\s+Public\s+License\W+(?:Version\s+)?(\d\.\d(?:\.\d)?)", re.I)
_CC = re.compile(r"Creative\s+Commons\s+Attribution(?P<sa>[- ]Share-?Alike)?\s+(?P<v>\d\.\d)",
                 re.I)
_GCC_RLE = re.compile(r"GCC\s+Runtime\s+Library\s+Exception", re.I)


def _gnu_family(m: re.Match[str]) -> str:
    word = (m["path"] or m["abbr"] or m.group(0)).lower()
    if "documentation" in word or word.startswith("gfdl"):
        return "gfdl"
    if m["a"] or word.startswith("agpl"):
        return "agpl"
    if m["l"] or word.startswith("lgpl"):
        return "lgpl"
    return "gpl"


def _gnu_mentions(text: str) -> tuple[set[str], list[str]]:
    """GNU licences ``text`` grants or points to, as SPDX ids, and notes.

    Per sentence, each mention of a GNU licence takes the version and "or later" stated
    between it and the next mention. A mention is a pointer to the licence text (a
    /usr/share/common-licenses path, or a sentence saying where the text is) or a grant
    (a version is stated, or the sentence licenses something). A pointer only counts,
    as that version only, when no grant names the same licence.
    """
    grants: dict[tuple[str, str | None], set[bool]] = {}
    pointers: set[tuple[str, str]] = set()
    for sentence in _SENTENCE_END.split(text):
        found = list(_GNU_NAME.finditer(sentence))
        for k, m in enumerate(found):
            end = found[k + 1].start() if k + 1 < len(found) else len(sentence)
            start = found[k - 1].end() if k else 0
            after, before = sentence[m.end():end], sentence[start:m.start()]
            family = _gnu_family(m)
            if m["path"]:
                vm = re.search(r"-(\d+(?:\.\d+)?)$", m["path"])
            elif m["abbr"]:
                vm = re.match(r"\s*(\d(?:\.\d)?)", after)
            else:
                vm = _VERSION.search(after[:120]) or _VERSION.search(before[-60:])
            version = vm.group(1).removesuffix(".0") if vm else None
            later = bool(_LATER.search(after[:160]))
            if m["path"] or (_POINTER.search(sentence) and not _GRANT.search(sentence)):
                if version is not None:
                    pointers.add((family, version))
                    if later:
                        grants.setdefault((family, version), set()).add(True)
            elif version is not None or _GRANT.search(sentence):
                grants.setdefault((family, version), set()).add(later)
    ids: set[str] = set()
    notes: list[str] = []
    for (family, version), laters in grants.items():
        if len(laters) == 2:  # a grant restated more tersely elsewhere: "GPLv3"
            laters = {True}
        for later in laters:
            name = family.upper() + (f"-{version}" if version else "") + ("+" if later else "")
            ids |= _ids(_name(name, []))
    for family, version in sorted(pointers):
        if not any(f == family and v in (version, None) for f, v in grants):
            name = f"{family.upper()}-{version}"
            ids |= _ids(_name(name, notes))
            notes.append(f"{name} is only named where its text is, with no sentence granting "
                         "it: read as that version only")
    return ids, notes


def _bsd(text: str) -> set[str]:
    """BSD licence texts in ``text``, by their clauses."""
    out = set()
    for m in _BSD.finditer(text):
        window = text[m.end(): m.end() + 1500]
        stop = re.search(r"THIS\s+SOFTWARE\s+IS\s+PROVIDED|Redistribution\s+and\s+use", window,
                         re.I)
        window = window[: stop.start()] if stop else window
        if re.search(r"advertising\s+materials", window, re.I):
            out.add("BSD-4-Clause")
        elif re.search(r"used\s+to\s+endorse|Neither\s+the\s+name", window, re.I):
            out.add("BSD-3-Clause")
        else:
            out.add("BSD-2-Clause")
    return out


@functools.lru_cache(maxsize=64)
def detect(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The licences prose grants, names or reproduces: sorted SPDX ids
    (``LicenseRef-unknown`` alone when none), and notes."""
    blocks = re.split(r"\n[ \t]*\n", text)
    flat = "\n\n".join(" ".join(b.split()) for b in blocks if b.strip())
    ids, notes = _gnu_mentions(flat)
    for pattern, spdx_id in _TEXTS:
        if pattern.search(flat):
            ids.add(spdx_id)
    ids |= _bsd(flat)
    for m in _MIT.finditer(flat):
        ids.add("X11" if "X Consortium" in flat[m.start(): m.start() + 2000] else "MIT")
    if any(not re.search(r"\bnot\b|n't\b", flat[max(0, m.start() - 25): m.start()], re.I)
           for m in _PD.finditer(flat)):
        ids.add(PUBLIC_DOMAIN)
    if _PSF.search(flat):
        full = re.search(r"BEOPEN", flat) and re.search(r"CNRI\s+LICENSE\s+AGREEMENT", flat)
        ids.add("Python-2.0" if full else "PSF-2.0")
    for m in _OLDAP.finditer(flat):
        ids.add(_SPDX_BY_LOWER.get(f"oldap-{m.group(1)}", _ref(f"OLDAP-{m.group(1)}")))
    for m in _CC.finditer(flat):
        cc = f"cc-by{'-sa' if m['sa'] else ''}-{m['v']}"
        ids.add(_SPDX_BY_LOWER.get(cc, _ref(cc)))
    for m in _COMMON.finditer(flat):
        name = m.group(1).rstrip(".")
        if name.upper() == "BSD":  # Debian's file is the University of California's 3-clause
            ids.add("BSD-3-Clause")
        elif not re.match(r"(?:[AL]?GPL|GFDL)\b", name, re.I):
            ids |= _ids(_name(name, notes))
    if _GCC_RLE.search(flat) and "GPL-3.0-or-later" in ids:
        ids.add("GCC-exception-3.1")
    if not ids:
        return (UNKNOWN,), tuple(notes)
    return tuple(sorted(ids)), tuple(notes)


def _detected_tree(ids: Sequence[str]) -> _Node:
    terms: list[_Node] = [_Term(i) for i in ids if i != "GCC-exception-3.1"]
    if "GCC-exception-3.1" in ids:
        terms.append(_Term("GPL-3.0-or-later", "GCC-exception-3.1"))
    return _op("AND", terms)


# --- DEP-5 files --------------------------------------------------------------------------

_FIELD = re.compile(r"([^\s:#][^\s:]*)[ \t]*:(.*)")
_FORMAT_PATHS = ("copyright-format", "dep5", "dep-5", "copyrightformat")


def _paragraphs(text: str, notes: list[str]) -> list[dict[str, list[str]]]:
    """Lenient deb822: paragraphs of lowercased field names to their value lines."""
    out: list[dict[str, list[str]]] = []
    cur: dict[str, list[str]] = {}
    key: str | None = None
    stray = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, None
            continue
        m = _FIELD.fullmatch(line) if line[0] not in " \t" else None
        if m:
            key = m.group(1).lower()
            if key in cur:
                notes.append(f"field {m.group(1)} repeated in one paragraph: values joined")
                cur[key].append(m.group(2).strip())
            else:
                cur[key] = [m.group(2).strip()]
        elif key is not None:
            if line[0] not in " \t":
                stray = True
            body = line.strip()
            cur[key].append("" if body == "." else body)
        else:
            stray = True
    if cur:
        out.append(cur)
    if stray:
        notes.append("lines that are neither fields nor continuations: read as continuations")
    return out


def _licence_field(lines: list[str], what: str, notes: list[str]) -> FilesParagraph:
    first, body = lines[0], "\n".join(lines[1:]).strip("\n")
    tree: _Node
    mine: list[str] = []
    try:
        if not first:
            raise _NotAnExpression(first)
        tree = _expression(first, mine)
        notes.extend(mine)
    except _NotAnExpression:
        ids, more = detect(f"{first}\n{body}")
        notes.extend(more)
        tree = _detected_tree(ids)
        shown = f"{first[:40]!r}" if first else "an empty first line"
        if what == "header":
            notes.append(f"the header's License has {shown} instead of short names: read as "
                         "a summary, counted only if no Files paragraph covers what ships")
        else:
            notes.append(f"{what}: License has {shown} instead of short names; detected "
                         f"from its text: {_render(tree)}")
        return FilesParagraph((), first, _render(tree), "", body, tree, detected=True)
    return FilesParagraph((), first, _render(tree), "", body, tree)


def parse(text: str | bytes, where: str) -> Copyright:
    """Read a copyright file (``where`` names it, for messages). Never fails: what
    cannot be read is noted, and what cannot be named is ``LicenseRef-unknown``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    notes: list[str] = []
    paragraphs = _paragraphs(text, notes)
    head = paragraphs[0] if paragraphs else {}
    fmt = head.get("format") or head.get("format-specification")
    if fmt is None:
        return _prose(text, where)
    url = " ".join(fmt).strip()
    if not any(p in url.lower() for p in _FORMAT_PATHS):
        notes.append(f"unknown Format {url!r}: read as copyright-format 1.0")
    header = None
    if "license" in head:
        header = _licence_field(head["license"], "header", notes)
    files: list[FilesParagraph] = []
    standalone: list[tuple[str, str]] = []
    for number, par in enumerate(paragraphs):
        if "files" not in par:
            if number and "license" in par:
                lines = par["license"]
                standalone.append((lines[0], "\n".join(lines[1:]).strip("\n")))
            continue
        patterns = tuple(p.rstrip(",") for p in " ".join(par["files"]).split()
                         if p.rstrip(","))
        what = f"Files {' '.join(patterns)[:60]}"
        if "license" not in par:
            notes.append(f"{what}: no License field: {UNKNOWN}")
            lic = FilesParagraph((), "", UNKNOWN, tree=_Term(UNKNOWN))
        else:
            lic = _licence_field(par["license"], what, notes)
        files.append(FilesParagraph(patterns, lic.licence, lic.expression,
                                    "\n".join(par.get("copyright", [])).strip(), lic.text,
                                    lic.tree, lic.detected))
    texts = {name.lower(): body for name, body in standalone}
    for p in (*files, *((header,) if header else ())):
        if isinstance(p.tree, _Term) and p.tree.id == "MIT" and not p.detected:
            body = p.text or texts.get(p.licence.lower(), "")
            if body and not _MIT.search(re.sub(r"\s+", " ", body)):
                notes.append(f"License {p.licence!r} maps to MIT, but its text is not the "
                             "MIT (Expat) permission notice")
    return Copyright(where, True, header, tuple(files), tuple(standalone),
                     tuple(dict.fromkeys(notes)))


def _prose(text: str, where: str) -> Copyright:
    ids, notes = detect(text)
    tree = _detected_tree(ids)
    expression = _render(tree)
    if ids == (UNKNOWN,):
        said = f"not machine-readable and no licence recognised in its prose: {UNKNOWN}"
    else:
        said = f"not machine-readable (no Format field): detected from prose: {expression}"
    header = FilesParagraph((), "", expression, "", "", tree, detected=True)
    return Copyright(where, False, header, notes=tuple(dict.fromkeys((said, *notes))))


# --- attribution --------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_GENERIC_DIRS = _words(
    "usr lib lib32 lib64 libexec bin sbin share include src source sources etc var opt "
    "local data common main core")
_UNSHIPPED_DIRS = _words(
    "debian doc docs documentation man man1 man3 man5 man8 manual manuals info html texinfo "
    "test tests testing testsuite testdata test-data test_cases test-cases testcases t "
    "unittest unittests regress regression "
    "examples example samples sample demo demos benchmark benchmarks bench fuzz fuzzing "
    "oss-fuzz po m4 build-aux autom4te.cache ci .ci .github .gitlab .circleci win32 win64 "
    "windows vms os2 msdos amiga macos macosx vc vc6 vc7 vc8 vc9 vc10 visualc msvc watcom "
    "nintendods qnx perl")
_UNSHIPPED_NAMES = re.compile(
    r"(?:readme|changelog|changes|news|authors|thanks|todo|copying|license|licence|install"
    r"|makefile|gnumakefile|configure|aclocal\.m4|install-sh|ltmain\.sh|config\.guess"
    r"|config\.sub|config\.rpath|depcomp|missing|compile|mkinstalldirs|mdate-sh|texinfo\.tex"
    r"|ylwrap|test-driver|ar-lib|py-compile|move-if-change|gitlog-to-changelog|git-version-gen"
    r"|libtool-ldflags|ltconfig|about-nls"
    r"|cmakelists\.txt|meson\.build|meson_options\.txt|meson\.options|setup\.py|setup\.cfg"
    r"|pyproject\.toml|tox\.ini|doxyfile|\.travis\.yml|appveyor\.yml|autogen\.sh|bootstrap)"
    r"(?:[._-].*)?"
    r"|(?:tst|test|tests|check|bench)[-_].*|.*[-_](?:test|tests|unittest)\.[^.]*|runtests\..*",
    re.I)
_UNSHIPPED_EXT = _words(
    "texi texinfo info htm html md markdown rst pdf ps dvi tex sgml docbook man pod am "
    "in ac m4 mk cmake spec vcproj vcxproj sln dsp dsw bat cmd yml yaml po pot gmo patch diff "
    "doxy test tests 1 2 3 4 5 6 7 8 9")
# Scripts at the top of a source tree are build and maintenance tools.
_TOP_SCRIPT_EXT = _words("sh pl py awk sed rb tcl ps1")
_SOURCE_EXT = _words(
    "c h cc cpp cxx c++ hh hpp hxx h++ ipp tcc inl s asm f f90 f95 for rs go m mm d adb ads y "
    "yy l ll def sym map lds ld inc pyx pxd pxi cu x")
_WILD = re.compile(r"(?<!\\)[*?]")
_SHARED_OBJECT = re.compile(r"\.so(?:\.[0-9.]+)?$")


def _glob(pattern: str) -> str:
    """A DEP-5 glob as a regex for ``fullmatch``: ``*`` and ``?`` match ``/`` too; ``\\``
    escapes.

    Each fixed piece between two ``*`` is matched at its first place after the piece
    before it, in an atomic group: no later place could let more of the glob match, and a
    glob with many ``*`` stays fast where a ``.*`` for each would backtrack through every
    way of placing them (``**********x`` took 18 s against one 38-character path)."""
    pieces: list[list[str]] = [[]]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            pieces[-1].append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            pieces.append([])
        else:
            pieces[-1].append("." if c == "?" else re.escape(c))
        i += 1
    parts = ["".join(piece) for piece in pieces]
    if len(parts) == 1:
        return parts[0]
    middle = "".join(f"(?>.*?{part})" for part in parts[1:-1] if part)
    return f"{parts[0]}{middle}.*{parts[-1]}"


@dataclass(frozen=True, slots=True)
class _Matcher:
    exact: re.Pattern[str]
    suffix: re.Pattern[str] | None
    directory: str | None
    """The named directory a whole-directory glob (``Lib/json/*``) covers."""
    stem: str | None
    """The name every file of a name glob (``keyutils.*``, ``tdb*``) starts with."""


@functools.lru_cache(maxsize=8192)
def _matcher(pattern: str) -> _Matcher:
    p = pattern.removeprefix("./").lstrip("/")
    if p.endswith("/"):
        p += "*"
    comps = p.split("/")
    suffix = directory = None
    literal_file = not _WILD.search(comps[-1])
    for k in range(len(comps) - 2, -1, -1):
        c = comps[k]
        if _WILD.search(c):
            continue
        if c.lower() not in _GENERIC_DIRS or (literal_file and k == len(comps) - 2):
            suffix = re.compile(r"(?:.*/)?" + _glob("/".join(comps[k:])), re.S)
            if all(set(t) <= {"*"} for t in comps[k + 1:]) and c.lower() not in _GENERIC_DIRS:
                directory = c
            break
    m = re.fullmatch(r"([A-Za-z0-9_+-]+)(?:\.\*|\*)", comps[-1])
    return _Matcher(re.compile(_glob(p), re.S), suffix, directory, m.group(1) if m else None)


def _kind(pattern: str) -> str:
    """What a glob that matched nothing names: ``unshipped`` (docs, tests, build files,
    debian/), ``source`` (compiled sources), ``directory`` (a whole directory, or every
    extension of a name) or ``unknown``."""
    comps = pattern.removeprefix("./").strip("/").split("/")
    if any(c.lower() in _UNSHIPPED_DIRS for c in comps[:-1]):
        return "unshipped"
    last = comps[-1]
    ext = last.rsplit(".", 1)[1].lower() if "." in last[1:] else ""
    name = last.lstrip("*?")
    if _UNSHIPPED_NAMES.fullmatch(name) or ext in _UNSHIPPED_EXT or last.startswith("."):
        return "unshipped"
    if len(comps) == 1 and ext in _TOP_SCRIPT_EXT:
        return "unshipped"
    if ext in _SOURCE_EXT:
        return "source"
    tail = _WILD.split(last)[-1] if _WILD.search(last) else None
    if tail is not None and ("." not in tail or last.endswith(".*")):
        return "directory"  # dir/*, name.*, name*: every file there may be a source
    return "unknown"


def _stems(path: str) -> set[str]:
    """Directory names an ELF object or shared library may be built from:
    ``libuuid.so.1`` → {libuuid, uuid}."""
    stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return {stem, stem.removeprefix("lib")} - {""}


def attribute(c: Copyright, shipped: Sequence[str], elf: Collection[str],
              package: str) -> Attribution:
    """Which of ``c``'s paragraphs cover ``shipped`` (tree paths) and ``elf`` (the ELF
    objects among them); see the module's rules."""
    def norm(paths: Iterable[str]) -> list[str]:
        return sorted({p.removeprefix("./").lstrip("/") for p in paths})

    paths = [p for p in norm(shipped) if not p.startswith("usr/share/doc/")]
    objects = [p for p in norm(elf) if not p.startswith("usr/share/doc/")]
    named = set(objects) | {p for p in paths if _SHARED_OBJECT.search(p)}
    notes = list(c.notes)
    uses: list[LicenceUse] = []
    trees: list[_Node] = []
    maybe: list[_Node] = []
    fallback: list[_Node] = []
    covered: set[str] = set()

    def use(par: FilesParagraph, files: Sequence[str], how: str) -> None:
        uses.append(LicenceUse(par.patterns, par.expression, par.licence, tuple(files), how))
        if files and how == "compiled":
            maybe.append(par.tree)
        elif files:
            trees.append(par.tree)
            covered.update(files)

    if c.header is not None:
        if not (c.machine_readable and c.header.detected):
            use(c.header, paths, "all")
        fallback.append(c.header.tree)

    # Last match wins: owner[path] = (paragraph, directory it was matched through).
    matchers = [[_matcher(p) for p in par.patterns] for par in c.files]
    owner: dict[str, tuple[int, str | None]] = {}
    hit: list[set[int]] = [set() for _ in c.files]
    for path in paths:
        stems = _stems(path) if path in named else set()
        for i, ms in enumerate(matchers):
            for j, m in enumerate(ms):
                if m.exact.fullmatch(path):
                    owner[path] = (i, None)
                elif ((m.suffix and m.suffix.fullmatch(path)) or m.directory in stems
                      or m.stem in stems):
                    owner[path] = (i, m.directory)
                else:
                    continue
                hit[i].add(j)
    claimed: dict[int, list[str]] = {}
    built_from: dict[str, str] = {}  # ELF object → the source directory it was matched to
    for path, (i, directory) in owner.items():
        claimed.setdefault(i, []).append(path)
        if directory is not None and path in objects:
            built_from[path] = directory
    set_aside: dict[str, int] = {}

    for i, par in enumerate(c.files):
        label = " ".join(par.patterns)
        unmatched = [p for j, p in enumerate(par.patterns) if j not in hit[i]]
        kinds = {_kind(p) for p in unmatched}
        if "directory" in kinds and not objects:
            kinds = (kinds - {"directory"}) | {"unknown"}
        compiled: list[str] = []
        if kinds & {"source", "directory"}:
            dirs = {d for p in unmatched if _kind(p) in ("source", "directory")
                    for d in p.split("/")[:-1]}
            for o in objects:
                if o not in built_from or built_from[o] in dirs:
                    compiled.append(o)
                else:
                    set_aside[o] = set_aside.get(o, 0) + 1
        mine = sorted({*claimed.get(i, ()), *compiled})
        if claimed.get(i):
            use(par, mine, "all" if "*" in par.patterns else "matched")
        elif objects and kinds & {"source", "directory"}:
            use(par, mine, "compiled")  # what else it names is taken as sources too
        elif "unknown" in kinds:
            use(par, paths, "all")
            notes.append(f"Files {label}: matched nothing shipped and names neither sources "
                         "nor unshipped files: counted for the whole package")
        elif kinds & {"source", "directory"}:
            use(par, mine, "compiled")
        else:
            if hit[i]:
                notes.append(f"Files {label}: all it matched is claimed by later paragraphs")
            use(par, (), "unshipped")
        if kinds != {"unshipped"} or hit[i]:
            fallback.append(par.tree)
    for o, n in sorted(set_aside.items()):
        notes.append(f"{o}: matched to the source directory {built_from[o]}/, so {n} source "
                     "paragraph(s) outside it are not counted for it")
    possible: set[str] = set()
    if maybe:
        if any(o not in covered for o in objects):
            # Nothing definite covers some object: what may be compiled in is all there is.
            trees += maybe
        else:
            definite = _ids(_op("AND", trees))
            possible = _ids(_op("AND", maybe)) - definite
            if possible:
                notes.append("source files under " + ", ".join(sorted(possible)) + " may or "
                             "may not be compiled into what ships: reported as possible")
    if not trees:
        if fallback and not paths:
            trees = fallback
            notes.append(f"{package} ships nothing outside usr/share/doc/: counted with the "
                         "licences of its copyright file")
        elif fallback:
            trees = fallback
            notes.append(f"no paragraph could be attributed to what {package} ships: every "
                         "paragraph not naming unshipped files counted")
        else:
            trees = [_Term(UNKNOWN)]
            notes.append(f"no paragraph covers what {package} ships: {UNKNOWN}")
    total = _op("AND", trees)
    return Attribution(_render(total), tuple(sorted(_ids(total))), c.machine_readable,
                       tuple(uses), tuple(dict.fromkeys(notes)), tuple(sorted(possible)))
