"""``compose audit`` and the ``[policy]`` gate through the real CLI (a subprocess), on a
signed fake archive whose packages carry DEP-5 and prose copyright files and real ELF
objects copied from the host (see ``tests.audithelp``). What the audit should find is
worked out here from the copyright files written by the tests and from the objects'
``DT_NEEDED`` read with ``struct``; the SBOMs are checked with spdx-tools and
cyclonedx-python-lib.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.audithelp import (
    ALL,
    LD_SO,
    LIBC_COPYRIGHT,
    LIBDIR,
    LIBZ_COPYRIGHT,
    VERSIONS,
    HostObjects,
    host_objects,
    make_world,
    profile,
)
from tests.conftest import fixed_env, isolated_env
from tests.fakearchive import FakeArchive

CLI = Callable[..., tuple[int, str, str]]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HOST = host_objects()
pytestmark = pytest.mark.skipif(HOST is None,
                                reason="needs an x86-64 glibc host with zlib and programs")
PROSE_PROPERTY = "compose:licence-detected-from-prose"


def host() -> HostObjects:
    assert HOST is not None
    return HOST


# -- what the audit should find, worked out independently --------------------------------


def owners() -> dict[str, str]:
    """Tree path of every ELF object and soname link of the world -> its package."""
    h = host()
    return {f"{LIBDIR}/libc.so.6": "libc6", f"{LIBDIR}/{LD_SO}": "libc6",
            f"{LIBDIR}/{h.libz_name}": "libz-fake", f"{LIBDIR}/libz.so.1": "libz-fake",
            "usr/bin/zfix": "zfix", "usr/bin/dual-tool": "dual"}


def soname_files() -> dict[str, str]:
    """Soname -> the real file it resolves to in the image."""
    return {"libc.so.6": f"{LIBDIR}/libc.so.6", LD_SO: f"{LIBDIR}/{LD_SO}",
            "libz.so.1": f"{LIBDIR}/{host().libz_name}"}


def expected_links() -> set[tuple[str, str, str, str | None, str | None]]:
    """(binary, package, needed, resolved, provider) for every DT_NEEDED that ships."""
    own, files = owners(), soname_files()
    out = set()
    for binary, names in host().needed().items():
        for name in names:
            resolved = files.get(name)
            out.add((binary, own[binary], name, resolved, own[resolved] if resolved else None))
    return out


def expected_loaders() -> dict[str, dict[str, list[str]]]:
    """Library -> the objects loading it directly, and those loading it only through
    other libraries."""
    needs: dict[str, set[str]] = {b: set() for b in host().needed()}
    for binary, _, _, resolved, _ in expected_links():
        if resolved:
            needs[binary].add(resolved)
    out: dict[str, dict[str, list[str]]] = {}
    for binary, direct in needs.items():
        seen: set[str] = set()
        todo = list(direct)
        while todo:
            lib = todo.pop()
            if lib in seen or lib == binary:
                continue
            seen.add(lib)
            todo += needs.get(lib, set())
        for lib in seen:
            slot = out.setdefault(lib, {"direct": [], "indirect": []})
            slot["direct" if lib in direct else "indirect"].append(binary)
    return {lib: {k: sorted(v) for k, v in d.items()} for lib, d in out.items()}


# -- fixtures ------------------------------------------------------------------------------


@dataclass
class World:
    archive: FakeArchive
    url: str
    project: Path
    env: dict[str, str]
    compose: CLI

    @property
    def mirror(self) -> str:
        return f"--mirror=debian={self.url}"

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """``compose *args`` in the project; never a traceback, whatever the outcome."""
        rc, out, err = self.compose(env or self.env, *args, cwd=self.project)
        assert "Traceback" not in out + err, out + err
        return rc, out, err

    def audit(self, name: str, *args: str | Path,
              env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return self.run("audit", f"profiles/{name}.toml", *args, self.mirror, env=env)

    def write_profile(self, name: str, include: list[str], policy: str = "") -> Path:
        path = self.project / "profiles" / f"{name}.toml"
        path.write_text(profile(name, include, policy))
        return path

    def lock_path(self, name: str) -> Path:
        return self.project / "locks" / f"{name}.lock.toml"

    def locked(self, name: str) -> dict[str, dict[str, Any]]:
        doc = tomllib.loads(self.lock_path(name).read_text())
        return {p["name"]: p for p in doc["package"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_env: dict[str, str],
          compose: CLI) -> Iterator[World]:
    archive = make_world(tmp_path_factory.mktemp("mirror"), host())
    project = tmp_path_factory.mktemp("project")
    (project / "profiles").mkdir()
    with archive.serve() as url:
        w = World(archive, url, project, fixed_env(module_env), compose)
        w.write_profile("main", ALL)
        rc, _, err = w.run("lock", "profiles/main.toml", w.mirror)
        assert rc == 0, err
        yield w


@dataclass(frozen=True)
class Outputs:
    table: str
    gpl: str
    json: list[dict[str, Any]]
    spdx: bytes
    cdx: bytes
    html: str


@pytest.fixture(scope="module")
def outputs(world: World, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """Every rendering of the main profile's audit (the files written with -o)."""
    where = tmp_path_factory.mktemp("audit")
    texts = {}
    for what in ("table", "gpl"):
        rc, out, err = world.audit("main", *(["--gpl"] if what == "gpl" else []))
        assert rc == 0, err
        texts[what] = out
    files = {}
    for what, flags in (("json", ["--json"]), ("spdx", ["--sbom", "spdx"]),
                        ("cdx", ["--sbom", "cyclonedx"]), ("html", ["--html"])):
        path = where / f"{what}.out"
        rc, out, err = world.audit("main", *flags, "-o", path)
        assert rc == 0, err
        assert out == "", "with -o nothing goes to stdout"
        assert f"wrote {path}" in err
        files[what] = path.read_bytes()
    return Outputs(texts["table"], texts["gpl"], json.loads(files["json"]), files["spdx"],
                   files["cdx"], files["html"].decode())


