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
import contextlib
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
from composer.archive.fetch import Progress, Wanted, fetch
from composer.archive.http import Http, NotFound, timeout_from
from composer.archive.mirrors import Mirror, Mirrors
from composer.archive.trust import Verifier, keyring_path
from composer.debian import sources
from composer.debian.deb822 import PackagesFile
from composer.debian.packages import Index, IndexPart
from composer.debian.release import ReleaseInfo, parse_date, parse_release
from composer.debian.sources import SourceRecord
from composer.errors import ConfigError, FetchError, FormatError, TrustError
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


@dataclass(frozen=True)
class _Fetched:
    spec: SourceSpec
    mirror: Mirror
    base: str
    url: str
    inrelease: bytes | None
    release: bytes | None = None
    signature: bytes | None = None
    fresh_meta: bytes | None = None
    """ETag/Last-Modified to remember once the InRelease has verified."""


def _fetch_release(http: Http, cache: Cache, mirrors: Mirrors, spec: SourceSpec) -> _Fetched:
    """Download a suite's InRelease (or Release and Release.gpg) from the first mirror that has it."""
    mirror = mirrors.find(spec.archive)
    problems: list[str] = []
    bases = mirror.for_date(None)
    if not bases:
        raise ConfigError(
            f"every mirror configured for {spec.archive} ({mirror.origin}) is a snapshot URL "
            "with {date}, which only serves a lock's .debs",
            f"give {spec.archive} a mirror without {{date}} to lock from, after the snapshot one")
    for base in bases:
        url = f"{base}/dists/{spec.suite}/InRelease"
        previous = cache.read_state("inrelease:" + url)
        meta: dict[str, str] = {}
        old_body = b""
        if previous:
            head, _, old_body = previous.partition(b"\n")
            try:
                meta = json.loads(head)
            except ValueError:
                meta, old_body = {}, b""
        try:
            try:
                resp = http.get_small(url, INRELEASE_LIMIT, meta.get("etag") or None,
                                      meta.get("last_modified") or None)
            except NotFound:
                rel_url = f"{base}/dists/{spec.suite}/Release"
                release = http.get_small(rel_url, INRELEASE_LIMIT).body
                try:
                    sig = http.get_small(rel_url + ".gpg", 1 << 20).body
                except NotFound as exc:
                    raise TrustError(
                        f"{spec.archive} {spec.suite} is not signed: neither InRelease nor "
                        f"Release.gpg exists at {base}", "compose only uses signed archives") from exc
                return _Fetched(spec, mirror, base, rel_url, None, release, sig)
        except FetchError as exc:
            problems.append(exc.message)
            continue
        if resp.status == 304 and old_body:
            return _Fetched(spec, mirror, base, url, old_body)
        meta_out = json.dumps({"etag": resp.etag or "", "last_modified": resp.last_modified or ""})
        return _Fetched(spec, mirror, base, url, resp.body, fresh_meta=meta_out.encode())
    raise FetchError("; ".join(problems), f"check the mirrors configured for {spec.archive}")


def _verify_source(cache: Cache, fetched: _Fetched, verifier: Verifier, now: datetime,
                   allow_expired: bool) -> VerifiedSource:
    spec, base = fetched.spec, fetched.base
    if fetched.inrelease is not None:
        verified = verifier.clearsigned(fetched.inrelease, f"InRelease of {spec.archive} {spec.suite} at {base}")
    else:
        assert fetched.release is not None and fetched.signature is not None
        verified = verifier.detached(fetched.release, fetched.signature,
                                     f"Release of {spec.archive} {spec.suite} at {base}")
    where = f"Release of {spec.archive} {spec.suite} at {base}"
    try:
        info = parse_release(verified.signed.decode("utf-8"), where)
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where} is not UTF-8") from exc
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
    if fetched.fresh_meta is not None and fetched.inrelease is not None:
        cache.write_state("inrelease:" + fetched.url, fetched.fresh_meta + b"\n" + fetched.inrelease)
    record = ReleaseRecord(
        archive=spec.archive, suite=spec.suite, codename=info.codename, date=info.date,
        release_sha256=hashlib.sha256(verified.signed).hexdigest(),
        signed_by=verified.fingerprints, valid_until=info.valid_until,
    )
    return VerifiedSource(spec, fetched.mirror, base, info, record)


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


def _indexed(cache: Cache, sha256: str, where: str) -> PackagesFile:
    """A cached Packages file with its scan, reusing (or writing) the scan's sidecar."""
    data = cache.open_map(sha256)
    key = f"packages-index-{PackagesFile.SIDECAR_FORMAT}"
    sidecar = cache.read_derived(sha256, key)
    pf = PackagesFile(data, where, sidecar)
    if sidecar is None:
        cache.write_derived(sha256, key, pf.sidecar())
    return pf


