"""Layer tars, compression and OCI output: determinism, and acceptance by GNU tar, gzip,
skopeo, umoci and podman (each skipped, with the reason, when it is not installed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from composer.errors import ComposeError, FormatError
from composer.image import layer
from composer.image.layer import compress, decompress, tar_difference, tar_layer
from composer.image.oci import (
    CREATED,
    History,
    ImageConfig,
    Layer,
    Platform,
    canonical_json,
    first_difference,
    image_blobs,
    layout_index,
    rfc3339,
    write_docker_archive,
    write_layout,
)
from composer.image.tree import Entry

EPOCH = 1_700_000_000
LONG_DIR = "usr/share/" + "d" * 60 + "/" + "e" * 50
LONG_NAME = "usr/share/" + "n" * 150
NON_ASCII = "usr/share/zoneinfo/América/São_Paulo"


def sample() -> list[Entry]:
    """Every kind of entry, and the awkward cases: setuid, an empty file, a name that
    needs ustar's prefix, one that needs pax, a long link target, non-ASCII, a hardlink
    whose path sorts before its file's, an mtime after the epoch."""
    return [
        Entry("usr", "dir", 0o755), Entry("usr/bin", "dir", 0o755),
        Entry("usr/share", "dir", 0o755), Entry("usr/share/zoneinfo", "dir", 0o755),
        Entry("usr/share/zoneinfo/América", "dir", 0o755),
        Entry("etc", "dir", 0o755, mtime=EPOCH + 10**6),
        Entry("usr/bin/python3.13", "file", 0o755, data=b"\x7fELF" + bytes(range(256)) * 9,
              mtime=EPOCH - 100),
        Entry("usr/bin/python3", "symlink", 0o777, target="python3.13"),
        Entry("usr/bin/su", "file", 0o4755, data=b"setuid\n"),
        Entry("usr/bin/newgrp", "file", 0o2755, uid=0, gid=42, data=b"setgid\n"),
        Entry("usr/bin/aa-same", "hardlink", 0o755, target="usr/bin/python3.13"),
        Entry("etc/empty", "file", 0o600, uid=1000, gid=1000),
        Entry("tmp", "dir", 0o1777),
        Entry(LONG_DIR.rsplit("/", 1)[0], "dir", 0o755), Entry(LONG_DIR, "dir", 0o755),
        Entry(f"{LONG_DIR}/file.txt", "file", data=b"prefix\n"),
        Entry(LONG_NAME, "file", data=b"pax path\n"),
        Entry("usr/share/far", "symlink", 0o777, target="/" + "t/" * 80 + "end"),
        Entry(NON_ASCII, "file", data=b"TZif"),
    ]


