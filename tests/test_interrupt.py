"""Real ``compose`` processes killed with SIGKILL at many moments of their run, and
several run at once on one cache and one output path.

Whatever the moment of the kill, the cache holds only whole, verified entries, the
output is absent, the previous complete image or the new complete one, the lock is its
old bytes or its complete new bytes, and the next run succeeds with the digest of a
clean build and leaves nothing hidden beside what it wrote. Processes that share a
cache and an output path all succeed, and leave the same. Every check reads the files
with hashlib and json only, never with ``composer``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.buildhelp import INDEX, MAIN, MAIN_EXTRA, MANIFEST, make_archive, profile_text
from tests.conftest import fixed_env, isolated_env
from tests.fakearchive import FakeArchive

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HEX64 = re.compile(r"[0-9a-f]{64}")
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
TIMEOUT = 120

BUILD_FRACTIONS = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.82, 0.88, 0.93, 0.97,
                   1.0, 1.1, 1.25)
"""Where in a clean run's duration a build is killed: spread over it, denser towards
the end, where the layers and the layout are written, and a little past it (a run
takes longer or shorter from one time to the next)."""
WARM_FRACTIONS = (0.15, 0.3, 0.45, 0.6, 0.7, 0.8, 0.88, 0.95, 1.05, 1.2)
LOCK_FRACTIONS = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.93, 1.0, 1.1)
ARCHIVE_FRACTIONS = (0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 1.0, 1.2)
LAYOUT_FRACTIONS = (0.0, 0.03, 0.07, 0.12, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Where in the span from the appearance of a new layout's hidden directory to the end
of the run its writer is killed."""

FALLBACK_VAR = "TEST_COMPOSE_FALLBACK"
FALLBACK = """
import os, sys
os.__dict__.pop("O_TMPFILE", None)
import composer.atomic
composer.atomic._exchange = lambda a, b: False
from composer.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``compose`` as on a file system that has neither ``O_TMPFILE`` nor ``RENAME_EXCHANGE``
(some network and FUSE file systems): ``composer.atomic`` then names its files from the
start and puts a directory in place with two renames."""
STALE = 61.0
"""Seconds a killed writer's file is aged by, so that any sweep takes it for stale."""


# -- the world: a signed archive on loopback, a project, reference results -----------------


