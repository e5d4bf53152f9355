"""Build signed Debian-style archives on disk and serve them over loopback HTTP.

Tests describe exactly the archive they need in a few lines::

    arch = FakeArchive(tmp_path / "mirror", name="debian")
    arch.add("trixie", "libfoo1", "1.2-3", depends="libc6 (>= 2.36)",
             files={"usr/lib/x/libfoo.so.1": b"ELF"})
    arch.publish("trixie")
    with arch.serve() as url:          # "http://127.0.0.1:PORT/debian"
        ...

Source packages go in with :meth:`FakeArchive.add_source`::

    arch.add_source("trixie", "foo", "1.2-3",
                    {"foo_1.2-3.dsc": b"...", "foo_1.2.orig.tar.xz": b"..."})

Everything is produced by an implementation independent of ``composer``: real
``ar``/``tar`` ``.deb`` files, ``Packages`` and ``Sources`` indices, a
``Release`` file signed with real ``gpg`` (``InRelease`` and ``Release.gpg``)
and ``by-hash`` copies.
After :meth:`FakeArchive.publish`, tests may tamper with any file through
:meth:`FakeArchive.path`, and :meth:`FakeArchive.serve` can record requests and
make chosen paths misbehave.

Signing keys live in ``tests/data`` and were made with :meth:`Key.generate`
(``python -m tests.fakearchive`` writes them again).
"""

from __future__ import annotations

import atexit
import bz2
import contextlib
import functools
import gzip
import hashlib
import io
import lzma
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import zstandard

