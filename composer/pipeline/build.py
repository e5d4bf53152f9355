"""``compose build`` and ``compose verify``: from a lock to an OCI image, bit for bit.

Only the lock is read: every .deb comes from the cache or a mirror by its
archive-relative path, checked against the lock's size and sha256. Every output byte
depends on the lock, the profile's image settings and compose itself — never on the
clock, the host, the user, the umask, the locale or the order work finishes in. Time in
the image is ``SOURCE_DATE_EPOCH``: by default the newest Release date in the lock.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.debian.release import parse_date
from composer.errors import ComposeError, FormatError, LockError
from composer.image import layer, oci, pycompile
from composer.image.effects import CA_BUNDLE
from composer.image.tree import Entry
from composer.lockfile import Lock, LockedPackage, LockedSource

if TYPE_CHECKING:
    from composer.audit.report import AuditReport
    from composer.pipeline.pybuild import Interpreter
from composer.model import Profile, ReleaseRecord
from composer.pipeline import Options, check
from composer.pipeline.tree import BuiltTree, TreeReport, assemble_tree, read_debs

FORMATS = ("oci", "docker-archive")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSL_CERT_FILE = "/" + CA_BUNDLE


@dataclass
class BuildOptions(Options):
    format: str = "oci"
    arch: str | None = None
    """docker-archive holds one architecture: this one (default: the host's, if the
    profile has it, else the profile's first)."""
    vendored: Path | None = None
    """A ``compose vendor`` directory: the only mirror of every archive."""
    workers: int = field(default_factory=lambda: max(2, min(8, os.cpu_count() or 2)))
    memo: bool = True
    """Reuse the layer of an earlier build of the same inputs without unpacking again
    (``verify`` turns this off: it rebuilds every byte)."""
    progress: Callable[[str, int, int], None] = lambda what, done, total: None


@dataclass(frozen=True)
class ArchResult:
    arch: str
    manifest: str
    config: str
    layer: str
    diff_id: str
    compressed_size: int
    uncompressed_size: int
    layer_reused: bool
    report: TreeReport


@dataclass(frozen=True)
class BuildOutcome:
    digest: str
    path: Path
    format: str
    epoch: int
    archs: tuple[ArchResult, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "output": str(self.path), "format": self.format,
            "source_date_epoch": self.epoch, "seconds": round(self.seconds, 3),
            "architectures": {
                a.arch: {"manifest": a.manifest, "config": a.config, "layer": a.layer,
                         "diff_id": a.diff_id, "compressed_size": a.compressed_size,
                         "uncompressed_size": a.uncompressed_size,
                         "layer_reused": a.layer_reused, "files": a.report.files,
                         "packages": a.report.packages, "compiled": a.report.compiled,
                         "certificates": a.report.certificates,
                         "not_compiled": a.report.not_compiled,
                         "no_copyright": a.report.no_copyright,
                         "special_bits_dropped": a.report.special_bits_dropped}
                for a in self.archs},
        }


def source_date_epoch(lk: Lock, env: Mapping[str, str]) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment when set, else the newest Release
    ``Date`` among the lock's sources, so the same lock gives the same time any day."""
    if env.get("SOURCE_DATE_EPOCH"):
        try:
            value = int(env["SOURCE_DATE_EPOCH"])
        except ValueError:
            raise ComposeError(f"SOURCE_DATE_EPOCH={env['SOURCE_DATE_EPOCH']!r} is not a number",
                               "set it to seconds since 1970, or unset it") from None
        if not 0 <= value < 8**11:  # what a tar header's mtime field holds
            raise ComposeError(f"SOURCE_DATE_EPOCH={value} is out of range",
                               f"give seconds since 1970, from 0 to {8**11 - 1}")
        return value
    dates = []
    for s in lk.sources:
        try:
            dates.append(int(parse_date(s.date, "Date").timestamp()))
        except FormatError:
            raise LockError(f"lock source {s.suite}: unreadable date {s.date!r}",
                            "lock again with `compose lock`") from None
    if not dates:
        raise LockError("the lock names no sources", "lock again with `compose lock`")
    return max(dates)


def image_env(prof: Profile) -> tuple[tuple[str, str], ...]:
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "SSL_CERT_FILE": SSL_CERT_FILE}
    for k, v in prof.image.env:
        env[k] = v
    return tuple(env.items())


