"""Network faults between compose and its mirrors, through the real CLI (a subprocess):
a :class:`~tests.faultproxy.FaultProxy` in front of a signed fake archive resets
connections, answers 5xx, stalls, trickles, truncates, sends endless bodies and redirects
where it should not, on InRelease, on a Packages index and on a .deb.

What must hold: a passing fault is retried (the request counts show it) and the command
gives exactly what a clean run gives; a lasting one fails with exit code 2 and one
``error:`` line naming the URL (and for a .deb its package, version and sha256), no
traceback, and nothing written: no lock or image, an existing one left byte for byte,
no temporary file beside it and none in the cache's ``tmp/``. No body is read beyond the
size the signed index gives (nor inflated by a Content-Encoding), content a redirect
leads to is refused unless its sha256 is the signed one, a redirect loop ends, and a
second mirror is used when the first fails.

``COMPOSE_HTTP_TIMEOUT`` is 1 second here: a stall costs three timeouts and the two
backoffs (0.5 s, 1 s) between the three attempts. The runs that mostly wait are started
together (see :func:`run_together`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.buildhelp import RELEASE_DATE, Layout, profile_text
from tests.conftest import fixed_env, isolated_env
from tests.fakearchive import FakeArchive
from tests.faultproxy import (
    ENDLESS_LIMIT,
    Body,
    Endless,
    Fault,
    FaultProxy,
    Redirect,
    Reset,
    Stall,
    Status,
    Trickle,
    Truncate,
)

CLI = Callable[..., tuple[int, str, str]]
TIMEOUT = "1"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$", re.M)

INRELEASE = "/debian/dists/trixie/InRelease"
PACKAGES = "/debian/dists/trixie/main/binary-amd64/Packages.xz"

BOUND = 64 << 20
"""Body bytes a refused endless response may have had sent: what compose read, plus what
the kernel's socket buffers took before it hung up."""


def _profile(name: str, include: list[str]) -> str:
    return profile_text(name, include, extra='\n[image]\ntag = "current"\n')


def _archive(root: Path) -> FakeArchive:
    d = FakeArchive(root, "debian")
    d.add("trixie", "libc6", "2.41-1", source="glibc", multi_arch="same",
          files={"usr/lib/x86_64-linux-gnu/libc.so.6": "libc\n",
                 "usr/share/doc/libc6/copyright": "License: LGPL-2.1\n"})
    d.add("trixie", "tools", "1.0-1", depends="libc6 (>= 2.36)",
          files={"usr/bin/tool": "#!/bin/sh\necho tool\n",
                 "usr/share/doc/tools/copyright": "License: Expat\n"},
          modes={"usr/bin/tool": 0o755})
    d.add("trixie", "more", "2.0-1",
          files={"usr/share/more/data.txt": "more\n" * 50,
                 "usr/share/doc/more/copyright": "License: Expat\n"})
    d.publish("trixie", architectures=("amd64",), date=RELEASE_DATE)
    return d


