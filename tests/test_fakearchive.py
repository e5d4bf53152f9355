"""Check tests.fakearchive against the real tools: dpkg-deb, gpg, gpgv, dpkg, HTTP."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fakearchive import OTHER_KEY, TEST_KEY, FakeArchive, Key, compare_versions

FILES = {
    "usr/lib/x/libfoo.so.1": b"\x7fELF not really\n",
    "usr/share/doc/libfoo1/copyright": b"Public domain.\n",
    "usr/bin/foo": b"#!/bin/sh\necho foo\n",
}
SYMLINKS = {"usr/lib/x/libfoo.so": "libfoo.so.1"}


def run(
    *command: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, env=env
    )


def parse_release(text: str) -> tuple[dict[str, str], dict[str, dict[str, tuple[int, str]]]]:
    """Simple fields and the hash lists (field -> path -> (size, hash)) of a Release file."""
    fields: dict[str, str] = {}
    lists: dict[str, dict[str, tuple[int, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith(" "):
            assert current is not None
            digest, size, path = line.split()
            lists[current][path] = (int(size), digest)
            continue
        name, _, value = line.partition(":")
        if value.strip():
            fields[name] = value.strip()
            current = None
        else:
            current = name
            lists[name] = {}
    return fields, lists


@pytest.fixture
def gnupg_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for subprocesses using a fresh, empty GNUPGHOME."""
    home = tmp_path / "verify-home"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    yield env
    run("gpgconf", "--kill", "gpg-agent", env=env)


def import_public(env: dict[str, str], *keys: Key) -> None:
    for key in keys:
        assert run("gpg", "--batch", "--import", key.public_path, env=env).returncode == 0


def valid_signers(output: str) -> set[str]:
    return {
        line.split()[2] for line in output.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")
    }


@pytest.fixture
def archive(tmp_path: Path) -> FakeArchive:
    arch = FakeArchive(tmp_path / "mirror", name="debian")
    arch.add(
        "trixie",
        "libfoo1",
        "1.2-3",
        "amd64",
        source="libfoo (1.2-1)",
        depends="libc6 (>= 2.36), bar | baz",
        multi_arch="same",
        files=FILES,
        symlinks=SYMLINKS,
        modes={"usr/bin/foo": 0o755},
        extra={"Section": "libs"},
    )
    arch.add("trixie", "libfoo1", "1.2-3", "arm64", source="libfoo (1.2-1)", files=FILES)
    arch.add("trixie", "libfoo1", "1.10-1", "amd64", source="libfoo", files=FILES)
    arch.add("trixie", "base-files", "13.8", "all", essential=True, priority="required")
    arch.add("trixie", "arm-only", "1:0.1", "arm64", pre_depends=["libc6", "a | b"])
    arch.publish("trixie", architectures=("amd64", "arm64"), uncompressed=True)
    return arch


