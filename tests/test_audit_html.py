"""The HTML audit page: built from hand-made reports of two architectures, checked as
markup, then opened in a real headless Chromium (its DOM and a screenshot) so that what a
reader sees is what the audit says, and a hostile package name stays text."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from composer.audit.html import human_size, is_python_extension, licence_family, render
from composer.audit.report import (
    AuditedPackage,
    AuditReport,
    LicenceUse,
    Link,
    PackageLicences,
    ShippedFile,
    Violation,
)
from composer.errors import ComposeError

TITLE = "Audit of py313"
EPOCH = 1_735_689_600  # 2025-01-01 00:00 UTC
EVIL = "evil<script>document.title='pwned';document.body.dataset.pwned='1'</script>"
TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
KIB = 1024
MIB = 1024 * KIB


def _files(paths_sizes: list[tuple[str, int]]) -> tuple[ShippedFile, ...]:
    return tuple(ShippedFile(p, hashlib.sha256(p.encode()).hexdigest(), s)
                 for p, s in sorted(paths_sizes))


def _pkg(name: str, version: str, arch: str, files: list[tuple[str, int]], expression: str,
         ids: tuple[str, ...], machine_readable: bool = True, source: str = "",
         uses: tuple[LicenceUse, ...] = (), notes: tuple[str, ...] = ()) -> AuditedPackage:
    shipped = _files(files)
    if not uses and machine_readable:
        uses = (LicenceUse(("*",), expression, expression, tuple(f.path for f in shipped),
                           "all"),)
    return AuditedPackage(
        name=name, version=version, architecture=arch, source=source or name,
        source_version=version, deb_sha256="0" * 64, deb_size=1000,
        filename=f"pool/main/x/{name}.deb", archive="debian", suite="trixie", files=shipped,
        licences=PackageLicences(expression, ids, machine_readable, uses,
                                 f"usr/share/doc/{name}/copyright", notes),
    )


def _report(arch: str, scale: float) -> AuditReport:
    """~10 packages of varied licences and sizes; ``scale`` makes the architectures differ."""
    t = TRIPLET[arch]
    lib = f"usr/lib/{t}"
    dyn = "usr/lib/python3.13/lib-dynload"
    ext = f"cpython-313-{t}.so"

    def sz(n: int) -> int:
        return int(n * scale)

    readline_uses = (
        LicenceUse(("*",), "GPL-3.0-or-later", "GPL-3+",
                   (f"{lib}/libreadline.so.8.2", f"{lib}/libhistory.so.8.2"), "all"),
        LicenceUse(("doc/*",), "GFDL-1.3-or-later", "GFDL-1.3+", (), "unshipped"),
    )
    packages = [
        _pkg("libc6", "2.41-12", arch,
             [(f"{lib}/libc.so.6", sz(2 * MIB)), (f"{lib}/libm.so.6", sz(900 * KIB)),
              (f"usr/lib/{t}/gconv/UTF-16.so", sz(40 * KIB))] +
             [(f"{lib}/gconv/X{i}.so", sz(80 * KIB)) for i in range(40)],
             "LGPL-2.1-or-later", ("LGPL-2.1-or-later",), source="glibc"),
        _pkg("libpython3.13-stdlib", "3.13.5-2", arch,
             [(f"usr/lib/python3.13/m{i}.pyc", sz(190 * KIB)) for i in range(80)]
             + [(f"{dyn}/readline.{ext}", sz(30 * KIB)), (f"{dyn}/_ssl.{ext}", sz(200 * KIB)),
                (f"{dyn}/_gdbm.{ext}", sz(20 * KIB))],
             "PSF-2.0", ("PSF-2.0",), source="python3.13"),
        _pkg("libpython3.13-minimal", "3.13.5-2", arch,
             [(f"usr/lib/python3.13/n{i}.pyc", sz(60 * KIB)) for i in range(40)],
             "PSF-2.0 AND Apache-2.0", ("Apache-2.0", "PSF-2.0"), source="python3.13"),
        _pkg("python3.13-minimal", "3.13.5-2", arch, [("usr/bin/python3.13", sz(6 * MIB))],
             "PSF-2.0", ("PSF-2.0",), source="python3.13"),
        _pkg("libssl3t64", "3.5.1-1", arch,
             [(f"{lib}/libssl.so.3", sz(700 * KIB)), (f"{lib}/libcrypto.so.3", sz(5 * MIB))],
             "Apache-2.0", ("Apache-2.0",), source="openssl"),
        _pkg("libreadline8t64", "8.2-6", arch,
             [(f"{lib}/libreadline.so.8.2", sz(330 * KIB)),
              (f"{lib}/libhistory.so.8.2", sz(50 * KIB))],
             "GPL-3.0-or-later", ("GPL-3.0-or-later",), source="readline",
             uses=readline_uses),
        _pkg("libgcc-s1", "14.2.0-19", arch, [(f"{lib}/libgcc_s.so.1", sz(180 * KIB))],
             "GPL-3.0-or-later WITH GCC-exception-3.1",
             ("GCC-exception-3.1", "GPL-3.0-or-later"), source="gcc-14"),
        _pkg("tzdata", "2025b-4", arch,
             [(f"usr/share/zoneinfo/Z{i}", sz(3 * KIB)) for i in range(120)],
             "LicenseRef-public-domain", ("LicenseRef-public-domain",), machine_readable=False,
             notes=("not DEP-5: licence detected from prose",)),
        _pkg("libmpdec4", "2.5.1-2", arch, [(f"{lib}/libmpdec.so.4", sz(250 * KIB))],
             "BSD-2-Clause", ("BSD-2-Clause",), source="mpdecimal"),
        _pkg("libnss-weird", "1.0-1", arch, [(f"{lib}/libnss_weird.so.2", sz(60 * KIB))],
             "MPL-2.0 AND LicenseRef-weird", ("LicenseRef-weird", "MPL-2.0")),
        _pkg(EVIL, "1<b>2</b>", arch,
             [("usr/share/<img src=x onerror=alert(1)>", 12 * KIB)],
             "AGPL-3.0-only", ("AGPL-3.0-only",)),
    ]
    links = (
        Link(f"{dyn}/readline.{ext}", "libpython3.13-stdlib", "libreadline.so.8",
             f"{lib}/libreadline.so.8", "libreadline8t64"),
        Link(f"{lib}/libreadline.so.8.2", "libreadline8t64", "libc.so.6", f"{lib}/libc.so.6",
             "libc6"),
        Link("usr/bin/python3.13", "python3.13-minimal", "libc.so.6", f"{lib}/libc.so.6",
             "libc6"),
        Link("usr/bin/python3.13", "python3.13-minimal", "libm.so.6", f"{lib}/libm.so.6",
             "libc6"),
        Link(f"{dyn}/_ssl.{ext}", "libpython3.13-stdlib", "libssl.so.3", f"{lib}/libssl.so.3",
             "libssl3t64"),
        Link(f"{dyn}/_ssl.{ext}", "libpython3.13-stdlib", "libgcc_s.so.1",
             f"{lib}/libgcc_s.so.1", "libgcc-s1"),
        Link(f"{dyn}/_gdbm.{ext}", "libpython3.13-stdlib", "libgdbm.so.6", None, None),
    )
    violations = (
        Violation("libreadline8t64", "GPL-3.0-or-later", "GPL-3.0*",
                  "usr/share/doc/libreadline8t64/copyright",
                  (("python3.13", "libpython3.13-stdlib", "libreadline8t64"),),
                  allowed="only the interactive prompt uses readline"),
        Violation(EVIL, "AGPL-3.0-only", "AGPL-*", f"usr/share/doc/{EVIL}/copyright",
                  (("python3.13", EVIL),)),
    )
    return AuditReport(
        profile="py313", architecture=arch, digest="sha256:" + hashlib.sha256(
            arch.encode()).hexdigest(), epoch=EPOCH, packages=tuple(packages), links=links,
        violations=violations, sources=(("debian", "trixie", "ab" * 32),),
        generated=_files([("etc/passwd", 200), ("etc/ld.so.cache", sz(30 * KIB))]),
    )


REPORTS = (_report("amd64", 1.0), _report("arm64", 0.8))


@pytest.fixture(scope="module")
def page() -> str:
    return render(REPORTS, TITLE)


# --- markup ---------------------------------------------------------------------------------


class _Parser(HTMLParser):
    """Collects tags, the text per element and parse problems."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr", "rect", "line", "path"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.bar_depth: list[int] = []
        self.bars = 0
        self.titled_bars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in self.VOID:
            return
        self.stack.append(tag)
        classes = (dict(attrs).get("class") or "").split()
        if tag == "g" and "bar" in classes:
            self.bars += 1
            self.bar_depth.append(len(self.stack))
        if tag == "title" and self.bar_depth and len(self.stack) == self.bar_depth[-1] + 1:
            self.titled_bars += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        if self.bar_depth and self.bar_depth[-1] == len(self.stack):
            self.bar_depth.pop()
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(doc: str) -> _Parser:
    parser = _Parser()
    parser.feed(doc)
    parser.close()
    return parser