@dataclass
class World:
    archive: FakeArchive
    upstream: str
    project: Path
    compose: CLI
    locks: dict[str, bytes]
    """Profile name -> the lock a clean run wrote."""
    digests: dict[str, str]
    images: dict[str, Path]
    """Profile name -> the image a clean build of that lock wrote."""

    def deb(self, name: str) -> str:
        (rec,) = [p for p in self.archive.packages() if p.name == name]
        return f"/debian/{rec.filename}"

    def what(self, name: str) -> str:
        """How compose names the package in messages (a pattern)."""
        (rec,) = [p for p in self.archive.packages() if p.name == name]
        return re.escape(f"{rec.name} {rec.version} {rec.architecture}")

    def sha256(self, name: str) -> str:
        (rec,) = [p for p in self.archive.packages() if p.name == name]
        return rec.sha256

    @property
    def by_hash(self) -> str:
        data = self.archive.path("dists/trixie/main/binary-amd64/Packages.xz").read_bytes()
        return f"/debian/dists/trixie/main/binary-amd64/by-hash/SHA256/{hashlib.sha256(data).hexdigest()}"

    def path(self, key: str) -> str:
        """The request path of ``InRelease``, ``Packages`` (.xz), ``by-hash`` (its copy)
        or ``deb:NAME``."""
        if key.startswith("deb:"):
            return self.deb(key.removeprefix("deb:"))
        return {"InRelease": INRELEASE, "Packages": PACKAGES, "by-hash": self.by_hash}[key]

    def run(self, env: dict[str, str], *args: str | Path) -> tuple[int, str, str]:
        rc, out, err = self.compose(env, *args, cwd=self.project)
        assert "Traceback" not in err, err
        return rc, out, err


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, compose: CLI) -> Iterator[World]:
    archive = _archive(tmp_path_factory.mktemp("mirror"))
    project = tmp_path_factory.mktemp("project")
    (project / "profiles").mkdir()
    # img: three .debs fetched together; one: a single .deb, for the builds that fail
    # (see test_a_failed_download_is_not_repeated_by_each_reader).
    (project / "profiles" / "img.toml").write_text(_profile("img", ["tools", "more"]))
    (project / "profiles" / "one.toml").write_text(_profile("one", ["more"]))
    env = fresh_env(tmp_path_factory.mktemp("env"))
    images = tmp_path_factory.mktemp("images")
    with archive.serve() as upstream:
        w = World(archive, upstream, project, compose, {}, {}, {})
        for name in ("img", "one"):
            rc, _, err = w.run(env, "lock", f"profiles/{name}.toml", f"--mirror=debian={upstream}")
            assert rc == 0, err
            w.locks[name] = (project / "locks" / f"{name}.lock.toml").read_bytes()
            rc, out, err = w.run(env, "build", "--locked", f"profiles/{name}.toml",
                                 "-o", images / name, f"--mirror=debian={upstream}")
            assert rc == 0, err
            w.digests[name] = out.strip().splitlines()[-1]
            w.images[name] = images / name
        yield w


def fresh_env(root: Path) -> dict[str, str]:
    """An isolated environment, its cache empty, with the short timeout."""
    return fixed_env(isolated_env(root)) | {"COMPOSE_HTTP_TIMEOUT": TIMEOUT}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return fresh_env(tmp_path / "env")


@pytest.fixture
def proxy(world: World) -> Iterator[FaultProxy]:
    with FaultProxy(world.upstream) as p:
        yield p


def mirror(p: FaultProxy | str) -> str:
    return f"--mirror=debian={p.url('debian') if isinstance(p, FaultProxy) else p}"


def error_line(rc: int, err: str, *patterns: str) -> str:
    """Exit 2, no traceback, one ``error:`` line matching every pattern, and a hint."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines: list[str] = re.findall(r"^error: .*$", err, re.M)
    assert len(lines) == 1, err
    line = lines[0]
    assert re.search(r"^hint: \S", err, re.M), err
    for p in patterns:
        assert re.search(p, line), f"{p!r} not in:\n{line}"
    print(line)
    return line


def listing(directory: Path) -> dict[str, bytes | None]:
    """Everything under ``directory``, hidden entries too, by relative path: a file's
    bytes, or None for a directory."""
    if not directory.exists():
        return {}
    return {p.relative_to(directory).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(directory.rglob("*"))}


def assert_cache_clean(env: dict[str, str]) -> None:
    """No download left in the cache's tmp/, and only verified content under sha256/."""
    cache = Path(env["COMPOSE_CACHE_DIR"])
    tmp = cache / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), list(tmp.iterdir())
    for blob in (cache / "sha256").rglob("*") if (cache / "sha256").exists() else []:
        if blob.is_file():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob


def url_of(p: FaultProxy, path: str) -> str:
    return re.escape(p.base_url + path)


# -- runs -------------------------------------------------------------------------------


def lock(world: World, env: dict[str, str], out: Path, *mirrors: str,
         update: bool = False) -> tuple[int, str, str]:
    return world.run(env, "lock", "profiles/img.toml", "-o", out, *mirrors,
                     *(["--update"] if update else []))


def build(world: World, env: dict[str, str], name: str, out: Path,
          *mirrors: str) -> tuple[int, str, str]:
    return world.run(env, "build", "--locked", f"profiles/{name}.toml", "-o", out, *mirrors)


