"""Lock speed, side by side with apt and the usual Python deb822 parsers, in one run.

    .venv/bin/python benchmarks/bench_lock.py [--runs 15] [--write docs/performance.md]

Measures, on Debian 13 "trixie" main amd64 from the mirror found at run time:

1. Building what the solver needs from the 57 MB Packages file: compose's scan, and its
   cached sidecar; python-debian's deb822 (full parse); apt's C++ TagFile through
   python3-apt (iterating every paragraph and reading its Package field).
2. A warm ``compose lock`` of profiles/py313.toml restricted to amd64 (indexes cached;
   InRelease fetched and verified, the closure solved, the lock compared with the one on
   disk and left as it is), run from a
   regular (non-editable) install as users get it, against ``apt-get install --simulate``
   of the same roots over the same three Packages files with apt's cache already built.
   Runs alternate between the two so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from composer import pipeline  # noqa: E402
from composer.archive.cache import Cache  # noqa: E402
from composer.archive.index import Archive  # noqa: E402
from composer.archive.mirrors import Mirrors  # noqa: E402
from composer.debian.deb822 import PackagesFile  # noqa: E402
from tests.aptoracle import AptOracle  # noqa: E402

APT_TAGFILE = """
import sys, time, apt_pkg
apt_pkg.init()
t = time.perf_counter()
n = 0
with apt_pkg.TagFile(sys.argv[1]) as tf:
    for section in tf:
        section["Package"]
        n += 1
print(time.perf_counter() - t, n)
"""


def timed(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} s (min {min(xs):.3f}, n={len(xs)})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--write", type=Path, help="update the figures in this markdown file")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="compose-bench-"))
    env = dict(os.environ, COMPOSE_CACHE_DIR=str(work / "cache"), XDG_CONFIG_HOME=str(work / "config"))
    profile_text = (ROOT / "profiles" / "py313.toml").read_text()
    amd64 = work / "profiles" / "py313.toml"
    amd64.parent.mkdir()
    amd64.write_text(re.sub(r'architectures = \[[^\]]*\]', 'architectures = ["amd64"]', profile_text))
    prof = pipeline.load_profile(amd64)

    print("installing compose (non-editable) into a scratch venv ...", file=sys.stderr)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(ROOT)],
                   check=True)
    compose = [str(venv / "bin" / "compose"), "lock", "--update", str(amd64), "-o", str(work / "py313.lock.toml")]

    t = time.perf_counter()
    subprocess.run(compose, env=env, check=True, capture_output=True)
    cold = time.perf_counter() - t

    cache = Cache(Path(env["COMPOSE_CACHE_DIR"]))
    with Archive(Mirrors(env=env), cache) as archive:
        sources = archive.open_sources(prof.sources)
    files = [cache.blob_path(s.release.files["main/binary-amd64/Packages"].sha256) for s in sources]
    main_file = files[0]
    data = main_file.read_bytes()
    size_mb = len(data) / 1e6

    results: dict[str, str] = {}
    scan = timed(lambda: PackagesFile(data, "bench"), max(5, args.runs // 2))
    sidecar = PackagesFile(data, "bench").sidecar()
    load = timed(lambda: PackagesFile(data, "bench", sidecar), args.runs)
    n_par = len(PackagesFile(data, "bench"))
    results["scan"] = fmt(scan)
    results["sidecar"] = fmt(load)

    try:
        from debian import deb822

        def pydeb() -> None:
            with open(main_file, "rb") as f:
                for para in deb822.Packages.iter_paragraphs(f, use_apt_pkg=False):
                    para["Package"]

        results["python-debian"] = fmt(timed(pydeb, 1))
    except ImportError:
        results["python-debian"] = "not installed (pip install python-debian)"

    system_python = shutil.which("python3", path="/usr/bin")
    tag_runs = []
    for _ in range(max(3, args.runs // 3)):
        r = subprocess.run([system_python or "python3", "-c", APT_TAGFILE, str(main_file)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            break
        tag_runs.append(float(r.stdout.split()[0]))
    results["tagfile"] = fmt(tag_runs) if tag_runs else "python3-apt not installed (apt-get install python3-apt)"

    apt = AptOracle(work / "apt", files, "amd64")
    apt_cmd = apt.command(list(prof.include))
    subprocess.run(apt_cmd, env=apt.env, check=True, capture_output=True)  # warm
    subprocess.run(compose, env=env, check=True, capture_output=True)  # warm
    apt_t: list[float] = []
    ours: list[float] = []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(compose, env=env, check=True, capture_output=True)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(apt_cmd, env=apt.env, check=True, capture_output=True)
        apt_t.append(time.perf_counter() - t)
    ratio = statistics.median(ours) / statistics.median(apt_t)

    table = f"""\
Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, `benchmarks/bench_lock.py --runs {args.runs}`.

**Building what the solver needs** from trixie main amd64 Packages ({size_mb:.1f} MB, {n_par} paragraphs):

| reader | wall time |
|---|---|
| compose: scan for the solver's index (names, provides, offsets) | {results['scan']} |
| compose: the same index loaded from its cached sidecar | {results['sidecar']} |
| apt's C++ TagFile via python3-apt (every paragraph) | {results['tagfile']} |
| python-debian deb822 (every paragraph) | {results['python-debian']} |

**Warm lock** of py313 for amd64 (indexes cached; three InRelease files fetched and
verified, closure solved, lock compared with the one on disk) against apt with its cache
built:

| command | wall time |
|---|---|
| `compose lock --update` (non-editable install) | {fmt(ours)} |
| `apt-get install --simulate --no-install-recommends` (same roots, same Packages files) | {fmt(apt_t)} |
| ratio compose / apt | {ratio:.2f} (target ≤ 0.33) |

Cold `compose lock` of the same profile (empty cache: three InRelease, three Packages.xz
downloaded, verified and decompressed): {cold:.2f} s.
"""
    print(table)
    if args.write:
        text = args.write.read_text() if args.write.exists() else "# Performance\n"
        begin, end = "<!-- bench_lock:begin -->", "<!-- bench_lock:end -->"
        block = f"{begin}\n{table}{end}"
        if begin in text:
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
        else:
            text += "\n" + block + "\n"
        args.write.write_text(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
