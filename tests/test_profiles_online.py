"""Every shipped profile locked afresh against the real archive (Debian's mirrors drop
superseded .debs, so the committed locks are not used), built for its architectures
(amd64 and arm64) into one OCI index each, and run: the shared smoke tests of
tests/smoke.py, amd64 natively and arm64 under qemu-user. (py313-latest's CPython,
compiled from source, is cross-compiled for arm64.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from composer.profile import load
from tests.buildhelp import Layout
from tests.online import ROOT, env, work  # noqa: F401 (fixtures)
from tests.smoke import NATIVE, QEMU, Image, probe, run, unpack

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(not (shutil.which("bwrap") and NATIVE and all(
        shutil.which(q) for a, q in QEMU.items() if a != NATIVE)),
        reason="bubblewrap and qemu-user-static are needed to run the images"),
]

NAMES = sorted(p.stem for p in (ROOT / "profiles").glob("*.toml"))
PROFILES = {name: load(ROOT / "profiles" / f"{name}.toml") for name in NAMES}
FROM_SOURCE = sorted(n for n, p in PROFILES.items() if p.python_build is not None)
PAIRS = [(n, a) for n in NAMES for a in PROFILES[n].architectures]

# Not in the images, by design: Windows and macOS modules, Tk, and what the profiles
# trim as the distroless images do (idlelib, ensurepip, lib2to3, turtle); _gdbm is in
# python3-gdbm, which distroless does not ship either.
NOT_SHIPPED = {"_gdbm", "_tkinter", "tkinter", "turtle", "turtledemo", "idlelib", "ensurepip",
               "lib2to3", "_overlapped", "_scproxy", "_winapi", "_wmi", "_msi", "msilib",
               "msvcrt", "nt", "winreg", "winsound"}


def _compose(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "composer", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def project(env: dict[str, str], work: Path) -> Path:
    """A copy of the shipped profiles, locked afresh and built, all of them."""
    proj = work / "project"
    shutil.copytree(ROOT / "profiles", proj / "profiles")
    debian = [f"profiles/{n}.toml" for n in NAMES if n not in FROM_SOURCE]
    r = _compose(env, proj, "lock", "-q", "--json", *debian)
    assert r.returncode == 0, r.stderr
    locked = [x["profile"] for x in json.loads(r.stdout)]
    # A source suite is read only for its Sources index: its Release is verified as any
    # other, but may be past its Valid-Until on a mirror that stopped following it.
    if FROM_SOURCE:  # (with no profile named, lock would lock them all)
        r = _compose(env, proj, "lock", "-q", "--json", "--allow-expired",
                     *(f"profiles/{n}.toml" for n in FROM_SOURCE))
        assert r.returncode == 0, r.stderr
        locked += [x["profile"] for x in json.loads(r.stdout)]
    assert sorted(locked) == NAMES
    r = _compose(env, proj, "build", "--locked", "-q", "--json")
    assert r.returncode == 0, r.stderr
    return proj


@pytest.fixture(scope="module")
def images(project: Path, work: Path) -> dict[tuple[str, str], Image]:
    return {(name, arch): unpack(project / "out" / name, arch, work / "roots" / f"{name}-{arch}",
                                 name)
            for name, arch in PAIRS}


@pytest.fixture(scope="module")
def facts(images: dict[tuple[str, str], Image]) -> dict[tuple[str, str], dict[str, Any]]:
    return {key: probe(img) for key, img in images.items()}


def _expect(name: str) -> dict[str, Any]:
    prof = load(ROOT / "profiles" / f"{name}.toml")
    assert prof.python_version
    return {"version": [int(x) for x in prof.python_version.split(".")],
            "python": f"/usr/bin/python{prof.python_version}",
            "tag": prof.image.tags[0],
            "nonroot": name.endswith("-nonroot"),
            "debug": name.endswith("-debug"),
            "compat": name.endswith("-compat")}


@pytest.mark.parametrize("name", NAMES)
def test_one_index_for_both_architectures(project: Path, name: str) -> None:
    lay = Layout(project / "out" / name)
    archs = PROFILES[name].architectures
    assert sorted(lay.manifests()) == sorted(archs)
    (top,) = lay.index["manifests"]
    assert top["annotations"]["org.opencontainers.image.ref.name"] == _expect(name)["tag"]
    if shutil.which("skopeo"):
        for arch in archs:
            r = subprocess.run(["skopeo", "inspect", "--override-arch", arch,
                                f"oci:{project / 'out' / name}:{_expect(name)['tag']}"],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["Architecture"] == arch


@pytest.mark.parametrize(("name", "arch"), PAIRS)
def test_smoke(name: str, arch: str, images: dict[tuple[str, str], Image],
               facts: dict[tuple[str, str], dict[str, Any]]) -> None:
    img, got, want = images[name, arch], facts[name, arch], _expect(name)
    assert got["machine"] == {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    assert got["version"] == want["version"]

    # the standard library modules the image ships import; nothing else is missing
    assert got["import_failed"] == {}
    assert len(got["modules"]) > 200
    assert set(got["not_shipped"]) <= NOT_SHIPPED, set(got["not_shipped"]) - NOT_SHIPPED
    for needed in ("ssl", "sqlite3", "ctypes", "zlib", "lzma", "bz2", "zoneinfo", "uuid",
                   "readline", "curses", "decimal", "hashlib", "venv", "dbm"):
        assert needed in got["modules"], needed

    # UTF-8 in and out
    assert got["encodings"] == ["utf-8"]
    assert got["setlocale"] == ["C.UTF-8", "UTF-8"]  # the C.utf8 locale of libc-bin ships
    assert got["stdin"] == "stdin \u2713\n"
    assert got["file"] == got["text"] and got["listed"]
    assert img.env["LANG"] == "C.UTF-8"

    # HTTPS: the CA bundle loads, through SSL_CERT_FILE and the default paths
    assert got["ca"] > 100
    assert img.env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"

    # the accounts of the distroless images
    assert (img.root / "etc/passwd").read_text() == (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
    assert (img.root / "etc/group").read_text() == (
        "root:x:0:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\nnobody:x:65534:\n")

    # the process user and working directory are the profile's
    if want["nonroot"]:
        assert img.config["User"] == "65532:65532"
        assert (got["uid"], got["gid"], got["user"], got["group"]) == (65532, 65532, "nonroot",
                                                                      "nonroot")
        assert got["cwd"] == img.config["WorkingDir"] == "/home/nonroot"
    else:
        assert img.config["User"] == "0:0"
        assert (got["uid"], got["user"], got["cwd"]) == (0, "root", "/")

    # a shell only where the profile ships one
    assert got["sh"] is (want["debug"] or want["compat"])
    assert got["getpid"]
    if img.native:
        if got["sh"]:
            assert (got["system"], got["shell_out"]) == (3, "42")
        else:
            assert (got["system"], got["shell_out"]) == (127, "FileNotFoundError")
        # ctypes.util.find_library runs /sbin/ldconfig -p, which libc-bin ships
        assert got["find_library_c"] == ("libc.so.6" if want["compat"] else None)
    else:  # qemu-user runs one program: the shell and ldconfig are tried directly
        r = run(img, ["/bin/sh", "-c", "echo $((6 * 7)); exit 3"])
        assert (r.returncode, r.stdout) == ((3, "42\n") if got["sh"] else (1, "")), r.stderr
        r = run(img, ["/sbin/ldconfig", "-p"])
        if want["compat"]:
            flavour = {"arm64": "libc6,AArch64", "amd64": "libc6,x86-64"}[arch]
            assert r.returncode == 0 and f"libc.so.6 ({flavour})" in r.stdout, r.stderr
        else:
            assert r.returncode != 0
    assert not (img.root / ".qemu").exists()


@pytest.mark.parametrize(("name", "arch"), PAIRS)
def test_entrypoint(name: str, arch: str, images: dict[tuple[str, str], Image]) -> None:
    img, want = images[name, arch], _expect(name)
    if want["debug"]:
        assert img.config["Entrypoint"] == ["/bin/sh"]
        # the entrypoint is busybox's shell, with its applets on PATH
        # (under qemu-user the shell cannot start another program: builtins only)
        pipe = "ls / | grep -c '^usr$'; " if img.native else ""
        script = f"echo $((6 * 7)); {pipe}test -x /usr/bin/python3 && exit 3\n"
        r = run(img, None, stdin=script)
        assert (r.returncode, r.stdout) == (3, "42\n1\n" if img.native else "42\n"), r.stderr
        for applet in ("sh", "ls", "cat", "ps", "wget", "vi", "env"):
            link = img.root / "usr/bin" / applet
            assert os.readlink(link) == "/usr/bin/busybox", applet
        if img.native:  # the shell starts the image's Python
            r = run(img, None, stdin="python3 -c 'import sys; print(sys.version_info[:2])'\n")
            assert r.stdout.strip() == str(tuple(want["version"])), r.stderr
    else:
        assert img.config["Entrypoint"] == [want["python"]]
        r = run(img, [*img.config["Entrypoint"], "-c", "import sys; print(sys.executable)"])
        assert (r.returncode, r.stdout) == (0, want["python"] + "\n"), r.stderr


@pytest.mark.parametrize("name", FROM_SOURCE)
def test_source_built_interpreter_is_the_locked_one(name: str, project: Path, env: dict[str, str],
                                                    images: dict[tuple[str, str], Image]) -> None:
    from composer import lockfile

    lk = lockfile.load(project / "locks" / f"{name}.lock.toml")
    assert lk.python_source is not None
    for arch in PROFILES[name].architectures:
        img = images[name, arch]
        r = run(img, ["/usr/bin/python3", "-c",
                      "import ssl, sqlite3, sys; print(sys.version.split()[0]); "
                      "print(ssl.OPENSSL_VERSION); print(sqlite3.sqlite_version)"])
        assert r.returncode == 0, r.stderr
        version, openssl, sqlite = r.stdout.splitlines()
        assert version == lk.python_source.upstream_version
        # Debian's OpenSSL and SQLite, as the lock ships them
        pkgs = {p.name: p for p in lk.for_arch(arch)}
        assert openssl.startswith(f"OpenSSL {pkgs['libssl3t64'].version.split('-')[0]} ")
        assert sqlite == pkgs["libsqlite3-0"].version.split("-")[0]
        assert (img.root / "usr/share/doc/cpython/copyright").read_text().count("PSF-2.0") == 1
    # the audit lists the interpreter as a package, with its licence and what it links
    r = _compose(env, project, "audit", "--json", f"profiles/{name}.toml")
    assert r.returncode == 0, r.stderr
    for report in json.JSONDecoder().raw_decode(r.stdout)[0]:
        [built] = [p for p in report["packages"] if p["name"] == "cpython"]
        assert (built["version"], built["ids"]) == (lk.python_source.upstream_version, ["PSF-2.0"])
        linked = {x["provider"] for x in report["links"] if x["package"] == "cpython"}
        assert {"libssl3t64", "libc6", "libsqlite3-0"} <= linked
