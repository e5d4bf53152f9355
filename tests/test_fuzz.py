"""Property-based fuzzing of the Debian format parsers.

Each parser gets arbitrary input and damaged copies of valid input (bytes or characters
flipped, spans cut, inserted or duplicated, the end cut off). The only outcomes allowed
are a value or a ``ComposeError``: any other exception escaping is a bug in the parser.
Valid input must also keep its meaning: deb822, relations, Release files and clearsigned
messages read back what was written, versions order as dpkg orders them, and a package
that reads also repacks to the same package.

The budget is fixed and the run deterministic (the ``ci`` profile). ``COMPOSE_FUZZ=long``
selects the ``long`` profile: many more examples, randomised, for runs by hand.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import string
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from composer.debian import copyright, deb, deb822, relation, version
from composer.debian.deb822 import PackagesFile
from composer.debian.release import parse_date, parse_release, split_clearsigned
from composer.errors import ComposeError, FormatError, TrustError
from composer.model import Relation
from tests import fakearchive
from tests.buildhelp import ar_members
from tests.fakearchive import FakeArchive

settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, max_examples=500, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("long", deadline=None, database=None, max_examples=20_000)
PROFILE = "long" if os.environ.get("COMPOSE_FUZZ") == "long" else "ci"
FUZZ = settings.get_profile(PROFILE)
"""The settings every test here runs with (a decorator)."""

T = TypeVar("T")


def outcome(call: Callable[[], T]) -> T | ComposeError:
    """``call()``, or the ComposeError it raised; any other exception propagates."""
    try:
        return call()
    except ComposeError as error:
        assert error.message, "a ComposeError without a message"
        return error


# --------------------------------------------------------------------------------------
# Damage: the same few edits for bytes and for text.

_BYTE_EDITS = st.sampled_from(["set", "flip", "delete", "insert", "duplicate", "truncate"])
# Where an edit lands is drawn uniformly: Hypothesis's own integers favour small values,
# and nearly every edit would break the first header.
_RANDOM = st.randoms(use_true_random=False)
_INTERESTING_BYTES = b"\x00\x01\x7f\x80\xff \n\t\r-:,|()<>=!~+./0179LKx5"


@st.composite
def damaged_bytes(draw: st.DrawFn, seeds: list[bytes], max_edits: int = 6) -> bytes:
    """One of ``seeds`` with 1 to ``max_edits`` random edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    where = draw(_RANDOM)
    for _ in range(draw(st.integers(1, max_edits))):
        edit = draw(_BYTE_EDITS)
        at = where.randrange(max(len(data), 1))
        if edit == "set" and data:
            data[at] = draw(st.sampled_from(_INTERESTING_BYTES) | st.integers(0, 255))
        elif edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 600))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif edit == "truncate":
            del data[at:]
    return bytes(data)


_STRUCTURE = " \t\n:#,|()[]<>=!~+-._/*0123456789abcxyzABC"
_CHARS = st.sampled_from(_STRUCTURE) | st.characters()


@st.composite
def damaged_text(draw: st.DrawFn, seeds: list[str], max_edits: int = 6) -> str:
    """One of ``seeds`` with 1 to ``max_edits`` random edits of characters."""
    text = draw(st.sampled_from(seeds))
    where = draw(_RANDOM)
    for _ in range(draw(st.integers(1, max_edits))):
        edit = draw(_BYTE_EDITS)
        at = where.randrange(len(text) + 1)
        if edit in ("set", "flip"):
            text = text[:at] + draw(_CHARS) + text[at + 1 :]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 80)) :]
        elif edit == "insert":
            text = text[:at] + draw(st.text(_CHARS, min_size=1, max_size=8)) + text[at:]
        elif edit == "duplicate":
            text = text[:at] + text[at : at + draw(st.integers(1, 64))] + text[at:]
        else:
            text = text[:at]
    return text


