"""From a profile's sources to verified, cached Packages indexes.

For each source: fetch InRelease (conditionally, with the ETag of the last good copy),
falling back to Release + Release.gpg; verify it; check Suite/Codename and Valid-Until;
then for each component and architecture fetch the Packages index the signed Release
lists (``.xz`` preferred, by-hash when the Release says Acquire-By-Hash), check its
size and sha256 before decompressing a byte, decompress within the size the Release
gives for the uncompressed file, check that too, and keep it in the cache under that
hash. A warm run finds the hash in the cache and downloads nothing but InRelease.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from composer.archive.cache import Cache
from composer.archive.http import Http, NotFound
from composer.archive.mirrors import Mirror, Mirrors
from composer.archive.trust import Verified, Verifier, keyring_path
from composer.debian.deb822 import PackagesFile
from composer.debian.packages import Index, IndexPart
from composer.debian.release import ReleaseInfo, parse_date, parse_release
from composer.errors import ComposeError, FetchError, FormatError, TrustError
from composer.model import ReleaseRecord, SourceSpec

INRELEASE_LIMIT = 64 << 20


@dataclass(frozen=True)
class VerifiedSource:
    spec: SourceSpec
    mirror: Mirror
    base: str
    release: ReleaseInfo
    record: ReleaseRecord

    def dists_url(self, path: str) -> str:
        return f"{self.base}/dists/{self.spec.suite}/{path}"


def _verify_release(http: Http, cache: Cache, verifier: Verifier, base: str, spec: SourceSpec) -> Verified:
    where = f"InRelease of {spec.archive} {spec.suite}"
    url = f"{base}/dists/{spec.suite}/InRelease"
    state_key = "inrelease:" + url
    previous = cache.read_state(state_key)
    meta: dict[str, str] = {}
    old_body = b""
    if previous:
        head, _, old_body = previous.partition(b"\n")
        try:
            meta = json.loads(head)
        except ValueError:
            meta, old_body = {}, b""
    try:
        resp = http.get_small(url, INRELEASE_LIMIT, meta.get("etag"), meta.get("last_modified"))
    except NotFound:
        rel_url = f"{base}/dists/{spec.suite}/Release"
        release = http.get_small(rel_url, INRELEASE_LIMIT).body
        try:
            sig = http.get_small(rel_url + ".gpg", 1 << 20).body
        except NotFound as exc:
            raise TrustError(f"{spec.archive} {spec.suite} is not signed: neither InRelease nor Release.gpg exists at {base}",
                             "compose only uses signed archives") from exc
        return verifier.detached(release, sig, f"Release of {spec.archive} {spec.suite}")
    body = old_body if resp.status == 304 and old_body else resp.body
    verified = verifier.clearsigned(body, where)
    if resp.status != 304:
        head = json.dumps({"etag": resp.etag or "", "last_modified": resp.last_modified or ""}).encode()
        cache.write_state(state_key, head + b"\n" + body)
    return verified


def open_source(http: Http, cache: Cache, mirrors: Mirrors, spec: SourceSpec,
                verifier_for: Callable[[str], Verifier], now: datetime,
                allow_expired: bool = False) -> VerifiedSource:
    mirror = mirrors.find(spec.archive)
    problems: list[str] = []
    for base in mirror.urls:
        try:
            verified = _verify_release(http, cache, verifier_for(spec.keyring), base, spec)
            where = f"Release of {spec.archive} {spec.suite} at {base}"
            info = parse_release(verified.signed.decode("utf-8"), where)
            break
        except FetchError as exc:
            problems.append(exc.message)
    else:
        raise FetchError("; ".join(problems), "check the mirror configuration (see `compose lock --help`)")
    if spec.suite not in (info.suite, info.codename):
        raise TrustError(
            f"{where} is for suite {info.suite!r} (codename {info.codename!r}), not {spec.suite!r}",
            "the mirror served another suite's Release (a replay?); nothing from it was used",
        )
    if info.valid_until and not allow_expired:
        until = parse_date(info.valid_until, "Valid-Until")
        if until < now:
            raise TrustError(
                f"{where} expired at {info.valid_until} (Valid-Until)",
                "the mirror is stale or replaying an old Release; use an up-to-date mirror, "
                "or pass --allow-expired for an archived suite",
            )
    # debian-security lists "updates/main" but its files live under "main/", as apt expects.
    known = {c.rsplit("/", 1)[-1] for c in info.components}
    missing = [c for c in spec.components if info.components and c not in known]
    if missing:
        raise FormatError(f"{where} has no component {', '.join(missing)}",
                          f"its components are {', '.join(info.components)}")
    record = ReleaseRecord(
        archive=spec.archive, suite=spec.suite, codename=info.codename, date=info.date,
        release_sha256=hashlib.sha256(verified.signed).hexdigest(),
        signed_by=verified.fingerprints, valid_until=info.valid_until,
    )
    return VerifiedSource(spec, mirror, base, info, record)


def _decompress(path: Path, kind: str, limit: int) -> bytes:
    data = path.read_bytes()
    try:
        if kind == ".xz":
            d = lzma.LZMADecompressor()
            out = d.decompress(data, max_length=limit + 1)
        elif kind == ".gz":
            dz = zlib.decompressobj(wbits=31)
            out = dz.decompress(data, limit + 1)
        elif kind == ".bz2":
            out = bz2.BZ2Decompressor().decompress(data, max_length=limit + 1)
        else:
            out = data
    except (lzma.LZMAError, zlib.error, OSError, EOFError) as exc:
        raise TrustError(f"cannot decompress {path.name}: {exc}") from exc
    return out


_KINDS = (".xz", ".gz", ".bz2", "")


def packages_file(http: Http, cache: Cache, src: VerifiedSource, component: str, arch: str) -> PackagesFile:
    base_path = f"{component}/binary-{arch}/Packages"
    where = f"{src.spec.archive} {src.spec.suite} {base_path}"
    files = src.release.files
    plain = files.get(base_path)
    if plain is not None and cache.has(plain.sha256):
        return PackagesFile(cache.open_map(plain.sha256), where)
    for kind in _KINDS:
        entry = files.get(base_path + kind)
        if entry is None:
            continue
        urls = []
        if src.release.acquire_by_hash:
            urls.append(src.dists_url(f"{component}/binary-{arch}/by-hash/SHA256/{entry.sha256}"))
        urls.append(src.dists_url(base_path + kind))
        blob = http.download_verified(urls, entry.size, entry.sha256, cache, f"{where}{kind}")
        if not kind:
            return PackagesFile(cache.open_map(entry.sha256), where)
        limit = plain.size if plain else 1 << 31
        data = _decompress(blob, kind, limit)
        if plain is not None:
            if len(data) != plain.size or hashlib.sha256(data).hexdigest() != plain.sha256:
                raise TrustError(f"{where}{kind} decompresses to content that is not the signed Packages",
                                 "the mirror serves a corrupt index; try another mirror")
            digest = cache.put_bytes(data)
        else:
            digest = cache.put_bytes(data)
        os.unlink(blob)
        return PackagesFile(cache.open_map(digest), where)
    if arch not in src.release.architectures:
        raise FormatError(f"{src.spec.archive} {src.spec.suite} has no packages for architecture {arch}",
                          f"its architectures are {', '.join(src.release.architectures)}")
    raise FormatError(f"{where}: not listed in the signed Release")


class Archive:
    """Verified access to a profile's sources; closes its gpg homes and HTTP pool."""

    def __init__(self, mirrors: Mirrors, cache: Cache, user_agent: str = "compose",
                 allow_expired: bool = False, now: datetime | None = None) -> None:
        self.mirrors = mirrors
        self.cache = cache
        self.http = Http(user_agent)
        self.allow_expired = allow_expired
        self.now = now or datetime.now(UTC)
        self._verifiers: dict[str, Verifier] = {}

    def verifier(self, keyring: str) -> Verifier:
        v = self._verifiers.get(keyring)
        if v is None:
            v = self._verifiers[keyring] = Verifier(keyring_path(keyring))
        return v

    def close(self) -> None:
        for v in self._verifiers.values():
            v.close()
        self.http.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_sources(self, specs: tuple[SourceSpec, ...]) -> list[VerifiedSource]:
        for spec in specs:  # keyrings first: importing is not thread-safe across homes
            self.verifier(spec.keyring)
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            futures = [pool.submit(open_source, self.http, self.cache, self.mirrors, s,
                                   self.verifier, self.now, self.allow_expired) for s in specs]
            return [_result(f) for f in futures]

    def index(self, sources: list[VerifiedSource], arch: str) -> Index:
        jobs = [(i, src, comp) for i, src in enumerate(sources) for comp in src.spec.components]
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(jobs)))) as pool:
            futures = [pool.submit(packages_file, self.http, self.cache, src, comp, arch)
                       for _, src, comp in jobs]
            files = [_result(f) for f in futures]
        parts = []
        for (i, src, _), f in zip(jobs, files, strict=True):
            pin = 1 if src.release.not_automatic else 500
            if src.release.not_automatic and src.release.but_automatic_upgrades:
                pin = 100
            parts.append(IndexPart(f, i, pin))
        return Index(arch, parts)


def _result(future):  # type: ignore[no-untyped-def]
    try:
        return future.result()
    except ComposeError:
        raise