def test_markup_is_well_formed(page: str) -> None:
    parsed = _parse(page)
    assert not parsed.problems
    assert parsed.stack == []
    assert page.startswith("<!DOCTYPE html>")
    assert [t for t, _ in parsed.tags].count("svg") == len(REPORTS)
    assert parsed.bars == sum(len(r.packages) + 1 for r in REPORTS)  # + generated files
    assert parsed.titled_bars == parsed.bars


def test_nothing_external_and_no_script(page: str) -> None:
    parsed = _parse(page)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    for _, attrs in parsed.tags:
        for key, value in attrs.items():
            assert not key.startswith("on"), key
            assert "://" not in (value or "") or value == "http://www.w3.org/2000/svg"
    assert "@import" not in page and "url(http" not in page
    assert "Content-Security-Policy" in page


def test_untrusted_strings_are_text(page: str) -> None:
    text = "".join(_parse(page).text)
    assert EVIL in text
    assert "usr/share/<img src=x onerror=alert(1)>" in text
    assert "1<b>2</b>" in text
    assert "<script>" not in page


def test_deterministic_and_content(page: str) -> None:
    assert render(REPORTS, TITLE) == page
    text = " ".join(_parse(page).text)
    assert "2025-01-01 00:00 UTC" in text
    for r in REPORTS:
        assert r.digest in text
    assert "libreadline.so.8" in text and f"readline.cpython-313-{TRIPLET['arm64']}.so" in text
    assert "only the interactive prompt uses readline" in text
    assert "libgdbm.so.6" in text


