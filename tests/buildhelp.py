"""A small signed archive for ``compose build``, profiles that use it, and readers for
what a build writes (OCI layouts, layer tars, ``.deb`` control files) that share no
code with ``composer``."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import lzma
import socket
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from tests.fakearchive import TEST_KEY, FakeArchive

ARCHES = ("amd64", "arm64")
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
KEYRING = TEST_KEY.public_binary_path
RELEASE_DATE = "Sun, 01 Jan 2023 00:00:00 UTC"
EPOCH = 1_672_531_200
"""``RELEASE_DATE`` in seconds: older than the packages' member mtimes (1_700_000_000),
so every mtime in a layer is clamped to it."""
PY = "3.11"

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CERTS = {
    "usr/share/ca-certificates/mozilla/Beta_Root.crt": "beta",
    "usr/share/ca-certificates/mozilla/Alpha_Root.crt": "alpha",
    "usr/share/ca-certificates/extra/zeta.crt": "zeta",
}
TRIMMED = ("idlelib/idle.py", "ensurepip/__init__.py", "lib2to3/main.py",
           "tkinter/__init__.py", "turtledemo/__main__.py", "turtle.py")
MAIN = ["base-files", "tools", "more", f"python{PY}-minimal", "ca-certificates",
        "repl-a", "repl-b", "repl-c", "repl-d", "bigdata", "tools-data", "orphan-bin",
        "orphan-doc"]
"""What the main profile includes (libc6 comes in as a dependency of tools)."""


def pem(name: str) -> str:
    body = base64.b64encode(hashlib.sha256(name.encode()).digest() * 3).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def big_table() -> str:
    """About 2.3 MB of text: the layer's tar spans several of the 1 MiB pieces that
    parallel gzip compresses separately, so -j 1 and -j 4 take different paths."""
    return "".join(f"row {i:06d} {hashlib.sha256(str(i).encode()).hexdigest()}\n"
                   for i in range(30_000))


def copyright_of(package: str) -> str:
    return f"Upstream-Name: {package}\nLicense: Expat\n"


def _doc(package: str) -> dict[str, str]:
    return {f"usr/share/doc/{package}/copyright": copyright_of(package),
            f"usr/share/doc/{package}/changelog.Debian.gz": f"{package} changes\n"}


def make_archive(root: Path) -> FakeArchive:
    """The archive every build test uses: suite trixie, amd64 and arm64."""
    d = FakeArchive(root, "debian")
    for a in ARCHES:
        t = TRIPLETS[a]
        links = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "var/run": "/run"}
        if a == "amd64":
            links["lib64"] = "usr/lib64"
        d.add("trixie", "base-files", "13.8", a, essential=True, symlinks=links,
              files={"etc/debian_version": "13.0\n",
                     "usr/share/man/man5/os-release.5.gz": "man page",
                     "usr/share/info/base.info.gz": "info page",
                     "usr/share/locale/de/LC_MESSAGES/base.mo": "German",
                     "usr/share/lintian/overrides/base-files": "tag\n",
                     "usr/share/common-licenses/GPL-3": "GPL\n",
                     **_doc("base-files")},
              directories=["var/log", "run"])
        loader = ("lib64/ld-linux-x86-64.so.2" if a == "amd64"
                  else "lib/ld-linux-aarch64.so.1")
        d.add("trixie", "libc6", "2.41-1", a, source="glibc", multi_arch="same",
              files={f"lib/{t}/libc.so.6": f"libc for {a}\n", loader: "loader\n",
                     **_doc("libc6")})
        d.add("trixie", "tools", "1.0-1", a, depends="libc6 (>= 2.36)",
              files={"bin/tool": "#!/bin/sh\necho tool\n",
                     "usr/share/common/tools.txt": "tools\n",
                     "usr/share/tools/turtle.py": "# not the standard library\n",
                     "usr/share/extras/keep.txt": "kept\n",
                     "usr/share/extras/drop.txt": "dropped\n",
                     "usr/share/extras/sub/drop2.txt": "dropped too\n",
                     "usr/share/man/man1/tool.1.gz": "man page",
                     "usr/share/doc/tools/README.Debian": "readme\n",
                     **_doc("tools")},
              symlinks={"usr/bin/tool-alias": "tool",
                        "usr/lib/tools/current": "../tools-1.0"},
              modes={"bin/tool": 0o755})
        d.add("trixie", "more", "2.0-1", a,
              files={"usr/share/common/more.txt": "more\n", **_doc("more")})
        stdlib = f"usr/lib/python{PY}"
        d.add("trixie", f"python{PY}-minimal", f"{PY}.2-6", a, source=f"python{PY}",
              files={f"usr/bin/python{PY}": "#!fake interpreter\n",
                     f"{stdlib}/os.py": "import sys\n",
                     f"{stdlib}/json/__init__.py": "# json\n",
                     **{f"{stdlib}/{p}": f"# {p}\n" for p in TRIMMED},
                     f"usr/share/man/man1/python{PY}.1.gz": "man page",
                     **_doc(f"python{PY}-minimal")},
              modes={f"usr/bin/python{PY}": 0o755})
        d.add("trixie", "repl-a", "1", a, replaces="repl-b",
              files={"usr/share/shared/one": "from repl-a\n", **_doc("repl-a")})
        d.add("trixie", "repl-b", "1", a,
              files={"usr/share/shared/one": "from repl-b\n", **_doc("repl-b")})
        d.add("trixie", "repl-c", "1", a,
              files={"usr/share/shared/two": "from repl-c\n", **_doc("repl-c")})
        d.add("trixie", "repl-d", "1", a, replaces="repl-c (<< 2)",
              files={"usr/share/shared/two": "from repl-d\n", **_doc("repl-d")})
        d.add("trixie", "orphan-bin", "1", a, source="orphan", files=_doc("orphan-bin"))
        d.add("trixie", "orphan-doc", "1", a, source="orphan",
              files={"usr/share/orphan/data": "data\n"},
              symlinks={"usr/share/doc/orphan-doc": "orphan-common"})
        d.add("trixie", "privileged", "1", a,
              files={"usr/bin/allowed": "#!/bin/sh\n", "usr/bin/sneaky": "#!/bin/sh\n",
                     "usr/bin/grouped": "#!/bin/sh\n", **_doc("privileged")},
              modes={"usr/bin/allowed": 0o4755, "usr/bin/sneaky": 0o4755,
                     "usr/bin/grouped": 0o2755},
              directories=["var/privileged"])
        d.add("trixie", "clash-a", "1", a, files={"usr/share/clash/same": "a\n"})
        d.add("trixie", "clash-b", "1", a, files={"usr/share/clash/same": "b\n"})
    d.add("trixie", "ca-certificates", "20250419", "all",
          files={**{p: pem(n) for p, n in CERTS.items()},
                 "usr/share/ca-certificates/mozilla/README": "not a certificate\n",
                 **_doc("ca-certificates")})
    d.add("trixie", "tools-data", "1.0-1", "all", source="tools", depends="tools",
          files={"usr/share/tools/data.txt": "data\n"},
          symlinks={"usr/share/doc/tools-data": "tools"})
    d.add("trixie", "bigdata", "1", "all",
          files={"usr/share/bigdata/table.txt": big_table(), **_doc("bigdata")})
    d.publish("trixie", date=RELEASE_DATE)
    return d


def profile_text(name: str, include: list[str], archs: tuple[str, ...] = ("amd64",),
                 extra: str = "") -> str:
    return f"""\