@pytest.mark.parametrize("compression", ["xz", "zst", "gz", "none"])
def test_deb_is_accepted_and_extracted_by_dpkg_deb(tmp_path: Path, compression: str) -> None:
    arch = FakeArchive(tmp_path / "mirror")
    record = arch.add(
        "trixie",
        "libfoo1",
        "2:1.2-3",
        source="libfoo",
        depends="libc6 (>= 2.36)",
        files=FILES,
        symlinks=SYMLINKS,
        modes={"usr/bin/foo": 0o755},
        directories=["var/lib/foo"],
        control_files={"postinst": "#!/bin/sh\nexit 0\n", "conffiles": ""},
        data_compression=compression,  # type: ignore[arg-type]
        control_compression=compression,  # type: ignore[arg-type]
    )
    assert record.filename == "pool/main/libf/libfoo/libfoo1_1.2-3_amd64.deb"
    deb = record.path.read_bytes()
    assert deb.startswith(b"!<arch>\ndebian-binary   ")
    assert record.size == len(deb)
    assert record.sha256 == hashlib.sha256(deb).hexdigest()

    info = run("dpkg-deb", "--info", record.path)
    assert info.returncode == 0, info.stderr
    assert "Package: libfoo1" in info.stdout
    assert "Version: 2:1.2-3" in info.stdout
    assert "Depends: libc6 (>= 2.36)" in info.stdout

    contents = run("dpkg-deb", "--contents", record.path)
    assert contents.returncode == 0, contents.stderr
    lines = contents.stdout.splitlines()
    assert lines[0].split()[-1] == "./"
    assert all(" root/root " in line for line in lines)
    assert any(line.endswith("./usr/lib/x/libfoo.so -> libfoo.so.1") for line in lines)
    assert any(line.startswith("-rwxr-xr-x") and line.endswith("./usr/bin/foo") for line in lines)
    assert any(line.endswith("./var/lib/foo/") for line in lines)

    fields = run("dpkg-deb", "--field", record.path)
    assert fields.stdout == record.stanza.split("Filename:")[0]

    extracted = tmp_path / "root"
    assert run("dpkg-deb", "-x", record.path, extracted).returncode == 0
    for path, data in FILES.items():
        assert (extracted / path).read_bytes() == data
    assert os.readlink(extracted / "usr/lib/x/libfoo.so") == "libfoo.so.1"
    assert os.access(extracted / "usr/bin/foo", os.X_OK)

    control = tmp_path / "control"
    assert run("dpkg-deb", "-e", record.path, control).returncode == 0
    assert os.access(control / "postinst", os.X_OK)
    for line in (control / "md5sums").read_text().splitlines():
        digest, path = line.split("  ")
        assert hashlib.md5((extracted / path).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("compression", ["zst", "gz", "xz"])
def test_compression_level(tmp_path: Path, compression: str) -> None:
    files = {"usr/share/foo/squares": "\n".join(str(i * i) for i in range(50_000))}
    fast, default = (
        FakeArchive(tmp_path / name).add(
            "trixie",
            "foo",
            "1",
            files=files,
            data_compression=compression,  # type: ignore[arg-type]
            compression_level=level,
        )
        for name, level in (("fast", 1), ("default", None))
    )
    assert fast.sha256 != default.sha256
    trees = [run("dpkg-deb", "--fsys-tarfile", record.path).stdout for record in (fast, default)]
    assert trees[0] == trees[1] and "squares" in trees[0]


def test_same_input_builds_identical_deb(tmp_path: Path) -> None:
    first = FakeArchive(tmp_path / "a").add("trixie", "foo", "1", files=FILES)
    second = FakeArchive(tmp_path / "b").add("bookworm", "foo", "1", files=FILES)
    assert first.path.read_bytes() == second.path.read_bytes()
    with pytest.raises(ValueError, match="different content"):
        FakeArchive(tmp_path / "a").add("sid", "foo", "1", files={"x": b"other"})


def test_release_is_signed(archive: FakeArchive, gnupg_env: dict[str, str]) -> None:
    env = gnupg_env
    import_public(env, TEST_KEY)
    inrelease = archive.path("dists/trixie/InRelease")
    release = archive.path("dists/trixie/Release")
    release_gpg = archive.path("dists/trixie/Release.gpg")

    verified = run("gpg", "--batch", "--status-fd", "1", "--verify", inrelease, env=env)
    assert verified.returncode == 0, verified.stderr
    assert valid_signers(verified.stdout) == {TEST_KEY.fingerprint}
    assert release.read_text() in inrelease.read_text()

    detached = run("gpg", "--batch", "--verify", release_gpg, release, env=env)
    assert detached.returncode == 0, detached.stderr
    assert run("gpgv", "--keyring", TEST_KEY.public_binary_path, inrelease).returncode == 0

    assert run("gpgv", "--keyring", OTHER_KEY.public_binary_path, inrelease).returncode != 0
    release.write_text(release.read_text().replace("trixie", "forky"))
    assert run("gpg", "--batch", "--verify", release_gpg, release, env=env).returncode != 0


def test_release_signed_by_several_keys(tmp_path: Path, gnupg_env: dict[str, str]) -> None:
    arch = FakeArchive(tmp_path / "mirror")
    arch.add("trixie", "foo", "1")
    arch.publish("trixie", keys=[TEST_KEY, OTHER_KEY])
    env = gnupg_env
    import_public(env, TEST_KEY, OTHER_KEY)
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        paths = [arch.path(f"dists/trixie/{name}") for name in args]
        verified = run("gpg", "--batch", "--status-fd", "1", "--verify", *paths, env=env)
        assert valid_signers(verified.stdout) == {TEST_KEY.fingerprint, OTHER_KEY.fingerprint}


def test_release_lists_what_was_written(archive: FakeArchive) -> None:
    suite = archive.path("dists/trixie")
    fields, lists = parse_release((suite / "Release").read_text())
    assert fields["Suite"] == fields["Codename"] == "trixie"
    assert fields["Date"] == "Sat, 12 Sep 2026 07:55:41 UTC"
    assert fields["Architectures"] == "amd64 arm64"
    assert fields["Components"] == "main"
    assert fields["Acquire-By-Hash"] == "yes"
    assert fields["No-Support-for-Architecture-all"] == "Packages"
    expected = {
        f"main/binary-{arch}/Packages{ext}"
        for arch in ("amd64", "arm64")
        for ext in ("", ".xz", ".gz")
    }
    assert set(lists["SHA256"]) == set(lists["MD5Sum"]) == expected
    for path, (size, digest) in lists["SHA256"].items():
        data = (suite / path).read_bytes()
        assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
        assert lists["MD5Sum"][path] == (size, hashlib.md5(data).hexdigest())
        by_hash = suite / Path(path).parent / "by-hash/SHA256" / digest
        assert by_hash.read_bytes() == data
    plain = (suite / "main/binary-amd64/Packages").read_bytes()
    assert lzma.decompress((suite / "main/binary-amd64/Packages.xz").read_bytes()) == plain
    assert gzip.decompress((suite / "main/binary-amd64/Packages.gz").read_bytes()) == plain


def test_packages_index_content(archive: FakeArchive) -> None:
    def stanzas(arch: str) -> list[dict[str, str]]:
        text = archive.path(f"dists/trixie/main/binary-{arch}/Packages").read_text()
        assert not text.startswith("\n") and not text.endswith("\n\n")
        result = []
        for block in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if not line.startswith(" "):
                    name, _, value = line.partition(": ")
                    fields[name] = value
            result.append(fields)
        return result

    amd64 = stanzas("amd64")
    assert [(s["Package"], s["Version"]) for s in amd64] == [
        ("base-files", "13.8"),
        ("libfoo1", "1.2-3"),
        ("libfoo1", "1.10-1"),
    ]
    arm64 = stanzas("arm64")
    assert [(s["Package"], s["Architecture"]) for s in arm64] == [
        ("arm-only", "arm64"),
        ("base-files", "all"),
        ("libfoo1", "arm64"),
    ]
    libfoo = amd64[1]
    assert list(libfoo) == [
        "Package",
        "Source",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Multi-Arch",
        "Section",
        "Priority",
        "Description",
        "Filename",
        "Size",
        "MD5sum",
        "SHA256",
    ]
    assert libfoo["Source"] == "libfoo (1.2-1)"
    assert libfoo["Section"] == "libs"
    assert libfoo["Depends"] == "libc6 (>= 2.36), bar | baz"
    deb = archive.path(libfoo["Filename"]).read_bytes()
    assert int(libfoo["Size"]) == len(deb)
    assert libfoo["SHA256"] == hashlib.sha256(deb).hexdigest()
    assert libfoo["MD5sum"] == hashlib.md5(deb).hexdigest()
    assert amd64[0]["Essential"] == "yes" and amd64[0]["Priority"] == "required"
    assert arm64[0]["Pre-Depends"] == "libc6, a | b"
    assert arm64[0]["Filename"] == "pool/main/a/arm-only/arm-only_0.1_arm64.deb"


def test_republish_replaces_indices_and_keeps_by_hash(archive: FakeArchive) -> None:
    suite = archive.path("dists/trixie")
    old_by_hash = set((suite / "main/binary-amd64/by-hash/SHA256").iterdir())
    removed = archive.remove("trixie", "libfoo1", "1.10-1", delete_files=True)
    assert [r.version for r in removed] == ["1.10-1"]
    assert not removed[0].path.exists()
    archive.publish(
        "trixie",
        compressions=("zst",),
        key=None,
        valid_until=datetime(2026, 9, 19, 7, 55, 41, tzinfo=UTC),
        not_automatic=True,
        extra_release_fields={"Origin": "Elsewhere", "MD5Sum": None},
    )
    assert not (suite / "InRelease").exists() and not (suite / "Release.gpg").exists()
    assert not (suite / "main/binary-amd64/Packages.xz").exists()
    assert (suite / "main/binary-amd64/Packages.zst").exists()
    assert old_by_hash < set((suite / "main/binary-amd64/by-hash/SHA256").iterdir())
    fields, lists = parse_release((suite / "Release").read_text())
    assert fields["Origin"] == "Elsewhere"
    assert fields["Valid-Until"] == "Sat, 19 Sep 2026 07:55:41 UTC"
    assert fields["NotAutomatic"] == "yes"
    assert set(lists) == {"SHA256"}
    assert b"1.10-1" not in archive.packages_index("trixie", "main", "amd64")


def test_index_fields_change_only_the_stanza(tmp_path: Path) -> None:
    arch = FakeArchive(tmp_path / "mirror")
    record = arch.add("trixie", "foo", "1", index_fields={"SHA256": "0" * 64, "Priority": None})
    assert record.fields["SHA256"] == "0" * 64 and "Priority" not in record.fields
    assert (
        b"Priority: optional"
        in subprocess.run(
            ["dpkg-deb", "--field", str(record.path)], capture_output=True, check=True
        ).stdout
    )


SOURCE_FILES = {
    "python3.14_3.14.8-1.dsc": b"Format: 3.0 (quilt)\nSource: python3.14\n",
    "python3.14_3.14.8.orig.tar.xz": b"not really an upstream tarball\n",
    "python3.14_3.14.8-1.debian.tar.xz": b"not really a debian directory\n",
}


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 file; a continued field keeps its lines, each less the leading space."""
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    name = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields = {}
        elif line[0] in " \t":
            assert name in fields, line
            fields[name] += "\n" + line[1:]
        else:
            name, colon, value = line.partition(":")
            assert colon and name and not any(c.isspace() for c in name), line
            assert name not in fields, line
            fields[name] = value.strip()
    return stanzas


def checksum_lines(value: str) -> list[tuple[str, int, str]]:
    """``(hash, size, name)`` from a ``Files``-style field: an empty first line, then one per file."""
    first, *lines = value.split("\n")
    assert first == ""
    return [(digest, int(size), name) for digest, size, name in map(str.split, lines)]


def test_sources_index_lists_the_pool_files(tmp_path: Path) -> None:
    arch = FakeArchive(tmp_path / "mirror")
    arch.add("trixie", "python3.14", "3.14.8-1")
    record = arch.add_source("trixie", "python3.14", "3.14.8-1", SOURCE_FILES)
    arch.add_source("trixie", "libfoo", "1.0-1", {"libfoo_1.0-1.dsc": b"dsc"}, component="contrib")
    arch.add_source("trixie", "libfoo", "0.9-1", {"libfoo_0.9-1.dsc": b"old"}, component="contrib")
    arch.publish("trixie", components=("main", "contrib"), uncompressed=True)
    suite = arch.path("dists/trixie")

    [stanza] = parse_deb822((suite / "main/source/Sources").read_text())
    assert list(stanza) == [
        "Package",
        "Binary",
        "Version",
        "Maintainer",
        "Architecture",
        "Format",
        "Files",
        "Checksums-Sha256",
        "Directory",
        "Priority",
        "Section",
    ]
    assert stanza["Package"] == stanza["Binary"] == "python3.14"
    assert stanza["Version"] == "3.14.8-1"
    assert (stanza["Architecture"], stanza["Format"]) == ("any", "3.0 (quilt)")
    assert stanza["Directory"] == record.directory == "pool/main/p/python3.14"
    for field, algorithm in (("Files", hashlib.md5), ("Checksums-Sha256", hashlib.sha256)):
        listed = checksum_lines(stanza[field])
        assert [name for _, _, name in listed] == list(SOURCE_FILES)
        for digest, size, name in listed:
            data = arch.path(f"{stanza['Directory']}/{name}").read_bytes()
            assert data == SOURCE_FILES[name]
            assert (digest, size) == (algorithm(data).hexdigest(), len(data))
    assert record.paths == tuple(arch.path(f"{record.directory}/{n}") for n in SOURCE_FILES)

    contrib = parse_deb822((suite / "contrib/source/Sources").read_text())
    assert [(s["Version"], s["Directory"]) for s in contrib] == [
        ("0.9-1", "pool/contrib/libf/libfoo"),
        ("1.0-1", "pool/contrib/libf/libfoo"),
    ]

    _, lists = parse_release((suite / "Release").read_text())
    sources = {path for path in lists["SHA256"] if "/source/" in path}
    assert sources == {
        f"{component}/source/Sources{ext}"
        for component in ("main", "contrib")
        for ext in ("", ".xz", ".gz")
    }
    for path in sources:
        data = (suite / path).read_bytes()
        size, digest = lists["SHA256"][path]
        assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
        assert lists["MD5Sum"][path] == (size, hashlib.md5(data).hexdigest())
        assert (suite / Path(path).parent / "by-hash/SHA256" / digest).read_bytes() == data
    plain = (suite / "main/source/Sources").read_bytes()
    assert lzma.decompress((suite / "main/source/Sources.xz").read_bytes()) == plain
    assert gzip.decompress((suite / "main/source/Sources.gz").read_bytes()) == plain


def test_sources_without_source_packages(archive: FakeArchive) -> None:
    assert not archive.path("dists/trixie/main/source").exists()
    assert b"/source/" not in archive.path("dists/trixie/Release").read_bytes()


def test_source_stanza_can_lie(tmp_path: Path) -> None:
    arch = FakeArchive(tmp_path / "mirror")
    wrong = f"\n {'0' * 64} 3 foo_1-1.dsc"
    record = arch.add_source(
        "trixie",
        "foo",
        "1-1",
        {"foo_1-1.dsc": b"dsc"},
        extra={"Checksums-Sha256": wrong, "Section": None, "Testsuite": "autopkgtest"},
        directory="/pool/elsewhere/foo",
    )
    assert arch.path("pool/elsewhere/foo/foo_1-1.dsc").read_bytes() == b"dsc"
    arch.publish("trixie")
    [stanza] = parse_deb822(
        lzma.decompress(arch.path("dists/trixie/main/source/Sources.xz").read_bytes()).decode()
    )
    assert stanza["Directory"] == "pool/elsewhere/foo"
    assert checksum_lines(stanza["Checksums-Sha256"]) == [("0" * 64, 3, "foo_1-1.dsc")]
    assert "Section" not in stanza and list(stanza)[-1] == "Testsuite"
    assert stanza == parse_deb822(record.stanza)[0]
    with pytest.raises(ValueError, match="already in"):
        arch.add_source("trixie", "foo", "1-1", {"foo_1-1.dsc": b"dsc"})
    with pytest.raises(ValueError, match="different content"):
        arch.add_source(
            "sid", "foo", "1-1", {"foo_1-1.dsc": b"other"}, directory="pool/elsewhere/foo"
        )


def test_serve_one_archive(archive: FakeArchive) -> None:
    log: list[str] = []
    overrides = {"/debian/dists/trixie/Release": lambda: (500, b"")}
    pool = archive.packages("trixie")[0].filename
    with archive.serve(log=log, overrides=overrides) as url:
        assert url.endswith("/debian") and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/dists/trixie/InRelease") as response:
            assert response.read() == archive.path("dists/trixie/InRelease").read_bytes()
        with urllib.request.urlopen(f"{url}/{pool}") as response:
            assert response.read() == archive.path(pool).read_bytes()
        for path, status in [
            ("dists/trixie/Release", 500),
            ("dists/trixie/missing", 404),
            ("dists/trixie", 404),
            ("dists/%2e%2e/%2e%2e/etc/passwd", 404),
        ]:
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(f"{url}/{path}")
            assert error.value.code == status
    assert log[:3] == [
        "/debian/dists/trixie/InRelease",
        f"/debian/{pool}",
        "/debian/dists/trixie/Release",
    ]
    assert len(log) == 6


def test_serve_keeps_connections_alive_and_stops_promptly(archive: FakeArchive) -> None:
    log: list[str] = []
    with httpx.Client() as client:
        with archive.serve(log=log) as url:
            first = client.get(f"{url}/dists/trixie/Release")
            head = client.head(f"{url}/dists/trixie/InRelease")
            assert first.status_code == head.status_code == 200
            assert (
                int(head.headers["content-length"])
                == archive.path("dists/trixie/InRelease").stat().st_size
            )
            started = time.monotonic()
        assert time.monotonic() - started < 1
        with pytest.raises(httpx.TransportError):
            client.get(f"{url}/dists/trixie/Release")
    assert log == ["/debian/dists/trixie/Release", "/debian/dists/trixie/InRelease"]


def test_serve_many_archives(tmp_path: Path) -> None:
    main = FakeArchive(tmp_path / "mirror", name="debian")
    security = FakeArchive(tmp_path / "mirror", name="debian-security")
    main.add("trixie", "foo", "1")
    security.add("trixie-security", "foo", "1+deb13u1")
    main.publish("trixie")
    security.publish("trixie-security")
    calls: list[int] = []

    def fail_once() -> tuple[int, bytes] | None:
        calls.append(1)
        return (503, b"busy") if len(calls) == 1 else None

    inrelease = "/debian-security/dists/trixie-security/InRelease"
    with FakeArchive.serve_many([main, security], overrides={inrelease: fail_once}) as urls:
        assert urls["debian"] == f"{urls.base_url}/debian"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(urls.base_url + inrelease)
        with urllib.request.urlopen(urls.base_url + inrelease) as response:
            assert response.read() == security.path("dists/trixie-security/InRelease").read_bytes()
        with urllib.request.urlopen(f"{urls['debian']}/dists/trixie/Release") as response:
            assert b"Suite: trixie\n" in response.read()


def test_version_order_matches_dpkg() -> None:
    versions = [
        "1.0~rc1",
        "1.0",
        "1.0-1",
        "1.0-1+b1",
        "1.0a",
        "1.00.1",
        "1:0.9",
        "2.0~~",
        "2.0~",
        "0:2.0",
    ]
    for a in versions:
        for b in versions:
            expected = 0
            for op, result in (("lt", -1), ("gt", 1)):
                if run("dpkg", "--compare-versions", a, op, b).returncode == 0:
                    expected = result
            assert compare_versions(a, b) == expected, (a, b)