def entrypoint(prof: Profile) -> tuple[str, ...]:
    if prof.image.entrypoint is not None:
        return prof.image.entrypoint
    return (pycompile.interpreter(prof.python_version),) if prof.python_version else ()


def labels(prof: Profile, epoch: int) -> tuple[tuple[str, str], ...]:
    out = {"org.opencontainers.image.created": oci.rfc3339(epoch),
           "org.opencontainers.image.title": prof.name}
    if isinstance(prof.extra.get("description"), str):
        out["org.opencontainers.image.description"] = prof.extra["description"]
    out |= dict(prof.image.labels)
    return tuple(sorted(out.items()))


def _run_program(entries: Mapping[str, Entry], arch: str, shares: list[list[str]],
                 argv: list[str]) -> list[bytes]:
    from composer.pipeline import sandbox

    if not shares:
        return []
    with sandbox.tree_on_disk(entries, arch) as root, ThreadPoolExecutor(len(shares)) as pool:
        return list(pool.map(
            lambda share: sandbox.run(root, arch, argv, "\n".join(share).encode()), shares))


def _blob_kind(method: str) -> str:
    """The cache kind of compressed layers: named by method, level and library."""
    return f"layer-{method}-{layer.DEFAULT_LEVEL[method]}-{_compressor(method)}"


def _cached_blob(cache: Any, diff_id: str, method: str) -> bytes | None:
    """The compressed blob made earlier from the tar ``diff_id``, if it is still intact
    (the cache checks every derived entry: a damaged one is made again, not shipped)."""
    return cache.read_derived(diff_id.removeprefix("sha256:"), _blob_kind(method))  # type: ignore[no-any-return]


def _layer(built: BuiltTree, epoch: int, method: str, workers: int, cache: Any,
           reuse: bool = True) -> tuple[oci.Layer, int, bool]:
    """The layer of a tree; a compressed blob already made from the same tar is reused
    unless ``reuse`` is off."""
    raw = layer.tar_layer(built.entries.values(), epoch)
    diff_id = oci.digest(raw)
    blob = _cached_blob(cache, diff_id, method) if reuse else None
    reused = blob is not None
    if blob is None:
        blob = layer.compress(raw, method, None, workers)
    lay = oci.Layer(blob, diff_id, oci.LAYER_MEDIA[method])
    if not reused:
        cache.write_derived(diff_id.removeprefix("sha256:"), _blob_kind(method), blob)
    return lay, len(raw), reused


@functools.cache
def _code_digest() -> str:
    """A digest of compose's own code: a layer memo never outlives a change to it."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent.parent
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _compressor(method: str) -> str:
    """The library whose bytes a compressed layer is: part of a cached blob's name, so
    a new zlib or zstd makes layers anew instead of reusing the old library's bytes."""
    if method == "gzip":
        import zlib

        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}"
    import zstandard

    return f"zstd-{zstandard.__version__}"