name = "{name}"
description = "{name} for tests"
architectures = {json.dumps(list(archs))}

[[source]]
archive = "debian"
suite = "trixie"
keyring = "{KEYRING}"

[packages]
include = {json.dumps(include)}
{extra}"""


MAIN_EXTRA = f"""
[python]
version = "{PY}"
compile = false

[image]
tags = ["current", "v1"]
cmd = ["-c", "print(1)"]
env = {{ APP_MODE = "prod" }}
user = "nonroot"
workdir = "/home/nonroot"
labels = {{ "org.example.team" = "qa" }}

[[user]]
name = "app"
uid = 1000
home = "/srv/app"

[[group]]
name = "staff"
gid = 50

[strip]
paths = ["usr/share/extras/**", "usr/share/ca-certificates/**"]
keep = ["usr/share/extras/keep.txt"]
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- reading what a build wrote ----------------------------------------------------------


def ar_members(data: bytes) -> dict[str, bytes]:
    assert data.startswith(b"!<arch>\n")
    pos, out = 8, {}
    while pos < len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58])
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + size % 2
    return out


def control_files(deb: bytes) -> dict[str, bytes]:
    """The files of a .deb's control.tar.xz, by name."""
    raw = lzma.decompress(ar_members(deb)["control.tar.xz"])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar if m.isfile()}


