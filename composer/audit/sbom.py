"""SBOMs of a built image, from its audit reports: SPDX 2.3 and CycloneDX 1.6 JSON.

Both say the same things: the image (its digest, as an OCI purl), one package per .deb per
architecture (Debian purl, .deb SHA-256, licences read from its copyright file, where it
came from as archive and suite: never a mirror's host, which is where this machine happened
to fetch from, not what the image is made of), the files that ship, the files compose wrote,
and who links against whom. Pure and deterministic: the same reports give the same bytes,
whatever their order, so that an SBOM can be rebuilt and compared like the image.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from composer import __version__
from composer.audit.report import AuditedPackage, AuditReport, ShippedFile
from composer.model import INTERPRETER

Json = dict[str, Any]

SPDX_NAMESPACE = "https://spdx.org/spdxdocs/"
CYCLONEDX_SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"
PROSE_PROPERTY = "compose:licence-detected-from-prose"

# The exceptions of the SPDX licence list. SPDX 2.3 allows only these after WITH; anything
# else is rewritten (see licence()) so that the document stays valid.
SPDX_EXCEPTIONS = frozenset({
    "389-exception", "Asterisk-exception", "Asterisk-linking-protocols-exception",
    "Autoconf-exception-2.0", "Autoconf-exception-3.0", "Autoconf-exception-generic",
    "Autoconf-exception-generic-3.0", "Autoconf-exception-macro", "Bison-exception-1.24",
    "Bison-exception-2.2", "Bootloader-exception", "CGAL-linking-exception",
    "CLISP-exception-2.0", "Classpath-exception-2.0", "DigiRule-FOSS-exception",
    "Digia-Qt-LGPL-exception-1.1", "FLTK-exception", "Fawkes-Runtime-exception",
    "Font-exception-2.0", "GCC-exception-2.0", "GCC-exception-2.0-note", "GCC-exception-3.1",
    "GNAT-exception", "GNOME-examples-exception", "GNU-compiler-exception",
    "GPL-3.0-389-ds-base-exception", "GPL-3.0-interface-exception",
    "GPL-3.0-linking-exception", "GPL-3.0-linking-source-exception", "GPL-CC-1.0",
    "GStreamer-exception-2005", "GStreamer-exception-2008", "Gmsh-exception",
    "Independent-modules-exception", "KiCad-libraries-exception",
    "LGPL-3.0-linking-exception", "LLGPL", "LLVM-exception", "LZMA-exception",
    "Libtool-exception", "Linux-syscall-note", "Nokia-Qt-exception-1.1", "OCCT-exception-1.0",
    "OCaml-LGPL-linking-exception", "OpenJDK-assembly-exception-1.0", "PCRE2-exception",
    "PS-or-PDF-font-exception-20170817", "QPL-1.0-INRIA-2004-exception",
    "Qt-GPL-exception-1.0", "Qt-LGPL-exception-1.1", "Qwt-exception-1.0",
    "RRDtool-FLOSS-exception-2.0", "SANE-exception", "SHL-2.0", "SHL-2.1", "SWI-exception",
    "Swift-exception", "Texinfo-exception", "UBDL-exception", "Universal-FOSS-exception-1.0",
    "WxWindows-exception-3.1", "cryptsetup-OpenSSL-exception", "eCos-exception-2.0",
    "erlang-otp-linking-exception", "fmt-exception", "freertos-exception-2.0",
    "gnu-javamail-exception", "harbour-exception", "i2p-gpl-java-exception",
    "libpri-OpenH323-exception", "mif-exception", "mxml-exception",
    "openvpn-openssl-exception", "polyparse-exception", "romic-exception",
    "stunnel-exception", "u-boot-exception-2.0", "vsftpd-openssl-exception",
    "x11vnc-openssl-exception",
})
_EXCEPTION_BY_LOWER = {e.lower(): e for e in SPDX_EXCEPTIONS}

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_NOT_IDSTRING = re.compile(r"[^A-Za-z0-9.-]")
_NO_LICENCE = ("", "NOASSERTION", "NONE")


# --- licences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpdxLicence:
    """A package's licence expression as both formats can carry it."""

    expression: str
    """Valid SPDX 2.3 syntax, "" when the package has none."""
    refs: tuple[str, ...]
    """The LicenseRef-… identifiers in it, sorted."""
    rewritten: tuple[str, ...]
    """Exceptions not on the SPDX list, now written ``(A AND LicenseRef-X)``."""


