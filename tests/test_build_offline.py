"""``compose build`` and ``compose verify`` through the real CLI (a subprocess), from locks
of a signed fake archive served over loopback HTTP. The image is read back with json,
gzip and tarfile (and skopeo, umoci and podman when installed), never with ``composer``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.errors import ComposeError
from composer.image import pycompile
from composer.model import DIR, FILE, SYMLINK, Entry
from tests.buildhelp import (
    CERTS,
    DEFAULT_PATH,
    EPOCH,
    INDEX,
    MAIN,
    MAIN_EXTRA,
    MANIFEST,
    PY,
    TRIMMED,
    Layout,
    closed_port,
    control_files,
    copyright_of,
    make_archive,
    pem,
    profile_text,
    rewrite_layer,
)
from tests.conftest import fixed_env, isolated_env
from tests.fakearchive import FakeArchive

CLI = Callable[..., tuple[int, str, str]]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
STDLIB = f"usr/lib/python{PY}"


# -- fixtures --------------------------------------------------------------------------


@dataclass
class World:
    archive: FakeArchive
    url: str
    log: list[str]
    project: Path
    env: dict[str, str]
    compose: CLI

    @property
    def flags(self) -> list[str]:
        return [f"--mirror=debian={self.url}"]

    def lock(self, name: str) -> Path:
        return self.project / "locks" / f"{name}.lock.toml"

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> tuple[int, str, str]:
        """``compose *args`` in the project; never a traceback, whatever the outcome."""
        rc, out, err = self.compose(env or self.env, *args, cwd=cwd or self.project)
        assert "Traceback" not in err, err
        return rc, out, err

    def locked_packages(self, name: str) -> list[dict[str, object]]:
        packages: list[dict[str, object]] = tomllib.loads(self.lock(name).read_text())["package"]
        return packages


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_env: dict[str, str],
          compose: CLI) -> Iterator[World]:
    archive = make_archive(tmp_path_factory.mktemp("mirror"))
    project = tmp_path_factory.mktemp("project")
    (project / "profiles").mkdir()
    (project / "profiles" / "img.toml").write_text(profile_text("img", MAIN, extra=MAIN_EXTRA))
    (project / "profiles" / "multi.toml").write_text(profile_text(
        "multi", ["base-files", "tools"], ("amd64", "arm64"),
        '\n[image]\ntag = "current"\ncompression = "zstd"\n'))
    log: list[str] = []
    with archive.serve(log=log) as url:
        w = World(archive, url, log, project, fixed_env(module_env), compose)
        rc, _, err = w.run("lock", "profiles/img.toml", *w.flags)
        assert rc == 0, err
        yield w


@dataclass(frozen=True)
class Built:
    digest: str
    report: dict[str, object]
    err: str
    layout: Layout
    requests: list[str]


@pytest.fixture(scope="module")
def built(world: World, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The main profile built from its lock, from a cache holding no .deb yet."""
    out = tmp_path_factory.mktemp("built") / "img"
    start = len(world.log)
    rc, stdout, err = world.run("build", "--locked", "profiles/img.toml", "-o", out, "-j", "4",
                                "--json", *world.flags)
    assert rc == 0, err
    *doc, last = stdout.strip().splitlines()
    return Built(last, json.loads("\n".join(doc)), err, Layout(out), world.log[start:])


@pytest.fixture(scope="module")
def members(built: Built) -> dict[str, tarfile.TarInfo]:
    return {name: m.info for name, m in built.layout.members("amd64").items()}


def content(built: Built, path: str) -> bytes:
    return built.layout.members("amd64")[path].data


def assert_lock_refused(rc: int, err: str, *patterns: str) -> None:
    assert rc != 0, err
    assert re.search(r"^error: \S", err, re.M), err
    assert re.search(r"^hint: .*`compose lock", err, re.M), err
    for p in patterns:
        assert re.search(p, err), f"{p!r} not in {err}"


def deb_of(world: World, package: dict[str, object]) -> bytes:
    return world.archive.path(str(package["filename"])).read_bytes()


# -- reading only the lock ---------------------------------------------------------------


def test_build_prints_the_digest_and_a_json_report(world: World, built: Built) -> None:
    assert DIGEST.fullmatch(built.digest), built.digest
    layout = built.layout
    (manifest,) = layout.manifests().values()
    layer = manifest["layers"][0]
    report = built.report
    assert report["digest"] == built.digest
    assert report["format"] == "oci"
    assert report["output"] == str(layout.root)
    assert report["source_date_epoch"] == EPOCH
    arch = report["architectures"]["amd64"]  # type: ignore[index]
    # One architecture: the image digest is its manifest's, which index.json tags.
    assert arch["manifest"] == built.digest
    assert {d["digest"] for d in layout.index["manifests"]} == {built.digest}
    assert arch["layer"] == layer["digest"]
    assert arch["compressed_size"] == layer["size"] == len(layout.layer_blob("amd64"))
    raw = layout.layer_tar("amd64")
    assert arch["uncompressed_size"] == len(raw)
    assert arch["diff_id"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert arch["config"] == manifest["config"]["digest"]
    assert arch["packages"] == len(world.locked_packages("img"))


def test_build_downloads_only_the_locked_debs(world: World, built: Built) -> None:
    wanted = {f"/debian/{p['filename']}" for p in world.locked_packages("img")}
    assert sorted(built.requests) == sorted(wanted), "no index, no InRelease, each .deb once"


def _rebuild_offline(world: World, built: Built, tmp_path: Path, leave_out: str) -> list[str]:
    """Build the same lock again from a copy of the cache without ``leave_out`` and with
    the mirror unreachable: the same image, and no request. Returns the flags that name
    the dead mirror and the copied cache."""
    cache = tmp_path / "cache"
    shutil.copytree(world.env["COMPOSE_CACHE_DIR"], cache,
                    ignore=shutil.ignore_patterns(leave_out))
    assert not (cache / leave_out).exists()
    start = len(world.log)
    dead = f"--mirror=debian=http://127.0.0.1:{closed_port()}/debian"
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", tmp_path / "again",
                             dead, env=world.env | {"COMPOSE_CACHE_DIR": str(cache)})
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == built.digest
    assert Layout(tmp_path / "again").files() == built.layout.files()
    assert world.log[start:] == []
    return [dead, str(cache)]