def table_rows(table: str) -> dict[str, list[str]]:
    """The table's cells by package name: version, licences, size, copyleft."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("package "))
    rows = {}
    for line in lines[start + 1:]:
        if re.match(r"\d+ packages, ", line):
            break
        name, *cells = re.split(r"\s{2,}", line.strip())
        rows[name] = cells + [""] * (4 - len(cells))
    return rows


def gpl_blocks(text: str) -> dict[str, list[str]]:
    """The --gpl view by package: its heading, then its indented lines."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines()[1:]:
        if line and not line.startswith(" "):
            current = blocks.setdefault(line.split(" ", 1)[0], [line])
        elif line:
            current.append(line.strip())
    return blocks


def spdx_problems(path: Path) -> list[str]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def cdx_problem(data: bytes) -> object:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())


# -- 1. the table ----------------------------------------------------------------------------


def test_table_lists_each_package_with_its_licences(world: World, outputs: Outputs) -> None:
    first = outputs.table.splitlines()[0]
    assert re.fullmatch(rf"main \[amd64\] {DIGEST.pattern}", first), first
    rows = table_rows(outputs.table)
    assert set(rows) == {*ALL, "libz-fake", "libc6"}
    assert {name: row[0] for name, row in rows.items()} == VERSIONS
    licences = {name: (row[1], row[3]) for name, row in rows.items()}
    assert licences == {
        "libc6": ("LGPL-2.1-or-later [+1 possible]", "LGPL"),
        "libz-fake": ("GPL-3.0-or-later", "GPL"),
        "zfix": ("ISC AND MIT", ""),  # doc/* is GPL-2+, and documentation does not ship
        "dual": ("BSD-3-Clause OR GPL-2.0-only", "GPL"),
        "prose-data": ("LGPL-2.1-or-later (detected)", "LGPL"),
        "nocopy": (licences["nocopy"][0], ""),
    }
    assert licences["nocopy"][0].startswith("LicenseRef-unknown")
    # Biggest first: glibc's two objects outweigh everything else.
    assert next(iter(rows)) == "libc6"
    assert re.search(r"^6 packages, .*; 4 of the GPL family;", outputs.table, re.M)


def test_table_names_the_library_the_image_lacks(outputs: Outputs) -> None:
    missing = [line for line in outputs.table.splitlines() if line.startswith("missing:")]
    assert len(missing) == 1, missing
    assert "/usr/bin/dual-tool (dual)" in missing[0]
    assert f"needs {host().missing_soname}" in missing[0]
    assert "policy:" not in outputs.table, "no policy, no verdicts"


def test_no_copyright_file_is_not_called_detected_from_prose(outputs: Outputs) -> None:
    rows = table_rows(outputs.table)
    assert rows["nocopy"][1] == "LicenseRef-unknown (no copyright file)"
    assert re.search(r"; 1 with licences detected from a copyright file", outputs.table)
    spdx = {p["name"]: p for p in json.loads(outputs.spdx)["packages"]}
    assert "detected from the prose" not in spdx["nocopy"]["comment"]
    cdx = {c["name"]: c for c in json.loads(outputs.cdx)["components"]}
    assert PROSE_PROPERTY not in {p["name"] for p in cdx["nocopy"]["properties"]}
    row = re.search(r"<strong>nocopy</strong>.*?</tr>", outputs.html, re.S)
    assert row is not None and "detected from prose" not in row.group()


