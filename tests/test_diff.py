"""compose diff: what changed between two locks, for a review."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "locks" / "py313.lock.toml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "composer", "diff", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def _edited(tmp_path: Path) -> Path:
    """The committed lock with libssl3t64 moved back a version, zlib1g dropped on
    arm64, and a package renamed (so one is removed and one added) on amd64."""
    text = LOCK.read_text()
    blocks = text.split("\n[[package]]\n")
    out = [blocks[0]]
    for b in blocks[1:]:
        if 'name = "zlib1g"' in b and 'architecture = "arm64"' in b:
            continue
        if 'name = "libssl3t64"' in b:
            b = re.sub(r'^version = ".*"$', 'version = "3.0.0-1"', b, count=1, flags=re.M)
        if 'name = "netbase"' in b and 'architecture = "amd64"' in b:
            b = b.replace('name = "netbase"', 'name = "netbase-old"')
        out.append(b)
    path = tmp_path / "old.lock.toml"
    path.write_text("\n[[package]]\n".join(out))
    return path


def test_diff_lists_added_removed_upgraded(tmp_path: Path) -> None:
    old = _edited(tmp_path)
    r = run(old, LOCK)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ssl = [ln for ln in lines if " libssl3t64 " in ln]
    assert len(ssl) == 2 and all(ln.startswith(("[amd64] ~", "[arm64] ~")) for ln in ssl)
    assert all("3.0.0-1 -> " in ln and "(source openssl " in ln for ln in ssl)
    assert any(ln.startswith("[arm64] + zlib1g ") for ln in lines)
    assert any(ln.startswith("[amd64] + netbase ") for ln in lines)
    assert any(ln.startswith("[amd64] - netbase-old ") for ln in lines)
    assert lines[-1] == "2 added, 1 removed, 2 upgraded"


def test_diff_json_and_reverse(tmp_path: Path) -> None:
    old = _edited(tmp_path)
    doc = json.loads(run(LOCK, old, "--json").stdout)
    kinds = sorted((c["architecture"], c["name"], c["kind"]) for c in doc)
    assert kinds == [("amd64", "libssl3t64", "downgraded"), ("amd64", "netbase", "removed"),
                     ("amd64", "netbase-old", "added"), ("arm64", "libssl3t64", "downgraded"),
                     ("arm64", "zlib1g", "removed")]
    ssl = next(c for c in doc if c["name"] == "libssl3t64")
    assert ssl["new_version"] == "3.0.0-1" and ssl["old_source"].startswith("openssl ")


def test_same_lock_has_no_changes() -> None:
    r = run(LOCK, LOCK)
    assert r.returncode == 0 and r.stdout.strip() == "no package changed"


def test_bad_lock_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lock.toml"
    bad.write_text("version = 99\n")
    r = run(bad, LOCK)
    assert r.returncode != 0 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