def texts(seeds: list[str]) -> st.SearchStrategy[str]:
    """Arbitrary text, text made of the formats' own characters, and damaged seeds."""
    return st.one_of(st.text(), st.text(st.sampled_from(_STRUCTURE)), damaged_text(seeds))


# --------------------------------------------------------------------------------------
# Seeds: small valid inputs, built once.


def _ar(*members: tuple[str, bytes]) -> bytes:
    return fakearchive._ar(members)


def _tar(*members: tuple[str, bytes, bytes, str], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar of (name, type, data, link target), cut after its end-of-archive blocks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mtime = kind, len(data), link, 1
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    raw = buffer.getvalue().rstrip(b"\x00")
    return raw + bytes(-len(raw) % 512 + 1024)


_CONTROL = b"Package: fuzz\nVersion: 1.0-1\nArchitecture: amd64\nDescription: x\n y\n"
_CONTROL_TAR = _tar(("./", tarfile.DIRTYPE, b"", ""), ("./control", tarfile.REGTYPE, _CONTROL, ""))
_LONG = "./usr/share/" + "long-directory-name/" * 6
DATA_TARS = [
    _tar(("./", tarfile.DIRTYPE, b"", ""), ("./usr/", tarfile.DIRTYPE, b"", ""),
         ("./usr/x", tarfile.REGTYPE, b"hello", ""),
         ("./usr/l", tarfile.SYMTYPE, b"", "x"), ("./usr/h", tarfile.LNKTYPE, b"", "./usr/x")),
    _tar((_LONG, tarfile.DIRTYPE, b"", ""), (_LONG + "f" * 120, tarfile.REGTYPE, b"y" * 700, ""),
         ("./s", tarfile.SYMTYPE, b"", "t" * 150), ("./h", tarfile.LNKTYPE, b"", _LONG + "f" * 120),
         fmt=tarfile.PAX_FORMAT),
    _tar(("usr/", tarfile.DIRTYPE, b"", ""), ("usr/" + "n" * 140, tarfile.REGTYPE, b"z", "")),
]


def _fake_archive() -> tuple[list[bytes], bytes]:
    """Packages built by tests.fakearchive in every compression, and their index."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = FakeArchive(Path(tmp))
        debs = []
        for i, (data_c, control_c) in enumerate(
            [("none", "none"), ("xz", "xz"), ("zst", "gz"), ("gz", "zst"), ("bz2", "none")]
        ):
            record = archive.add(
                "trixie", f"libfuzz{i}", f"1:1.{i}-1", depends="libc6 (>= 2.36) | libc",
                provides="fuzz (= 1)", files={f"usr/lib/libfuzz{i}.so.1": b"\x7fELF"},
                symlinks={f"usr/lib/libfuzz{i}.so": f"libfuzz{i}.so.1"},
                data_compression=data_c, control_compression=control_c,  # type: ignore[arg-type]
            )
            debs.append(record.path.read_bytes())
        return debs, archive.packages_index("trixie", "main", "amd64")


FAKE_DEBS, FAKE_PACKAGES = _fake_archive()
DEBS = FAKE_DEBS + [
    _ar(("debian-binary", b"2.0\n"), ("control.tar", _CONTROL_TAR), ("data.tar", data))
    for data in DATA_TARS
]

PACKAGES_SEEDS = [
    FAKE_PACKAGES,
    b"Package: a\nVersion: 1\nProvides: v (= 2), w:any\nDepends: b | c\n\n"
    b"Package: b\nVersion: 1\nProvides: v\n\nPackage: a\nVersion: 2\n",
    "Package: \u00e9t\u00e9\nVersion: 1\nDescription: caf\u00e9\n \u00e9\n".encode(),
]

WHERE = "fuzz 1.0-1 amd64"
MAX_SIZE = 1 << 20


# --------------------------------------------------------------------------------------
# deb822


DEB822_SEEDS = [p.decode() for p in PACKAGES_SEEDS] + [
    "# a comment\nTypes: deb\nURIs: http://mirror.example.invalid/debian\nSuites: trixie\n\n"
    "Types: deb-src\nComponents: main\n contrib\n .\n non-free\n",
]


@FUZZ
@given(texts(DEB822_SEEDS), st.booleans())
def test_deb822_parse(text: str, comments: bool) -> None:
    got = outcome(lambda: deb822.parse(text, "fuzz", comments=comments))
    if isinstance(got, ComposeError):
        assert isinstance(got, FormatError) and got.message.startswith("fuzz")
        return
    for paragraph in got:
        assert paragraph and all(name and ":" not in name for name in paragraph)
    if not comments:
        one = outcome(lambda: deb822.parse_one(text, "fuzz"))
        assert [one] == got if len(got) == 1 else isinstance(one, FormatError)


_FIELD_NAME = st.builds(str.__add__, st.sampled_from(string.ascii_letters),
                        st.text(string.ascii_letters + string.digits + "-", max_size=12))
_LINE = st.text(st.sampled_from(string.ascii_letters + string.digits + " ():,.|<>=~+-/\u00e9"),
                max_size=20)
_MORE_LINE = st.builds(str.__add__, _LINE, st.sampled_from("a.~\u00e9"))


@st.composite
def paragraphs(draw: st.DrawFn) -> list[dict[str, str]]:
    """Paragraphs of fields, values with continuation lines ("." for a blank one)."""
    out = []
    for fields in draw(st.lists(st.dictionaries(_FIELD_NAME, st.tuples(
            _LINE.map(str.strip), st.lists(_MORE_LINE, max_size=3)
    ), min_size=1, max_size=5), max_size=4)):
        out.append({k: "\n".join([first, *more]) for k, (first, more) in fields.items()})
    return out


def render(paras: list[dict[str, str]]) -> str:
    blocks = []
    for para in paras:
        lines = []
        for name, value in para.items():
            first, *more = value.split("\n")
            lines.append(f"{name}: {first}".rstrip())
            lines += [f" {line}" for line in more]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


@FUZZ
@given(paragraphs())
def test_deb822_reads_back_what_was_written(paras: list[dict[str, str]]) -> None:
    assert deb822.parse(render(paras)) == paras


# --------------------------------------------------------------------------------------
# PackagesFile


def exercise(pf: PackagesFile, scanned: bool = True) -> None:
    """Every query a resolver makes, for every name the file holds. When the index is the
    scan's (not a damaged sidecar's), the paragraph found under a name is that package's."""
    for name in pf.offsets:
        for off in pf.offsets.get(name) or []:
            got = outcome(lambda: pf.stanza(off))  # noqa: B023 - called at once
            if scanned and isinstance(got, dict):
                assert got["Package"].split("\n")[0] == name.decode().strip()
    for offs in pf.virtuals.values():
        for off in offs:
            assert isinstance(outcome(lambda: pf.stanza(off)), (dict, FormatError))  # noqa: B023
    names = outcome(lambda: list(pf.names()))
    if isinstance(names, ComposeError):
        return
    if scanned:
        assert len(pf) == sum(len(pf.lookup(n)) for n in names)
    for name in names[:20]:
        pf.providing(name)
        found = pf.first_mention(name)
        assert found is None or 0 <= found[0] <= found[2] < len(pf.data)