# -- 2. --gpl ----------------------------------------------------------------------------------


def test_gpl_view_shows_copyleft_code_and_what_links_it(outputs: Outputs) -> None:
    assert outputs.gpl.startswith("main [amd64]: GPL, LGPL and AGPL code that ships\n")
    blocks = gpl_blocks(outputs.gpl)
    assert set(blocks) == {"dual", "libc6", "libz-fake", "prose-data"}, "not zfix nor nocopy"
    loaders = expected_loaders()
    own = owners()

    libz = f"{LIBDIR}/{host().libz_name}"
    z = blocks["libz-fake"]
    assert z[0] == f"libz-fake {VERSIONS['libz-fake']}: GPL-3.0-or-later"
    users = ", ".join(f"/{b} ({own[b]})" for b in loaders[libz]["direct"])
    assert f"/{libz} linked by {users}" in z
    assert "/usr/bin/zfix (zfix)" in users

    c = blocks["libc6"]
    assert c[0] == f"libc6 {VERSIONS['libc6']}: LGPL-2.1-or-later"
    assert any(line.startswith("possibly compiled in") and line.endswith(": GPL-2.0-only")
               for line in c), c
    assert "GPL-2.0-only [compiled] Files: src/*.c -> 2 shipped file(s)" in c
    users = ", ".join(f"/{b} ({own[b]})" for b in loaders[f"{LIBDIR}/libc.so.6"]["direct"])
    assert f"/{LIBDIR}/libc.so.6 linked by {users}" in c

    users = ", ".join(f"/{b} ({own[b]})" for b in loaders[f"{LIBDIR}/{LD_SO}"]["indirect"])
    assert f"/{LIBDIR}/{LD_SO} loaded through others by {users}" in c

    prose = f"prose-data {VERSIONS['prose-data']}: LGPL-2.1-or-later (detected)"
    assert blocks["prose-data"][0] == prose
    assert blocks["dual"][0] == f"dual {VERSIONS['dual']}: BSD-3-Clause OR GPL-2.0-only"
    assert "ships 1 file(s); no shipped object loads them" in blocks["dual"]


def test_gpl_view_says_what_a_prose_licence_covers(outputs: Outputs) -> None:
    line = next(x for x in gpl_blocks(outputs.gpl)["prose-data"] if "[all]" in x)
    assert not re.search(r"Files:\s+->", line), line


# -- 3. --json -----------------------------------------------------------------------------------


def test_json_licences_and_their_uses(world: World, outputs: Outputs) -> None:
    (report,) = outputs.json
    assert report["profile"] == "main" and report["architecture"] == "amd64"
    pkgs = {p["name"]: p for p in report["packages"]}
    locked = world.locked("main")
    assert set(pkgs) == set(locked)
    for name, p in pkgs.items():
        assert p["version"] == VERSIONS[name]
        assert p["deb_sha256"] == locked[name]["sha256"]
        assert p["filename"] == locked[name]["filename"]

    def uses(name: str) -> list[tuple[list[str], str, str, list[str]]]:
        return [(u["files_globs"], u["licence"], u["how"], u["shipped"])
                for u in pkgs[name]["uses"]]

    objects = [f"{LIBDIR}/{LD_SO}", f"{LIBDIR}/libc.so.6"]
    libc = pkgs["libc6"]
    assert (libc["licences"], libc["ids"], libc["machine_readable"], libc["possible"]) == \
        ("LGPL-2.1-or-later", ["LGPL-2.1-or-later"], True, ["GPL-2.0-only"])
    assert uses("libc6") == [
        (["*"], "LGPL-2.1-or-later", "all", [*objects, f"usr/lib64/{LD_SO}"]),
        (["src/*.c"], "GPL-2.0-only", "compiled", objects),
    ]
    assert libc["copyright"] == "usr/share/doc/libc6/copyright"

    z = pkgs["libz-fake"]
    libz = [f"{LIBDIR}/libz.so.1", f"{LIBDIR}/{host().libz_name}"]
    assert uses("libz-fake") == [(["*"], "GPL-3.0-or-later", "all", libz)]
    assert (z["ids"], z["gpl_family"], z["possible"]) == (["GPL-3.0-or-later"], True, [])
    # What ships: the library, its soname link (counted as its target) and the copyright.
    assert z["shipped_size"] == (host().libz.stat().st_size + len(host().libz_name)
                                 + len(LIBZ_COPYRIGHT))

    assert uses("zfix") == [
        (["*"], "MIT", "all", ["usr/bin/zfix"]),
        (["tables/*"], "ISC", "matched", ["usr/share/zfix/tables/crc.txt"]),
        (["doc/*"], "GPL-2.0-or-later", "unshipped", []),
    ]
    assert (pkgs["zfix"]["ids"], pkgs["zfix"]["gpl_family"]) == (["ISC", "MIT"], False)

    assert uses("dual") == [(["*"], "BSD-3-Clause OR GPL-2.0-only", "all",
                             ["usr/bin/dual-tool"])]
    assert pkgs["dual"]["ids"] == ["BSD-3-Clause", "GPL-2.0-only"]

    prose = pkgs["prose-data"]
    assert (prose["licences"], prose["machine_readable"]) == ("LGPL-2.1-or-later", False)
    assert uses("prose-data") == [([], "LGPL-2.1-or-later", "all",
                                   ["usr/share/prose/words.txt"])]
    assert any("not machine-readable" in n for n in prose["notes"])

    none = pkgs["nocopy"]
    assert (none["licences"], none["ids"], none["copyright"], none["uses"]) == \
        ("LicenseRef-unknown", ["LicenseRef-unknown"], "", [])
    assert report["violations"] == []


