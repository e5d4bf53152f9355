"""Check tests.toolchain: the host's compiler packages rebuilt, served, and read by dpkg-deb."""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.fakearchive import FakeArchive
from tests.toolchain import HostPackage, closure, host_toolchain

needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg-query") is None,
    reason="dpkg-query not found: no dpkg database of installed packages to rebuild",
)


def run(*command: str | Path) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def stanzas(text: str) -> dict[str, dict[str, str]]:
    """Single-line fields of each Packages stanza, by package name."""
    result = {}
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line[:1] not in ("", " ")
        )
        result[fields["Package"]] = fields
    return result


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url) as response:
        data: bytes = response.read()
        return data


def test_closure_takes_the_first_installed_alternative() -> None:
    installed = {
        p.name: p
        for p in [
            HostPackage(
                "app",
                "app",
                "1",
                "amd64",
                depends="libfoo1 (>= 1) | libbar1, awk, not-here | libbaz1:any, libc6",
                pre_depends="libc6 (>= 2.36)",
            ),
            HostPackage("libfoo1:amd64", "libfoo1", "1", "amd64", "libc6", multi_arch="same"),
            HostPackage("libbar1", "libbar1", "1", "amd64"),
            HostPackage("mawk", "mawk", "1", "amd64", provides="awk"),
            HostPackage("gawk", "gawk", "1", "amd64", provides="awk, gawk-virtual (= 1)"),
            HostPackage("libbaz1", "libbaz1", "1", "amd64", multi_arch="allowed"),
            HostPackage("libc6:amd64", "libc6", "2.36", "amd64", multi_arch="same"),
        ]
    }
    found = closure(installed, ["app"])
    assert [p.name for p in found] == ["app", "libc6", "libfoo1", "gawk", "libbaz1"]
    assert [p.name for p in closure(installed, ["gawk-virtual"])] == ["gawk"]
    with pytest.raises(RuntimeError, match="apt-get install not-here other"):
        closure(installed, ["app", "not-here", "other"])
    broken = {**installed, "app": HostPackage("app", "app", "1", "amd64", depends="x | y")}
    with pytest.raises(RuntimeError, match=r"no installed package satisfies x \| y"):
        closure(broken, ["app"])


@needs_dpkg
def test_missing_root_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="apt-get install no-such-package-here"):
        host_toolchain(FakeArchive(tmp_path), "bookworm", ("make", "no-such-package-here"))


@needs_dpkg
def test_host_toolchain_serves_the_host_compiler(tmp_path: Path) -> None:
    architecture = run("dpkg", "--print-architecture").strip()
    arch = FakeArchive(tmp_path / "mirror")
    names = host_toolchain(arch, "bookworm", architecture=architecture)
    assert {"gcc", "make", "libc6-dev", "libc6", "dash", "coreutils"} <= set(names)
    assert len(names) == len(set(names))
    arch.publish("bookworm", architectures=(architecture,))

    cc1 = run("gcc", "-print-prog-name=cc1").strip()
    with arch.serve() as url:
        index = fetch(f"{url}/dists/bookworm/main/binary-{architecture}/Packages.xz")
        packages = stanzas(lzma.decompress(index).decode())
        assert set(packages) == set(names)

        def deb_of(name: str) -> Path:
            stanza = packages[name]
            deb = fetch(f"{url}/{stanza['Filename']}")
            assert hashlib.sha256(deb).hexdigest() == stanza["SHA256"]
            path = tmp_path / Path(stanza["Filename"]).name
            path.write_bytes(deb)
            return path

        for program in ("/usr/bin/make", cc1):
            owner = run("dpkg-query", "-S", program).split(":")[0]
            installed = run("dpkg-query", "-W", "-f=${Version} ${Architecture}", owner)
            deb = deb_of(owner)
            info = run("dpkg-deb", "--info", deb)
            assert f" Package: {owner}\n" in info
            assert f" Version: {installed.split()[0]}\n" in info
            assert f" Architecture: {installed.split()[1]}\n" in info
            contents = run("dpkg-deb", "--contents", deb).splitlines()
            [entry] = [line for line in contents if line.endswith(f" .{program}")]
            assert entry.startswith("-rwxr-xr-x root/root ")
            assert not any("./usr/share/man/" in line for line in contents)
            unpacked = tmp_path / owner
            run("dpkg-deb", "--extract", deb, unpacked)
            assert (unpacked / program.lstrip("/")).read_bytes() == Path(program).read_bytes()

        # dash diverts /bin/sh from others but ships it itself, in /bin as dpkg lists it.
        dash = run("dpkg-deb", "--contents", deb_of("dash"))
        assert " ./bin/sh -> dash\n" in dash and " ./bin/dash\n" in dash
        assert " ./usr/share/doc/dash/copyright\n" in dash
        assert "/usr/share/doc/dash/changelog" not in dash
        # libc6 is Multi-Arch: same, its file list libc6:<arch>.list.
        assert packages["libc6"]["Multi-Arch"] == "same"
        assert "/libc.so.6\n" in run("dpkg-deb", "--contents", deb_of("libc6"))