def assert_same_image(world: World, name: str, out: str, image: Path) -> None:
    assert out.strip().splitlines()[-1] == world.digests[name]
    assert Layout(image).files() == Layout(world.images[name]).files()


# -- faults that pass or last, on InRelease, Packages and a .deb ---------------------------
#
# These runs mostly wait (backoffs, timeouts, trickles), so each group is started at once,
# from a module fixture, and each test checks the outcome of its own run.


@dataclass(frozen=True)
class Case:
    command: str
    """``lock`` (of img, to a new path or, with ``existing``, with --update over a copy of
    the clean lock) or ``build`` (of ``profile``, to a new or ``existing`` image)."""
    faults: tuple[tuple[str, Fault, int | None], ...]
    """(path key, fault, times) for :meth:`FaultProxy.on`; see :meth:`World.path`."""
    profile: str = "img"
    existing: bool = False


@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    seconds: float
    counts: dict[str, int]
    base_url: str
    before: dict[str, bytes | None]
    """The output's directory before the run, and after it."""
    after: dict[str, bytes | None]
    target: Path
    env: dict[str, str]

    def count(self, path: str) -> int:
        return self.counts.get(path, 0)

    def url(self, path: str) -> str:
        return re.escape(self.base_url + path)


def execute(world: World, root: Path, case: Case) -> Outcome:
    env = fresh_env(root / "env")
    out_dir = root / "out"
    out_dir.mkdir(parents=True)
    with FaultProxy(world.upstream) as p:
        for key, fault, times in case.faults:
            p.on(world.path(key), fault, times)
        if case.command == "lock":
            target = out_dir / f"{case.profile}.lock.toml"
            if case.existing:
                target.write_bytes(world.locks[case.profile])
            args: list[str | Path] = ["lock", f"profiles/{case.profile}.toml", "-o", target,
                                      *(["--update"] if case.existing else [])]
        else:
            target = out_dir / case.profile
            if case.existing:
                shutil.copytree(world.images[case.profile], target)
            args = ["build", "--locked", f"profiles/{case.profile}.toml", "-o", target]
        before = listing(out_dir)
        start = time.monotonic()
        try:
            rc, out, err = world.run(env, *args, mirror(p))
        except subprocess.TimeoutExpired as exc:  # reported by the case's test, not here
            rc, out, err = -1, "", f"compose still ran after {exc.timeout} s"
        seconds = time.monotonic() - start
        assert p.idle()
        return Outcome(rc, out, err, seconds, p.counts(), p.base_url, before,
                       listing(out_dir), target, env)


WORKERS = 10
"""Runs at once: enough that the waits overlap, few enough that two CPUs keep up."""


def run_together(world: World, factory: pytest.TempPathFactory,
                 cases: dict[str, Case]) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(execute, world, factory.mktemp("case"), case)
                   for name, case in cases.items()}
        return {name: f.result() for name, f in futures.items()}


# Faults that pass: retried at the same URL, and the same result as a clean run.

PASSING: dict[str, tuple[tuple[Fault, int], ...]] = {
    "reset": ((Reset(), 1),),
    "reset-mid-body": ((Reset(mid_body=True), 1),),
    "503-twice": ((Status(503), 2),),
    "502-then-429": ((Status(502), 1), (Status(429), 1)),
    "truncated": ((Truncate(), 1),),
}
PASSING_ON = {"InRelease": ("lock", "InRelease"), "Packages": ("lock", "by-hash"),
              "deb": ("build", "deb:tools")}
"""Where a passing fault is put: the Packages index is fetched by hash first."""

PASSING_CASES = {
    f"{target}-{name}": Case(command, tuple((key, f, n) for f, n in faults))
    for target, (command, key) in PASSING_ON.items() for name, faults in PASSING.items()}