def _memo_key(prof: Profile, lk: Lock, arch: str, epoch: int, method: str) -> str:
    """Everything a layer depends on: the packages, the profile's tree settings, the
    epoch, the compression and compose's code."""
    inputs = {
        "code": _code_digest(), "arch": arch, "epoch": epoch, "method": method,
        "level": layer.DEFAULT_LEVEL[method],
        "packages": sorted((p.name, p.sha256) for p in lk.for_arch(arch)),
        "strip": [prof.strip, prof.keep, prof.strip_defaults],
        "python": [prof.python_version, prof.python_compile, prof.python_trim],
        "busybox": prof.busybox_applets, "only": prof.only,
        "users": [[u.name, u.uid, u.gid, u.home, u.shell] for u in prof.users],
        "groups": prof.groups, "user": prof.image.user, "sbom": prof.image.sbom,
        "setuid": prof.image.setuid,
        "compressor": _compressor(method),
    }
    built = lk.python_build(arch)
    if built is not None and lk.python_source is not None:
        # A CPython compiled from source: its files, and the source the image's
        # copyright file names.
        inputs |= {"cpython": [built.tree_sha256, dataclasses.astuple(lk.python_source)]}
    if prof.image.sbom:  # the SBOM in the image names all of these
        inputs |= {"profile": prof.name, "fingerprint": lk.fingerprint,
                   "sources": [dataclasses.astuple(x) for x in lk.sources],
                   "locked": [dataclasses.astuple(p) for p in lk.for_arch(arch)]}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _remembered(cache: Any, key: str, method: str) -> tuple[oci.Layer, int, str, TreeReport] | None:
    raw = cache.read_derived(key, "layer-memo")
    if raw is None:
        return None
    try:
        memo = json.loads(raw)
        blob = _cached_blob(cache, memo["diff_id"], method)
        if blob is None:
            return None
        lay = oci.Layer(blob, memo["diff_id"], oci.LAYER_MEDIA[method])
        return lay, int(memo["size"]), str(memo["user"]), TreeReport(**memo["report"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Prepared:
    """A fresh lock, the architectures asked for, SOURCE_DATE_EPOCH, and the locked
    .debs of those architectures, verified in the cache when first asked for."""

    lock: Lock
    archs: tuple[str, ...]
    epoch: int
    cache: Any
    paths: Mapping[str, Path]
    interpreters: dict[str, Interpreter] = field(default_factory=dict)
    """The CPythons compiled from source, by architecture, once each per run (a cross
    build runs the build machine's)."""


class _Debs(Mapping[str, Path]):
    """The verified .debs by sha256, fetched (from the cache, checked again, or from a
    mirror) the first time one is asked for. A build whose layer the memo knows, or
    whose .debs were decompressed before (the copies carry their own checksum), reads
    none and so needs neither the .debs nor the network."""

    def __init__(self, fetch: Callable[[], Mapping[str, Path]]) -> None:
        self._fetch = fetch
        self._paths: Mapping[str, Path] | None = None
        self._failed: ComposeError | None = None
        self._lock = threading.Lock()

    def _all(self) -> Mapping[str, Path]:
        with self._lock:  # read_debs asks from several threads
            if self._failed is not None:  # once: not again for each thread that asks
                raise self._failed
            if self._paths is None:
                try:
                    self._paths = self._fetch()
                except ComposeError as exc:
                    self._failed = exc
                    raise
            return self._paths

    def __getitem__(self, sha256: str) -> Path:
        return self._all()[sha256]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def wanted_debs(sources: Sequence[ReleaseRecord], pkgs: Sequence[LockedPackage],
                python_source: LockedSource | None = None) -> list[Any]:
    """What to fetch for ``pkgs`` (and a CPython source), each with the Date of the
    Release it was locked from."""
    from composer.archive.fetch import Wanted

    # A Date that does not parse is a damaged lock: parse_date says so.
    dates = {(s.archive, s.suite): parse_date(s.date, "Date") for s in sources}
    out = [Wanted(p.archive, p.filename, p.size, p.sha256,
                  f"{p.name} {p.version} {p.architecture}", dates.get((p.archive, p.suite)))
           for p in pkgs]
    if python_source is not None:
        s = python_source
        out.append(Wanted(s.archive, s.filename, s.size, s.sha256,
                          f"{s.package} {s.version} source", dates.get((s.archive, s.suite))))
    return out


def prepare(prof: Profile, lock_path: Path, opts: BuildOptions,
            lock: Lock | None = None) -> Prepared:
    """Check the lock at ``lock_path`` (or take ``lock``, one about to be written) and
    fetch its .debs."""
    from composer.archive.cache import Cache, default_root

    lk = lock or check(prof, lock_path)
    archs = list(lk.architectures)
    if opts.format == "docker-archive":
        archs = [_docker_arch(lk, opts.arch)]
    elif opts.arch:
        if opts.arch not in archs:
            raise ComposeError(f"the lock has no {opts.arch} packages",
                               f"choose one of {', '.join(archs)}")
        archs = [opts.arch]
    epoch = source_date_epoch(lk, opts.env)
    cache = Cache(default_root(opts.env))
    pkgs = [p for a in archs for p in lk.for_arch(a)]
    return Prepared(lk, tuple(archs), epoch, cache,
                    fetched(wanted_debs(lk.sources, pkgs), cache, opts))


def fetched(wanted: list[Any], cache: Any, opts: BuildOptions) -> _Debs:
    """The ``wanted`` files, verified in the cache, fetched when first asked for (from the
    cache, checked again, or the mirrors ``opts`` name)."""
    from composer.archive.index import Archive
    from composer.archive.mirrors import Mirrors

    mirrors = Mirrors(opts.mirrors, opts.env, vendored=opts.vendored)

    def fetch() -> Mapping[str, Path]:
        with Archive(mirrors, cache, "compose", say=opts.say) as archive:
            return archive.fetch_debs(wanted, lambda pr: opts.progress(
                "download", pr.done_bytes, pr.total_bytes))

    return _Debs(fetch)


@dataclass(frozen=True)
class ArchImage:
    manifest: oci.Descriptor
    blobs: dict[str, bytes]
    layer: oci.Layer
    config: bytes
    result: ArchResult
    built: BuiltTree | None
    """The tree, when it was assembled (not when the memo answered)."""
    audited: AuditReport | None = None
    """The audit of the tree, when the build made one (for the SBOM it carries)."""


def arch_image(prof: Profile, prep: Prepared, arch: str, opts: BuildOptions,
               keep_tree: bool = False) -> ArchImage:
    """One architecture's image: its layer, config and manifest. With ``keep_tree`` the
    tree is assembled even when the memo knows the layer (an audit needs it)."""
    lk, epoch, cache = prep.lock, prep.epoch, prep.cache
    method = prof.image.compression
    key = _memo_key(prof, lk, arch, epoch, method)
    found = _remembered(cache, key, method) if opts.memo and not keep_tree else None
    built = None
    audited = None
    if found:
        lay, usize, user, report = found
        reused = True
    else:
        debs = read_debs(lk.for_arch(arch), prep.paths, cache, opts.workers, opts.memo)
        interp = interpreter(prof, prep, arch, opts).entries if lk.python_source else None
        built = assemble_tree(prof, lk, arch, debs, epoch, cache, _run_program, opts.workers,
                              opts.memo, interp)
        if prof.image.sbom:
            built, audited = _with_sbom(prof, lk, arch, built, epoch)
        lay, usize, reused = _layer(built, epoch, method, opts.workers, cache, opts.memo)
        user, report = built.user, built.report
        cache.write_derived(key, "layer-memo", json.dumps({
            "diff_id": lay.diff_id, "size": usize, "user": user,
            "report": dataclasses.asdict(report)}, sort_keys=True).encode())
    config = oci.ImageConfig(
        architecture=arch, epoch=epoch, diff_ids=(lay.diff_id,),
        history=(oci.History(f"compose build {prof.name} ({report.packages} packages)",
                             "Debian packages pinned by the lock"),),
        entrypoint=entrypoint(prof), cmd=prof.image.cmd, env=image_env(prof),
        user=user, workdir=prof.image.workdir, labels=labels(prof, epoch))
    desc, arch_blobs = oci.image_blobs(config, [lay], {oci.CREATED: oci.rfc3339(epoch)})
    config_bytes = config.to_json()
    result = ArchResult(arch, desc.digest, oci.digest(config_bytes), lay.descriptor.digest,
                        lay.diff_id, len(lay.blob), usize, reused, report)
    return ArchImage(desc, arch_blobs, lay, config_bytes, result, built, audited)


def interpreter(prof: Profile, prep: Prepared, arch: str, opts: BuildOptions) -> Interpreter:
    """The CPython the lock builds from source: from the cache (unless the memo is off,
    as for ``verify``), or built again from the lock's pinned source and build root;
    either way, the files the lock was made from."""
    from composer.pipeline import pybuild

    if arch in prep.interpreters:
        return prep.interpreters[arch]
    lk = prep.lock
    built = lk.python_build(arch)
    if prof.python_build is None or prof.python_version is None or built is None:
        raise LockError("the lock builds CPython from source, the profile does not",
                        f"run `compose lock {prof.path}`")
    assert lk.python_source is not None
    # A cross build runs the build machine's own build of the same CPython, which the
    # lock records; it is got (from this run, the cache, or built) only when needed.
    build_python = None
    machine = built.build_architecture
    if machine:
        builder = lk.python_build(machine)
        assert builder is not None  # the lock's reader checks it is there
        build_python = (machine, builder.tree_sha256,
                        lambda: interpreter(prof, prep, machine, opts))
    root_pkgs = lk.build_root(arch)
    files = fetched(wanted_debs(lk.sources, root_pkgs, lk.python_source), prep.cache, opts)
    got = pybuild.interpreter(
        lk.python_source, prof.python_version, prof.python_build, arch, root_pkgs, files,
        prep.cache, opts.say, opts.env, reuse=opts.memo, build_python=build_python)
    pybuild.check_against_lock(got, built, arch)
    prep.interpreters[arch] = got
    return got


SBOM_DIR = "usr/share/sbom"


def _with_sbom(prof: Profile, lk: Lock, arch: str, built: BuiltTree, epoch: int
               ) -> tuple[BuiltTree, AuditReport]:
    """The tree with its own SBOM in ``/usr/share/sbom/``: the packages and files of
    the tree as it is before the SBOM is added. An image cannot name its own digest, so
    the document names the lock's fingerprint in its place. Also returns the audit the
    SBOM was made from (the policy gate reads it: the SBOM file changes no licence)."""
    from composer.audit import sbom
    from composer.pipeline.audit import evaluate_tree

    report = evaluate_tree(prof, lk, arch, built, lk.fingerprint, epoch)
    if prof.image.sbom == "spdx":
        data, name = sbom.spdx_json([report], prof.name, lk.fingerprint), "spdx.json"
    else:
        data, name = sbom.cyclonedx_json([report], prof.name, lk.fingerprint), "cdx.json"
    entries = dict(built.entries)
    path = f"{SBOM_DIR}/{prof.name}.{name}"
    for d in ("usr/share", SBOM_DIR):
        entries.setdefault(d, Entry(d, "dir", 0o755, mtime=epoch))
    entries[path] = Entry(path, "file", 0o644, data=data, mtime=epoch)
    return dataclasses.replace(built, entries=entries), report


def build(prof: Profile, lock_path: Path, out: Path, opts: BuildOptions,
          lock: Lock | None = None) -> BuildOutcome:
    """Build the image of the lock at ``lock_path`` (or of ``lock``, already checked)."""
    started = time.monotonic()
    if opts.format not in FORMATS:
        raise ComposeError(f"unknown format {opts.format!r}", f"use one of {', '.join(FORMATS)}")
    prep = prepare(prof, lock_path, opts, lock)
    gated = bool(prof.policy_deny or prof.policy_allow)
    images = []
    for arch in prep.archs:
        image = arch_image(prof, prep, arch, opts, keep_tree=gated)
        if gated:
            from composer.pipeline.audit import enforce, evaluate_tree

            assert image.built is not None
            enforce(image.audited or evaluate_tree(prof, prep.lock, arch, image.built,
                                                   image.manifest.digest, prep.epoch))
        images.append(image)

    manifests = [i.manifest for i in images]
    digest = image_digest(manifests)
    tags = prof.image.tags or (prof.name,)
    if opts.format == "oci":
        blobs = {d: b for i in images for d, b in i.blobs.items()}
        oci.write_layout(out, oci.layout_index(manifests, tags, blobs), blobs)
    else:
        repo_tags = [f"{prof.name}:{t}" if ":" not in t else t for t in tags]
        oci.write_docker_archive(out, images[0].config, [images[0].layer], repo_tags)
    return BuildOutcome(digest, out, opts.format, prep.epoch, tuple(i.result for i in images),
                        time.monotonic() - started)


def image_digest(manifests: list[oci.Descriptor]) -> str:
    """The digest a registry would give the image: the manifest's for one architecture,
    the image index's (as ``oci.layout_index`` writes it) for several."""
    return manifests[0].digest if len(manifests) == 1 else oci.digest(oci.index_json(manifests))


def _docker_arch(lk: Lock, wanted: str | None) -> str:
    import platform

    from composer.pipeline.sandbox import NATIVE

    if wanted:
        if wanted not in lk.architectures:
            raise ComposeError(f"the lock has no {wanted} packages",
                               f"choose one of {', '.join(lk.architectures)}")
        return wanted
    host = NATIVE.get(platform.machine(), ("",))[0]
    return host if host in lk.architectures else lk.architectures[0]


def verify(prof: Profile, lock_path: Path, against: Path | None, expect: str | None,
           opts: BuildOptions) -> tuple[BuildOutcome, str | None]:
    """Rebuild from the lock into a scratch directory and compare with an existing
    layout (blob by blob, naming the first differing file) and/or an expected digest.
    Returns the rebuild and the first difference (None when they agree)."""
    if against is not None and not (against / "oci-layout").is_file():
        raise ComposeError(f"{against} is not an OCI image layout",
                           "build it with `compose build`, or name the layout with --image")
    if against is not None and opts.arch:
        held = oci.layout_architectures(against)
        if held and held != [opts.arch]:
            raise ComposeError(f"--arch {opts.arch} rebuilds one architecture, and {against} "
                               f"holds {', '.join(held)}",
                               "verify without --arch, or against a layout built with --arch "
                               f"{opts.arch}")
    with tempfile.TemporaryDirectory(prefix="compose-verify-") as tmp:
        rebuilt = build(prof, lock_path, Path(tmp) / "image", dataclasses.replace(opts, memo=False))
        problem = None
        if expect and rebuilt.digest != expect:
            problem = f"rebuilt digest {rebuilt.digest} is not the expected {expect}"
        if against is not None:
            diff = oci.first_difference(against, Path(tmp) / "image")
            if diff:
                problem = f"{problem}; " if problem else ""
                problem += f"{against} differs from the rebuild: {diff}"
        return rebuilt, problem



@dataclass(frozen=True)
class Vendored:
    directory: Path
    files: int
    copied: int
    size: int


def vendor(prof: Profile, lock_path: Path, directory: Path, opts: BuildOptions) -> Vendored:
    """Copy every .deb of a fresh lock (or of ``opts.arch``), verified, to
    ``DIRECTORY/ARCHIVE/FILENAME``: a mirror of exactly the lock that a later build can
    use alone (``--vendored``), with no network. A copy already there is kept when it
    verifies, replaced otherwise; each appears whole or not at all."""
    from composer import atomic
    from composer.archive.fetch import file_matches

    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise ComposeError(f"{directory} exists and is not a directory",
                           "give the directory to copy the .debs into")
    prep = prepare(prof, lock_path, opts)
    lk = prep.lock
    # A source-built CPython's tarball and build roots too (a cross build's, and its
    # build machine's): a build that finds its interpreter missing from the cache
    # builds it again from them.
    roots = {b.built_on for a in prep.archs if (b := lk.python_build(a)) is not None}
    pkgs = [*(p for a in prep.archs for p in lk.for_arch(a)),
            *(p for a in sorted({*prep.archs, *roots}) for p in lk.build_root(a))]
    wanted = {(w.archive, w.filename): w
              for w in wanted_debs(lk.sources, pkgs, lk.python_source)}
    paths = fetched(list(wanted.values()), prep.cache, opts)
    copied = size = 0
    for (archive, filename), w in sorted(wanted.items()):
        dest = directory / archive / filename
        size += w.size
        if file_matches(dest, w.size, w.sha256):
            continue
        src = paths[w.sha256]
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as f, atomic.new_file(dest.parent) as new:
                while chunk := f.read(1 << 20):
                    new.file.write(chunk)
                new.commit(dest)
        except OSError as exc:
            raise ComposeError(f"cannot write {dest}: {exc.strerror or exc}",
                               "check the directory and its free space") from None
        copied += 1
    return Vendored(directory, len(wanted), copied, size)
