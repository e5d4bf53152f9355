"""Smoke tests every built image shares: unpack its layer, run it as its config says
(entrypoint, environment, user, working directory) in bubblewrap, natively or under
qemu-user, and collect what its Python reports about itself.

The facts are gathered by ``PROBE``, run by the image's own interpreter with the
standard library only; the tests decide what each profile must show.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.buildhelp import Layout

NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "")
QEMU = {"amd64": "qemu-x86_64-static", "arm64": "qemu-aarch64-static"}

PROBE = r'''
import codecs, ctypes, ctypes.util, importlib, json, locale, os, pkgutil, pwd, grp, ssl, subprocess, sys
import sysconfig, warnings

warnings.simplefilter("ignore")
spawn = sys.argv[1] == "spawn"
facts = {}
facts["uid"], facts["gid"] = os.getuid(), os.getgid()
facts["user"] = pwd.getpwuid(os.getuid()).pw_name
facts["group"] = grp.getgrgid(os.getgid()).gr_name
facts["cwd"] = os.getcwd()
facts["version"] = list(sys.version_info[:2])
facts["machine"] = os.uname().machine
facts["executable"] = sys.executable

# UTF-8 in and out: the streams, the file system, and a round trip through a file.
text = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c"
facts["encodings"] = sorted({codecs.lookup(e).name for e in (
    sys.stdout.encoding, sys.stdin.encoding, sys.getfilesystemencoding(),
    locale.getpreferredencoding(False))})
facts["stdin"] = sys.stdin.read()
try:  # what a C program (or a Python one) that honours LANG does first
    facts["setlocale"] = [locale.setlocale(locale.LC_ALL, ""), locale.nl_langinfo(locale.CODESET)]
except locale.Error as exc:
    facts["setlocale"] = str(exc)
name = os.path.join("/tmp", text + ".txt")
with open(name, "w") as f:
    f.write(text)
with open(name) as f:
    facts["file"] = f.read()
facts["listed"] = text + ".txt" in os.listdir("/tmp")
os.unlink(name)
facts["text"] = text

# HTTPS: the certificates the default context trusts.
ctx = ssl.create_default_context()
facts["ca"] = ctx.cert_store_stats()["x509_ca"]
facts["openssl"] = ssl.OPENSSL_VERSION

# Every module the image ships in its standard library imports: the interpreter's own
# list of standard modules, found built in or in the image's library directories.
stdlib = sysconfig.get_paths()["stdlib"]
dynload = os.path.join(stdlib, "lib-dynload")
shipped = sorted(({m.name for m in pkgutil.iter_modules([stdlib, dynload])}
                  | set(sys.builtin_module_names)) & set(sys.stdlib_module_names))
failed = {}
for m in shipped:
    if m in ("antigravity", "this", "_ios_support"):  # a browser, a poem, iOS only
        continue
    try:
        importlib.import_module(m)
    except Exception as exc:
        failed[m] = f"{type(exc).__name__}: {exc}"
facts["modules"] = shipped
facts["import_failed"] = failed
missing = sorted(m for m in sys.stdlib_module_names if importlib.util.find_spec(m) is None)
facts["not_shipped"] = missing

# A C library call through ctypes, which needs no helper program.
facts["getpid"] = ctypes.CDLL(None).getpid() == os.getpid()

facts["sh"] = os.path.exists("/bin/sh")
if spawn:
    facts["find_library_c"] = ctypes.util.find_library("c")
    try:
        facts["system"] = os.system("exit 3") >> 8
        facts["shell_out"] = subprocess.run("echo $((6 * 7))", shell=True,
                                            capture_output=True, text=True).stdout.strip()
    except OSError as exc:
        facts["shell_out"] = type(exc).__name__
print(json.dumps(facts))
'''


@dataclass
class Image:
    profile: str
    arch: str
    root: Path
    config: dict[str, Any]

    @property
    def native(self) -> bool:
        return self.arch == NATIVE

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config.get("Env", []))

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.config["User"].partition(":")
        return int(uid), int(gid or uid)


def unpack(layout: Path, arch: str, dest: Path, profile: str) -> Image:
    """The layer of ``arch`` extracted by GNU tar into ``dest`` (as the root running the
    tests, owners and modes kept), and the image's config."""
    lay = Layout(layout)
    dest.mkdir(parents=True)
    r = subprocess.run(["tar", "-x", "-C", str(dest), "--numeric-owner", "--same-permissions"],
                       input=lay.layer_tar(arch), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    cfg = lay.config(arch)
    assert cfg["architecture"] == arch
    img = Image(profile, arch, dest, cfg["config"])
    uid, gid = img.uid_gid
    if uid != 0:
        # bubblewrap maps one uid: the image's user inside is the one running the tests
        # outside, so what the image's user owns is given to that one.
        for p in [dest, *dest.rglob("*")]:
            st = p.lstat()
            if st.st_uid == uid or st.st_gid == gid:
                os.lchown(p, os.getuid() if st.st_uid == uid else -1,
                          os.getgid() if st.st_gid == gid else -1)
    return img


def run(img: Image, argv: list[str] | None = None, stdin: str = "",
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The image's entrypoint and cmd (or ``argv``), run as its config says: its Env
    only, its User and WorkingDir, no network. A foreign architecture runs under qemu-user,
    copied into the tree as /.qemu; its programs cannot start other programs there."""
    cmd = argv if argv is not None else [*img.config.get("Entrypoint", []),
                                          *img.config.get("Cmd", [])]
    uid, gid = img.uid_gid
    bwrap = ["bwrap", "--bind", str(img.root), "/", "--proc", "/proc", "--dev", "/dev",
             "--unshare-all", "--die-with-parent", "--uid", str(uid), "--gid", str(gid),
             "--clearenv", "--chdir", img.config.get("WorkingDir") or "/"]
    for k, v in img.env.items():
        bwrap += ["--setenv", k, v]
    if not img.native:
        qemu = shutil.which(QEMU[img.arch])
        assert qemu, f"{QEMU[img.arch]} is needed to run {img.arch}"
        shutil.copy(qemu, img.root / ".qemu")
        cmd = ["/.qemu", *cmd]
    try:
        return subprocess.run(bwrap + cmd, input=stdin, capture_output=True, text=True,
                              encoding="utf-8", timeout=timeout)
    finally:
        if not img.native:
            (img.root / ".qemu").unlink()


def probe(img: Image) -> dict[str, Any]:
    """``PROBE`` run by the image's interpreter, as the image's user, in its working
    directory; child programs are tried only where they can start (natively)."""
    r = run(img, ["/usr/bin/python3", "-c", PROBE, "spawn" if img.native else "nospawn"],
            stdin="stdin \u2713\n")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]
