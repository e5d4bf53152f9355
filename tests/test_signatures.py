"""``compose lock`` refuses a suite whose Release is signed, but not in a way to trust:
by an expired or revoked key, by a key that may not sign, with an expired or
future-dated signature, with a second signed block, with a signature over another
Release, or with no good signature from the profile's keyring. Each refusal is exit 2
with one ``error:`` naming the problem, no traceback, and nothing written: no lock, and
an existing lock left byte-identical.

The keys these need are made once per session with real gpg, at chosen times
(``--faked-system-time``); the committed keys in ``tests/data`` sign the rest
of the archive.
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakearchive import (
    OTHER_KEY,
    TEST_KEY,
    FakeArchive,
    Key,
    _new_gnupghome,
    _remove_gnupghome,
    _run_gpg,
)
from tests.test_lock_offline import ARCHES, KEYRING, assert_error, build, mirror_flags, profile_text

CLI = Callable[..., tuple[int, str, str]]
OLDER_LOCK = b"# an older lock\nversion = 1\n"
PAST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(datetime.now(UTC).year + 10, 1, 1, tzinfo=UTC)


def key_id(fingerprint: str) -> str:
    """The long key ID gpg's status lines name a key by."""
    return fingerprint[-16:]


# -- keys ---------------------------------------------------------------------------------


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return _run_gpg(home, args, stdin)


def _fingerprints(home: Path, fingerprint: str) -> list[str]:
    """The fingerprints of a key and its subkeys, primary first."""
    listing = _gpg(home, "--with-colons", "--list-keys", fingerprint).decode()
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]


def _key_with_auth_only_subkey(directory: Path, stem: str) -> tuple[Key, str]:
    """A certify-only primary key with an ed25519 subkey that signs in the secret key
    file, but is an authentication-only subkey in the public key files (its usage was
    changed after the secret key was written). Returns the key and the subkey's
    fingerprint."""
    directory.mkdir(parents=True, exist_ok=True)
    home = _new_gnupghome()
    try:
        _gpg(home, "--quick-generate-key", "Auth Subkey <auth-subkey@example.invalid>",
             "ed25519", "cert", "never")
        listing = _gpg(home, "--with-colons", "--list-keys").decode()
        primary = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
        _gpg(home, "--quick-add-key", primary, "ed25519", "sign", "never")
        key = Key(directory, stem)
        key.secret_path.write_bytes(_gpg(home, "--armor", "--export-secret-keys", primary))
        _gpg(home, "--expert", "--command-fd", "0", "--edit-key", primary,
             stdin=b"key 1\nchange-usage\nS\nA\nQ\nsave\n")
        subs = [ln.split(":") for ln in _gpg(home, "--with-colons", "--list-keys", primary)
                .decode().splitlines() if ln.startswith("sub:")]
        assert [fields[11] for fields in subs] == ["a"], subs
        key.public_path.write_bytes(_gpg(home, "--armor", "--export", primary))
        key.public_binary_path.write_bytes(_gpg(home, "--export", primary))
        _, subkey = _fingerprints(home, primary)
    finally:
        _remove_gnupghome(home)
    return key, subkey


@dataclass(frozen=True)
class Keys:
    old: Key
    """Made in the PAST, valid for ever."""
    expired: Key
    """Made in the PAST, valid for a year."""
    revoked: Key
    """Its public key files hold its revocation."""
    from_the_future: Key
    """Made in the FUTURE."""
    stranger: Key
    """In no keyring given to compose."""
    auth_subkey: Key
    """Signs with a subkey that its public key says is for authentication only."""
    auth_subkey_fingerprint: str


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    auth_subkey, auth_subkey_fingerprint = _key_with_auth_only_subkey(directory, "auth-subkey")
    return Keys(
        old=Key.generate(directory, "old", "Old Key <old@example.invalid>",
                         created=PAST),
        expired=Key.generate(directory, "expired", "Expired Key <expired@example.invalid>",
                             expire="1y", created=PAST),
        revoked=Key.generate(directory, "revoked", "Revoked Key <revoked@example.invalid>",
                             revoked=True),
        from_the_future=Key.generate(directory, "future", "Future Key <future@example.invalid>",
                                     created=FUTURE),
        stranger=Key.generate(directory, "stranger", "Stranger <stranger@example.invalid>"),
        auth_subkey=auth_subkey,
        auth_subkey_fingerprint=auth_subkey_fingerprint,
    )