def test_build_works_with_the_mirror_unreachable(world: World, built: Built,
                                                 tmp_path: Path) -> None:
    """Once every .deb is cached, the mirror is not needed. The cache is copied without
    what earlier builds derived from the .debs, so that they are read again."""
    _rebuild_offline(world, built, tmp_path, "derived")


def test_a_remembered_layer_needs_neither_the_debs_nor_the_mirror(
        world: World, built: Built, tmp_path: Path) -> None:
    """The cache keeps what was derived (the layer, its memo) but not the .debs: a
    rebuild of the same lock reads none of them, so it needs no mirror."""
    dead, cache = _rebuild_offline(world, built, tmp_path, "sha256")
    assert (Path(cache) / "derived").is_dir()
    # verify rebuilds from the .debs themselves, so it needs them
    rc, _, err = world.run("verify", "profiles/img.toml", "--image", tmp_path / "again", dead,
                           env=world.env | {"COMPOSE_CACHE_DIR": cache})
    assert rc == 2 and re.search(r"^error: .*(download|fetch|connect|mirror)", err, re.M | re.I), err


def test_missing_lock_is_refused_and_nothing_is_written(world: World, tmp_path: Path) -> None:
    project = Path(shutil.copytree(world.project, tmp_path / "p"))
    (project / "profiles" / "fresh.toml").write_text(profile_text("fresh", ["tools"]))
    start = len(world.log)
    rc, out, err = world.run("build", "--locked", "profiles/fresh.toml", "-o", "out/fresh",
                             *world.flags, cwd=project)
    assert_lock_refused(rc, err, r"fresh\.lock\.toml", "missing")
    assert not DIGEST.search(out)
    assert not (project / "out").exists()
    assert not (project / "locks" / "fresh.lock.toml").exists()
    assert world.log[start:] == []


def test_stale_lock_is_refused_and_nothing_is_written(world: World, tmp_path: Path) -> None:
    project = Path(shutil.copytree(world.project, tmp_path / "p"))
    lock = project / "locks" / "img.lock.toml"
    before = lock.read_bytes()
    (project / "profiles" / "img.toml").write_text(
        profile_text("img", [*MAIN, "clash-a"], extra=MAIN_EXTRA))
    start = len(world.log)
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", "out/img",
                             *world.flags, cwd=project)
    assert_lock_refused(rc, err, "stale")
    assert not DIGEST.search(out)
    assert not (project / "out").exists()
    assert lock.read_bytes() == before
    assert world.log[start:] == []


# -- two architectures, locked on the way -------------------------------------------------


@pytest.fixture(scope="module")
def multi(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Layout]:
    """``multi`` has no lock: a build without --locked makes it first."""
    assert not world.lock("multi").exists()
    out = tmp_path_factory.mktemp("multi") / "img"
    rc, stdout, err = world.run("build", "profiles/multi.toml", "-o", out, *world.flags)
    assert rc == 0, err
    return stdout.strip().splitlines()[-1], err, Layout(out)


def test_build_without_locked_locks_a_missing_lock_first(
        world: World, multi: tuple[str, str, Layout]) -> None:
    _, err, _ = multi
    assert "missing" in err and "locking first" in err
    lock = tomllib.loads(world.lock("multi").read_text())
    assert lock["architectures"] == ["amd64", "arm64"]
    assert {(p["architecture"], p["name"]) for p in lock["package"]} == {
        (a, n) for a in ("amd64", "arm64") for n in ("base-files", "tools", "libc6")}


