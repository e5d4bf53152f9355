"""Where mirrors come from (composer.archive.mirrors) and where the cache lives
(composer.archive.cache). Pure: every test gives its own env and apt source files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from composer.archive.cache import Cache, default_root
from composer.archive.mirrors import Mirror, Mirrors, apt_source_uris, config_path, env_name
from composer.errors import ConfigError

FLAG = "http://flag.example.invalid/debian"
ENV = "http://env.example.invalid/debian"
CONF = "http://conf.example.invalid/debian"
APT = "http://apt.example.invalid/debian"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def base_env(tmp_path: Path) -> dict[str, str]:
    """No COMPOSE_* variable; the config file would be tmp/config/compose/config.toml."""
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "compose" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def apt_tree(tmp_path: Path, sources_list: str = "", **parts: str) -> list[Path]:
    """An apt layout: tmp/apt/sources.list and tmp/apt/sources.list.d/NAME (dots as _)."""
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (root / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return [root / "sources.list", root / "sources.list.d"]


# -- the order: flag, env, config file, apt sources ----------------------------------------


def test_order_flag_env_config_apt(tmp_path: Path) -> None:
    env = base_env(tmp_path) | {"COMPOSE_MIRROR_DEBIAN": ENV}
    conf = write_config(tmp_path, f'[mirrors]\ndebian = "{CONF}"\n')
    apt = apt_tree(tmp_path, f"deb {APT} trixie main\n")

    assert Mirrors([f"debian={FLAG}"], env, apt).find("debian") == Mirror(
        "debian", (FLAG,), "--mirror")
    assert Mirrors([], env, apt).find("debian") == Mirror(
        "debian", (ENV,), "COMPOSE_MIRROR_DEBIAN")
    env.pop("COMPOSE_MIRROR_DEBIAN")
    assert Mirrors([], env, apt).find("debian") == Mirror("debian", (CONF,), str(conf))
    conf.unlink()
    assert Mirrors([], env, apt).find("debian") == Mirror(
        "debian", (APT,), str(tmp_path / "apt" / "sources.list"))


def test_each_archive_name_is_looked_up_on_its_own(tmp_path: Path) -> None:
    env = base_env(tmp_path) | {"COMPOSE_MIRROR_DEBIAN_SECURITY": "http://sec.example.invalid/debian-security"}
    apt = apt_tree(tmp_path, f"deb {APT} trixie main\n")
    m = Mirrors([f"debian={FLAG}"], env, apt)
    assert m.find("debian").urls == (FLAG,)
    assert m.find("debian-security") == Mirror(
        "debian-security", ("http://sec.example.invalid/debian-security",),
        "COMPOSE_MIRROR_DEBIAN_SECURITY")


def test_env_name() -> None:
    assert env_name("debian") == "COMPOSE_MIRROR_DEBIAN"
    assert env_name("debian-security") == "COMPOSE_MIRROR_DEBIAN_SECURITY"
    assert env_name("debian.ports") == "COMPOSE_MIRROR_DEBIAN_PORTS"


def test_empty_env_variable_is_not_a_mirror(tmp_path: Path) -> None:
    env = base_env(tmp_path) | {"COMPOSE_MIRROR_DEBIAN": ""}
    write_config(tmp_path, f'[mirrors]\ndebian = "{CONF}"\n')
    assert Mirrors([], env, []).find("debian").urls == (CONF,)


def test_several_urls_in_order(tmp_path: Path) -> None:
    second = "https://second.example.invalid/debian/"
    m = Mirrors([f"debian={FLAG}", f"debian={second}"], base_env(tmp_path), [])
    assert m.find("debian").urls == (FLAG, second.rstrip("/"))
    env = base_env(tmp_path) | {"COMPOSE_MIRROR_DEBIAN": f"{ENV}  {second}"}
    assert Mirrors([], env, []).find("debian").urls == (ENV, second.rstrip("/"))


# -- the config file -------------------------------------------------------------------------


def test_config_file_string_and_list(tmp_path: Path) -> None:
    write_config(tmp_path, f"""\
