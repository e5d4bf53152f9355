"""docs/reliability.md names the test behind each row: each must exist, so the table
cannot outlive what it reports."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"


def test_every_test_the_table_names_exists() -> None:
    text = DOC.read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) > 50
    missing = [f"{f}::{name}" for f, name in named
               if not (ROOT / f).is_file()
               or not re.search(rf"^def {name}\(", (ROOT / f).read_text(), re.M)]
    assert not missing, missing
    for short in re.findall(r"\(`(test_\w+)`\)", text):
        assert any(re.search(rf"^def {short}\(", p.read_text(), re.M)
                   for p in (ROOT / "tests").glob("test_*.py")), short
    for case in re.findall(r"`(tests/cases/[\w*-]+\.toml)`", text):
        assert list(ROOT.glob(case)), case


def test_the_readme_links_it() -> None:
    assert "(docs/reliability.md)" in (ROOT / "README.md").read_text()
