"""Profiles: composer.profile.parse/load (pure), and a bad profile through the CLI."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from composer.errors import ProfileError
from composer.model import SourceSpec
from composer.profile import load, parse
from tests.fakearchive import TEST_KEY

ROOT = Path(__file__).resolve().parent.parent
WHERE = Path("/project/profiles/t.toml")

# Line numbers below refer to this text.
BASE = """\
name = "t"
description = "a test profile"
architectures = ["amd64", "arm64"]

[[source]]
archive = "debian"
suite = "trixie"

[[source]]
archive = "debian-security"
suite = "trixie-security"
components = ["main"]

[packages]
include = ["libc6", "tzdata"]
exclude = ["debconf"]
prefer = { mail-transport-agent = "postfix" }
recommends = false

[python]
version = "3.13"
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def fails(text: str, path: Path = WHERE) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        parse(text, path)
    return info.value


def test_base_profile_parses() -> None:
    p = parse(BASE, WHERE)
    assert p.name == "t" and p.path == WHERE
    assert p.architectures == ("amd64", "arm64")
    assert p.sources == (SourceSpec("debian", "trixie", ("main",), "debian"),
                         SourceSpec("debian-security", "trixie-security", ("main",), "debian"))
    assert p.include == ("libc6", "tzdata")
    assert p.exclude == ("debconf",)
    assert p.prefer == (("mail-transport-agent", "postfix"),)
    assert p.recommends is False
    assert p.python_version == "3.13"


def test_name_defaults_to_the_file_stem() -> None:
    p = parse(edit('name = "t"\n', ""), Path("profiles/py-slim.toml"))
    assert p.name == "py-slim"


# -- unknown keys: file:LINE, the dotted key, did-you-mean ------------------------------

UNKNOWN_KEYS = {
    "top": (edit('description = "a test profile"', 'descripton = "a test profile"'),
            2, "descripton", "description"),
    "source-1": (edit('suite = "trixie"\n', 'suite = "trixie"\nkeyrng = "debian"\n'),
                 8, "source[1].keyrng", "keyring"),
    "source-2": (edit('components = ["main"]', 'compnents = ["main"]'),
                 12, "source[2].compnents", "components"),
    "packages": (edit("include =", "incldue ="), 15, "packages.incldue", "include"),
    "packages-recommends": (edit("recommends = false", "recomends = false"),
                            18, "packages.recomends", "recommends"),
    "python": (edit('version = "3.13"', 'verison = "3.13"'), 21, "python.verison", "version"),
    "quoted": (edit("include =", '"incldue" ='), 15, "packages.incldue", "include"),
}


@pytest.mark.parametrize("case", list(UNKNOWN_KEYS))
def test_unknown_key(case: str) -> None:
    text, line, key, suggestion = UNKNOWN_KEYS[case]
    err = fails(text)
    assert err.message == f"{WHERE}:{line}: {key}: unknown key"
    assert err.hint == f"did you mean '{suggestion}'?"


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    err = fails(edit("[python]\n", "colour = 1\n\n[python]\n"))
    assert err.message == f"{WHERE}:20: packages.colour: unknown key"
    assert err.hint == "known keys here: include, exclude, prefer, recommends, only"


def test_unknown_literal_quoted_key_line() -> None:
    err = fails(edit("include =", "'incldue' ="))
    assert err.message == f"{WHERE}:15: packages.incldue: unknown key"


def test_unknown_architecture_did_you_mean() -> None:
    err = fails(edit('["amd64", "arm64"]', '["amd46", "arm64"]'))
    assert err.message == f"{WHERE}:3: architectures: unknown Debian architecture 'amd46'"
    assert err.hint == "did you mean 'amd64'?"
    err = fails(edit('["amd64", "arm64"]', '["amd64", "sparc"]'))
    assert err.hint is not None and err.hint.startswith("known: amd64, arm64, ")


