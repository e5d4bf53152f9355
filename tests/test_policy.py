"""The licence policy: SPDX expressions, deny patterns, exceptions with reasons."""

from __future__ import annotations

import pytest

from composer.audit import policy
from composer.audit.report import AuditedPackage, PackageLicences
from composer.errors import ComposeError


def pkg(name: str, expression: str, ids: tuple[str, ...], machine_readable: bool = True,
        ) -> AuditedPackage:
    return AuditedPackage(name, "1.0-1", "amd64", name, "1.0-1", "0" * 64, 1, "pool/x.deb",
                          "debian", "trixie", (),
                          PackageLicences(expression, ids, machine_readable,
                                          copyright_path=f"usr/share/doc/{name}/copyright"))


def why(name: str) -> tuple[tuple[str, ...], ...]:
    return (("(profile)", "python3.13-minimal", name),)


@pytest.mark.parametrize(("expr", "shape"), [
    ("MIT", "MIT"),
    ("GPL-2.0-or-later OR MIT", "or(GPL-2.0-or-later,MIT)"),
    ("A AND B OR C", "or(and(A,B),C)"),
    ("A AND (B OR C)", "and(A,or(B,C))"),
    ("GPL-3.0-or-later WITH GCC-exception-3.1 AND MIT",
     "and(GPL-3.0-or-later WITH GCC-exception-3.1,MIT)"),
    ("(LGPL-2.1-or-later)", "LGPL-2.1-or-later"),
    ("a or b", "or(a,b)"),
])
def test_parse(expr: str, shape: str) -> None:
    def show(n: policy.Node) -> str:
        return n.term if n.op == "term" else f"{n.op}({','.join(map(show, n.children))})"
    assert show(policy.parse(expr)) == shape


@pytest.mark.parametrize("bad", ["(MIT", "MIT)", "AND MIT", "MIT OR", "MIT WITH", "M!T"])
def test_parse_refuses_broken_expressions(bad: str) -> None:
    with pytest.raises(ComposeError):
        policy.parse(bad)


@pytest.mark.parametrize(("expr", "deny", "blocked"), [
    ("GPL-3.0-or-later", ["GPL-3.0-or-later"], True),
    ("gpl-3.0-or-later", ["GPL-3.0-OR-LATER"], True),
    ("LGPL-3.0-or-later", ["GPL-3.0-or-later"], False),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", ["GPL-3.0-or-later"], False),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", ["GPL-3.0-*"], True),
    ("AGPL-3.0-only", ["AGPL-3.0-*"], True),
    ("GPL-2.0-or-later OR MIT", ["GPL-*"], False),
    ("GPL-2.0-or-later AND MIT", ["GPL-*"], True),
    ("(GPL-2.0-only OR GPL-3.0-only) AND MIT", ["GPL-*"], True),
    ("(GPL-2.0-only OR BSD-3-Clause) AND MIT", ["GPL-*"], False),
])
def test_blocking(expr: str, deny: list[str], blocked: bool) -> None:
    assert bool(policy.blocking(policy.parse(expr), deny)) is blocked


def test_check_reports_package_licence_file_and_why() -> None:
    pkgs = [pkg("libreadline8t64", "GPL-3.0-or-later", ("GPL-3.0-or-later",)),
            pkg("libc6", "LGPL-2.1-or-later AND GPL-2.0-or-later", ("GPL-2.0-or-later",
                                                                    "LGPL-2.1-or-later")),
            pkg("zlib1g", "Zlib", ("Zlib",))]
    found = policy.check(pkgs, ["GPL-3.0-or-later", "AGPL-3.0-*"], [], why)
    assert [(v.package, v.licence, v.rule, v.file, v.allowed) for v in found] == [
        ("libreadline8t64", "GPL-3.0-or-later", "GPL-3.0-or-later",
         "usr/share/doc/libreadline8t64/copyright", None)]
    assert found[0].why == why("libreadline8t64")


def test_exception_keeps_the_violation_with_its_reason() -> None:
    pkgs = [pkg("libreadline8t64", "GPL-3.0-or-later", ("GPL-3.0-or-later",))]
    found = policy.check(pkgs, ["GPL-3.0-or-later"],
                         [("libreadline8t64", "only the interactive prompt uses it")], why)
    assert len(found) == 1 and found[0].allowed == "only the interactive prompt uses it"


def test_unknown_licence_is_never_assumed_allowed() -> None:
    pkgs = [pkg("mystery", policy.UNKNOWN, (policy.UNKNOWN,), machine_readable=False)]
    found = policy.check(pkgs, ["AGPL-3.0-*"], [], why)
    assert [(v.package, v.licence, v.rule) for v in found] == [
        ("mystery", policy.UNKNOWN, "not established")]
    assert policy.check(pkgs, [], [], why) == ()


def test_detected_licences_are_checked_like_others() -> None:
    pkgs = [pkg("old", "GPL-2.0-or-later", ("GPL-2.0-or-later",), machine_readable=False)]
    assert [v.licence for v in policy.check(pkgs, ["GPL-2.0-*"], [], why)] == [
        "GPL-2.0-or-later"]
    assert policy.check(pkgs, ["GPL-3.0-*"], [], why) == ()


def test_possible_licences_are_flagged_for_a_person_to_decide() -> None:
    p = pkg("libc6", "LGPL-2.1-or-later", ("LGPL-2.1-or-later",))
    p = AuditedPackage(**{**{f: getattr(p, f) for f in p.__slots__},
                          "licences": PackageLicences("LGPL-2.1-or-later", ("LGPL-2.1-or-later",),
                                                      True, possible=("GPL-2.0-only",))})
    found = policy.check([p], ["GPL-2.0-*"], [], why)
    assert [(v.licence, v.rule) for v in found] == [
        ("GPL-2.0-only", "GPL-2.0-* (in source files that may be compiled in)")]
    allowed = policy.check([p], ["GPL-2.0-*"], [("libc6", "gencat and ldconfig are not in "
                                                  "libc6")], why)
    assert allowed[0].allowed and not [v for v in allowed if v.allowed is None]