@pytest.fixture(scope="module")
def passing(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_together(world, tmp_path_factory, PASSING_CASES)


@pytest.mark.parametrize("case", PASSING_CASES)
def test_a_passing_fault_is_retried(world: World, passing: dict[str, Outcome],
                                    case: str) -> None:
    o = passing[case]
    assert o.rc == 0, o.err
    failures = sum(n for _, _, n in PASSING_CASES[case].faults if n)
    ((key, _, _), *_) = PASSING_CASES[case].faults
    path = world.path(key)
    assert o.count(path) == failures + 1
    if case.startswith("deb-"):
        assert_same_image(world, "img", o.out, o.target)
        assert o.count(world.path("deb:libc6")) == o.count(world.path("deb:more")) == 1
    else:
        assert o.target.read_bytes() == world.locks["img"]
        assert o.count(world.path("Packages")) == 0, "not given up for the next URL"
    assert_cache_clean(o.env)


# Faults that last: a clean failure after three attempts, nothing written.

LASTING_CASES: dict[str, Case] = {
    "InRelease-reset": Case("lock", (("InRelease", Reset(), None),)),
    "InRelease-503": Case("lock", (("InRelease", Status(503), None),), existing=True),
    "InRelease-stall": Case("lock", (("InRelease", Stall(), None),)),
    "InRelease-truncated": Case("lock", (("InRelease", Truncate(), None),), existing=True),
    # A mirror without by-hash files: the next URL, Packages.xz, always fails.
    "Packages-trickle": Case("lock", (("by-hash", Status(404), None),
                                      ("Packages", Trickle(), None)), existing=True),
    "Packages-short": Case("lock", (("by-hash", Status(404), None),
                                    ("Packages", Truncate(declared=False), None))),
    "Packages-reset-mid-body": Case("lock", (("by-hash", Status(404), None),
                                             ("Packages", Reset(mid_body=True), None))),
    "deb-reset": Case("build", (("deb:more", Reset(), None),), "one"),
    "deb-reset-mid-body": Case("build", (("deb:more", Reset(mid_body=True), None),), "one"),
    "deb-503": Case("build", (("deb:more", Status(503), None),), "one", existing=True),
    "deb-stall": Case("build", (("deb:more", Stall(), None),), "one"),
    "deb-stall-after-headers": Case("build", (("deb:more", Stall(headers=True), None),),
                                    "one", existing=True),
    "deb-trickle": Case("build", (("deb:more", Trickle(), None),), "one"),
    "deb-truncated": Case("build", (("deb:more", Truncate(), None),), "one"),
    "deb-short": Case("build", (("deb:more", Truncate(declared=False), None),), "one"),
}
"""The builds are of ``one``, a single .deb (see
test_a_failed_download_is_not_repeated_by_each_reader)."""

REASONS = {
    "reset": r"ReadError: \[Errno 104\] Connection reset by peer",
    "reset-mid-body": r"ReadError: \[Errno 104\] Connection reset by peer",
    "503": r"HTTP 503",
    "stall": r"ReadTimeout: timed out",
    "stall-after-headers": r"ReadTimeout: timed out",
    "trickle": r"too slow: \d+ bytes in the time allowed \(stalled\?\)",
    "truncated": r"RemoteProtocolError: peer closed connection without sending complete "
                 r"message body \(received \d+ bytes, expected \d+\)",
    "short": r"the body ended after \d+ of \d+ bytes",
}


@pytest.fixture(scope="module")
def lasting(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_together(world, tmp_path_factory, LASTING_CASES)


@pytest.mark.parametrize("case", LASTING_CASES)
def test_a_lasting_fault_fails_cleanly(world: World, lasting: dict[str, Outcome],
                                       case: str) -> None:
    o = lasting[case]
    c = LASTING_CASES[case]
    key = c.faults[-1][0]
    path = world.path(key)
    reason = REASONS[case.split("-", 1)[1]]
    patterns = [o.url(path) + ": " + reason + r" \(tried 3 times\)"]
    if key.startswith("deb:"):
        name = key.removeprefix("deb:")
        patterns.append(rf"^error: cannot get {world.what(name)} "
                        rf"\(sha256 {world.sha256(name)}\): ")
    elif key == "Packages":
        patterns += [r"^error: cannot get debian trixie main/binary-amd64/Packages\.xz "
                     r"\(sha256 [0-9a-f]{64}\): ",
                     o.url(world.path("by-hash")) + r": not found \(HTTP 404\); "]
    error_line(o.rc, o.err, *patterns)
    assert not DIGEST.search(o.out)
    assert o.count(path) == 3
    assert o.after == o.before, "nothing written, and what was there kept byte for byte"
    assert bool(o.before) == c.existing
    assert_cache_clean(o.env)
    assert o.seconds < 20, f"{o.seconds:.1f} s"


def test_a_failed_download_is_not_repeated_by_each_reader(world: World, env: dict[str, str],
                                                          proxy: FaultProxy,
                                                          tmp_path: Path) -> None:
    """A .deb the mirror lacks is asked for once (a 404 is not retried), however many
    workers read the .debs: each repeat of a lasting fault costs its three attempts."""
    path = world.deb("tools")
    proxy.on(path, Status(404))
    rc, out, err = build(world, env, "img", tmp_path / "img", mirror(proxy), "-j", "4")
    error_line(rc, err, "cannot get " + world.what("tools"),
               url_of(proxy, path) + r": not found \(HTTP 404\)")
    assert not DIGEST.search(out)
    assert proxy.count(path) == 1, f"{proxy.count(path)} requests for one 404"


# -- bodies without end, or larger than signed -------------------------------------------

ENDLESS = {
    "chunked": Endless("chunked"),
    "close-delimited": Endless("close"),
    "declared-1GiB": Endless("length"),
}


@pytest.mark.parametrize("case", ENDLESS)
def test_an_endless_deb_is_cut_off_at_the_signed_size(world: World, env: dict[str, str],
                                                      proxy: FaultProxy, tmp_path: Path,
                                                      case: str) -> None:
    path = world.deb("more")
    proxy.on(path, ENDLESS[case])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, out, err = build(world, env, "one", out_dir / "one", mirror(proxy))
    size = len(world.archive.path(path.removeprefix("/debian/")).read_bytes())
    said = (rf" has {ENDLESS_LIMIT} bytes \(its Content-Length\), the signed index says {size}"
            if case == "declared-1GiB"
            else rf" is larger than the {size} bytes the signed index gives")
    error_line(rc, err, "cannot get " + world.what("more"),
               rf"\(sha256 {world.sha256('more')}\)", url_of(proxy, path) + said)
    assert proxy.idle(), "the proxy is still sending"
    assert proxy.count(path) == 1, "content larger than signed is not asked for again"
    assert proxy.sent(path) < BOUND, proxy.sent(path)
    assert not DIGEST.search(out)
    assert listing(out_dir) == {}
    assert_cache_clean(env)


def test_an_endless_packages_index_is_cut_off(world: World, env: dict[str, str],
                                              proxy: FaultProxy, tmp_path: Path) -> None:
    for path in (world.by_hash, PACKAGES):
        proxy.on(path, Endless("chunked"))
    out = tmp_path / "out" / "img.lock.toml"
    rc, _, err = lock(world, env, out, mirror(proxy))
    size = len(world.archive.path("dists/trixie/main/binary-amd64/Packages.xz").read_bytes())
    line = error_line(rc, err, r"debian trixie main/binary-amd64/Packages\.xz")
    for path in (world.by_hash, PACKAGES):
        assert re.search(url_of(proxy, path) + rf" is larger than the {size} bytes", line)
        assert proxy.count(path) == 1
    assert proxy.idle()
    assert proxy.sent(world.by_hash) + proxy.sent(PACKAGES) < 2 * BOUND
    assert not out.parent.exists()
    assert_cache_clean(env)


def test_an_endless_inrelease_is_cut_off_at_its_limit(world: World, env: dict[str, str],
                                                      proxy: FaultProxy, tmp_path: Path) -> None:
    """InRelease has no signed size: it is bounded by a fixed limit (64 MiB)."""
    proxy.on(INRELEASE, Endless("close"))
    out = tmp_path / "out" / "img.lock.toml"
    rc, _, err = lock(world, env, out, mirror(proxy))
    error_line(rc, err, url_of(proxy, INRELEASE) + r" is larger than 67108864 bytes")
    assert proxy.idle()
    assert proxy.count(INRELEASE) == 1
    assert proxy.sent(INRELEASE) < (64 << 20) + BOUND
    assert not out.parent.exists()
    assert_cache_clean(env)


def test_a_content_encoding_is_not_decoded(world: World, env: dict[str, str],
                                           proxy: FaultProxy, tmp_path: Path) -> None:
    """32 KB of zstd that stand for 1 GiB of zeros, sent as a Content-Encoding: compose
    takes the bytes as they come (and refuses them), never inflating them."""
    frame = zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))
    bomb = frame * 16
    assert len(bomb) < 64 << 10
    proxy.on(INRELEASE, Body(bomb, headers=(("Content-Encoding", "zstd"),)))
    out = tmp_path / "out" / "img.lock.toml"
    # compose's own peak memory: it is started by a small launcher, since a child forked
    # from this (large) test process starts with this process's size as its peak
    launcher = ("import resource, subprocess, sys\n"
                "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
                "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", launcher, sys.executable, "-m", "composer", "lock",
                        "profiles/img.toml", "-o", str(out), mirror(proxy)],
                       cwd=world.project, env=env, capture_output=True, text=True, timeout=120)
    error_line(r.returncode, r.stderr,
               r"InRelease of debian trixie at " + re.escape(proxy.url("debian")))
    # a decoded bomb makes it 2 GB
    assert int(r.stdout) < 512 << 10
    assert not out.parent.exists()
    assert_cache_clean(env)


