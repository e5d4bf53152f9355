"""Debian formats, bytes in and values out: relations, deb822, the Packages index and
its sidecar, Release files and the strict clearsigned-message reader."""

from __future__ import annotations

import marshal
import struct

import pytest

from composer.debian import deb822, relation
from composer.debian.deb822 import PackagesFile
from composer.debian.release import parse_release, split_clearsigned
from composer.errors import FormatError, TrustError
from composer.model import Relation


def test_relations_groups_operators_and_qualifiers() -> None:
    got = relation.parse("a (>= 1.0), b:any | c (<< 2:1~) , d:native (= 3), e:amd64")
    assert got == (
        (Relation("a", ">=", "1.0"),),
        (Relation("b", arch="any"), Relation("c", "<<", "2:1~")),
        (Relation("d", "=", "3", "native"),),
        (Relation("e", arch="amd64"),),
    )
    assert str(got[1][1]) == "c (<< 2:1~)"


def test_obsolete_operators_mean_or_equal() -> None:
    assert relation.parse("a (< 1), b (> 2)") == ((Relation("a", "<=", "1"),), (Relation("b", ">=", "2"),))


def test_architecture_restrictions() -> None:
    text = "x [amd64 arm64], y [!amd64], z [linux-any], w [any-arm64]"
    assert [g[0].name for g in relation.parse(text, "amd64")] == ["x", "z"]
    assert [g[0].name for g in relation.parse(text, "arm64")] == ["x", "y", "z", "w"]
    with pytest.raises(FormatError):
        relation.parse("x [amd64 !arm64]", "amd64")


def test_build_profiles() -> None:
    text = "a <!nocheck>, b <nocheck>, c <!nocheck !nodoc> <stage1>, d | e <!nocheck>"
    assert [[r.name for r in g] for g in relation.parse(text)] == [["a"], ["c"], ["d", "e"]]
    active = frozenset({"nocheck"})
    assert [[r.name for r in g] for g in relation.parse(text, profiles=active)] == [["b"], ["d"]]


def test_multiline_and_trailing_comma() -> None:
    assert relation.parse("a,\n b,") == ((Relation("a"),), (Relation("b"),))


@pytest.mark.parametrize("bad", ["a (>= )", "A", "a | | b", "a,, b", "a (~> 1)", "a [", ","])
def test_bad_relations(bad: str) -> None:
    with pytest.raises(FormatError):
        relation.parse(bad)


def test_provides() -> None:
    assert relation.parse_provides("x (= 1.0), y") == (Relation("x", "=", "1.0"), Relation("y"))
    with pytest.raises(FormatError):
        relation.parse_provides("x | y")
    with pytest.raises(FormatError):
        relation.parse_provides("x (>= 1)")


def test_deb822_paragraphs_and_continuations() -> None:
    text = "A: 1\nB: first\n second\n .\n third\n\n\nA: 2\n"
    assert deb822.parse(text) == [{"A": "1", "B": "first\nsecond\n.\nthird"}, {"A": "2"}]
    assert deb822.parse("# c\nTypes: deb\n", comments=True) == [{"Types": "deb"}]
    for bad in (" leading continuation\n", "no colon here\n", "A: 1\nA: 2\n"):
        with pytest.raises(FormatError):
            deb822.parse(bad)


PACKAGES = b"""Package: a
Version: 1
Provides: v (= 2), w:any

Package: b
Version: 1
Provides: v

Package: a
Version: 2
"""


@pytest.mark.parametrize("tail", [b"", b"\n", b"\n\n"])
def test_packages_file_index_and_sidecar(tail: bytes) -> None:
    pf = PackagesFile(PACKAGES + tail, "test")
    assert len(pf) == 3
    assert [pf.stanza(o)["Version"] for o in pf.lookup("a")] == ["1", "2"]
    assert sorted(pf.stanza(o)["Package"] for o in pf.providing("v")) == ["a", "b"]
    assert [pf.stanza(o)["Package"] for o in pf.providing("w")] == ["a"]
    assert pf.lookup("nope") == [] and pf.providing("nope") == []
    again = PackagesFile(PACKAGES + tail, "test", pf.sidecar())
    assert again.lookup("a") == pf.lookup("a") and again.providing("v") == pf.providing("v")
    assert sorted(again.names()) == ["a", "b"]
    # A damaged sidecar is ignored and the file scanned again.
    assert PackagesFile(PACKAGES, "test", b"garbage").lookup("b") == pf.lookup("b")


