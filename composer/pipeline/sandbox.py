"""Running an image's own programs on its own tree: the one place compose executes code
from a package, and only to do what the package's maintainer scripts would have done
(byte-compiling the standard library with the image's interpreter) or to ask busybox
which applets it has.

The tree is written to a private temporary directory and the program runs there as its
root, inside bubblewrap (never a plain chroot, which would be no sandbox), with an empty
environment apart from a fixed locale, time zone and hash seed, so that nothing of
the host reaches its output. A foreign architecture runs under the host's static
qemu-user, copied into the tree for the run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from composer.errors import ComposeError
from composer.image.tree import DIR, FILE, HARDLINK, SYMLINK, Entry

QEMU = {"arm64": "aarch64", "armhf": "arm", "armel": "arm", "i386": "i386",
        "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
        "mips64el": "mips64el", "loong64": "loongarch64", "amd64": "x86_64"}
NATIVE = {"x86_64": ("amd64", "i386"), "aarch64": ("arm64", "armhf", "armel"),
          "ppc64le": ("ppc64el",), "s390x": ("s390x",), "riscv64": ("riscv64",)}
FIXED_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONHASHSEED": "0",
             "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


class SandboxError(ComposeError):
    """An image's program could not be run, or failed."""


def native(arch: str) -> bool:
    return arch in NATIVE.get(platform.machine(), ())


def _inside(base: Path, dest: Path) -> None:
    """Refuse a destination whose directory, symlinks resolved, is not below ``base``."""
    parent = dest.parent.resolve()
    if parent != base and base not in parent.parents:
        raise SandboxError(f"{dest} would be written outside the tree (through a symlink)")


def _write(dest: Path, data: bytes, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(dest, (mode & 0o777) | 0o600)


def materialize(entries: Mapping[str, Entry], root: Path,
                skip: Sequence[str] = ("usr/share/",)) -> None:
    """Write the tree below ``root`` (owned by the caller, writable): enough to run its
    programs. Paths under ``skip`` are left out; ownership and setuid bits are not kept.
    Nothing is written through a symlink: every file's directory must be a real
    directory below ``root``. Hard links are written last, as copies: their targets may
    sort after them or be skipped."""
    base = root.resolve()
    links = []
    for path in sorted(entries):
        if path.startswith(tuple(skip)):
            continue
        e = entries[path]
        dest = root / path
        if e.kind == HARDLINK:
            links.append((dest, entries[e.target]))
            continue
        _inside(base, dest)
        if e.kind == DIR:
            if dest.is_symlink():
                raise SandboxError(f"/{path} is both a directory and a symlink")
            dest.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif e.kind == FILE:
            _write(dest, e.data, e.mode)
        elif e.kind == SYMLINK:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(e.target, dest)
    for dest, target in links:
        _inside(base, dest)
        _write(dest, target.data, target.mode)


@contextlib.contextmanager
def tree_on_disk(entries: Mapping[str, Entry], arch: str) -> Iterator[Path]:
    """A temporary directory holding the tree (and qemu-user when ``arch`` is foreign)."""
    with tempfile.TemporaryDirectory(prefix="compose-run-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        materialize(entries, root)
        if not native(arch):
            qemu = shutil.which(f"qemu-{QEMU.get(arch, arch)}-static")
            if qemu is None:
                raise SandboxError(
                    f"cannot run the image's {arch} programs on this {platform.machine()} host",
                    "install qemu-user-static, or set [python] compile = false (and no "
                    "[busybox] applets) in the profile")
            shutil.copy2(qemu, root / ".qemu")
        yield root


def _bwrap(root: Path, env: Mapping[str, str], cwd: str, extra: Sequence[str],
           argv: Sequence[str], what: str, hint: str) -> list[str]:
    """bubblewrap's command line: ``root`` as ``/``, fresh /proc and /dev, every namespace
    unshared (no network), only ``env`` as the environment."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        # No fallback to chroot: as root it would run a package's code with the host's
        # network and privileges, which is no sandbox.
        raise SandboxError(f"cannot run {what}: bubblewrap is not installed",
                           f"install bubblewrap (apt-get install bubblewrap){hint}")
    cmd = [bwrap, "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
           "--unshare-all", *extra, "--die-with-parent", "--clearenv", "--chdir", cwd]
    for k, v in sorted(env.items()):
        cmd += ["--setenv", k, v]
    return cmd + list(argv)


_NAMESPACES_HINT = "is user namespace support available? bubblewrap needs it when not run as root"


def sealed(root: Path, argv: Sequence[str], env: Mapping[str, str], cwd: str, log: Path,
           user: tuple[int, int], timeout: float) -> None:
    """Run a build: ``root`` (writable, the caller's) as ``/``, no network (every
    namespace unshared), only ``env`` as the environment, as ``user`` (uid, gid), host
    name ``compose``, a private ``/dev/shm``; its output goes to ``log``. SandboxError
    when it fails, with the end of the log."""
    uid, gid = user
    cmd = _bwrap(root, env, cwd, ["--tmpfs", "/dev/shm", "--unshare-user", "--uid", str(uid),
                                  "--gid", str(gid), "--hostname", "compose", "--new-session"],
                 argv, "a sealed build", "")
    with open(log, "wb") as out:
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"the build did not finish in {timeout:.0f} s; its log: {log}",
                               "set COMPOSE_BUILD_TIMEOUT (seconds) for a slower machine") from exc
        except OSError as exc:
            raise SandboxError(f"cannot start the sealed build: {exc}") from exc
    if done.returncode != 0:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 3000))
            tail = f.read().decode(errors="replace").strip()
        raise SandboxError(f"the build failed (exit {done.returncode}); the end of its log "
                           f"({log}):\n{tail}",
                           _NAMESPACES_HINT if "bwrap:" in tail else None)


def run(root: Path, arch: str, argv: Sequence[str], stdin: bytes = b"",
        timeout: float = 600) -> bytes:
    """Run ``argv`` (paths inside the tree) with ``root`` as ``/``; its stdout, or
    SandboxError with its stderr."""
    inner = list(argv) if native(arch) else ["/.qemu", *argv]
    cmd = _bwrap(root, FIXED_ENV, "/", [], inner, "the image's programs",
                 ", or set [python] compile = false (and no [busybox] applets) in the profile")
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"cannot run {argv[0]} of the image: {exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-2000:]
        raise SandboxError(f"{argv[0]} of the image failed (exit {done.returncode}): {err}",
                           _NAMESPACES_HINT)
    return done.stdout
