"""SPDX 2.3 and CycloneDX 1.6 output, checked by the formats' own validators, offline."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from composer import __version__
from composer.audit import sbom
from composer.audit.report import (
    AuditedPackage,
    AuditReport,
    LicenceUse,
    Link,
    PackageLicences,
    ShippedFile,
)

DIGEST = "sha256:" + "ab" * 32
EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
LIBDIR = {"amd64": "usr/lib/x86_64-linux-gnu", "arm64": "usr/lib/aarch64-linux-gnu"}
DEB_ARCH_ALL = {"tzdata"}


def _file(arch: str, path: str, kind: str = "file", sha1: bool = True) -> ShippedFile:
    data = f"{arch}:{path}".encode()
    return ShippedFile(path, hashlib.sha256(data).hexdigest(), len(data), kind,
                       hashlib.sha1(data, usedforsecurity=False).hexdigest() if sha1 else "")


def _licences(name: str, expression: str, debian: str, machine_readable: bool = True,
              notes: tuple[str, ...] = (), files: tuple[str, ...] = ()) -> PackageLicences:
    ids = tuple(sorted({t for t in re.split(r"[\s()]+", expression)
                        if t and t not in ("AND", "OR", "WITH")}))
    uses = (LicenceUse(("*",), expression, debian, files, "all"),) if machine_readable else ()
    return PackageLicences(expression, ids, machine_readable, uses,
                           f"usr/share/doc/{name}/copyright", notes)


def _report(arch: str, sha1: bool = True) -> AuditReport:
    lib = LIBDIR[arch]
    spec = [
        # name, version, source, expression, debian licence, machine-readable, paths
        ("base-files", "13.8", "base-files", "LicenseRef-unknown", "", False,
         ["etc/os-release", "usr/lib/os-release"]),
        ("libc6", "2.41-12", "glibc", "LGPL-2.1-or-later AND MIT", "LGPL-2.1+ and MIT", True,
         [f"{lib}/libc.so.6", f"{lib}/libm.so.6", f"{lib}/ld-linux.so.2"]),
        ("libgcc-s1", "14.2.0-19", "gcc-14", "GPL-3.0-or-later WITH GCC-exception-3.1",
         "GPL-3+ with GCC-Runtime-3.1 exception", True, [f"{lib}/libgcc_s.so.1"]),
        ("libreadline8t64", "8.2-6", "readline", "GPL-3.0-or-later", "GPL-3+", True,
         [f"{lib}/libreadline.so.8", f"{lib}/libreadline.so.8.2"]),
        ("libfoo++1", "1:2.3+dfsg-1", "foo", "GPL-2.0-or-later WITH Foo-exception OR MIT",
         "GPL-2+ with Foo exception or Expat", True, [f"{lib}/libfoo++.so.1"]),
        ("tzdata", "2025b-0+deb13u1", "tzdata", "LicenseRef-public-domain", "public-domain",
         True, ["usr/share/zoneinfo/UTC"]),
    ]
    packages = []
    for name, version, source, expr, debian, mr, paths in spec:
        files = tuple(_file(arch, p, "symlink" if p.endswith(".so.8") else "file", sha1)
                      for p in sorted(paths))
        notes = ("no DEP-5 header; licence detected from prose",) if not mr else ()
        packages.append(AuditedPackage(
            name, version, "all" if name in DEB_ARCH_ALL else arch, source, version,
            hashlib.sha256(f"{arch}:{name}.deb".encode()).hexdigest(), 1000 + len(name),
            f"pool/main/{source[0]}/{source}/{name}_{version.split(':')[-1]}_{arch}.deb",
            "debian", "trixie-security" if name == "libc6" else "trixie", files,
            _licences(name, expr, debian, mr, notes, tuple(paths)),
            ("libgcc-s1", "libreadline8t64", "not-shipped") if name == "libc6" else ()))
    links = (
        Link(f"{lib}/libreadline.so.8.2", "libreadline8t64", "libc.so.6", f"{lib}/libc.so.6",
             "libc6"),
        Link(f"{lib}/libfoo++.so.1", "libfoo++1", "libgcc_s.so.1", f"{lib}/libgcc_s.so.1",
             "libgcc-s1"),
        Link(f"{lib}/libfoo++.so.1", "libfoo++1", "libc.so.6", f"{lib}/libc.so.6", "libc6"),
        Link(f"{lib}/libm.so.6", "libc6", "libc.so.6", f"{lib}/libc.so.6", "libc6"),
        Link(f"{lib}/libgcc_s.so.1", "libgcc-s1", "libc.so.6", f"{lib}/libc.so.6", "libc6"),
        Link(f"{lib}/libreadline.so.8.2", "libreadline8t64", "libtinfo.so.6", None, None),
    )
    generated = tuple(_file(arch, p, sha1=sha1) for p in ("etc/passwd", "etc/ld.so.cache"))
    return AuditReport(
        "python3", arch, "sha256:" + hashlib.sha256(arch.encode()).hexdigest(), EPOCH,
        tuple(packages), links,
        sources=(("debian", "trixie", "11" * 32), ("debian", "trixie-security", "22" * 32)),
        generated=generated)


REPORTS = (_report("amd64"), _report("arm64"))


def _shuffled(reports: tuple[AuditReport, ...], seed: int) -> list[AuditReport]:
    rng = random.Random(seed)

    def mix(items: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(items)
        rng.shuffle(out)
        return tuple(out)

    out = [dataclasses.replace(
        r, packages=mix(tuple(dataclasses.replace(p, files=mix(p.files)) for p in r.packages)),
        links=mix(r.links), sources=mix(r.sources), generated=mix(r.generated))
        for r in reports]
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def spdx() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(sbom.spdx_json(REPORTS, "python3", DIGEST))
    return doc


@pytest.fixture(scope="module")
def cdx() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(sbom.cyclonedx_json(REPORTS, "python3", DIGEST))
    return doc


def _validate_spdx(data: bytes, tmp_path: Path) -> list[str]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "image.spdx.json"
    path.write_bytes(data)
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def _validate_cdx(data: bytes) -> object:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())


def test_spdx_validates(tmp_path: Path) -> None:
    assert _validate_spdx(sbom.spdx_json(REPORTS, "python3", DIGEST), tmp_path) == []


def test_spdx_validates_without_sha1(tmp_path: Path) -> None:
    """Files without a SHA1 are left out (SPDX 2.3 requires one), and that still
    validates: the packages say their files were not analysed."""
    reports = (_report("amd64", sha1=False), _report("arm64"))
    data = sbom.spdx_json(reports, "python3", DIGEST)
    assert _validate_spdx(data, tmp_path) == []
    doc = json.loads(data)
    amd64 = [p for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-Package-amd64-")]
    assert amd64 and not any(p["filesAnalyzed"] for p in amd64)
    assert all("SHA1 was not computed" in p["comment"] for p in amd64)
    assert not any(f["SPDXID"].startswith("SPDXRef-File-amd64-") for f in doc["files"])
    assert any(f["SPDXID"].startswith("SPDXRef-File-arm64-") for f in doc["files"])


def test_cyclonedx_validates() -> None:
    data = sbom.cyclonedx_json(REPORTS, "python3", DIGEST)
    assert _validate_cdx(data) is None
    assert json.loads(data)["specVersion"] == "1.6"


def test_same_bytes_whatever_the_order() -> None:
    for render in (sbom.spdx_json, sbom.cyclonedx_json):
        first = render(REPORTS, "python3", DIGEST)
        assert render(REPORTS, "python3", DIGEST) == first
        for seed in range(3):
            assert render(_shuffled(REPORTS, seed), "python3", DIGEST) == first


def test_purl_percent_encodes() -> None:
    foo = next(p for p in REPORTS[0].packages if p.name == "libfoo++1")
    assert sbom.deb_purl(foo) == "pkg:deb/debian/libfoo%2B%2B1@1%3A2.3%2Bdfsg-1?arch=amd64"
    tz = next(p for p in REPORTS[0].packages if p.name == "tzdata")
    assert sbom.deb_purl(tz) == "pkg:deb/debian/tzdata@2025b-0%2Bdeb13u1?arch=all"
    assert sbom.oci_purl("python3", DIGEST) == f"pkg:oci/python3@sha256%3A{'ab' * 32}"


def test_purls_in_both_documents(spdx: dict[str, Any], cdx: dict[str, Any]) -> None:
    want = "pkg:deb/debian/libfoo%2B%2B1@1%3A2.3%2Bdfsg-1?arch=arm64"
    spdx_purls = {r["referenceLocator"] for p in spdx["packages"] for r in p["externalRefs"]}
    cdx_purls = {c["purl"] for c in cdx["components"] if "purl" in c}
    assert want in spdx_purls and want in cdx_purls
    assert "distro=" not in json.dumps(spdx) + json.dumps(cdx)
    image = spdx["packages"][0]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    assert image["versionInfo"] == DIGEST
    assert cdx["metadata"]["component"]["purl"] == sbom.oci_purl("python3", DIGEST)


def test_no_host_names() -> None:
    allowed = (sbom.SPDX_NAMESPACE, sbom.CYCLONEDX_SCHEMA)
    for render in (sbom.spdx_json, sbom.cyclonedx_json):
        text = render(REPORTS, "python3", DIGEST).decode()
        for m in re.finditer(r"[a-z][a-z0-9+.-]*://\S*", text):
            assert m.group().startswith(allowed), m.group()


def test_deterministic_identity(spdx: dict[str, Any], cdx: dict[str, Any]) -> None:
    assert spdx["creationInfo"]["created"] == "2025-01-01T00:00:00Z"
    assert spdx["creationInfo"]["creators"] == [f"Tool: compose-{__version__}"]
    assert spdx["documentNamespace"] == f"https://spdx.org/spdxdocs/compose-python3-{'ab' * 32}"
    assert cdx["metadata"]["timestamp"] == "2025-01-01T00:00:00Z"
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", cdx["serialNumber"])
    other = json.loads(sbom.cyclonedx_json(REPORTS, "python3", "sha256:" + "cd" * 32))
    assert other["serialNumber"] != cdx["serialNumber"]


def test_every_licence_ref_declared(spdx: dict[str, Any]) -> None:
    declared = {e["licenseId"] for e in spdx["hasExtractedLicensingInfos"]}
    used = set()
    for el in spdx["packages"] + spdx.get("files", []):
        for key in ("licenseDeclared", "licenseConcluded"):
            used |= set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", el.get(key, "")))
    assert used == declared
    assert {"LicenseRef-unknown", "LicenseRef-public-domain",
            "LicenseRef-Foo-exception"} <= declared
    assert all(e["extractedText"] and e["name"] for e in spdx["hasExtractedLicensingInfos"])


def test_licences(spdx: dict[str, Any], cdx: dict[str, Any]) -> None:
    by_id = {p["SPDXID"]: p for p in spdx["packages"]}
    gcc = by_id["SPDXRef-Package-amd64-libgcc-s1"]
    assert gcc["licenseDeclared"] == "GPL-3.0-or-later WITH GCC-exception-3.1"
    assert gcc["licenseConcluded"] == "NOASSERTION"
    assert by_id["SPDXRef-Package-amd64-libc6"]["licenseDeclared"] == "LGPL-2.1-or-later AND MIT"
    foo = by_id["SPDXRef-Package-amd64-libfooPlusPlus1"]
    assert foo["licenseDeclared"] == "(GPL-2.0-or-later AND LicenseRef-Foo-exception) OR MIT"
    assert "not on the SPDX exceptions list" in foo["comment"]
    base = by_id["SPDXRef-Package-amd64-base-files"]
    assert base["licenseDeclared"] == "LicenseRef-unknown"
    assert "detected from the prose" in base["comment"]
    assert "prose" not in by_id["SPDXRef-Package-amd64-libc6"]["comment"]
    assert foo["sourceInfo"] == "built from Debian source package foo 1:2.3+dfsg-1"
    assert foo["downloadLocation"] == "NOASSERTION"

    comps = {c["bom-ref"]: c for c in cdx["components"]}
    props = {p["name"]: p["value"] for p in comps["deb:arm64:base-files"]["properties"]}
    assert props[sbom.PROSE_PROPERTY] == "true"
    assert props["compose:suite"] == "trixie" and props["compose:archive"] == "debian"
    assert props["compose:source-package"] == "base-files"
    assert sbom.PROSE_PROPERTY not in {
        p["name"] for p in comps["deb:arm64:libc6"]["properties"]}
    assert comps["deb:arm64:libgcc-s1"]["licenses"] == [
        {"expression": "GPL-3.0-or-later WITH GCC-exception-3.1", "acknowledgement": "declared"}]


def test_licence_rewriting() -> None:
    assert sbom.licence("GPL-2.0+ with Autoconf-exception-2.0").expression == (
        "GPL-2.0+ WITH Autoconf-exception-2.0")
    lic = sbom.licence("(MIT OR GPL-2.0-only WITH my_exception) AND LicenseRef-a+b")
    assert lic.expression == (
        "(MIT OR (GPL-2.0-only AND LicenseRef-my-exception)) AND LicenseRef-a-b")
    assert lic.refs == ("LicenseRef-a-b", "LicenseRef-my-exception")
    assert lic.rewritten == ("my_exception",)
    assert sbom.licence("").expression == ""
    assert sbom.licence("GCC-exception-3.1").expression == "LicenseRef-GCC-exception-3.1"


def test_relationships_resolve(spdx: dict[str, Any]) -> None:
    ids = {"SPDXRef-DOCUMENT"} | {p["SPDXID"] for p in spdx["packages"]}
    ids |= {f["SPDXID"] for f in spdx["files"]}
    assert len(ids) == 1 + len(spdx["packages"]) + len(spdx["files"])
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
            for r in spdx["relationships"]}
    assert len(rels) == len(spdx["relationships"])
    for a, _, b in rels:
        assert a in ids and b in ids
    contained = {b for a, kind, b in rels if kind == "CONTAINS"}
    assert contained == ids - {"SPDXRef-DOCUMENT", "SPDXRef-Image"}
    assert spdx["relationships"][0] == {"spdxElementId": "SPDXRef-DOCUMENT",
                                        "relationshipType": "DESCRIBES",
                                        "relatedSpdxElement": "SPDXRef-Image"}
    pkg = "SPDXRef-Package-amd64-"
    assert (pkg + "libreadline8t64", "DYNAMIC_LINK", pkg + "libc6") in rels
    assert (pkg + "libfooPlusPlus1", "DYNAMIC_LINK", pkg + "libgcc-s1") in rels
    assert (pkg + "libgcc-s1", "DEPENDS_ON", pkg + "libc6") in rels
    assert (pkg + "libc6", "DYNAMIC_LINK", pkg + "libc6") not in rels
    file_links = [(a, b) for a, kind, b in rels if kind == "DYNAMIC_LINK" and "File" in a]
    assert len(file_links) == 2 * 5  # every resolved link, per architecture


def test_files(spdx: dict[str, Any], cdx: dict[str, Any]) -> None:
    names = {f["fileName"] for f in spdx["files"]}
    assert "./etc/passwd" in names and "./usr/lib/x86_64-linux-gnu/libc.so.6" in names
    for f in spdx["files"]:
        assert {c["algorithm"] for c in f["checksums"]} == {"SHA1", "SHA256"}
    generated = [f for f in spdx["files"] if "Written by compose" in f.get("comment", "")]
    assert len(generated) == 4
    libc = next(p for p in spdx["packages"] if p["SPDXID"] == "SPDXRef-Package-arm64-libc6")
    assert libc["filesAnalyzed"] and len(libc["packageVerificationCode"][
        "packageVerificationCodeValue"]) == 40

    comps = {c["bom-ref"]: c for c in cdx["components"]}
    files = comps["deb:amd64:libc6"]["components"]
    assert [f["name"] for f in files] == sorted(f["name"] for f in files)
    assert {h["alg"] for h in files[0]["hashes"]} == {"SHA-1", "SHA-256"}
    assert "file:amd64:/etc/passwd" in comps


def test_cyclonedx_dependencies(cdx: dict[str, Any]) -> None:
    deps = {d["ref"]: d["dependsOn"] for d in cdx["dependencies"]}
    refs = {c["bom-ref"] for c in cdx["components"] if c["type"] == "library"}
    assert set(deps) == refs | {"image:python3"}
    assert set(deps["image:python3"]) == refs
    assert deps["deb:amd64:libfoo++1"] == ["deb:amd64:libc6", "deb:amd64:libgcc-s1"]
    assert deps["deb:amd64:libc6"] == []
    assert all(set(v) <= refs for v in deps.values())


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sbom.spdx_json(REPORTS, "python3", "latest")
    with pytest.raises(ValueError):
        sbom.cyclonedx_json((), "python3", DIGEST)
    with pytest.raises(ValueError):
        sbom.spdx_json((REPORTS[0], REPORTS[0]), "python3", DIGEST)
