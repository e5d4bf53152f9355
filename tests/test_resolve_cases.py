"""Resolver cases as data: every ``tests/cases/*.toml`` is one case, checked against
``composer.resolve.solve`` and, where apt can express the case, against the real
``apt-get install --no-install-recommends`` (tests/aptoracle.py) as the oracle.

A case file::

    description = "what the case shows"
    architecture = "amd64"
    roots = ["app"]
    exclude = []            # optional
    prefer = {}             # optional: virtual -> provider
    recommends = false      # optional
    apt = true              # optional, see below
    xfail = "reason"        # optional: a known compose bug; the case holds apt's answer

    [[source]]              # one Packages file each; origin = position
    pin = 500               # optional: 500, 100 (ButAutomaticUpgrades) or 1 (NotAutomatic)
    packages = '''
    Package: app
    Version: 1.0
    Depends: c, b | c
    '''

    [expect]
    packages = ["app", "c"]         # the exact closure, or
    error = "substring"             # the ResolveError the case must raise
    error_mentions = ["app"]        # further substrings of the error (message and hint)
    versions = { c = "2.0" }        # versions that must be chosen
    excluded = { debconf = ["app"] } # excluded name -> who wanted it
    choices = { awk = "mawk" }      # virtual -> provider chosen

Stanzas only need what the case is about: Architecture defaults to the case's, and
Filename, Size, SHA256, Maintainer, Description and Priority (optional) are filled in.
A field left empty (``Priority:``) is dropped, for stanzas that lack it.

``apt`` defaults to true unless the case has exclude, prefer, recommends or an expected
error (apt cannot express the first three). With ``apt = true`` the expectation itself is
checked against apt first: apt must fail where an error is expected, and otherwise install
exactly ``packages`` (at ``versions``); then compose must meet the same expectation, and
every version apt installs must be the one compose chose. Pins other than 500 become a
Release file with NotAutomatic (and ButAutomaticUpgrades for 100) in that flat
repository, so apt sees the same pins.

``xfail`` records a known disagreement between compose and apt: the case holds apt's
answer (still checked against apt), compose's failure to meet it is an expected failure,
and a compose that meets it fails the case until the ``xfail`` line is removed.
"""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from composer.debian.deb822 import PackagesFile, parse
from composer.debian.packages import Index, IndexPart
from composer.errors import ResolveError
from composer.model import Resolution
from composer.resolve import solve
from tests import aptoracle

CASES = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES.glob("*.toml"))

CASE_KEYS = {"description", "architecture", "roots", "exclude", "prefer", "recommends", "apt",
             "xfail", "source", "expect"}
SOURCE_KEYS = {"pin", "packages"}
EXPECT_KEYS = {"packages", "versions", "excluded", "choices", "error", "error_mentions"}
PINS = {500: "", 100: "NotAutomatic: yes\nButAutomaticUpgrades: yes\n", 1: "NotAutomatic: yes\n"}
# Field order of a rendered stanza (as in a Debian Packages file); others follow.
FIELD_ORDER = ("Package", "Source", "Version", "Installed-Size", "Maintainer", "Architecture",
               "Multi-Arch", "Essential", "Provides", "Pre-Depends", "Depends", "Recommends",
               "Suggests", "Conflicts", "Breaks", "Description", "Priority", "Filename",
               "Size", "SHA256")


@dataclass
class Source:
    packages: bytes
    pin: int


@dataclass
class Case:
    name: str
    description: str
    architecture: str
    roots: list[str]
    sources: list[Source]
    expect: dict[str, Any]
    exclude: list[str] = field(default_factory=list)
    prefer: dict[str, str] = field(default_factory=dict)
    recommends: bool = False
    apt: bool = True
    xfail: str | None = None


def complete_stanza(fields: dict[str, str], arch: str) -> dict[str, str]:
    """Fill in the fields every Packages stanza has but a case need not spell."""
    out = dict(fields)
    name, ver = out["Package"], out["Version"]
    out.setdefault("Architecture", arch)
    a = out["Architecture"]
    pool = name[:4] if name.startswith("lib") else name[0]
    # The colon of an epoch becomes %3a in pool file names.
    out.setdefault("Filename", f"pool/main/{pool}/{name}/{name}_{ver.replace(':', '%3a')}_{a}.deb")
    out.setdefault("Size", str(1000 + len(name) + len(ver)))
    out.setdefault("SHA256", hashlib.sha256(f"{name}{ver}".encode()).hexdigest())
    out.setdefault("Maintainer", "Compose Tests <tests@example.org>")
    out.setdefault("Description", f"{name} for the resolver cases")
    out.setdefault("Priority", "optional")
    # An empty field in a case means "this stanza has no such field" (e.g. no Priority).
    return {k: v for k, v in out.items() if v}


