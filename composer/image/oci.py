"""OCI image-spec 1.1 output: canonical JSON, the image layout, a docker-save archive.

Every JSON document compose writes is canonical, so that the same image gives the same
digests: keys sorted, separators ``,`` and ``:`` without spaces, UTF-8 without ``\\u``
escapes, no trailing newline. Optional fields that are empty are left out rather than
written as ``null`` or ``[]``.

One architecture's image is a manifest referencing a config and its layers; the
layout's ``index.json`` tags that manifest directly. Several architectures get an
image index blob listing one manifest per platform, and ``index.json`` tags that index
(``org.opencontainers.image.ref.name``, one descriptor per tag), as image-layout says.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from composer import atomic
from composer.errors import ComposeError
from composer.image.layer import GZIP, ZSTD, compress, decompress, tar_difference, tar_layer
from composer.image.tree import DIR, FILE, Entry
from composer.model import SHA256_HEX

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_MEDIA = {GZIP: LAYER_TAR + "+gzip", ZSTD: LAYER_TAR + "+zstd", "": LAYER_TAR}
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'

_PLATFORMS = {
    "amd64": ("amd64", ""), "arm64": ("arm64", "v8"), "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"), "i386": ("386", ""), "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""), "riscv64": ("riscv64", ""), "mips64el": ("mips64le", ""),
    "loong64": ("loong64", ""),
}
"""Debian architecture -> GOARCH and variant, the names OCI platforms use."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Platform:
    architecture: str
    os: str = "linux"
    variant: str = ""

    @classmethod
    def for_debian(cls, arch: str) -> Platform:
        if arch not in _PLATFORMS:
            raise ComposeError(f"architecture {arch!r} has no OCI platform name",
                               hint="use one of " + ", ".join(sorted(_PLATFORMS)))
        goarch, variant = _PLATFORMS[arch]
        return cls(goarch, variant=variant)

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        return out | ({"variant": self.variant} if self.variant else {})

    def __str__(self) -> str:
        return "/".join(filter(None, (self.os, self.architecture, self.variant)))


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, media_type: str, blob: bytes, platform: Platform | None = None,
           annotations: Mapping[str, str] | None = None) -> Descriptor:
        return cls(media_type, digest(blob), len(blob), platform,
                   tuple(sorted((annotations or {}).items())))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Layer:
    """A compressed layer blob and the digest of its tar (its diff_id)."""

    blob: bytes
    diff_id: str
    media_type: str

    @classmethod
    def of(cls, entries: Iterable[Entry], epoch: int, compression: str = GZIP,
           level: int | None = None, workers: int = 2) -> Layer:
        raw = tar_layer(entries, epoch)
        blob = compress(raw, compression, level, workers) if compression else raw
        return cls(blob, digest(raw), LAYER_MEDIA[compression])

    @cached_property
    def descriptor(self) -> Descriptor:
        return Descriptor.of(self.media_type, self.blob)


