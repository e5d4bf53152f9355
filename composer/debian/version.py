"""Debian version ordering, identical to dpkg's ``verrevcmp``.

A version ``[epoch:]upstream[-revision]`` is split once (cached) into chunks of a
non-digit run and the number after it. Two parts compare chunk by chunk exactly as
dpkg's loop does: characters of the non-digit runs by weight (``~`` below the end of the
string, letters below everything else), then the numbers; a part that has run out
counts as an empty string with the number 0 for as long as the other goes on. (A sort
key of tuples cannot express that padding: ``0`` and ``0~`` would compare the wrong way,
so ``key`` wraps ``compare``.) A number is kept as its digits without leading zeros and
their count, which order as the numbers do at any length, as in dpkg.
"""

from __future__ import annotations

import re
from functools import cmp_to_key, lru_cache
from typing import Any

from composer.errors import FormatError

_CHUNK = re.compile(r"(\D*)(\d*)")
_VALID = re.compile(r"^(?:(\d+):)?([0-9A-Za-z.+~:-]+?)(?:-([0-9A-Za-z.+~]+))?$")

_Number = tuple[int, str]
Chunks = tuple[tuple[tuple[int, ...], _Number], ...]
_EMPTY: tuple[tuple[int, ...], _Number] = ((), (0, ""))
_MAX_EPOCH = 2**31 - 1


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _chunks(part: str) -> Chunks:
    out: list[tuple[tuple[int, ...], _Number]] = []
    for m in _CHUNK.finditer(part):
        text, digits = m.group(1), m.group(2).lstrip("0")
        if text or m.group(2):
            out.append((tuple(_order(c) for c in text), (len(digits), digits)))
    return tuple(out)


def _cmp_part(a: Chunks, b: Chunks) -> int:
    if a == b:
        return 0
    for i in range(max(len(a), len(b))):
        ta, na = a[i] if i < len(a) else _EMPTY
        tb, nb = b[i] if i < len(b) else _EMPTY
        if ta != tb:
            for j in range(max(len(ta), len(tb))):
                x = ta[j] if j < len(ta) else 0
                y = tb[j] if j < len(tb) else 0
                if x != y:
                    return -1 if x < y else 1
        if na != nb:
            return -1 if na < nb else 1
    return 0


def split(version: str) -> tuple[int, str, str]:
    """Return (epoch, upstream, revision); raise FormatError for a malformed version."""
    epoch = 0
    rest = version
    if ":" in version:
        e, rest = version.split(":", 1)
        if not (e.isascii() and e.isdigit()):
            raise FormatError(f"bad version {version!r}: epoch {e!r} is not a number")
        if len(e.lstrip("0")) > len(str(_MAX_EPOCH)) or int(e) > _MAX_EPOCH:
            raise FormatError(f"bad version {version!r}: epoch {e!r} is too big")
        epoch = int(e)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    elif not revision:
        raise FormatError(f"bad version {version!r}: the revision after '-' is empty")
    if not upstream or not _VALID.fullmatch(version) or not upstream[0].isdigit():
        raise FormatError(
            f"bad version {version!r}",
            "a Debian version is [epoch:]upstream[-revision] and its upstream part "
            "starts with a digit",
        )
    return epoch, upstream, revision


@lru_cache(maxsize=65536)
def parsed(version: str) -> tuple[int, Chunks, Chunks]:
    epoch, upstream, revision = split(version)
    return epoch, _chunks(upstream), _chunks(revision)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders a and b."""
    if a == b:
        return 0
    ea, ua, ra = parsed(a)
    eb, ub, rb = parsed(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


_Key = cmp_to_key(compare)


def key(version: str) -> Any:
    """A sort key that orders versions as dpkg does (validates the version)."""
    parsed(version)
    return _Key(version)


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
