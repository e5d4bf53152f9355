"""``compose lock``, ``why`` and ``graph`` through the real CLI (a subprocess), against
signed fake archives served over loopback HTTP. Nothing here reads the host's apt
sources or the user's config: every run names its mirrors.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from composer import profile as profile_mod
from tests.buildhelp import closed_port
from tests.conftest import isolated_env
from tests.fakearchive import DEFAULT_DATE, OTHER_KEY, TEST_KEY, FakeArchive

ARCHES = ("amd64", "arm64")
KEYRING = TEST_KEY.public_binary_path
# What the profile below locks to, per architecture: a root (app), its real dependency
# (libc6, newer in the security suite), a virtual package's provider (postfix for
# mail-transport-agent), the first alternative of an OR-group (libfast1), and an arch:all
# root (tzdata). debconf is wanted by app but excluded.
LOCKED = {"app", "libc6", "postfix", "libfast1", "tzdata"}


def build(root: Path, debian: dict[str, object] | None = None,
          security: dict[str, object] | None = None) -> tuple[FakeArchive, FakeArchive]:
    """The two archives, published with the given ``publish`` keyword arguments."""
    d = FakeArchive(root, "debian")
    s = FakeArchive(root, "debian-security")
    for a in ARCHES:
        d.add("trixie", "libc6", "2.41-1", a, source="glibc", multi_arch="same")
        s.add("trixie-security", "libc6", "2.41-1+deb13u1", a, source="glibc", multi_arch="same")
        d.add("trixie", "app", "1.0-1", a, source="appsrc (1.0-0)",
              depends=["libc6 (>= 2.36)", "mail-transport-agent", "libfast1 | libslow1",
                       "debconf (>= 1.5)"])
        d.add("trixie", "postfix", "3.10-1", a, provides="mail-transport-agent",
              depends="libc6")
        d.add("trixie", "libfast1", "1.0-1", a)
        d.add("trixie", "libslow1", "1.0-1", a)
        d.add("trixie", "debconf", "1.5.91", a)
        # needs-ghost -> mid -> ghost-lib, which no source has
        d.add("trixie", "needs-ghost", "1.0-1", a, depends="mid")
        d.add("trixie", "mid", "2.0-1", a, depends="ghost-lib (>= 2)")
        # The last paragraph of each Packages file, which ends in a single newline
        # (see test_last_paragraph_of_packages).
        d.add("trixie", "zz-last", "1", a)
        s.add("trixie-security", "zz-last", "1", a)
    d.add("trixie", "tzdata", "2025b-1", "all")
    d.publish("trixie", **(debian or {}))  # type: ignore[arg-type]
    s.publish("trixie-security", **(security or {}))  # type: ignore[arg-type]
    return d, s


def profile_text(include: list[str], exclude: list[str] | None = None, name: str = "t") -> str:
    return f"""\
name = "{name}"
architectures = ["amd64", "arm64"]

[[source]]
archive = "debian"
suite = "trixie"
keyring = "{KEYRING}"

[[source]]
archive = "debian-security"
suite = "trixie-security"
keyring = "{KEYRING}"

[packages]
include = {json.dumps(include)}
exclude = {json.dumps(["debconf"] if exclude is None else exclude)}
"""


def make_project(root: Path, **profiles: list[str]) -> Path:
    """``root/profiles/NAME.toml`` for each NAME=include list."""
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    for name, include in profiles.items():
        (root / "profiles" / f"{name}.toml").write_text(profile_text(include, name=name))
    return root


def mirror_flags(urls: dict[str, str]) -> list[str]:
    return [f"--mirror=debian={urls['debian']}",
            f"--mirror=debian-security={urls['debian-security']}"]


def assert_error(rc: int, err: str, *patterns: str) -> None:
    """Exit 2, no traceback, one ``error:`` line (after any progress lines) whose message
    (with its continuation lines) matches every pattern, and a ``hint:``."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert len(re.findall(r"^error: ", err, re.M)) == 1, err
    message = err[err.index("error: "):]
    assert re.search(r"^hint: \S", message, re.M), err
    for p in patterns:
        assert re.search(p, message), f"{p!r} not in:\n{err}"


@dataclass
class Served:
    debian: FakeArchive
    security: FakeArchive
    urls: dict[str, str]
    log: list[str]
    project: Path

    @property
    def flags(self) -> list[str]:
        return mirror_flags(self.urls)

    @property
    def profile(self) -> Path:
        return self.project / "profiles" / "t.toml"

    @property
    def lock(self) -> Path:
        return self.project / "locks" / "t.lock.toml"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("archive")
    d, s = build(root)
    log: list[str] = []
    project = make_project(tmp_path_factory.mktemp("project"), t=["app", "tzdata"])
    with FakeArchive.serve_many([d, s], log=log) as urls:
        yield Served(d, s, dict(urls), log, project)


