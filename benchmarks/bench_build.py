"""compose build against mmdebstrap --variant=extract, side by side, in one run.

The py313 profile is locked afresh (Debian's mirrors drop superseded .debs) into a
scratch directory and its amd64 .debs fetched into compose's cache. Then, with every
.deb on local disk:

* mmdebstrap --variant=extract of exactly the locked amd64 packages (pinned versions)
  into a plain, uncompressed tar, from a local flat repository of the same .debs, so
  that neither tool touches the network;
* compose build --locked --arch amd64 in three states of its derived cache:
  ``cold`` (.debs cached, nothing derived: every package is read from xz, Python is
  byte-compiled by the image's interpreter, the layer compressed), ``warm`` (what a
  first build derives is kept: packages re-read from their zstd copies, byte-code
  cached; the tree is assembled, tarred and compressed again, as after a change to the
  profile's image settings) and ``rebuild`` (an unchanged lock: the layer is reused).

Usage: python benchmarks/bench_build.py [--runs N] [--write docs/performance.md]
(prints Markdown tables; --write puts them between the file's bench_build markers)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles" / "py313.toml"


def run(argv: list[str], env: dict[str, str], **kw: object) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed:\n{r.stderr[-3000:]}")
    return took


def compose(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "composer", *map(str, args)]


def _layer_figures(layout: Path, runs: int) -> None:
    """The built layer: how much of it is byte-code, and what each compression costs
    on it (2 workers, as a build on this machine uses)."""
    import gzip
    import io
    import tarfile

    from composer.image import layer

    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: (layout / "blobs/sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    raw = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        pyc = sum(m.size for m in tar if m.name.endswith(".pyc"))
    print(f"byte-code (.pyc) in the layer: {pyc / 2**20:.1f} MiB")
    print()
    print(f"| compression of the {len(raw) / 2**20:.1f} MiB layer (median of {runs}) "
          "| s | ratio |")
    print("|---|---:|---:|")
    for method, level in (("gzip", 1), ("gzip", 6), ("zstd", 3)):
        took = []
        for _ in range(runs):
            t = time.perf_counter()
            out = layer.compress(raw, method, level, 2)
            took.append(time.perf_counter() - t)
        default = " (default)" if layer.DEFAULT_LEVEL[method] == level else ""
        print(f"| {method} -{level}{default} | {statistics.median(took):.2f} "
              f"| {len(out) / len(raw):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", type=Path, help="update the figures in this markdown file")
    opts = ap.parse_args()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _measure(opts)
    tables = printed.getvalue()
    print(tables, end="")
    if opts.write:
        begin, end = "<!-- bench_build:begin -->", "<!-- bench_build:end -->"
        block = (f"{begin}\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
                 f"`benchmarks/bench_build.py --runs {opts.runs}`, as it prints them:\n\n"
                 f"{tables}{end}")
        text = opts.write.read_text()
        if begin in text:
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text,
                          flags=re.S)
        else:
            text += "\n" + block + "\n"
        opts.write.write_text(text)


def _measure(opts: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="compose-bench-"))
    env = dict(os.environ, COMPOSE_CACHE_DIR=str(work / "cache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed compose has its byte-code
    try:
        lock = work / "py313.lock.toml"
        run(compose("lock", PROFILE, "-o", lock, "-q"), env)
        out = work / "image"
        build = compose("build", "--locked", PROFILE, "--lock", lock, "--arch", "amd64",
                        "-o", out, "-q", "--json")
        run(build, env)  # fetches the .debs
        doc = json.loads(subprocess.run(build, env=env, capture_output=True, text=True)
                         .stdout.rsplit("\n", 2)[0])
        a = doc["architectures"]["amd64"]

        pkgs = [p for p in tomllib.loads(lock.read_text())["package"]
                if p["architecture"] == "amd64"]
        repo = work / "repo"
        repo.mkdir()
        cache = work / "cache" / "sha256"
        for p in pkgs:
            src = cache / p["sha256"][:2] / p["sha256"]
            os.link(src, repo / Path(p["filename"]).name)
        packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=repo,
                                  capture_output=True, check=True).stdout
        # The lock already is the closure (with the profile's exclusions): relations are
        # dropped from the index so that apt takes exactly these packages.
        relations = (b"Depends:", b"Pre-Depends:", b"Recommends:", b"Breaks:", b"Conflicts:")
        (repo / "Packages").write_bytes(b"\n".join(
            line for line in packages.split(b"\n") if not line.startswith(relations)))
        include = ",".join(f"{p['name']}={p['version']}" for p in pkgs)
        mm = ["mmdebstrap", "--quiet", "--variant=extract", "--architectures=amd64",
              f"--include={include}", "--aptopt=Acquire::Languages \"none\"", "trixie",
              str(work / "mm.tar"), f"deb [trusted=yes] copy:{repo} ./"]

        derived = work / "cache" / "derived"
        audit = compose("audit", PROFILE, "--lock", lock, "--arch", "amd64", "-q",
                        "-o", work / "audit.txt")
        sbom = compose("audit", PROFILE, "--lock", lock, "--arch", "amd64", "-q",
                       "--sbom", "spdx", "-o", work / "sbom.json")
        times: dict[str, list[float]] = {"mmdebstrap": [], "cold": [], "warm": [], "rebuild": [],
                                         "audit": [], "sbom": []}
        for _ in range(opts.runs):
            times["mmdebstrap"].append(run(mm, env))
            shutil.rmtree(derived, ignore_errors=True)
            times["cold"].append(run(build, env))
            for d in derived.rglob("*.layer-*"):
                d.unlink()
            times["warm"].append(run(build, env))
            times["rebuild"].append(run(build, env))
            times["audit"].append(run(audit, env))
            times["sbom"].append(run(sbom, env))
        print(f"| audit (amd64, warm cache, median of {opts.runs}) | wall s | beyond the "
              "rebuild |")
        print("|---|---:|---:|")
        for k, label in (("audit", "compose audit (table)"),
                         ("sbom", "compose audit --sbom spdx")):
            m = statistics.median(times[k])
            r = statistics.median(times["rebuild"])
            print(f"| {label} | {m:.2f} | {m - r:+.2f} |")
        print()
        mm_size = (work / "mm.tar").stat().st_size
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| run ({len(pkgs)} packages, amd64, median of {opts.runs}) | wall s | vs mmdebstrap |")
        print("|---|---:|---:|")
        print(f"| mmdebstrap --variant=extract → plain tar | {med['mmdebstrap']:.2f} | 1.00 |")
        for k, label in (("cold", "compose build, .debs cached, nothing derived"),
                         ("warm", "compose build, warm cache, layer assembled and compressed"),
                         ("rebuild", "compose build, unchanged lock (layer reused)")):
            print(f"| {label} | {med[k]:.2f} | {med[k] / med['mmdebstrap']:.2f} |")
        print()
        print(f"mmdebstrap tar: {mm_size / 2**20:.1f} MiB (uncompressed); compose image layer: "
              f"{a['uncompressed_size'] / 2**20:.1f} MiB uncompressed, "
              f"{a['compressed_size'] / 2**20:.1f} MiB gzip; {a['files']} files")
        _layer_figures(out, opts.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
