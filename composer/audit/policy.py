"""The profile's licence policy, applied to what ships.

``deny`` holds SPDX identifiers or globs (``GPL-3.0-or-later``, ``AGPL-3.0-*``). A
licence term with an exception (``GPL-3.0-or-later WITH GCC-exception-3.1``) is matched
as a whole, so ``GPL-3.0-or-later`` does not deny libgcc's runtime-exception licence
while ``GPL-3.0-*`` does. Matching ignores case, as SPDX identifiers do.

A package is denied when its licence expression cannot be satisfied without a denied
term: ``A OR B`` needs one allowed side, ``A AND B`` both. A licence compose could not
establish at all (``LicenseRef-unknown``: no machine-readable copyright file and nothing
recognisable in its prose) is never assumed allowed: under a policy with any ``deny`` it
is a violation too, so that a person decides. Licences detected from prose are checked
like any other and marked as detected in every report. A denied licence that only
source files carry which may or may not be compiled into what ships (``possible``) is a
violation too: compose cannot tell, a person can, with an exception that says why.
``allow-packages`` exceptions
keep a violation in every report, with their reason, but do not fail the gate.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from composer.audit.report import AuditedPackage, Violation
from composer.debian import copyright as dep5
from composer.errors import ComposeError

UNKNOWN = dep5.UNKNOWN


class PolicyError(ComposeError):
    """A denied licence ships."""

    exit_code = 3


@dataclass(frozen=True)
class Node:
    op: str
    """``term``, ``and`` or ``or``."""
    term: str = ""
    children: tuple[Node, ...] = ()


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")


def parse(expression: str) -> Node:
    """An SPDX licence expression as a tree; ``WITH`` stays inside its term. AND binds
    tighter than OR, as SPDX says."""
    tokens: list[str] = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ComposeError(f"cannot read licence expression {expression!r} at {pos}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        return Node("term", UNKNOWN)
    at = 0

    def peek() -> str:
        return tokens[at] if at < len(tokens) else ""

    def take() -> str:
        nonlocal at
        if at >= len(tokens):
            raise ComposeError(f"licence expression {expression!r} ends too early")
        at += 1
        return tokens[at - 1]

    def primary() -> Node:
        tok = take() if peek() else ""
        if tok == "(":
            node = either()
            if take() != ")":
                raise ComposeError(f"unbalanced parentheses in {expression!r}")
            return node
        if not tok or tok.upper() in ("AND", "OR", "WITH", ")"):
            raise ComposeError(f"cannot read licence expression {expression!r}")
        if peek().upper() == "WITH":
            take()
            return Node("term", f"{tok} WITH {take()}")
        return Node("term", tok)

    def both() -> Node:
        parts = [primary()]
        while peek().upper() == "AND":
            take()
            parts.append(primary())
        return parts[0] if len(parts) == 1 else Node("and", children=tuple(parts))

    def either() -> Node:
        parts = [both()]
        while peek().upper() == "OR":
            take()
            parts.append(both())
        return parts[0] if len(parts) == 1 else Node("or", children=tuple(parts))

    node = either()
    if at != len(tokens):
        raise ComposeError(f"unexpected {tokens[at]!r} in licence expression {expression!r}")
    return node


def denied_by(term: str, deny: Sequence[str]) -> str | None:
    """The first deny pattern matching a licence term, if any."""
    for pattern in deny:
        if fnmatch.fnmatchcase(term.casefold(), pattern.casefold()):
            return pattern
    return None


def blocking(node: Node, deny: Sequence[str]) -> list[tuple[str, str]]:
    """(term, pattern) pairs that make ``node`` unsatisfiable; [] when it can be met
    with allowed licences."""
    if node.op == "term":
        hit = denied_by(node.term, deny)
        return [(node.term, hit)] if hit else []
    results = [blocking(c, deny) for c in node.children]
    if node.op == "or" and not all(results):  # one side can be met
        return []
    return [pair for r in results for pair in r]


def check(packages: Sequence[AuditedPackage], deny: Sequence[str],
          allow: Sequence[tuple[str, str]],
          why: Callable[[str], tuple[tuple[str, ...], ...]]) -> tuple[Violation, ...]:
    """Every package the policy does not let ship, with the reason of an exception
    when the profile grants one."""
    if not deny:
        return ()
    reasons = dict(allow)
    out: list[Violation] = []
    for pkg in sorted(packages, key=lambda p: p.name):
        lic = pkg.licences
        found = blocking(parse(lic.expression), deny)
        if UNKNOWN in lic.ids:
            found.append((UNKNOWN, "not established"))
        for term in lic.possible:
            hit = denied_by(term, deny)
            if hit:
                found.append((term, f"{hit} (in source files that may be compiled in)"))
        chains = why(pkg.name) if found else ()
        for term, pattern in dict.fromkeys(found):
            out.append(Violation(pkg.name, term, pattern, lic.copyright_path, chains,
                                 reasons.get(pkg.name)))
    return tuple(out)