# my mirrors
[mirrors]
debian = ["{CONF}", "{APT}/"]
debian-security = "http://conf.example.invalid/debian-security"
""")
    m = Mirrors([], base_env(tmp_path), [])
    assert m.find("debian").urls == (CONF, APT)
    assert m.find("debian-security").urls == ("http://conf.example.invalid/debian-security",)


def test_config_path(tmp_path: Path) -> None:
    assert config_path({"HOME": "/h"}) == Path("/h/.config/compose/config.toml")
    assert config_path({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}) == Path("/x/compose/config.toml")
    assert config_path({"HOME": "/h", "XDG_CONFIG_HOME": "/x", "COMPOSE_CONFIG": "/c.toml"}) == Path("/c.toml")


def test_compose_config_variable(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text(f'[mirrors]\ndebian = "{CONF}"\n')
    m = Mirrors([], base_env(tmp_path) | {"COMPOSE_CONFIG": str(other)}, [])
    assert m.find("debian") == Mirror("debian", (CONF,), str(other))


def test_config_without_mirrors_table_falls_through(tmp_path: Path) -> None:
    write_config(tmp_path, "[other]\nx = 1\n")
    apt = apt_tree(tmp_path, f"deb {APT} trixie main\n")
    assert Mirrors([], base_env(tmp_path), apt).find("debian").urls == (APT,)


@pytest.mark.parametrize("text, words", [
    ("[mirrors\n", "cannot read the compose config"),
    ('mirrors = "x"\n', "[mirrors] must be a table"),
    ("[mirrors]\ndebian = 1\n", "mirrors.debian must be a URL or a list of URLs"),
    ("[mirrors]\ndebian = []\n", "mirrors.debian must be a URL or a list of URLs"),
    ('[mirrors]\ndebian = "ftp://x.example.invalid/debian"\n', "mirror URL 'ftp://x.example.invalid/debian' is not http"),
])
def test_bad_config_file(tmp_path: Path, text: str, words: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        Mirrors([], base_env(tmp_path), []).find("debian")
    assert str(path) in info.value.message
    assert words in info.value.message


# -- the host's apt sources ------------------------------------------------------------------


def test_apt_deb822_sources(tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, debian_sources="""\
# the main archive
Types: deb deb-src
URIs: http://one.example.invalid/debian/ http://two.example.invalid/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src-only.example.invalid/debian
Suites: trixie
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example.invalid/debian
Suites: trixie
Components: main