@FUZZ
@given(st.one_of(st.binary(), damaged_bytes(PACKAGES_SEEDS)))
@example(b"Package: \xff\n")
@example(b"\nProvides: \x00")
@example(b"Package: abc")
def test_packages_file(data: bytes) -> None:
    pf = outcome(lambda: PackagesFile(data, "fuzz"))
    if isinstance(pf, ComposeError):
        return
    exercise(pf)
    # The sidecar of a scan always loads, and gives the scan back.
    again = PackagesFile(data, "fuzz", pf.sidecar())
    assert not isinstance(again.offsets, dict)
    assert {k: again.offsets.get(k) for k in again.offsets} == pf.offsets
    assert {k: again.virtuals.get(k) for k in again.virtuals} == pf.virtuals


def _valid_sidecars() -> list[bytes]:
    return [PackagesFile(p, "seed").sidecar() for p in PACKAGES_SEEDS]


@FUZZ
@given(st.sampled_from(PACKAGES_SEEDS),
       st.one_of(st.binary(), damaged_bytes(_valid_sidecars())))
def test_packages_file_with_a_damaged_sidecar(data: bytes, sidecar: bytes) -> None:
    pf = outcome(lambda: PackagesFile(data, "fuzz", sidecar))
    assert not isinstance(pf, ComposeError)  # a valid file always scans
    exercise(pf, scanned=False)