def members(raw: bytes) -> dict[str, tuple[str, int, int, int, int, bytes, str]]:
    """name -> (type, mode, uid, gid, mtime, content, linkname), read with tarfile."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = (m.type.decode(), m.mode, m.uid, m.gid, m.mtime,
                           f.read() if f else b"", m.linkname)
    return out


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed")
    return path


# Tar ------------------------------------------------------------------------------------

def test_tar_reads_back_with_tarfile() -> None:
    raw = tar_layer(sample(), EPOCH)
    got = members(raw)
    assert list(got) == sorted(got, key=lambda n: n.encode())
    assert len(got) == len(sample())
    assert got["usr/bin/python3.13"][:5] == ("1", 0o755, 0, 0, EPOCH - 100)
    assert got["usr/bin/python3.13"][6] == "usr/bin/aa-same"
    assert got["usr/bin/aa-same"][0] == "0"
    assert got["usr/bin/aa-same"][5].startswith(b"\x7fELF")
    assert got["usr/bin/python3"] == ("2", 0o777, 0, 0, 0, b"", "python3.13")
    assert got["usr/bin/su"][1] == 0o4755 and got["usr/bin/newgrp"][1:4] == (0o2755, 0, 42)
    assert got["etc/empty"] == ("0", 0o600, 1000, 1000, 0, b"", "")
    assert got["etc"][0] == "5" and got["etc"][4] == EPOCH
    assert got["tmp"][1] == 0o1777
    assert got[LONG_NAME][5] == b"pax path\n"
    assert got[f"{LONG_DIR}/file.txt"][5] == b"prefix\n"
    assert got["usr/share/far"][6] == "/" + "t/" * 80 + "end"
    assert got[NON_ASCII][5] == b"TZif"


def test_tar_format_details() -> None:
    raw = tar_layer(sample(), EPOCH)
    assert len(raw) % 10240 == 0 and raw[-1024:] == bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        infos = tar.getmembers()
    assert {i.name for i in infos if i.pax_headers} == {LONG_NAME, "usr/share/far"}
    assert all(not i.uname and not i.gname for i in infos)
    headers = [raw[i.offset_data - 512:i.offset_data] for i in infos]
    assert all(h[257:265] == b"ustar\x0000" for h in headers)
    assert all(h[329:345] == b"0000000\x000000000\x00" for h in headers)
    names = {h[:100].rstrip(b"\0") for h in headers}
    assert b"usr/bin/" in names and not any(n.startswith((b"/", b"./")) for n in names)
    assert tar_layer(sample(), EPOCH).count(b"PaxHeader") == 2


def test_tar_is_independent_of_input_order() -> None:
    entries = sample()
    raw = tar_layer(entries, EPOCH)
    for seed in range(3):
        random.Random(seed).shuffle(entries)
        assert tar_layer(entries, EPOCH) == raw


def test_mtimes_are_clamped_to_the_epoch() -> None:
    got = members(tar_layer([Entry("a", "file", mtime=EPOCH + 5), Entry("b", "dir", mtime=7),
                             Entry("c", "symlink", target="a", mtime=-3)], EPOCH))
    assert [m[4] for m in got.values()] == [EPOCH, 7, 0]


def test_tar_refuses_what_it_cannot_write() -> None:
    with pytest.raises(FormatError, match="same path"):
        tar_layer([Entry("a", "file"), Entry("a", "dir")], EPOCH)
    with pytest.raises(FormatError, match="hardlink"):
        tar_layer([Entry("a", "hardlink", target="missing")], EPOCH)
    with pytest.raises(FormatError, match="relative"):
        tar_layer([Entry("/etc", "dir")], EPOCH)
    with pytest.raises(FormatError, match="uid"):
        tar_layer([Entry("a", "file", uid=1 << 22)], EPOCH)


def test_empty_layer() -> None:
    raw = tar_layer([], EPOCH)
    assert raw == bytes(10240)
    assert members(raw) == {}
    assert gzip.decompress(compress(raw, "gzip")) == raw


def test_gnu_tar_lists_and_extracts(tmp_path: Path) -> None:
    gnu = need("tar")
    (tmp_path / "layer.tar").write_bytes(tar_layer(sample(), EPOCH))
    listed = subprocess.run([gnu, "-tf", "layer.tar"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    expected = {e.path + ("/" if e.kind == "dir" else "") for e in sample()}
    assert set(listed) == expected
    verbose = subprocess.run([gnu, "--numeric-owner", "-tvf", "layer.tar"], cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout
    assert "-rwsr-xr-x 0/0" in verbose and "drwxrwxrwt 0/0" in verbose
    assert "-rw------- 1000/1000" in verbose and "link to usr/bin/aa-same" in verbose
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run([gnu, "-xpf", "../layer.tar"], cwd=out, check=True)
    assert os.readlink(out / "usr/bin/python3") == "python3.13"
    assert os.stat(out / "usr/bin/aa-same").st_ino == os.stat(out / "usr/bin/python3.13").st_ino
    assert (out / NON_ASCII).read_bytes() == b"TZif"
    assert (out / LONG_NAME).read_bytes() == b"pax path\n"


# Compression ---------------------------------------------------------------------------

def payload() -> bytes:
    """Three chunks and a bit of mixed data: text, a repeated binary pattern, noise."""
    rnd = random.Random(1)
    text = b"".join(b"line %d of some text\n" % i for i in range(60_000))
    return text + bytes(range(256)) * 4000 + rnd.randbytes(layer.GZIP_CHUNK)


def test_gzip_is_deterministic_across_workers(tmp_path: Path) -> None:
    raw = payload()
    assert len(raw) > 2 * layer.GZIP_CHUNK
    blobs = [compress(raw, "gzip", 1, workers) for workers in (1, 2, 3)]
    assert blobs[0] == blobs[1] == blobs[2]
    blob = blobs[0]
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert gzip.decompress(blob) == raw and len(blob) < len(raw)
    gz = need("gzip")
    (tmp_path / "l.gz").write_bytes(blob)
    subprocess.run([gz, "-t", "l.gz"], cwd=tmp_path, check=True)
    assert subprocess.run([gz, "-dc", "l.gz"], cwd=tmp_path, capture_output=True,
                          check=True).stdout == raw
    assert compress(raw, "gzip", 6, 2) != blob
    assert gzip.decompress(compress(b"", "gzip")) == b""


def test_zstd_round_trips_deterministically() -> None:
    raw = payload()
    blob = compress(raw, "zstd", workers=1)
    assert compress(raw, "zstd", workers=2) == blob
    assert zstandard.frame_content_size(blob) == len(raw)
    assert decompress(blob) == raw and decompress(compress(b"", "zstd")) == b""
    assert decompress(raw) == raw
    with pytest.raises(ComposeError):
        compress(raw, "xz")
    with pytest.raises(FormatError):
        decompress(b"\x1f\x8b broken")


# OCI ------------------------------------------------------------------------------------

def config_for(arch: str, layers: list[Layer], env: str = "1") -> ImageConfig:
    return ImageConfig(
        arch, EPOCH, tuple(la.diff_id for la in layers),
        tuple(History(f"compose layer {i}", "debs") for i in range(len(layers))),
        entrypoint=("/usr/bin/python3",), cmd=("-c", "print()"),
        env=(("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("MARK", env)),
        user="1000", workdir="/home", labels=(("org.example.b", "2"), ("org.example.a", "1")))


def build(out: Path, entries: list[Entry], archs: tuple[str, ...] = ("amd64",),
          tags: tuple[str, ...] = ("latest",), env: str = "1",
          compression: str = "gzip", level: int | None = None) -> None:
    layers = [Layer.of(entries, EPOCH, compression, level), Layer.of([], EPOCH, compression)]
    blobs: dict[str, bytes] = {}
    manifests = []
    for arch in archs:
        desc, more = image_blobs(config_for(arch, layers, env), layers,
                                 {CREATED: rfc3339(EPOCH)})
        manifests.append(desc)
        blobs |= more
    write_layout(out, layout_index(manifests, tags, blobs), blobs)


def test_config_json_is_canonical() -> None:
    la = [Layer.of(sample(), EPOCH)]
    blob = config_for("arm64", la).to_json()
    assert blob == canonical_json(json.loads(blob)) and not blob.endswith(b"\n")
    doc = json.loads(blob)
    assert (doc["architecture"], doc["variant"], doc["os"]) == ("arm64", "v8", "linux")
    assert doc["created"] == "2023-11-14T22:13:20Z"
    assert doc["config"]["Env"] == ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "MARK=1"]
    assert doc["config"]["Labels"] == {"org.example.a": "1", "org.example.b": "2"}
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [la[0].diff_id]}
    assert doc["history"] == [{"created": "2023-11-14T22:13:20Z",
                               "created_by": "compose layer 0", "comment": "debs"}]
    assert str(Platform.for_debian("armhf")) == "linux/arm/v7"
    assert str(Platform.for_debian("ppc64el")) == "linux/ppc64le"
    assert Platform.for_debian("i386").architecture == "386"
    with pytest.raises(ComposeError, match="sparc"):
        Platform.for_debian("sparc")


def test_layout_write_is_deterministic_and_replaces_atomically(tmp_path: Path) -> None:
    build(tmp_path / "a", sample())
    build(tmp_path / "b", list(reversed(sample())))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
               for f in files if (tmp_path / "a" / f).is_file())
    assert (tmp_path / "a" / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    build(tmp_path / "a", sample(), env="2")
    assert first_difference(tmp_path / "a", tmp_path / "b") is not None
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "precious").write_text("x")
    with pytest.raises(ComposeError, match="refusing"):
        build(tmp_path / "c", sample())
    with pytest.raises(ValueError, match="does not match"):
        write_layout(tmp_path / "d", b'{"manifests":[]}', {"sha256:" + "0" * 64: b"x"})
    with pytest.raises(ValueError, match="not given"):
        write_layout(tmp_path / "d", layout_index([Layer.of([], 0).descriptor], [], {}), {})
    assert not (tmp_path / "d").exists() and sorted(os.listdir(tmp_path)) == ["a", "b", "c"]
    with pytest.raises(ComposeError, match="cannot write"):
        build(tmp_path / "c" / "precious" / "x", sample())


def test_skopeo_inspects_the_layout(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    build(tmp_path / "one", sample())
    raw = json.loads(subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path}/one"],
                                    capture_output=True, check=True).stdout)
    assert raw["annotations"] == {CREATED: "2023-11-14T22:13:20Z"}
    assert raw["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    info = json.loads(subprocess.run([skopeo, "inspect", f"oci:{tmp_path}/one:latest"],
                                     capture_output=True, check=True).stdout)
    assert info["Architecture"] == "amd64" and "MARK=1" in info["Env"]
    subprocess.run([skopeo, "copy", "-q", f"oci:{tmp_path}/one:latest", f"dir:{tmp_path}/copy"],
                   capture_output=True, check=True)  # reads and checks every blob
    build(tmp_path / "two", sample(), ("amd64", "arm64"), ("latest", "3.13"), "2", "zstd")
    for arch in ("amd64", "arm64"):
        info = json.loads(subprocess.run(
            [skopeo, "inspect", "--override-arch", arch, f"oci:{tmp_path}/two:3.13"],
            capture_output=True, check=True).stdout)
        assert info["Architecture"] == arch and "MARK=2" in info["Env"]
    index = json.loads(subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path}/two:latest"],
                                      capture_output=True, check=True).stdout)
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"}]


def test_umoci_unpacks_the_layout(tmp_path: Path) -> None:
    umoci = need("umoci")
    build(tmp_path / "img", sample())
    subprocess.run([umoci, "unpack", "--rootless", "--image", f"{tmp_path}/img:latest",
                    str(tmp_path / "bundle")], capture_output=True, check=True)
    root = tmp_path / "bundle" / "rootfs"
    assert stat.S_IMODE(os.lstat(root / "usr/bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert os.readlink(root / "usr/bin/python3") == "python3.13"
    assert os.stat(root / "usr/bin/aa-same").st_ino == os.stat(root / "usr/bin/python3.13").st_ino
    assert (root / "usr/bin/python3.13").read_bytes().startswith(b"\x7fELF")
    assert (root / "etc/empty").read_bytes() == b""
    assert (root / NON_ASCII).read_bytes() == b"TZif"
    assert (root / LONG_NAME).read_bytes() == b"pax path\n"
    assert (root / LONG_DIR / "file.txt").read_bytes() == b"prefix\n"
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["args"] == ["/usr/bin/python3", "-c", "print()"]


def test_podman_loads_the_docker_archive(tmp_path: Path) -> None:
    podman = need("podman")
    layers = [Layer.of(sample(), EPOCH, "gzip"), Layer.of([], EPOCH, "zstd")]
    config = config_for("amd64", layers).to_json()
    archive = tmp_path / "docker.tar"
    write_docker_archive(archive, config, layers, ["localhost/compose-test:1"])
    first = archive.read_bytes()
    write_docker_archive(archive, config, layers, ["localhost/compose-test:1"])
    assert archive.read_bytes() == first
    assert sorted(members(first)) == sorted(
        ["blobs", "blobs/sha256", "manifest.json"]
        + [f"blobs/sha256/{d.split(':')[1]}"
           for d in {la.descriptor.digest for la in layers} | {"sha256:" + _sha(config)}])
    runroot = tempfile.mkdtemp(prefix="compose-test-")  # podman wants it under 50 characters
    cmd = [podman, "--root", str(tmp_path / "root"), "--runroot", runroot,
           "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)

    loaded = run("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    try:
        info = json.loads(run("image", "inspect", "localhost/compose-test:1").stdout)[0]
        assert info["Id"] == _sha(config)
        assert info["Config"]["Entrypoint"] == ["/usr/bin/python3"]
        assert info["Config"]["User"] == "1000" and info["Architecture"] == "amd64"
        assert info["RootFS"]["Layers"] == [la.diff_id for la in layers]
    finally:
        run("rmi", "-f", "localhost/compose-test:1")
        shutil.rmtree(runroot, ignore_errors=True)


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


# Compare --------------------------------------------------------------------------------

def changed(path: str, **kw: object) -> list[Entry]:
    return [replace(e, **kw) if e.path == path else e for e in sample()]


def test_first_difference_tells_compression_from_content(tmp_path: Path) -> None:
    build(tmp_path / "a", sample())
    build(tmp_path / "b", sample(), level=6)
    found = first_difference(tmp_path / "a", tmp_path / "b")
    assert found is not None and "same tar, compressed differently" in found


@pytest.mark.parametrize(("entries", "expected"), [
    (changed("usr/bin/su", mode=0o755), "usr/bin/su: mode 4755 vs 0755"),
    (changed("usr/bin/su", data=b"other\n"), "usr/bin/su: content differs (7 vs 6 bytes)"),
    (changed("etc/empty", uid=0), "etc/empty: owner 1000:1000 vs 0:1000"),
    (changed("usr/bin/su", mtime=5), "usr/bin/su: mtime 0 vs 5"),
    ([e for e in sample() if e.path != "etc/empty"], "etc/empty: only in the first"),
    (changed("usr/bin/python3", target="python3.12"), "link target 'python3.13' vs 'python3.12'"),
])
def test_first_difference_names_the_member(tmp_path: Path, entries: list[Entry],
                                           expected: str) -> None:
    build(tmp_path / "a", sample())
    build(tmp_path / "b", entries)
    found = first_difference(tmp_path / "a", tmp_path / "b")
    assert found is not None and expected in found
    assert found.startswith("linux/amd64: layer 1 of 2 (sha256:")


def test_first_difference_config_corruption_and_sameness(tmp_path: Path) -> None:
    build(tmp_path / "a", sample(), ("amd64", "arm64"))
    build(tmp_path / "b", sample(), ("amd64", "arm64"))
    assert first_difference(tmp_path / "a", tmp_path / "b") is None
    build(tmp_path / "c", sample(), ("amd64", "arm64"), env="2")
    found = first_difference(tmp_path / "a", tmp_path / "c")
    assert found is not None and found.startswith("linux/amd64: config (sha256:")
    assert found.endswith("config.Env[2]: 'MARK=1' vs 'MARK=2'")
    build(tmp_path / "d", sample(), ("amd64", "arm64"), compression="zstd")
    found = first_difference(tmp_path / "a", tmp_path / "d")
    assert found is not None and "media type" in found
    blob = next(p for p in (tmp_path / "b" / "blobs" / "sha256").iterdir()
                if p.stat().st_size > 1000)
    blob.write_bytes(blob.read_bytes()[:-1])
    found = first_difference(tmp_path / "a", tmp_path / "b")
    assert found is not None and "second layout: blob" in found and "corrupt" in found
    with pytest.raises(ComposeError, match="not an OCI image layout"):
        first_difference(tmp_path / "a", tmp_path / "nowhere")


def test_tar_difference_reports_order_and_encoding() -> None:
    a = tar_layer([Entry("a", "file"), Entry("b", "file")], EPOCH)
    assert tar_difference(a, a) is None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("b", "a"):
            tar.addfile(tarfile.TarInfo(name))
    assert tar_difference(a, buf.getvalue()) == "member order differs at position 1: a vs b"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.mode, info.uname, info.gname = 0o644, "", ""
            tar.addfile(info)
    assert tar_difference(a, buf.getvalue()) == (
        "same members, tar encoding differs at byte 150 (member a)")
