"""CPython from source: compose's sealed build against the same configure/make run
straight on the host, side by side, in one run; then the cached rebuild, and the image's
size beside py313's.

py313-latest is locked afresh into a scratch directory with an empty cache: first for
amd64 alone (a copy of the profile that names only amd64), so that the lock downloads
the indexes, the build root and the tarball, assembles the build root and compiles
(``first lock``); then as shipped, for both, which cross-compiles arm64 (the amd64
interpreter, which the cross build runs, from the cache). ``compose build --locked``
then takes both interpreters from the cache (the image's .debs fetched, its trees
assembled, byte-compiled and compressed) and, built once more, reuses the layers too. The peer unpacks the same tarball on the host and
runs the same configure, make and make install unsealed, with the host's own compiler and
whatever -dev packages the host has (where one is missing, configure leaves a module out
or uses CPython's bundled copy: the peer may do a little less work than compose).

Usage: python benchmarks/bench_pybuild.py [--write docs/performance.md]
(--write replaces the text between the file's bench_pybuild markers)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from composer import cpython, lockfile  # noqa: E402


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv[:5])} ... failed:\n{r.stderr[-3000:]}{r.stdout[-2000:]}")
    return took, r.stdout


def compose(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "composer", *map(str, args)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", type=Path)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pybuild-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "profiles", work / "profiles")
        env = dict(os.environ, COMPOSE_CACHE_DIR=str(work / "cache"), PYTHONPATH=str(ROOT))
        (work / "profiles" / "amd64-only.toml").write_text(
            'name = "amd64-only"\nextends = "py313-latest.toml"\narchitectures = ["amd64"]\n')
        first, _ = run(compose("lock", "-q", "--allow-expired", "profiles/amd64-only.toml"),
                       env, work)
        crossed, _ = run(compose("lock", "-q", "--allow-expired", "profiles/py313-latest.toml"),
                         env, work)
        cached, out = run(compose("build", "--locked", "--json", "profiles/py313-latest.toml"),
                          env, work)
        rebuild, out = run(compose("build", "--locked", "--json", "profiles/py313-latest.toml"),
                           env, work)
        _, base = run(compose("lock", "-q", "profiles/py313.toml"), env, work)
        _, base = run(compose("build", "--locked", "--json", "profiles/py313.toml"), env, work)
        sizes = {(name, arch): json.JSONDecoder().raw_decode(text)[0]["architectures"][arch]
                 for name, text in (("py313-latest", out), ("py313", base))
                 for arch in ("amd64", "arm64")}

        lk = lockfile.load(work / "locks" / "py313-latest.lock.toml")
        src = lk.python_source
        assert src is not None
        tarball = work / "cache" / "sha256" / src.sha256[:2] / src.sha256
        if not tarball.exists():
            tarball = next((work / "cache").rglob(src.sha256))
        host = work / "host"
        host.mkdir()
        subprocess.run(["tar", "xf", str(tarball), "-C", str(host)], check=True)
        (srcdir,) = host.iterdir()
        assert lk.profile and lk.python_builds
        from composer.profile import load

        prof = load(work / "profiles" / "py313-latest.toml")
        assert prof.python_build is not None and prof.python_version
        args = cpython.configure_args(prof.python_version, prof.python_build, "amd64", "amd64")
        jobs = str(os.cpu_count() or 1)
        host_env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        t = time.perf_counter()
        run(["./configure", *args], host_env, srcdir)
        run(["make", f"-j{jobs}"], host_env, srcdir)
        run(["make", "install", f"DESTDIR={host / 'out'}"], host_env, srcdir)
        peer = time.perf_counter() - t

    cpu = os.cpu_count()

    def row(name: str, label: str) -> str:
        return "\n".join(
            f"| {label} | {arch} | {s['packages']} | {s['uncompressed_size'] / 2**20:.1f} MiB | "
            f"{s['compressed_size'] / 2**20:.1f} MiB |"
            for arch in ("amd64", "arm64") for s in [sizes[name, arch]])

    text = f"""<!-- bench_pybuild:begin -->
Measured {time.strftime('%Y-%m-%d')} on {cpu} cores, `benchmarks/bench_pybuild.py`:
CPython {src.upstream_version} (py313-latest), amd64 built natively, arm64 cross-compiled.

| step | wall time |
|---|---|
| first `compose lock`, amd64 (empty cache: indexes, {len(lk.build_root('amd64'))} build-root .debs and the tarball downloaded, build root assembled, sealed configure + make + make install) | {first:.0f} s |
| the same configure + make + make install run straight on the host (its own gcc and -dev packages, no sandbox, source already unpacked) | {peer:.0f} s |
| then `compose lock` of both: arm64 cross-compiled ({len(lk.build_root('arm64'))} packages in the cross build root, those of arm64 and the cross toolchain downloaded, assembled; the amd64 interpreter from the cache) | {crossed:.0f} s |
| `compose build --locked` after it (both interpreters from the cache; the images' {sizes['py313-latest', 'amd64']['packages']} + {sizes['py313-latest', 'arm64']['packages']} .debs fetched, their trees assembled, byte-compiled, compressed) | {cached:.1f} s |
| `compose build --locked` again (layers reused too) | {rebuild:.2f} s |

| image | architecture | packages | uncompressed | gzip layer |
|---|---|---|---|---|
{row("py313", "py313 (Debian's CPython 3.13)")}
{row("py313-latest", f"py313-latest (CPython {src.upstream_version} from source)")}
<!-- bench_pybuild:end -->"""
    print(text)
    if opts.write:
        doc = opts.write.read_text()
        pattern = re.compile(r"<!-- bench_pybuild:begin -->.*<!-- bench_pybuild:end -->", re.S)
        doc = pattern.sub(lambda _: text, doc) if pattern.search(doc) else doc + "\n" + text + "\n"
        opts.write.write_text(doc)


if __name__ == "__main__":
    main()
