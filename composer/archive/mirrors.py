"""Finding a mirror for an archive name, at run time, never from the project's files.

Order: a vendored directory (``--vendored DIR``: ``DIR/NAME`` is the only mirror),
``--mirror NAME=URL`` flags, ``COMPOSE_MIRROR_<NAME>`` (upper-case, ``-`` as ``_``), the
user's config file (``[mirrors]`` in ``$COMPOSE_CONFIG`` or
``$XDG_CONFIG_HOME/compose/config.toml``), then the host's apt sources, where an archive
name is the last path part of a ``deb`` URI (``…/debian-security`` serves
``debian-security``). Each place may give several URLs, tried in order.

A URL may hold ``{date}``, as snapshot services' URLs do: it serves only the .debs of a
lock, and ``{date}`` becomes the moment one day after the Date of the Release that the
lock records for the package's suite (but never later than now), written
``YYYYMMDDTHHMMSSZ``. A snapshot service answers a moment with its last import before it;
a day after a Release was published, that import holds the packages it lists (Debian
keeps a version in its pool for a while after a newer one replaces it).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from composer.debian import deb822
from composer.errors import ConfigError, FormatError

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


@dataclass(frozen=True)
class Mirror:
    archive: str
    urls: tuple[str, ...]
    origin: str
    """Where it was found, for messages: 'flag', 'COMPOSE_MIRROR_DEBIAN', a file path."""

    def for_date(self, release_date: datetime | None, now: datetime | None = None
                 ) -> tuple[str, ...]:
        """The URLs to try, ``{date}`` filled from ``release_date`` (see the module's
        note); without a date, the URLs that need one are left out."""
        out = []
        for url in self.urls:
            if DATE not in url:
                out.append(url)
            elif release_date is not None:
                moment = min(release_date + SNAPSHOT_DELAY, now or datetime.now(UTC))
                out.append(url.replace(DATE, moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")))
        return tuple(out)


DATE = "{date}"
SNAPSHOT_DELAY = timedelta(days=1)


def env_name(archive: str) -> str:
    return "COMPOSE_MIRROR_" + archive.upper().replace("-", "_").replace(".", "_")


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("COMPOSE_CONFIG"):
        return Path(env["COMPOSE_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "compose" / "config.toml"


def _clean(url: str, where: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://", "file:/")):
        raise ConfigError(f"{where}: mirror URL {url!r} is not http, https or file",
                          "write it as http://HOST/debian")
    if ("{" in url.replace(DATE, "")) or ("}" in url.replace(DATE, "")):
        raise ConfigError(f"{where}: mirror URL {url!r} holds a placeholder other than {DATE}",
                          "the only placeholder is {date}, for snapshot services")
    return url.rstrip("/")


def parse_flags(flags: Iterable[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for flag in flags:
        name, sep, url = flag.partition("=")
        if not sep or not name or not url:
            raise ConfigError(f"--mirror {flag!r} is not NAME=URL", "for example --mirror debian=http://HOST/debian")
        out.setdefault(name, []).append(_clean(url, "--mirror"))
    return {k: tuple(v) for k, v in out.items()}


def _from_config(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the compose config: {exc}") from exc
    mirrors = data.get("mirrors", {})
    if not isinstance(mirrors, dict):
        raise ConfigError(f"{path}: [mirrors] must be a table of NAME = URL or [URL, ...]")
    out: dict[str, tuple[str, ...]] = {}
    for name, value in mirrors.items():
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or not urls:
            raise ConfigError(f"{path}: mirrors.{name} must be a URL or a list of URLs")
        out[name] = tuple(_clean(u, f"{path}: mirrors.{name}") for u in urls)
    return out


def apt_source_uris(paths: Iterable[Path] = APT_SOURCES) -> list[tuple[str, str]]:
    """(uri, file) for every enabled ``deb`` entry of the host's apt sources, in apt's order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".list", ".sources"))
        elif p.is_file():
            files.append(p)
    out: list[tuple[str, str]] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if f.suffix == ".sources":
            try:
                paragraphs = deb822.parse(text, str(f), comments=True)
            except FormatError:
                continue
            for para in paragraphs:
                if para.get("Enabled", "yes").lower() == "no":
                    continue
                if "deb" not in para.get("Types", "").split():
                    continue
                out += [(u, str(f)) for u in para.get("URIs", "").split()]
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if not words or words[0] != "deb":
                    continue
                words = words[1:]
                if words and words[0].startswith("["):
                    while words and not words[0].endswith("]"):
                        words.pop(0)
                    words = words[1:]
                if words:
                    out.append((words[0], str(f)))
    return out


class Mirrors:
    """Resolves archive names to mirror URLs from every configured place."""

    def __init__(
        self,
        flags: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        apt_paths: Iterable[Path] = APT_SOURCES,
        vendored: Path | None = None,
    ) -> None:
        self.vendored = vendored.absolute() if vendored else None
        self.env = dict(os.environ if env is None else env)
        self.flags = parse_flags(flags)
        self.config_file = config_path(self.env)
        self._config: dict[str, tuple[str, ...]] | None = None
        self.apt_paths = tuple(apt_paths)

    def find(self, archive: str) -> Mirror:
        if self.vendored is not None:
            return Mirror(archive, ((self.vendored / archive).as_uri(),), "--vendored")
        if archive in self.flags:
            return Mirror(archive, self.flags[archive], "--mirror")
        var = env_name(archive)
        if self.env.get(var):
            return Mirror(archive, tuple(_clean(u, var) for u in self.env[var].split()), var)
        if self._config is None:
            self._config = _from_config(self.config_file)
        if archive in self._config:
            return Mirror(archive, self._config[archive], str(self.config_file))
        urls: list[str] = []
        origin = ""
        for uri, where in apt_source_uris(self.apt_paths):
            url = uri.rstrip("/")
            if (url.rsplit("/", 1)[-1] == archive and url.startswith(("http://", "https://", "file:/"))
                    and url not in urls):
                urls.append(url)
                origin = origin or where
        if urls:
            return Mirror(archive, tuple(urls), origin)
        raise ConfigError(
            f"no mirror is configured for the archive {archive!r}",
            f"pass --mirror {archive}=URL, set {var}=URL, add {archive} = \"URL\" under "
            f"[mirrors] in {self.config_file}, or add a deb source whose URI ends in "
            f"/{archive} to the host's apt sources",
        )
