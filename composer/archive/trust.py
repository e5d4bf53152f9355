"""OpenPGP verification with python-gnupg in a throwaway GnuPG home.

The home holds only the profile's keyring and is deleted afterwards. Only the bytes gpg
reports as signed are returned, and only after checking that they equal the cleartext
of a strictly well-formed clearsigned message: nothing before, between or after the
signed block is ever used.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.debian.release import split_clearsigned
from composer.errors import ConfigError, TrustError

KEYRING_DIR = Path(__file__).resolve().parent.parent / "keyrings"


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


def _signatures(status: str) -> tuple[list[str], list[str]]:
    """(primary fingerprints of good signatures, problems) from gpg's status lines."""
    good: list[str] = []
    problems: list[str] = []
    current: str | None = None
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
            current = tag
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
                problems.append(f"key {words[1]} is not in the keyring" if rc == "9"
                                else f"cannot check signature by key {words[1]} (code {rc})")
        elif tag == "VALIDSIG" and current == "GOODSIG":
            good.append(words[-1])
        elif tag in ("NO_PUBKEY",) and not any(words[1] in p for p in problems):
            problems.append(f"key {words[1]} is not in the keyring")
    return good, problems


class Verifier:
    """A GnuPG home with one keyring imported; use as a context manager."""

    def __init__(self, keyring: Path) -> None:
        import gnupg

        self.keyring = keyring
        self.home = tempfile.mkdtemp(prefix="compose-gnupg-")
        self._lock = threading.Lock()
        self.gpg: Any = gnupg.GPG(gnupghome=self.home)
        self.gpg.encoding = "utf-8"
        try:
            result = self.gpg.import_keys_file(str(keyring))
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot read keyring {keyring}: {exc}") from exc
        if not result.count:
            self.close()
            raise ConfigError(f"keyring {keyring} holds no OpenPGP keys",
                              "give a binary (.gpg/.pgp) or armored (.asc) public keyring")

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, status: str, where: str) -> tuple[str, ...]:
        good, problems = _signatures(status)
        if any(p.startswith("BAD") for p in problems) or not good:
            raise TrustError(
                f"cannot verify {where}: "
                + ("; ".join(problems) if problems else "no good signature")
                + f" (keyring {self.keyring.name})",
                "the mirror may be tampered with or out of date, or the profile names the "
                "wrong keyring; nothing from this source was used",
            )
        return tuple(sorted(set(good)))

    def clearsigned(self, data: bytes, where: str) -> Verified:
        cleartext = split_clearsigned(data, where)
        with self._lock:
            result = self.gpg.decrypt(data, extra_args=["--trust-model", "always"])
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
            with self._lock:
                result = self.gpg.verify_data(sig.name, data, extra_args=["--trust-model", "always"])
        return Verified(data, self._check(result.stderr or "", where))