def test_json_links_are_those_of_the_real_objects(outputs: Outputs) -> None:
    (report,) = outputs.json
    links = {(lk["binary"], lk["package"], lk["needed"], lk["resolved"], lk["provider"])
             for lk in report["links"]}
    assert links == expected_links()
    assert len(report["links"]) == len(links)
    assert report["missing"] == [
        {"binary": "usr/bin/dual-tool", "package": "dual", "needed": host().missing_soname,
         "resolved": None, "provider": None}]
    loaders = expected_loaders()
    for p in report["packages"]:
        want = {path: loaders[path] for path in loaders if owners()[path] == p["name"]}
        assert p["loaded_by"] == want, p["name"]


# -- 4. SBOMs --------------------------------------------------------------------------------------


def test_spdx_document(world: World, outputs: Outputs, tmp_path: Path) -> None:
    from packageurl import PackageURL

    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(outputs.spdx)
    assert spdx_problems(path) == []
    doc = json.loads(outputs.spdx)
    locked = world.locked("main")
    image, *pkgs = doc["packages"]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    by_name = {p["name"]: p for p in pkgs}
    assert set(by_name) == set(locked)
    for name, p in by_name.items():
        deb = world.archive.path(locked[name]["filename"]).read_bytes()
        assert p["checksums"] == [{"algorithm": "SHA256",
                                   "checksumValue": locked[name]["sha256"]}]
        assert hashlib.sha256(deb).hexdigest() == locked[name]["sha256"]
        (ref,) = p["externalRefs"]
        purl = PackageURL.from_string(ref["referenceLocator"])
        assert (purl.type, purl.namespace, purl.name, purl.version, purl.qualifiers) == \
            ("deb", "debian", name, VERSIONS[name], {"arch": "amd64"})
    assert by_name["zfix"]["externalRefs"][0]["referenceLocator"] == \
        "pkg:deb/debian/zfix@1.0-1?arch=amd64"
    assert {n: p["licenseDeclared"] for n, p in by_name.items()} == {
        "libc6": "LGPL-2.1-or-later", "libz-fake": "GPL-3.0-or-later", "zfix": "ISC AND MIT",
        "dual": "BSD-3-Clause OR GPL-2.0-only", "prose-data": "LGPL-2.1-or-later",
        "nocopy": "LicenseRef-unknown"}
    assert "detected from the prose of /usr/share/doc/prose-data/copyright" in \
        by_name["prose-data"]["comment"]

    # Files carry the bytes that ship: the host's own objects.
    files = {f["fileName"]: f for f in doc["files"]}
    ids = {name: f["SPDXID"] for name, f in files.items()}
    for tree, real in host().tree_paths().items():
        sums = {c["algorithm"]: c["checksumValue"] for c in files[f"./{tree}"]["checksums"]}
        assert sums["SHA256"] == hashlib.sha256(real.read_bytes()).hexdigest(), tree
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
            for r in doc["relationships"]}
    for binary, _, _, resolved, _ in expected_links():
        if resolved:
            assert (ids[f"./{binary}"], "DYNAMIC_LINK", ids[f"./{resolved}"]) in rels
    pid = {n: p["SPDXID"] for n, p in by_name.items()}
    assert (pid["zfix"], "DYNAMIC_LINK", pid["libz-fake"]) in rels
    assert (pid["zfix"], "DEPENDS_ON", pid["libz-fake"]) in rels
    assert (pid["libz-fake"], "DEPENDS_ON", pid["libc6"]) in rels
    assert world.url.split("//")[1].split("/")[0] not in outputs.spdx.decode()


