"""composer.debian.version against the real ``dpkg --compare-versions``.

The version list in tests/data/debian-versions.txt is real (Debian 13 "trixie" main amd64),
chosen to be rich in epochs, tildes, pluses, letters, dots and leading zeros. Pairs are
generated deterministically and every one is put to dpkg; compose must agree on all of them.

dpkg is run in a few ``sh`` loops (one per core) fed through stdin, so the whole file costs a
few thousand forks of dpkg and nothing else.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from composer.debian.version import compare, key, satisfies, split
from composer.errors import FormatError

DATA = Path(__file__).parent / "data" / "debian-versions.txt"
SEED = 20250809

Pair = tuple[str, str]


def _load_versions() -> list[str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


VERSIONS = _load_versions()

# Hand-written hard cases. The brief's ``~~`` vs ``~~a`` is not a valid version on its own
# (the upstream part must start with a digit), so it appears behind a ``0`` and as a revision.
EDGE_PAIRS: list[Pair] = [
    ("1.0", "1.0-0"),
    ("1.0~rc1", "1.0"),
    ("1:0", "2"),
    ("1.0a", "1.0"),
    ("1.0+", "1.0."),
    ("0", "00"),
    ("0~~", "0~~a"),
    ("1-~~", "1-~~a"),
    ("1.2.3-1~bpo12+1", "1.2.3-1"),
    ("1.2.3-1~bpo12+1", "1.2.3-1~bpo11+1"),
    ("1.2.3-1~bpo12+1", "1.2.3-1~deb12u1"),
    ("1.2.3-1+deb13u1", "1.2.3-1+b1"),
    ("1.2.3-1+deb13u1", "1.2.3-1.1"),
    ("1.2.3-1+b1", "1.2.3-1.1"),
    ("1.2.3-1+b10", "1.2.3-1+b9"),
    ("1.0+dfsg-1", "1.0-1"),
    ("1.0+dfsg-1", "1.0.1-1"),
    ("1.0~dfsg-1", "1.0-1"),
    ("1.0~", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0~~a", "1.0~"),
    ("1.0+~", "1.0+"),
    ("1.0a", "1.0+"),
    ("1.0a", "1.0."),
    ("1.0A", "1.0a"),
    ("1.0Z", "1.0a"),
    ("1.0", "1.00"),
    ("1.01", "1.1"),
    ("1.0-1", "1.0-01"),
    ("1.0.0", "1.0"),
    ("1.0", "1.0.0~"),
    ("0:1.0", "1.0"),
    ("2:1.0", "10:0.1"),
    ("1:1.0", "1.0"),
    ("1-2-3", "1-2"),
    ("1.0-1-1", "1.0-1"),
    ("1:1:1-1", "1:1-1"),
    ("1.0-a", "1.0-1"),
    ("1.0-~", "1.0"),
    ("1.0-0.0~", "1.0"),
    ("99999999999999999999", "100000000000000000000"),
    ("0001", "1"),
    # A number that is zero, followed by ``~``, against a part that is just zero or empty.
    ("0~", "0"),
    ("00~", "0"),
    ("0~rc1-1", "0-1"),
    ("0~git20200101-1", "0-1"),
    ("1.0-0~", "1.0"),
    ("1.0-0~", "1.0-0"),
    ("1.0-0~1", "1.0-0"),
    ("1.0-0~exp1", "1.0-0"),
    ("1.0-1~", "1.0-1"),
]


def _prefix(version: str) -> str:
    """A package-like grouping: epoch and the first two components of the upstream part."""
    m = re.match(r"^(?:\d+:)?[^.+~-]*[.+~-]?[^.+~-]*", version)
    assert m is not None
    return m.group(0)


def _derived(version: str) -> list[str]:
    """Small real-world edits of a real version (backports, binNMUs, point releases...)."""
    return [
        version + "~",
        version + "+b1",
        version + "~bpo13+1",
        version + "+deb13u1",
        version + ".0",
        version + "a",
    ]


def build_pairs(versions: list[str]) -> list[Pair]:
    rng = random.Random(SEED)
    pairs: list[Pair] = []
    # Neighbours in string order and in compose's own order (the latter are the pairs the
    # sort test relies on, and the most sensitive ones for an ordering bug).
    by_text = sorted(versions)
    pairs += itertools.pairwise(by_text)
    by_key = sorted(versions, key=key)
    pairs += itertools.pairwise(by_key)
    # Random pairs.
    pairs += [(rng.choice(versions), rng.choice(versions)) for _ in range(1500)]
    # Pairs within the same package-like prefix.
    groups: dict[str, list[str]] = defaultdict(list)
    for v in by_text:
        groups[_prefix(v)].append(v)
    for _, members in sorted(groups.items()):
        combos = list(itertools.combinations(members, 2))
        pairs += rng.sample(combos, min(len(combos), 8))
    # Edits of a deterministic sample of real versions.
    for v in by_text[::15]:
        pairs += [(v, d) for d in _derived(v)]
    pairs += EDGE_PAIRS
    # Drop self-pairs and duplicates (in either orientation), keeping first-seen order.
    seen: set[frozenset[str]] = set()
    out: list[Pair] = []
    for a, b in pairs:
        k = frozenset((a, b))
        if a != b and k not in seen:
            seen.add(k)
            out.append((a, b))
    return out


PAIRS = build_pairs(VERSIONS)

# dpkg reads "A OP B" lines and prints the exit status of each --compare-versions.
_DPKG_LOOP = """
while read -r a op b; do
  dpkg --compare-versions "$a" "$op" "$b"
  echo "$?"