Types: deb
URIs: http://sec.example.invalid/debian-security
Suites: trixie-security
Components: main
""")
    where = str(tmp_path / "apt" / "sources.list.d" / "debian.sources")
    assert apt_source_uris(apt) == [
        ("http://one.example.invalid/debian/", where),
        ("http://two.example.invalid/debian", where),
        ("http://sec.example.invalid/debian-security", where),
    ]
    m = Mirrors([], base_env(tmp_path), apt)
    assert m.find("debian") == Mirror(
        "debian", ("http://one.example.invalid/debian", "http://two.example.invalid/debian"), where)
    assert m.find("debian-security").urls == ("http://sec.example.invalid/debian-security",)


def test_apt_one_line_list(tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, sources_list="""\
# deb http://commented.example.invalid/debian trixie main
deb-src http://src.example.invalid/debian trixie main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://opts.example.invalid/debian trixie main
deb [ signed-by=/usr/share/keyrings/x.gpg ] http://spaced.example.invalid/debian-security trixie-security main
deb [signed-by=/usr/share/keyrings/x.gpg] https://plain.example.invalid/debian/ trixie main  # a comment
deb cdrom:[Debian GNU/Linux]/ trixie main
""", extra_list="deb http://later.example.invalid/debian trixie main\n")
    where = str(tmp_path / "apt" / "sources.list")
    assert [(u, w) for u, w in apt_source_uris(apt) if "://" in u] == [
        ("http://opts.example.invalid/debian", where),
        ("http://spaced.example.invalid/debian-security", where),
        ("https://plain.example.invalid/debian/", where),
        ("http://later.example.invalid/debian", str(tmp_path / "apt" / "sources.list.d" / "extra.list")),
    ]
    m = Mirrors([], base_env(tmp_path), apt)
    assert m.find("debian") == Mirror("debian", (
        "http://opts.example.invalid/debian", "https://plain.example.invalid/debian",
        "http://later.example.invalid/debian"), where)
    assert m.find("debian-security").urls == ("http://spaced.example.invalid/debian-security",)


def test_apt_archive_name_is_the_last_path_part(tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, sources_list="""\
deb http://a.example.invalid/pub/linux/debian trixie main
deb http://b.example.invalid/debian-archive/debian-security trixie-security main
deb http://c.example.invalid/debian/extra trixie main
deb http://d.example.invalid/mydebian trixie main
""")
    m = Mirrors([], base_env(tmp_path), apt)
    assert m.find("debian").urls == ("http://a.example.invalid/pub/linux/debian",)
    assert m.find("debian-security").urls == (
        "http://b.example.invalid/debian-archive/debian-security",)
    assert m.find("extra").urls == ("http://c.example.invalid/debian/extra",)


def test_apt_files_other_than_list_and_sources_are_ignored(tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, old_list_save=f"deb {APT} trixie main\n",
                   x_sources_disabled=f"Types: deb\nURIs: {APT}\nSuites: trixie\n")
    assert apt_source_uris(apt) == []
    assert apt_source_uris([tmp_path / "missing"]) == []


# -- nothing found, bad flags ----------------------------------------------------------------


def test_nothing_found(tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, f"deb {APT} trixie main\n")
    with pytest.raises(ConfigError) as info:
        Mirrors([f"debian={FLAG}"], base_env(tmp_path), apt).find("debian-security")
    err = info.value
    assert err.message == "no mirror is configured for the archive 'debian-security'"
    assert err.hint is not None
    for words in ("--mirror debian-security=URL", "COMPOSE_MIRROR_DEBIAN_SECURITY=URL",
                  str(tmp_path / "config" / "compose" / "config.toml"), "[mirrors]",
                  "apt sources", "/debian-security"):
        assert words in err.hint, words


@pytest.mark.parametrize("flag", [
    "debian", "debian=", "=http://x.example.invalid/debian", "",
    "debian=ftp://x.example.invalid/debian", "debian=x.example.invalid/debian",
])
def test_malformed_mirror_flag(tmp_path: Path, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        Mirrors([flag], base_env(tmp_path), [])
    assert "--mirror" in info.value.message
    assert info.value.hint


def test_bad_url_in_env(tmp_path: Path) -> None:
    env = base_env(tmp_path) | {"COMPOSE_MIRROR_DEBIAN": "x.example.invalid/debian"}
    with pytest.raises(ConfigError, match="COMPOSE_MIRROR_DEBIAN: mirror URL"):
        Mirrors([], env, []).find("debian")


def test_bad_flag_through_the_cli(tmp_path: Path, env: dict[str, str],
                                  compose: Callable[..., tuple[int, str, str]]) -> None:
    prof = tmp_path / "t.toml"
    prof.write_text('architectures = ["amd64"]\n[[source]]\narchive = "debian"\nsuite = "trixie"\n'
                    '[packages]\ninclude = ["libc6"]\n')
    rc, _, err = compose(env, "lock", prof, "--mirror", "debian")
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines() == ["error: --mirror 'debian' is not NAME=URL",
                                "hint: for example --mirror debian=http://HOST/debian"]


# -- the cache ---------------------------------------------------------------------------------


def test_cache_root() -> None:
    assert default_root({"COMPOSE_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/c")
    assert default_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/compose")
    assert default_root({"HOME": "/h"}) == Path("/h/.cache/compose")
    assert default_root({"COMPOSE_CACHE_DIR": "", "HOME": "/h"}) == Path("/h/.cache/compose")


def test_cache_is_created_and_stores_by_hash(tmp_path: Path) -> None:
    cache = Cache(default_root({"COMPOSE_CACHE_DIR": str(tmp_path / "c")}))
    assert all((tmp_path / "c" / sub).is_dir() for sub in ("sha256", "state", "tmp"))
    digest = cache.put_bytes(b"hello")
    assert digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert cache.blob_path(digest) == tmp_path / "c" / "sha256" / "2c" / digest
    assert cache.has(digest) and bytes(cache.open_map(digest)) == b"hello"
    assert not any((tmp_path / "c" / "tmp").iterdir())


def test_unusable_cache_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as info:
        Cache(tmp_path / "file" / "cache")
    assert "COMPOSE_CACHE_DIR" in (info.value.hint or "")


def test_snapshot_date_is_a_day_after_the_release_and_never_later_than_now() -> None:
    from datetime import UTC, datetime

    from composer.archive.mirrors import Mirror

    m = Mirror("debian", ("http://a/debian", "http://snap/archive/debian/{date}"), "--mirror")
    released = datetime(2026, 11, 2, 20, 15, 3, tzinfo=UTC)
    assert m.for_date(released, now=datetime(2027, 1, 1, tzinfo=UTC)) == (
        "http://a/debian", "http://snap/archive/debian/20261103T201503Z")
    assert m.for_date(released, now=datetime(2026, 11, 3, 1, 0, tzinfo=UTC)) == (
        "http://a/debian", "http://snap/archive/debian/20261103T010000Z")
    assert m.for_date(None) == ("http://a/debian",)