def test_cyclonedx_document(world: World, outputs: Outputs) -> None:
    from packageurl import PackageURL

    assert cdx_problem(outputs.cdx) is None
    bom = json.loads(outputs.cdx)
    locked = world.locked("main")
    libs = {c["name"]: c for c in bom["components"] if c["type"] == "library"}
    assert set(libs) == set(locked)
    for name, c in libs.items():
        assert c["hashes"] == [{"alg": "SHA-256", "content": locked[name]["sha256"]}]
        purl = PackageURL.from_string(c["purl"])
        assert (purl.name, purl.version, purl.qualifiers) == \
            (name, VERSIONS[name], {"arch": "amd64"})
        assert c["purl"].startswith(f"pkg:deb/debian/{name}@")
    assert libs["libz-fake"]["licenses"] == [{"expression": "GPL-3.0-or-later",
                                             "acknowledgement": "declared"}]
    assert libs["dual"]["licenses"][0]["expression"] == "BSD-3-Clause OR GPL-2.0-only"
    prose = {p["name"]: p["value"] for p in libs["prose-data"]["properties"]}
    assert prose[PROSE_PROPERTY] == "true"
    assert PROSE_PROPERTY not in {p["name"] for p in libs["zfix"]["properties"]}
    shipped = {f["name"] for f in libs["libz-fake"]["components"]}
    assert {f"/{LIBDIR}/{host().libz_name}", f"/{LIBDIR}/libz.so.1"} <= shipped
    deps = {d["ref"]: set(d["dependsOn"]) for d in bom["dependencies"]}
    assert {"deb:amd64:libz-fake", "deb:amd64:libc6"} <= deps["deb:amd64:zfix"]
    assert world.url.split("//")[1].split("/")[0] not in outputs.cdx.decode()


def test_outputs_replace_files_whole(world: World, outputs: Outputs, tmp_path: Path) -> None:
    """-o renames a complete file into place: another name for the old file keeps the old
    bytes, and no temporary file is left behind."""
    target, other = tmp_path / "sbom.json", tmp_path / "keep.json"
    other.write_text("old\n")
    os.link(other, target)
    rc, out, err = world.audit("main", "--sbom", "cyclonedx", "-o", target)
    assert (rc, out) == (0, ""), err
    assert target.read_bytes() == outputs.cdx
    assert other.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "sbom.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    rc, out, err = world.audit("main", "--sbom", "cyclonedx")
    assert rc == 0, err
    assert out.encode() == outputs.cdx, "stdout carries the same bytes as -o"


