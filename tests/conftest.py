"""Shared fixtures: an environment that reads nothing of the user's, and the CLI as a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLIResult = tuple[int, str, str]
"""(exit code, stdout, stderr) of one ``compose`` run."""


def isolated_env(root: Path) -> dict[str, str]:
    """os.environ without any COMPOSE_* variable, with the cache, HOME and the XDG
    folders under ``root``: no user config, apt-independent, nothing shared."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "XDG_"))}
    for name in ("home", "config", "cache", "compose-cache"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env |= {
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "COMPOSE_CACHE_DIR": str(root / "compose-cache"),
    }
    return env


def fixed_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with a fixed zone and locale and no SOURCE_DATE_EPOCH of the caller's."""
    out = {k: v for k, v in env.items() if k not in ("SOURCE_DATE_EPOCH", "TZ")}
    return out | {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh isolated environment (its own, empty cache) for one test."""
    return isolated_env(tmp_path / "env")


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An isolated environment shared by one module's tests (a warm cache)."""
    return isolated_env(tmp_path_factory.mktemp("env"))


def _run(env: dict[str, str], *args: str | Path, cwd: Path | None = None) -> CLIResult:
    r = subprocess.run([sys.executable, "-m", "composer", *map(str, args)], env=env,
                       cwd=cwd or env["HOME"], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="session")
def compose() -> Callable[..., CLIResult]:
    """``compose(env, *args, cwd=None) -> (rc, stdout, stderr)``; cwd defaults to $HOME."""
    return _run
