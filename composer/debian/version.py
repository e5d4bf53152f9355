"""Debian version ordering, identical to dpkg's ``verrevcmp``.

A version ``[epoch:]upstream[-revision]`` is turned into a sort key once (cached), so
that ``compare`` is a tuple comparison. The key mirrors dpkg's loop exactly: alternating
non-digit runs, compared character by character with ``~`` below the end of the string,
letters below everything else, and digit runs compared as integers; a missing part
counts as an empty string and a missing number as 0.
"""

from __future__ import annotations

import re
from functools import lru_cache

from composer.errors import FormatError

_CHUNK = re.compile(r"(\D*)(\d*)")
_VALID = re.compile(r"^(?:(\d+):)?([0-9A-Za-z.+~:-]+?)(?:-([0-9A-Za-z.+~]+))?$")

# One extra (non-digit part, number) pair, standing for "the string ends here".
_END = ((0,), 0)

Key = tuple[int, tuple[tuple[tuple[int, ...], int], ...], tuple[tuple[tuple[int, ...], int], ...]]


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _part_key(part: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    pairs: list[tuple[tuple[int, ...], int]] = []
    for m in _CHUNK.finditer(part):
        text, digits = m.group(1), m.group(2)
        if not text and not digits:
            continue
        pairs.append(((*(_order(c) for c in text), 0), int(digits) if digits else 0))
    while pairs and pairs[-1] == _END:
        pairs.pop()
    pairs.append(_END)
    return tuple(pairs)


def split(version: str) -> tuple[int, str, str]:
    """Return (epoch, upstream, revision); raise FormatError for a malformed version."""
    epoch = 0
    rest = version
    if ":" in version:
        e, rest = version.split(":", 1)
        if not e.isdigit():
            raise FormatError(f"bad version {version!r}: epoch {e!r} is not a number")
        epoch = int(e)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream or not _VALID.match(version) or not upstream[0].isdigit():
        raise FormatError(
            f"bad version {version!r}",
            "a Debian version is [epoch:]upstream[-revision] and its upstream part "
            "starts with a digit",
        )
    return epoch, upstream, revision


@lru_cache(maxsize=65536)
def key(version: str) -> Key:
    """A tuple that sorts like dpkg orders versions."""
    epoch, upstream, revision = split(version)
    return (epoch, _part_key(upstream), _part_key(revision))


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders a and b."""
    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


_OPS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
}


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether ``version`` satisfies the relation ``op wanted`` (``<<``, ``<=``, ``=``, ``>=``, ``>>``)."""
    return bool(_OPS[op](compare(version, wanted)))
