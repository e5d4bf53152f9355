"""Where a build finds its .debs when the mirror no longer has them: the next mirror of an
ordered list, a snapshot service's URL filled from the lock's dates, or a directory
written by ``compose vendor`` (an air-gapped build)."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.buildhelp import MAIN, MAIN_EXTRA, closed_port, make_archive, profile_text
from tests.conftest import fixed_env, isolated_env
from tests.fakearchive import FakeArchive

CLI = Callable[..., tuple[int, str, str]]
SNAPSHOT = "20230102T000000Z"
"""One day after the fake archive's Release Date (Sun, 01 Jan 2023 00:00:00 UTC)."""


@dataclass(frozen=True)
class Project:
    archive: FakeArchive
    url: str
    log: list[str]
    root: Path
    compose: CLI
    digest: str
    """Of the image built from the live mirror."""

    def env(self, tmp: Path) -> dict[str, str]:
        """A fresh environment with an empty cache."""
        return fixed_env(isolated_env(tmp / "env"))

    def run(self, env: dict[str, str], *args: str | Path) -> tuple[int, str, str]:
        rc, out, err = self.compose(env, *args, cwd=self.root)
        assert "Traceback" not in err, err
        return rc, out, err

    def packages(self) -> list[dict[str, object]]:
        data = tomllib.loads((self.root / "locks" / "img.lock.toml").read_text())
        return list(data["package"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, compose: CLI) -> Iterator[Project]:
    archive = make_archive(tmp_path_factory.mktemp("mirror"))
    root = tmp_path_factory.mktemp("project")
    (root / "profiles").mkdir()
    (root / "profiles" / "img.toml").write_text(profile_text("img", MAIN, extra=MAIN_EXTRA))
    env = fixed_env(isolated_env(tmp_path_factory.mktemp("env")))
    log: list[str] = []
    with archive.serve(log=log) as url:
        rc, _, err = compose(env, "lock", "profiles/img.toml", f"--mirror=debian={url}", cwd=root)
        assert rc == 0, err
        rc, out, err = compose(env, "build", "--locked", "profiles/img.toml", "-o", "out/live",
                               f"--mirror=debian={url}", cwd=root)
        assert rc == 0, err
        yield Project(archive, url, log, root, compose, out.split()[-1])


def _dead() -> str:
    return f"http://127.0.0.1:{closed_port()}/debian"


def test_vendor_copies_every_locked_deb_and_a_build_needs_nothing_else(
        project: Project, tmp_path: Path) -> None:
    env = project.env(tmp_path)
    rc, _, err = project.run(env, "vendor", "profiles/img.toml", tmp_path / "vendor",
                             f"--mirror=debian={project.url}")
    assert rc == 0, err
    packages = project.packages()
    assert re.search(rf"vendored img: {len(packages)} \.debs .* {len(packages)} copied", err), err
    for p in packages:
        copy = tmp_path / "vendor" / "debian" / str(p["filename"])
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == p["sha256"], copy
    assert {str(p.relative_to(tmp_path / "vendor")) for p in (tmp_path / "vendor").rglob("*.deb")} \
        == {f"debian/{p['filename']}" for p in packages}

    # Again: everything verifies, nothing is copied.
    rc, _, err = project.run(env, "vendor", "profiles/img.toml", tmp_path / "vendor",
                             f"--mirror=debian={project.url}")
    assert rc == 0 and ", 0 copied;" in err, err

    # A new machine: an empty cache, no mirror reachable, and the vendored copy alone.
    start = len(project.log)
    fresh = project.env(tmp_path / "other")
    rc, out, err = project.run(fresh | {"COMPOSE_MIRROR_DEBIAN": _dead()}, "build", "--locked",
                               "profiles/img.toml", "-o", tmp_path / "img",
                               "--vendored", tmp_path / "vendor", f"--mirror=debian={_dead()}")
    assert rc == 0, err
    assert out.split()[-1] == project.digest
    assert project.log[start:] == []


def test_a_vendored_deb_that_does_not_verify_stops_the_build(project: Project,
                                                             tmp_path: Path) -> None:
    env = project.env(tmp_path)
    rc, _, err = project.run(env, "vendor", "profiles/img.toml", tmp_path / "vendor",
                             f"--mirror=debian={project.url}")
    assert rc == 0, err
    victim = next(p for p in project.packages() if p["name"] == "tools")
    copy = tmp_path / "vendor" / "debian" / str(victim["filename"])
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    fresh = project.env(tmp_path / "other")
    rc, _, err = project.run(fresh, "build", "--locked", "profiles/img.toml", "-o", tmp_path / "img",
                             "--vendored", tmp_path / "vendor")
    assert rc == 2
    assert re.search(rf"^error: cannot get tools {victim['version']} amd64 "
                     rf"\(sha256 {victim['sha256']}\): .* has sha256 [0-9a-f]{{64}}, the signed "
                     rf"index says {victim['sha256']}", err, re.M), err
    assert not (tmp_path / "img").exists()
    # vendor again mends the copy
    rc, _, err = project.run(env, "vendor", "profiles/img.toml", tmp_path / "vendor",
                             f"--mirror=debian={project.url}")
    assert rc == 0 and ", 1 copied;" in err, err


def test_a_vendored_build_takes_the_lock_as_it_is(project: Project, tmp_path: Path) -> None:
    """Without --locked, build would lock a missing lock first, from the mirrors;
    --vendored means the lock's .debs and nothing else, so it refuses instead."""
    (tmp_path / "vendor").mkdir()
    missing = tmp_path / "none.lock.toml"
    rc, _, err = project.run(project.env(tmp_path), "build", "profiles/img.toml",
                             "--lock", missing, "--vendored", tmp_path / "vendor",
                             f"--mirror=debian={project.url}")
    assert rc == 1, err
    assert "missing: profile img has never been locked" in err
    assert not missing.exists()


def test_vendored_directory_must_exist(project: Project, tmp_path: Path) -> None:
    rc, _, err = project.run(project.env(tmp_path), "build", "--locked", "profiles/img.toml",
                             "--vendored", tmp_path / "nowhere")
    assert rc == 2
    assert "error: --vendored" in err and "no such directory" in err
    assert "hint: write it first with `compose vendor PROFILE DIR`" in err


def _snapshot_of(project: Project, tmp_path: Path, stamp: str) -> Path:
    """A file-system snapshot service: ``snap/STAMP`` is the archive as it was then."""
    snap = tmp_path / "snap"
    snap.mkdir()
    os.symlink(project.archive.directory, snap / stamp)
    return snap


def test_a_deb_the_mirror_dropped_comes_from_the_next_mirror_or_a_snapshot(
        project: Project, tmp_path: Path) -> None:
    """The first mirror lost every .deb (404, as when Debian drops superseded versions);
    the next URL is a snapshot template whose {date} the lock's Release Date fills."""
    gone = tmp_path / "gone"
    (gone / "pool").mkdir(parents=True)
    snap = _snapshot_of(project, tmp_path, SNAPSHOT)
    rc, out, err = project.run(project.env(tmp_path), "build", "--locked", "profiles/img.toml",
                               "-o", tmp_path / "img", f"--mirror=debian={gone.as_uri()}",
                               f"--mirror=debian={snap.as_uri()}/{{date}}")
    assert rc == 0, err
    assert out.split()[-1] == project.digest


def test_a_deb_no_mirror_has_is_named_with_its_version_and_sha256(
        project: Project, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    (gone / "pool").mkdir(parents=True)
    snap = _snapshot_of(project, tmp_path, "20230101T000000Z")  # a day too early
    rc, _, err = project.run(project.env(tmp_path), "build", "--locked", "profiles/img.toml",
                             "-o", tmp_path / "img", f"--mirror=debian={gone.as_uri()}",
                             f"--mirror=debian={snap.as_uri()}/{{date}}")
    assert rc == 2
    first = sorted(project.packages(), key=lambda p: (-int(str(p["size"])), str(p["name"])))
    names = {str(p["name"]) for p in first}
    (line,) = re.findall(r"^error: .*$", err, re.M)
    m = re.match(r"error: cannot get (\S+) (\S+) amd64 \(sha256 ([0-9a-f]{64})\): (.*)", line)
    assert m and m.group(1) in names, line
    p = next(p for p in first if p["name"] == m.group(1))
    assert (m.group(2), m.group(3)) == (p["version"], p["sha256"])
    assert f"{gone.as_uri()}/{p['filename']}: not found" in m.group(4)
    assert f"{snap.as_uri()}/{SNAPSHOT}/{p['filename']}: not found" in m.group(4)
    assert "hint: Debian's mirrors drop superseded versions" in err
    assert not (tmp_path / "img").exists()


def test_a_snapshot_template_alone_cannot_serve_a_lock(project: Project, tmp_path: Path) -> None:
    rc, _, err = project.run(project.env(tmp_path), "lock", "--update", "profiles/img.toml",
                             "-o", tmp_path / "x.lock.toml",
                             f"--mirror=debian={tmp_path.as_uri()}/{{date}}")
    assert rc == 2
    assert "every mirror configured for debian (--mirror) is a snapshot URL with {date}" in err
    assert not (tmp_path / "x.lock.toml").exists()


@pytest.mark.parametrize("url", ["http://h/{when}/debian", "http://h/{date/debian"])
def test_an_unknown_placeholder_is_refused(project: Project, tmp_path: Path, url: str) -> None:
    rc, _, err = project.run(project.env(tmp_path), "build", "--locked", "profiles/img.toml",
                             f"--mirror=debian={url}")
    assert rc == 2
    assert "holds a placeholder other than {date}" in err, err