@pytest.fixture(scope="module")
def locked(served: Served, module_env: dict[str, str],
           compose: Callable[..., tuple[int, str, str]]) -> tuple[str, str]:
    """The good lock at the project's default path; (stdout, stderr) of ``lock --json``."""
    rc, out, err = compose(module_env, "lock", "profiles/t.toml", "--json", *served.flags,
                           cwd=served.project)
    assert rc == 0, err
    return out, err


# -- the good path ------------------------------------------------------------------------


def test_lock_writes_the_lock(served: Served, locked: tuple[str, str]) -> None:
    out, err = locked
    assert "Traceback" not in err
    assert f"wrote {served.lock}" in err
    data = tomllib.loads(served.lock.read_text())
    assert data["version"] == 1
    assert data["profile"] == "t"
    assert data["architectures"] == list(ARCHES)
    assert data["fingerprint"] == profile_mod.load(served.profile).fingerprint()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", data["fingerprint"])

    assert [(s["archive"], s["suite"]) for s in data["source"]] == [
        ("debian", "trixie"), ("debian-security", "trixie-security")]
    for src, arch in zip(data["source"], (served.debian, served.security), strict=True):
        release = arch.path(f"dists/{src['suite']}/Release").read_bytes()
        assert src["codename"] == src["suite"]
        assert src["date"] == DEFAULT_DATE
        assert src["release-sha256"] == hashlib.sha256(release).hexdigest()
        assert src["signed-by"] == [TEST_KEY.fingerprint]
        assert "valid-until" not in src

    pkgs = {(p["architecture"], p["name"]): p for p in data["package"]}
    assert len(pkgs) == len(data["package"]), "one [[package]] per package and architecture"
    assert set(pkgs) == {(a, n) for a in ARCHES for n in LOCKED}
    for (arch, name), p in pkgs.items():
        archive = served.security if p["archive"] == "debian-security" else served.debian
        assert p["filename"].startswith("pool/")
        deb = archive.path(p["filename"]).read_bytes()
        assert p["size"] == len(deb), (arch, name)
        assert p["sha256"] == hashlib.sha256(deb).hexdigest(), (arch, name)
        assert p["filename"].endswith(f"_{p.get('deb-architecture', arch)}.deb")
        assert isinstance(p["required-by"], list)
        assert p["source"] and p["source-version"]
    for arch in ARCHES:
        assert pkgs[arch, "app"]["root"] is True and pkgs[arch, "tzdata"]["root"] is True
        assert "root" not in pkgs[arch, "libc6"]
        assert (pkgs[arch, "app"]["source"], pkgs[arch, "app"]["source-version"]) == ("appsrc", "1.0-0")
        libc = pkgs[arch, "libc6"]
        assert (libc["version"], libc["archive"], libc["suite"]) == (
            "2.41-1+deb13u1", "debian-security", "trixie-security")
        assert (libc["source"], libc["source-version"]) == ("glibc", "2.41-1+deb13u1")
        assert libc["required-by"] == ["app", "postfix"]
        assert pkgs[arch, "postfix"]["required-by"] == ["app"]
        assert pkgs[arch, "libfast1"]["required-by"] == ["app"]
        tz = pkgs[arch, "tzdata"]
        assert tz["deb-architecture"] == "all" and tz["architecture"] == arch
        assert tz["filename"] == "pool/main/t/tzdata/tzdata_2025b-1_all.deb"
        assert "deb-architecture" not in pkgs[arch, "app"]

    assert data["excluded"] == [
        {"architecture": a, "name": "debconf", "wanted-by": ["app"]} for a in ARCHES]
    assert data["provider"] == [
        {"architecture": a, "virtual": "mail-transport-agent", "provider": "postfix",
         "wanted-by": ["app"]} for a in ARCHES]

    report = json.loads(out)
    assert report == [{"profile": "t", "lock": str(served.lock), "changed": True,
                       "packages": {"amd64": len(LOCKED), "arm64": len(LOCKED)},
                       "fingerprint": data["fingerprint"]}]


def test_lock_twice_is_byte_identical(served: Served, locked: tuple[str, str],
                                      module_env: dict[str, str],
                                      compose: Callable[..., tuple[int, str, str]]) -> None:
    before = served.lock.read_bytes()
    rc, out, err = compose(module_env, "lock", "--update", served.profile, *served.flags, "--json")
    assert rc == 0, err
    assert served.lock.read_bytes() == before
    assert f"unchanged {served.lock}" in err
    assert json.loads(out)[0]["changed"] is False


def test_plain_lock_keeps_a_fresh_lock_without_the_network(
        served: Served, locked: tuple[str, str], module_env: dict[str, str],
        compose: Callable[..., tuple[int, str, str]]) -> None:
    before = served.lock.read_bytes()
    dead = f"http://127.0.0.1:{closed_port()}"
    rc, out, err = compose(module_env, "lock", served.profile, f"--mirror=debian={dead}",
                           f"--mirror=debian-security={dead}", "--json")
    assert rc == 0, err
    assert served.lock.read_bytes() == before
    assert "fresh" in err and "kept" in err and "--update" in err
    assert json.loads(out)[0]["changed"] is False
    # A changed profile is locked again, as before.
    text = served.profile.read_text()
    try:
        served.profile.write_text(text.replace(
            "[packages]", '[packages]\nprefer = { mail-transport-agent = "postfix" }', 1))
        rc, _, err = compose(module_env, "lock", served.profile, *served.flags)
        assert rc == 0, err
        assert f"wrote {served.lock}" in err
        assert served.lock.read_bytes() != before
    finally:
        served.profile.write_text(text)
        served.lock.write_bytes(before)