# --------------------------------------------------------------------------------------
# Relations

RELATION_SEEDS = [
    "a (>= 1.0), b:any | c (<< 2:1~) , d:native (= 3), e:amd64",
    "x [amd64 arm64], y [!amd64], z [linux-any], w [any-arm64]",
    "a <!nocheck>, b <nocheck>, c <!nocheck !nodoc> <stage1>, d | e <!nocheck>",
    "libc6 (>= 2.36),\n libgcc-s1 (>= 3.0), python3:any (<< 3.14),",
]
ARCHES = st.sampled_from([None, "amd64", "arm64", "i386"])
PROFILES = st.frozensets(st.sampled_from(["nocheck", "nodoc", "stage1", ""]), max_size=2)


@FUZZ
@given(texts(RELATION_SEEDS), ARCHES, PROFILES)
def test_relation_parse(text: str, arch: str | None, profiles: frozenset[str]) -> None:
    got = outcome(lambda: relation.parse(text, arch, profiles, where="fuzz"))
    if isinstance(got, ComposeError):
        assert isinstance(got, FormatError) and got.message.startswith("fuzz")
    else:
        assert all(group and all(isinstance(r, Relation) for r in group) for group in got)
    provides = outcome(lambda: relation.parse_provides(text, where="fuzz"))
    assert isinstance(provides, (tuple, FormatError))


_PACKAGE_NAME = st.builds(str.__add__, st.sampled_from("abz09"), st.text("abz09+.-", max_size=6))


@st.composite
def relation_groups(draw: st.DrawFn) -> tuple[tuple[Relation, ...], ...]:
    groups = []
    for _ in range(draw(st.integers(1, 4))):
        group = []
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.none() | st.sampled_from(relation.OPS))
            arch = draw(st.none() | st.sampled_from(["any", "native", "amd64"]))
            group.append(Relation(draw(_PACKAGE_NAME), op, draw(versions()) if op else None, arch))
        groups.append(tuple(group))
    return tuple(groups)


@FUZZ
@given(relation_groups(), st.sampled_from([", ", ",", ",\n ", " ,  "]))
def test_relation_reads_back_what_was_written(
    groups: tuple[tuple[Relation, ...], ...], comma: str
) -> None:
    text = comma.join(relation.format_group(g) for g in groups)
    assert relation.parse(text) == groups
    assert relation.parse(text + ",") == groups
    # An architecture restriction on every alternative keeps or drops them all.
    restricted = comma.join(" | ".join(f"{r} [!arm64]" for r in g) for g in groups)
    assert relation.parse(restricted, "amd64") == groups
    assert relation.parse(restricted, "arm64") == ()


# --------------------------------------------------------------------------------------
# Versions

_UPSTREAM = "0123456789abzAZ.+~"
_REVISION = "0129abz.+~"


@st.composite
def versions(draw: st.DrawFn) -> str:
    """A valid Debian version, drawn from few characters so that equal parts are common."""
    epoch = draw(st.none() | st.integers(0, 3) | st.just(2**31 - 1))
    revision = draw(st.none() | st.text(_REVISION, min_size=1, max_size=5))
    extra = (":" if epoch is not None else "") + ("-" if revision is not None else "")
    upstream = draw(st.sampled_from("0123456789")) + draw(st.text(_UPSTREAM + extra, max_size=7))
    return (f"{epoch}:" if epoch is not None else "") + upstream + (
        f"-{revision}" if revision is not None else "")