def render(paragraphs: list[dict[str, str]]) -> bytes:
    stanzas = []
    for p in paragraphs:
        keys = [k for k in FIELD_ORDER if k in p] + [k for k in p if k not in FIELD_ORDER]
        stanzas.append("".join(f"{k}: {p[k]}\n" for k in keys))
    # Each stanza ends with a blank line, as in the archive's Packages files.
    return "".join(s + "\n" for s in stanzas).encode()


def load_case(path: Path) -> Case:
    data = tomllib.loads(path.read_text())
    where = path.name
    unknown = set(data) - CASE_KEYS
    assert not unknown, f"{where}: unknown keys {sorted(unknown)}"
    for key in ("description", "architecture", "roots", "source", "expect"):
        assert key in data, f"{where}: {key} is missing"
    expect = data["expect"]
    assert not set(expect) - EXPECT_KEYS, f"{where}: unknown [expect] keys {set(expect) - EXPECT_KEYS}"
    assert ("packages" in expect) != ("error" in expect), \
        f"{where}: [expect] needs exactly one of packages and error"
    other = {"versions", "excluded", "choices"} if "error" in expect else {"error_mentions"}
    assert not other & set(expect), f"{where}: [expect] {sorted(other & set(expect))} do not go with that"
    arch = data["architecture"]
    sources = []
    for i, src in enumerate(data["source"]):
        assert not set(src) - SOURCE_KEYS, f"{where}: source {i}: unknown keys {set(src) - SOURCE_KEYS}"
        pin = src.get("pin", 500)
        assert pin in PINS, f"{where}: source {i}: pin must be one of {sorted(PINS)}"
        paragraphs = [complete_stanza(p, arch) for p in parse(src["packages"], f"{where} source {i}")]
        sources.append(Source(render(paragraphs), pin))
    simple = not (data.get("exclude") or data.get("prefer") or data.get("recommends")
                  or "error" in expect)
    case = Case(
        name=path.stem, description=data["description"], architecture=arch,
        roots=list(data["roots"]), sources=sources, expect=expect,
        exclude=list(data.get("exclude", [])), prefer=dict(data.get("prefer", {})),
        recommends=bool(data.get("recommends", False)), apt=bool(data.get("apt", simple)),
        xfail=data.get("xfail"),
    )
    assert not (case.apt and (case.exclude or case.prefer or case.recommends)), \
        f"{where}: apt cannot check a case with exclude, prefer or recommends"
    return case


def index_of(case: Case) -> Index:
    parts = [IndexPart(PackagesFile(s.packages, f"{case.name} source {i}"), i, s.pin)
             for i, s in enumerate(case.sources)]
    return Index(case.architecture, parts)


def check_shape(res: Resolution) -> None:
    """Every shipped package is a root or wanted by a shipped one; excluded ones are not shipped."""
    names = {p.name for p in res.packages}
    targets = {e.target for e in res.edges}
    for e in res.edges:
        assert e.dependent in names, f"edge from unshipped {e.dependent}: {e}"
        assert e.target in names or e.target in dict(res.excluded), f"edge to nowhere: {e}"
    for name in names - set(res.roots):
        assert name in targets, f"{name} is shipped but nothing wants it"
    assert not names & set(dict(res.excluded)), "an excluded package is shipped"


def check_expect(case: Case, res: Resolution) -> None:
    exp = case.expect
    chosen = {p.name: p.version for p in res.packages}
    assert sorted(chosen) == sorted(exp["packages"])
    for name, ver in exp.get("versions", {}).items():
        assert chosen.get(name) == ver, f"{name}: chose {chosen.get(name)}, expected {ver}"
    if "excluded" in exp:
        assert {k: list(v) for k, v in res.excluded} == exp["excluded"]
    for virtual, provider in exp.get("choices", {}).items():
        got = {v: p for v, p, _ in res.choices}
        assert got.get(virtual) == provider, f"{virtual}: chose {got.get(virtual)}, expected {provider}"


