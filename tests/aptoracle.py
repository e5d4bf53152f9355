"""apt itself as the oracle: what would ``apt-get install --no-install-recommends`` install?

A throwaway apt configuration (its own Dir, empty dpkg status, flat ``file:`` repositories
marked trusted, no preferences) needs no root and leaves the host's apt alone. Each
Packages file becomes one flat repository, so apt sees exactly what compose sees.
``AptOracle`` runs ``apt-get update`` once (building apt's cache) and then answers any
number of requests; the benchmarks time those answers as apt's warm figure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


def available() -> bool:
    return shutil.which("apt-get") is not None


class AptOracle:
    def __init__(self, work: Path, packages_files: list[Path], arch: str,
                 foreign: tuple[str, ...] = ()) -> None:
        """``foreign``: architectures added as ``dpkg --add-architecture`` would (their
        packages are in ``packages_files`` too, each stanza naming its architecture)."""
        self.work = work
        for sub in ("state/lists", "cache", "etc/parts", "etc/sources.list.d", "etc/preferences.d"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        (work / "state" / "status").write_text("")
        lines = []
        for i, pf in enumerate(packages_files):
            repo = work / f"repo{i}"
            repo.mkdir(exist_ok=True)
            shutil.copyfile(pf, repo / "Packages")
            lines.append(f"deb [trusted=yes] file:{repo} ./")
        (work / "etc" / "sources.list").write_text("\n".join(lines) + "\n")
        w = work
        self.options = [
            f"-oDir={w}", f"-oDir::State={w}/state", f"-oDir::State::status={w}/state/status",
            f"-oDir::Cache={w}/cache", f"-oDir::Cache::pkgcache={w}/cache/pkgcache.bin",
            f"-oDir::Cache::srcpkgcache={w}/cache/srcpkgcache.bin", f"-oDir::Etc={w}/etc",
            f"-oDir::Etc::sourcelist={w}/etc/sources.list",
            f"-oDir::Etc::sourceparts={w}/etc/sources.list.d",
            f"-oDir::Etc::preferences={w}/etc/preferences",
            f"-oDir::Etc::preferencesparts={w}/etc/preferences.d", f"-oDir::Etc::parts={w}/etc/parts",
            f"-oAPT::Architecture={arch}", f"-oAPT::Architectures={','.join((arch, *foreign))}",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-oAcquire::Languages=none",
        ]
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        subprocess.run(["apt-get", *self.options, "update", "-qq"], check=True, env=self.env,
                       capture_output=True)

    def command(self, roots: list[str]) -> list[str]:
        return ["apt-get", *self.options, "install", "-s", "-q", "--no-install-recommends", *roots]

    def _simulate(self, roots: list[str]) -> list[str]:
        """The ``Inst`` lines of ``apt-get install -s`` for ``roots``."""
        out = subprocess.run(self.command(roots), env=self.env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"apt-get failed for {roots}:\n{out.stdout}\n{out.stderr}")
        return [line for line in out.stdout.splitlines() if line.startswith("Inst ")]

    def install_set(self, roots: list[str]) -> set[str]:
        """Package names apt would install onto an empty system for ``roots``."""
        return {line.split()[1] for line in self._simulate(roots)}

    def install_arch_set(self, roots: list[str]) -> set[tuple[str, str]]:
        """(name, architecture) of each package apt would install: ``all`` for an
        Architecture: all one (roots may be qualified, ``libc6-dev:arm64``)."""
        got = set()
        for line in self._simulate(roots):
            # Inst NAME[:ARCH] (VERSION ORIGIN [ARCH]) [what it breaks, maybe empty]
            m = re.match(r"Inst ([^ :]+)\S* \(\S+ \S+ \[([^]]+)\]\)", line)
            if m is None:
                raise RuntimeError(f"apt-get printed an Inst line of unknown shape: {line!r}")
            got.add((m[1], m[2]))
        return got


def apt_install_set(work: Path, packages_files: list[Path], arch: str, roots: list[str]) -> set[str]:
    """One-shot form of ``AptOracle(...).install_set(roots)``."""
    return AptOracle(work, packages_files, arch).install_set(roots)