_GRAMMAR = re.compile(r"(?:[0-9]+:)?[0-9][0-9A-Za-z.+~:-]*")


@FUZZ
@given(st.one_of(st.text(), st.text(st.sampled_from("0123456789:-.+~a \n")), versions()),
       versions())
@example("\u00b2:1", "1")
@example("1" * 5000, "1")
@example("1" * 5000 + ":1", "1")
@example("1\n", "1")
def test_version_parse(text: str, valid: str) -> None:
    parts = outcome(lambda: version.split(text))
    if isinstance(parts, ComposeError):
        assert isinstance(parts, FormatError)
        for call in (lambda: version.key(text), lambda: version.compare(text, valid),
                     lambda: version.satisfies(valid, ">=", text)):
            with pytest.raises(FormatError):
                call()
        return
    epoch, upstream, revision = parts
    # What split accepts is Debian's grammar: ASCII, a colon in the upstream part only
    # after an epoch, a hyphen there only when a revision follows.
    assert _GRAMMAR.fullmatch(text), text
    tail = upstream + (f"-{revision}" if revision else "")
    assert text.endswith(tail)
    prefix = text[: len(text) - len(tail)]
    assert prefix == "" or (prefix.endswith(":") and int(prefix[:-1]) == epoch <= 2**31 - 1)
    assert ":" not in upstream or prefix
    assert "-" not in upstream or revision
    assert version.compare(text, valid) == -version.compare(valid, text)


def _strip_zeros(v: str) -> str:
    return re.sub(r"(?<![0-9])0+(?=[0-9])", "", v)


@FUZZ
@given(versions(), versions(), versions())
def test_version_order_is_a_total_order(a: str, b: str, c: str) -> None:
    cmp = version.compare
    assert cmp(a, a) == 0
    assert cmp(a, b) == -cmp(b, a)
    if cmp(a, b) <= 0 and cmp(b, c) <= 0:
        assert cmp(a, c) <= 0
    if cmp(a, b) == 0 and cmp(b, c) == 0:
        assert cmp(a, c) == 0
    ordered = sorted([a, b, c], key=version.key)
    assert all(cmp(x, y) <= 0 for i, x in enumerate(ordered) for y in ordered[i + 1 :])
    # Spellings of the same version: leading zeros, an explicit epoch 0.
    assert cmp(a, _strip_zeros(a)) == 0
    if ":" not in a:
        assert cmp(f"0:{a}", a) == 0
    for op, holds in (("<<", cmp(a, b) < 0), ("<=", cmp(a, b) <= 0), ("=", cmp(a, b) == 0),
                      (">=", cmp(a, b) >= 0), (">>", cmp(a, b) > 0)):
        assert version.satisfies(a, op, b) == holds


_DPKG_LOOP = 'while read -r a op b; do dpkg --compare-versions "$a" "$op" "$b"; echo "$?"; done'


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")
@settings(FUZZ, max_examples=3 if PROFILE == "ci" else 200)
@given(st.lists(st.tuples(versions(), versions()), min_size=30, max_size=30))
@example([("1" * 5000, "1" * 4999 + "2"), ("1.0~rc1", "1.0"), ("0:01.0", "1.00")])
def test_version_order_agrees_with_dpkg(pairs: list[tuple[str, str]]) -> None:
    """compose's answer for each pair, put to dpkg: one shell, one dpkg run per pair."""
    ops = {-1: "lt", 0: "eq", 1: "gt"}
    questions = [(a, ops[version.compare(a, b)], b) for a, b in pairs]
    proc = subprocess.run(
        ["sh", "-c", _DPKG_LOOP], input="".join(f"{a} {op} {b}\n" for a, op, b in questions),
        capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"})
    answers = proc.stdout.split()
    wrong = [q for q, code in zip(questions, answers, strict=True) if code != "0"]
    assert not wrong, f"dpkg disagrees: {wrong}\n{proc.stderr}"


# --------------------------------------------------------------------------------------
# Release files and clearsigned messages

RELEASE = (
    "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: trixie\n"
    "Date: Sat, 12 Sep 2026 07:55:41 UTC\nValid-Until: Sat, 19 Sep 2026 07:55:41 UTC\n"
    "Acquire-By-Hash: yes\nArchitectures: amd64 arm64\nComponents: main\nSHA256:\n"
    f" {'a' * 64} 123 main/binary-amd64/Packages.xz\n {'0' * 64}   0 main/Contents-all\n"
)
SIGNED = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + RELEASE.encode()
          + b"- -dashed\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")


