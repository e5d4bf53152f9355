"""The .deb reader: packages built by dpkg-deb and by tests.fakearchive in every
compression, tar dialects real tools write, and hostile packages, each of which must be
refused with a FormatError that names the package."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from composer.debian import deb
from composer.debian.deb import DIR, FILE, HARDLINK, SYMLINK, Member
from composer.errors import FormatError
from tests.fakearchive import FakeArchive

WHERE = "hostile-pkg 1.0-1 amd64"
EPOCH = 1_700_000_000

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

# zstd frames carry a checksum, as dpkg-deb writes them: without one, damage inside an
# incompressible block cannot be noticed (the archive's SHA256 is what guards that).
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".xz": lambda data: lzma.compress(data, format=lzma.FORMAT_XZ),
    ".zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
    ".gz": lambda data: gzip.compress(data, mtime=0),
    ".bz2": lambda data: bz2.compress(data),
    ".lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
}


# --------------------------------------------------------------------------------------
# Building packages byte by byte, hostile ones included.


def ar(*members: tuple[str, bytes], magic: bytes = b"!<arch>\n") -> bytes:
    """An ar archive as dpkg-deb writes it (names padded, odd sizes padded with \\n)."""
    out = bytearray(magic)
    for name, data in members:
        out += f"{name:<16}{EPOCH:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    mode: int = 0o644,
    link: str = "",
    uid: int = 0,
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = len(data)
    info.linkname = link
    info.uid = uid
    info.mtime = EPOCH
    return info, (data if data or kind == tarfile.REGTYPE else None)


def tar(
    *entries: tuple[tarfile.TarInfo, bytes | None],
    fmt: int = tarfile.GNU_FORMAT,
    pax_global: dict[str, str] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=fmt, pax_headers=pax_global or {}
    ) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes | None]:
    return entry(name, tarfile.DIRTYPE, mode=mode)


CONTROL = b"Package: hostile-pkg\nVersion: 1.0-1\nArchitecture: amd64\nDescription: x\n y\n"
CONTROL_TAR = tar(directory("./"), entry("./control", data=CONTROL))
GOOD_DATA_TAR = tar(directory("./"), directory("./usr/"), entry("./usr/x", data=b"hello"))


def make_deb(
    data_tar: bytes = GOOD_DATA_TAR,
    data_name: str = "data.tar.xz",
    control_tar: bytes = CONTROL_TAR,
    control_name: str = "control.tar.xz",
    version: bytes = b"2.0\n",
) -> bytes:
    """A package whose members are compressed as their names say."""
    return ar(
        ("debian-binary", version),
        (control_name, COMPRESS[control_name.removeprefix("control.tar")](control_tar)),
        (data_name, COMPRESS[data_name.removeprefix("data.tar")](data_tar)),
    )


def refused(data: bytes, *fragments: str, max_size: int = deb.DEFAULT_MAX_SIZE) -> str:
    """Assert that ``read`` refuses ``data`` naming the package; return the message."""
    with pytest.raises(FormatError) as caught:
        deb.read(data, WHERE, max_size=max_size)
    message = caught.value.message
    assert message.startswith(f"{WHERE}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert caught.value.hint
    return message


def shape(member: Member) -> tuple[str, str, int, str, bytes]:
    return member.path, member.kind, member.mode, member.target, member.data


# --------------------------------------------------------------------------------------
# Real packages


@pytest.mark.parametrize("data_compression", ["xz", "zst", "gz", "bz2", "none"])
@pytest.mark.parametrize("control_compression", ["xz", "zst", "gz", "none"])
def test_fakearchive_package_in_every_compression(
    tmp_path: Path, control_compression: str, data_compression: str
) -> None:
    record = FakeArchive(tmp_path).add(
        "trixie",
        "libfoo1",
        "1.2-3",
        depends="libc6 (>= 2.36)",
        files={"usr/lib/libfoo.so.1.2": b"\x7fELF", "usr/bin/foo": b"#!/bin/sh\n"},
        symlinks={"usr/lib/libfoo.so.1": "libfoo.so.1.2"},
        directories=["var/lib/foo"],
        modes={"usr/bin/foo": 0o4755, "var/lib/foo": 0o1777},
        control_files={"postinst": b"#!/bin/sh\nexit 0\n"},
        control_compression=control_compression,  # type: ignore[arg-type]
        data_compression=data_compression,  # type: ignore[arg-type]
    )
    got = deb.read(record.path.read_bytes(), "libfoo1 1.2-3 amd64")

    assert got.control["Package"] == "libfoo1"
    assert got.control["Depends"] == "libc6 (>= 2.36)"
    assert set(got.control_files) == {"control", "md5sums", "postinst"}
    assert got.control_files["postinst"] == b"#!/bin/sh\nexit 0\n"
    assert [shape(m) for m in got.members] == [
        ("", DIR, 0o755, "", b""),
        ("usr", DIR, 0o755, "", b""),
        ("usr/bin", DIR, 0o755, "", b""),
        ("usr/bin/foo", FILE, 0o4755, "", b"#!/bin/sh\n"),
        ("usr/lib", DIR, 0o755, "", b""),
        ("usr/lib/libfoo.so.1", SYMLINK, 0o777, "libfoo.so.1.2", b""),
        ("usr/lib/libfoo.so.1.2", FILE, 0o644, "", b"\x7fELF"),
        ("var", DIR, 0o755, "", b""),
        ("var/lib", DIR, 0o755, "", b""),
        ("var/lib/foo", DIR, 0o1777, "", b""),
    ]
    assert {(m.uid, m.gid, m.mtime) for m in got.members} == {(0, 0, EPOCH)}


LONG_DIR = "usr/share/" + "/".join(["a-rather-long-directory-name"] * 5)
LONG_TARGET = "../" * 40 + "usr/lib/target"


def build_tree(root: Path) -> dict[str, bytes]:
    """A package tree with every kind of member dpkg-deb writes; returns file contents."""
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: demo\nVersion: 2:1.0~rc1-1\nArchitecture: all\n"
        "Maintainer: Compose Tests <tests@example.invalid>\nDescription: demo\n more\n"
    )
    (root / "DEBIAN/postinst").write_text("#!/bin/sh\nexit 0\n")
    files = {
        "usr/bin/tool": b"#!/bin/sh\necho tool\n",
        "usr/bin/setuid": b"\x7fELF setuid",
        "usr/share/doc/demo/empty": b"",
        f"{LONG_DIR}/file-beyond-one-hundred-bytes.txt": b"long name\n",
        "etc/demo.conf": bytes(range(256)) * 40,
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "usr/bin/tool").chmod(0o755)
    (root / "usr/bin/setuid").chmod(0o4755)
    (root / "var/mail").mkdir(parents=True)
    (root / "var/mail").chmod(0o2775)
    (root / "var/tmp").mkdir()
    (root / "var/tmp").chmod(0o1777)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-alias")
    (root / "usr/bin/relative").symlink_to("tool")
    (root / "usr/bin/absolute").symlink_to("/usr/bin/tool")
    (root / "usr/bin/dangling").symlink_to("no/such/file")
    (root / "usr/bin/far").symlink_to(LONG_TARGET)
    for directory_ in (root / "DEBIAN", *(p for p in root.rglob("*") if p.is_dir())):
        if directory_.stat().st_mode & 0o7000 == 0:
            directory_.chmod(0o755)
    (root / "DEBIAN/postinst").chmod(0o755)
    return files | {"usr/bin/tool-alias": files["usr/bin/tool"]}


def dpkg_deb(*args: str | Path) -> str:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "TZ": "UTC", "LC_ALL": "C"}
    result = subprocess.run(
        ["dpkg-deb", *map(str, args)], capture_output=True, check=True, env=env
    )
    return result.stdout.decode()


def parse_dpkg_deb_listing(listing: str) -> list[tuple[str, str, int, str]]:
    """``dpkg-deb -c`` lines as (tree path, kind, mode, target)."""
    kinds = {"-": FILE, "d": DIR, "l": SYMLINK, "h": HARDLINK}
    rows = []
    for line in listing.splitlines():
        perms, _owner, _size, _date, _time, name = line.split(maxsplit=5)
        target = ""
        if perms[0] == "l":
            name, target = name.split(" -> ")
        elif perms[0] == "h":
            name, target = name.split(" link to ")
            target = target.removeprefix("./")
        mode = 0
        for i, char in enumerate(perms[1:]):
            if char not in "-ST":
                mode |= 1 << (8 - i)
        special = {3: (0o4000, "sS"), 6: (0o2000, "sS"), 9: (0o1000, "tT")}
        for index, (bit, chars) in special.items():
            if perms[index] in chars:
                mode |= bit
        path = name.removeprefix("./").rstrip("/")
        rows.append((path, kinds[perms[0]], mode, target))
    return rows


@needs_dpkg_deb
@pytest.mark.parametrize("compression", ["xz", "zstd", "gzip", "none"])
def test_dpkg_deb_package_matches_dpkg_deb_listing(tmp_path: Path, compression: str) -> None:
    files = build_tree(tmp_path / "root")
    package = tmp_path / "demo.deb"
    dpkg_deb("--root-owner-group", f"-Z{compression}", "--build", tmp_path / "root", package)

    got = deb.read(package.read_bytes(), "demo 2:1.0~rc1-1 all")

    expected = parse_dpkg_deb_listing(dpkg_deb("--contents", package))
    assert [(m.path, m.kind, m.mode, m.target) for m in got.members] == expected
    assert got.members[0].path == ""
    for member in got.members:
        assert (member.uid, member.gid, member.mtime) == (0, 0, EPOCH)
        if member.kind == FILE:
            assert member.data == files[member.path], member.path
        else:
            assert member.data == b""
    links = {m.path: m.target for m in got.members if m.kind in (SYMLINK, HARDLINK)}
    assert links["usr/bin/far"] == LONG_TARGET
    assert links["usr/bin/tool-alias"] == "usr/bin/tool"
    assert links["usr/bin/absolute"] == "/usr/bin/tool"
    long_name = f"{LONG_DIR}/file-beyond-one-hundred-bytes.txt"
    assert len(long_name) > 100 and any(m.path == long_name for m in got.members)
    assert got.control["Version"] == "2:1.0~rc1-1"
    assert got.control["Description"] == "demo\nmore"
    assert set(got.control_files) == {"control", "postinst"}
    assert got.control_files["postinst"] == b"#!/bin/sh\nexit 0\n"


# --------------------------------------------------------------------------------------
# Dialects and container details that must be read, not refused


def test_pax_headers_give_long_names_targets_and_big_ids() -> None:
    name = "./usr/share/" + "é" * 120
    data_tar = tar(
        directory("./"),
        directory("./usr/"),
        directory("./usr/share/"),
        entry(name, data=b"pax", uid=10_000_000),
        entry("./usr/share/hard", tarfile.LNKTYPE, link=name),
        entry("./usr/share/soft", tarfile.SYMTYPE, mode=0o777, link="ü/" * 80),
        fmt=tarfile.PAX_FORMAT,
    )
    members = deb.read(make_deb(data_tar), WHERE).members
    assert members[3].path == name[2:]
    assert (members[3].uid, members[3].data) == (10_000_000, b"pax")
    assert shape(members[4]) == ("usr/share/hard", HARDLINK, 0o644, name[2:], b"")
    assert members[5].target == "ü/" * 80


def test_gnu_base256_numbers_and_ustar_prefix() -> None:
    long_path = "./usr/" + "d" * 90 + "/" + "f" * 90
    gnu = tar(entry("./big", data=b"x", uid=2**40), entry("./also", data=b"", uid=7))
    ustar = tar(directory("./usr/"), entry(long_path, data=b"p"), fmt=tarfile.USTAR_FORMAT)
    members = deb.read(make_deb(gnu), WHERE).members
    assert [(m.path, m.uid) for m in members] == [("big", 2**40), ("also", 7)]
    assert deb.read(make_deb(ustar), WHERE).members[1].path == long_path[2:]


def test_names_without_dot_slash_and_absolute_names_inside_the_tree() -> None:
    data_tar = tar(directory("usr/"), entry("usr/a", data=b"1"), entry("/usr/b", data=b"2"))
    assert [m.path for m in deb.read(make_deb(data_tar), WHERE).members] == [
        "usr",
        "usr/a",
        "usr/b",
    ]


def test_zstd_frames_without_content_size_and_several_frames() -> None:
    payload = GOOD_DATA_TAR + bytes(4096)
    streamer = zstandard.ZstdCompressor().compressobj()
    unsized = streamer.compress(payload[:3000]) + streamer.flush()
    second = zstandard.ZstdCompressor(write_content_size=False).compress(payload[3000:])
    assert zstandard.frame_content_size(unsized) == -1
    package = ar(
        ("debian-binary", b"2.0\n"),
        ("control.tar.zst", zstandard.ZstdCompressor().compress(CONTROL_TAR)),
        ("data.tar.zst", unsized + second),
    )
    got = deb.read(package, WHERE)
    assert [m.path for m in got.members] == ["", "usr", "usr/x"]


def test_concatenated_xz_and_gzip_streams() -> None:
    half = len(GOOD_DATA_TAR) // 2
    for compress in (COMPRESS[".xz"], COMPRESS[".gz"]):
        stream = compress(GOOD_DATA_TAR[:half]) + compress(GOOD_DATA_TAR[half:])
        suffix = ".xz" if compress is COMPRESS[".xz"] else ".gz"
        package = ar(
            ("debian-binary", b"2.0\n"),
            ("control.tar", CONTROL_TAR),
            (f"data.tar{suffix}", stream),
        )
        assert deb.read(package, WHERE).members[2].data == b"hello"


def test_lzma_alone_data_and_gnu_ar_names_and_reserved_members() -> None:
    package = ar(
        ("debian-binary/", b"2.0\n"),
        ("_gpgorigin", b"signature"),
        ("control.tar.gz/", gzip.compress(CONTROL_TAR)),
        ("data.tar.lzma", lzma.compress(GOOD_DATA_TAR, format=lzma.FORMAT_ALONE)),
        ("future-member", b"ignored"),
    )
    got = deb.read(package, WHERE)
    assert got.control["Package"] == "hostile-pkg"
    assert got.members[2].data == b"hello"


def test_control_files_by_name() -> None:
    control_tar = tar(
        directory("./"),
        entry("./control", data=CONTROL),
        entry("./conffiles", data=b"/etc/x\n"),
        entry("./postinst", data=b"#!/bin/sh\n", mode=0o755),
    )
    got = deb.read(make_deb(control_tar=control_tar), WHERE)
    assert got.control_files == {
        "control": CONTROL,
        "conffiles": b"/etc/x\n",
        "postinst": b"#!/bin/sh\n",
    }
    assert got.control == {
        "Package": "hostile-pkg",
        "Version": "1.0-1",
        "Architecture": "amd64",
        "Description": "x\ny",
    }


# --------------------------------------------------------------------------------------
# Hostile and broken packages


def test_wrong_magic() -> None:
    refused(ar(("debian-binary", b"2.0\n"), magic=b"!<arch>X"), "no ar archive magic")
    refused(b"", "no ar archive magic")


def test_truncated_ar_member() -> None:
    package = make_deb()
    refused(package[:-40], "data.tar.xz", "truncated")
    refused(package[:70], "debian-binary", "truncated")


def test_truncated_ar_header_and_bad_size() -> None:
    refused(make_deb() + b"junk", "header truncated")
    bad_size = ar(("debian-binary", b"2.0\n")).replace(b"4         `", b"4x        `")
    refused(bad_size, "bad size")


def test_missing_debian_binary() -> None:
    package = ar(("control.tar", CONTROL_TAR), ("data.tar", GOOD_DATA_TAR))
    refused(package, "not debian-binary")
    refused(ar(), "no debian-binary")


@pytest.mark.parametrize("version", [b"3.0\n", b"1.0\n", b"2.0", b"20\n", b"2.x\n"])
def test_unsupported_debian_binary(version: bytes) -> None:
    refused(make_deb(version=version), "debian-binary must be 2.x")


def test_members_missing_misnamed_or_out_of_order() -> None:
    binary = ("debian-binary", b"2.0\n")
    refused(ar(binary), "no control.tar")
    refused(ar(binary, ("control.tar", CONTROL_TAR)), "no data.tar")
    refused(ar(binary, ("data.tar", GOOD_DATA_TAR)), "'data.tar'", "control.tar")
    refused(ar(binary, ("control.tar.bz2", bz2.compress(CONTROL_TAR))), "control.tar.bz2")
    refused(
        ar(binary, ("control.tar", CONTROL_TAR), ("data.tar.lz4", b"")), "'data.tar.lz4'"
    )


@pytest.mark.parametrize(
    "name",
    [
        "./usr/../../etc/passwd",
        "../etc/passwd",
        "./..",
        "usr/..",
        "/../etc/passwd",
        "//../etc/shadow",
        "./usr/./x",
        "./usr//x",
    ],
)
def test_escaping_or_unclean_paths(name: str) -> None:
    refused(make_deb(tar(directory("./"), entry(name, data=b"x"))), repr(name))


@pytest.mark.parametrize("link", ["../../etc/passwd", "/../etc/passwd"])
def test_hardlink_target_leaving_the_tree(link: str) -> None:
    refused(make_deb(tar(entry("./x", tarfile.LNKTYPE, link=link))), repr(link))


def test_duplicate_member() -> None:
    data_tar = tar(entry("./usr/x", data=b"1"), entry("usr/x", data=b"2"))
    refused(make_deb(data_tar), "'usr/x'", "twice")
    refused(make_deb(tar(directory("./usr/"), directory("./usr"))), "twice")


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "fifo"),
        (tarfile.GNUTYPE_SPARSE, "sparse"),
        (b"Z", "unknown type"),
    ],
)
def test_device_and_special_members(kind: bytes, what: str) -> None:
    refused(make_deb(tar(directory("./"), entry("./dev/null", kind))), "./dev/null", what)


def test_pax_global_header() -> None:
    data_tar = tar(entry("./x", data=b"1"), fmt=tarfile.PAX_FORMAT, pax_global={"a": "b"})
    refused(make_deb(data_tar), "pax global header")


@pytest.mark.parametrize(
    "data_tar",
    [
        tar(entry("./x", tarfile.LNKTYPE, link="./missing")),
        tar(entry("./x", tarfile.LNKTYPE, link="./y"), entry("./y", data=b"later")),
        tar(directory("./d/"), entry("./x", tarfile.LNKTYPE, link="./d/")),
        tar(entry("./s", tarfile.SYMTYPE, link="y"), entry("./x", tarfile.LNKTYPE, link="s")),
        tar(entry("./x", tarfile.LNKTYPE, link="./x")),
    ],
    ids=["missing", "later", "directory", "symlink", "itself"],
)
def test_hardlink_to_anything_but_an_earlier_file(data_tar: bytes) -> None:
    refused(make_deb(data_tar), "hardlink", "not a regular file earlier in the archive")


def test_hardlink_chain_resolves_to_the_file() -> None:
    data_tar = tar(
        entry("./a", data=b"1"),
        entry("./b", tarfile.LNKTYPE, link="./a"),
        entry("./c", tarfile.LNKTYPE, link="b"),
    )
    assert [m.target for m in deb.read(make_deb(data_tar), WHERE).members] == ["", "a", "a"]


@pytest.mark.parametrize(
    "data_tar",
    [
        tar(entry("./usr/lib", tarfile.SYMTYPE, link="/etc"), entry("./usr/lib/x", data=b"")),
        tar(entry("./usr/lib/x/y", data=b""), entry("./usr/lib", tarfile.SYMTYPE, link="/")),
        tar(entry("./f", data=b"file"), entry("./f/inside", data=b"")),
    ],
    ids=["below-symlink", "symlink-after", "below-file"],
)
def test_member_below_a_non_directory(data_tar: bytes) -> None:
    refused(make_deb(data_tar), "lies below")


def test_symlink_without_target() -> None:
    refused(make_deb(tar(entry("./s", tarfile.SYMTYPE))), "'./s'", "no target")


def test_root_or_trailing_slash_for_non_directories() -> None:
    refused(make_deb(tar(entry("./", data=b"x"))), "directory name")
    refused(make_deb(tar(entry("./s/", tarfile.SYMTYPE, link="x"))), "directory name")


def test_links_and_directories_carrying_data() -> None:
    refused(make_deb(tar(entry("./s", tarfile.SYMTYPE, data=b"xx", link="t"))), "carries data")


def test_non_utf8_member_name() -> None:
    refused(make_deb(tar(entry("./caf\udce9", data=b""))), "not UTF-8")


def test_bad_header_checksum() -> None:
    data_tar = bytearray(GOOD_DATA_TAR)
    data_tar[512 + 3] ^= 0x01  # a byte in the name of the second header
    refused(make_deb(bytes(data_tar)), "checksum")


def test_tar_end_marker_missing_or_followed_by_data() -> None:
    headers_only = GOOD_DATA_TAR.rstrip(b"\x00")
    headers_only += bytes(-len(headers_only) % 512)
    refused(make_deb(headers_only), "no end-of-archive")
    refused(make_deb(GOOD_DATA_TAR + b"\x01" + bytes(511)), "after the end-of-archive")


def test_truncated_tar_member() -> None:
    data_tar = tar(entry("./big", data=b"x" * 5000))
    refused(make_deb(data_tar[:2048], data_name="data.tar"), "'./big'", "truncated")


def test_not_a_tar_header() -> None:
    refused(make_deb(b"\x01" * 1024 + bytes(1024)), "not a ustar or GNU tar header")


@pytest.mark.parametrize("suffix", [".xz", ".zst", ".gz", ".bz2", ""])
def test_oversize(suffix: str) -> None:
    data_tar = tar(entry("./zeros", data=bytes(1 << 20)))
    package = make_deb(data_tar, data_name=f"data.tar{suffix}")
    refused(package, f"data.tar{suffix}", "limit", max_size=64 * 1024)
    assert deb.read(package, WHERE, max_size=2 << 20).members[0].data == bytes(1 << 20)


def test_oversize_counts_control_and_data_together() -> None:
    limit = len(CONTROL_TAR) + len(GOOD_DATA_TAR)
    package = make_deb()
    assert deb.read(package, WHERE, max_size=limit).members
    refused(package, "data.tar.xz", "limit", max_size=limit - 1)
    refused(package, "control.tar.xz", "limit", max_size=len(CONTROL_TAR) - 1)


def test_zstd_bomb_without_content_size() -> None:
    streamer = zstandard.ZstdCompressor(level=19).compressobj()
    bomb = streamer.compress(bytes(256 << 20)) + streamer.flush()
    package = ar(("debian-binary", b"2.0\n"), ("control.tar", CONTROL_TAR), ("data.tar.zst", bomb))
    refused(package, "data.tar.zst", "limit", max_size=1 << 20)


def corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 8]) + data[middle + 8 :]


@pytest.mark.parametrize("suffix", [".xz", ".zst", ".gz", ".bz2", ".lzma"])
def test_corrupt_truncated_or_trailing_compressed_stream(suffix: str) -> None:
    payload = tar(entry("./noise", data=random.Random(1).randbytes(20000)))
    stream = COMPRESS[suffix](payload)
    name = f"data.tar{suffix}"
    control = ("control.tar", CONTROL_TAR)
    binary = ("debian-binary", b"2.0\n")
    refused(ar(binary, control, (name, corrupt(stream))), name)
    refused(ar(binary, control, (name, stream[: len(stream) // 2])), name, "truncated")
    refused(ar(binary, control, (name, stream[:-1])), name)
    refused(ar(binary, control, (name, b"")), name)
    if suffix != ".lzma":  # an lzma-alone stream has no end marker to stop at
        refused(ar(binary, control, (name, stream + b"garbage!")), name)


def test_corrupt_control_tar() -> None:
    package = make_deb(control_tar=CONTROL_TAR[:700], control_name="control.tar.xz")
    refused(package, "control.tar.xz")


def test_control_tar_contents() -> None:
    no_control = tar(directory("./"), entry("./md5sums", data=b""))
    refused(make_deb(control_tar=no_control), "no control file")
    not_utf8 = tar(entry("./control", data=b"Package: \xff\n"))
    refused(make_deb(control_tar=not_utf8), "not UTF-8")
    not_deb822 = tar(entry("./control", data=b"no colon here\n"))
    refused(make_deb(control_tar=not_deb822), "control")
    linked = tar(entry("./control", data=CONTROL), entry("./postinst", tarfile.SYMTYPE, link="x"))
    refused(make_deb(control_tar=linked), "'postinst'", "not a plain file")
    nested = tar(entry("./control", data=CONTROL), entry("./sub/file", data=b""))
    refused(make_deb(control_tar=nested), "'sub/file'")


def test_mutated_packages_never_escape_as_other_errors() -> None:
    """Random damage to real packages gives a value or a FormatError, nothing else."""
    seeds = [
        make_deb(GOOD_DATA_TAR, "data.tar", CONTROL_TAR, "control.tar"),
        make_deb(
            tar(
                entry("./" + "n" * 150, data=b"x" * 700),
                entry("./l", tarfile.SYMTYPE, link="t" * 150),
                entry("./h", tarfile.LNKTYPE, link="./" + "n" * 150),
                fmt=tarfile.PAX_FORMAT,
            ),
            "data.tar",
            CONTROL_TAR,
            "control.tar",
        ),
        make_deb(data_name="data.tar.zst"),
        make_deb(data_name="data.tar.gz"),
    ]
    rng = random.Random(20260101)
    for _ in range(1500):
        damaged = bytearray(rng.choice(seeds))
        for _ in range(rng.choice([1, 2, 8])):
            at = rng.randrange(len(damaged))
            if rng.random() < 0.85:
                damaged[at] = rng.choice([rng.randrange(256), *b"0 ./17L2x5\x00\x80\xff"])
            else:
                del damaged[at : at + rng.randrange(1, 600)]
            if not damaged:
                damaged = bytearray(b"!")
        try:
            deb.read(bytes(damaged), WHERE, max_size=1 << 20)
        except FormatError as error:
            assert error.message.startswith(WHERE)
