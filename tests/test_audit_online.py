"""The audit of the shipped py313 profile against facts checked by hand in Debian's
copyright files (Debian 13): readline is GPL-3.0-or-later, glibc LGPL-2.1-or-later (its
GPL-licensed programs are sources that may or may not be compiled in, and are reported
as possible), OpenSSL Apache-2.0, zlib Zlib, expat MIT, SQLite and tzdata public domain;
CPython's and GCC's copyright files are not machine-readable. Of CPython's modules,
exactly readline links libreadline, and _dbm links Berkeley DB.

The lock is made afresh in a temporary directory, as Debian's mirrors drop superseded
.debs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.online import PROFILE, ROOT, compose, env, lock, work  # noqa: F401 (fixtures)

pytestmark = pytest.mark.network



@pytest.fixture(scope="module")
def audit(env: dict[str, str], lock: Path) -> dict[str, Any]:
    r = compose(env, "audit", PROFILE, "--lock", lock, "--arch", "amd64", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert len(doc) == 1 and doc[0]["architecture"] == "amd64"
    return doc[0]  # type: ignore[no-any-return]


def _pkg(audit: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in audit["packages"] if p["name"] == name)  # type: ignore[no-any-return]


def test_gpl3_packages(audit: dict[str, Any]) -> None:
    for name in ("libreadline8t64", "readline-common"):
        p = _pkg(audit, name)
        assert p["machine_readable"] and p["gpl_family"]
        assert "GPL-3.0-or-later" in p["ids"], p["licences"]
    gpl3 = {p["name"] for p in audit["packages"] if p["machine_readable"]
            and "GPL-3.0-or-later" in p["ids"]}
    assert gpl3 == {"libreadline8t64", "readline-common"}


def test_glibc_is_lgpl_with_gpl_programs_only_possible(audit: dict[str, Any]) -> None:
    p = _pkg(audit, "libc6")
    assert p["machine_readable"] and "LGPL-2.1-or-later" in p["ids"]
    assert not [i for i in p["ids"] if i.startswith("GPL-")], p["licences"]
    assert "GPL-2.0-or-later" in p["possible"]
    use = next(u for u in p["uses"] if u["files_globs"] == ["*"])
    assert use["licence"] == "LGPL-2.1-or-later" and use["how"] == "all"
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in use["shipped"]
    assert any(u["how"] == "unshipped" and u["files_globs"] == ["debian/*"] for u in p["uses"])


@pytest.mark.parametrize(("name", "expression"), [
    ("libssl3t64", "Apache-2.0"), ("zlib1g", "Zlib"), ("libexpat1", "MIT"),
    ("libsqlite3-0", "LicenseRef-public-domain"), ("tzdata", "LicenseRef-public-domain"),
    ("libuuid1", "BSD-3-Clause"), ("netbase", "GPL-2.0-only"),
])
def test_machine_readable_answers(audit: dict[str, Any], name: str, expression: str) -> None:
    p = _pkg(audit, name)
    assert p["machine_readable"]
    assert p["licences"] == expression


def test_prose_copyright_files_are_marked_detected(audit: dict[str, Any]) -> None:
    py = _pkg(audit, "libpython3.13-stdlib")
    assert not py["machine_readable"] and "Python-2.0" in py["ids"]
    assert any("not machine-readable" in n for n in py["notes"])
    gcc = _pkg(audit, "libgcc-s1")
    assert not gcc["machine_readable"]
    assert "GPL-3.0-or-later WITH GCC-exception-3.1" in gcc["licences"]
    assert "GCC-exception-3.1" in gcc["ids"]


def test_which_cpython_modules_link_what(audit: dict[str, Any]) -> None:
    def direct(lib_pattern: str) -> set[str]:
        return {lk["binary"] for lk in audit["links"]
                if lk["resolved"] and re.search(lib_pattern, lk["resolved"])}
    readline = direct(r"/libreadline\.so")
    assert readline == {"usr/lib/python3.13/lib-dynload/readline.cpython-313-x86_64-linux-gnu.so"}
    assert direct(r"/libdb-5\.3\.so") == {
        "usr/lib/python3.13/lib-dynload/_dbm.cpython-313-x86_64-linux-gnu.so"}
    ssl = direct(r"/libssl\.so")
    assert "usr/lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so" in ssl
    lib = _pkg(audit, "libreadline8t64")["loaded_by"]
    so = next(k for k in lib if re.search(r"libreadline\.so\.8\.", k))
    assert lib[so]["direct"] == sorted(readline)
    assert audit["missing"] == []


def test_gpl_view_names_the_module(env: dict[str, str], lock: Path) -> None:
    r = compose(env, "audit", PROFILE, "--lock", lock, "--arch", "amd64", "--gpl", "-q")
    assert r.returncode == 0, r.stderr
    block = r.stdout.split("libreadline8t64 ", 1)[1].split("\n\n", 1)[0]
    assert "GPL-3.0-or-later" in block
    assert "readline.cpython-313-x86_64-linux-gnu.so (libpython3.13-stdlib)" in block


def test_policy_denies_readline_with_its_chain(env: dict[str, str], lock: Path,
                                               work: Path) -> None:
    # GCC's copyright file is prose that mentions plain GPL-3+ beside the runtime
    # exception: compose cannot tell them apart there, so a person says why they may ship.
    gcc = "".join(f'    {{ name = "{n}", reason = "GCC runtime library exception" }},\n'
                  for n in ("gcc-14-base", "libgcc-s1", "libgomp1", "libstdc++6"))
    gcc += ('    { name = "libcrypt1", reason = "GPL-3+ covers only its build-aux scripts, '
            'with the Autoconf exception" },\n')
    text = PROFILE.read_text() + (
        '\n[policy]\ndeny = ["GPL-3.0-or-later", "AGPL-3.0-*"]\nallow-packages = [\n' + gcc)
    strict = work / "strict.toml"
    strict.write_text(text.replace('name = "py313"', 'name = "strict"') + "]\n")
    out = work / "strict.lock.toml"
    r = compose(env, "lock", strict, "-o", out)
    assert r.returncode == 3, r.stderr
    assert "2 package(s) ship licences the policy denies" in r.stderr
    assert "libreadline8t64: GPL-3.0-or-later" in r.stderr
    assert "readline-common: GPL-3.0-or-later" in r.stderr
    assert "usr/share/doc/libreadline8t64/copyright" in r.stderr
    assert "libreadline8t64/copyright; brought in by [packages] include" in r.stderr
    assert "brought in by libreadline8t64 -> readline-common" in r.stderr
    assert "allow-packages" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    allowed = text.replace('name = "py313"', 'name = "strict"') + (
        '    { name = "libreadline8t64", reason = "the readline module only" },\n'
        '    { name = "readline-common", reason = "its inputrc" },\n]\n')
    strict.write_text(allowed)
    r = compose(env, "lock", strict, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    r = compose(env, "audit", strict, "--lock", out, "--arch", "amd64", "-q")
    assert r.returncode == 0, r.stderr
    assert "allowed: the readline module only" in r.stdout


def test_spdx_sbom_of_the_real_image_validates(env: dict[str, str], lock: Path,
                                               work: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    out = work / "py313.spdx.json"
    r = compose(env, "audit", PROFILE, "--lock", lock, "--arch", "amd64", "--sbom", "spdx",
                "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert validate_full_spdx_document(parse_file(str(out))) == []
    doc = json.loads(out.read_text())
    purls = {ref["referenceLocator"] for p in doc["packages"]
             for ref in p.get("externalRefs", [])}
    assert any(u.startswith("pkg:deb/debian/libreadline8t64@8.2-6") for u in purls)


def test_sbom_written_into_the_image(env: dict[str, str], lock: Path, work: Path) -> None:
    import gzip
    import io
    import tarfile

    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    text = PROFILE.read_text().replace('tag = "3.13-debian13"', 'tag = "3.13-debian13"\nsbom = "spdx"')
    profile = work / "py313.toml"  # the same name: the lock stays fresh for it
    profile.write_text(text)
    out = work / "with-sbom"
    r = compose(env, "build", "--locked", profile, "--lock", lock, "--arch", "amd64", "-o", out,
                "-q")
    assert r.returncode == 0, r.stderr
    index = json.loads((out / "index.json").read_text())
    blob = lambda d: (out / "blobs/sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    layer = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        member = tar.extractfile("usr/share/sbom/py313.spdx.json")
        assert member is not None
        data = member.read()
    path = work / "in-image.spdx.json"
    path.write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(path))) == []
    names = {p["name"] for p in json.loads(data)["packages"]}
    assert {"libc6", "libpython3.13-stdlib", "libreadline8t64"} <= names


def test_files_view_says_which_globs_cover_which_shipped_files(env: dict[str, str],
                                                                lock: Path) -> None:
    r = compose(env, "audit", PROFILE, "--lock", lock, "--arch", "amd64", "--files", "-q")
    assert r.returncode == 0, r.stderr
    block = r.stdout.split("\nlibssl3t64 ", 1)[1].split("\nlibstdc++6 ", 1)[0]
    assert "  Files: *  [all] Apache-2.0\n" in block
    assert "    /usr/lib/x86_64-linux-gnu/libssl.so.3\n" in block
    assert "  Files: debian/*  [unshipped] Apache-2.0" in block