@dataclass(frozen=True, slots=True)
class History:
    created_by: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The image configuration; ``architecture`` is Debian's name, ``epoch`` gives
    ``created`` (the build's SOURCE_DATE_EPOCH), ``history`` has one entry per layer."""

    architecture: str
    epoch: int
    diff_ids: tuple[str, ...]
    history: tuple[History, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def platform(self) -> Platform:
        return Platform.for_debian(self.architecture)

    def to_json(self) -> bytes:
        if len(self.history) != len(self.diff_ids):
            raise ValueError(f"{len(self.history)} history entries for "
                             f"{len(self.diff_ids)} layers")
        created = rfc3339(self.epoch)
        run: dict[str, Any] = {"Entrypoint": list(self.entrypoint), "Cmd": list(self.cmd),
                               "Env": [f"{k}={v}" for k, v in self.env], "User": self.user,
                               "WorkingDir": self.workdir, "Labels": dict(self.labels)}
        history = [{"created": created, "created_by": h.created_by, "comment": h.comment}
                   for h in self.history]
        return canonical_json(self.platform.to_json() | {
            "created": created,
            "config": {k: v for k, v in run.items() if v},
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [{k: v for k, v in h.items() if v} for h in history],
        })


def manifest_json(config: Descriptor, layers: Sequence[Descriptor],
                  annotations: Mapping[str, str] | None = None) -> bytes:
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": config.to_json(), "layers": [d.to_json() for d in layers]}
    if annotations:
        out["annotations"] = dict(annotations)
    return canonical_json(out)


def index_json(manifests: Sequence[Descriptor],
               annotations: Mapping[str, str] | None = None) -> bytes:
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": INDEX,
                           "manifests": [d.to_json() for d in manifests]}
    if annotations:
        out["annotations"] = dict(annotations)
    return canonical_json(out)


def image_blobs(config: ImageConfig, layers: Sequence[Layer],
                annotations: Mapping[str, str] | None = None,
                ) -> tuple[Descriptor, dict[str, bytes]]:
    """One architecture's image: its manifest's descriptor (with the platform) and the
    blobs (config, layers, manifest) by digest."""
    if tuple(la.diff_id for la in layers) != config.diff_ids:
        raise ValueError("the config's diff_ids are not those of the layers")
    config_blob = config.to_json()
    blobs = {digest(config_blob): config_blob} | {la.descriptor.digest: la.blob for la in layers}
    manifest = manifest_json(Descriptor.of(CONFIG, config_blob),
                             [la.descriptor for la in layers], annotations)
    blobs[digest(manifest)] = manifest
    return Descriptor.of(MANIFEST, manifest, config.platform), blobs


def layout_index(manifests: Sequence[Descriptor], tags: Sequence[str],
                 blobs: dict[str, bytes]) -> bytes:
    """``index.json`` naming ``manifests`` once per tag (or once, untagged). Several
    manifests are first gathered into an image index blob, added to ``blobs``."""
    if len(manifests) == 1:
        target = manifests[0]
    else:
        nested = index_json(manifests)
        blobs[digest(nested)] = nested
        target = Descriptor.of(INDEX, nested)
    refs = [Descriptor(target.media_type, target.digest, target.size, target.platform,
                       tuple(sorted({**dict(target.annotations), REF_NAME: t}.items())))
            for t in tags] or [target]
    return index_json(refs)


# Writing -------------------------------------------------------------------------------

def _hex(d: str) -> str:
    algo, _, hexdigest = d.partition(":")
    if algo != "sha256" or not SHA256_HEX.fullmatch(hexdigest):
        raise ValueError(f"not a sha256 digest: {d!r}")
    return hexdigest


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o644)


def _referenced(index: bytes, blobs: Mapping[str, bytes]) -> Iterator[str]:
    """Every digest reachable from ``index``, through nested indexes and manifests."""
    doc = json.loads(index)
    todo = list(doc.get("manifests", []))
    while todo:
        d = todo.pop()
        yield d["digest"]
        if d["mediaType"] in (INDEX, MANIFEST) and d["digest"] in blobs:
            sub = json.loads(blobs[d["digest"]])
            todo += sub.get("manifests", []) + sub.get("layers", [])
            todo += [sub["config"]] if "config" in sub else []


def _replaceable(out: Path, marker: str) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ComposeError(f"{out} exists and is not a directory",
                           hint="choose another output path or remove it")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise ComposeError(f"{out} is a non-empty directory without {marker}; refusing "
                           "to replace it", hint="choose another output path")


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """OSError (a read-only or full disk, a missing permission) as the user's error."""
    try:
        yield
    except OSError as exc:
        raise ComposeError(f"cannot write {out}: {exc.strerror or exc}",
                           hint="check the output path and its parent directory") from None


def write_layout(out_dir: Path, index: bytes, blobs: Mapping[str, bytes | Path]) -> None:
    """Write an OCI image layout at ``out_dir``, all or nothing.

    The layout is written into a hidden sibling directory and, once every file is
    synced, exchanged with what is at ``out_dir`` in one step (see ``composer.atomic``):
    a reader, or a process killed at any moment, sees the old layout or the new one.
    Every blob must match its digest and every blob ``index`` reaches must be given. An
    existing directory is only replaced if it is empty or a layout.
    """
    data = {d: b if isinstance(b, bytes) else b.read_bytes() for d, b in blobs.items()}
    for d, b in data.items():
        if _hex(d) and digest(b) != d:
            raise ValueError(f"blob {d} does not match its content ({digest(b)})")
    missing = sorted(set(_referenced(index, data)) - data.keys())
    if missing:
        raise ValueError(f"index.json reaches blobs that were not given: {missing}")
    out_dir = out_dir.absolute()
    _replaceable(out_dir, "oci-layout")
    with _writing(out_dir):
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with atomic.new_dir(out_dir) as new:
            tmp = new.path
            os.chmod(tmp, 0o755)
            (tmp / "blobs" / "sha256").mkdir(parents=True)
            for folder in (tmp / "blobs", tmp / "blobs" / "sha256"):
                os.chmod(folder, 0o755)  # whatever the umask
            for d, b in sorted(data.items()):
                _write(tmp / "blobs" / "sha256" / _hex(d), b)
            _write(tmp / "oci-layout", LAYOUT_VERSION)
            _write(tmp / "index.json", index)
            for p in (tmp / "blobs" / "sha256", tmp / "blobs"):
                atomic.fsync_dir(p)
            _replaceable(out_dir, "oci-layout")  # again: another process may have been first
            new.commit()