def test_warm_run_fetches_only_inrelease(served: Served, locked: tuple[str, str],
                                         module_env: dict[str, str],
                                         compose: Callable[..., tuple[int, str, str]],
                                         tmp_path: Path) -> None:
    served.log.clear()
    rc, _, err = compose(module_env, "lock", served.profile, "-o", tmp_path / "y.toml", *served.flags)
    assert rc == 0, err
    assert sorted(served.log) == ["/debian-security/dists/trixie-security/InRelease",
                                  "/debian/dists/trixie/InRelease"]
    assert (tmp_path / "y.toml").read_bytes() == served.lock.read_bytes()
    # The cache is where $COMPOSE_CACHE_DIR says, not at the XDG or HOME default.
    assert any((Path(module_env["COMPOSE_CACHE_DIR"]) / "sha256").rglob("*"))
    assert not (Path(module_env["XDG_CACHE_HOME"]) / "compose").exists()
    assert not (Path(module_env["HOME"]) / ".cache").exists()


def test_cold_run(served: Served, locked: tuple[str, str], env: dict[str, str],
                  compose: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """An empty cache at the default place ($XDG_CACHE_HOME/compose): the Packages are
    fetched by hash, no .deb is, and the lock has the same bytes."""
    env = {k: v for k, v in env.items() if k != "COMPOSE_CACHE_DIR"}
    served.log.clear()
    rc, _, err = compose(env, "lock", served.profile, "-o", tmp_path / "x.toml", *served.flags)
    assert rc == 0, err
    assert (tmp_path / "x.toml").read_bytes() == served.lock.read_bytes()
    fetched = [p for p in served.log if not p.endswith("/InRelease")]
    assert len(fetched) == 4, served.log  # one Packages per suite and architecture
    assert all("/by-hash/SHA256/" in p for p in fetched), fetched
    assert not any(p.endswith(".deb") for p in served.log)
    assert any((Path(env["XDG_CACHE_HOME"]) / "compose" / "sha256").rglob("*"))
    assert not (Path(env["HOME"]) / ".cache").exists()


# -- --check ------------------------------------------------------------------------------


@pytest.fixture
def project_copy(served: Served, locked: tuple[str, str], tmp_path: Path) -> Path:
    return Path(shutil.copytree(served.project, tmp_path / "project"))


def test_check_fresh(project_copy: Path, env: dict[str, str],
                     compose: Callable[..., tuple[int, str, str]]) -> None:
    # No mirror is given: --check never touches the network.
    rc, out, err = compose(env, "lock", "--check", "profiles/t.toml", cwd=project_copy)
    assert rc == 0, err
    assert "t.lock.toml: fresh" in out + err


def test_check_json_is_json(project_copy: Path, env: dict[str, str],
                            compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = compose(env, "lock", "--check", "--json", cwd=project_copy)
    assert rc == 0, err
    assert [r["fresh"] for r in json.loads(out)] == [True]


def test_check_stale_after_profile_edit(project_copy: Path, env: dict[str, str],
                                        compose: Callable[..., tuple[int, str, str]]) -> None:
    lock = project_copy / "locks" / "t.lock.toml"
    before = lock.read_bytes()
    prof = project_copy / "profiles" / "t.toml"
    prof.write_text(profile_text(["app", "tzdata", "libslow1"]))
    rc, _, err = compose(env, "lock", "--check", "profiles/t.toml", cwd=project_copy)
    assert rc == 1, err
    assert "stale" in err and "Traceback" not in err
    assert "hint: run `compose lock" in err
    assert lock.read_bytes() == before


def test_check_ignores_formatting_of_the_profile(project_copy: Path, env: dict[str, str],
                                                 compose: Callable[..., tuple[int, str, str]]) -> None:
    prof = project_copy / "profiles" / "t.toml"
    prof.write_text("# a comment\n\n" + prof.read_text().replace(" = ", "   =   "))
    rc, _, err = compose(env, "lock", "--check", prof, cwd=project_copy)
    assert rc == 0, err


def test_check_missing_lock(project_copy: Path, env: dict[str, str],
                            compose: Callable[..., tuple[int, str, str]]) -> None:
    (project_copy / "locks" / "t.lock.toml").unlink()
    rc, _, err = compose(env, "lock", "--check", "profiles/t.toml", cwd=project_copy)
    assert rc == 1, err
    assert "missing" in err and "Traceback" not in err
    assert not (project_copy / "locks" / "t.lock.toml").exists()


# -- verification: every failure is exit 2, names the problem, and writes nothing -------


def _inrelease(d: FakeArchive) -> Path:
    return d.path("dists/trixie/InRelease")


def _tamper_hash_line(d: FakeArchive, s: FakeArchive) -> None:
    p = _inrelease(d)
    text = p.read_text()
    m = re.search(r"^ ([0-9a-f]{64}) ", text.split("SHA256:", 1)[1], re.M)
    assert m
    old = m.group(1)
    p.write_text(text.replace(old, ("0" if old[0] != "0" else "1") + old[1:], 1))


def _append_after_signature(d: FakeArchive, s: FakeArchive) -> None:
    p = _inrelease(d)
    p.write_bytes(p.read_bytes() + b"\nSuite: trixie\nCodename: trixie\n")


def _prepend_before_begin(d: FakeArchive, s: FakeArchive) -> None:
    p = _inrelease(d)
    p.write_bytes(b"Origin: Debian\n\n" + p.read_bytes())


def _replace_index(change: Callable[[bytes], bytes]) -> Callable[[FakeArchive, FakeArchive], None]:
    def tamper(d: FakeArchive, s: FakeArchive) -> None:
        p = d.path("dists/trixie/main/binary-amd64/Packages.xz")
        good = p.read_bytes()
        by_hash = p.parent / "by-hash" / "SHA256" / hashlib.sha256(good).hexdigest()
        assert by_hash.is_file()
        bad = change(good)
        assert bad != good
        p.write_bytes(bad)
        by_hash.write_bytes(bad)

    return tamper


def _other_packages(good: bytes) -> bytes:
    """A well-formed Packages.xz, but not the one the Release lists."""
    plain = lzma.decompress(good).replace(b"Package: libfast1", b"Package: evilfast")
    return lzma.compress(plain, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)


def _flip_byte(good: bytes) -> bytes:
    """Same size, other content."""
    i = len(good) // 2
    return good[:i] + bytes([good[i] ^ 0x01]) + good[i + 1:]


def _wrong_suite(d: FakeArchive, s: FakeArchive) -> None:
    d.publish("bookworm")
    shutil.copy(d.path("dists/bookworm/InRelease"), _inrelease(d))


FAILURES = {
    "tampered-inrelease": ({}, _tamper_hash_line, [r"BAD signature", r"InRelease of debian trixie"]),
    "unknown-key": ({"key": OTHER_KEY}, None,
                    [r"cannot verify InRelease of debian trixie", r"not in the keyring"]),
    "text-after-signature": ({}, _append_after_signature,
                             [r"InRelease of debian trixie .* is not a single clearsigned message"]),
    "text-before-begin": ({}, _prepend_before_begin,
                          [r"InRelease of debian trixie .* is not a single clearsigned message"]),
    "packages-other-index": ({}, _replace_index(_other_packages),
                             [r"cannot get debian trixie main/binary-amd64/Packages\.xz",
                              r"the signed index (says|gives)"]),
    "packages-other-content": ({}, _replace_index(_flip_byte),
                               [r"cannot get debian trixie main/binary-amd64/Packages\.xz",
                                r"has sha256 [0-9a-f]{64}, the signed index says [0-9a-f]{64}"]),
    "packages-truncated": ({}, _replace_index(lambda b: b[: len(b) // 2]),
                           [r"cannot get debian trixie main/binary-amd64/Packages\.xz",
                            r"has \d+ bytes \(its Content-Length\), the signed index says \d+"]),
    "wrong-suite": ({}, _wrong_suite, [r"is for suite 'bookworm'", r"not 'trixie'"]),
    "expired": ({"valid_until": datetime(2024, 1, 1, tzinfo=UTC)}, None,
                [r"expired at Mon, 01 Jan 2024", r"--allow-expired"]),
    "unsigned": ({"key": None}, None, [r"debian trixie is not signed", r"Release\.gpg"]),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_untrusted_archive_is_refused(case: str, tmp_path: Path, env: dict[str, str],
                                      compose: Callable[..., tuple[int, str, str]]) -> None:
    publish, tamper, patterns = FAILURES[case]
    d, s = build(tmp_path / "archive", debian=publish)
    if tamper:
        tamper(d, s)
    fresh = make_project(tmp_path / "fresh", t=["app", "tzdata"])
    older = make_project(tmp_path / "older", t=["app", "tzdata"])
    lock = older / "locks" / "t.lock.toml"
    lock.parent.mkdir()
    lock.write_bytes(b"# an older lock\nversion = 1\n")
    with FakeArchive.serve_many([d, s]) as urls, ThreadPoolExecutor(2) as pool:
        # Two runs at once: one without a lock, one with an existing lock.
        runs = [pool.submit(compose, env, "lock", "profiles/t.toml", *mirror_flags(urls), cwd=p)
                for p in (fresh, older)]
        results = [r.result() for r in runs]
    for rc, _, err in results:
        assert_error(rc, err, *patterns)
    assert not (fresh / "locks").exists()
    assert lock.read_bytes() == b"# an older lock\nversion = 1\n"
    assert sorted(p.name for p in lock.parent.iterdir()) == ["t.lock.toml"]


def test_expired_release_with_allow_expired(tmp_path: Path, env: dict[str, str],
                                            compose: Callable[..., tuple[int, str, str]]) -> None:
    d, s = build(tmp_path / "archive", debian={"valid_until": datetime(2024, 1, 1, tzinfo=UTC)})
    project = make_project(tmp_path / "project", t=["app", "tzdata"])
    with FakeArchive.serve_many([d, s]) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml", "--allow-expired",
                             *mirror_flags(urls), cwd=project)
    assert rc == 0, err
    data = tomllib.loads((project / "locks" / "t.lock.toml").read_text())
    assert data["source"][0]["valid-until"] == "Mon, 01 Jan 2024 00:00:00 UTC"


def test_release_gpg_fallback(tmp_path: Path, env: dict[str, str], served: Served,
                              locked: tuple[str, str],
                              compose: Callable[..., tuple[int, str, str]]) -> None:
    d, s = build(tmp_path / "archive", debian={"inrelease": False})
    assert not _inrelease(d).exists()
    project = make_project(tmp_path / "project", t=["app", "tzdata"])
    log: list[str] = []
    with FakeArchive.serve_many([d, s], log=log) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml", *mirror_flags(urls), cwd=project)
    assert rc == 0, err
    assert "/debian/dists/trixie/Release" in log and "/debian/dists/trixie/Release.gpg" in log
    data = tomllib.loads((project / "locks" / "t.lock.toml").read_text())
    src = data["source"][0]
    assert src["signed-by"] == [TEST_KEY.fingerprint]
    assert src["release-sha256"] == hashlib.sha256(d.path("dists/trixie/Release").read_bytes()).hexdigest()
    # The same Release, through InRelease or Release.gpg, locks to the same bytes.
    assert (project / "locks" / "t.lock.toml").read_bytes() == served.lock.read_bytes()


def test_release_gpg_by_unknown_key_is_refused(tmp_path: Path, env: dict[str, str],
                                               compose: Callable[..., tuple[int, str, str]]) -> None:
    d, s = build(tmp_path / "archive", debian={"inrelease": False, "key": OTHER_KEY})
    project = make_project(tmp_path / "project", t=["app"])
    with FakeArchive.serve_many([d, s]) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml", *mirror_flags(urls), cwd=project)
    assert_error(rc, err, r"cannot verify Release of debian trixie", r"not in the keyring")
    assert not (project / "locks").exists()


def test_unreachable_mirror(tmp_path: Path, env: dict[str, str],
                            compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["app"])
    base = f"http://127.0.0.1:{closed_port()}"
    rc, _, err = compose(env, "lock", "profiles/t.toml", f"--mirror=debian={base}/debian",
                         f"--mirror=debian-security={base}/debian-security", cwd=project)
    assert_error(rc, err, re.escape(f"{base}/debian/dists/trixie/InRelease"))
    assert not (project / "locks").exists()


def test_release_signed_by_two_keys_is_accepted(tmp_path: Path, env: dict[str, str],
                                                compose: Callable[..., tuple[int, str, str]]) -> None:
    """One good signature from the profile's keyring is enough; the lock names only it."""
    d, s = build(tmp_path / "archive", debian={"keys": [OTHER_KEY, TEST_KEY]})
    project = make_project(tmp_path / "project", t=["app"])
    with FakeArchive.serve_many([d, s]) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml", *mirror_flags(urls), cwd=project)
    assert rc == 0, err
    data = tomllib.loads((project / "locks" / "t.lock.toml").read_text())
    assert data["source"][0]["signed-by"] == [TEST_KEY.fingerprint]


def test_mirror_fallbacks(tmp_path: Path, env: dict[str, str],
                          compose: Callable[..., tuple[int, str, str]]) -> None:
    """A first mirror without the suite (404) is skipped for the next; a by-hash file the
    mirror lacks falls back to the plain name."""
    d, s = build(tmp_path / "archive")
    for arch in ARCHES:
        shutil.rmtree(d.path(f"dists/trixie/main/binary-{arch}/by-hash"))
    project = make_project(tmp_path / "project", t=["app"])
    log: list[str] = []
    with FakeArchive.serve_many([d, s], log=log) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml",
                             f"--mirror=debian={urls.base_url}/nowhere/debian",
                             *mirror_flags(urls), cwd=project)
    assert rc == 0, err
    assert "/nowhere/debian/dists/trixie/InRelease" in log
    assert "/debian/dists/trixie/main/binary-amd64/Packages.xz" in log
    assert (project / "locks" / "t.lock.toml").is_file()


def test_architecture_the_archive_lacks(served: Served, env: dict[str, str], tmp_path: Path,
                                        compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["app"])
    prof = project / "profiles" / "t.toml"
    prof.write_text(prof.read_text().replace('["amd64", "arm64"]', '["amd64", "riscv64"]'))
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert_error(rc, err, r"debian trixie has no packages for architecture riscv64",
                 r"hint: its architectures are amd64, arm64")
    assert not (project / "locks").exists()


def test_check_refuses_a_lock_from_a_newer_compose(project_copy: Path, env: dict[str, str],
                                                   compose: Callable[..., tuple[int, str, str]]) -> None:
    lock = project_copy / "locks" / "t.lock.toml"
    lock.write_text(lock.read_text().replace("version = 1\n", "version = 3\n", 1))
    rc, _, err = compose(env, "lock", "--check", "profiles/t.toml", cwd=project_copy)
    assert_error(rc, err, r"newer compose", r"hint: upgrade compose")


def test_file_mirror_works(served: Served, env: dict[str, str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    # In-process, with the retry backoff off, so that the bug costs no sleeping.
    from composer import cli
    from composer.archive import http

    monkeypatch.setattr(http, "BACKOFF", 0.0)
    for k in [k for k in os.environ if k.startswith(("COMPOSE_", "XDG_"))]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(make_project(tmp_path / "project", t=["app"]))
    rc = cli.main(["lock", "-q", "profiles/t.toml",
                   f"--mirror=debian={served.debian.directory.as_uri()}",
                   f"--mirror=debian-security={served.security.directory.as_uri()}"])
    err = capsys.readouterr().err
    assert rc == 0, err
    # The same archive read from the file system locks exactly as over HTTP.
    assert cli.main(["lock", "-q", "profiles/t.toml", "-o", "http.lock.toml", *served.flags]) == 0
    project = tmp_path / "project"
    assert (project / "locks" / "t.lock.toml").read_bytes() == \
        (project / "http.lock.toml").read_bytes()


# -- resolution errors ------------------------------------------------------------------


def test_unknown_package_did_you_mean(served: Served, env: dict[str, str], tmp_path: Path,
                                      compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["app", "tzdat"])
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert_error(rc, err, r"package tzdat is not in any source", r"hint: did you mean tzdata\?")
    assert not (project / "locks").exists()


def test_an_impossible_version_constraint(served: Served, env: dict[str, str], tmp_path: Path,
                                          compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["app", "tzdata (>= 9999)"])
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert_error(rc, err, r"tzdata \(>= 9999\) cannot be met for amd64: the candidate is tzdata \S+",
                 r"hint: loosen the constraint in \[packages\] include")
    assert not (project / "locks").exists()
    # a floor that the candidate meets locks as the plain name does
    project = make_project(tmp_path / "met", t=["app", "tzdata (>= 2020)"])
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert rc == 0, err
    names = {p["name"] for p in tomllib.loads((project / "locks" / "t.lock.toml").read_text())["package"]
             if p.get("root")}
    assert names == {"app", "tzdata"}


def test_unsatisfiable_dependency_shows_the_chain(served: Served, env: dict[str, str],
                                                  tmp_path: Path,
                                                  compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["tzdata", "needs-ghost"])
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert_error(rc, err, r"cannot satisfy mid 2\.0-1 Depends: ghost-lib \(>= 2\)",
                 r"needed through: needs-ghost -> mid\n", r"ghost-lib: not in any source")
    assert not (project / "locks").exists()


def test_last_paragraph_of_packages(served: Served, env: dict[str, str], tmp_path: Path,
                                    compose: Callable[..., tuple[int, str, str]]) -> None:
    """A Packages file whose last paragraph ends in one newline (no blank line after it)
    is valid deb822; the package in that paragraph must be usable."""
    assert served.debian.path("dists/trixie/main/binary-amd64/Packages.xz").is_file()
    plain = served.debian.packages_index("trixie", "main", "amd64")
    assert plain.endswith(b"\n") and not plain.endswith(b"\n\n")
    assert plain.rsplit(b"\nPackage: ", 1)[1].startswith(b"zz-last\n")
    project = make_project(tmp_path / "project", t=["zz-last"])
    rc, _, err = compose(env, "lock", "profiles/t.toml", *served.flags, cwd=project)
    assert rc == 0, err


# -- why and graph ------------------------------------------------------------------------


def test_why_chains(served: Served, locked: tuple[str, str], module_env: dict[str, str],
                    compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = compose(module_env, "why", "libc6", "profiles/t.toml", cwd=served.project)
    assert rc == 0, err
    assert out.splitlines() == [
        "libc6 [amd64]: 2 chains from the profile",
        "  app -> libc6",
        "  app -[mail-transport-agent]-> postfix -> libc6",
    ]
    rc, out, err = compose(module_env, "why", "postfix", served.profile, "--arch", "arm64",
                           "--lock", served.lock)
    assert rc == 0, err
    assert out.splitlines() == ["postfix [arm64]: 1 chain from the profile",
                                "  app -[mail-transport-agent]-> postfix"]
    rc, out, err = compose(module_env, "why", "debconf", "profiles/t.toml", cwd=served.project)
    assert rc == 0, err
    assert "excluded by the profile" in out.splitlines()[0]
    assert "  app -> debconf" in out.splitlines()


def test_why_json(served: Served, locked: tuple[str, str], module_env: dict[str, str],
                  compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = compose(module_env, "why", "postfix", "profiles/t.toml", "--json",
                           cwd=served.project)
    assert rc == 0, err
    assert json.loads(out) == {
        "package": "postfix", "architecture": "amd64", "excluded": False,
        "chains": [[{"name": "app", "via": None},
                    {"name": "postfix", "via": "mail-transport-agent"}]],
    }


def test_why_unknown_package(served: Served, locked: tuple[str, str], module_env: dict[str, str],
                             compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, _, err = compose(module_env, "why", "postfx", "profiles/t.toml", cwd=served.project)
    assert_error(rc, err, r"postfx is not in the amd64 lock of t", r"hint: did you mean postfix\?")
    rc, _, err = compose(module_env, "why", "libc6", "profiles/t.toml", "--arch", "s390x",
                         cwd=served.project)
    assert_error(rc, err, r"no architecture s390x", r"locked: amd64, arm64")


def test_why_and_graph_without_a_lock(tmp_path: Path, env: dict[str, str],
                                      compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", t=["app"])
    for args in (["why", "app"], ["graph"]):
        rc, _, err = compose(env, *args, "profiles/t.toml", cwd=project)
        assert_error(rc, err, r"t\.lock\.toml: no lock", r"hint: run `compose lock`")


def test_graph_dot(served: Served, locked: tuple[str, str], module_env: dict[str, str],
                   compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = compose(module_env, "graph", "profiles/t.toml", "--format", "dot",
                           cwd=served.project)
    assert rc == 0, err
    assert out.startswith('digraph "t" {')
    assert out.rstrip().endswith("}")
    for arch in ARCHES:
        assert f'"{arch}/app" -> "{arch}/libc6";' in out
        assert f'"{arch}/app" -> "{arch}/postfix" [label="mail-transport-agent"];' in out
        assert f'"{arch}/debconf" [label="debconf\\nexcluded", style=dashed];' in out


def test_graph_json(served: Served, locked: tuple[str, str], module_env: dict[str, str],
                    compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = compose(module_env, "graph", "profiles/t.toml", "--format", "json",
                           "--lock", served.lock, cwd=served.project)
    assert rc == 0, err
    data = json.loads(out)
    assert data["profile"] == "t"
    assert sorted(data["architectures"]) == list(ARCHES)
    for arch in ARCHES:
        g = data["architectures"][arch]
        assert g["roots"] == ["app", "tzdata"]
        names = {n["name"]: n for n in g["nodes"]}
        assert set(names) == LOCKED | {"debconf"}
        assert names["debconf"]["excluded"] is True
        assert names["libc6"]["version"] == "2.41-1+deb13u1"
        edges = {(e["from"], e["to"]): e.get("via") for e in g["edges"]}
        assert edges == {("app", "libc6"): None, ("app", "postfix"): "mail-transport-agent",
                         ("app", "libfast1"): None, ("app", "debconf"): None,
                         ("postfix", "libc6"): None}


# -- every profile of a project ---------------------------------------------------------


def test_lock_every_profile_of_the_project(served: Served, env: dict[str, str], tmp_path: Path,
                                           compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", a=["app"], b=["tzdata"])
    env = env | {"COMPOSE_MIRROR_DEBIAN": served.urls["debian"],
                 "COMPOSE_MIRROR_DEBIAN_SECURITY": served.urls["debian-security"]}
    rc, out, err = compose(env, "lock", "--json", cwd=project)
    assert rc == 0, err
    assert sorted(p.name for p in (project / "locks").iterdir()) == ["a.lock.toml", "b.lock.toml"]
    a = tomllib.loads((project / "locks" / "a.lock.toml").read_text())
    b = tomllib.loads((project / "locks" / "b.lock.toml").read_text())
    assert (a["profile"], b["profile"]) == ("a", "b")
    assert {p["name"] for p in a["package"]} == {"app", "libc6", "postfix", "libfast1"}
    assert {p["name"] for p in b["package"]} == {"tzdata"}
    assert [r["profile"] for r in json.loads(out)] == ["a", "b"]
    rc, _, err = compose(env, "lock", "--check", cwd=project)
    assert rc == 0, err


def test_lock_output_needs_one_profile(served: Served, env: dict[str, str], tmp_path: Path,
                                       compose: Callable[..., tuple[int, str, str]]) -> None:
    project = make_project(tmp_path / "project", a=["app"], b=["tzdata"])
    rc, _, err = compose(env, "lock", "-o", "x.toml", *served.flags, cwd=project)
    assert_error(rc, err, r"-o/--output needs exactly one profile")


def test_lock_without_profiles(tmp_path: Path, env: dict[str, str],
                               compose: Callable[..., tuple[int, str, str]]) -> None:
    rc, _, err = compose(env, "lock", cwd=tmp_path)
    assert_error(rc, err, r"no profiles in profiles/")


def test_update_moves_to_new_packages_and_prints_what_changed(
        tmp_path: Path, env: dict[str, str], compose: Callable[..., tuple[int, str, str]]) -> None:
    d, s = build(tmp_path / "archive")
    project = make_project(tmp_path / "project", u=["app"])
    with FakeArchive.serve_many([d, s]) as urls:
        flags = mirror_flags(dict(urls))
        rc, _, err = compose(env, "lock", "profiles/u.toml", *flags, cwd=project)
        assert rc == 0, err
        old = (project / "locks" / "u.lock.toml").read_text()
        rc, _, err = compose(env, "lock", "--update", "profiles/u.toml", *flags, cwd=project)
        assert rc == 0 and "u: already at the newest packages" in err, err
        # A security update of libc6 and a new libfast1 arrive.
        for a in ARCHES:
            s.add("trixie-security", "libc6", "2.41-1+deb13u2", a, source="glibc",
                  multi_arch="same")
            s.add("trixie-security", "libfast1", "1.0-1+deb13u1", a)
        s.publish("trixie-security", date="Mon, 02 Nov 2026 00:00:00 UTC")
        rc, _, err = compose(env, "lock", "--update", "profiles/u.toml", *flags, cwd=project)
        assert rc == 0, err
        for a in ARCHES:
            assert (f"[{a}] ~ libc6 2.41-1+deb13u1 -> 2.41-1+deb13u2 "
                    "(source glibc 2.41-1+deb13u1 -> glibc 2.41-1+deb13u2)") in err, err
            assert f"[{a}] ~ libfast1 1.0-1 -> 1.0-1+deb13u1" in err
        assert "0 added" not in err and "4 upgraded" in err
        (tmp_path / "old.lock.toml").write_text(old)
        rc, out, err = compose(env, "diff", tmp_path / "old.lock.toml",
                               project / "locks" / "u.lock.toml", cwd=project)
        assert rc == 0 and out.splitlines()[-1] == "4 upgraded", out + err


def test_an_older_release_than_the_lock_is_a_rollback(tmp_path: Path, env: dict[str, str],
                                                      compose: Callable[..., tuple[int, str, str]]) -> None:
    """A mirror serving a validly signed but older Release than the one the lock was made
    from (behind, or replaying it to hold back a fix) is refused unless asked for."""
    d, s = build(tmp_path / "archive")
    project = make_project(tmp_path / "project", t=["app", "tzdata"])
    lock = project / "locks" / "t.lock.toml"
    with FakeArchive.serve_many([d, s]) as urls:
        rc, _, err = compose(env, "lock", "profiles/t.toml", *mirror_flags(urls), cwd=project)
        assert rc == 0, err
        before = lock.read_bytes()
        d.publish("trixie", date="Tue, 01 Sep 2026 07:55:41 UTC")
        rc, _, err = compose(env, "lock", "--update", "profiles/t.toml", *mirror_flags(urls),
                             cwd=project)
        assert_error(rc, err, r"Release of debian trixie at http://\S+ is dated "
                     r"Tue, 01 Sep 2026 07:55:41 UTC, older than the "
                     r"Sat, 12 Sep 2026 07:55:41 UTC that \S+t\.lock\.toml was locked from",
                     r"--allow-rollback")
        assert lock.read_bytes() == before
        assert sorted(p.name for p in lock.parent.iterdir()) == ["t.lock.toml"]
        rc, _, err = compose(env, "lock", "--update", "--allow-rollback", "profiles/t.toml",
                             *mirror_flags(urls), cwd=project)
    assert rc == 0, err
    dates = {s["suite"]: s["date"] for s in tomllib.loads(lock.read_text())["source"]}
    assert dates["trixie"] == "Tue, 01 Sep 2026 07:55:41 UTC"


def test_locks_sharing_a_cold_cache_at_once(tmp_path: Path,
                                            compose: Callable[..., tuple[int, str, str]]) -> None:
    """Several `compose lock` processes share one empty cache: each fetches, decompresses
    and removes the same compressed indexes, and all must succeed with the same lock."""
    d, s = build(tmp_path / "archive")
    with FakeArchive.serve_many([d, s]) as urls:
        for round_ in range(3):
            env = isolated_env(tmp_path / f"env{round_}")
            projects = [make_project(tmp_path / f"p{round_}-{i}", t=["app", "tzdata"])
                        for i in range(4)]
            runs = [(env, p) for p in projects]
            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(lambda ep: compose(ep[0], "lock", "profiles/t.toml",
                                                           *mirror_flags(urls), cwd=ep[1]), runs))
            for rc, _, err in results:
                assert rc == 0, err
            locks = {(p / "locks" / "t.lock.toml").read_bytes() for p in projects}
            assert len(locks) == 1