def _licence_ref(token: str) -> str:
    """A LicenseRef- identifier for ``token`` in SPDX's idstring alphabet."""
    bare = token[len("LicenseRef-"):] if token.lower().startswith("licenseref-") else token
    return "LicenseRef-" + (_NOT_IDSTRING.sub("-", bare) or "unknown")


def licence(expression: str) -> SpdxLicence:
    """Rewrite ``expression`` so that SPDX 2.3 validators accept it.

    SPDX 2.3 has no way to name an exception that is not on its list (``AdditionRef`` is
    SPDX 3), so ``A WITH X`` becomes ``(A AND LicenseRef-X)``: it keeps ``A`` visible to
    every licence scanner and declares X in the document, which is the conservative reading
    (an exception only ever grants more). A listed exception written as a licence becomes a
    LicenseRef for the same reason. Operators are upper-cased, identifiers kept.
    """
    text = expression.strip()
    if text.upper() in _NO_LICENCE:
        return SpdxLicence(text.upper(), (), ())
    out: list[str] = []
    rewritten: list[str] = []
    tokens = _TOKEN.findall(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        up = tok.upper()
        if up in ("AND", "OR") or tok in ("(", ")"):
            out.append(up)
        elif up == "WITH" and i + 1 < len(tokens) and out:
            exc = tokens[i + 1]
            listed = _EXCEPTION_BY_LOWER.get(exc.lower())
            if listed is not None:
                out += ["WITH", listed]
            else:
                rewritten.append(exc)
                out[-1:] = ["(", out[-1], "AND", _licence_ref(exc), ")"]
            i += 1
        elif tok.lower().startswith("licenseref-") or tok.lower() in _EXCEPTION_BY_LOWER:
            out.append(_licence_ref(tok))
        else:
            out.append(tok)
        i += 1
    joined = " ".join(out).replace("( ", "(").replace(" )", ")")
    refs = sorted({t for t in out if t.startswith("LicenseRef-")})
    return SpdxLicence(joined, tuple(refs), tuple(rewritten))


# --- identities -------------------------------------------------------------------------


def deb_purl(p: AuditedPackage) -> str:
    """``pkg:deb/debian/NAME@VERSION?arch=ARCH``, percent-encoded as the purl spec says.

    No ``distro`` qualifier (the lock names suites, not Debian releases) and no
    ``repository_url``: a mirror's host says nothing about the package.
    """
    return (f"pkg:deb/debian/{quote(p.name.lower(), safe='')}@{quote(p.version, safe='')}"
            f"?arch={quote(p.architecture, safe='')}")


def package_purl(p: AuditedPackage) -> str:
    """The Debian purl of a .deb; for a CPython compiled from source (no .deb), a
    generic purl with its upstream version and the sha256 of the tarball it was built
    from."""
    if p.name == INTERPRETER:
        return (f"pkg:generic/cpython@{quote(p.version, safe='')}"
                f"?checksum=sha256:{p.deb_sha256}")
    return deb_purl(p)


def oci_purl(name: str, image_digest: str) -> str:
    """``pkg:oci/NAME@sha256%3A…``: the purl's name is the repository's last segment."""
    last = name.rstrip("/").rsplit("/", 1)[-1].lower()
    return f"pkg:oci/{quote(last, safe='')}@{quote(image_digest, safe='')}"


def _digest_hex(image_digest: str) -> str:
    m = _DIGEST.fullmatch(image_digest)
    if m is None:
        raise ValueError(f"not an image digest: {image_digest!r}")
    return m.group(1)


def _idstring(text: str) -> str:
    """SPDX identifiers allow ``[A-Za-z0-9.-]``; Debian names add only ``+``, and never
    upper case, so spelling it ``Plus`` keeps identifiers distinct and readable."""
    return _NOT_IDSTRING.sub(lambda m: "Plus" if m[0] == "+" else f"U{ord(m[0]):X}", text)


def _file_key(arch: str, owner: str, path: str) -> str:
    """Stable for a path whatever else the image holds: a hash of where the file is."""
    return hashlib.sha256(f"{arch}\0{owner}\0{path}".encode()).hexdigest()[:24]


def _timestamp(reports: Sequence[AuditReport]) -> str:
    epoch = max(r.epoch for r in reports)
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ordered(reports: Sequence[AuditReport]) -> list[AuditReport]:
    """Reports by architecture, so that the caller's order does not reach the bytes."""
    if not reports:
        raise ValueError("an SBOM needs the audit report of at least one architecture")
    out = sorted(reports, key=lambda r: r.architecture)
    archs = [r.architecture for r in out]
    if len(set(archs)) != len(archs):
        raise ValueError(f"more than one audit report for an architecture: {archs}")
    return out


def _packages(report: AuditReport) -> list[AuditedPackage]:
    out = sorted(report.packages, key=lambda p: p.name)
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{report.architecture}: a package is listed twice")
    return out


def _files(files: Iterable[ShippedFile]) -> list[ShippedFile]:
    return sorted(files, key=lambda f: f.path)


def _sources(reports: Sequence[AuditReport]) -> list[tuple[str, str, str]]:
    return sorted({s for r in reports for s in r.sources})


def _deps(report: AuditReport) -> set[tuple[str, str, str]]:
    """(dependent, kind, dependency) between packages of one architecture: ``DEPENDS_ON``
    from the lock's resolution, ``DYNAMIC_LINK`` from the ELF objects that ship."""
    names = {p.name for p in report.packages}
    out: set[tuple[str, str, str]] = set()
    for p in report.packages:
        for dependent in p.required_by:
            if dependent in names and dependent != p.name:
                out.add((dependent, "DEPENDS_ON", p.name))
    for lk in report.links:
        if lk.provider and lk.provider != lk.package and {lk.package, lk.provider} <= names:
            out.add((lk.package, "DYNAMIC_LINK", lk.provider))
    return out


def _dump(doc: Json) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _prose_note(p: AuditedPackage) -> str:
    where = f"/{p.licences.copyright_path}" if p.licences.copyright_path else "its copyright file"
    return (f"Licences detected from the prose of {where}, which is not machine-readable "
            f"(DEP-5): check them.")


def _licence_notes(p: AuditedPackage, lic: SpdxLicence) -> list[str]:
    notes = [_prose_note(p)] if p.licences.detected else []
    notes += list(p.licences.notes)
    notes += [f"{exc} is not on the SPDX exceptions list: written as AND "
              f"{_licence_ref(exc)}." for exc in lic.rewritten]
    return notes


# --- SPDX 2.3 ---------------------------------------------------------------------------


def _spdx_pkg_id(arch: str, name: str) -> str:
    return f"SPDXRef-Package-{_idstring(arch)}-{_idstring(name)}"


def _spdx_file_id(arch: str, owner: str, path: str) -> str:
    return f"SPDXRef-File-{_idstring(arch)}-{_file_key(arch, owner, path)}"


def _spdx_file(arch: str, owner: str, f: ShippedFile) -> Json:
    doc: Json = {
        "SPDXID": _spdx_file_id(arch, owner, f.path),
        "fileName": "./" + f.path,
        "checksums": [{"algorithm": "SHA1", "checksumValue": f.sha1},
                      {"algorithm": "SHA256", "checksumValue": f.sha256}],
        "licenseConcluded": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    }
    comments = [] if owner else [f"Written by compose into the {arch} image, from no package."]
    if f.kind == "symlink":
        comments.append("A symbolic link: its checksums are of the link's target path.")
    if comments:
        doc["comment"] = " ".join(comments)
    return doc


def _listable(files: Sequence[ShippedFile]) -> bool:
    """SPDX 2.3 requires a SHA1 of every file: list a package's files only when all have
    one, since a partial list under ``filesAnalyzed`` would claim less than ships."""
    return bool(files) and all(f.sha1 for f in files)


def _verification_code(files: Sequence[ShippedFile]) -> str:
    """SPDX 2.3 clause 7.9: SHA1 of the files' sorted SHA1s, concatenated."""
    joined = "".join(sorted(f.sha1 for f in files))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


def _extracted(reports: Sequence[AuditReport], used: set[str]) -> list[Json]:
    """Declare every LicenseRef used: what the copyright files called it, and where
    (compose does not copy licence texts, so the text says that too)."""
    found: dict[str, set[str]] = {ref: set() for ref in used}
    names: dict[str, set[str]] = {ref: set() for ref in used}
    for r in reports:
        for p in r.packages:
            lic = licence(p.licences.expression)
            where = (f"/{p.licences.copyright_path}" if p.licences.copyright_path
                     else "no copyright file")
            for ref in lic.refs:
                mine = set()
                excs = {exc for exc in lic.rewritten if _licence_ref(exc) == ref}
                for exc in excs:
                    mine.add(f"{p.name}: licence exception {exc!r} in {where}")
                    names[ref].add(exc)
                for use in p.licences.uses:
                    if ref in licence(use.expression).refs:
                        mine.add(f"{p.name}: License {use.debian!r} in {where}")
                        if not excs:
                            names[ref].add(use.debian)
                if not mine:
                    how = "; ".join(p.licences.notes) or (
                        "read" if p.licences.machine_readable else "detected from prose")
                    mine.add(f"{p.name}: {where} ({how})")
                found[ref] |= mine
    out = []
    for ref in sorted(used):
        text = (f"{ref} is not on the SPDX licence list. compose names what Debian copyright "
                "files say and does not copy licence texts; read them in the image. Found in:\n"
                + "\n".join(f"- {s}" for s in sorted(found[ref])))
        name = " / ".join(sorted(n for n in names[ref] if n)) or ref.removeprefix("LicenseRef-")
        out.append({"licenseId": ref, "name": name, "extractedText": text})
    return out


def spdx_json(reports: Sequence[AuditReport], name: str, image_digest: str) -> bytes:
    """The image as one SPDX 2.3 JSON document, over all its architectures."""
    ordered = _ordered(reports)
    hexdigest = _digest_hex(image_digest)
    image_id = "SPDXRef-Image"
    packages: list[Json] = []
    files: list[Json] = []
    rels: set[tuple[str, str, str]] = {("SPDXRef-DOCUMENT", "DESCRIBES", image_id)}
    refs: set[str] = set()
    generated_listed = False
    spdx_ids: set[str] = set()

    for r in ordered:
        arch = r.architecture
        pkgs = _packages(r)
        pkg_ids = {p.name: _spdx_pkg_id(arch, p.name) for p in pkgs}
        file_ids: dict[str, str] = {}
        for p in pkgs:
            pid = pkg_ids[p.name]
            if pid in spdx_ids:
                raise ValueError(f"two packages make the SPDX identifier {pid}")
            spdx_ids.add(pid)
            lic = licence(p.licences.expression)
            refs.update(lic.refs)
            shipped = _files(p.files)
            listed = _listable(shipped)
            comment = [f"From {p.archive} {p.suite}: {p.filename}. In the {arch} image: "
                       f"{len(shipped)} files, {p.shipped_size} bytes, after stripping."]
            if shipped and not listed:
                comment.append("Its files are not listed: their SHA1 was not computed.")
            comment += _licence_notes(p, lic)
            doc: Json = {
                "SPDXID": pid,
                "name": p.name,
                "versionInfo": p.version,
                "packageFileName": p.filename.rsplit("/", 1)[-1],
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": listed,
                "checksums": [{"algorithm": "SHA256", "checksumValue": p.deb_sha256}],
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                                  "referenceType": "purl", "referenceLocator": package_purl(p)}],
                "licenseDeclared": lic.expression or "NOASSERTION",
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "sourceInfo": f"built from Debian source package {p.source} "
                              f"{p.source_version}",
                "comment": " ".join(comment),
            }
            if listed:
                doc["packageVerificationCode"] = {
                    "packageVerificationCodeValue": _verification_code(shipped)}
                for f in shipped:
                    fid = _spdx_file_id(arch, p.name, f.path)
                    file_ids[f.path] = fid
                    files.append(_spdx_file(arch, p.name, f))
                    rels.add((pid, "CONTAINS", fid))
            packages.append(doc)
            rels.add((image_id, "CONTAINS", pid))
        generated = _files(r.generated)
        if _listable(generated):
            generated_listed = True
            for f in generated:
                fid = _spdx_file_id(arch, "", f.path)
                file_ids.setdefault(f.path, fid)
                files.append(_spdx_file(arch, "", f))
                rels.add((image_id, "CONTAINS", fid))
        for a, kind, b in _deps(r):
            rels.add((pkg_ids[a], kind, pkg_ids[b]))
        for lk in r.links:
            if lk.resolved and lk.binary in file_ids and lk.resolved in file_ids:
                rels.add((file_ids[lk.binary], "DYNAMIC_LINK", file_ids[lk.resolved]))

    if len({f["SPDXID"] for f in files}) != len(files):
        raise ValueError("two files make the same SPDX identifier")

    manifests = "; ".join(f"{r.architecture}: {r.digest}" for r in ordered if r.digest)
    sources = ", ".join(f"{a} {s}" for a, s, _ in _sources(ordered))
    image: Json = {
        "SPDXID": image_id,
        "name": name,
        "versionInfo": image_digest,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": generated_listed,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": oci_purl(name, image_digest)}],
        "licenseDeclared": "NOASSERTION",
        "licenseConcluded": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": (f"Architectures: {', '.join(r.architecture for r in ordered)}."
                    + (f" Manifests: {manifests}." if manifests else "")
                    + (" The files it contains directly are those compose wrote."
                       if generated_listed else "")),
    }
    profiles = sorted({r.profile for r in ordered})
    doc_comment = (f"Built by compose from profile {', '.join(profiles)}; the .deb packages "
                   f"come from {sources or 'the lock'}. One package per .deb per "
                   f"architecture; files are what ships after stripping.")
    document: Json = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": (f"{SPDX_NAMESPACE}compose-"
                              f"{quote(name.replace('/', '-'), safe='')}-{hexdigest}"),
        "creationInfo": {"created": _timestamp(ordered),
                         "creators": [f"Tool: compose-{__version__}"]},
        "comment": doc_comment,
        "packages": [image, *packages],
        "relationships": [
            {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}
            for a, kind, b in sorted(rels, key=lambda t: (t[1] != "DESCRIBES", t))],
    }
    if files:
        document["files"] = files
    if refs:
        document["hasExtractedLicensingInfos"] = _extracted(ordered, refs)
    return _dump(document)