def test_output_under_a_file_is_refused(world: World, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    rc, out, err = world.audit("main", "--json", "-o", tmp_path / "plain" / "audit.json")
    assert rc == 2 and out == ""
    assert re.search(r"^error: .*plain", err, re.M), err


# -- 5. HTML ---------------------------------------------------------------------------------


def test_html_page_is_self_contained_and_complete(world: World, outputs: Outputs) -> None:
    page = outputs.html
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>main audit</title>" in page
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src '
                     r"'none'", page)
    assert "<script" not in page.lower()
    urls = set(re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    for name, version in VERSIONS.items():
        assert f"<strong>{name}</strong>" in page or f">{name}<" in page, name
        assert version in page, version
    for licence in ("GPL-3.0-or-later", "LGPL-2.1-or-later", "BSD-3-Clause OR GPL-2.0-only",
                    "LicenseRef-unknown", "ISC AND MIT", "GPL-2.0-only"):
        assert licence in page, licence
    assert host().missing_soname in page
    assert world.url.split("//")[1].split("/")[0] not in page


# -- 6. the policy gate -----------------------------------------------------------------------


def assert_denied(rc: int, err: str, package: str, licence: str, copyright: str,
                  chain: str) -> None:
    """A policy refusal: exit 3, naming the package, its licence, the file carrying it and
    how a root brings it in; the hint points at allow-packages."""
    assert rc == 3, err
    assert re.search(r"^error: ", err, re.M), err
    line = next((x for x in err.splitlines() if package in x and licence in x), "")
    assert line, err
    assert copyright in line, line
    assert re.search(chain, line), line
    assert re.search(r"^hint: .*allow-packages", err, re.M), err


def test_lock_refuses_a_denied_licence(world: World) -> None:
    world.write_profile("denied", ["zfix"], 'deny = ["GPL-3.0-or-later"]\n')
    rc, _, err = world.run("lock", "profiles/denied.toml", world.mirror)
    assert_denied(rc, err, "libz-fake", "GPL-3.0-or-later",
                  "/usr/share/doc/libz-fake/copyright", r"zfix -> libz-fake")
    assert not world.lock_path("denied").exists()
    # build locks a profile without a lock first: the same gate stops it.
    rc, _, err = world.run("build", "profiles/denied.toml", "-o", "out/denied", world.mirror)
    assert_denied(rc, err, "libz-fake", "GPL-3.0-or-later",
                  "/usr/share/doc/libz-fake/copyright", r"zfix -> libz-fake")
    assert not world.lock_path("denied").exists()
    assert not (world.project / "out" / "denied").exists()


def test_licence_of_sources_that_may_be_compiled_in_is_denied(world: World) -> None:
    """libc6's GPL-2 paragraph names only sources: the licence is 'possible', and a person
    has to decide, so the gate fails."""
    world.write_profile("possible", ["zfix"], 'deny = ["GPL-2.0-only"]\n')
    rc, _, err = world.run("lock", "profiles/possible.toml", world.mirror)
    assert_denied(rc, err, "libc6", "GPL-2.0-only", "/usr/share/doc/libc6/copyright",
                  r"zfix( -> \S+)* -> libc6")
    assert "may be compiled in" in err
    assert not world.lock_path("possible").exists()


def test_allowed_packages_ship_with_their_reason(world: World, tmp_path: Path) -> None:
    reasons = {"libz-fake": "only zfix links it, and zfix is ours",
               "libc6": "the GPL sources are glibc programs we do not ship"}
    allow = ", ".join(f'{{ name = "{n}", reason = "{r}" }}' for n, r in reasons.items())
    world.write_profile("allowed", ["zfix", "dual"],
                        f'deny = ["GPL-3.0-or-later", "GPL-2.0-only"]\n'
                        f"allow-packages = [{allow}]\n")
    rc, _, err = world.run("lock", "profiles/allowed.toml", world.mirror)
    assert rc == 0, err
    rc, out, err = world.audit("allowed")
    assert rc == 0, err
    policy = sorted(x for x in out.splitlines() if x.startswith("policy:"))
    assert len(policy) == 2, out  # dual's "BSD-3-Clause OR GPL-2.0-only" is met by BSD
    assert policy[0].startswith("policy: libc6 ships GPL-2.0-only")
    assert "may be compiled in" in policy[0]
    assert policy[0].endswith(f"allowed: {reasons['libc6']}")
    assert policy[1].startswith("policy: libz-fake ships GPL-3.0-or-later")
    assert policy[1].endswith(f"allowed: {reasons['libz-fake']}")
    assert "DENIED" not in out

    rc, out, err = world.audit("allowed", "--json")
    assert rc == 0, err
    (report,) = json.loads(out)
    got = {(v["package"], v["licence"], v["file"], v["allowed"]) for v in report["violations"]}
    assert got == {
        ("libz-fake", "GPL-3.0-or-later", "usr/share/doc/libz-fake/copyright",
         reasons["libz-fake"]),
        ("libc6", "GPL-2.0-only", "usr/share/doc/libc6/copyright", reasons["libc6"]),
    }
    why = {v["package"]: v["why"] for v in report["violations"]}
    assert ["zfix", "libz-fake"] in why["libz-fake"] or ["dual", "libz-fake"] in why["libz-fake"]
    rc, page, err = world.audit("allowed", "--html")
    assert rc == 0, err
    for reason in reasons.values():
        assert reason in page, reason

    rc, out, err = world.run("build", "--locked", "profiles/allowed.toml", "-o",
                             tmp_path / "img", world.mirror)
    assert rc == 0, err
    assert DIGEST.fullmatch(out.strip().splitlines()[-1])


def test_licence_of_unshipped_files_does_not_reach_the_gate(world: World) -> None:
    """zfix's copyright gives GPL-2+ to doc/* only, which does not ship."""
    world.write_profile("docs", ["zfix"], 'deny = ["GPL-2.0-or-later"]\n')
    rc, _, err = world.run("lock", "profiles/docs.toml", world.mirror)
    assert rc == 0, err
    rc, out, err = world.audit("docs")
    assert rc == 0, err
    assert "policy:" not in out


def test_an_or_is_denied_only_when_each_side_is(world: World) -> None:
    world.write_profile("either", ["dual"], 'deny = ["BSD-3-Clause", "gpl-2.0-*", "GPL-3*"]\n')
    rc, _, err = world.run("lock", "profiles/either.toml", world.mirror)
    assert rc == 3, err
    lines = [x.strip() for x in err.splitlines() if x.strip().startswith("dual:")]
    assert len(lines) == 2, err
    assert "BSD-3-Clause" in lines[0] + lines[1] and "GPL-2.0-only" in lines[0] + lines[1]
    assert re.search(r"libz-fake: GPL-3.0-or-later \(denied by 'GPL-3\*'\)", err), err
    assert not world.lock_path("either").exists()


def test_unknown_licence_is_not_established(world: World) -> None:
    world.write_profile("unknown", ["nocopy"], 'deny = ["AGPL-3.0-*"]\n')
    rc, _, err = world.run("lock", "profiles/unknown.toml", world.mirror)
    assert rc == 3, err
    line = next(x for x in err.splitlines() if "nocopy" in x and "LicenseRef-unknown" in x)
    assert "not established" in line
    assert re.search(r"^hint: .*allow-packages", err, re.M), err
    assert not world.lock_path("unknown").exists()


def test_refusal_without_copyright_file_names_no_path(world: World) -> None:
    world.write_profile("unknown2", ["nocopy"], 'deny = ["AGPL-3.0-*"]\n')
    rc, _, err = world.run("lock", "profiles/unknown2.toml", world.mirror)
    assert rc == 3, err
    assert "/(none)" not in err, err


def test_policy_is_part_of_the_lock_fingerprint(world: World) -> None:
    path = world.write_profile("stale", ["zfix"])
    rc, _, err = world.run("lock", path.relative_to(world.project), world.mirror)
    assert rc == 0, err
    before = world.lock_path("stale").read_bytes()
    world.write_profile("stale", ["zfix"], 'deny = ["AGPL-3.0-*"]\n')
    for command in (["build", "--locked"], ["audit"]):
        rc, out, err = world.run(*command, "profiles/stale.toml", world.mirror)
        assert rc == 1, err
        assert re.search(r"^error: .*stale", err, re.M), err
        assert re.search(r"^hint: .*compose lock", err, re.M), err
        assert out == ""
    rc, _, err = world.run("lock", "--check", "profiles/stale.toml")
    assert rc == 1, err
    assert world.lock_path("stale").read_bytes() == before


def test_build_and_audit_apply_the_policy_to_a_lock_that_passed_no_gate(
        world: World, tmp_path: Path) -> None:
    """A lock whose fingerprint matches the profile but that no gate checked (written by
    hand, or before the policy was enforced): build refuses it, audit reports it."""
    from composer import profile as profiles

    reason = 'allow-packages = [{ name = "libz-fake", reason = "for now" }]\n'
    path = world.write_profile("ungated", ["zfix"], 'deny = ["GPL-3.0-or-later"]\n' + reason)
    rc, _, err = world.run("lock", "profiles/ungated.toml", world.mirror)
    assert rc == 0, err
    world.write_profile("ungated", ["zfix"], 'deny = ["GPL-3.0-or-later"]\n')
    lock = world.lock_path("ungated")
    fingerprint = profiles.load(path).fingerprint()
    text, n = re.subn(r'^fingerprint = ".*"$', f'fingerprint = "{fingerprint}"',
                      lock.read_text(), flags=re.M)
    assert n == 1
    lock.write_text(text)
    rc, _, err = world.run("lock", "--check", "profiles/ungated.toml")
    assert rc == 0, err

    rc, out, err = world.run("build", "--locked", "profiles/ungated.toml", "-o",
                             tmp_path / "img", world.mirror)
    assert_denied(rc, err, "libz-fake", "GPL-3.0-or-later",
                  "/usr/share/doc/libz-fake/copyright", r"zfix -> libz-fake")
    assert not DIGEST.search(out)
    assert not (tmp_path / "img").exists()

    rc, out, err = world.audit("ungated")
    assert_denied(rc, err, "libz-fake", "GPL-3.0-or-later",
                  "/usr/share/doc/libz-fake/copyright", r"zfix -> libz-fake")
    assert re.search(r"^policy: libz-fake ships GPL-3.0-or-later .*DENIED$", out, re.M), out


def test_copyright_through_a_doc_directory_symlink(world: World) -> None:
    """libz-fake-dev's doc directory links to libz-fake's; zlib-orphan's links to
    libz-fake-dev's, which the second profile leaves out: compose gives it the copyright
    of libz-fake, a shipped package of the same source."""
    world.write_profile("devlinks", ["libz-fake-dev"])
    world.write_profile("orphans", ["zlib-orphan", "zfix"])
    found: dict[str, dict[str, Any]] = {}
    for name in ("devlinks", "orphans"):
        rc, _, err = world.run("lock", f"profiles/{name}.toml", world.mirror)
        assert rc == 0, err
        rc, out, err = world.audit(name, "--json")
        assert rc == 0, err
        found |= {p["name"]: p for p in json.loads(out)[0]["packages"]}
    dev, orphan = found["libz-fake-dev"], found["zlib-orphan"]
    assert dev["copyright"] == "usr/share/doc/libz-fake/copyright"
    assert orphan["copyright"] == "usr/share/doc/zlib-orphan/copyright"
    for p in (dev, orphan):
        assert (p["licences"], p["machine_readable"]) == ("GPL-3.0-or-later", True)
    assert [u["shipped"] for u in orphan["uses"]] == [["usr/share/zlib/orphan.txt"]]


# -- 7. determinism --------------------------------------------------------------------------


def test_sbom_bytes_do_not_depend_on_the_run(world: World, outputs: Outputs,
                                             tmp_path: Path) -> None:
    """Again from an empty cache, one job, another time zone: the same bytes."""
    env = fixed_env(isolated_env(tmp_path / "env")) | {"TZ": "Pacific/Kiritimati"}
    for flag, want in (("spdx", outputs.spdx), ("cyclonedx", outputs.cdx)):
        out = tmp_path / f"{flag}.json"
        rc, _, err = world.audit("main", "--sbom", flag, "-o", out, "-j", "1", env=env)
        assert rc == 0, err
        assert out.read_bytes() == want, flag


def test_audit_digest_is_the_built_image_digest(world: World, outputs: Outputs,
                                                tmp_path: Path) -> None:
    rc, out, err = world.run("build", "--locked", "profiles/main.toml", "-o", tmp_path / "img",
                             world.mirror)
    assert rc == 0, err
    built = out.strip().splitlines()[-1]
    assert DIGEST.fullmatch(built), out
    assert outputs.table.splitlines()[0] == f"main [amd64] {built}"
    assert outputs.json[0]["digest"] == built
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    assert {m["digest"] for m in index["manifests"]} == {built}
    assert json.loads(outputs.spdx)["packages"][0]["versionInfo"] == built
    assert json.loads(outputs.cdx)["metadata"]["component"]["version"] == built


def test_audit_of_a_lock_named_with_lock(world: World, outputs: Outputs,
                                        tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.lock.toml"
    moved.write_bytes(world.lock_path("main").read_bytes())
    rc, out, err = world.audit("main", "--lock", moved)
    assert rc == 0, err
    assert out == outputs.table
    world.write_profile("other", ["nocopy"])
    rc, out, err = world.audit("other", "--lock", moved)
    assert rc == 1 and out == ""
    assert re.search(r"^error: .*elsewhere\.lock\.toml: stale", err, re.M), err


def test_audit_of_an_architecture_the_lock_lacks(world: World) -> None:
    rc, out, err = world.audit("main", "--arch", "arm64")
    assert rc != 0 and out == ""
    assert re.search(r"^error: .*arm64", err, re.M), err
    assert re.search(r"^hint: .*amd64", err, re.M), err


def test_copyright_texts_ship_unchanged(world: World, tmp_path: Path) -> None:
    """The audit reads the copyright files that ship: the image holds them byte for byte."""
    import gzip
    import io
    import tarfile

    rc, _, err = world.run("build", "--locked", "profiles/main.toml", "-o", tmp_path / "img",
                           world.mirror)
    assert rc == 0, err
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    blobs = tmp_path / "img" / "blobs" / "sha256"

    def blob(digest: str) -> bytes:
        return (blobs / digest.removeprefix("sha256:")).read_bytes()

    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    raw = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = {m.name.removeprefix("./").rstrip("/") for m in tar}
        libc = tar.extractfile("usr/share/doc/libc6/copyright")
        assert libc is not None and libc.read().decode() == LIBC_COPYRIGHT
    assert "usr/share/doc/zfix/manual.html" not in names
    assert "usr/share/doc/nocopy/copyright" not in names
