"""The shipped py313 profile built from the real archive, and run.

The lock is made afresh in a temporary directory (Debian's mirrors drop superseded
.debs), the image is built for both architectures, checked by skopeo, umoci and podman,
unpacked, and its Python run in bubblewrap (tests/test_profiles_online.py runs every
profile on both architectures). A second build in a deliberately different environment
must give the same digest, blob for blob.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.online import PROFILE, ROOT, compose, env, lock, work  # noqa: F401 (fixtures)

pytestmark = pytest.mark.network


DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = "3.13-debian13"

CHECK = """
import ssl, sqlite3, zlib, lzma, bz2, ctypes, uuid, decimal, hashlib, zoneinfo, json, os, sys
ctx = ssl.create_default_context()
print(json.dumps({
    "certs": len(ctx.get_ca_certs()),
    "paris": str(zoneinfo.ZoneInfo("Europe/Paris")),
    "eastern": str(zoneinfo.ZoneInfo("US/Eastern")),
    "uid": os.getuid(), "gid": os.getgid(),
    "sh": os.path.exists("/bin/sh"),
    "version": sys.version_info[:2],
    "machine": os.uname().machine,
    "sqlite": sqlite3.sqlite_version,
    "uuid": len(str(uuid.uuid4())),
    "sha": hashlib.sha256(b"").hexdigest()[:8],
    "decimal": str(decimal.Decimal(1) / 7)[:5],
    "lzma": len(lzma.compress(b"x")) > 0,
    "pyc": os.path.isfile(sys.modules["json"].__cached__),
}))
"""


@pytest.fixture(scope="module")
def image(env: dict[str, str], work: Path, lock: Path) -> tuple[Path, dict[str, object]]:
    out = work / "py313"
    r = compose(env, "build", "--locked", PROFILE, "--lock", lock, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.strip().splitlines()
    assert DIGEST.fullmatch(lines[-1])
    doc = json.loads("\n".join(lines[:-1]))
    assert doc["digest"] == lines[-1]
    return out, doc


def _rootfs(work: Path, layout: Path, tag: str, name: str) -> Path:
    bundle = work / name
    if not bundle.exists():
        r = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}",
                            str(bundle)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return bundle / "rootfs"


def _run(rootfs: Path, argv: list[str], uid: int, env: dict[str, str]) -> str:
    cmd = ["bwrap", "--bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
           "--unshare-all", "--uid", str(uid), "--gid", str(uid), "--clearenv"]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    r = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _config(layout: Path, arch: str) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    top = index["manifests"][0]
    blob = lambda d: json.loads((layout / "blobs" / "sha256" / d.split(":")[1]).read_bytes())  # noqa: E731
    nested = blob(top["digest"])
    mf = next(m for m in nested["manifests"] if m["platform"]["architecture"] == arch)
    return blob(blob(mf["digest"])["config"]["digest"])  # type: ignore[no-any-return]


needs = pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("bwrap")),
                           reason="umoci and bubblewrap are needed to run the image")


def test_build_reports_both_architectures(image: tuple[Path, dict[str, object]]) -> None:
    layout, doc = image
    archs = doc["architectures"]
    assert isinstance(archs, dict) and sorted(archs) == ["amd64", "arm64"]
    for a in archs.values():
        assert DIGEST.fullmatch(a["manifest"])
        assert 30 * 2**20 < a["uncompressed_size"] < 120 * 2**20
        assert a["compressed_size"] < a["uncompressed_size"] / 2
        assert a["compiled"] > 400 and a["certificates"] > 100
    assert (layout / "oci-layout").is_file()


def test_config_matches_distroless_defaults(image: tuple[Path, dict[str, object]]) -> None:
    layout, _ = image
    for arch in ("amd64", "arm64"):
        cfg = _config(layout, arch)
        c = cfg["config"]
        assert isinstance(c, dict)
        assert c["Entrypoint"] == ["/usr/bin/python3.13"]
        env = dict(e.split("=", 1) for e in c["Env"])
        assert env["LANG"] == "C.UTF-8"
        assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
        assert "/usr/bin" in env["PATH"].split(":")
        assert c["User"] == "0:0"
        assert cfg["architecture"] == arch and cfg["os"] == "linux"


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
def test_skopeo_reads_both_platforms(image: tuple[Path, dict[str, object]]) -> None:
    layout, _ = image
    for arch in ("amd64", "arm64"):
        r = subprocess.run(["skopeo", "inspect", "--override-arch", arch, f"oci:{layout}:{TAG}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["Architecture"] == arch


@needs
def test_python_runs_amd64(env: dict[str, str], work: Path, lock: Path) -> None:
    out = work / "py313-amd64"
    r = compose(env, "build", "--locked", PROFILE, "--lock", lock, "--arch", "amd64", "-o", out)
    assert r.returncode == 0, r.stderr
    rootfs = _rootfs(work, out, TAG, "bundle-amd64")
    user = json.loads((work / "bundle-amd64" / "config.json").read_text())["process"]["user"]
    assert (user["uid"], user["gid"]) == (0, 0)
    # every source has its byte-code, checked before anything runs (the interpreter,
    # as root in a writable tree, would write what is missing)
    sources = [p for root in ("usr/lib/python3.13", "usr/lib/python3/dist-packages")
               for p in (rootfs / root).rglob("*.py")]
    assert len(sources) > 500
    missing = [str(p) for p in sources
               if not (p.parent / "__pycache__" / f"{p.stem}.cpython-313.pyc").is_file()]
    assert missing == []
    got = json.loads(_run(rootfs, ["/usr/bin/python3", "-c", CHECK], user["uid"],
                          {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
                           "LANG": "C.UTF-8"}))
    assert got["certs"] > 100
    assert got["paris"] == "Europe/Paris" and got["eastern"] == "US/Eastern"
    assert (got["uid"], got["gid"]) == (user["uid"], user["gid"])
    assert got["sh"] is False and not (rootfs / "bin" / "sh").exists()
    assert got["version"] == [3, 13] and got["machine"] == "x86_64"
    assert got["pyc"]
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == "0o1777"
    for gone in ("idlelib", "ensurepip", "tkinter", "turtledemo", "turtle.py"):
        assert not (rootfs / "usr/lib/python3.13" / gone).exists()
    docs = rootfs / "usr/share/doc"
    assert all((d / "copyright").exists() for d in docs.iterdir())
    assert not (rootfs / "usr/share/man").exists()
    status = rootfs / "var/lib/dpkg/status.d"
    assert (status / "libc6").read_text().startswith("Package: libc6\n")
    assert (status / "libc6.md5sums").stat().st_size > 0
    assert (rootfs / "etc/os-release").resolve().read_text().count("trixie") > 0


@pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed")
def test_docker_archive_loads_with_podman(env: dict[str, str], work: Path, lock: Path) -> None:
    tar = work / "py313.tar"
    r = compose(env, "build", "--locked", PROFILE, "--lock", lock, "--format", "docker-archive",
                "--arch", "amd64", "-o", tar)
    assert r.returncode == 0, r.stderr
    runroot = tempfile.mkdtemp(prefix="pr", dir="/tmp")
    try:
        base = ["podman", "--root", str(work / "podman"), "--runroot", runroot,
                "--storage-driver", "vfs"]
        r2 = subprocess.run([*base, "load", "-i", str(tar)], capture_output=True, text=True)
        assert r2.returncode == 0, r2.stderr
        r3 = subprocess.run([*base, "image", "inspect", f"py313:{TAG}"], capture_output=True,
                            text=True)
        assert r3.returncode == 0, r3.stderr
        info = json.loads(r3.stdout)[0]
        assert info["Config"]["Entrypoint"] == ["/usr/bin/python3.13"]
        assert info["Architecture"] == "amd64"
    finally:
        subprocess.run(["podman", "--root", str(work / "podman"), "--runroot", runroot,
                        "--storage-driver", "vfs", "rmi", "-a", "-f"], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def _elsewhere(argv: list[str]) -> list[str]:
    """``argv`` on another day (faketime, from .ci/setup) and, as root, under another
    host name and as another user (UTS and user namespaces)."""
    argv = ["faketime", "2031-02-03 04:05:06", *argv]
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--uts", "sh", "-c",
                "hostname compose-elsewhere && exec unshare --user --map-user=4242 "
                "--map-group=4242 sh -c 'umask 077 && exec \"$@\"' sh \"$@\"", "sh", *argv]
    else:
        argv = ["sh", "-c", 'umask 077 && exec "$@"', "sh", *argv]
    return argv


def test_rebuild_elsewhere_is_bit_for_bit(image: tuple[Path, dict[str, object]],
                                          env: dict[str, str], work: Path, lock: Path) -> None:
    """Another cache (so every .deb is downloaded, in another order, and Python compiled
    again), time zone, umask, locale, parallelism, HOME, user, host name and day: the
    same digest and the same blobs."""
    layout, doc = image
    other = dict(env, COMPOSE_CACHE_DIR=str(work / "cache2"), TZ="Pacific/Kiritimati",
                 LANG="fr_FR.UTF-8", LC_ALL="fr_FR.UTF-8", HOME=str(work / "home2"),
                 USER="someone", LOGNAME="someone")
    again = work / "py313-again"
    argv = [sys.executable, "-m", "composer", "build", "--locked", str(PROFILE), "--lock",
            str(lock), "-o", str(again), "-j", "1", "-q"]
    probe = [sys.executable, "-c", "import locale, os, socket, time; "
             "locale.setlocale(locale.LC_ALL, '');"  # fails if the locale is not installed
             "print(os.getuid(), socket.gethostname(), time.strftime('%Y'), oct(os.umask(0)))"]
    seen = subprocess.run(_elsewhere(probe), env=other, capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    uid, host, year, umask = seen.stdout.split()
    assert (year, umask) == ("2031", "0o77")
    if os.geteuid() == 0:
        assert (uid, host) == ("4242", "compose-elsewhere")
    r = subprocess.run(_elsewhere(argv), env=other, cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == doc["digest"]
    a = sorted(p.name for p in (layout / "blobs/sha256").iterdir())
    b = sorted(p.name for p in (again / "blobs/sha256").iterdir())
    assert a == b
    for name in a:
        assert (layout / "blobs/sha256" / name).read_bytes() == \
            (again / "blobs/sha256" / name).read_bytes()
    assert (layout / "index.json").read_bytes() == (again / "index.json").read_bytes()


def test_verify_rebuilds_the_amd64_image(env: dict[str, str], work: Path, lock: Path) -> None:
    """verify rebuilds without anything derived from the cache and compares blob by blob
    with the image built earlier (the amd64 image of test_python_runs_amd64, or a new one)."""
    out = work / "py313-amd64"
    if not out.exists():
        r = compose(env, "build", "--locked", PROFILE, "--lock", lock, "--arch", "amd64",
                    "-o", out, "-q")
        assert r.returncode == 0, r.stderr
    v = compose(env, "verify", PROFILE, "--lock", lock, "--image", out)  # amd64 from the layout
    assert v.returncode == 0, v.stderr
    assert "bit for bit" in v.stderr


@needs
def test_ld_so_cache_is_what_the_images_ldconfig_writes(env: dict[str, str], work: Path) -> None:
    """With the whole of libc-bin in the image (py313 ships only its locale), its own
    /sbin/ldconfig, run in the unpacked image, writes exactly the /etc/ld.so.cache
    compose wrote; and ctypes finds libraries."""
    text = PROFILE.read_text().replace('name = "py313"', 'name = "py313ldc"')
    only = 'only = { libc-bin = ["usr/lib/locale/C.utf8/**"] }'
    assert only in text
    text = text.replace(only, "")
    text = text.replace('architectures = ["amd64", "arm64"]', 'architectures = ["amd64"]')
    text = text.replace("compile = true", "compile = false").replace(f'tag = "{TAG}"', 'tag = "ldc"')
    profile = work / "py313ldc.toml"
    profile.write_text(text)
    lock = work / "py313ldc.lock.toml"
    r = compose(env, "lock", profile, "-o", lock, "-q")
    assert r.returncode == 0, r.stderr
    out = work / "ldc"
    r = compose(env, "build", "--locked", profile, "--lock", lock, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    rootfs = _rootfs(work, out, "ldc", "bundle-ldc")
    ours = (rootfs / "etc/ld.so.cache").read_bytes()
    _run(rootfs, ["/sbin/ldconfig", "-X", "-C", "/tmp/ld.so.cache"], 0, {})
    assert (rootfs / "tmp/ld.so.cache").read_bytes() == ours
    found = _run(rootfs, ["/usr/bin/python3", "-c",
                          "import ctypes.util; print(ctypes.util.find_library('ssl'))"], 0, {})
    assert found.strip() == "libssl.so.3"