def _is_docker_archive(path: Path) -> bool:
    """Whether ``path`` is a tar holding manifest.json (a file compose may replace)."""
    import tarfile

    try:
        with tarfile.open(path, "r:") as tar:
            return any(m.name in ("manifest.json", "./manifest.json") for m in tar)
    except (OSError, tarfile.TarError):
        return False


def write_docker_archive(out_file: Path, config: bytes, layers: Sequence[Layer],
                         repo_tags: Sequence[str]) -> None:
    """Write a ``docker save`` archive of one image, all or nothing: ``manifest.json``
    naming ``blobs/sha256/<hex>`` for the config and each (compressed) layer, in a tar
    of :func:`tar_layer`'s format with mtime 0. ``repo_tags`` are full references
    (``name:tag``). docker and podman decompress the layers on load."""
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    if diff_ids != [la.diff_id for la in layers]:
        raise ValueError("the config's diff_ids are not those of the layers")
    manifest = [{"Config": f"blobs/sha256/{_hex(digest(config))}", "RepoTags": list(repo_tags),
                 "Layers": [f"blobs/sha256/{_hex(la.descriptor.digest)}" for la in layers]}]
    files = {digest(config): config} | {la.descriptor.digest: la.blob for la in layers}
    entries = [Entry("blobs", DIR, 0o755), Entry("blobs/sha256", DIR, 0o755),
               Entry("manifest.json", FILE, 0o644, data=canonical_json(manifest))]
    entries += [Entry(f"blobs/sha256/{_hex(d)}", FILE, 0o644, data=b) for d, b in files.items()]
    out_file = out_file.absolute()
    if out_file.is_dir() or out_file.is_symlink():
        raise ComposeError(f"{out_file} is a directory or a symlink",
                           hint="give the path of the archive file to write")
    if out_file.exists() and not _is_docker_archive(out_file):
        raise ComposeError(f"{out_file} exists and is not a docker archive; refusing to "
                           "replace it", hint="choose another output path or remove it")
    with _writing(out_file):
        out_file.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_file(out_file, tar_layer(entries, 0))


# Comparing -----------------------------------------------------------------------------

class _Found(Exception):
    """Carries the first difference out of the walk."""