def test_the_keys_are_what_they_claim(keys: Keys) -> None:
    """gpg itself sees the expired key as expired and the revoked one as revoked."""
    def validity(key: Key) -> str:
        home = _new_gnupghome()
        try:
            listing = _gpg(home, "--with-colons", "--show-keys", str(key.public_path)).decode()
        finally:
            _remove_gnupghome(home)
        return next(ln.split(":")[1] for ln in listing.splitlines() if ln.startswith("pub:"))

    assert validity(keys.expired) == "e"
    assert validity(keys.revoked) == "r"
    assert validity(TEST_KEY) not in ("e", "r")


# -- clearsigned messages, taken apart and put together again -------------------------------

SIG_BEGIN = b"-----BEGIN PGP SIGNATURE-----\n"
SIG_END = "-----END PGP SIGNATURE-----"


def signature_packets(message: bytes) -> tuple[bytes, bytes]:
    """A clearsigned message's text part (through its BEGIN PGP SIGNATURE line) and the
    binary packets of its signature block."""
    text, begin, armor = message.partition(SIG_BEGIN)
    assert begin, message
    lines = armor.decode("ascii").splitlines()
    body = lines[lines.index("") + 1 : lines.index(SIG_END)]
    return text + begin, base64.b64decode("".join(ln for ln in body if not ln.startswith("=")))


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def clearsigned(text: bytes, packets: bytes) -> bytes:
    """The message of *text* (as ``signature_packets`` gives it) signed by *packets*."""
    encoded = base64.b64encode(packets).decode()
    crc = base64.b64encode(_crc24(packets).to_bytes(3, "big")).decode()
    lines = ["", *(encoded[i : i + 64] for i in range(0, len(encoded), 64)), f"={crc}", SIG_END, ""]
    return text + "\n".join(lines).encode()


def flip_last_byte(packets: bytes) -> bytes:
    """The last byte of a signature packet is the last of its signature value."""
    return packets[:-1] + bytes([packets[-1] ^ 0x01])


def keyring(path: Path, *keys: Key) -> Path:
    path.write_bytes(b"".join(k.public_binary_path.read_bytes() for k in keys))
    return path


def inrelease(d: FakeArchive) -> Path:
    return d.path("dists/trixie/InRelease")


def republish_newer(d: FakeArchive, **publish: object) -> None:
    """A newer trixie Release: a new libfast1 and a new Date."""
    for a in ARCHES:
        d.add("trixie", "libfast1", "1.1-1", a)
    d.publish("trixie", date="Sun, 13 Sep 2026 07:55:41 UTC", **publish)  # type: ignore[arg-type]


def two_signed_messages(pairs: tuple[bytes, bytes]) -> bytes:
    """Both signed with the trusted key, each alone a good InRelease."""
    for message in pairs:
        text, packets = signature_packets(message)
        assert text.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----\n") and packets
    return pairs[0] + pairs[1]


# -- the cases ------------------------------------------------------------------------------


@dataclass
class Setup:
    debian: FakeArchive
    security: FakeArchive
    keyring: Path
    """The keyring the profile gives for debian trixie (debian-security: the test key)."""
    patterns: list[str]


def _expired_key(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.expired,
                                           "signed_at": PAST + timedelta(days=150)})
    return Setup(d, s, keys.expired.public_binary_path, [
        r"cannot verify InRelease of debian trixie",
        rf"signature by expired key {key_id(keys.expired.fingerprint)}"])


def _expired_key_release_gpg(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.expired, "inrelease": False,
                                           "signed_at": PAST + timedelta(days=150)})
    return Setup(d, s, keys.expired.public_binary_path, [
        r"cannot verify Release of debian trixie",
        rf"signature by expired key {key_id(keys.expired.fingerprint)}"])


def _revoked_key(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.revoked})
    return Setup(d, s, keys.revoked.public_binary_path, [
        r"cannot verify InRelease of debian trixie",
        rf"signature by revoked key {key_id(keys.revoked.fingerprint)}"])


def _revoked_key_release_gpg(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.revoked, "inrelease": False})
    return Setup(d, s, keys.revoked.public_binary_path, [
        r"cannot verify Release of debian trixie",
        rf"signature by revoked key {key_id(keys.revoked.fingerprint)}"])


def _two_signed_blocks(newest_first: bool) -> Callable[[Path, Keys], Setup]:
    def setup(root: Path, keys: Keys) -> Setup:
        d, s = build(root / "archive")
        old = inrelease(d).read_bytes()
        republish_newer(d)
        new = inrelease(d).read_bytes()
        inrelease(d).write_bytes(two_signed_messages((new, old) if newest_first else (old, new)))
        return Setup(d, s, KEYRING, [
            r"InRelease of debian trixie .* is not a single clearsigned message",
            r"hint: refusing it: text outside the signed block is never trusted"])
    return setup


