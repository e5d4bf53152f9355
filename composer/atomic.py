"""Files and directories that appear whole or not at all, and locks between processes.

A new file is written unnamed (``O_TMPFILE``) in the directory it will live in, so a
process killed while writing leaves nothing behind; only once it is complete and synced
is it given a name, and renamed over its destination. Where the file system has no
unnamed files, a hidden temporary name is used instead, held under an ``flock`` so that
:func:`sweep` can tell a live writer's file from one a killed process left.

A directory (an OCI layout) is written under a hidden sibling name, also held under an
``flock``, and exchanged with the one in place in a single ``renameat2`` call, so that the
destination is at every moment either the old directory or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from glob import escape as glob_escape
from pathlib import Path
from typing import IO

STALE_AFTER = 60.0
"""Seconds after which an unlocked temporary name is taken for a killed writer's."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PROC_FD = Path("/proc/self/fd")


def _link_unnamed(f: IO[bytes], name: Path) -> None:
    """Give an ``O_TMPFILE`` file a name: ``linkat`` of its ``/proc/self/fd`` entry,
    following that link to the file."""
    proc = os.open(PROC_FD, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(f.fileno()), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


class NewFile:
    """A file being written in ``directory``; :meth:`commit` gives it its name."""

    def __init__(self, directory: Path, mode: int = 0o644, durable: bool = True) -> None:
        self.directory = directory
        self.mode = mode
        self.durable = durable
        self._name: Path | None = None
        fd = -1
        o_tmpfile = getattr(os, "O_TMPFILE", 0)
        if o_tmpfile and PROC_FD.is_dir():  # without /proc it could not be named
            try:
                fd = os.open(directory, o_tmpfile | os.O_RDWR | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        if fd < 0:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".new-", suffix=".part")
            self._name = Path(name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.file: IO[bytes] = os.fdopen(fd, "w+b")

    def commit(self, dest: Path) -> Path:
        """Sync the file and rename it to ``dest`` (replacing what is there)."""
        self.file.flush()
        os.fchmod(self.file.fileno(), self.mode)
        os.fsync(self.file.fileno())
        if self._name is None:
            # Named only now, complete, and renamed at once.
            name = self.directory / f".new-{secrets.token_hex(8)}.part"
            _link_unnamed(self.file, name)
            self._name = name
        os.replace(self._name, dest)
        self._name = None
        if self.durable:
            fsync_dir(dest.parent)
        return dest

    def close(self) -> None:
        self.file.close()
        if self._name is not None:
            with contextlib.suppress(FileNotFoundError):
                self._name.unlink()
            self._name = None


@contextlib.contextmanager
def new_file(directory: Path, mode: int = 0o644, durable: bool = True) -> Iterator[NewFile]:
    """A :class:`NewFile` in ``directory``, removed unless committed. Without
    ``durable``, the rename is not synced to disk: for what can be made again."""
    f = NewFile(directory, mode, durable)
    try:
        yield f
    finally:
        f.close()


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all; the stale files killed writers left beside it
    (hidden names, where the file system has no unnamed files) are removed first."""
    sweep(path.parent, ".new-", (".part",))
    with new_file(path.parent, mode) as f:
        f.file.write(data)
        f.commit(path)


@contextlib.contextmanager
def locked_dir(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a directory, held for the ``with`` block."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unlocked(path: Path) -> bool:
    """Whether nothing holds ``path`` (a file or directory) under an ``flock``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def sweep(directory: Path, prefix: str, suffixes: tuple[str, ...],
          min_age: float = STALE_AFTER) -> list[Path]:
    """Remove what killed writers left in ``directory``: entries named ``prefix…suffix``
    that no live process holds under an ``flock`` and that are older than ``min_age``
    seconds (a writer takes its lock just after creating its file). Returns them."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    now = time.time()
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffixes)):
            continue
        path = directory / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime < min_age or not _unlocked(path):
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


RENAME_EXCHANGE = 2


AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (``renameat2`` with ``RENAME_EXCHANGE``); False when
    the kernel or file system cannot."""
    import ctypes  # only when an output is replaced

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class NewDir:
    """A directory being written beside ``dest``, held under an ``flock`` until
    :meth:`commit` puts it in place; removed if never committed."""

    SUFFIX = ".new"

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        parent = dest.parent
        with locked_dir(parent):
            # Under the directory's lock no writer is between creating and locking its
            # directory, or between the two renames of the fallback: what is unlocked
            # is a killed writer's, whatever its age.
            if not dest.exists() and not dest.is_symlink():
                for aside in parent.glob(f".{glob_escape(dest.name)}.*{self.SUFFIX}.old"):
                    os.rename(aside, dest)  # the fallback was killed between its renames
                    break
            sweep(parent, f".{dest.name}.", (self.SUFFIX, self.SUFFIX + ".old"), min_age=0)
            self.path = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=self.SUFFIX,
                                              dir=parent))
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def commit(self) -> None:
        """Put the directory at ``dest``: exchanged with what is there in one step, and
        the old one removed; or renamed into place when nothing is there."""
        parent = self.dest.parent
        with locked_dir(parent):
            fsync_dir(self.path)
            if self.dest.exists() or self.dest.is_symlink():
                if not _exchange(self.path, self.dest):
                    self._two_renames()
            else:
                os.rename(self.path, self.dest)
            fsync_dir(parent)
            # self.path now holds the old directory (or nothing)

    def _two_renames(self) -> None:
        """The fallback: the old directory goes aside, the new one in, and back on failure."""
        aside = self.path.with_name(self.path.name + ".old")
        os.rename(self.dest, aside)
        try:
            os.rename(self.path, self.dest)
        except BaseException:
            os.rename(aside, self.dest)
            raise
        os.rename(aside, self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


@contextlib.contextmanager
def new_dir(dest: Path) -> Iterator[NewDir]:
    d = NewDir(dest)
    try:
        yield d
    finally:
        d.close()
