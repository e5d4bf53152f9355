"""apt itself as the oracle: what would ``apt-get install --no-install-recommends`` install?

A throwaway apt configuration (its own Dir, empty dpkg status, flat ``file:`` repositories
marked trusted, no preferences) needs no root and leaves the host's apt alone. Each
Packages file becomes one flat repository, so apt sees exactly what compose sees.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def available() -> bool:
    return shutil.which("apt-get") is not None


def apt_install_set(work: Path, packages_files: list[Path], arch: str, roots: list[str]) -> set[str]:
    """Package names apt would install onto an empty system for ``roots``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "state" / "lists").mkdir(parents=True, exist_ok=True)
    (work / "cache").mkdir(exist_ok=True)
    (work / "etc").mkdir(exist_ok=True)
    (work / "state" / "status").write_text("")
    lines = []
    for i, pf in enumerate(packages_files):
        repo = work / f"repo{i}"
        repo.mkdir(exist_ok=True)
        shutil.copyfile(pf, repo / "Packages")
        lines.append(f"deb [trusted=yes] file:{repo} ./")
    (work / "etc" / "sources.list").write_text("\n".join(lines) + "\n")
    opts = [
        f"-oDir={work}", f"-oDir::State={work}/state", f"-oDir::State::status={work}/state/status",
        f"-oDir::Cache={work}/cache", f"-oDir::Etc={work}/etc",
        f"-oDir::Etc::sourcelist={work}/etc/sources.list", "-oDir::Etc::sourceparts=-",
        "-oDir::Etc::preferences=/dev/null", "-oDir::Etc::preferencesparts=-",
        "-oDir::Etc::parts=-", f"-oAPT::Architecture={arch}", f"-oAPT::Architectures={arch}",
        "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-oAcquire::Languages=none",
        "-oAPT::Get::List-Cleanup=0",
    ]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, env=env, capture_output=True)
    out = subprocess.run(
        ["apt-get", *opts, "install", "-s", "-q", "--no-install-recommends", *roots],
        env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"apt-get failed for {roots}:\n{out.stdout}\n{out.stderr}")
    return {line.split()[1] for line in out.stdout.splitlines() if line.startswith("Inst ")}