def test_unknown_keyring_did_you_mean() -> None:
    err = fails(edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "debain"\n'))
    assert err.message == f"{WHERE}:8: source[1].keyring: unknown keyring 'debain'"
    assert err.hint is not None and err.hint.startswith("did you mean 'debian'?")
    assert "a path to a keyring file" in err.hint


# -- types and values -------------------------------------------------------------------

BAD_VALUES = {
    "include-string": (edit('include = ["libc6", "tzdata"]', 'include = "x"'), 15,
                       "packages.include: expected a list of strings, found a string"),
    "architectures-string": (edit('["amd64", "arm64"]', '"amd64"'), 3,
                             "architectures: expected a list of strings, found a string"),
    "recommends-string": (edit("recommends = false", 'recommends = "yes"'), 18,
                          "packages.recommends: expected true or false, found a string"),
    "include-item": (edit('include = ["libc6", "tzdata"]', 'include = ["libc6", 7]'), 15,
                     "packages.include: item 2 should be a string, found an integer"),
    "suite-int": (edit('suite = "trixie"', "suite = 13"), 7,
                  "source[1].suite: expected a string, found an integer"),
    "source-table": (edit('\n[[source]]\narchive = "debian-security"\nsuite = "trixie-security"\n'
                          'components = ["main"]\n', "").replace("[[source]]", "[source]"),
                     5, "source: expected [[source]] tables, found a table"),
    "upper-case-package": (edit('"tzdata"]', '"TZdata"]'), 15,
                           "packages.include: 'TZdata' is not a Debian package name"),
    "upper-case-exclude": (edit('["debconf"]', '["DebConf"]'), 16,
                           "packages.exclude: 'DebConf' is not a Debian package name"),
    "python-version": (edit('version = "3.13"', 'version = "3"'), 21,
                       "python.version: '3' is not a Python version"),
    "python-version-float": (edit('version = "3.13"', "version = 3.13"), 21,
                             "python.version: expected a string like \"3.13\", found a number"),
    "profile-name": (edit('name = "t"', 'name = "My Profile"'), 1,
                     "name: 'My Profile' is not a valid profile name"),
    "archive-name": (edit('archive = "debian"', 'archive = "Debian"'), 6,
                     "source[1].archive: 'Debian' is not an archive name"),
    "suite-slash": (edit('suite = "trixie"', 'suite = "trixie/updates"'), 7,
                    "source[1].suite: 'trixie/updates' is not a suite name"),
    "empty-include": (edit('include = ["libc6", "tzdata"]', "include = []"), 15,
                      "packages.include: the list is empty"),
    "empty-architectures": (edit('["amd64", "arm64"]', "[]"), 3,
                            "architectures: the list is empty"),
    "empty-components": (edit('components = ["main"]', "components = []"), 12,
                         "source[2].components: the list is empty"),
    "duplicate-package": (edit('"tzdata"]', '"tzdata", "libc6"]'), 15,
                          "packages.include: 'libc6' is listed twice"),
    "duplicate-architecture": (edit('["amd64", "arm64"]', '["amd64", "amd64"]'), 3,
                               "architectures: 'amd64' is listed twice"),
    "included-and-excluded": (edit('["debconf"]', '["debconf", "tzdata"]'), 16,
                              "packages.exclude: tzdata is both included and excluded"),
    "duplicate-source": (edit('archive = "debian-security"\nsuite = "trixie-security"',
                              'archive = "debian"\nsuite = "trixie"'), 9,
                         "source[2]: source debian trixie is listed twice"),
    "source-without-suite": (edit('suite = "trixie"\n', ""), 5,
                             "source[1]: [[source]] number 1 has no 'suite'"),
    "prefer-not-a-name": (edit('"postfix" }', "1 }"), 17,
                          "packages.prefer: expected a package name for 'mail-transport-agent', "
                          "found an integer"),
    "no-include": (edit('include = ["libc6", "tzdata"]\n', ""), 14,
                   "packages: no 'include' list"),
    "include-bad-operator": (edit('"tzdata"]', '"tzdata (> 2024a)"]'), 15,
                             "packages.include: 'tzdata (> 2024a)' is not a package name or "
                             "'name (op version)'"),
    "include-bad-version": (edit('"tzdata"]', '"tzdata (>= a2024)"]'), 15,
                            "packages.include: 'tzdata (>= a2024)': 'a2024' is not a Debian "
                            "version"),
    "include-two-constraints": (edit('"tzdata"]', '"tzdata (>= 1) (<< 2)"]'), 15,
                                "packages.include: 'tzdata (>= 1) (<< 2)' is not a package name or "
                                "'name (op version)'"),
    "include-twice-with-a-version": (edit('"tzdata"]', '"tzdata", "libc6 (>= 2.41)"]'), 15,
                                     "packages.include: libc6 is listed twice"),
    "include-versioned-and-excluded": (edit('["debconf"]', '["debconf", "tzdata"]').replace(
        '"tzdata"]', '"tzdata (>= 1)"]', 1), 16,
        "packages.exclude: tzdata is both included and excluded"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_value(case: str) -> None:
    text, line, message = BAD_VALUES[case]
    err = fails(text)
    assert err.message == f"{WHERE}:{line}: {message}"


def test_bad_value_hints() -> None:
    assert fails(BAD_VALUES["upper-case-package"][0]).hint == (
        "package names are lower-case letters, digits and + - .")
    assert fails(BAD_VALUES["python-version"][0]).hint == 'write it as "3.13"'
    assert fails(BAD_VALUES["duplicate-package"][0]).hint == "remove the duplicate"
    assert fails(BAD_VALUES["included-and-excluded"][0]).hint == (
        "remove it from one of the two lists")


@pytest.mark.parametrize("case", ["include-string", "recommends-string", "suite-int", "keyring-file"])
def test_every_profile_error_has_a_hint(case: str) -> None:
    if case == "keyring-file":
        text = edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "/nonexistent/k.pgp"\n')
    else:
        text = BAD_VALUES[case][0]
    assert fails(text).hint


# -- missing tables ---------------------------------------------------------------------


def test_missing_packages_table() -> None:
    err = fails(BASE.split("[packages]")[0])
    assert err.message == f"{WHERE}: no [packages] table"
    assert err.hint and "include" in err.hint


def test_missing_source() -> None:
    text = BASE.split("[[source]]")[0] + "[packages]" + BASE.split("[packages]")[1]
    err = fails(text)
    assert err.message == f"{WHERE}: no [[source]] table"
    assert err.hint and "[[source]]" in err.hint


def test_missing_architectures() -> None:
    err = fails(edit('architectures = ["amd64", "arm64"]\n', ""))
    assert err.message == f"{WHERE}: no 'architectures' key"


def test_toml_syntax_error_reports_the_line() -> None:
    err = fails(edit('suite = "trixie-security"', "suite = trixie-security"))
    assert err.message.startswith(f"{WHERE}:11: not valid TOML: ")
    assert "(at line" not in err.message
    assert err.hint and "toml" in err.hint.lower()
    err = fails(edit('[packages]\ninclude = ["libc6", "tzdata"]',
                     '[packages]\ninclude = ["libc6"]\ninclude = ["tzdata"]'))
    assert err.message.startswith(f"{WHERE}:16: not valid TOML: ")


# -- keyrings ----------------------------------------------------------------------------


def test_keyring_path_that_does_not_exist(tmp_path: Path) -> None:
    err = fails(edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "/nonexistent/k.pgp"\n'))
    assert err.message == (f"{WHERE}:8: source[1].keyring: keyring file /nonexistent/k.pgp "
                           "does not exist")
    err = fails(edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "keys/k.pgp"\n'),
                tmp_path / "t.toml")
    assert f"keyring file {tmp_path / 'keys' / 'k.pgp'} does not exist" in err.message


def test_keyring_paths_absolute_and_relative(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    shutil.copy(TEST_KEY.public_binary_path, tmp_path / "keys" / "k.pgp")
    p = parse(edit('suite = "trixie"\n', f'suite = "trixie"\nkeyring = "{TEST_KEY.public_binary_path}"\n'),
              tmp_path / "t.toml")
    assert p.sources[0].keyring == str(TEST_KEY.public_binary_path)
    p = parse(edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "keys/k.pgp"\n'),
              tmp_path / "t.toml")
    assert Path(p.sources[0].keyring) == tmp_path / "keys" / "k.pgp"
    assert p.sources[1].keyring == "debian"


def test_fingerprint_does_not_depend_on_the_checkout_folder(tmp_path: Path) -> None:
    text = edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "keys/k.pgp"\n')
    prints = []
    for clone in ("a", "b"):
        (tmp_path / clone / "profiles" / "keys").mkdir(parents=True)
        shutil.copy(TEST_KEY.public_binary_path, tmp_path / clone / "profiles" / "keys" / "k.pgp")
        (tmp_path / clone / "profiles" / "t.toml").write_text(text)
        prints.append(load(tmp_path / clone / "profiles" / "t.toml").fingerprint())
    assert prints[0] == prints[1]


# -- load ---------------------------------------------------------------------------------


def test_shipped_profile_loads() -> None:
    p = load(ROOT / "profiles" / "py313.toml")
    assert p.name == "py313"
    assert p.architectures == ("amd64", "arm64")
    assert [(s.archive, s.suite) for s in p.sources] == [
        ("debian", "trixie"), ("debian", "trixie-updates"), ("debian-security", "trixie-security")]
    assert all(s.keyring == "debian" for s in p.sources)
    assert "python3.13-minimal" in p.include
    assert p.python_version == "3.13"


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load(tmp_path / "nope.toml")
    assert info.value.message == f"{tmp_path / 'nope.toml'}: no such profile"
    assert info.value.hint


def test_load_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(ProfileError, match="cannot read the profile"):
        load(tmp_path / "t.toml")


# -- fingerprint --------------------------------------------------------------------------


def _fp(text: str) -> str:
    return parse(text, WHERE).fingerprint()


def test_fingerprint_ignores_formatting_comments_and_description() -> None:
    base = _fp(BASE)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", base)
    reformatted = "# leading comment\n\n" + BASE.replace(" = ", "   =   ").replace(
        'include = ["libc6", "tzdata"]', 'include = [\n    "libc6",  # the C library\n    "tzdata",\n]')
    assert _fp(reformatted) == base
    assert _fp(edit('description = "a test profile"', 'description = "other words"')) == base
    assert _fp(edit('description = "a test profile"\n', "")) == base
    assert _fp(edit('components = ["main"]\n', "")) == base  # ["main"] is the default
    assert _fp(edit("recommends = false\n", "")) == base  # false is the default
    assert parse(BASE, Path("elsewhere/t.toml")).fingerprint() == base


def test_fingerprint_changes_with_what_is_locked() -> None:
    base = _fp(BASE)
    changed = {
        "include": edit('"tzdata"]', '"tzdata", "netbase"]'),
        "include-order": edit('["libc6", "tzdata"]', '["tzdata", "libc6"]'),
        "exclude": edit('["debconf"]', '["debconf", "mawk"]'),
        "architectures": edit('["amd64", "arm64"]', '["amd64"]'),
        "suite": edit('suite = "trixie"', 'suite = "forky"'),
        "keyring": edit('suite = "trixie"\n', 'suite = "trixie"\nkeyring = "debian-13"\n'),
        "recommends": edit("recommends = false", "recommends = true"),
        "prefer": edit('"postfix"', '"exim4-daemon-light"'),
        "python": edit('"3.13"', '"3.12"'),
        "name": edit('name = "t"', 'name = "u"'),
    }
    prints = {k: _fp(v) for k, v in changed.items()}
    assert base not in prints.values()
    assert len(set(prints.values())) == len(prints)


# -- through the CLI -----------------------------------------------------------------------


def test_cli_bad_profile(tmp_path: Path, env: dict[str, str],
                         compose: Callable[..., tuple[int, str, str]]) -> None:
    prof = tmp_path / "profiles" / "t.toml"
    prof.parent.mkdir()
    prof.write_text(edit("include =", "incldue ="))
    for args in (["lock", prof, "--mirror", "debian=http://127.0.0.1:9/debian"],
                 ["lock", "--check", prof], ["why", "libc6", prof], ["graph", prof]):
        rc, out, err = compose(env, *args)
        assert rc == 2, err
        assert "Traceback" not in err
        assert err.splitlines() == [f"error: {prof}:15: packages.incldue: unknown key",
                                    "hint: did you mean 'include'?"]
        assert out == ""
    assert not (tmp_path / "locks").exists()


def test_cli_toml_syntax_error(tmp_path: Path, env: dict[str, str],
                               compose: Callable[..., tuple[int, str, str]]) -> None:
    prof = tmp_path / "t.toml"
    prof.write_text(edit('suite = "trixie-security"', "suite = trixie-security"))
    rc, _, err = compose(env, "lock", prof, "--mirror", "debian=http://127.0.0.1:9/debian")
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: {prof}:11: not valid TOML: ")
    assert "\nhint: " in err


def test_cli_missing_profile(tmp_path: Path, env: dict[str, str],
                             compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, _, err = compose(env, "lock", tmp_path / "nope.toml")
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: {tmp_path / 'nope.toml'}: no such profile\nhint: ")


IMAGE = BASE + """compile = false
trim = false

[image]
tags = ["py313", "3.13-debian13"]
entrypoint = ["/usr/bin/python3.13", "-u"]
cmd = ["-m", "app"]
env = { PYTHONUNBUFFERED = "1" }
user = 65532
workdir = "/srv"
labels = { "org.opencontainers.image.source" = "https://example.org/x" }
compression = "zstd"

[[user]]
name = "app"
uid = 1000

[[group]]
name = "data"
gid = 2000

[strip]
paths = ["usr/share/zoneinfo/right/**"]
keep = ["usr/share/doc/libc6/*"]
defaults = false
"""


def test_image_settings_parse() -> None:
    p = parse(IMAGE, WHERE)
    im = p.image
    assert im.tags == ("py313", "3.13-debian13")
    assert im.entrypoint == ("/usr/bin/python3.13", "-u") and im.cmd == ("-m", "app")
    assert im.env == (("PYTHONUNBUFFERED", "1"),) and im.user == "65532"
    assert im.workdir == "/srv" and im.compression == "zstd"
    assert im.labels == (("org.opencontainers.image.source", "https://example.org/x"),)
    assert [(u.name, u.uid, u.gid, u.home, u.shell) for u in p.users] == [
        ("app", 1000, 1000, "/home/app", "/sbin/nologin")]
    assert p.groups == (("data", 2000),)
    assert p.strip == ("usr/share/zoneinfo/right/**",) and p.keep == ("usr/share/doc/libc6/*",)
    assert (p.strip_defaults, p.python_compile, p.python_trim) == (False, False, False)


def test_image_settings_default_to_distroless() -> None:
    p = parse(BASE, WHERE)
    assert p.image.entrypoint is None and p.image.user == "0" and p.image.workdir == "/"
    assert p.image.compression == "gzip" and p.users == () and p.strip_defaults
    assert p.python_compile and p.python_trim


def test_image_settings_do_not_change_the_fingerprint() -> None:
    assert parse(IMAGE, WHERE).fingerprint() == parse(BASE, WHERE).fingerprint()


@pytest.mark.parametrize(("old", "new", "key", "line"), [
    ('compression = "zstd"', 'compression = "lz4"', "image.compression", 33),
    ('compression = "zstd"', 'setuid = ["/usr/bin/su"]', "image.setuid", 33),
    ('compression = "zstd"', 'setuid = ["usr/../etc/x"]', "image.setuid", 33),
    ('compression = "zstd"', 'setuid = "usr/bin/su"', "image.setuid", 33),
    ('workdir = "/srv"', 'workdir = "srv"', "image.workdir", 31),
    ('tags = ["py313", "3.13-debian13"]', 'tags = ["no spaces allowed"]', "image.tags", 26),
    ('env = { PYTHONUNBUFFERED = "1" }', 'env = { "1X" = "1" }', "image.env", 29),
    ("uid = 1000", 'uid = "1000"', "user[1].uid", 37),
    ('name = "app"\n', "", "user[1]", 35),
    ("gid = 2000", 'gid = "x"', "group[1].gid", 41),
    ("defaults = false", 'defaults = "no"', "strip.defaults", 46),
    ("compile = false", "compile = 1", "python.compile", 22),
    ('keep = ["usr/share/doc/libc6/*"]', 'kept = ["x"]', "strip.kept", 45),
])
def test_image_settings_errors_name_line_and_key(old: str, new: str, key: str, line: int) -> None:
    err = fails(edit(old, new, IMAGE))
    assert err.message.startswith(f"{WHERE}:{line}: {key}"), err.message
    assert err.hint, err.message


def test_latest_is_refused_as_a_tag() -> None:
    err = fails(edit('tags = ["py313", "3.13-debian13"]', 'tag = "latest"', IMAGE))
    assert err.message.startswith(f"{WHERE}:26: image.tag:") and "latest" in err.message
    assert err.hint and "3.13-debian13" in err.hint


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_extends_merges_tables_and_edits_lists(tmp_path: Path) -> None:
    _write(tmp_path, "base.toml", IMAGE)
    child = _write(tmp_path, "child.toml", """\
extends = "base.toml"
name = "t-compat"

[packages]
include.add = ["dash", "libc-bin"]
include.remove = ["tzdata"]
exclude = []

[image]
user = "nonroot"
workdir = "/home/nonroot"
tags = ["3.13-debian13-compat"]
""")
    p = load(child)
    base = load(tmp_path / "base.toml")
    assert p.name == "t-compat" and p.architectures == base.architectures
    assert p.include == ("libc6", "dash", "libc-bin") and p.exclude == ()
    assert p.image.user == "nonroot" and p.image.workdir == "/home/nonroot"
    assert p.image.tags == ("3.13-debian13-compat",)
    assert p.image.entrypoint == base.image.entrypoint and p.users == base.users
    assert p.sources == base.sources
    assert p.fingerprint() != base.fingerprint()


def test_the_fingerprint_follows_the_base(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.toml", BASE)
    child = _write(tmp_path, "child.toml", 'extends = "base.toml"\nname = "c"\n')
    before = load(child).fingerprint()
    base.write_text(edit('include = ["libc6", "tzdata"]', 'include = ["libc6"]'))
    assert load(child).fingerprint() != before


def test_extends_errors(tmp_path: Path) -> None:
    _write(tmp_path, "bad-base.toml", edit('suite = "trixie"', "suite = 13"))
    child = _write(tmp_path, "child.toml", 'extends = "bad-base.toml"\nname = "c"\n')
    err = fails_load(child)
    assert err.message.startswith(f"{tmp_path / 'bad-base.toml'}:7: source[1].suite"), err.message
    loop = _write(tmp_path, "loop.toml", 'extends = "loop2.toml"\nname = "l"\n')
    _write(tmp_path, "loop2.toml", 'extends = "loop.toml"\nname = "l2"\n')
    assert "cycle" in fails_load(loop).message
    nameless = _write(tmp_path, "nameless.toml", 'extends = "child.toml"\n')
    assert "its own 'name'" in fails_load(nameless).message
    missing = _write(tmp_path, "missing.toml", 'extends = "nope.toml"\nname = "m"\n')
    err = fails_load(missing)
    assert err.message.startswith(f"{missing}:1: extends: cannot read nope.toml"), err.message
    _write(tmp_path, "base.toml", BASE)
    wrong = _write(tmp_path, "wrong.toml",
                   'extends = "base.toml"\nname = "w"\n[packages]\ninclude.remove = ["zsh"]\n')
    err = fails_load(wrong)
    assert err.message.startswith(f"{wrong}:4: packages.include.remove"), err.message


def fails_load(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load(path)
    return info.value


def test_busybox_applets() -> None:
    p = parse(edit('include = ["libc6", "tzdata"]', 'include = ["libc6", "busybox"]')
              + "\n[busybox]\napplets = true\n", WHERE)
    assert p.busybox_applets is True
    assert parse(BASE, WHERE).busybox_applets is False
    e = fails(BASE + "\n[busybox]\napplets = true\n")
    assert "t.toml:24" in str(e) and "busybox.applets" in str(e)
    assert "does not include" in e.message and 'add "busybox"' in (e.hint or "")
    e = fails(BASE + '\n[busybox]\napplets = "yes"\n')
    assert "true or false" in str(e)
    e = fails(BASE + "\n[busybox]\nlinks = true\n")
    assert "links" in str(e)


def test_only_some_paths_of_a_package() -> None:
    p = parse(edit('exclude = ["debconf"]', 'exclude = ["debconf"]\n'
                   'only = { libc-bin = ["usr/lib/locale/C.utf8/**"], tzdata = [] }'), WHERE)
    assert p.name == "t"
    assert p.only == (("libc-bin", ("usr/lib/locale/C.utf8/**",)), ("tzdata", ()))
    e = fails(edit('exclude = ["debconf"]', 'exclude = ["debconf"]\nonly = { debconf = ["x"] }'))
    assert "t.toml:17" in str(e) and "excluded" in e.message
    e = fails(edit('exclude = ["debconf"]', 'exclude = ["debconf"]\nonly = { "Bad Name" = [] }'))
    assert "not a Debian package name" in e.message
    e = fails(edit('exclude = ["debconf"]', 'exclude = ["debconf"]\nonly = { libc-bin = "x" }'))
    assert "packages.only.libc-bin" in str(e)


# -- CPython built from source ---------------------------------------------------------

SOURCE_BUILD = BASE + 'build = "source"\nsource-suite = "trixie-security"\n'


def test_a_source_build_names_its_suite_and_options() -> None:
    p = parse(SOURCE_BUILD + "readline = false\nlto = true\n", WHERE)
    assert p.python_build is not None
    assert (p.python_build.source_suite, p.python_build.readline, p.python_build.pgo,
            p.python_build.lto) == ("trixie-security", False, False, True)
    # the options are lock inputs: changing one makes the lock stale
    assert p.fingerprint() != parse(SOURCE_BUILD, WHERE).fingerprint()
    assert parse(BASE, WHERE).python_build is None


@pytest.mark.parametrize(("text", "message", "hint"), [
    (BASE + 'build = "source"\n', r"t\.toml:20: python: build = \"source\" needs source-suite",
     r"source-suite = \"forky\""),
    (BASE + 'build = "source"\nsource-suite = "forky"\n',
     r"t\.toml:23: python\.source-suite: no \[\[source\]\] has suite 'forky'",
     r'add \[\[source\]\] with suite = "forky" \(and binaries = false'),
    (BASE + 'build = "compiled"\n', r"python\.build: unknown build 'compiled'", r'"source"'),
    (BASE + "readline = false\n", r"t\.toml:22: python\.readline: only for build = \"source\"",
     r'add build = "source"'),
    (edit('include = ["libc6", "tzdata"]', 'include = ["libc6", "python3.13-minimal"]',
          SOURCE_BUILD),
     r"packages\.include: python3\.13-minimal: Debian's CPython, which a source build "
     r"replaces", r'include = \{ remove = \["python3\.13-minimal"\] \}'),
    (edit('include = ["libc6", "tzdata"]', 'include = ["libc6", "libreadline8t64"]',
          SOURCE_BUILD) + "readline = false\n",
     r"libreadline8t64 is GPL-3 line editing", r"or set readline = true"),
    (edit('suite = "trixie"\n', 'suite = "trixie"\nbinaries = false\n',
          edit('suite = "trixie-security"\n', 'suite = "trixie-security"\nbinaries = false\n')),
     r"every \[\[source\]\] has binaries = false", r"only on a suite read for its sources"),
    (edit('architectures = ["amd64", "arm64"]', 'architectures = ["amd64", "armhf", "i386"]',
          SOURCE_BUILD),
     r"t\.toml:3: architectures: CPython is built from source for amd64 and arm64 only, not "
     r"armhf, i386", r'remove armhf, i386, or use build = "debian"'),
    (SOURCE_BUILD + "pgo = true\n",
     r"t\.toml:24: python\.pgo: PGO runs the interpreter being built, which cannot run where "
     r"arm64 is cross-compiled \(on amd64\)", r"set pgo = false, or build amd64 only"),
])
def test_source_build_mistakes(text: str, message: str, hint: str) -> None:
    err = fails(text)
    assert re.search(message, err.message), err.message
    assert err.hint and re.search(hint, err.hint), err.hint


def test_the_documented_source_build_profile_loads(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "python-source.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "profiles").mkdir()
    shutil.copy(ROOT / "profiles" / "py313.toml", tmp_path / "profiles" / "py313.toml")
    (tmp_path / "profiles" / "py313-lean.toml").write_text(example)
    p = load(tmp_path / "profiles" / "py313-lean.toml")
    assert p.python_build is not None and p.python_build.source_suite == "forky"
    assert not p.python_build.readline and p.architectures == ("amd64", "arm64")
    assert [s.suite for s in p.sources if not s.binaries] == ["forky"]
    assert not {"python3.13-minimal", "libreadline8t64"} & set(p.include)