@FUZZ
@given(texts([RELEASE]))
@example(RELEASE.replace(" 123 ", " \u00b2 "))
@example(RELEASE.replace(" 123 ", " " + "1" * 5000 + " "))
@example(RELEASE.replace("2026 07", "99999999999999999999 07"))
def test_release(text: str) -> None:
    info = outcome(lambda: parse_release(text, "fuzz"))
    if isinstance(info, ComposeError):
        assert isinstance(info, (FormatError, TrustError)) and info.message.startswith("fuzz")
        return
    assert all(e.size >= 0 and len(e.sha256) == 64 for e in info.files.values())
    for date in (lambda: info.date_utc, lambda: parse_date(info.valid_until or "", "V")):
        got = outcome(date)
        assert isinstance(got, FormatError) or got.tzinfo is not None


@FUZZ
@given(st.one_of(st.text(), st.from_regex(
    r"(Mon|Sat), [0-9]{1,25} (Jan|Sep) [0-9]{1,25} [0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})?"
    r" ([+-][0-9]{1,6}|UTC|GMT|EST|[A-Z]{1,3})?", fullmatch=True)))
@example("Sat, 12 Sep 99999999999999999999 07:55:41 UTC")
def test_release_dates(text: str) -> None:
    got = outcome(lambda: parse_date(text, "Date"))
    assert isinstance(got, FormatError) or got.tzinfo is not None


_HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
_PATH = st.from_regex(r"[a-z][a-z0-9/._+-]{0,30}", fullmatch=True)


@FUZZ
@given(st.dictionaries(_PATH, st.tuples(_HEX, st.integers(0, 2**63)), min_size=1, max_size=6),
       st.sampled_from(["stable", "trixie", "bookworm-security"]))
def test_release_reads_back_its_file_list(files: dict[str, tuple[str, int]], suite: str) -> None:
    lines = "".join(f" {sha} {size} {path}\n" for path, (sha, size) in files.items())
    info = parse_release(f"Suite: {suite}\nDate: Sat, 12 Sep 2026 07:55:41 UTC\nSHA256:\n{lines}",
                         "fuzz")
    assert info.suite == suite
    assert {p: (e.sha256, e.size) for p, e in info.files.items()} == files


@FUZZ
@given(st.one_of(st.binary(), damaged_bytes([SIGNED])))
def test_clearsigned(data: bytes) -> None:
    got = outcome(lambda: split_clearsigned(data, "fuzz"))
    assert isinstance(got, str) or (isinstance(got, TrustError)
                                    and got.message.startswith("fuzz"))


_BODY_LINE = st.text(st.sampled_from("-ab :\t\u00e9")
                     | st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)


@FUZZ
@given(st.lists(_BODY_LINE | st.sampled_from(["-----BEGIN PGP SIGNATURE-----", "- x", "-"]),
                max_size=8))
def test_clearsigned_reads_back_the_signed_text(body: list[str]) -> None:
    escaped = "".join(("- " + line if line.startswith("-") else line) + "\n" for line in body)
    message = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + escaped
               + "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")
    assert split_clearsigned(message.encode(), "fuzz") == "\n".join(body)