def _index_file(http: Http, cache: Cache, src: VerifiedSource, directory: str, name: str,
                say: Callable[[str], None]) -> str | None:
    """The sha256 of the uncompressed index ``directory/name`` as the signed Release lists
    it, now in the cache; None when the Release lists no form of it."""
    base_path = f"{directory}/{name}"
    where = f"{src.spec.archive} {src.spec.suite} {base_path}"
    files = src.release.files
    plain = files.get(base_path)
    if plain is not None and cache.has(plain.sha256):
        return plain.sha256
    for kind in _KINDS:
        entry = files.get(base_path + kind)
        if entry is None:
            continue
        urls = []
        if src.release.acquire_by_hash:
            urls.append(src.dists_url(f"{directory}/by-hash/SHA256/{entry.sha256}"))
        urls.append(src.dists_url(base_path + kind))
        say(f"fetching {where}{kind} ({entry.size / 1e6:.1f} MB)")
        blob = http.download_verified(urls, entry.size, entry.sha256, cache, f"{where}{kind}")
        if not kind:
            return entry.sha256
        limit = plain.size if plain else 1 << 31
        try:
            data = _decompress(blob, kind, limit)
        except FileNotFoundError:
            # Another compose sharing the cache decompressed it and removed it first: take
            # what it stored, or fetch it again.
            if plain is not None and cache.has(plain.sha256):
                return plain.sha256
            blob = http.download_verified(urls, entry.size, entry.sha256, cache, f"{where}{kind}")
            data = _decompress(blob, kind, limit)
        if plain is not None and (len(data) != plain.size
                                  or hashlib.sha256(data).hexdigest() != plain.sha256):
            raise TrustError(f"{where}{kind} decompresses to content that is not the signed {name}",
                             "the mirror serves a corrupt index; try another mirror")
        digest = cache.put_bytes(data)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob)
        return digest
    return None


def packages_file(http: Http, cache: Cache, src: VerifiedSource, component: str, arch: str,
                  say: Callable[[str], None] = lambda _: None) -> PackagesFile:
    where = f"{src.spec.archive} {src.spec.suite} {component}/binary-{arch}/Packages"
    digest = _index_file(http, cache, src, f"{component}/binary-{arch}", "Packages", say)
    if digest is not None:
        return _indexed(cache, digest, where)
    if arch not in src.release.architectures:
        raise FormatError(f"{src.spec.archive} {src.spec.suite} has no packages for architecture {arch}",
                          f"its architectures are {', '.join(src.release.architectures)}")
    raise FormatError(f"{where}: not listed in the signed Release")


def source_package(http: Http, cache: Cache, src: VerifiedSource, name: str,
                   say: Callable[[str], None] = lambda _: None) -> list[SourceRecord]:
    """Every version of source package ``name`` that the suite's signed Sources indexes
    list, over its components. Each lookup is remembered beside the verified index."""
    found: list[SourceRecord] = []
    for component in src.spec.components:
        digest = _index_file(http, cache, src, f"{component}/source", "Sources", say)
        if digest is None:
            raise FormatError(f"{src.spec.archive} {src.spec.suite} lists no {component}/source/Sources "
                              "in its signed Release", "the suite has no source index there; "
                              "name another source-suite")
        key = f"source-{name}"
        remembered = cache.read_derived(digest, key)
        if remembered is None:
            records = sources.lookup(cache.open_map(digest), name,
                                     f"{src.spec.archive} {src.spec.suite} {component}/source/Sources")
            cache.write_derived(digest, key, sources.dumps(records))
        else:
            records = sources.loads(remembered)
        found += records
    return found


class Archive:
    """Verified access to a profile's sources; closes its gpg homes and HTTP pool."""

    def __init__(self, mirrors: Mirrors, cache: Cache, user_agent: str = "compose",
                 allow_expired: bool = False, now: datetime | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.say = say
        self.mirrors = mirrors
        self.cache = cache
        self._user_agent = user_agent
        self._http: Http | None = None
        self.allow_expired = allow_expired
        self.now = now or datetime.now(UTC)
        self._verifiers: dict[str, Verifier] = {}

    @property
    def http(self) -> Http:
        """The connection pool, made on first use: a build whose .debs are all cached
        never needs one."""
        if self._http is None:
            self._http = Http(self._user_agent, timeout_from(self.mirrors.env))
        return self._http

    def verifier(self, keyring: str) -> Verifier:
        v = self._verifiers.get(keyring)
        if v is None:
            v = self._verifiers[keyring] = Verifier(keyring_path(keyring))
        return v

    def close(self) -> None:
        for v in self._verifiers.values():
            v.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_sources(self, specs: tuple[SourceSpec, ...]) -> list[VerifiedSource]:
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            fetches = [pool.submit(_fetch_release, self.http, self.cache, self.mirrors, s) for s in specs]
            # Set up the GnuPG homes while the downloads are in flight.
            verifiers = [self.verifier(s.keyring) for s in specs]
            fetched = [f.result() for f in fetches]
            checks = [pool.submit(_verify_source, self.cache, f, v, self.now, self.allow_expired)
                      for f, v in zip(fetched, verifiers, strict=True)]
            return [c.result() for c in checks]

    def fetch_debs(self, wanted: list[Wanted],
                   progress: Callable[[Progress], None] = lambda _: None) -> dict[str, Path]:
        """Every wanted .deb in the cache (see ``composer.archive.fetch``)."""
        return fetch(lambda: self.http, self.cache, self.mirrors, wanted, progress)

    def source_package(self, src: VerifiedSource, name: str) -> list[SourceRecord]:
        return source_package(self.http, self.cache, src, name, self.say)

    def index(self, suites: list[VerifiedSource], arch: str) -> Index:
        jobs = [(i, src, comp) for i, src in enumerate(suites) if src.spec.binaries
                for comp in src.spec.components]
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(jobs)))) as pool:
            futures = [pool.submit(packages_file, self.http, self.cache, src, comp, arch, self.say)
                       for _, src, comp in jobs]
            files = [f.result() for f in futures]
        parts = []
        for (i, src, _), f in zip(jobs, files, strict=True):
            pin = 1 if src.release.not_automatic else 500
            if src.release.not_automatic and src.release.but_automatic_upgrades:
                pin = 100
            parts.append(IndexPart(f, i, pin))
        return Index(arch, parts)
