"""What the online build and audit tests share: the CLI against the real mirror, and a
module's own cache and fresh lock of the shipped py313 profile (Debian's mirrors drop
superseded .debs, so no test relies on the committed lock's packages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles" / "py313.toml"


def compose(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "composer", *map(str, args)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("online")


@pytest.fixture(scope="module")
def env(work: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_CACHE")}
    e["COMPOSE_CACHE_DIR"] = str(work / "cache")
    e["XDG_CONFIG_HOME"] = str(work / "config")
    return e


@pytest.fixture(scope="module")
def lock(env: dict[str, str], work: Path) -> Path:
    out = work / "py313.lock.toml"
    r = compose(env, "lock", PROFILE, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    return out