def test_two_architectures_give_an_image_index(multi: tuple[str, str, Layout]) -> None:
    digest, _, layout = multi
    (top,) = layout.index["manifests"]
    assert top["mediaType"] == INDEX
    assert top["digest"] == digest
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "current"
    nested = layout.json(digest)
    assert [(d["mediaType"], d["platform"]) for d in nested["manifests"]] == [
        (MANIFEST, {"architecture": "amd64", "os": "linux"}),
        (MANIFEST, {"architecture": "arm64", "os": "linux", "variant": "v8"})]
    manifests = layout.manifests()
    assert sorted(manifests) == ["amd64", "arm64"]
    for arch, m in manifests.items():
        assert m["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert layout.config(arch)["architecture"] == arch
    amd, arm = layout.members("amd64"), layout.members("arm64")
    assert amd["lib64"].info.linkname == "usr/lib64"
    assert "usr/lib64/ld-linux-x86-64.so.2" in amd
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in amd
    assert "lib64" not in arm and "usr/lib64" not in arm
    assert "usr/lib/ld-linux-aarch64.so.1" in arm
    assert arm["usr/lib/aarch64-linux-gnu/libc.so.6"].data == b"libc for arm64\n"


def test_verify_of_one_architecture_against_both_says_so(
        world: World, multi: tuple[str, str, Layout]) -> None:
    _, _, layout = multi
    rc, _, err = world.run("verify", "profiles/multi.toml", "--arch", "arm64", "--image",
                           layout.root, *world.flags)
    assert rc == 2, err  # before any rebuild
    (line,) = re.findall(r"^error: .*$", err, re.M)
    assert line.endswith(f"--arch arm64 rebuilds one architecture, and {layout.root} holds "
                         "amd64, arm64"), line
    assert "hint: verify without --arch, or against a layout built with --arch arm64" in err


def test_zstd_layers_do_not_depend_on_jobs(world: World, multi: tuple[str, str, Layout],
                                           tmp_path: Path) -> None:
    digest, _, layout = multi
    # A cache without what earlier builds derived: the layers are compressed again.
    cache = tmp_path / "cache"
    shutil.copytree(world.env["COMPOSE_CACHE_DIR"], cache,
                    ignore=shutil.ignore_patterns("derived"))
    rc, out, err = world.run("build", "--locked", "profiles/multi.toml", "-o", tmp_path / "j1",
                             "-j", "1", *world.flags,
                             env=world.env | {"COMPOSE_CACHE_DIR": str(cache)})
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == digest
    assert Layout(tmp_path / "j1").files() == layout.files()


# -- merging like dpkg -----------------------------------------------------------------


def test_merged_usr_links_and_lib_paths(built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    for link in ("bin", "sbin", "lib", "lib64"):
        assert members[link].issym() and members[link].linkname == f"usr/{link}", link
    # lib/x and bin/x land under usr/, whether or not base-files ships the links itself.
    assert content(built, "usr/lib/x86_64-linux-gnu/libc.so.6") == b"libc for amd64\n"
    assert content(built, "usr/lib64/ld-linux-x86-64.so.2") == b"loader\n"
    assert members["usr/bin/tool"].isfile() and members["usr/bin/tool"].mode == 0o755
    assert not any(n.startswith(("bin/", "lib/", "lib64/", "sbin/")) for n in members)


def test_directories_merge_and_symlinks_are_kept(built: Built,
                                                 members: dict[str, tarfile.TarInfo]) -> None:
    assert members["usr/share/common"].isdir()
    assert content(built, "usr/share/common/tools.txt") == b"tools\n"
    assert content(built, "usr/share/common/more.txt") == b"more\n"
    assert members["usr/bin/tool-alias"].issym()
    assert members["usr/bin/tool-alias"].linkname == "tool"
    assert members["usr/lib/tools/current"].linkname == "../tools-1.0"
    assert members["var/log"].isdir()


def test_replaces_wins_in_either_unpack_order(built: Built) -> None:
    # repl-a (unpacked first) Replaces repl-b; repl-d (unpacked last) Replaces repl-c.
    assert content(built, "usr/share/shared/one") == b"from repl-a\n"
    assert content(built, "usr/share/shared/two") == b"from repl-d\n"


@pytest.fixture(scope="module")
def clash(world: World) -> tuple[int, str, bytes]:
    """``clash`` is locked with clash-a, then asks for clash-b too and is built without
    --locked: the stale lock is made again, then the merge fails."""
    (world.project / "profiles" / "clash.toml").write_text(profile_text("clash", ["clash-a"]))
    rc, _, err = world.run("lock", "profiles/clash.toml", *world.flags)
    assert rc == 0, err
    first = world.lock("clash").read_bytes()
    (world.project / "profiles" / "clash.toml").write_text(
        profile_text("clash", ["clash-a", "clash-b"]))
    rc, out, err = world.run("build", "profiles/clash.toml", "-o", "out/clash", *world.flags)
    assert not DIGEST.search(out)
    return rc, err, first


def test_build_without_locked_locks_a_stale_lock_again(world: World,
                                                       clash: tuple[int, str, bytes]) -> None:
    _, err, first = clash
    assert "stale" in err and "locking first" in err
    assert world.lock("clash").read_bytes() != first
    assert {p["name"] for p in world.locked_packages("clash")} == {"clash-a", "clash-b"}


def test_two_packages_shipping_one_path_differently_is_an_error(
        world: World, clash: tuple[int, str, bytes]) -> None:
    rc, err, _ = clash
    assert rc == 2, err
    (line,) = re.findall(r"^error: .*$", err, re.M)
    assert "clash-a" in line and "clash-b" in line and "/usr/share/clash/same" in line, line
    assert re.search(r"^hint: .*Replaces", err, re.M), err
    assert not (world.project / "out" / "clash").exists()


# -- stripping ---------------------------------------------------------------------------


def lookup(built: Built, path: str) -> bytes | None:
    """A file's content in the layer, following symlinks on the way as a kernel would."""
    members = built.layout.members("amd64")
    parts = path.split("/")
    for _ in range(40):
        for i in range(1, len(parts) + 1):
            m = members.get("/".join(parts[:i]))
            if m is None:
                return None
            if m.info.issym():
                base = [] if m.info.linkname.startswith("/") else parts[:i - 1]
                parts = [*base, *m.info.linkname.strip("/").split("/"), *parts[i:]]
                break
        else:
            return members["/".join(parts)].data
    return None


def test_docs_man_info_locale_and_lintian_are_stripped(
        world: World, built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    for gone in ("man", "info", "locale", "lintian", "common-licenses"):
        # ... and the directories they leave empty
        assert not [n for n in members if n.startswith(f"usr/share/{gone}")], gone
    docs = [n for n, i in members.items() if n.startswith("usr/share/doc/") and i.isfile()]
    assert docs and all(re.fullmatch(r"usr/share/doc/[^/]+/copyright", n) for n in docs), docs
    # A doc directory shipped as a link to another package of the same source stays one;
    # one that would dangle (orphan-common is not in the image) gets its source's copyright.
    assert members["usr/share/doc/tools-data"].issym()
    assert members["usr/share/doc/tools-data"].linkname == "tools"
    source_copyright = {"tools-data": "tools", "orphan-doc": "orphan-bin"}
    for p in world.locked_packages("img"):
        name = str(p["name"])
        assert lookup(built, f"usr/share/doc/{name}/copyright") == copyright_of(
            source_copyright.get(name, name)).encode(), name


def test_strip_paths_and_keep(built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    assert content(built, "usr/share/extras/keep.txt") == b"kept\n"
    assert "usr/share/extras/drop.txt" not in members
    assert not [n for n in members if n.startswith("usr/share/extras/sub")]
    assert members["usr/share/extras"].isdir()


def test_python_trim(built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    for part in TRIMMED:
        top = part.split("/")[0].removesuffix(".py")
        assert not [n for n in members if n.startswith(f"{STDLIB}/{top}")], part
    assert content(built, f"{STDLIB}/os.py") == b"import sys\n"
    assert content(built, f"{STDLIB}/json/__init__.py") == b"# json\n"
    # Only the standard library is trimmed.
    assert "usr/share/tools/turtle.py" in members


# -- what maintainer scripts would have done ---------------------------------------------


def test_passwd_group_homes_and_tmp(built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    passwd = {line.split(":")[0]: line.split(":")
              for line in content(built, "etc/passwd").decode().splitlines()}
    assert {n: (f[2], f[3], f[5]) for n, f in passwd.items()} == {
        "root": ("0", "0", "/root"), "nobody": ("65534", "65534", "/nonexistent"),
        "nonroot": ("65532", "65532", "/home/nonroot"), "app": ("1000", "1000", "/srv/app")}
    group = {line.split(":")[0]: line.split(":")[2]
             for line in content(built, "etc/group").decode().splitlines()}
    assert group["root"] == "0" and group["nonroot"] == "65532" and group["staff"] == "50"
    assert group["app"] == "1000" and "65534" in group.values()
    for home, uid in (("home/nonroot", 65532), ("srv/app", 1000)):
        info = members[home]
        assert info.isdir() and info.mode == 0o700 and (info.uid, info.gid) == (uid, uid), home
    assert "nonexistent" not in members
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777


def test_ca_bundle_is_every_certificate_in_path_order(
        built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    assert content(built, "etc/ssl/certs/ca-certificates.crt") == "".join(
        pem(CERTS[p]) for p in sorted(CERTS)).encode()
    # The profile strips the certificates themselves: the bundle made from them stays.
    assert not [n for n in members if n.startswith("usr/share/ca-certificates/")]


def test_dpkg_status_holds_each_control_file_and_md5sums(
        world: World, built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    locked = world.locked_packages("img")
    status = sorted(n for n in members if n.startswith("var/lib/dpkg/status.d/"))
    assert status == sorted(f"var/lib/dpkg/status.d/{p['name']}{ext}"
                            for p in locked for ext in ("", ".md5sums"))
    for p in locked:
        control = control_files(deb_of(world, p))
        assert content(built, f"var/lib/dpkg/status.d/{p['name']}") == control["control"]
        assert content(built, f"var/lib/dpkg/status.d/{p['name']}.md5sums") == control["md5sums"]


def test_nsswitch_and_python_links(built: Built, members: dict[str, tarfile.TarInfo]) -> None:
    nss = content(built, "etc/nsswitch.conf").decode()
    assert re.search(r"^passwd:\s+files", nss, re.M) and re.search(r"^hosts:\s+files", nss, re.M)
    for alias in ("usr/bin/python3", "usr/bin/python"):
        assert members[alias].issym() and members[alias].linkname == f"python{PY}", alias


# -- the image ---------------------------------------------------------------------------


def test_image_config(built: Built) -> None:
    config = built.layout.config("amd64")
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["created"] == "2023-01-01T00:00:00Z"
    run = config["config"]
    assert run["Entrypoint"] == [f"/usr/bin/python{PY}"]
    assert run["Cmd"] == ["-c", "print(1)"]
    assert run["Env"] == [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8",
                          "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "APP_MODE=prod"]
    assert run["User"] == "65532:65532"
    assert run["WorkingDir"] == "/home/nonroot"
    assert run["Labels"] == {"org.opencontainers.image.created": "2023-01-01T00:00:00Z",
                             "org.opencontainers.image.title": "img",
                             "org.opencontainers.image.description": "img for tests",
                             "org.example.team": "qa"}
    raw = built.layout.layer_tar("amd64")
    assert config["rootfs"] == {"type": "layers",
                                "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}
    tags = {d["annotations"]["org.opencontainers.image.ref.name"]
            for d in built.layout.index["manifests"]}
    assert tags == {"current", "v1"}


def test_layer_is_a_deterministic_tar(built: Built) -> None:
    raw = built.layout.layer_tar("amd64")
    assert len(raw) % 10240 == 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names, key=lambda n: n.encode())
    assert raw[257:265] == b"ustar\x0000"
    for i in infos:
        assert (i.uname, i.gname) == ("", ""), i.name
        # Every member shipped at 1_700_000_000 is clamped to the lock's Release date.
        assert i.mtime == EPOCH, i.name
    assert len(raw) > 2 << 20, "more than one of parallel gzip's 1 MiB pieces"


def test_source_date_epoch_from_the_environment(world: World, built: Built,
                                                tmp_path: Path) -> None:
    env = world.env | {"SOURCE_DATE_EPOCH": "1600000000"}
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", tmp_path / "sde",
                             *world.flags, env=env)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] != built.digest
    layout = Layout(tmp_path / "sde")
    config = layout.config("amd64")
    assert config["created"] == "2020-09-13T12:26:40Z"
    assert config["config"]["Labels"]["org.opencontainers.image.created"] == config["created"]
    assert {m.info.mtime for m in layout.members("amd64").values()} == {1_600_000_000}


def _works(*cmd: str) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def test_bit_for_bit_in_another_environment(world: World, built: Built,
                                            tmp_path: Path) -> None:
    """Another TZ, umask, locale, cache (so every .deb is downloaded again), HOME, -j,
    host name and day give the same bytes."""
    env = isolated_env(tmp_path / "elsewhere")
    env = {k: v for k, v in env.items() if k != "SOURCE_DATE_EPOCH"}
    env |= {"TZ": "Pacific/Chatham", "LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}
    assert env["COMPOSE_CACHE_DIR"] != world.env["COMPOSE_CACHE_DIR"]
    assert env["HOME"] != world.env["HOME"]
    # faketime and the locale come with .ci/setup; another host name needs root.
    prefix = ["faketime", "2031-06-01 00:00:00"]
    script = "umask 077 && exec \"$@\""
    other_host = _works("unshare", "--uts", "sh", "-c", "hostname x-other")
    if other_host:
        prefix += ["unshare", "--uts"]
        script = f"hostname compose-elsewhere && {script}"
    probe = subprocess.run(
        [*prefix, "sh", "-c", script, "sh", sys.executable, "-c",
         "import locale, os, socket, time; locale.setlocale(locale.LC_ALL, '');"
         "print(time.gmtime()[0], oct(os.umask(0)), socket.gethostname(),"
         " locale.setlocale(locale.LC_ALL))"],
        env=env, capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
    year, umask, host, loc = probe.stdout.split()
    assert (year, umask, loc) == ("2031", "0o77", "tr_TR.UTF-8")
    assert host == "compose-elsewhere" or not other_host
    start = len(world.log)
    done = subprocess.run(
        [*prefix, "sh", "-c", script, "sh", sys.executable, "-m", "composer", "build",
         "--locked", "profiles/img.toml", "-o", str(tmp_path / "other"), "-j", "1",
         *world.flags], env=env, cwd=world.project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == built.digest
    assert len([p for p in world.log[start:] if p.endswith(".deb")]) == len(
        world.locked_packages("img")), "a new cache downloads again"
    mine, theirs = built.layout.files(), Layout(tmp_path / "other").files()
    assert sorted(mine) == sorted(theirs)
    assert [n for n in mine if mine[n] != theirs[n]] == []


def test_layout_modes_do_not_depend_on_the_umask(world: World, built: Built,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "u077"
    done = subprocess.run(
        ["sh", "-c", "umask 077 && exec \"$@\"", "sh", sys.executable, "-m", "composer",
         "build", "--locked", "profiles/img.toml", "-o", str(out), *world.flags],
        env=world.env, cwd=world.project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def modes(root: Path) -> dict[str, int]:
        return {p.relative_to(root).as_posix(): p.stat().st_mode & 0o7777
                for p in [root, *root.rglob("*")]}

    assert modes(out) == modes(built.layout.root)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def test_skopeo_inspects_the_layouts(built: Built, multi: tuple[str, str, Layout]) -> None:
    skopeo = _need("skopeo")
    for tag in ("current", "v1"):
        info = json.loads(subprocess.run(
            [skopeo, "inspect", f"oci:{built.layout.root}:{tag}"],
            capture_output=True, check=True, timeout=60).stdout)
        assert info["Digest"] == built.digest
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
        assert "APP_MODE=prod" in info["Env"]
        assert info["Labels"]["org.example.team"] == "qa"
    digest, _, layout = multi
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{layout.root}:current"],
                         capture_output=True, check=True, timeout=60).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    for arch in ("amd64", "arm64"):
        info = json.loads(subprocess.run(
            [skopeo, "inspect", "--override-arch", arch, f"oci:{layout.root}:current"],
            capture_output=True, check=True, timeout=60).stdout)
        assert info["Architecture"] == arch


def test_umoci_unpacks_the_image(built: Built, tmp_path: Path) -> None:
    umoci = _need("umoci")
    done = subprocess.run([umoci, "unpack", "--rootless", "--image",
                           f"{built.layout.root}:current", str(tmp_path / "bundle")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "bundle" / "rootfs"
    assert os.readlink(root / "bin") == "usr/bin"
    assert (root / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho tool\n"
    assert (root / "usr/share/shared/one").read_bytes() == b"from repl-a\n"
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    process = json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]
    assert process["args"] == [f"/usr/bin/python{PY}", "-c", "print(1)"]
    assert (process["user"]["uid"], process["user"]["gid"]) == (65532, 65532)
    assert process["cwd"] == "/home/nonroot"
    assert "LANG=C.UTF-8" in process["env"]


def test_docker_archive_loads_with_podman(world: World, built: Built, tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "--format",
                             "docker-archive", "-o", archive, *world.flags)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == built.digest
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                 for m in tar if m.isfile()}
    (entry,) = json.loads(files["manifest.json"])
    assert sorted(entry["RepoTags"]) == ["img:current", "img:v1"]
    (manifest,) = built.layout.manifests().values()
    assert files[entry["Config"]] == built.layout.blob(manifest["config"]["digest"])
    assert [files[x] for x in entry["Layers"]] == [built.layout.layer_blob("amd64")]

    podman = _need("podman")
    runroot = tempfile.mkdtemp(dir="/tmp")
    cmd = [podman, "--root", str(tmp_path / "storage"), "--runroot", runroot,
           "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    try:
        loaded = subprocess.run([*cmd, "load", "-i", str(archive)], capture_output=True,
                                text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        shown = subprocess.run([*cmd, "image", "inspect", "localhost/img:current"],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        info = json.loads(shown.stdout)[0]
        assert "sha256:" + info["Id"] == manifest["config"]["digest"]
        assert sorted(info["RepoTags"]) == ["localhost/img:current", "localhost/img:v1"]
        assert info["Config"]["User"] == "65532:65532"
    finally:
        subprocess.run([*cmd, "rmi", "-a", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(runroot, ignore_errors=True)


# -- a .deb that is not the locked one -------------------------------------------------------


@pytest.mark.parametrize("change", ["same size", "one byte more"])
def test_a_deb_not_matching_the_lock_stops_the_build(world: World, tmp_path: Path,
                                                     change: str) -> None:
    (tools,) = [p for p in world.locked_packages("img") if p["name"] == "tools"]
    good = deb_of(world, tools)
    bad = good[:-1] + bytes([good[-1] ^ 0xFF]) if change == "same size" else good + b"\0"
    path = f"/debian/{tools['filename']}"
    env = fixed_env(isolated_env(tmp_path / "env"))
    log: list[str] = []
    with world.archive.serve(log=log, overrides={path: (200, bad)}) as url:
        rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o",
                                 tmp_path / "out", f"--mirror=debian={url}", env=env)
    assert path in log
    assert rc == 2, err
    (line,) = re.findall(r"^error: .*$", err, re.M)
    assert "tools 1.0-1 amd64" in line and ("sha256" in line or "bytes" in line), line
    assert re.search(r"^hint: \S", err, re.M), err
    assert not DIGEST.search(out)
    assert not (tmp_path / "out").exists()
    cache = Path(env["COMPOSE_CACHE_DIR"])
    blobs = [p for p in (cache / "sha256").rglob("*") if p.is_file()]
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in blobs)
    assert tools["sha256"] not in {p.name for p in blobs}
    assert not any((cache / "tmp").iterdir())


def test_a_cached_deb_not_matching_the_lock_is_not_built_in(world: World, built: Built,
                                                            tmp_path: Path) -> None:
    env = fixed_env(isolated_env(tmp_path / "env"))
    cache = Path(env["COMPOSE_CACHE_DIR"])
    shutil.rmtree(cache)
    shutil.copytree(world.env["COMPOSE_CACHE_DIR"], cache)
    shutil.rmtree(cache / "derived", ignore_errors=True)  # only the .debs themselves
    locked = {p["name"]: p for p in world.locked_packages("img")}
    entry = cache / "sha256" / str(locked["tools"]["sha256"])[:2] / str(locked["tools"]["sha256"])
    assert entry.is_file()
    entry.write_bytes(deb_of(world, locked["more"]))  # a real package, but not the locked one
    start = len(world.log)
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", tmp_path / "out",
                             *world.flags, env=env)
    assert rc == 0, err  # the damaged entry was dropped and the .deb downloaded again
    assert out.strip().splitlines()[-1] == built.digest
    assert world.log[start:] == [f"/debian/{locked['tools']['filename']}"]
    assert hashlib.sha256(entry.read_bytes()).hexdigest() == locked["tools"]["sha256"]


# -- verify -----------------------------------------------------------------------------


def test_verify_accepts_the_build_of_the_lock(world: World, built: Built) -> None:
    rc, out, err = world.run("verify", "profiles/img.toml", "--image", built.layout.root,
                             "--expect", built.digest, *world.flags)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == built.digest
    assert "verified" in err


def test_verify_names_the_first_differing_file(world: World, built: Built,
                                               tmp_path: Path) -> None:
    copy = Path(shutil.copytree(built.layout.root, tmp_path / "changed"))
    rewrite_layer(copy, b"13.0\n", b"99.9\n")
    assert Layout(copy).members("amd64")["etc/debian_version"].data == b"99.9\n"
    rc, _, err = world.run("verify", "profiles/img.toml", "--image", copy, *world.flags)
    assert rc == 1, err
    (line,) = re.findall(r"^error: .*$", err, re.M)
    assert "etc/debian_version: content differs" in line, line


def test_verify_refuses_another_digest(world: World, built: Built) -> None:
    other = "sha256:" + "0" * 64
    rc, _, err = world.run("verify", "profiles/img.toml", "--expect", other, *world.flags)
    assert rc == 1, err
    (line,) = re.findall(r"^error: .*$", err, re.M)
    assert built.digest in line and other in line, line


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    ('workdirr = "/"', r"image\.workdirr: unknown key"),
    ('compression = "lz4"', r"image\.compression: unknown compression 'lz4'"),
    ("user = true", r"image\.user: expected a user name or id"),
    ('tags = ["no spaces"]', r"image\.tags: 'no spaces' is not a valid image tag"),
    ('workdir = "relative"', r"image\.workdir: 'relative' is not an absolute path"),
])
def test_bad_image_settings_name_file_line_and_key(world: World, tmp_path: Path, line: str,
                                                   message: str) -> None:
    text = profile_text("bad", ["tools"], extra=f'\n[image]\ntag = "current"\n{line}\n')
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "bad.toml").write_text(text)
    number = text.splitlines().index(line) + 1
    rc, out, err = world.run("build", "--locked", "profiles/bad.toml", *world.flags,
                             cwd=tmp_path)
    assert rc == 2, err
    assert re.search(rf"^error: profiles/bad\.toml:{number}: {message}", err, re.M), err
    assert re.search(r"^hint: \S", err, re.M), err
    assert out == "" and not (tmp_path / "out").exists()


def _edited(world: World, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the project whose profile img.toml has ``old`` replaced by ``new``."""
    project = Path(shutil.copytree(world.project, tmp_path / "p"))
    prof = project / "profiles" / "img.toml"
    text = prof.read_text()
    assert old in text, old
    prof.write_text(text.replace(old, new))
    return project


def test_an_unknown_image_user_is_a_clean_error(world: World, tmp_path: Path) -> None:
    project = _edited(world, tmp_path, 'user = "nonroot"', 'user = "ghost"')
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", "out/img",
                             *world.flags, cwd=project)
    assert rc == 2, err
    assert not DIGEST.search(out)
    assert re.search(r"^error: .*'ghost'", err, re.M), err
    assert re.search(r"^hint: .*nonroot", err, re.M), err
    assert not (project / "out").exists()


def test_a_bad_source_date_epoch_is_a_clean_error(world: World, tmp_path: Path) -> None:
    env = world.env | {"SOURCE_DATE_EPOCH": "yesterday"}
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", tmp_path / "x",
                             *world.flags, env=env)
    assert rc == 2, err
    assert re.search(r"^error: SOURCE_DATE_EPOCH='yesterday'", err, re.M), err
    assert re.search(r"^hint: \S", err, re.M), err
    assert not DIGEST.search(out) and not (tmp_path / "x").exists()


def test_an_interpreter_that_cannot_run_is_a_clean_error(world: World, tmp_path: Path) -> None:
    """With [python] compile on, the image's own (here: fake) interpreter must run."""
    project = _edited(world, tmp_path, "compile = false", "compile = true")
    rc, out, err = world.run("build", "--locked", "profiles/img.toml", "-o", "out/img",
                             *world.flags, cwd=project)
    assert rc == 2, err
    assert re.search(rf"^error: .*python{PY}", err, re.M), err
    assert re.search(r"^hint: \S", err, re.M), err
    assert not DIGEST.search(out) and not (project / "out").exists()


def test_a_home_below_a_symlink_lands_where_the_link_points(world: World,
                                                            tmp_path: Path) -> None:
    project = _edited(world, tmp_path, 'home = "/srv/app"', 'home = "/var/run/app"')
    rc, _, err = world.run("build", "--locked", "profiles/img.toml", "-o", "out/img",
                           *world.flags, cwd=project)
    assert rc == 0, err
    members = Layout(project / "out" / "img").members("amd64")
    assert members["var/run"].info.issym() and members["var/run"].info.linkname == "/run"
    assert "var/run/app" not in members, "a member below the symlink var/run"
    assert "run/app" in members
    assert members["run/app"].info.isdir() and members["run/app"].info.uid == 1000


def test_zero_jobs_is_refused(world: World, tmp_path: Path) -> None:
    rc, _, err = world.run("build", "--locked", "profiles/img.toml", "-o", tmp_path / "j0",
                           "-j", "0", *world.flags)
    assert rc == 2, err
    assert "--jobs must be at least 1" in err
    assert not (tmp_path / "j0").exists()


# -- byte-compiling, with this host's own interpreter -----------------------------------------


SOURCES = {
    "a.py": "WORDS = {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\n",
    "pkg/__init__.py": "",
    "pkg/b.py": "def f(x):\n    return x in frozenset({1, 2, 3}) or 'b' in {'q', 'r'}\n",
    "pkg/c.py": "import sys\nprint(sys.argv)\n",
    "z.py": "class Z:\n    __slots__ = ('one', 'two')\n",
    "broken.py": "def (:\n",
}


def _driver(tmp_path: Path, paths: list[str]) -> bytes:
    done = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", pycompile.DRIVER],
                          input="\n".join(paths).encode(), capture_output=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), "TMPDIR": str(tmp_path)},
                          check=True)
    return done.stdout


def test_pycompile_driver_output_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel, text in SOURCES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    paths = sorted(str(src / rel) for rel in SOURCES)
    broken = str(src / "broken.py")

    pycs, failed, tag = pycompile.parse(_driver(tmp_path, paths))
    assert tag == sys.implementation.cache_tag
    assert failed == [broken]
    assert sorted(pycs) == [p for p in paths if p != broken]
    for path, data in pycs.items():
        source = Path(path).read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01, "unchecked hash-based pyc"
        assert data[8:16] == importlib.util.source_hash(source)
        assert marshal.loads(data[16:]).co_filename == path

    for parts in (1, 2, 3, 7):
        for order in (paths, paths[::-1]):
            merged: dict[str, bytes] = {}
            merged_failed: list[str] = []
            for share in pycompile.split(order, parts):
                p, f, t = pycompile.parse(_driver(tmp_path, share))
                assert t == tag
                merged |= p
                merged_failed += f
            assert merged == pycs, (parts, order is paths)
            assert merged_failed == failed
    assert list(tmp_path.glob("compose-pyc-*")) == [], "the driver cleans up"

    assert pycompile.parse(pycompile.pack(pycs, failed, tag)) == (pycs, failed, tag)
    whole = _driver(tmp_path, paths)
    for cut in (whole[:-1], whole[: len(whole) // 2], b""):
        with pytest.raises(ComposeError):
            pycompile.parse(cut)


def test_pycompile_sources_include_links_to_files() -> None:
    """Debian's sitecustomize.py is a link to /etc/pythonX.Y: Python caches what it
    imports through a link beside the link, so the link is a source; a dangling link
    or one to a directory is not, and the key follows the content behind the link."""
    lib = f"usr/lib/python{PY}"
    tree = {
        f"etc/python{PY}/sitecustomize.py": Entry(f"etc/python{PY}/sitecustomize.py", FILE,
                                                  0o644, data=b"x = 1\n"),
        f"{lib}/os.py": Entry(f"{lib}/os.py", FILE, 0o644, data=b"y = 2\n"),
        f"{lib}/sitecustomize.py": Entry(f"{lib}/sitecustomize.py", SYMLINK, 0o777,
                                         target=f"/etc/python{PY}/sitecustomize.py"),
        f"{lib}/gone.py": Entry(f"{lib}/gone.py", SYMLINK, 0o777, target="nowhere.py"),
        f"{lib}/dir.py": Entry(f"{lib}/dir.py", SYMLINK, 0o777, target="/etc"),
        **{d: Entry(d, DIR, 0o755) for d in ("etc", f"etc/python{PY}", "usr", "usr/lib", lib)},
    }
    assert pycompile.sources(tree, PY) == [f"/{lib}/os.py", f"/{lib}/sitecustomize.py"]
    key = pycompile.key(["amd64"], tree, pycompile.sources(tree, PY))
    changed = dict(tree)
    changed[f"etc/python{PY}/sitecustomize.py"] = Entry(
        f"etc/python{PY}/sitecustomize.py", FILE, 0o644, data=b"x = 3\n")
    assert pycompile.key(["amd64"], changed, pycompile.sources(changed, PY)) != key


def test_setuid_and_setgid_bits_only_where_the_profile_allows(world: World) -> None:
    """A package cannot make a program in the image run with its owner's rights: the
    setuid and setgid bits stay only on the paths ``[image] setuid`` names."""
    (world.project / "profiles" / "priv.toml").write_text(
        profile_text("priv", ["privileged"], extra='[image]\nsetuid = ["usr/bin/allowed"]\n'))
    rc, _, err = world.run("lock", "profiles/priv.toml", *world.flags)
    assert rc == 0, err
    rc, out, err = world.run("build", "--locked", "profiles/priv.toml", "--json", *world.flags)
    assert rc == 0, err
    assert ("note: [amd64] setuid/setgid bits dropped from /usr/bin/grouped, /usr/bin/sneaky"
            in err), err
    *doc, _digest = out.strip().splitlines()
    report = json.loads("\n".join(doc))["architectures"]["amd64"]
    assert report["special_bits_dropped"] == ["usr/bin/grouped", "usr/bin/sneaky"]
    members = Layout(world.project / "out" / "priv").members("amd64")
    assert members["usr/bin/allowed"].info.mode == 0o4755
    assert members["usr/bin/sneaky"].info.mode == 0o755
    assert members["usr/bin/grouped"].info.mode == 0o755