def test_helpers() -> None:
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * MIB + MIB // 2) == "5.5 MiB"
    assert licence_family("GPL-2.0-only") == "gpl"
    assert licence_family("CC-BY-SA-4.0") == "weak"
    assert licence_family("AGPL-3.0-or-later") == "gpl"
    assert licence_family("LGPL-2.1-or-later") == "lgpl"
    assert licence_family("MPL-2.0") == "weak"
    assert licence_family("Zlib") == "permissive"
    assert licence_family("LicenseRef-public-domain") == "permissive"
    assert licence_family("LicenseRef-weird") == "unknown"
    assert licence_family("GCC-exception-3.1") is None
    assert is_python_extension("usr/lib/python3/dist-packages/x/_y.abi3.so")
    assert not is_python_extension("usr/lib/x86_64-linux-gnu/libc.so.6")
    with pytest.raises(ComposeError):
        render((), TITLE)


def test_single_architecture_and_empty_image() -> None:
    empty = AuditReport(profile="bare", architecture="riscv64", digest="", epoch=0,
                        packages=(), links=())
    doc = render((empty,), "bare")
    parsed = _parse(doc)
    assert not parsed.problems and parsed.stack == []
    assert [t for t, _ in parsed.tags].count("svg") == 1
    assert 'class="arches"' not in doc  # no architecture switch for one
    text = " ".join(parsed.text)
    assert "1970-01-01 00:00 UTC" in text and "not built" in text
    assert "Every needed library is in the image." in text
    assert "No shipped licence matches a deny rule" in text