@dataclass(frozen=True)
class Member:
    info: tarfile.TarInfo
    data: bytes


@dataclass
class Layout:
    """An OCI image layout on disk, read with json, gzip and tarfile only."""

    root: Path
    _members: dict[str, dict[str, Member]] = field(default_factory=dict, repr=False,
                                                   compare=False)

    def blob(self, digest: str) -> bytes:
        algo, _, hexd = digest.partition(":")
        assert algo == "sha256"
        data = (self.root / "blobs" / "sha256" / hexd).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexd
        return data

    def json(self, digest: str) -> Any:
        return json.loads(self.blob(digest))

    @property
    def index(self) -> Any:
        return json.loads((self.root / "index.json").read_bytes())

    def manifests(self) -> dict[str, Any]:
        """Architecture -> manifest, through a nested image index when there is one."""
        top = self.index["manifests"][0]
        descs = self.json(top["digest"])["manifests"] if top["mediaType"] == INDEX else [top]
        out = {}
        for d in descs:
            m = self.json(d["digest"])
            out[self.json(m["config"]["digest"])["architecture"]] = m
        return out

    def config(self, arch: str) -> Any:
        return self.json(self.manifests()[arch]["config"]["digest"])

    def layer_blob(self, arch: str) -> bytes:
        (layer,) = self.manifests()[arch]["layers"]
        return self.blob(layer["digest"])

    def layer_tar(self, arch: str) -> bytes:
        blob = self.layer_blob(arch)
        if blob.startswith(b"\x28\xb5\x2f\xfd"):
            return zstandard.ZstdDecompressor().stream_reader(blob).read()
        return gzip.decompress(blob)

    def members(self, arch: str) -> dict[str, Member]:
        """The layer's members by name (read once)."""
        if arch in self._members:
            return self._members[arch]
        raw = self.layer_tar(arch)
        out: dict[str, Member] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                f = tar.extractfile(info) if info.isreg() else None
                assert info.name not in out, f"{info.name} twice in the layer"
                out[info.name] = Member(info, f.read() if f else b"")
        self._members[arch] = out
        return out

    def files(self) -> dict[str, bytes]:
        """Every regular file of the layout (index.json, oci-layout, blobs) by path."""
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def _put(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def rewrite_layer(root: Path, old: bytes, new: bytes) -> None:
    """Change one file's content (``old`` -> ``new``, same length, found once) in the
    single-architecture layout at ``root``, then fix every digest up to index.json, so
    that the layout stays valid and only that member differs."""
    assert len(old) == len(new)
    lay = Layout(root)
    (top,) = {d["digest"]: d for d in lay.index["manifests"]}.values()
    assert top["mediaType"] == MANIFEST
    manifest = lay.json(top["digest"])
    raw = gzip.decompress(lay.blob(manifest["layers"][0]["digest"]))
    assert raw.count(old) == 1
    raw = raw.replace(old, new)
    blob = gzip.compress(raw, mtime=0)
    config = lay.json(manifest["config"]["digest"])
    config["rootfs"]["diff_ids"] = ["sha256:" + hashlib.sha256(raw).hexdigest()]
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest["layers"][0] |= {"digest": _put(root, blob), "size": len(blob)}
    manifest["config"] |= {"digest": _put(root, config_bytes), "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = lay.index
    for d in index["manifests"]:
        d |= {"digest": _put(root, manifest_bytes), "size": len(manifest_bytes)}
    (root / "index.json").write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