def _release_gpg_of_another_release(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"inrelease": False})
    old = d.path("dists/trixie/Release.gpg").read_bytes()
    republish_newer(d, inrelease=False)
    d.path("dists/trixie/Release.gpg").write_bytes(old)
    return Setup(d, s, KEYRING, [
        r"cannot verify Release of debian trixie",
        rf"BAD signature from key {key_id(TEST_KEY.fingerprint)}"])


def _release_gpg_is_another_inrelease(root: Path, keys: Keys) -> Setup:
    """Release.gpg holds a whole clearsigned message (of another Release), not a
    detached signature: gpg would check that message and ignore the Release served."""
    d, s = build(root / "archive", debian={"release_gpg": False})
    old = inrelease(d).read_bytes()
    republish_newer(d, inrelease=False)
    d.path("dists/trixie/Release.gpg").write_bytes(old)
    return Setup(d, s, KEYRING, [
        r"cannot verify Release of debian trixie", r"no good signature"])


def _untrusted_signatures_only(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"keys": [OTHER_KEY, keys.stranger]})
    _, packets = signature_packets(inrelease(d).read_bytes())
    for signer in (OTHER_KEY, keys.stranger):  # each signature names its issuer
        assert bytes.fromhex(key_id(signer.fingerprint)) in packets
    return Setup(d, s, KEYRING, [
        r"cannot verify InRelease of debian trixie",
        rf"key {key_id(OTHER_KEY.fingerprint)} is not in the keyring",
        rf"key {key_id(keys.stranger.fingerprint)} is not in the keyring"])


def _good_and_bad_signature(bad_first: bool, tamper: bool = True) -> Callable[[Path, Keys], Setup]:
    """One good signature by the test key and one by the other key, both keys in the
    keyring; the other key's signature made bad (a flipped bit) when *tamper*."""
    def setup(root: Path, keys: Keys) -> Setup:
        d, s = build(root / "archive")
        text, good = signature_packets(inrelease(d).read_bytes())
        d.sign("trixie", [OTHER_KEY], release_gpg=False)
        other_text, other = signature_packets(inrelease(d).read_bytes())
        assert other_text == text
        bad = flip_last_byte(other) if tamper else other
        inrelease(d).write_bytes(clearsigned(text, bad + good if bad_first else good + bad))
        ring = keyring(root / "two-keys.pgp", TEST_KEY, OTHER_KEY)
        return Setup(d, s, ring, [
            r"cannot verify InRelease of debian trixie",
            rf"BAD signature from key {key_id(OTHER_KEY.fingerprint)}"])
    return setup


def _expired_signature(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.old, "signature_expires": "1d",
                                           "signed_at": PAST + timedelta(days=365)})
    return Setup(d, s, keys.old.public_binary_path, [
        r"cannot verify InRelease of debian trixie",
        rf"expired signature by key {key_id(keys.old.fingerprint)}"])


def _auth_only_subkey(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.auth_subkey})
    return Setup(d, s, keys.auth_subkey.public_binary_path, [
        r"cannot verify InRelease of debian trixie",
        rf"cannot check signature by key {key_id(keys.auth_subkey_fingerprint)} "
        r"\(code 125: the key is not a signing key\)"])


def _future_dated_signature(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"signed_at": FUTURE})
    return Setup(d, s, KEYRING, [
        r"cannot verify InRelease of debian trixie",
        rf"signature by key {key_id(TEST_KEY.fingerprint)} is dated {FUTURE:%Y-%m-%d} "
        r"00:00:\d\d UTC, in the future", r"hint: .* or this machine's clock is wrong"])


def _key_from_the_future(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"key": keys.from_the_future,
                                           "signed_at": FUTURE + timedelta(days=1)})
    return Setup(d, s, keys.from_the_future.public_binary_path, [
        r"cannot verify InRelease of debian trixie",
        rf"cannot check signature by key {key_id(keys.from_the_future.fingerprint)} "
        r"\(code 6: bad public key, or one created in the future\)"])


def _signature_older_than_key(root: Path, keys: Keys) -> Setup:
    d, s = build(root / "archive", debian={"signed_at": PAST})
    return Setup(d, s, KEYRING, [
        r"cannot verify InRelease of debian trixie",
        rf"cannot check signature by key {key_id(TEST_KEY.fingerprint)} "
        r"\(code 39: the key is newer than the signature\)"])