# --- Chromium ---------------------------------------------------------------------------------


def _installing() -> bool:
    """Whether apt or dpkg runs right now (Chromium may be on its way)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("apt", "apt-get", "dpkg", "unattended-upgr"):
                return True
        except OSError:
            continue
    return False


def _chromium() -> str | None:
    deadline = time.monotonic() + 240
    while True:
        found = shutil.which("chromium")
        if found or time.monotonic() > deadline or not _installing():
            return found
        time.sleep(5)


@dataclass(frozen=True)
class Browser:
    dom: str
    png: Path
    html: Path


@pytest.fixture(scope="module")
def browser(page: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    work = tmp_path_factory.mktemp("audit-html")
    doc = work / "audit.html"
    doc.write_text(page, encoding="utf-8")
    png = work / "audit.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--force-device-scale-factor=1"]
    env = {k: v for k, v in os.environ.items() if k not in ("http_proxy", "https_proxy")}
    dump = subprocess.Popen(
        [exe, *flags, f"--user-data-dir={work / 'profile-dom'}", "--dump-dom", doc.as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    shot = subprocess.Popen(
        [exe, *flags, f"--user-data-dir={work / 'profile-shot'}", f"--screenshot={png}",
         "--window-size=1280,2000", doc.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work)
    try:
        out, _ = dump.communicate(timeout=60)
        shot.wait(timeout=60)
    finally:
        for proc in (dump, shot):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    yield Browser(out.decode("utf-8"), png, doc)
    shutil.rmtree(work / "profile-dom", ignore_errors=True)
    shutil.rmtree(work / "profile-shot", ignore_errors=True)


def test_chromium_dom_shows_the_audit(browser: Browser) -> None:
    parsed = _parse(browser.dom)
    text = " ".join(parsed.text)
    titles = [t for t, _ in parsed.tags if t == "title"]
    assert titles
    assert f"<title>{TITLE}</title>" in browser.dom  # the injected script did not run
    assert "pwned" not in (next((a.get("data-pwned") for t, a in parsed.tags if t == "body"),
                                None) or "")
    assert not any(t == "script" for t, _ in parsed.tags)
    assert EVIL in text
    for name in ("libc6", "libpython3.13-stdlib", "libssl3t64", "libreadline8t64", "tzdata",
                 "libmpdec4", "libgcc-s1", "libnss-weird"):
        assert name in text, name
    for expression in ("LGPL-2.1-or-later", "PSF-2.0", "Apache-2.0",
                       "GPL-3.0-or-later WITH GCC-exception-3.1", "MPL-2.0 AND LicenseRef-weird"):
        assert expression in text, expression
    ssl = REPORTS[0].packages[4]
    assert ssl.name == "libssl3t64" and human_size(ssl.shipped_size) in text
    assert "detected from prose" in text
    for arch, triplet in TRIPLET.items():
        assert arch in text
        line = (f"libreadline.so.8 ← usr/lib/python3.13/lib-dynload/readline.cpython-313-"
                f"{triplet}.so (libpython3.13-stdlib)")
        assert line in " ".join(text.split()), line
    assert "libgdbm.so.6" in text
    assert "only the interactive prompt uses readline" in text


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Rows of RGB(A) bytes of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        prev = bytes(line)
        rows.append(prev)
    return width, channels, rows


def test_chromium_screenshot_is_a_drawn_chart(browser: Browser) -> None:
    assert browser.png.is_file() and browser.png.stat().st_size > 10_000
    width, channels, rows = _png_pixels(browser.png)
    assert (width, len(rows)) == (1280, 2000)
    colours: set[bytes] = set()
    for row in rows[::3]:
        colours.update(row[i:i + 3] for i in range(0, len(row), channels * 3))
    assert len(colours) > 200, len(colours)
    family_fills = {bytes.fromhex(c) for c in ("d64541", "ef8a2c", "3a9d5d", "9aa5b1")}
    assert family_fills <= colours, "every family colour is drawn"