done
"""


def _dpkg_chunk(questions: list[tuple[str, str, str]]) -> list[bool]:
    stdin = "".join(f"{a} {op} {b}\n" for a, op, b in questions)
    proc = subprocess.run(
        ["sh", "-c", _DPKG_LOOP],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    codes = proc.stdout.split()
    assert len(codes) == len(questions), proc.stderr
    bad = [(q, c) for q, c in zip(questions, codes, strict=True) if c not in ("0", "1")]
    assert not bad, f"dpkg refused some versions: {bad[:20]}\n{proc.stderr}"
    return [c == "0" for c in codes]


def dpkg_ask(questions: list[tuple[str, str, str]]) -> list[bool]:
    """Answer each ``(a, op, b)`` with ``dpkg --compare-versions a op b``, in parallel."""
    if not questions:
        return []
    workers = min(8, max(2, os.cpu_count() or 2))
    size = -(-len(questions) // workers)
    chunks = [questions[i : i + size] for i in range(0, len(questions), size)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        return [ans for part in pool.map(_dpkg_chunk, chunks) for ans in part]


_OP_FOR = {-1: "lt", 0: "eq", 1: "gt"}


def dpkg_compare_all(pairs: Iterable[Pair]) -> dict[Pair, int]:
    """dpkg's -1/0/1 for every pair.

    A three-way answer takes at most two yes/no questions. To save forks the first question
    is the relation compose predicts; when dpkg says no, a second question settles it. The
    result is dpkg's answer either way: compose's prediction only decides which question is
    asked first, never what the answer is.
    """
    pairs = list(pairs)
    first = [(a, _OP_FOR[compare(a, b)], b) for a, b in pairs]
    yes = dpkg_ask(first)
    result: dict[Pair, int] = {}
    retry: list[tuple[Pair, list[int]]] = []
    for (a, b), ok in zip(pairs, yes, strict=True):
        predicted = compare(a, b)
        if ok:
            result[(a, b)] = predicted
        else:
            retry.append(((a, b), [c for c in (-1, 0, 1) if c != predicted]))
    second = [(a, "lt" if -1 in left else "eq", b) for (a, b), left in retry]
    for ((a, b), left), (_, op, _), ok in zip(retry, second, dpkg_ask(second), strict=True):
        asked = -1 if op == "lt" else 0
        result[(a, b)] = asked if ok else next(c for c in left if c != asked)
    return result


@pytest.fixture(scope="module")
def dpkg_order() -> dict[Pair, int]:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed: it is the reference these tests compare against")
    return dpkg_compare_all(PAIRS)


def test_data_file_is_real_and_rich() -> None:
    assert len(VERSIONS) == len(set(VERSIONS)) >= 2500
    assert sorted(VERSIONS) == VERSIONS
    for mark in (":", "~", "+", "+deb13u", "+b"):
        assert sum(mark in v for v in VERSIONS) >= 50, mark
    assert len(PAIRS) >= 5000


def test_compare_agrees_with_dpkg_on_every_pair(dpkg_order: dict[Pair, int]) -> None:
    mismatches = []
    for (a, b), want in dpkg_order.items():
        got, back = compare(a, b), compare(b, a)
        if got != want or back != -want:
            mismatches.append(
                f"  {a!r} vs {b!r}: dpkg {want:+d}, compose {got:+d} (reverse {back:+d})"
            )
    assert not mismatches, (
        f"{len(mismatches)} of {len(dpkg_order)} pairs disagree with dpkg:\n"
        + "\n".join(mismatches)
    )


def test_sort_by_key_is_dpkg_order(dpkg_order: dict[Pair, int]) -> None:
    ordered = sorted(VERSIONS, key=key)
    wrong = []
    for a, b in itertools.pairwise(ordered):
        want = dpkg_order[(a, b)] if (a, b) in dpkg_order else -dpkg_order[(b, a)]
        if want > 0:
            wrong.append(f"  {a!r} sorted before {b!r}, but dpkg says it is greater")
    assert not wrong, f"{len(wrong)} adjacent pairs out of dpkg order:\n" + "\n".join(wrong)


# (a, b, dpkg's order of a against b), checked by hand against dpkg --compare-versions.
SATISFIES_CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("0", "00", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.2.3-1~bpo12+1", "1.2.3-1", -1),
    ("1.2.3-1+deb13u1", "1.2.3-1", 1),
    ("1:0", "2", 1),
    ("1.0a", "1.0", 1),
    ("1.0+", "1.0.", -1),
    # Numbers compare by value at any length, past int()'s 4300 digits.
    ("1" * 5000, "1" * 4999 + "2", -1),
    ("1." + "0" * 30 + "2", "1.1", 1),
]
OPS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("a", "b", "order"), SATISFIES_CASES)
def test_satisfies(a: str, b: str, order: int, op: str) -> None:
    assert satisfies(a, op, b) is OPS[op](order)
    assert satisfies(b, op, a) is OPS[op](-order)


@pytest.mark.parametrize(
    ("version", "triple"),
    [
        ("1.0", (0, "1.0", "")),
        ("1.0-1", (0, "1.0", "1")),
        ("1:2.3.4-5+deb13u1", (1, "2.3.4", "5+deb13u1")),
        ("0:1.0", (0, "1.0", "")),
        ("1.2-3-4", (0, "1.2-3", "4")),
        ("2:1:2-3", (2, "1:2", "3")),
        ("10:1.0~rc1-1~bpo12+1", (10, "1.0~rc1", "1~bpo12+1")),
        ("7.0.0+dfsg~alpha1", (0, "7.0.0+dfsg~alpha1", "")),
        ("0002:1", (2, "1", "")),
        ("2147483647:1", (2147483647, "1", "")),
    ],
)
def test_split(version: str, triple: tuple[int, str, str]) -> None:
    assert split(version) == triple


@pytest.mark.parametrize("version", [
    "", "a1.0", "1:", "x:1.0", "1.0 2", "1\n", "1.0\n",
    # dpkg's epoch is an int: digits in ASCII, at most INT_MAX.
    "\u00b2:1", "\u0661:1", "2147483648:1", "1" * 5000 + ":1",
])
def test_malformed_versions_raise(version: str) -> None:
    with pytest.raises(FormatError):
        split(version)
    with pytest.raises(FormatError):
        key(version)