__all__ = [
    "DATA_DIR",
    "DEFAULT_DATE",
    "OTHER_KEY",
    "TEST_KEY",
    "Compression",
    "FakeArchive",
    "Key",
    "Override",
    "PackageRecord",
    "Response",
    "ServedURLs",
    "SourceRecord",
    "compare_versions",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Directory holding the committed test keys."""

DEFAULT_DATE = "Sat, 12 Sep 2026 07:55:41 UTC"
"""``Date:`` written into ``Release`` unless a test chooses another."""

MTIME = 1_700_000_000
"""Modification time stamped on every ``ar`` and ``tar`` member."""

DEFAULT_MAINTAINER = "Compose Tests <compose-tests@example.invalid>"

Compression = Literal["xz", "zst", "gz", "bz2", "none"]
"""Compression of a ``.deb`` member or of an index file; ``none`` means plain."""


def _or(level: int | None, default: int) -> int:
    return default if level is None else level


_COMPRESSORS: dict[str, Callable[[bytes, int | None], bytes]] = {
    "xz": lambda data, level: lzma.compress(
        data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level
    ),
    "zst": lambda data, level: zstandard.ZstdCompressor(level=_or(level, 3)).compress(data),
    "gz": lambda data, level: gzip.compress(data, compresslevel=_or(level, 9), mtime=0),
    "bz2": lambda data, level: bz2.compress(data, _or(level, 9)),
    "none": lambda data, level: data,
}

_MAINTAINER_SCRIPTS = frozenset({"preinst", "postinst", "prerm", "postrm", "config"})


def _compress(data: bytes, compression: str, level: int | None = None) -> bytes:
    """*data* compressed at *level* (default: xz 6, zstd 3, gzip 9, bzip2 9)."""
    try:
        compressor = _COMPRESSORS[compression]
    except KeyError:
        raise ValueError(f"unknown compression {compression!r}") from None
    return compressor(data, level)


def _suffix(compression: str) -> str:
    """File-name suffix for *compression*: ``".xz"``, or ``""`` for ``none``."""
    _compress(b"", compression)  # validates the name
    return "" if compression == "none" else f".{compression}"


# --------------------------------------------------------------------------------------
# Debian version comparison (only used to order Packages stanzas).


def _char_order(char: str) -> int:
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _is_digit(text: str, index: int) -> bool:
    return index < len(text) and "0" <= text[index] <= "9"


def _compare_fragment(a: str, b: str) -> int:
    """Compare upstream versions or revisions with dpkg's ``verrevcmp`` rules."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a, i)) or (j < len(b) and not _is_digit(b, j)):
            left = _char_order(a[i]) if i < len(a) and not _is_digit(a, i) else 0
            right = _char_order(b[j]) if j < len(b) and not _is_digit(b, j) else 0
            if left != right:
                return -1 if left < right else 1
            i += 1
            j += 1
        start_i, start_j = i, j
        while _is_digit(a, i):
            i += 1
        while _is_digit(b, j):
            j += 1
        left_number = int(a[start_i:i] or "0")
        right_number = int(b[start_j:j] or "0")
        if left_number != right_number:
            return -1 if left_number < right_number else 1
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as Debian version *a* sorts before, equal to or after *b*."""
    epoch_a, upstream_a, revision_a = _split_version(a)
    epoch_b, upstream_b, revision_b = _split_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _compare_fragment(upstream_a, upstream_b) or _compare_fragment(revision_a, revision_b)


# --------------------------------------------------------------------------------------
# gpg


def _run_gpg(home: Path, args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run ``gpg --batch`` with ``GNUPGHOME=home`` for this subprocess only; return stdout."""
    command = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
    command += args
    result = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        env={**os.environ, "GNUPGHOME": str(home)},
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{stderr}")
    return result.stdout


def _gpg_time(moment: datetime) -> list[str]:
    """Options making gpg act as if it ran at *moment* (``--faked-system-time``)."""
    return ["--faked-system-time", moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S")]


def _new_gnupghome() -> Path:
    home = Path(tempfile.mkdtemp(prefix="fakearchive-gnupg-"))
    home.chmod(0o700)
    return home


def _remove_gnupghome(home: Path) -> None:
    """Stop the agent gpg may have started for *home*, then delete *home*."""
    with contextlib.suppress(OSError):
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
    shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class Key:
    """An OpenPGP key pair kept as ``<directory>/<stem>.{sec.asc,pub.asc,pub.pgp}``."""

    directory: Path
    stem: str

    @property
    def secret_path(self) -> Path:
        """Armored secret key (no passphrase)."""
        return self.directory / f"{self.stem}.sec.asc"

    @property
    def public_path(self) -> Path:
        """Armored public key."""
        return self.directory / f"{self.stem}.pub.asc"

    @property
    def public_binary_path(self) -> Path:
        """Binary public key, usable directly as a ``gpgv --keyring``."""
        return self.directory / f"{self.stem}.pub.pgp"

    @functools.cached_property
    def fingerprint(self) -> str:
        """Upper-case hex fingerprint of the primary key, read from the public key file."""
        listing = _SIGNER.run(["--with-colons", "--show-keys", str(self.public_path)])
        for line in listing.decode().splitlines():
            fields = line.split(":")
            if fields[0] == "fpr":
                return fields[9]
        raise ValueError(f"no fingerprint found in {self.public_path}")

    @classmethod
    def generate(
        cls,
        directory: Path,
        stem: str,
        uid: str,
        algorithm: str = "ed25519",
        expire: str = "never",
        *,
        created: datetime | None = None,
        revoked: bool = False,
    ) -> Key:
        """Create a new signing-only key without passphrase and write its three files.

        *algorithm* and *expire* are passed to ``gpg --quick-generate-key``
        (e.g. ``"rsa2048"``, ``"2y"``); *expire* counts from *created*, the key's
        creation time (default: now), so a key made years ago with ``"1y"`` has
        expired. With *revoked*, the public key files hold the key's revocation
        certificate (as after ``gpg --import`` of it); the secret key file, written
        before, can still sign.
        """
        directory.mkdir(parents=True, exist_ok=True)
        home = _new_gnupghome()
        try:
            when = _gpg_time(created) if created is not None else []
            _run_gpg(home, [*when, "--quick-generate-key", uid, algorithm, "sign", expire])
            listing = _run_gpg(home, ["--with-colons", "--list-secret-keys", uid]).decode()
            fingerprint = next(
                line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
            )
            key = cls(directory, stem)
            key.secret_path.write_bytes(
                _run_gpg(home, ["--armor", "--export-secret-keys", fingerprint])
            )
            if revoked:
                # gpg stores a revocation certificate for each new key, its armor
                # guarded by a leading colon.
                certificate = (home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_bytes()
                _run_gpg(home, ["--import"], certificate.replace(b"\n:-----", b"\n-----"))
            key.public_path.write_bytes(_run_gpg(home, ["--armor", "--export", fingerprint]))
            key.public_binary_path.write_bytes(_run_gpg(home, ["--export", fingerprint]))
        finally:
            _remove_gnupghome(home)
        return key


class _Signer:
    """One throwaway GNUPGHOME per process, holding every secret key used so far."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._home: Path | None = None
        self._imported: set[Path] = set()

    def _ensure_home(self) -> Path:
        with self._lock:
            if self._home is None:
                self._home = _new_gnupghome()
                atexit.register(self.close)
            return self._home

    def run(self, args: Sequence[str], stdin: bytes | None = None) -> bytes:
        return _run_gpg(self._ensure_home(), args, stdin)

    def sign(
        self,
        data: bytes,
        keys: Sequence[Key],
        *,
        clear: bool,
        signed_at: datetime | None = None,
        signature_expires: str | None = None,
    ) -> bytes:
        """Clear-sign *data*, or make an armored detached signature of it, with *keys*.

        *signed_at* dates the signatures (even before a key's creation);
        *signature_expires* (e.g. ``"1d"``) gives them an expiration time.
        """
        if not keys:
            raise ValueError("signing needs at least one key")
        with self._lock:
            for key in keys:
                if key.secret_path not in self._imported:
                    # Even a key made in the future (Key.generate's *created*).
                    self.run(["--ignore-time-conflict", "--import", str(key.secret_path)])
                    self._imported.add(key.secret_path)
        args = ["--digest-algo", "SHA256"]
        if signed_at is not None:
            args += [*_gpg_time(signed_at), "--ignore-time-conflict"]
        if signature_expires is not None:
            args += ["--default-sig-expire", signature_expires]
        for key in keys:
            args += ["--local-user", key.fingerprint]
        args += ["--clearsign"] if clear else ["--detach-sign", "--armor"]
        return self.run(args, stdin=data)

    def close(self) -> None:
        with self._lock:
            if self._home is not None:
                _remove_gnupghome(self._home)
                self._home = None
                self._imported.clear()


_SIGNER = _Signer()

TEST_KEY = Key(DATA_DIR, "test-archive-key")
"""The archive key tests trust (ed25519)."""

OTHER_KEY = Key(DATA_DIR, "other-key")
"""A second, unrelated key (rsa2048), for wrong-key and multi-signature tests."""


# --------------------------------------------------------------------------------------
# .deb construction


def _ar(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A System V ``ar`` archive as written by dpkg-deb."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        if len(name) > 16:
            raise ValueError(f"ar member name too long: {name!r}")
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n"
        out += header.encode("ascii")
        out += data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def _tar(entries: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _tarinfo(
    path: str, kind: bytes, mode: int, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo("./" if path == "." else f"./{path}")
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = MTIME
    return info


def _clean_member_path(path: str) -> str:
    """Normalise ``/usr/x`` and ``./usr/x`` to ``usr/x``; refuse ``..`` and empty paths."""
    cleaned = path.removeprefix("./").strip("/")
    parts = cleaned.split("/")
    if not cleaned or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"bad path in package: {path!r}")
    return cleaned


def _sort_key(path: str) -> tuple[str, ...]:
    return () if path == "." else tuple(path.split("/"))


@dataclass(frozen=True)
class _Payload:
    data_tar: bytes
    md5sums: bytes
    installed_size: int


def _build_payload(
    files: Mapping[str, bytes],
    symlinks: Mapping[str, str],
    directories: Iterable[str],
    modes: Mapping[str, int],
) -> _Payload:
    """The uncompressed ``data.tar`` with parents of every entry, plus ``md5sums``."""
    clean_files = {_clean_member_path(p): data for p, data in files.items()}
    clean_links = {_clean_member_path(p): target for p, target in symlinks.items()}
    clean_modes = {_clean_member_path(p): mode for p, mode in modes.items()}
    dirs = {"."} | {_clean_member_path(p) for p in directories}
    if clash := (clean_files.keys() & clean_links.keys()) | (
        (clean_files.keys() | clean_links.keys()) & dirs
    ):
        raise ValueError(f"paths given more than once: {sorted(clash)}")
    for path in [*clean_files, *clean_links, *dirs]:
        parts = path.split("/")
        dirs.update("/".join(parts[:n]) for n in range(1, len(parts)))
    if clash := dirs & (clean_files.keys() | clean_links.keys()):
        raise ValueError(f"paths used both as directory and as file: {sorted(clash)}")

    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    installed_kib = 0
    for path in sorted(dirs | clean_files.keys() | clean_links.keys(), key=_sort_key):
        if path in clean_files:
            data = clean_files[path]
            mode = clean_modes.get(path, 0o644)
            entries.append((_tarinfo(path, tarfile.REGTYPE, mode, size=len(data)), data))
            installed_kib += (len(data) + 1023) // 1024
        elif path in clean_links:
            entries.append(
                (_tarinfo(path, tarfile.SYMTYPE, 0o777, linkname=clean_links[path]), None)
            )
            installed_kib += 1
        else:
            entries.append((_tarinfo(path, tarfile.DIRTYPE, clean_modes.get(path, 0o755)), None))
            installed_kib += 1
    md5sums = "".join(
        f"{hashlib.md5(clean_files[path]).hexdigest()}  {path}\n"
        for path in sorted(clean_files, key=_sort_key)
    )
    return _Payload(_tar(entries), md5sums.encode(), installed_kib)


def _control_tar(control: bytes, md5sums: bytes, extra: Mapping[str, bytes]) -> bytes:
    members: dict[str, bytes] = {"control": control}
    if md5sums:
        members["md5sums"] = md5sums
    for name, data in extra.items():
        members[_clean_member_path(name)] = data
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_tarinfo(".", tarfile.DIRTYPE, 0o755), None)
    ]
    for name in sorted(members):
        mode = 0o755 if name in _MAINTAINER_SCRIPTS else 0o644
        entries.append(
            (_tarinfo(name, tarfile.REGTYPE, mode, size=len(members[name])), members[name])
        )
    return _tar(entries)


# --------------------------------------------------------------------------------------
# deb822 helpers


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _relation(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ", ".join(value)


def _description(text: str) -> str:
    """A control-file description: the synopsis, then continuation lines (`` .`` if empty)."""
    synopsis, *body = text.strip("\n").split("\n")
    return "\n".join([synopsis, *(f" {line}" if line.strip() else " ." for line in body)])


def _update_fields(fields: dict[str, str], updates: Mapping[str, str | None]) -> None:
    """Apply *updates* in place: ``None`` deletes a field; names match case-insensitively."""
    for name, value in updates.items():
        existing = next((key for key in fields if key.lower() == name.lower()), None)
        if value is None:
            if existing is not None:
                del fields[existing]
        elif existing is not None:
            fields[existing] = value
        else:
            fields[name] = value


def _render(fields: Mapping[str, str]) -> str:
    """One deb822 stanza; multi-line values continue on lines starting with a space."""
    lines = []
    for name, value in fields.items():
        if value.startswith("\n"):
            lines.append(f"{name}:{value}")
        else:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def _format_date(value: str | datetime) -> str:
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


def _source_name(name: str, source: str | None) -> str:
    return name if source is None else source.split("(", 1)[0].strip()


def _pool_prefix(source: str) -> str:
    return source[:4] if source.startswith("lib") and len(source) > 3 else source[:1]


# --------------------------------------------------------------------------------------
# The archive


class _Stanza:
    """An index stanza kept as ``stanza_fields``, in order."""

    stanza_fields: tuple[tuple[str, str], ...]

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.stanza_fields)

    @property
    def stanza(self) -> str:
        """The stanza as written to the index (without the separating blank line)."""
        return _render(self.fields)


def _index_order(a: PackageRecord | SourceRecord, b: PackageRecord | SourceRecord) -> int:
    """An index's order: by name, then version, then architecture (binaries only)."""
    if a.name != b.name:
        return -1 if a.name < b.name else 1
    arch_a, arch_b = getattr(a, "architecture", ""), getattr(b, "architecture", "")
    return compare_versions(a.version, b.version) or (arch_a > arch_b) - (arch_a < arch_b)


@dataclass(frozen=True)
class PackageRecord(_Stanza):
    """A package added to a suite of a :class:`FakeArchive`, as its Packages stanza shows it."""

    suite: str
    component: str
    name: str
    version: str
    architecture: str
    source: str
    """Source package name (without version)."""
    filename: str
    """Pool path relative to the archive, e.g. ``pool/main/libf/libfoo/libfoo1_1.2-3_amd64.deb``."""
    size: int
    md5: str
    sha256: str
    path: Path
    """The ``.deb`` on disk."""
    stanza_fields: tuple[tuple[str, str], ...]
    """Fields of the Packages stanza, in order."""

    @property
    def arch(self) -> str:
        return self.architecture


@dataclass(frozen=True)
class SourceRecord(_Stanza):
    """A source package added to a suite of a :class:`FakeArchive`, as its Sources stanza shows it."""

    suite: str
    component: str
    name: str
    version: str
    directory: str
    """Pool directory relative to the archive, e.g. ``pool/main/h/hello``."""
    paths: tuple[Path, ...]
    """The source package's files on disk, in the order given."""
    stanza_fields: tuple[tuple[str, str], ...]
    """Fields of the Sources stanza, in order."""


Response = tuple[int, bytes] | tuple[int, bytes, Mapping[str, str]]
"""``(status, body)`` or ``(status, body, headers)`` sent instead of the file."""

Override = Response | Callable[[], Response | None]
"""A fixed :data:`Response`, or a callable making one per request (``None``: serve normally)."""


class ServedURLs(dict[str, str]):
    """Archive name -> URL of every archive served by :meth:`FakeArchive.serve_many`."""

    def __init__(self, base_url: str, names: Iterable[str]) -> None:
        super().__init__({name: f"{base_url}/{name}" for name in names})
        self.base_url = base_url
        """``http://127.0.0.1:PORT``; each archive is at ``/<name>`` under it."""


class FakeArchive:
    """A Debian-style archive under ``<root>/<name>/``, served at URL path ``/<name>/``."""

    def __init__(self, root: Path, name: str = "debian") -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"bad archive name {name!r}")
        self.root = Path(root)
        self.name = name
        self.directory = self.root / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self._packages: list[PackageRecord] = []
        self._sources: list[SourceRecord] = []

    def path(self, relative: str) -> Path:
        """The on-disk path of *relative* (e.g. ``"dists/trixie/InRelease"``) in the archive."""
        return self.directory / relative

    def _write_pool(self, relative: str, data: bytes) -> Path:
        """Write a pool file; the same path may be written again only with the same bytes."""
        path = self.path(relative)
        if path.exists() and path.read_bytes() != data:
            raise ValueError(f"{relative} already exists with different content")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def packages(self, suite: str | None = None) -> list[PackageRecord]:
        """Packages added so far (in *suite* only, if given)."""
        return [p for p in self._packages if suite is None or p.suite == suite]

    def sources(self, suite: str | None = None) -> list[SourceRecord]:
        """Source packages added so far (in *suite* only, if given)."""
        return [s for s in self._sources if suite is None or s.suite == suite]

    def add(
        self,
        suite: str,
        name: str,
        version: str,
        architecture: str = "amd64",
        *,
        depends: str | Sequence[str] | None = None,
        pre_depends: str | Sequence[str] | None = None,
        recommends: str | Sequence[str] | None = None,
        provides: str | Sequence[str] | None = None,
        conflicts: str | Sequence[str] | None = None,
        breaks: str | Sequence[str] | None = None,
        replaces: str | Sequence[str] | None = None,
        multi_arch: str | None = None,
        essential: bool = False,
        priority: str = "optional",
        section: str = "misc",
        source: str | None = None,
        maintainer: str = DEFAULT_MAINTAINER,
        description: str | None = None,
        component: str = "main",
        files: Mapping[str, bytes | str] | None = None,
        symlinks: Mapping[str, str] | None = None,
        directories: Iterable[str] = (),
        modes: Mapping[str, int] | None = None,
        control_files: Mapping[str, bytes | str] | None = None,
        extra: Mapping[str, str | None] | None = None,
        index_fields: Mapping[str, str | None] | None = None,
        data_compression: Compression = "xz",
        control_compression: Compression = "xz",
        compression_level: int | None = None,
    ) -> PackageRecord:
        """Build a ``.deb`` into the pool and list it in *suite*/*component*.

        Relationship fields take a string or a list of alternatives groups
        (joined with ``", "``). *files* maps paths to contents (mode 0644 unless
        *modes* says otherwise), *symlinks* maps paths to link targets, and
        *directories* adds empty directories; parent directories are implied.
        *control_files* adds members such as ``postinst`` or ``conffiles`` to
        ``control.tar``. *extra* adds or replaces fields in both the control
        file and the Packages stanza; *index_fields* changes only the stanza
        (e.g. a wrong ``SHA256``). A ``None`` value removes a field.

        *compression_level* (e.g. 1, for speed) applies to both members;
        by default xz uses 6, zstd 3, gzip and bzip2 9.

        The same package, version and architecture may be added to several
        suites as long as its ``.deb`` comes out identical.
        """
        if any(
            (p.suite, p.component, p.name, p.version, p.architecture)
            == (suite, component, name, version, architecture)
            for p in self._packages
        ):
            raise ValueError(f"{name} {version} {architecture} already in {suite}/{component}")
        payload = _build_payload(
            {path: _as_bytes(data) for path, data in (files or {}).items()},
            symlinks or {},
            directories,
            modes or {},
        )
        candidates: dict[str, str | None] = {
            "Package": name,
            "Source": source,
            "Version": version,
            "Architecture": architecture,
            "Maintainer": maintainer,
            "Installed-Size": str(payload.installed_size),
            "Pre-Depends": _relation(pre_depends),
            "Depends": _relation(depends),
            "Recommends": _relation(recommends),
            "Provides": _relation(provides),
            "Conflicts": _relation(conflicts),
            "Breaks": _relation(breaks),
            "Replaces": _relation(replaces),
            "Multi-Arch": multi_arch,
            "Essential": "yes" if essential else None,
            "Section": section,
            "Priority": priority,
            "Description": _description(
                description or f"{name} test package\nBuilt by tests.fakearchive."
            ),
        }
        control = {field: value for field, value in candidates.items() if value is not None}
        _update_fields(control, extra or {})

        control_tar = _control_tar(
            _render(control).encode(),
            payload.md5sums,
            {member: _as_bytes(data) for member, data in (control_files or {}).items()},
        )
        deb = _ar(
            [
                ("debian-binary", b"2.0\n"),
                (
                    f"control.tar{_suffix(control_compression)}",
                    _compress(control_tar, control_compression, compression_level),
                ),
                (
                    f"data.tar{_suffix(data_compression)}",
                    _compress(payload.data_tar, data_compression, compression_level),
                ),
            ]
        )

        source_name = _source_name(name, source)
        upstream_version = version.split(":", 1)[-1]
        filename = (
            f"pool/{component}/{_pool_prefix(source_name)}/{source_name}/"
            f"{name}_{upstream_version}_{architecture}.deb"
        )
        deb_path = self._write_pool(filename, deb)

        md5 = hashlib.md5(deb).hexdigest()
        sha256 = hashlib.sha256(deb).hexdigest()
        stanza = dict(control)
        stanza |= {"Filename": filename, "Size": str(len(deb)), "MD5sum": md5, "SHA256": sha256}
        _update_fields(stanza, index_fields or {})
        record = PackageRecord(
            suite=suite,
            component=component,
            name=name,
            version=version,
            architecture=architecture,
            source=source_name,
            filename=filename,
            size=len(deb),
            md5=md5,
            sha256=sha256,
            path=deb_path,
            stanza_fields=tuple(stanza.items()),
        )
        self._packages.append(record)
        return record

    def add_source(
        self,
        suite: str,
        name: str,
        version: str,
        files: Mapping[str, bytes],
        *,
        component: str = "main",
        extra: Mapping[str, str | None] | None = None,
        directory: str | None = None,
    ) -> SourceRecord:
        """Write a source package's *files* into the pool and list it in *suite*/*component*.

        *files* maps file names (``foo_1.2-3.dsc``, ``foo_1.2.orig.tar.xz``) to
        contents; they go to *directory* (default ``pool/<component>/<prefix>/<name>``)
        and are listed in the given order under ``Files`` and ``Checksums-Sha256``.
        *extra* adds or replaces fields of the Sources stanza (e.g. a wrong
        ``Checksums-Sha256``); a ``None`` value removes a field.
        """
        if any(
            (s.suite, s.component, s.name, s.version) == (suite, component, name, version)
            for s in self._sources
        ):
            raise ValueError(f"source {name} {version} already in {suite}/{component}")
        if not files:
            raise ValueError(f"source {name} {version} has no files")
        if bad := [f for f in files if "/" in _clean_member_path(f)]:
            raise ValueError(f"source file names must not hold directories: {bad}")
        pool_dir = _clean_member_path(directory or f"pool/{component}/{_pool_prefix(name)}/{name}")
        paths = []
        for file_name, data in files.items():
            paths.append(self._write_pool(f"{pool_dir}/{file_name}", data))

        def checksums(algorithm: Callable[[bytes], Any]) -> str:
            return "".join(
                f"\n {algorithm(data).hexdigest()} {len(data)} {file_name}"
                for file_name, data in files.items()
            )

        stanza = {
            "Package": name,
            "Binary": name,
            "Version": version,
            "Maintainer": DEFAULT_MAINTAINER,
            "Architecture": "any",
            "Format": "3.0 (quilt)",
            "Files": checksums(hashlib.md5),
            "Checksums-Sha256": checksums(hashlib.sha256),
            "Directory": pool_dir,
            "Priority": "source",
            "Section": "misc",
        }
        _update_fields(stanza, extra or {})
        record = SourceRecord(
            suite=suite,
            component=component,
            name=name,
            version=version,
            directory=pool_dir,
            paths=tuple(paths),
            stanza_fields=tuple(stanza.items()),
        )
        self._sources.append(record)
        return record

    def remove(
        self,
        suite: str,
        name: str,
        version: str | None = None,
        architecture: str | None = None,
        *,
        delete_files: bool = False,
    ) -> list[PackageRecord]:
        """Drop matching packages from *suite*'s future indices; return them.

        With *delete_files* their ``.deb`` files also leave the pool (as after
        an archive cleanup). Call :meth:`publish` again to update the indices.
        """
        removed = [
            p
            for p in self._packages
            if p.suite == suite
            and p.name == name
            and version in (None, p.version)
            and architecture in (None, p.architecture)
        ]
        self._packages = [p for p in self._packages if p not in removed]
        if delete_files:
            for record in removed:
                record.path.unlink(missing_ok=True)
        return removed

    def packages_index(self, suite: str, component: str, architecture: str) -> bytes:
        """The uncompressed ``Packages`` file for one component and architecture.

        Holds packages of *architecture* and of ``all``, sorted by name, then
        version, then architecture, one stanza each, separated by blank lines.
        """
        chosen = [
            p
            for p in self._packages
            if p.suite == suite
            and p.component == component
            and p.architecture in (architecture, "all")
        ]

        chosen.sort(key=functools.cmp_to_key(_index_order))
        return "\n".join(p.stanza for p in chosen).encode()

    def sources_index(self, suite: str, component: str) -> bytes:
        """The uncompressed ``Sources`` file for one component, sorted by name, then version."""
        chosen = [s for s in self._sources if s.suite == suite and s.component == component]
        chosen.sort(key=functools.cmp_to_key(_index_order))
        return "\n".join(s.stanza for s in chosen).encode()

    def publish(
        self,
        suite: str,
        codename: str | None = None,
        architectures: Sequence[str] = ("amd64", "arm64"),
        components: Sequence[str] = ("main",),
        key: Key | None = TEST_KEY,
        keys: Sequence[Key] | None = None,
        date: str | datetime = DEFAULT_DATE,
        valid_until: str | datetime | None = None,
        by_hash: bool = True,
        compressions: Sequence[Compression] = ("xz", "gz"),
        uncompressed: bool = False,
        inrelease: bool = True,
        release_gpg: bool = True,
        extra_release_fields: Mapping[str, str | None] | None = None,
        not_automatic: bool = False,
        signed_at: datetime | None = None,
        signature_expires: str | None = None,
    ) -> Path:
        """Write ``dists/<suite>/`` and return that directory.

        Writes ``<component>/binary-<arch>/Packages.<ext>`` for each of
        *compressions* (plus plain ``Packages`` when *uncompressed*), the same
        for ``<component>/source/Sources`` if the suite has source packages,
        ``by-hash/SHA256/<hex>`` copies when *by_hash*, ``Release`` (listing
        the plain indices and every compressed one under ``MD5Sum`` and
        ``SHA256``) and, signed with *keys* (or just *key*; no signature when
        both are ``None``), ``InRelease`` and ``Release.gpg``.

        Publishing again replaces every earlier index and signature of the
        suite, but keeps older ``by-hash`` files, as real archives do.
        *extra_release_fields* adds or replaces ``Release`` fields, the hash
        lists included; ``None`` removes a field. *signed_at* and
        *signature_expires* are passed to :meth:`sign`.
        """
        signing_keys = list(keys) if keys is not None else [key] if key is not None else []
        suite_dir = self.path(f"dists/{suite}")
        _clear_except_by_hash(suite_dir)
        suite_dir.mkdir(parents=True, exist_ok=True)

        write = functools.partial(
            _write_index,
            suite_dir,
            compressions=compressions,
            uncompressed=uncompressed,
            by_hash=by_hash,
        )
        has_sources = bool(self.sources(suite))
        listed: list[tuple[str, bytes]] = []  # (path relative to suite_dir, content)
        for component in components:
            for architecture in architectures:
                listed += write(
                    f"{component}/binary-{architecture}/Packages",
                    self.packages_index(suite, component, architecture),
                )
            if has_sources:
                listed += write(f"{component}/source/Sources", self.sources_index(suite, component))

        fields: dict[str, str] = {
            "Origin": "Debian",
            "Label": "Debian",
            "Suite": suite,
            "Codename": codename or suite,
            "Date": _format_date(date),
        }
        if valid_until is not None:
            fields["Valid-Until"] = _format_date(valid_until)
        if not_automatic:
            fields["NotAutomatic"] = "yes"
        if by_hash:
            fields["Acquire-By-Hash"] = "yes"
        fields |= {
            "No-Support-for-Architecture-all": "Packages",
            "Architectures": " ".join(architectures),
            "Components": " ".join(components),
            "Description": f"Test archive {self.name} {suite}",
        }
        width = max((len(str(len(content))) for _, content in listed), default=1)
        for field, algorithm in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
            fields[field] = "".join(
                f"\n {algorithm(content).hexdigest()} {len(content):>{width}} {relative}"
                for relative, content in listed
            )
        _update_fields(fields, extra_release_fields or {})
        (suite_dir / "Release").write_text(_render(fields))
        if signing_keys:
            self.sign(
                suite,
                signing_keys,
                inrelease=inrelease,
                release_gpg=release_gpg,
                signed_at=signed_at,
                signature_expires=signature_expires,
            )
        return suite_dir

    def sign(
        self,
        suite: str,
        keys: Sequence[Key] = (TEST_KEY,),
        *,
        inrelease: bool = True,
        release_gpg: bool = True,
        signed_at: datetime | None = None,
        signature_expires: str | None = None,
    ) -> None:
        """(Re)write ``InRelease`` and/or ``Release.gpg`` from the current ``Release``.

        Lets a test edit ``Release`` after :meth:`publish` and sign the result.
        *signed_at* dates the signatures (default: now), even before a key existed;
        *signature_expires* (e.g. ``"1d"``, counted from *signed_at*) makes them expire.
        """
        suite_dir = self.path(f"dists/{suite}")
        release = (suite_dir / "Release").read_bytes()
        sign = functools.partial(
            _SIGNER.sign, release, keys, signed_at=signed_at, signature_expires=signature_expires
        )
        if inrelease:
            (suite_dir / "InRelease").write_bytes(sign(clear=True))
        if release_gpg:
            (suite_dir / "Release.gpg").write_bytes(sign(clear=False))

    def serve(
        self,
        *,
        log: list[str] | None = None,
        overrides: Mapping[str, Override] | None = None,
    ) -> contextlib.AbstractContextManager[str]:
        """Serve this archive on 127.0.0.1; the context yields ``http://127.0.0.1:PORT/<name>``.

        Each request's decoded URL path (e.g. ``/debian/dists/trixie/InRelease``)
        is appended to *log*. *overrides* maps such paths to a response used
        instead of the file: ``{"/debian/dists/trixie/InRelease": (500, b"")}``,
        or a callable returning one (or ``None`` to serve the file normally).
        Files are read at request time, so changes made while serving show.
        """
        return _serve_url(self, log, overrides)

    @staticmethod
    @contextlib.contextmanager
    def serve_many(
        archives: Sequence[FakeArchive],
        *,
        log: list[str] | None = None,
        overrides: Mapping[str, Override] | None = None,
    ) -> Iterator[ServedURLs]:
        """Serve several archives from one server, each at ``/<name>/``.

        Yields a :class:`ServedURLs` (name -> URL, plus ``base_url``); *log*
        and *overrides* work as in :meth:`serve`.
        """
        mounts = {archive.name: archive.directory for archive in archives}
        if len(mounts) != len(archives):
            raise ValueError("archives served together need distinct names")
        with _serving(mounts, log, overrides) as base_url:
            yield ServedURLs(base_url, mounts)


@contextlib.contextmanager
def _serve_url(
    archive: FakeArchive, log: list[str] | None, overrides: Mapping[str, Override] | None
) -> Iterator[str]:
    with FakeArchive.serve_many([archive], log=log, overrides=overrides) as urls:
        yield urls[archive.name]


def _write_index(
    suite_dir: Path,
    relative: str,
    plain: bytes,
    *,
    compressions: Sequence[Compression],
    uncompressed: bool,
    by_hash: bool,
) -> list[tuple[str, bytes]]:
    """Write index *relative* (e.g. ``main/source/Sources``) under *suite_dir*.

    One file for each of *compressions*, the plain one too when *uncompressed*,
    and ``by-hash/SHA256`` copies when *by_hash*. Returns what ``Release``
    lists: the plain index (written or not), then each compressed one.
    """
    written = [(relative, plain)] if uncompressed else []
    written += [
        (f"{relative}{_suffix(c)}", _compress(plain, c)) for c in compressions if c != "none"
    ]
    for path, content in written:
        target = suite_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if by_hash:
            hashed = target.parent / "by-hash/SHA256" / hashlib.sha256(content).hexdigest()
            hashed.parent.mkdir(parents=True, exist_ok=True)
            hashed.write_bytes(content)
    return [(relative, plain), *(item for item in written if item[0] != relative)]


def _clear_except_by_hash(directory: Path) -> None:
    """Delete everything under *directory* except ``by-hash`` trees."""
    if not directory.exists():
        return
    for path in sorted(directory.rglob("*"), reverse=True):
        if "by-hash" in path.relative_to(directory).parts:
            continue
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        elif not any(path.iterdir()):
            path.rmdir()


# --------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        mounts: Mapping[str, Path],
        log: list[str] | None,
        overrides: Mapping[str, Override] | None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mounts = dict(mounts)
        self.log = log
        self.overrides = dict(overrides or {})
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up early; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End kept-alive connections so no handler outlives the server."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def record(self, path: str) -> None:
        if self.log is not None:
            with self._lock:
                self.log.append(path)

    def respond(self, path: str) -> tuple[int, bytes, Mapping[str, str]]:
        override = self.overrides.get(path)
        response = override() if callable(override) else override
        if response is None:
            response = self._file(path)
        if len(response) == 2:
            status, body = response
            return status, body, {}
        return response

    def _file(self, path: str) -> Response:
        segments = [segment for segment in path.split("/") if segment]
        mount = self.mounts.get(segments[0]) if segments else None
        if mount is None or len(segments) < 2 or any(s in (".", "..") for s in segments):
            return 404, b"not found\n"
        target = mount.joinpath(*segments[1:])
        try:
            return 200, target.read_bytes()
        except OSError:  # missing, a directory, unreadable
            return 404, b"not found\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def do_GET(self) -> None:
        self._reply(send_body=True)

    def do_HEAD(self) -> None:
        self._reply(send_body=False)

    def _reply(self, *, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.server.record(path)
        status, body, headers = self.server.respond(path)
        self.send_response(status)
        names = {name.lower() for name in headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/octet-stream")
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@contextlib.contextmanager
def _serving(
    mounts: Mapping[str, Path],
    log: list[str] | None,
    overrides: Mapping[str, Override] | None,
) -> Iterator[str]:
    server = _Server(mounts, log, overrides)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fakearchive-http",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()


def _main() -> None:
    """Regenerate the committed test keys (``python -m tests.fakearchive``)."""
    Key.generate(
        DATA_DIR, TEST_KEY.stem, "Compose Test Archive Key <test-archive-key@example.invalid>"
    )
    Key.generate(
        DATA_DIR,
        OTHER_KEY.stem,
        "Compose Other Test Key <other-key@example.invalid>",
        algorithm="rsa2048",
    )
    for key in (TEST_KEY, OTHER_KEY):
        print(f"{key.stem}: {key.fingerprint}")


if __name__ == "__main__":
    _main()
