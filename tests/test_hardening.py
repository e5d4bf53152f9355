"""Hostile or damaged input that must stop cleanly, and never reach outside compose's
own directories: packages, locks, cache entries and settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from composer import lockfile
from composer.archive.cache import Cache
from composer.debian.deb import DIR, FILE, HARDLINK, SYMLINK, Deb, Member
from composer.errors import ComposeError, LockError
from composer.image import assemble
from composer.model import Entry
from composer.pipeline import sandbox
from composer.pipeline.build import source_date_epoch

LOCK = Path(__file__).resolve().parent.parent / "locks" / "py313.lock.toml"


def deb(name: str, members: list[Member], replaces: str = "") -> tuple[str, Deb]:
    control = {"Package": name, "Version": "1"} | ({"Replaces": replaces} if replaces else {})
    return name, Deb(control, {"control": b"Package: " + name.encode() + b"\n"}, tuple(members))


def member(path: str, kind: str, data: bytes = b"", target: str = "") -> Member:
    return Member(path, kind, 0o755 if kind == DIR else 0o644, 0, 0, data, target, 0)


def test_a_symlink_never_replaces_a_directory_even_with_replaces(tmp_path: Path) -> None:
    """Otherwise the directory's files would sit under the symlink, and writing the tree
    (to byte-compile it) would follow the link out of the tree."""
    outside = tmp_path / "outside"
    a = deb("a", [member("usr", DIR), member("usr/lib", DIR), member("usr/lib/evil", DIR),
                  member("usr/lib/evil/pwned.py", FILE, b"x")])
    b = deb("b", [member("usr", DIR), member("usr/lib", DIR),
                  member("usr/lib/evil", SYMLINK, target=str(outside))], replaces="a")
    with pytest.raises(assemble.ConflictError, match="as a symlink, where a has a dir"):
        assemble.merge(assemble.merged_usr("amd64", 0), [a, b])
    assert not outside.exists()


def test_nothing_is_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    entries = {"usr": Entry("usr", DIR, 0o755),
               "usr/lib": Entry("usr/lib", SYMLINK, target=str(outside)),
               "usr/lib/pwned.py": Entry("usr/lib/pwned.py", FILE, data=b"x")}
    with pytest.raises(sandbox.SandboxError, match="outside the tree"):
        sandbox.materialize(entries, root)
    assert list(outside.iterdir()) == []


def test_a_file_under_a_file_is_refused() -> None:
    a = deb("a", [member("etc", DIR), member("etc/x", FILE, b"1")])
    b = deb("b", [member("etc", DIR), member("etc/x", DIR), member("etc/x/y", FILE, b"2")])
    with pytest.raises(ComposeError):
        assemble.merge(assemble.merged_usr("amd64", 0), [a, b])


def test_hard_links_are_written_whatever_the_order(tmp_path: Path) -> None:
    entries = {"usr": Entry("usr", DIR, 0o755), "usr/bin": Entry("usr/bin", DIR, 0o755),
               "usr/bin/a": Entry("usr/bin/a", HARDLINK, target="usr/bin/z"),
               "usr/bin/z": Entry("usr/bin/z", FILE, 0o755, data=b"#!x\n"),
               "usr/share": Entry("usr/share", DIR, 0o755),
               "usr/share/t": Entry("usr/share/t", FILE, data=b"skipped"),
               "usr/bin/b": Entry("usr/bin/b", HARDLINK, target="usr/share/t")}
    sandbox.materialize(entries, tmp_path)
    assert (tmp_path / "usr/bin/a").read_bytes() == b"#!x\n"
    assert (tmp_path / "usr/bin/b").read_bytes() == b"skipped"
    assert not (tmp_path / "usr/share/t").exists()


@pytest.mark.parametrize(("old", "new", "says"), [
    ('sha256 = "', 'sha256 = "../../../../tmp/victim', "is not a sha256"),
    ('name = "libc6"', 'name = "../../x"', "is not a Debian package name"),
    ('filename = "pool/', 'filename = "/etc/passwd#pool/', "is not an archive path"),
])
def test_lock_values_that_would_become_paths_are_checked(tmp_path: Path, old: str, new: str,
                                                         says: str) -> None:
    text = LOCK.read_text().replace(old, new, 1)
    with pytest.raises(LockError, match=says):
        lockfile.loads(text, tmp_path / "x.lock.toml")


def test_a_package_locked_twice_is_refused(tmp_path: Path) -> None:
    text = LOCK.read_text()
    first = text.index("\n[[package]]\n")
    second = text.index("\n[[package]]\n", first + 1)
    with pytest.raises(LockError, match="locked twice"):
        lockfile.loads(text + text[first:second], tmp_path / "x.lock.toml")


def test_a_damaged_lock_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LockError):
        lockfile.loads(LOCK.read_text() + '\n[[excluded]]\nname = "x"\n', tmp_path / "x.toml")


def test_cache_names_must_be_digests(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(ValueError):
        cache.blob_path("../../etc/passwd")
    with pytest.raises(ValueError):
        cache.derived_path("0" * 64, "../x")


def test_a_damaged_derived_entry_is_dropped(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = "a" * 64
    cache.write_derived(key, "pyc", b"some byte-code")
    assert cache.read_derived(key, "pyc") == b"some byte-code"
    path = cache.derived_path(key, "pyc")
    raw = bytearray(path.read_bytes())
    raw[3] ^= 1
    path.write_bytes(bytes(raw))
    assert cache.read_derived(key, "pyc") is None and not path.exists()
    path.write_bytes(b"")
    assert cache.read_derived(key, "pyc") is None


@pytest.mark.parametrize("value", ["-100", str(8**11), "99999999999999"])
def test_source_date_epoch_out_of_range(value: str) -> None:
    lk = lockfile.load(LOCK)
    with pytest.raises(ComposeError, match="out of range"):
        source_date_epoch(lk, {"SOURCE_DATE_EPOCH": value})


@pytest.mark.parametrize(("old", "new", "key", "says"), [
    ('size = ', 'size = "12"  # was: ', "size", r"'size' has the wrong type \(str, not int\)"),
    ('version = "', 'version = 2  # "', "version", r"'version' has the wrong type"),
    ('sha256 = "', 'sha256 = "ZZ', "sha256", r"is not a sha256"),
    ('suite = "trixie"\nfilename', 'suite = "sid"\nfilename', "suite",
     r"no \[\[source\]\] debian sid"),
])
def test_a_lock_edited_by_hand_names_the_line(tmp_path: Path, old: str, new: str, key: str,
                                              says: str) -> None:
    """The error names the line of the key in the [[package]] table it is in."""
    text = LOCK.read_text()
    start = text.index("\n[[package]]\n", len(text) // 2) + 1
    at = text.index(old, start)
    text = text[:at] + text[at:].replace(old, new, 1)
    line = text[:at].count("\n") + 1
    while not text.splitlines()[line - 1].lstrip().startswith(key):
        line += 1
    with pytest.raises(LockError) as info:
        lockfile.loads(text, tmp_path / "x.lock.toml")
    assert info.value.message.startswith(f"{tmp_path / 'x.lock.toml'}:{line}: package "), \
        (line, info.value.message)
    assert re.search(says, info.value.message), info.value.message
    assert info.value.hint and "compose lock" in info.value.hint


def test_a_lock_that_is_not_toml_names_the_line(tmp_path: Path) -> None:
    text = LOCK.read_text().replace('\nprofile = "', '\nprofile = "unterminated\n', 1)
    line = text[:text.index("unterminated")].count("\n") + 1
    with pytest.raises(LockError, match=rf"x\.lock\.toml:{line}: not valid TOML"):
        lockfile.loads(text, tmp_path / "x.lock.toml")


def test_special_bits_leave_directories_and_follow_the_file_for_hard_links() -> None:
    """setuid and setgid go from files the profile does not name; a directory keeps its
    setgid bit (it only passes its group on); a hard link has its file's mode."""
    tree = assemble.merged_usr("amd64", 0)
    for e in (Entry("usr/bin/su", FILE, 0o4755, data=b"x"),
              Entry("usr/bin/ping", FILE, 0o4755, data=b"y"),
              Entry("usr/bin/su-again", HARDLINK, 0o4755, target="usr/bin/su"),
              Entry("var", DIR, 0o755), Entry("var/local", DIR, 0o2775)):
        tree.put(e)
    assert assemble.drop_special_bits(tree, ["usr/bin/ping"]) == ["usr/bin/su"]
    modes = {p: e.mode for p, e in tree.entries.items()}
    assert modes["usr/bin/su"] == 0o755 and modes["usr/bin/ping"] == 0o4755
    assert modes["var/local"] == 0o2775