def check_error(case: Case, err: ResolveError) -> None:
    text = f"{err.message}\n{err.hint or ''}"
    assert case.expect["error"] in err.message, text
    for s in case.expect.get("error_mentions", []):
        assert s in text, f"{s!r} not in:\n{text}"


AptRun = tuple[int, str, dict[str, str]]
"""apt-get's exit code, its output, and {name: version} of the packages it would install."""


def run_apt(case: Case, work: Path) -> AptRun:
    """``apt-get install -s --no-install-recommends`` of the case's roots."""
    files = []
    for i, src in enumerate(case.sources):
        d = work / f"src{i}"
        d.mkdir(parents=True)
        (d / "Packages").write_bytes(src.packages)
        files.append(d / "Packages")
        if src.pin != 500:
            # AptOracle copies Packages into repo{i} and keeps what is already there.
            repo = work / "apt" / f"repo{i}"
            repo.mkdir(parents=True)
            digest = hashlib.sha256(src.packages).hexdigest()
            (repo / "Release").write_text(
                f"Origin: compose-tests\nLabel: compose-tests\nSuite: case{i}\nCodename: case{i}\n"
                f"{PINS[src.pin]}SHA256:\n {digest} {len(src.packages)} Packages\n")
    oracle = aptoracle.AptOracle(work / "apt", files, case.architecture)
    out = subprocess.run(oracle.command(case.roots), env=oracle.env, capture_output=True, text=True)
    installed = {}
    for line in out.stdout.splitlines():
        if line.startswith("Inst "):
            # Inst NAME (VERSION ORIGIN [ARCH])
            parts = line.split()
            installed[parts[1]] = parts[2].lstrip("(")
    return out.returncode, out.stdout + out.stderr, installed


@pytest.fixture(scope="session")
def apt_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, AptRun]:
    """apt's answers for every selected case that wants one, computed in parallel up front:
    each run is ~0.1 s of mostly waiting on apt-get's subprocesses."""
    if not aptoracle.available():
        return {}
    cases = []
    for item in request.session.items:
        path = getattr(item, "callspec", None) and item.callspec.params.get("path")
        if path is None:
            continue
        try:
            case = load_case(path)
        except Exception:  # the case's own test reports it
            continue
        if case.apt:
            cases.append(case)
    base = tmp_path_factory.mktemp("apt")
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda c: run_apt(c, base / c.name), cases)
        return {c.name: r for c, r in zip(cases, runs, strict=True)}


def check_apt(case: Case, run: AptRun) -> dict[str, str]:
    """The case's expectation is what apt does: the oracle validates the case itself."""
    code, output, installed = run
    exp = case.expect
    if "error" in exp:
        assert code != 0, f"the case expects an error, but apt installs {sorted(installed)}:\n{output}"
        return {}
    assert code == 0, f"the case expects a closure, but apt-get fails:\n{output}"
    assert sorted(installed) == sorted(exp["packages"]), f"apt installs otherwise:\n{output}"
    for name, ver in exp.get("versions", {}).items():
        assert installed.get(name) == ver, f"apt installs {name} {installed.get(name)}:\n{output}"
    return installed


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path, apt_runs: dict[str, AptRun]) -> None:
    case = load_case(path)
    with_apt = case.apt and aptoracle.available()
    apt_installed = check_apt(case, apt_runs[case.name]) if with_apt else {}

    res: Resolution | None = None
    try:
        if "error" in case.expect:
            with pytest.raises(ResolveError) as info:
                solve(index_of(case), case.roots, case.exclude, case.prefer, case.recommends)
            check_error(case, info.value)
        else:
            res = solve(index_of(case), case.roots, case.exclude, case.prefer, case.recommends)
            check_shape(res)
            check_expect(case, res)
    except (AssertionError, ResolveError, pytest.fail.Exception) as exc:
        if case.xfail:
            first = (str(exc).splitlines() or [""])[0]
            pytest.xfail(f"{case.xfail} ({type(exc).__name__}: {first})")
        raise
    assert not case.xfail, f"compose now gives the expected answer: remove xfail from {path.name}"

    if res is not None and with_apt:
        # Beyond the expectation: every version apt installs is the one compose locks.
        assert apt_installed == {p.name: p.version for p in res.packages}
    if case.apt and not with_apt:
        pytest.skip("apt-get is not installed: the case is not checked against apt")


def test_there_are_cases() -> None:
    assert len(CASE_FILES) >= 20
