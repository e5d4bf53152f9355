"""OpenPGP verification with python-gnupg in a throwaway GnuPG home.

The home holds only the profile's keyring, placed as its public keyring (binary, after
de-armoring an ``.asc``), and is deleted afterwards; nothing is imported, so no other
key can take part and no time is spent importing. Only the bytes gpg
reports as signed are returned, and only after checking that they equal the cleartext
of a strictly well-formed clearsigned message: nothing before, between or after the
signed block is ever used. A good signature counts only if it is not dated in the
future (beyond ``FUTURE_SLACK``).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from composer.debian.release import split_clearsigned
from composer.errors import ConfigError, TrustError

KEYRING_DIR = Path(__file__).resolve().parent.parent / "keyrings"

FUTURE_SLACK = 600
"""Seconds a good signature may be dated after this machine's clock (clock skew); a
signature from further in the future is not counted."""

_ERRSIG_REASONS = {
    "4": "unsupported algorithm",
    "6": "bad public key, or one created in the future",
    "39": "the key is newer than the signature",
    "125": "the key is not a signing key",
}
"""Why gpg could not check a signature, by the code ERRSIG gives (a gpg-error code)."""


def keyring_path(name: str) -> Path:
    """A shipped keyring by name, or the path a profile gave."""
    if "/" in name:
        return Path(name)
    path = KEYRING_DIR / f"{name}.pgp"
    if not path.is_file():
        raise ConfigError(f"no shipped keyring named {name!r}")
    return path


@dataclass(frozen=True)
class Verified:
    signed: bytes
    """Exactly the bytes the signatures cover, as gpg reported them."""
    fingerprints: tuple[str, ...]
    """Primary-key fingerprints of every good signature, sorted."""


def _signature_time(value: str) -> float | None:
    """Seconds since the epoch from a status line's time (seconds, or ISO 8601 basic)."""
    try:
        if "T" in value:
            return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
        return float(value)
    except ValueError:
        return None


def _signatures(status: str) -> tuple[list[str], list[str], bool]:
    """(primary fingerprints of good signatures, problems, whether a signature is dated in
    the future) from gpg's status lines.

    A good signature dated more than FUTURE_SLACK seconds from now is a problem.
    """
    now = time.time()
    good: list[str] = []
    problems: list[str] = []
    future = False
    current: str | None = None
    signer = ""
    for line in status.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        words = line[9:].split()
        if not words:
            continue
        tag = words[0]
        if tag == "NEWSIG":
            current = None
        elif tag in ("GOODSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "ERRSIG"):
            current, signer = tag, words[1]
            if tag == "BADSIG":
                problems.append(f"BAD signature from key {words[1]}")
            elif tag == "EXPKEYSIG":
                problems.append(f"signature by expired key {words[1]}")
            elif tag == "REVKEYSIG":
                problems.append(f"signature by revoked key {words[1]}")
            elif tag == "EXPSIG":
                problems.append(f"expired signature by key {words[1]}")
            elif tag == "ERRSIG":
                rc = words[6] if len(words) > 6 else "?"
                reason = f": {_ERRSIG_REASONS[rc]}" if rc in _ERRSIG_REASONS else ""
                problems.append(f"key {words[1]} is not in the keyring" if rc == "9"
                                else f"cannot check signature by key {words[1]} (code {rc}{reason})")
        elif tag == "VALIDSIG" and current == "GOODSIG":
            made = _signature_time(words[3]) if len(words) > 3 else None
            if made is None:
                problems.append(f"cannot read the date of the signature by key {signer}")
            elif made > now + FUTURE_SLACK:
                when = datetime.fromtimestamp(made, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                problems.append(f"signature by key {signer} is dated {when}, in the future")
                future = True
            else:
                good.append(words[-1])
        elif tag in ("NO_PUBKEY",) and not any(words[1] in p for p in problems):
            problems.append(f"key {words[1]} is not in the keyring")
    return good, problems, future


def dearmor(data: bytes, where: str) -> bytes:
    """Binary OpenPGP packets from ASCII armor (every block), checking each CRC-24."""
    out = bytearray()
    lines = data.decode("ascii", errors="replace").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("-----BEGIN PGP"):
            i += 1
            continue
        i += 1
        while i < len(lines) and lines[i].strip():  # armor headers
            if ":" not in lines[i]:
                break
            i += 1
        body: list[str] = []
        crc: str | None = None
        while i < len(lines) and not lines[i].startswith("-----END PGP"):
            line = lines[i].strip()
            if line.startswith("=") and len(line) == 5:
                crc = line[1:]
            elif line:
                body.append(line)
            i += 1
        try:
            block = base64.b64decode("".join(body), validate=True)
        except ValueError as exc:
            raise ConfigError(f"keyring {where}: damaged ASCII armor") from exc
        if crc is not None and base64.b64decode(crc) != _crc24(block).to_bytes(3, "big"):
            raise ConfigError(f"keyring {where}: ASCII armor checksum mismatch")
        out += block
    return bytes(out)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


class Verifier:
    """A throwaway GnuPG home holding one keyring; use as a context manager."""

    def __init__(self, keyring: Path) -> None:
        try:
            raw = keyring.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read keyring {keyring}: {exc.strerror}") from exc
        if raw.lstrip().startswith(b"-----BEGIN PGP"):
            raw = dearmor(raw, str(keyring))
        if not raw or not raw[0] & 0x80:
            raise ConfigError(f"keyring {keyring} holds no OpenPGP keys",
                              "give a binary (.gpg/.pgp) or armored (.asc) public keyring")
        import gnupg

        self.keyring = keyring
        self.home = tempfile.mkdtemp(prefix="compose-gnupg-")
        (Path(self.home) / "pubring.gpg").write_bytes(raw)
        # The home is read-only for our purposes: without these, concurrent gpg runs wait
        # ~250 ms on each other's lock of the random seed file.
        self.gpg: Any = gnupg.GPG(gnupghome=self.home, options=[
            "--trust-model", "always", "--lock-never", "--no-random-seed-file",
            "--no-auto-check-trustdb", "--no-autostart",
        ])
        self.gpg.encoding = "utf-8"

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, status: str, where: str) -> tuple[str, ...]:
        good, problems, future = _signatures(status)
        if any(p.startswith("BAD") for p in problems) or not good:
            clock = ", or this machine's clock is wrong" if future else ""
            raise TrustError(
                f"cannot verify {where}: "
                + ("; ".join(problems) if problems else "no good signature")
                + f" (keyring {self.keyring.name})",
                "the mirror may be tampered with or out of date, or the profile names the "
                f"wrong keyring{clock}; nothing from this source was used",
            )
        return tuple(sorted(set(good)))

    def clearsigned(self, data: bytes, where: str) -> Verified:
        cleartext = split_clearsigned(data, where)
        result = self.gpg.decrypt(data)
        fingerprints = self._check(result.stderr or "", where)
        signed: bytes = result.data
        if signed not in (cleartext.encode() + b"\n", cleartext.encode()):
            raise TrustError(f"cannot verify {where}: the signed text is not the message's text",
                             "refusing a malformed clearsigned message")
        return Verified(signed, fingerprints)

    def detached(self, data: bytes, signature: bytes, where: str) -> Verified:
        with tempfile.NamedTemporaryFile(dir=self.home, suffix=".sig") as sig:
            sig.write(signature)
            sig.flush()
            result = self.gpg.verify_data(sig.name, data)
        return Verified(data, self._check(result.stderr or "", where))