# --------------------------------------------------------------------------------------
# DEP-5 copyright files

FORMAT = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
COPYRIGHT_SEEDS = [
    f"{FORMAT}\nUpstream-Name: fuzz\nLicense: GPL-2+ or Artistic, and BSD-3-clause\n\n"
    "Files: *\nCopyright: 2020 Someone\nLicense: (GPL-3+ with GCC-exception-3.1) or MIT\n\n"
    "Files: src/lib/* Lib/json/* libuuid/* *.c debian/* tests/*\nCopyright: x\n"
    "License: LGPL-2.1+ and/or Expat, MPL-2.0\n\nFiles: keyutils.* ./doc/\\*.txt\n"
    "License: public-domain\n\nLicense: Expat\n Permission is hereby granted, free of "
    "charge, to any person obtaining a copy\n .\n of this software\n",
    "This package is free software; you can redistribute it and/or modify it under the "
    "terms of the GNU General Public License as published by the Free Software Foundation; "
    "either version 2 of the License, or (at your option) any later version.\n\nOn Debian "
    "systems the complete text is in /usr/share/common-licenses/GPL-2 and "
    "/usr/share/common-licenses/Apache-2.0.\n\nRedistribution and use in source and binary "
    "forms are permitted. Neither the name of the author may be used to endorse.\n",
]
SHIPPED = st.lists(st.sampled_from([
    "usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0", "usr/lib/python3.13/json/decoder.py",
    "usr/bin/fuzz", "usr/share/doc/fuzz/copyright", "usr/share/fuzz/data.txt", "etc/fuzz.conf",
    "usr/lib/libkeyutils.so.1", "src/lib/a.c",
]) | st.text(st.sampled_from("ab/.*?-_"), max_size=24), max_size=6, unique=True)
_ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def assert_spdx_shape(expression: str) -> None:
    """Identifiers in SPDX's alphabet joined by AND, OR and WITH, parentheses balanced."""
    tokens = expression.replace("(", " ( ").replace(")", " ) ").split()
    assert tokens, expression
    depth = 0
    for token in tokens:
        depth += (token == "(") - (token == ")")
        assert depth >= 0, expression
        assert token in ("(", ")", "AND", "OR", "WITH") or _ID_TOKEN.fullmatch(token), expression
    assert depth == 0, expression


@FUZZ
@given(st.one_of(texts(COPYRIGHT_SEEDS), st.binary().map(lambda b: b.decode("latin-1"))),
       SHIPPED, st.booleans())
@example(f"{FORMAT}\n\nFiles: *\nLicense: {'(' * 400}MIT\n", [], False)
@example(f"{FORMAT}\n\nFiles: {'*' * 40}x\nLicense: MIT\n", ["usr/lib/" + "a" * 60], False)
@example(f"{FORMAT}\n\nFiles: {'*a' * 30}x\nLicense: MIT\n", ["usr/lib/" + "a" * 60], False)
def test_copyright(text: str, shipped: list[str], as_bytes: bool) -> None:
    """A copyright file never fails to read: a value always, never even a ComposeError."""
    parsed = copyright.parse(text.encode("utf-8", "surrogatepass") if as_bytes else text, "fuzz")
    assert parsed.header is not None or parsed.machine_readable
    for paragraph in parsed.files:
        assert_spdx_shape(paragraph.expression)
    elf = [p for p in shipped if ".so" in p]
    got = copyright.attribute(parsed, shipped, elf, "fuzz")
    assert_spdx_shape(got.expression)
    assert list(got.ids) == sorted(set(got.ids))
    assert_spdx_shape(copyright.spdx(text.split("\n", 1)[0]))


# --------------------------------------------------------------------------------------
# .deb


def read(data: bytes) -> deb.Deb | ComposeError:
    got = outcome(lambda: deb.read(data, WHERE, max_size=MAX_SIZE))
    if isinstance(got, ComposeError):
        assert isinstance(got, FormatError) and got.message.startswith(f"{WHERE}: "), got
    return got