RELEASE = """Origin: Debian
Suite: stable
Codename: trixie
Date: Sat, 12 Sep 2026 07:55:41 UTC
Acquire-By-Hash: yes
Architectures: amd64 arm64
Components: main
SHA256:
 """ + "a" * 64 + """ 123 main/binary-amd64/Packages.xz
"""


def test_release() -> None:
    info = parse_release(RELEASE, "test")
    assert (info.suite, info.codename, info.acquire_by_hash) == ("stable", "trixie", True)
    assert info.files["main/binary-amd64/Packages.xz"].size == 123
    assert info.date_utc.year == 2026
    with pytest.raises(TrustError):
        parse_release(RELEASE.split("SHA256:")[0], "test")


SIGNED = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nLine one\n- -dashed\n"
          b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")


def test_clearsigned_text_is_dash_unescaped() -> None:
    assert split_clearsigned(SIGNED, "t") == "Line one\n-dashed"


@pytest.mark.parametrize("bad", [
    b"junk\n" + SIGNED,                                        # text before
    SIGNED + b"Origin: Evil\n",                                # text after
    SIGNED + SIGNED,                                           # two signed blocks
    SIGNED.replace(b"Hash: SHA256\n", b"Hash: SHA256\nEvil: x\n"),  # other armor header
    SIGNED.replace(b"-----END PGP SIGNATURE-----\n", b""),     # unterminated
    SIGNED.replace(b"- -dashed", b"-dashed"),                  # unescaped dash line
])
def test_clearsigned_structure_is_strict(bad: bytes) -> None:
    with pytest.raises(TrustError):
        split_clearsigned(bad, "t")


def test_packages_file_damage_is_a_format_error() -> None:
    pf = PackagesFile(b"Package: \xff\nVersion: 1\n", "test")
    with pytest.raises(FormatError, match="at byte 0: paragraph is not UTF-8"):
        pf.stanza(0)
    with pytest.raises(FormatError, match=r"package name .* is not UTF-8"):
        list(pf.names())
    with pytest.raises(FormatError, match="'Provides:' field before any 'Package:'"):
        PackagesFile(b"\nProvides: v\n", "test")


def test_packages_file_without_a_final_line_end() -> None:
    pf = PackagesFile(b"Package: abc", "test")
    assert pf.lookup("abc") == [0] and pf.stanza(0) == {"Package": "abc"}


@pytest.mark.parametrize("sidecar", [
    b"",
    b"(\xff\xff\xff\x7f",  # a marshal tuple said to hold 2**31 items
    marshal.dumps((1, 1, 2, 3, 4, 5, 6)),  # marshalled numbers where names belong
    bytes(48),  # six empty parts: keys and offsets that do not agree
    b"\xff" * 48 + b"x",  # lengths far past the end
    struct.pack("<6Q", 0, 1, 0, 0, 0, 0) + b"x",  # starts that are no whole number of offsets
], ids=["empty", "marshal-huge-tuple", "marshal-numbers", "empty-parts", "past-the-end",
        "odd-part"])
def test_packages_file_damaged_sidecar_is_ignored(sidecar: bytes) -> None:
    pf = PackagesFile(PACKAGES, "test", sidecar)
    assert pf.lookup("a") == [0, 83] and sorted(pf.names()) == ["a", "b"]
    assert PackagesFile(PACKAGES, "test", pf.sidecar()[:-1]).lookup("a") == [0, 83]


@pytest.mark.parametrize("size", ["\u00b2", "1" * 5000, "-1", "1.0"])
def test_release_size_that_is_not_a_number(size: str) -> None:
    with pytest.raises(FormatError, match="bad SHA256 line"):
        parse_release(RELEASE.replace(" 123 ", f" {size} "), "test")


def test_release_date_out_of_range() -> None:
    info = parse_release(RELEASE.replace("2026", "99999999999999999999"), "test")
    with pytest.raises(FormatError, match="not an RFC 2822 date"):
        info.date_utc  # noqa: B018 - the property parses