@dataclass
class World:
    archive: FakeArchive
    url: str
    project: Path
    env: dict[str, str]
    scratch: Path
    digest: str = ""
    layout: dict[str, bytes] = field(default_factory=dict)
    """The files of a clean build of ``img``, by path."""
    old_layout: Path = Path()
    """A complete layout of another image, there before a run that replaces it."""
    lock_bytes: bytes = b""
    old_lock_bytes: bytes = b""
    archive_bytes: bytes = b""
    old_archive: bytes = b""
    warm_cache: Path = Path()
    seconds: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    _n: int = 0

    @property
    def flags(self) -> list[str]:
        return [f"--mirror=debian={self.url}"]

    def fresh(self, what: str) -> Path:
        """A new, empty directory."""
        self._n += 1
        path = self.scratch / f"{what}-{self._n}"
        path.mkdir()
        return path

    def env_for(self, cache: Path) -> dict[str, str]:
        return self.env | {"COMPOSE_CACHE_DIR": str(cache)}

    def build_args(self, out: Path, *extra: str) -> list[str | Path]:
        return ["build", "--locked", "profiles/img.toml", "-o", out, *extra, *self.flags]

    def lock_args(self, out: Path) -> list[str | Path]:
        return ["lock", "profiles/img.toml", "-o", out, *self.flags]

    def spawn(self, args: Sequence[str | Path], env: dict[str, str]) -> subprocess.Popen[str]:
        """``compose *args`` started in the project, in a process group of its own; as on
        a file system without unnamed files and RENAME_EXCHANGE when ``env`` says so."""
        start = ["-c", FALLBACK] if env.get(FALLBACK_VAR) else ["-m", "composer"]
        return subprocess.Popen([sys.executable, *start, *map(str, args)],
                                env=env, cwd=self.project, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run(self, args: Sequence[str | Path], env: dict[str, str]) -> tuple[int, str, str]:
        """``compose *args`` to its end; never a traceback."""
        p = self.spawn(args, env)
        out, err = p.communicate(timeout=TIMEOUT)
        assert "Traceback" not in err, err
        return p.returncode, out, err

    def timed(self, args: Sequence[str | Path], env: dict[str, str]) -> float:
        started = time.monotonic()
        rc, _, err = self.run(args, env)
        assert rc == 0, err
        return time.monotonic() - started

    @staticmethod
    def wait_until(p: subprocess.Popen[str], when: Callable[[], bool]) -> None:
        """Until ``when()`` is true or ``p`` has ended."""
        deadline = time.monotonic() + TIMEOUT
        while p.poll() is None and not when():
            assert time.monotonic() < deadline
            time.sleep(0.0002)

    def killed(self, args: Sequence[str | Path], env: dict[str, str], after: float,
               when: Callable[[], bool] | None = None) -> int:
        """``compose *args`` killed (it and every process it started) with SIGKILL
        ``after`` seconds from its start, or from the moment ``when()`` is first true;
        its exit status (0 if it finished first)."""
        started = time.monotonic()
        p = self.spawn(args, env)
        if when is not None:
            self.wait_until(p, when)
            started = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, started + after - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # its own group: p.pid is unreaped until here
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode in (0, -signal.SIGKILL), err
        assert "Traceback" not in err, err
        return p.returncode

    def note(self, test: str, outcome: str) -> None:
        self.outcomes.setdefault(test, Counter())[outcome] += 1


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    archive = make_archive(tmp_path_factory.mktemp("mirror"))
    project = tmp_path_factory.mktemp("project")
    (project / "profiles").mkdir()
    (project / "profiles" / "img.toml").write_text(profile_text("img", MAIN, extra=MAIN_EXTRA))
    (project / "profiles" / "old.toml").write_text(profile_text("old", ["base-files"]))
    env = fixed_env(isolated_env(tmp_path_factory.mktemp("env")))
    env["TMPDIR"] = str(tmp_path_factory.mktemp("tmpdir"))
    with archive.serve() as url:
        w = World(archive, url, project, env, tmp_path_factory.mktemp("scratch"))
        warm = w.fresh("cache")
        for name in ("img", "old"):
            rc, _, err = w.run(["lock", f"profiles/{name}.toml", *w.flags], w.env_for(warm))
            assert rc == 0, err
        w.lock_bytes = (project / "locks" / "img.lock.toml").read_bytes()
        w.old_lock_bytes = (project / "locks" / "old.lock.toml").read_bytes()
        assert w.old_lock_bytes != w.lock_bytes

        # A clean build from an empty cache, timed twice; then from a warm cache, the
        # same (warmed first).
        cold = []
        for _ in range(2):
            out = w.fresh("ref") / "img"
            started = time.monotonic()
            rc, stdout, err = w.run(w.build_args(out), w.env_for(w.fresh("cache")))
            cold.append(time.monotonic() - started)
            assert rc == 0, err
            digest = stdout.strip().splitlines()[-1]
            assert DIGEST.fullmatch(digest)
            files = complete_layout(out)
            assert not w.digest or (digest, files) == (w.digest, w.layout)
            w.digest, w.layout = digest, files
        w.seconds["cold build"] = max(cold)
        rc, _, err = w.run(w.build_args(w.fresh("ref") / "img"), w.env_for(warm))
        assert rc == 0, err
        w.seconds["warm build"] = max(w.timed(w.build_args(w.fresh("ref") / "img"),
                                              w.env_for(warm)) for _ in range(2))
        w.warm_cache = warm

        w.old_layout = w.fresh("old") / "old"
        rc, _, err = w.run(["build", "--locked", "profiles/old.toml", "-o", w.old_layout,
                            *w.flags], w.env_for(warm))
        assert rc == 0, err
        assert complete_layout(w.old_layout) != w.layout

        tars = w.fresh("tars")
        w.seconds["docker-archive build"] = w.timed(
            w.build_args(tars / "img.tar", "--format", "docker-archive"), w.env_for(warm))
        w.archive_bytes = (tars / "img.tar").read_bytes()
        rc, _, err = w.run(["build", "--locked", "profiles/old.toml", "--format",
                            "docker-archive", "-o", tars / "old.tar", *w.flags], w.env_for(warm))
        assert rc == 0, err
        w.old_archive = (tars / "old.tar").read_bytes()
        assert w.old_archive != w.archive_bytes

        w.seconds["cold lock"] = w.timed(w.lock_args(w.fresh("lock") / "img.lock.toml"),
                                         w.env_for(w.fresh("cache")))
        yield w
    for test, seen in w.outcomes.items():
        print(f"\n{test}: {dict(sorted(seen.items()))}", end="")
    print("\nclean run seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in w.seconds.items()))
    print(f"left in TMPDIR by killed runs: {sorted(os.listdir(env['TMPDIR']))}")


# -- what must hold after a kill -----------------------------------------------------------


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def complete_layout(root: Path) -> dict[str, bytes]:
    """The files of the OCI layout at ``root``, after checking it is complete: its
    oci-layout, its index.json, and every blob index.json reaches, by size and sha256."""
    assert json.loads((root / "oci-layout").read_bytes()) == LAYOUT_VERSION
    todo = list(json.loads((root / "index.json").read_bytes())["manifests"])
    assert todo, f"{root}/index.json names nothing"
    while todo:
        d = todo.pop()
        algo, _, hexd = d["digest"].partition(":")
        assert algo == "sha256" and HEX64.fullmatch(hexd), d
        data = (root / "blobs" / "sha256" / hexd).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexd, f"{root}: blob {hexd} damaged"
        assert len(data) == d["size"], f"{root}: blob {hexd} is not {d['size']} bytes"
        if d["mediaType"] in (INDEX, MANIFEST):
            doc = json.loads(data)
            todo += doc.get("manifests", []) + doc.get("layers", [])
            todo += [doc["config"]] if "config" in doc else []
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def unlocked(path: Path) -> bool:
    """Whether no process holds ``path`` under an ``flock``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def dead_writers_files(folder: Path, beside: str = "") -> list[Path]:
    """What killed writers left in ``folder`` (beside the file ``beside``) when they had
    no unnamed files: hidden ``.new-*.part`` files that no one holds."""
    found = sorted(p for p in folder.iterdir() if p.name != beside)
    for p in found:
        assert re.fullmatch(r"\.new-\w+\.part", p.name), p
        assert p.is_file() and unlocked(p), p
    return found


def age(paths: Sequence[Path]) -> None:
    for p in paths:
        st = p.stat()
        os.utime(p, (st.st_atime - STALE, st.st_mtime - STALE))


def assert_cache_whole(root: Path, inrelease: bytes, killed_writers: bool = False) -> None:
    """Nothing partial in the cache: each blob hashes to its name, each derived entry
    ends with the sha256 of the rest, each state entry holds the whole InRelease, and
    tmp/ is empty (with ``killed_writers``, it may hold files killed writers left)."""
    if not root.exists():
        return
    assert {p.name for p in root.iterdir()} <= {"sha256", "derived", "state", "tmp"}
    for p in (root / "sha256").rglob("*"):
        if p.is_dir():
            assert re.fullmatch(r"[0-9a-f]{2}", p.name), p
            continue
        assert HEX64.fullmatch(p.name) and p.parent.name == p.name[:2], p
        assert sha256_file(p) == p.name, f"partial or damaged blob {p}"
    for p in (root / "derived").rglob("*"):
        if p.is_dir():
            continue
        assert re.fullmatch(r"[0-9a-f]{64}\.[a-z0-9.-]+", p.name), p
        assert p.parent.name == p.name[:2], p
        raw = p.read_bytes()
        assert len(raw) >= 32, f"partial derived entry {p}"
        assert hashlib.sha256(raw[:-32]).digest() == raw[-32:], f"partial derived entry {p}"
    for p in (root / "state").rglob("*"):
        assert p.is_file() and HEX64.fullmatch(p.name), p
        assert p.read_bytes().endswith(inrelease), f"partial state entry {p}"
    if (root / "tmp").exists():
        left = dead_writers_files(root / "tmp")
        assert killed_writers or left == [], f"a killed writer's files in tmp/: {left}"


def assert_some_killed(w: World, what: str) -> None:
    """A kill test that never caught a run before it ended would test nothing."""
    assert any(k.startswith("killed") for k in w.outcomes[what]), w.outcomes[what]


def layout_state(out: Path, w: World, had_old: bool) -> str:
    """``absent``, ``old`` (the layout there before, byte for byte) or ``new`` (the
    complete layout of a clean build); anything else fails."""
    if not out.exists():
        assert not had_old, f"{out}: the previous layout is gone"
        return "absent"
    files = complete_layout(out)
    if had_old and files == complete_layout(w.old_layout):
        return "old"
    assert files == w.layout, f"{out} is neither the old nor the new layout"
    return "new"


def file_state(path: Path, old: bytes | None, new: bytes) -> str:
    if not path.exists():
        assert old is None, f"{path}: the previous file is gone"
        return "absent"
    data = path.read_bytes()
    if old is not None and data == old:
        return "old"
    assert data == new, f"{path} is neither the old bytes nor the complete new ones"
    return "new"


def assert_alone(path: Path) -> None:
    """Nothing beside ``path`` in its directory: no hidden sibling of a writer."""
    assert sorted(os.listdir(path.parent)) == [path.name]


def inrelease(w: World) -> bytes:
    return w.archive.path("dists/trixie/InRelease").read_bytes()


def rebuild(w: World, out: Path, cache: Path, env: dict[str, str] | None = None) -> None:
    """The next run after a kill: it succeeds with the clean build's digest and layout,
    and leaves nothing hidden beside it nor partial in the cache."""
    rc, stdout, err = w.run(w.build_args(out), env or w.env_for(cache))
    assert rc == 0, err
    assert stdout.strip().splitlines()[-1] == w.digest
    assert complete_layout(out) == w.layout
    assert_alone(out)
    assert_cache_whole(cache, inrelease(w))


# -- SIGKILL at any moment -------------------------------------------------------------------


def test_a_cold_build_killed_at_any_moment(world: World) -> None:
    """From an empty cache (downloads, unpacking, layer, layout), killed at 15 moments;
    every other time over a complete layout of another image."""
    w, took = world, world.seconds["cold build"]
    for i, fraction in enumerate(BUILD_FRACTIONS):
        cache, out = w.fresh("cache"), w.fresh("out") / "img"
        had_old = i % 2 == 0
        if had_old:
            shutil.copytree(w.old_layout, out)
        rc = w.killed(w.build_args(out), w.env_for(cache), fraction * took)
        assert_cache_whole(cache, inrelease(w))
        state = layout_state(out, w, had_old)
        w.note("cold build killed", f"{'killed' if rc else 'finished'}, output {state}")
        rebuild(w, out, cache)
    assert w.outcomes["cold build killed"].total() == len(BUILD_FRACTIONS)
    assert_some_killed(w, "cold build killed")


def test_a_warm_build_killed_at_any_moment(world: World) -> None:
    """From a warm cache (the layer remembered: the run is mostly writing the layout),
    killed at 10 moments, always over a complete layout of another image; one cache and
    one output path for all of them."""
    w, took = world, world.seconds["warm build"]
    cache = w.warm_cache
    out = w.fresh("out") / "img"
    for fraction in WARM_FRACTIONS:
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(w.old_layout, out)
        rc = w.killed(w.build_args(out), w.env_for(cache), fraction * took)
        assert_cache_whole(cache, inrelease(w))
        state = layout_state(out, w, had_old=True)
        w.note("warm build killed", f"{'killed' if rc else 'finished'}, output {state}")
        rebuild(w, out, cache)
    assert_some_killed(w, "warm build killed")


def test_a_build_killed_while_writing_its_layout(world: World) -> None:
    """Killed between the moment the hidden directory of its new layout appears beside
    the output and the end of the run (blobs, index.json and oci-layout written and
    synced, the exchange, the old layout removed), at 12 points of that span measured on
    a clean run; every other time over a complete layout of another image."""
    w, env = world, world.env_for(world.warm_cache)

    def writing(folder: Path) -> Callable[[], bool]:
        return lambda: any(n.startswith(".img.") for n in os.listdir(folder))

    out = w.fresh("out") / "img"
    shutil.copytree(w.old_layout, out)
    p = w.spawn(w.build_args(out), env)
    w.wait_until(p, writing(out.parent))
    appeared = time.monotonic()
    _, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    span = time.monotonic() - appeared
    w.seconds["layout written"] = span

    for i, fraction in enumerate(LAYOUT_FRACTIONS):
        out = w.fresh("out") / "img"
        had_old = i % 2 == 0
        if had_old:
            shutil.copytree(w.old_layout, out)
        rc = w.killed(w.build_args(out), env, fraction * span, when=writing(out.parent))
        state = layout_state(out, w, had_old)
        w.note("build killed writing its layout", f"{'killed' if rc else 'finished'}, "
               f"output {state}")
        rebuild(w, out, w.warm_cache)
    assert_some_killed(w, "build killed writing its layout")


def test_a_docker_archive_build_killed_at_any_moment(world: World) -> None:
    """The archive file is absent, the old archive or the new one, never a part."""
    w, took = world, world.seconds["docker-archive build"]
    cache = w.warm_cache
    for i, fraction in enumerate(ARCHIVE_FRACTIONS):
        out = w.fresh("tar") / "img.tar"
        old = w.old_archive if i % 2 else None
        if old is not None:
            out.write_bytes(old)
        args = w.build_args(out, "--format", "docker-archive")
        rc = w.killed(args, w.env_for(cache), fraction * took)
        assert_cache_whole(cache, inrelease(w))
        state = file_state(out, old, w.archive_bytes)
        w.note("docker-archive build killed", f"{'killed' if rc else 'finished'}, output {state}")
        rc, stdout, err = w.run(args, w.env_for(cache))
        assert rc == 0, err
        assert stdout.strip().splitlines()[-1] == w.digest
        assert out.read_bytes() == w.archive_bytes
        assert_alone(out)
    assert_some_killed(w, "docker-archive build killed")


def test_a_lock_killed_at_any_moment(world: World) -> None:
    """``compose lock`` from an empty cache (InRelease, Packages, the scan) killed at 12
    moments, every other time over an older lock: the lock is its old bytes or the whole
    new ones, and the next ``lock`` writes the same lock as a clean one."""
    w, took = world, world.seconds["cold lock"]
    for i, fraction in enumerate(LOCK_FRACTIONS):
        cache, path = w.fresh("cache"), w.fresh("locks") / "img.lock.toml"
        old = w.old_lock_bytes if i % 2 == 0 else None
        if old is not None:
            path.write_bytes(old)
        rc = w.killed(w.lock_args(path), w.env_for(cache), fraction * took)
        assert_cache_whole(cache, inrelease(w))
        state = file_state(path, old, w.lock_bytes)
        w.note("lock killed", f"{'killed' if rc else 'finished'}, lock {state}")
        rc, _, err = w.run(w.lock_args(path), w.env_for(cache))
        assert rc == 0, err
        assert path.read_bytes() == w.lock_bytes
        assert_alone(path)
        assert_cache_whole(cache, inrelease(w))
    assert_some_killed(w, "lock killed")


def test_without_unnamed_files_a_killed_lock_leaves_nothing_for_long(world: World) -> None:
    """Without ``O_TMPFILE`` a new file has a hidden name while it is written. A writer
    killed (SIGKILL, by itself, so that the moment is certain) in the middle of writing
    beside the lock leaves the lock as it was, and the next ``lock`` removes the killed
    writer's file once it is stale (no process holds it, and it is older than a writer
    takes to lock its file)."""
    w = world
    killer = (
        "import os, signal, sys\n"
        "os.__dict__.pop('O_TMPFILE', None)\n"
        "from pathlib import Path\n"
        "from composer import atomic\n"
        "f = atomic.NewFile(Path(sys.argv[1]))\n"
        "f.file.write(b'half a lock')\n"
        "f.file.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for i in range(2):
        path = w.fresh("locks") / "img.lock.toml"
        old = w.old_lock_bytes if i % 2 == 0 else None
        if old is not None:
            path.write_bytes(old)
        r = subprocess.run([sys.executable, "-c", killer, str(path.parent)], capture_output=True)
        assert r.returncode == -signal.SIGKILL, r.stderr
        assert file_state(path, old, w.lock_bytes) == ("old" if old else "absent")
        left = dead_writers_files(path.parent, beside=path.name)
        assert len(left) == 1, left
        age(left)
        env = w.env_for(w.fresh("cache")) | {FALLBACK_VAR: "1"}
        rc, _, err = w.run(w.lock_args(path), env)
        assert rc == 0, err
        assert path.read_bytes() == w.lock_bytes
        assert_alone(path)


def test_without_unnamed_files_or_exchange_a_killed_build(world: World) -> None:
    """Without ``O_TMPFILE`` and ``RENAME_EXCHANGE``, a cold build killed at 6 moments:
    the cache's blobs and derived entries are whole, what the killed writer left in
    tmp/ is no one's, and the next run removes it; the output is the old or the new
    layout (or, between the two renames, absent with the old one beside it), and the
    next run leaves only the new one."""
    w, took = world, world.seconds["cold build"]
    for i, fraction in enumerate((0.2, 0.45, 0.65, 0.8, 0.9, 1.0)):
        cache, out = w.fresh("cache"), w.fresh("out") / "img"
        env = w.env_for(cache) | {FALLBACK_VAR: "1"}
        had_old = i % 2 == 0
        if had_old:
            shutil.copytree(w.old_layout, out)
        rc = w.killed(w.build_args(out), env, fraction * took)
        assert_cache_whole(cache, inrelease(w), killed_writers=True)
        left = dead_writers_files(cache / "tmp") if (cache / "tmp").exists() else []
        if not out.exists() and had_old:
            (aside,) = out.parent.glob(".img.*.new.old")
            assert complete_layout(aside) == complete_layout(w.old_layout)
            state = "absent, the old one aside"
        else:
            state = layout_state(out, w, had_old)
        w.note("build without unnamed files or exchange killed",
               f"{'killed' if rc else 'finished'}, output {state}, {len(left)} in tmp/")
        age(left)
        rebuild(w, out, cache, env)
    assert_some_killed(w, "build without unnamed files or exchange killed")


# -- processes at the same time ----------------------------------------------------------------


def start_together(w: World, runs: Sequence[Sequence[str | Path]],
                   env: dict[str, str]) -> list[tuple[int, str, str]]:
    procs = [w.spawn(args, env) for args in runs]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        assert "Traceback" not in err, err
        results.append((p.returncode, out, err))
    return results


@pytest.mark.parametrize(("count", "fallback"), [(2, False), (3, False), (3, True)])
def test_builds_at_once_share_a_cache_and_an_output(world: World, count: int,
                                                    fallback: bool) -> None:
    """``count`` cold builds started together on one cache and one output path, three
    rounds (the first into nothing, the others over another image's layout): all
    succeed with the clean digest, and the output, the cache and the folder are whole;
    also without unnamed files and RENAME_EXCHANGE."""
    w = world
    out = w.fresh("out") / "img"
    for round_ in range(3):
        cache = w.fresh("cache")
        env = w.env_for(cache) | ({FALLBACK_VAR: "1"} if fallback else {})
        if round_:
            shutil.rmtree(out)
            shutil.copytree(w.old_layout, out)
        results = start_together(w, [w.build_args(out)] * count, env)
        for rc, stdout, err in results:
            assert rc == 0, err
            assert stdout.strip().splitlines()[-1] == w.digest
        assert complete_layout(out) == w.layout
        assert_alone(out)
        assert_cache_whole(cache, inrelease(w))


def test_a_build_killed_while_another_runs(world: World) -> None:
    """Two cold builds on one cache and one output; one is killed at three moments: the
    other succeeds all the same, and the next run leaves nothing behind."""
    w, took = world, world.seconds["cold build"]
    for fraction in (0.3, 0.6, 0.9):
        cache, out = w.fresh("cache"), w.fresh("out") / "img"
        env = w.env_for(cache)
        survivor = w.spawn(w.build_args(out), env)
        rc = w.killed(w.build_args(out), env, fraction * took)
        stdout, err = survivor.communicate(timeout=TIMEOUT)
        assert survivor.returncode == 0, err
        assert stdout.strip().splitlines()[-1] == w.digest
        w.note("one of two builds killed", "killed" if rc else "finished")
        assert complete_layout(out) == w.layout
        assert_cache_whole(cache, inrelease(w))
        rebuild(w, out, cache)
    assert_some_killed(w, "one of two builds killed")


def test_locks_at_once_write_one_lock(world: World) -> None:
    """Three ``compose lock`` of one profile into one path from one empty cache, three
    rounds (into nothing, over an older lock, over the same lock): all succeed, and the
    lock is the clean one."""
    w = world
    path = w.fresh("locks") / "img.lock.toml"
    for before in (None, w.old_lock_bytes, w.lock_bytes):
        cache = w.fresh("cache")
        if before is not None:
            path.write_bytes(before)
        for rc, _, err in start_together(w, [w.lock_args(path)] * 3, w.env_for(cache)):
            assert rc == 0, err
        assert path.read_bytes() == w.lock_bytes
        assert_alone(path)
        assert_cache_whole(cache, inrelease(w))


def test_a_build_and_a_verify_share_a_cache(world: World) -> None:
    """``build`` and ``verify --expect`` (which rebuilds every byte) from one empty
    cache at once: both succeed and agree."""
    w = world
    for _ in range(2):
        cache, out = w.fresh("cache"), w.fresh("out") / "img"
        verify = ["verify", "profiles/img.toml", "--expect", w.digest, *w.flags]
        (rc, stdout, err), (vrc, vout, verr) = start_together(
            w, [w.build_args(out), verify], w.env_for(cache))
        assert rc == 0, err
        assert stdout.strip().splitlines()[-1] == w.digest
        assert vrc == 0, verr
        assert w.digest in vout + verr
        assert complete_layout(out) == w.layout
        assert_alone(out)
        assert_cache_whole(cache, inrelease(w))