CASES: dict[str, Callable[[Path, Keys], Setup]] = {
    "expired-key": _expired_key,
    "expired-key-release-gpg": _expired_key_release_gpg,
    "revoked-key": _revoked_key,
    "revoked-key-release-gpg": _revoked_key_release_gpg,
    "two-signed-blocks-old-then-new": _two_signed_blocks(newest_first=False),
    "two-signed-blocks-new-then-old": _two_signed_blocks(newest_first=True),
    "release-gpg-of-another-release": _release_gpg_of_another_release,
    "release-gpg-is-another-inrelease": _release_gpg_is_another_inrelease,
    "untrusted-signatures-only": _untrusted_signatures_only,
    "good-then-bad-signature": _good_and_bad_signature(bad_first=False),
    "bad-then-good-signature": _good_and_bad_signature(bad_first=True),
    "expired-signature": _expired_signature,
    "auth-only-subkey": _auth_only_subkey,
    "future-dated-signature": _future_dated_signature,
    "key-from-the-future": _key_from_the_future,
    "signature-older-than-key": _signature_older_than_key,
}


def project(root: Path, ring: Path) -> Path:
    """A project whose profile t locks app and tzdata, trusting *ring* for debian trixie."""
    text = profile_text(["app", "tzdata"], name="t")
    old = f'keyring = "{KEYRING}"'
    assert text.count(old) == 2  # debian, then debian-security
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / "t.toml").write_text(text.replace(old, f'keyring = "{ring}"', 1))
    return root


def lock_one(env: dict[str, str], compose: CLI, setup: Setup,
             root: Path) -> tuple[Path, tuple[int, str, str]]:
    """``compose lock`` in a project without a lock."""
    fresh = project(root / "fresh", setup.keyring)
    with FakeArchive.serve_many([setup.debian, setup.security]) as urls:
        result = compose(env, "lock", "profiles/t.toml", *mirror_flags(dict(urls)), cwd=fresh)
    return fresh, result


def lock_both(env: dict[str, str], compose: CLI, setup: Setup,
              root: Path) -> tuple[Path, Path, list[tuple[int, str, str]]]:
    """``compose lock`` at once in a project without a lock and in one with an older lock."""
    fresh = project(root / "fresh", setup.keyring)
    older = project(root / "older", setup.keyring)
    lock = older / "locks" / "t.lock.toml"
    lock.parent.mkdir()
    lock.write_bytes(OLDER_LOCK)
    with FakeArchive.serve_many([setup.debian, setup.security]) as urls, \
            ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(compose, env, "lock", "profiles/t.toml", *mirror_flags(dict(urls)),
                            cwd=p) for p in (fresh, older)]
        return fresh, older, [r.result() for r in runs]


@pytest.mark.parametrize("case", list(CASES))
def test_signature_is_refused(case: str, keys: Keys, tmp_path: Path, env: dict[str, str],
                              compose: CLI) -> None:
    setup = CASES[case](tmp_path, keys)
    fresh, older, results = lock_both(env, compose, setup, tmp_path)
    for rc, out, err in results:
        assert_error(rc, err, *setup.patterns)
        assert out == ""
    assert not (fresh / "locks").exists()
    lock = older / "locks" / "t.lock.toml"
    assert lock.read_bytes() == OLDER_LOCK
    assert sorted(p.name for p in lock.parent.iterdir()) == ["t.lock.toml"]


def test_good_and_untampered_second_signature_are_accepted(
        keys: Keys, tmp_path: Path, env: dict[str, str], compose: CLI) -> None:
    """The signature blocks the good-and-bad cases build, without the flipped bit, are
    accepted and both signers recorded: what the refusal sees is the bad signature."""
    setup = _good_and_bad_signature(bad_first=True, tamper=False)(tmp_path, keys)
    fresh, (rc, _, err) = lock_one(env, compose, setup, tmp_path)
    assert rc == 0, err
    data = tomllib.loads((fresh / "locks" / "t.lock.toml").read_text())
    assert data["source"][0]["signed-by"] == sorted([TEST_KEY.fingerprint, OTHER_KEY.fingerprint])


def test_signatures_dated_in_the_past_are_accepted(
        keys: Keys, tmp_path: Path, env: dict[str, str], compose: CLI) -> None:
    """A signature made years ago, by a key that is still valid, is good; so is a
    signature that expires, before it does: what the refusals above see is the expiry."""
    d, s = build(tmp_path / "archive", debian={
        "key": keys.old, "signed_at": PAST + timedelta(days=365),
        "signature_expires": "50y"})
    setup = Setup(d, s, keys.old.public_binary_path, patterns=[])
    fresh, (rc, _, err) = lock_one(env, compose, setup, tmp_path)
    assert rc == 0, err
    data = tomllib.loads((fresh / "locks" / "t.lock.toml").read_text())
    assert data["source"][0]["signed-by"] == [keys.old.fingerprint]
