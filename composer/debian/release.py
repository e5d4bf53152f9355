"""Release files: the signed table of contents of a suite.

``parse_release`` reads the bytes gpg reported as signed into a ``ReleaseInfo``;
``split_clearsigned`` takes a clearsigned InRelease apart strictly, so that text before,
between or after the signed block is refused rather than ignored (CVE-2016-1252 was an
InRelease parser that looked past the signature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from composer.debian import deb822
from composer.errors import FormatError, TrustError


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


def sha256_lines(text: str, where: str, field: str = "SHA256") -> list[FileEntry]:
    """The ``sha256 size path`` lines of a Release's ``SHA256`` or a Sources stanza's
    ``Checksums-Sha256``."""
    files = []
    for line in text.strip().splitlines():
        parts = line.split()
        if (len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{64}", parts[0])
                or not re.fullmatch(r"[0-9]{1,20}", parts[1])):
            raise FormatError(f"{where}: bad {field} line {line.strip()!r}")
        files.append(FileEntry(parts[2], int(parts[1]), parts[0]))
    return files


@dataclass(frozen=True)
class ReleaseInfo:
    origin: str
    label: str
    suite: str
    codename: str
    version: str
    date: str
    valid_until: str | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    not_automatic: bool
    but_automatic_upgrades: bool
    files: dict[str, FileEntry] = field(repr=False)

    @property
    def date_utc(self) -> datetime:
        return parse_date(self.date, "Date")


def parse_date(value: str, what: str) -> datetime:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise FormatError(f"Release {what} is not an RFC 2822 date: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_release(text: str, where: str) -> ReleaseInfo:
    para = deb822.parse_one(text, where)
    files: dict[str, FileEntry] = {}
    sha = para.get("SHA256")
    if not sha:
        raise TrustError(
            f"{where} has no SHA256 file list",
            "compose only trusts archives that list SHA256 hashes (MD5 and SHA1 are broken)",
        )
    files = {f.path: f for f in sha256_lines(sha, where)}
    for required in ("Date",):
        if required not in para:
            raise FormatError(f"{where} has no {required} field")
    return ReleaseInfo(
        origin=para.get("Origin", ""),
        label=para.get("Label", ""),
        suite=para.get("Suite", ""),
        codename=para.get("Codename", ""),
        version=para.get("Version", ""),
        date=para["Date"],
        valid_until=para.get("Valid-Until"),
        architectures=tuple(para.get("Architectures", "").split()),
        components=tuple(para.get("Components", "").split()),
        acquire_by_hash=para.get("Acquire-By-Hash", "no").lower() == "yes",
        not_automatic=para.get("NotAutomatic", "no").lower() == "yes",
        but_automatic_upgrades=para.get("ButAutomaticUpgrades", "no").lower() == "yes",
        files=files,
    )


_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIG_BEGIN = "-----BEGIN PGP SIGNATURE-----"
_SIG_END = "-----END PGP SIGNATURE-----"


def split_clearsigned(data: bytes, where: str) -> str:
    """Return the dash-unescaped cleartext of a clearsigned message, checked strictly.

    The message must start with the BEGIN line, have only ``Hash:`` armor headers, hold
    exactly one signature block and nothing but line ends after it. The returned text is
    what a good signature covers; callers still compare it with what gpg reports.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrustError(f"{where} is not UTF-8 text", "the mirror served something else") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    bad = TrustError(
        f"{where} is not a single clearsigned message",
        "refusing it: text outside the signed block is never trusted; check the mirror",
    )
    if not lines or lines[0] != _BEGIN:
        raise bad
    i = 1
    while i < len(lines) and lines[i] != "":
        if not lines[i].startswith("Hash: "):
            raise bad
        i += 1
    if i >= len(lines):
        raise bad
    i += 1
    body: list[str] = []
    while i < len(lines) and lines[i] != _SIG_BEGIN:
        line = lines[i]
        if line.startswith("-"):
            if not line.startswith("- "):
                raise bad
            line = line[2:]
        body.append(line)
        i += 1
    if i >= len(lines):
        raise bad
    try:
        end = lines.index(_SIG_END, i)
    except ValueError as exc:
        raise bad from exc
    if any(ln.strip() for ln in lines[end + 1 :]):
        raise bad
    if any(ln.startswith("-----BEGIN PGP") for ln in lines[i + 1 : end]):
        raise bad
    return "\n".join(body)