# --- CycloneDX 1.6 ----------------------------------------------------------------------


def _cdx_pkg_ref(arch: str, name: str) -> str:
    return f"deb:{arch}:{name}"


def _cdx_file(arch: str, f: ShippedFile, generated: bool) -> Json:
    hashes = [{"alg": "SHA-256", "content": f.sha256}]
    if f.sha1:
        hashes.insert(0, {"alg": "SHA-1", "content": f.sha1})
    doc: Json = {"type": "file", "bom-ref": f"file:{arch}:/{f.path}", "name": "/" + f.path,
                 "hashes": hashes}
    props = []
    if generated:
        props += [{"name": "compose:architecture", "value": arch},
                  {"name": "compose:generated", "value": "true"}]
    if f.kind == "symlink":
        props.append({"name": "compose:symlink", "value": "true"})
    if props:
        doc["properties"] = props
    return doc


def _props(pairs: Iterable[tuple[str, str]]) -> list[Json]:
    return [{"name": k, "value": v} for k, v in pairs]


def cyclonedx_json(reports: Sequence[AuditReport], name: str, image_digest: str) -> bytes:
    """The image as one CycloneDX 1.6 JSON BOM: the image is ``metadata.component``,
    every .deb a library component holding its shipped files, and the dependency graph
    comes from the lock and the ELF links."""
    ordered = _ordered(reports)
    hexdigest = _digest_hex(image_digest)
    image_ref = f"image:{name}"
    components: list[Json] = []
    generated: list[Json] = []
    dependencies: list[Json] = []
    all_refs: list[str] = []

    for r in ordered:
        arch = r.architecture
        pkgs = _packages(r)
        depends: dict[str, set[str]] = {p.name: set() for p in pkgs}
        for a, _, b in _deps(r):
            depends[a].add(_cdx_pkg_ref(arch, b))
        for p in pkgs:
            ref = _cdx_pkg_ref(arch, p.name)
            lic = licence(p.licences.expression)
            props = [("compose:architecture", arch),
                     ("compose:archive", p.archive),
                     ("compose:suite", p.suite),
                     ("compose:deb-filename", p.filename),
                     ("compose:source-package", p.source),
                     ("compose:source-version", p.source_version)]
            if p.licences.copyright_path:
                props.append(("compose:copyright-file", "/" + p.licences.copyright_path))
            if p.licences.detected:
                props.append((PROSE_PROPERTY, "true"))
            if lic.expression != p.licences.expression.strip():
                props.append(("compose:licence-as-read", p.licences.expression))
            props += [("compose:licence-note", n) for n in _licence_notes(p, lic)]
            doc: Json = {
                "type": "library",
                "bom-ref": ref,
                "supplier": {"name": "Debian"},
                "name": p.name,
                "version": p.version,
                "purl": package_purl(p),
                "hashes": [{"alg": "SHA-256", "content": p.deb_sha256}],
                "properties": _props(props),
            }
            if lic.expression not in _NO_LICENCE:
                doc["licenses"] = [{"expression": lic.expression,
                                    "acknowledgement": "declared"}]
            shipped = _files(p.files)
            if shipped:
                doc["components"] = [_cdx_file(arch, f, False) for f in shipped]
            components.append(doc)
            all_refs.append(ref)
            dependencies.append({"ref": ref, "dependsOn": sorted(depends[p.name])})
        generated += [_cdx_file(arch, f, True) for f in _files(r.generated)]

    image_props = [(f"compose:manifest:{r.architecture}", r.digest) for r in ordered if r.digest]
    image_props += [("compose:profile", p) for p in sorted({r.profile for r in ordered})]
    metadata: Json = {
        "timestamp": _timestamp(ordered),
        "lifecycles": [{"phase": "post-build"}],
        "tools": {"components": [{"type": "application", "name": "compose",
                                  "version": __version__}]},
        "component": {
            "type": "container",
            "bom-ref": image_ref,
            "name": name,
            "version": image_digest,
            "purl": oci_purl(name, image_digest),
            "hashes": [{"alg": "SHA-256", "content": hexdigest}],
            "properties": _props(image_props),
        },
        "properties": _props(("compose:source", f"{a} {s} {sha}")
                             for a, s, sha in _sources(ordered)),
    }
    if not metadata["properties"]:
        del metadata["properties"]
    if not image_props:
        del metadata["component"]["properties"]
    refs = [c["bom-ref"] for c in components + generated]
    refs += [f["bom-ref"] for c in components for f in c.get("components", ())]
    if len(set(refs)) != len(refs):
        raise ValueError("two components make the same bom-ref")
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"compose:cyclonedx:{name}@{image_digest}")
    bom: Json = {
        "$schema": CYCLONEDX_SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": metadata,
        "components": components + generated,
        "dependencies": [{"ref": image_ref, "dependsOn": sorted(all_refs)},
                         *sorted(dependencies, key=lambda d: str(d["ref"]))],
    }
    return _dump(bom)