def check_read(data: bytes) -> None:
    """A package that reads repacks to one that reads the same."""
    got = read(data)
    if isinstance(got, deb.Deb):
        assert got.control and "control" in got.control_files
        assert deb.read(deb.repack(data, WHERE, MAX_SIZE), WHERE, MAX_SIZE) == got


def test_seed_packages_read() -> None:
    names = [deb.read(data, WHERE).control["Package"] for data in DEBS]
    assert names == [f"libfuzz{i}" for i in range(len(FAKE_DEBS))] + ["fuzz"] * len(DATA_TARS)
    for data in DEBS:
        assert any(m.kind == deb.FILE for m in deb.read(data, WHERE).members)


@FUZZ
@given(st.one_of(st.binary(max_size=2048),
                 st.binary(max_size=2048).map(lambda b: b"!<arch>\n" + b),
                 st.binary(max_size=2048).map(lambda b: _ar(("debian-binary", b"2.0\n"),
                                                            ("control.tar", b), ("data.tar", b)))))
def test_deb_random_bytes(data: bytes) -> None:
    check_read(data)


@FUZZ
@given(damaged_bytes(DEBS))
def test_deb_damaged(data: bytes) -> None:
    check_read(data)


@st.composite
def damaged_members(draw: st.DrawFn) -> bytes:
    """A package with one member damaged inside an intact ar archive: the damage reaches
    the decompressors and the tar reader."""
    members = list(ar_members(draw(st.sampled_from(DEBS))).items())
    i = draw(st.sampled_from([2, 1, 0]))  # data.tar first: Hypothesis favours the first
    members[i] = (members[i][0], draw(damaged_bytes([members[i][1]])))
    return _ar(*members)


@FUZZ
@given(damaged_members())
def test_deb_damaged_member(data: bytes) -> None:
    check_read(data)


# Where a tar header keeps its fields: name, mode, uid, size, mtime, checksum, type,
# link name, magic, prefix.
_HEADER_FIELDS = (0, 100, 108, 124, 136, 148, 156, 157, 257, 345)


def _fix_checksum(raw: bytearray, block: int) -> None:
    header = raw[block : block + 512]
    if len(header) == 512:
        header[148:156] = b" " * 8
        raw[block + 148 : block + 156] = b"%06o\x00 " % sum(header)


@st.composite
def damaged_tars(draw: st.DrawFn) -> bytes:
    """A data.tar with its header fields edited and, mostly, its checksums made right
    again, so that the damage reaches the checks behind the checksum."""
    raw = bytearray(draw(st.sampled_from(DATA_TARS)))
    blocks = len(raw) // 512
    touched = set()
    for _ in range(draw(st.integers(1, 4))):
        block = 512 * draw(st.integers(0, blocks - 1))
        at = block + draw(st.sampled_from(_HEADER_FIELDS)) + draw(st.integers(0, 11))
        touched.add(block)
        value = draw(st.binary(min_size=1, max_size=12) | st.sampled_from(
            [b"0", b"\x00", b"\x80", b"\xff", b"7", b"1", b"2", b"5", b"L", b"K", b"x", b"g",
             b"./", b"..", b"/", b"99999999999", b"ustar\x0000", b"ustar  \x00"]))
        raw[at : at + len(value)] = value
    if draw(st.integers(0, 9)):
        for block in touched:
            _fix_checksum(raw, block)
    return bytes(raw[: draw(st.sampled_from([len(raw), len(raw) - 512, len(raw) - 1]))])


@FUZZ
@given(damaged_tars(), st.booleans())
def test_deb_damaged_tar(data_tar: bytes, as_control: bool) -> None:
    control, data = (data_tar, DATA_TARS[0]) if as_control else (_CONTROL_TAR, data_tar)
    check_read(_ar(("debian-binary", b"2.0\n"), ("control.tar", control), ("data.tar", data)))