# -- redirects ---------------------------------------------------------------------------


def _other_content(data: bytes) -> bytes:
    """As many bytes as ``data``, but not the same."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])


@pytest.mark.parametrize("where", ["another-host", "another-path"])
def test_a_redirect_to_other_content_is_refused_by_its_hash(
        world: World, env: dict[str, str], proxy: FaultProxy, tmp_path: Path,
        where: str) -> None:
    path = world.deb("more")
    other = _other_content(world.archive.path(path.removeprefix("/debian/")).read_bytes())
    with FaultProxy() as elsewhere:
        if where == "another-host":
            elsewhere.on("/mirror/more.deb", Body(other))
            proxy.on(path, Redirect(elsewhere.url("mirror/more.deb"), 302))
        else:
            proxy.on("/debian/pool/other/more.deb", Body(other))
            proxy.on(path, Redirect("/debian/pool/other/more.deb", 301))
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        rc, out, err = build(world, env, "one", out_dir / "one", mirror(proxy))
        served = elsewhere.count("/mirror/more.deb") + proxy.count("/debian/pool/other/more.deb")
    bad = hashlib.sha256(other).hexdigest()
    error_line(rc, err, "cannot get " + world.what("more"),
               url_of(proxy, path) + rf" has sha256 {bad}, the signed index says "
               + world.sha256("more"))
    assert proxy.count(path) == 1 and served == 1, "other content is not asked for again"
    assert not DIGEST.search(out)
    assert listing(out_dir) == {}
    assert_cache_clean(env)


def test_a_redirected_index_with_other_content_is_refused(
        world: World, env: dict[str, str], proxy: FaultProxy, tmp_path: Path) -> None:
    data = world.archive.path("dists/trixie/main/binary-amd64/Packages.xz").read_bytes()
    with FaultProxy() as elsewhere:
        elsewhere.on("/Packages.xz", Body(_other_content(data)))
        for path in (world.by_hash, PACKAGES):
            proxy.on(path, Redirect(elsewhere.url("Packages.xz")))
        out = tmp_path / "out" / "img.lock.toml"
        rc, _, err = lock(world, env, out, mirror(proxy))
        assert elsewhere.count("/Packages.xz") == 2
    line = error_line(rc, err, r"debian trixie main/binary-amd64/Packages\.xz", r"sha256")
    for path in (world.by_hash, PACKAGES):
        assert re.search(url_of(proxy, path) + r" has sha256 [0-9a-f]{64}, the signed index says",
                         line)
    assert not out.parent.exists()
    assert_cache_clean(env)


def test_a_redirect_to_the_right_content_elsewhere_is_followed(
        world: World, env: dict[str, str], proxy: FaultProxy, tmp_path: Path) -> None:
    """The counterpart of the refusals above: where the bytes come from does not matter,
    only that they are the signed ones."""
    path = world.deb("more")
    proxy.on(path, Redirect(world.upstream + path.removeprefix("/debian"), 307))
    rc, out, err = build(world, env, "one", tmp_path / "one", mirror(proxy))
    assert rc == 0, err
    assert_same_image(world, "one", out, tmp_path / "one")
    assert proxy.count(path) == 1


def test_a_redirect_loop_on_inrelease_fails_cleanly(world: World, env: dict[str, str],
                                                    proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.on(INRELEASE, Redirect(INRELEASE))
    out = tmp_path / "out" / "img.lock.toml"
    rc, _, err = lock(world, env, out, mirror(proxy))
    error_line(rc, err, url_of(proxy, INRELEASE) + r": more than \d+ redirects")
    assert 2 <= proxy.count(INRELEASE) <= 50
    assert not out.parent.exists()
    assert_cache_clean(env)


def test_a_redirect_loop_on_a_deb_fails_cleanly(world: World, env: dict[str, str],
                                                proxy: FaultProxy, tmp_path: Path) -> None:
    path = world.deb("more")
    proxy.on(path, Redirect("/debian/elsewhere/more.deb"))
    proxy.on("/debian/elsewhere/more.deb", Redirect(path))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, out, err = build(world, env, "one", out_dir / "one", mirror(proxy))
    error_line(rc, err, "cannot get " + world.what("more"), rf"\(sha256 {world.sha256('more')}\)",
               url_of(proxy, path) + r": more than \d+ redirects")
    assert 2 <= proxy.count(path) <= 50
    assert not DIGEST.search(out)
    assert listing(out_dir) == {}
    assert_cache_clean(env)


# -- two mirrors for one archive ---------------------------------------------------------


def test_lock_falls_over_to_the_second_mirror(world: World, env: dict[str, str],
                                              proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.on(INRELEASE, Status(503))
    with FaultProxy(world.upstream) as good:
        out = tmp_path / "out" / "img.lock.toml"
        rc, _, err = lock(world, env, out, mirror(proxy), mirror(good))
        assert rc == 0, err
        assert out.read_bytes() == world.locks["img"]
        assert proxy.count(INRELEASE) == 3
        assert proxy.log == [INRELEASE] * 3, "nothing else is asked of the failed mirror"
        assert good.count(INRELEASE) == 1
        assert good.count(world.by_hash) == 1


def test_build_falls_over_to_the_second_mirror(world: World, env: dict[str, str],
                                               proxy: FaultProxy, tmp_path: Path) -> None:
    debs = [world.deb(n) for n in ("tools", "libc6", "more")]
    for path in debs:
        proxy.on(path, Status(404))
    with FaultProxy(world.upstream) as good:
        rc, out, err = build(world, env, "img", tmp_path / "img", mirror(proxy), mirror(good))
        assert rc == 0, err
        assert_same_image(world, "img", out, tmp_path / "img")
        assert all(proxy.count(p) == 1 and good.count(p) == 1 for p in debs)
        # In the other order the second mirror is never asked.
        env2 = fresh_env(tmp_path / "env2")
        rc, out, err = build(world, env2, "img", tmp_path / "img2", mirror(good), mirror(proxy))
        assert rc == 0, err
        assert all(proxy.count(p) == 1 and good.count(p) == 2 for p in debs)
    assert_cache_clean(env)
    assert_cache_clean(env2)


def test_a_redirect_from_https_to_http_is_refused() -> None:
    """The hook every response passes through: an https answer that redirects to plain
    http is refused before it is followed (as apt refuses it); https to https is fine."""
    import httpx

    from composer.archive.http import _no_downgrade
    from composer.errors import TrustError

    def answer(url: str, location: str) -> httpx.Response:
        return httpx.Response(302, headers={"location": location},
                              request=httpx.Request("GET", url))

    with pytest.raises(TrustError, match=r"https://m\.example/debian/x\.deb redirects to "
                                         r"http://other\.example/x\.deb, leaving https"):
        _no_downgrade(answer("https://m.example/debian/x.deb", "http://other.example/x.deb"))
    _no_downgrade(answer("https://m.example/debian/x.deb", "https://other.example/x.deb"))
    _no_downgrade(answer("https://m.example/debian/x.deb", "/elsewhere/x.deb"))
    _no_downgrade(answer("http://m.example/debian/x.deb", "http://other.example/x.deb"))
    # and every client compose makes runs it on every response
    from composer.archive.http import Http

    client = Http("compose-test")
    try:
        assert _no_downgrade in client.client.event_hooks["response"]
    finally:
        client.close()