def _json_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first differing key path of two JSON values (``config.Env[1]: ...``)."""
    if type(a) is not type(b):
        return f"{where or 'document'}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(a.keys() | b.keys()):
            path = f"{where}.{k}" if where else k
            if k not in b or k not in a:
                return f"{path}: only in the {'first' if k in a else 'second'}"
            found = _json_difference(a[k], b[k], path)
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _json_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return f"{where}: {len(a)} vs {len(b)} items" if len(a) != len(b) else None
    return f"{where or 'document'}: {a!r} vs {b!r}" if a != b else None


def _platform_key(d: dict[str, Any]) -> str:
    p = d.get("platform") or {}
    return "/".join(filter(None, (p.get("os"), p.get("architecture"), p.get("variant"))))


class _Walk:
    """Two layouts walked side by side from index.json; each pair of blobs once."""

    def __init__(self, a: Path, b: Path) -> None:
        self.roots = {"first": a, "second": b}
        self.index = {which: self._read(which, "index.json") for which in self.roots}
        for which in self.roots:
            self._read(which, "oci-layout")
        self.seen: set[tuple[str, str]] = set()

    def _read(self, which: str, name: str) -> bytes:
        try:
            return (self.roots[which] / name).read_bytes()
        except OSError as exc:
            raise ComposeError(f"{self.roots[which]} is not an OCI image layout: {name}: "
                               f"{exc.strerror}", hint="give the directory holding "
                               "index.json") from None

    def blob(self, which: str, d: dict[str, Any]) -> bytes:
        try:
            data = (self.roots[which] / "blobs" / "sha256" / _hex(d["digest"])).read_bytes()
        except (OSError, ValueError):
            raise _Found(f"{which} layout: blob {d['digest']} is missing") from None
        if digest(data) != d["digest"] or len(data) != d.get("size"):
            raise _Found(f"{which} layout: blob {d['digest']} does not match its digest "
                         "or size (corrupt)")
        return data

    def pairs(self, a: list[dict[str, Any]], b: list[dict[str, Any]],
              what: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Descriptors of two lists matched by platform (when each names a distinct
        one), otherwise by position."""
        if len(a) != len(b):
            raise _Found(f"{what}: {len(a)} vs {len(b)} manifests")
        ka, kb = [_platform_key(d) for d in a], [_platform_key(d) for d in b]
        if all(ka) and len(set(ka)) == len(ka):
            if set(ka) != set(kb):
                raise _Found(f"{what}: platforms {sorted(ka)} vs {sorted(kb)}")
            by_key = dict(zip(kb, b, strict=True))
            return [(k, d, by_key[k]) for k, d in sorted(zip(ka, a, strict=True))]
        return [((x.get("annotations") or {}).get(REF_NAME) or f"{what}: manifest {i + 1}", x, y)
                for i, (x, y) in enumerate(zip(a, b, strict=True))]

    def descriptor(self, what: str, da: dict[str, Any], db: dict[str, Any]) -> None:
        """Compare the blobs two descriptors name, raising :class:`_Found`."""
        if da.get("mediaType") != db.get("mediaType"):
            raise _Found(f"{what}: media type {da.get('mediaType')} vs {db.get('mediaType')}")
        if (da["digest"], db["digest"]) in self.seen:
            return
        self.seen.add((da["digest"], db["digest"]))
        a, b = self.blob("first", da), self.blob("second", db)
        label = f"{what} ({da['digest'][:19]} vs {db['digest'][:19]})"
        media = da.get("mediaType", "")
        if media in (INDEX, MANIFEST):
            self.document(what, a, b)
            return
        if a == b:
            return
        if media.startswith(LAYER_TAR):
            try:
                raw_a, raw_b = decompress(a), decompress(b)
                found = tar_difference(raw_a, raw_b)
            except ComposeError as exc:
                raise _Found(f"{label}: {exc}") from None
            raise _Found(f"{label}: " + (found or f"same tar, compressed differently "
                                         f"({len(a)} vs {len(b)} bytes)"))
        try:
            found = _json_difference(json.loads(a), json.loads(b))
        except ValueError:
            found = None
        raise _Found(f"{label}: {found or 'content differs'}")

    def document(self, what: str, a: bytes, b: bytes) -> None:
        """An index or manifest: what it references first (layers before the config,
        whose diff_ids differ because a layer does), then its own fields."""
        try:
            ja, jb = json.loads(a), json.loads(b)
        except ValueError:
            raise _Found(f"{what}: not valid JSON") from None
        for name, da, db in self.pairs(ja.get("manifests", []), jb.get("manifests", []), what):
            self.descriptor(name, da, db)
        la, lb = ja.get("layers", []), jb.get("layers", [])
        for i, (da, db) in enumerate(zip(la, lb, strict=False)):
            self.descriptor(f"{what}: layer {i + 1} of {len(la)}", da, db)
        if len(la) != len(lb):
            raise _Found(f"{what}: {len(la)} vs {len(lb)} layers")
        if "config" in ja and "config" in jb:
            self.descriptor(f"{what}: config", ja["config"], jb["config"])
        found = _json_difference(ja, jb)
        if found:
            raise _Found(f"{what}: {found}")
        if a != b:
            raise _Found(f"{what}: same content, different JSON encoding")


def first_difference(a_layout: Path, b_layout: Path) -> str | None:
    """The first thing that differs between two OCI layouts, in user terms, or None.

    Walks index.json to manifests, then their layers and configs; a layer is
    decompressed and its members compared (presence, type, content, link target, mode,
    owner, mtime). Blobs are checked against their digests on both sides."""
    walk = _Walk(a_layout, b_layout)
    try:
        walk.document("index.json", walk.index["first"], walk.index["second"])
    except _Found as found:
        return str(found)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # A layout whose JSON has the wrong shape: that is the difference.
        return f"a layout's index or manifest is malformed ({type(exc).__name__}: {exc})"
    return None


def layout_architectures(layout: Path) -> list[str]:
    """The Debian architectures of the images a layout's index.json names (through a
    nested image index or directly); [] when it cannot tell."""
    inverse = {(goarch, variant): deb for deb, (goarch, variant) in _PLATFORMS.items()}
    try:
        index = json.loads((layout / "index.json").read_bytes())
        found: list[str] = []
        for d in index.get("manifests", []):
            descs = [d]
            if d.get("mediaType") == INDEX:
                nested = json.loads((layout / "blobs" / "sha256" / _hex(d["digest"])).read_bytes())
                descs = nested.get("manifests", [])
            for m in descs:
                p = m.get("platform") or {}
                deb = inverse.get((str(p.get("architecture")), str(p.get("variant", ""))))
                if deb and deb not in found:
                    found.append(deb)
        return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
