"""Where a key of a TOML text is written: tomllib gives values, not their lines, and an
error about a value should name its line."""

from __future__ import annotations

import re
import tomllib


class TomlLines:
    """Line numbers for keys in a TOML text (1-based), found by scanning headers."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _key_re(self, key: str) -> re.Pattern[str]:
        k = re.escape(key)
        return re.compile(r"^\s*(?:" + k + r'|"' + k + r'"' + r"|'" + k + r"')\s*[=.]")

    def exact(self, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path`` only when the text itself has that key or table."""
        if not path:
            return None
        line = self.line(path)
        if line is None:
            return None
        text = self.lines[line - 1]
        key = path[-1]
        if isinstance(key, int):
            return line if self._HEADER.match(text) else None
        return line if self._key_re(key).match(text) or key in text else None

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path`` like ("source", 1, "suite") or ("packages", "include")."""
        table: list[str | int] = []
        counts: dict[str, int] = {}
        want_table = [p for p in path[:-1]]
        key = path[-1]
        best: int | None = None
        for no, text in enumerate(self.lines, 1):
            m = self._HEADER.match(text)
            if m:
                name = m.group(2).replace('"', "").strip()
                if m.group(1) == "[[":
                    idx = counts.get(name, -1) + 1
                    counts[name] = idx
                    table = [*name.split("."), idx]
                else:
                    table = list(name.split("."))
                if isinstance(key, (str, int)) and table == list(path):
                    best = best or no
                continue
            if table == want_table and isinstance(key, str) and self._key_re(key).match(text):
                return no
        if best is None and len(path) > 1:
            return self.line(path[:-1])
        return best


def decode_error(exc: tomllib.TOMLDecodeError, path: object) -> str:
    """``PATH:LINE: not valid TOML: …`` from tomllib's message."""
    msg = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    at = f"{path}:{m.group(1)}" if m else str(path)
    return f"{at}: not valid TOML: {re.sub(r' [(]at line.*', '', msg)}"
