"""The ``compose`` command: argument parsing, rendering and exit codes; no logic."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from composer import __version__
from composer.errors import ComposeError

EPILOG = """\
mirrors are found at run time, in this order: --mirror NAME=URL, the environment
variable COMPOSE_MIRROR_<NAME> (e.g. COMPOSE_MIRROR_DEBIAN_SECURITY), [mirrors] in
~/.config/compose/config.toml, then the host's apt sources (a deb URI whose last path
part is the archive name). The cache is $COMPOSE_CACHE_DIR or ~/.cache/compose.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compose", description="Reproducible distroless Python images from locked Debian packages.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"compose {__version__}")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    lk = sub.add_parser("lock", help="resolve profiles and write their locks", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    lk.add_argument("profiles", nargs="*", type=Path, metavar="PROFILE",
                    help="profile files (default: every profiles/*.toml)")
    lk.add_argument("-o", "--output", type=Path, help="where to write the lock (one profile only)")
    lk.add_argument("--check", action="store_true", help="exit 1 if a lock is missing or stale; write nothing")
    lk.add_argument("--mirror", action="append", default=[], metavar="NAME=URL",
                    help="mirror for an archive name (repeatable; tried in order)")
    lk.add_argument("--allow-expired", action="store_true",
                    help="accept a Release whose Valid-Until has passed (archived suites)")
    lk.add_argument("--allow-rollback", action="store_true",
                    help="accept a Release older than the one the existing lock was made from")
    lk.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    lk.add_argument("-q", "--quiet", action="store_true", help="no progress messages")

    lk.add_argument("--update", action="store_true",
                    help="move to the newest packages of the profile's suites and print what "
                         "changed against the lock there was")

    df = sub.add_parser("diff", help="packages added, removed and upgraded between two locks")
    df.add_argument("old", type=Path, metavar="OLD.lock.toml")
    df.add_argument("new", type=Path, metavar="NEW.lock.toml")
    df.add_argument("--json", action="store_true")

    why = sub.add_parser("why", help="every chain from a root of the profile to a package")
    why.add_argument("package")
    why.add_argument("profile", type=Path)
    why.add_argument("--arch", help="architecture (default: the profile's first)")
    why.add_argument("--lock", type=Path, help="lock file (default: locks/NAME.lock.toml)")
    why.add_argument("--json", action="store_true")

    ve = sub.add_parser("vendor", help="copy every locked .deb into a directory that a later "
                        "build can use as its only mirror", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ve.add_argument("profile", type=Path)
    ve.add_argument("directory", type=Path, metavar="DIR",
                    help="where the .debs go, as DIR/ARCHIVE/pool/...")
    ve.add_argument("--lock", type=Path, help="lock file (default: locks/NAME.lock.toml)")
    ve.add_argument("--arch", help="one architecture only (default: all of the lock's)")
    ve.add_argument("--mirror", action="append", default=[], metavar="NAME=URL",
                    help="mirror for an archive name (repeatable; tried in order)")
    ve.add_argument("-q", "--quiet", action="store_true", help="no progress")

    for name, text in (("build", "build OCI images from locks"),
                       ("verify", "rebuild from the lock and compare with an image or a digest")):
        b = sub.add_parser(name, help=text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "build":
            b.add_argument("profiles", nargs="*", type=Path, metavar="PROFILE",
                           help="profile files (default: every profile that has a lock)")
            b.add_argument("--locked", action="store_true",
                           help="build from the lock only; refuse a missing or stale lock")
            b.add_argument("-o", "--output", type=Path,
                           help="output layout directory or archive (default: out/NAME)")
            b.add_argument("--format", choices=("oci", "docker-archive"), default="oci")
        else:
            b.add_argument("profile", type=Path)
            b.add_argument("--expect", metavar="DIGEST", help="the image digest it must give")
            b.add_argument("--image", type=Path,
                           help="the OCI layout to compare with (default: out/NAME when present)")
        b.add_argument("--lock", type=Path, help="lock file (default: locks/NAME.lock.toml)")
        b.add_argument("--arch", help="one architecture only (docker-archive: default the host's)")
        b.add_argument("--mirror", action="append", default=[], metavar="NAME=URL",
                       help="mirror for an archive name (repeatable; tried in order)")
        b.add_argument("--vendored", type=Path, metavar="DIR",
                       help="take every .deb from DIR, written by `compose vendor`, and "
                            "from nowhere else (implies --locked)")
        b.add_argument("-j", "--jobs", type=int, help="parallel work (default: CPUs, 2 to 8)")
        b.add_argument("--json", action="store_true", help="machine-readable result on stdout")
        b.add_argument("-q", "--quiet", action="store_true", help="no progress")

    au = sub.add_parser("audit", help="licences that ship, what links GPL code, SBOMs, policy",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    au.add_argument("profile", type=Path)
    what = au.add_mutually_exclusive_group()
    what.add_argument("--gpl", action="store_true",
                      help="only GPL/LGPL/AGPL packages: files, and what links them")
    what.add_argument("--files", action="store_true",
                      help="which copyright paragraph (Files globs) covers which shipped file")
    what.add_argument("--json", action="store_true", help="the whole audit as JSON")
    what.add_argument("--sbom", choices=("spdx", "cyclonedx"),
                      help="an SBOM: SPDX 2.3 JSON or CycloneDX JSON")
    what.add_argument("--html", action="store_true", help="a report to look at, as HTML")
    au.add_argument("-o", "--output", type=Path, help="write there instead of stdout")
    au.add_argument("--lock", type=Path, help="lock file (default: locks/NAME.lock.toml)")
    au.add_argument("--arch", help="one architecture only (default: all of the lock's)")
    au.add_argument("--mirror", action="append", default=[], metavar="NAME=URL",
                    help="mirror for an archive name (repeatable; tried in order)")
    au.add_argument("--vendored", type=Path, metavar="DIR",
                    help="take every .deb from DIR, written by `compose vendor`")
    au.add_argument("-j", "--jobs", type=int, help="parallel work (default: CPUs, 2 to 8)")
    au.add_argument("-q", "--quiet", action="store_true", help="no progress")

    gr = sub.add_parser("graph", help="the locked dependency graph")
    gr.add_argument("profile", type=Path)
    gr.add_argument("--format", choices=("dot", "json"), default="dot")
    gr.add_argument("--lock", type=Path, help="lock file (default: locks/NAME.lock.toml)")
    return p


def _profiles(paths: list[Path]) -> list[Path]:
    from composer import pipeline

    return paths or pipeline.all_profiles(Path("profiles"))


def cmd_lock(args: argparse.Namespace) -> int:
    from composer import pipeline

    paths = _profiles(args.profiles)
    if args.output and len(paths) != 1:
        raise ComposeError("-o/--output needs exactly one profile", "name the profile to lock")
    opts = pipeline.Options(mirrors=tuple(args.mirror), allow_expired=args.allow_expired,
                            allow_rollback=args.allow_rollback)
    if args.quiet:
        opts.say = lambda _: None
    profiles = [pipeline.load_profile(p) for p in paths]
    status = 0
    report = []
    for prof in profiles:
        out = args.output or pipeline.default_lock_path(prof.path, prof.name)
        if args.check:
            try:
                pipeline.check(prof, out)
                print(f"{out}: fresh", file=sys.stderr)
                report.append({"profile": prof.name, "lock": str(out), "fresh": True})
            except ComposeError as exc:
                if exc.exit_code != 1:
                    raise
                print(f"{exc.message}\nhint: {exc.hint}", file=sys.stderr)
                report.append({"profile": prof.name, "lock": str(out), "fresh": False})
                status = 1
            continue
        if not args.update:
            kept = _fresh(prof, out)
            if kept is not None:
                counts = {a: len(kept.for_arch(a)) for a in prof.architectures}
                print(f"{out}: fresh for {prof.path}, kept; `compose lock --update` moves it "
                      "to the newest packages", file=sys.stderr)
                report.append({"profile": prof.name, "lock": str(out), "changed": False,
                               "packages": counts, "fingerprint": kept.fingerprint})
                continue
        outcome = (_lock_and_show_changes(prof, out, opts) if args.update
                   else pipeline.lock(prof, out, opts))
        counts = {a: len(outcome.lock.for_arch(a)) for a in prof.architectures}
        per = ", ".join(f"{a} {n}" for a, n in counts.items())
        verb = "wrote" if outcome.changed else "unchanged"
        print(f"locked {prof.name}: {per} packages; {verb} {out}", file=sys.stderr)
        report.append({"profile": prof.name, "lock": str(out), "changed": outcome.changed,
                       "packages": counts, "fingerprint": outcome.lock.fingerprint})
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    return status


def _fresh(prof, out: Path):  # type: ignore[no-untyped-def]
    """The lock at ``out`` when it is fresh for ``prof`` (a plain ``compose lock`` keeps
    it, as a package manager keeps its lock until told to update); None otherwise."""
    from composer import lockfile, pipeline

    try:
        kept = pipeline.check(prof, out)
        # as compose wrote it: a hand-edited lock (a merge that dropped entries) is redone
        canonical = lockfile.dumps(kept).encode() == out.read_bytes()
    except (ComposeError, OSError):  # missing, stale, or damaged: lock it again
        return None
    return kept if canonical else None


def _lock_and_show_changes(prof, out: Path, opts):  # type: ignore[no-untyped-def]
    """``lock --update``: lock afresh and say what moved against the lock there was."""
    from composer import lockfile, pipeline

    try:
        before = lockfile.load(out)
    except ComposeError:
        before = None
    outcome = pipeline.lock(prof, out, opts)
    changes = lockfile.diff(before, outcome.lock) if before else []
    if before is None:
        print(f"{prof.name}: no earlier lock to compare with", file=sys.stderr)
    elif not changes:
        print(f"{prof.name}: already at the newest packages", file=sys.stderr)
    else:
        print(_render_diff(changes), file=sys.stderr)
    return outcome


def _profile_and_lock_path(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The profile named on the command line and its lock's path (``--lock`` or the
    default beside ``profiles/``)."""
    from composer import pipeline

    prof = pipeline.load_profile(args.profile)
    return prof, args.lock or pipeline.default_lock_path(prof.path, prof.name)


def _lock_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from composer import lockfile

    _, path = _profile_and_lock_path(args)
    return lockfile.load(path)


def _default_out(name: str, fmt: str) -> Path:
    """Where ``build`` writes by default (and ``verify`` compares): ``out/NAME``."""
    return Path("out") / (name + (".tar" if fmt == "docker-archive" else ""))


def _render_diff(changes: list) -> str:  # type: ignore[type-arg]
    lines = []
    for c in changes:
        if c.kind == "added":
            what = f"+ {c.name} {c.new_version} (source {c.new_source})"
        elif c.kind == "removed":
            what = f"- {c.name} {c.old_version} (source {c.old_source})"
        else:
            arrow = "->" if c.kind == "upgraded" else "-> (downgrade)"
            src = c.new_source if c.old_source == c.new_source else f"{c.old_source} -> {c.new_source}"
            what = f"~ {c.name} {c.old_version} {arrow} {c.new_version} (source {src})"
        lines.append(f"[{c.architecture}] {what}")
    counts = {k: sum(1 for c in changes if c.kind == k)
              for k in ("added", "removed", "upgraded", "downgraded")}
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from composer import lockfile

    changes = lockfile.diff(lockfile.load(args.old), lockfile.load(args.new))
    if args.json:
        print(json.dumps([asdict(c) for c in changes], indent=2, sort_keys=True))
    elif changes:
        print(_render_diff(changes))
    else:
        print("no package changed")
    return 0


def cmd_why(args: argparse.Namespace) -> int:
    from composer import pipeline

    lk = _lock_for(args)
    arch = args.arch or lk.architectures[0]
    if arch not in lk.architectures:
        raise ComposeError(f"the lock of {lk.profile} has no architecture {arch}",
                           f"locked: {', '.join(lk.architectures)}")
    chains = pipeline.why(lk, args.package, arch)
    excluded = {n: w for a, n, w in lk.excluded if a == arch}
    if args.json:
        print(json.dumps({"package": args.package, "architecture": arch,
                          "excluded": args.package in excluded,
                          "chains": [[{"name": n, "via": v} for n, v in c] for c in chains]}, indent=2))
        return 0
    note = " (excluded by the profile: not shipped)" if args.package in excluded else ""
    print(f"{args.package} [{arch}]{note}: {len(chains)} chain{'s' if len(chains) != 1 else ''} from the profile")
    for chain in chains:
        parts = []
        for i, (name, via) in enumerate(chain):
            if i and via:
                parts.append(f"-[{via}]-> {name}")
            elif i:
                parts.append(f"-> {name}")
            else:
                parts.append(name)
        print("  " + " ".join(parts))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from composer import pipeline

    lk = _lock_for(args)
    if args.format == "dot":
        sys.stdout.write(pipeline.graph_dot(lk))
    else:
        print(json.dumps(pipeline.graph_json(lk), indent=2, sort_keys=True))
    return 0


class _Bar:
    """A one-line progress bar on a terminal; a line per phase otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.shown: set[str] = set()

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        if self.tty:
            width = 30
            fill = width * done // total
            end = "\n" if done >= total else ""
            print(f"\r{what:>9} [{'#' * fill}{'.' * (width - fill)}] "
                  f"{done / 1e6:6.1f}/{total / 1e6:.1f} MB", end=end, file=sys.stderr, flush=True)
        elif what not in self.shown:
            self.shown.add(what)
            print(f"{what}: {total / 1e6:.1f} MB", file=sys.stderr)


def _build_opts(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from composer.pipeline.build import BuildOptions

    opts = BuildOptions(mirrors=tuple(args.mirror), arch=args.arch,
                        format=getattr(args, "format", "oci"), progress=_Bar(args.quiet),
                        vendored=getattr(args, "vendored", None))
    if opts.vendored is not None and not opts.vendored.is_dir():
        raise ComposeError(f"--vendored {opts.vendored}: no such directory",
                           "write it first with `compose vendor PROFILE DIR`")
    if getattr(args, "jobs", None) is not None:
        if args.jobs < 1:
            raise ComposeError("--jobs must be at least 1")
        opts.workers = args.jobs
    if args.quiet:
        opts.say = lambda _: None
    return opts


def _say_built(outcome, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    if quiet:
        return
    for a in outcome.archs:
        r = a.report
        reuse = ", layer reused" if a.layer_reused else ""
        print(f"built {outcome.path} [{a.arch}]: {r.packages} packages, {r.files} files, "
              f"{a.uncompressed_size / 2**20:.1f} MiB ({a.compressed_size / 2**20:.1f} MiB "
              f"compressed){reuse}; manifest {a.manifest}", file=sys.stderr)
        if r.no_copyright:
            print(f"warning: [{a.arch}] no copyright file for {', '.join(r.no_copyright)}",
                  file=sys.stderr)
        if r.special_bits_dropped:
            print(f"note: [{a.arch}] setuid/setgid bits dropped from "
                  f"{', '.join('/' + p for p in r.special_bits_dropped)} ([image] setuid "
                  "keeps them)", file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    from composer import pipeline
    from composer.pipeline import build as building

    opts = _build_opts(args)
    profiles = [pipeline.load_profile(p) for p in _profiles(args.profiles)]
    if not args.profiles and args.locked:
        profiles = [p for p in profiles if pipeline.default_lock_path(p.path, p.name).exists()]
        if not profiles:
            raise ComposeError("no profile in profiles/ has a lock", "run `compose lock` first")
    if (args.output or args.lock) and len(profiles) != 1:
        raise ComposeError("-o/--output and --lock need exactly one profile",
                           "name the profile to build")
    results = []
    for prof in profiles:
        lock_path = args.lock or pipeline.default_lock_path(prof.path, prof.name)
        lk = None  # with --locked, build checks the lock itself
        # A vendored copy is the lock's .debs: locking again would need the mirrors.
        if not args.locked and opts.vendored is None:
            try:
                lk = pipeline.check(prof, lock_path)
            except ComposeError as exc:
                if exc.exit_code != 1:
                    raise
                if not args.quiet:
                    print(f"{exc.message}; locking first", file=sys.stderr)
                lk = pipeline.lock(prof, lock_path, opts).lock
        outcome = building.build(prof, lock_path, args.output or _default_out(prof.name, opts.format),
                                 opts, lk)
        _say_built(outcome, args.quiet)
        results.append(outcome)
    if args.json:
        doc = [r.to_json() for r in results]
        print(json.dumps(doc[0] if len(doc) == 1 else doc, indent=2, sort_keys=True))
    for r in results:
        print(r.digest)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from composer.pipeline import build as building

    opts = _build_opts(args)
    prof, lock_path = _profile_and_lock_path(args)
    against = args.image
    if against is None and (_default_out(prof.name, "oci") / "oci-layout").is_file():
        against = _default_out(prof.name, "oci")
    if against is None and not args.expect:
        raise ComposeError("nothing to compare the rebuild with",
                           f"build it first (compose build --locked {args.profile}), "
                           "or give --image DIR or --expect sha256:...")
    if against is not None and not args.arch:
        from composer.image.oci import layout_architectures

        archs = layout_architectures(against)
        if len(archs) == 1:
            opts.arch = archs[0]  # a one-architecture layout: rebuild that one
    outcome, problem = building.verify(prof, lock_path, against, args.expect, opts)
    if args.json:
        print(json.dumps(outcome.to_json() | {"verified": problem is None,
                                              "difference": problem}, indent=2, sort_keys=True))
    if problem:
        print(f"error: not reproduced: {problem}", file=sys.stderr)
        return 1
    what = " and ".join(x for x in (f"{against}" if against else "",
                                    args.expect or "") if x)
    print(f"verified: the lock rebuilds {what} bit for bit", file=sys.stderr)
    print(outcome.digest)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from composer import pipeline
    from composer.audit import text
    from composer.pipeline import audit as auditing

    opts = _build_opts(args)
    prof, lock_path = _profile_and_lock_path(args)
    outcome = auditing.audit(prof, lock_path, opts)
    reports = outcome.reports
    if args.sbom == "spdx":
        from composer.audit import sbom

        body = sbom.spdx_json(reports, prof.name, outcome.digest)
    elif args.sbom == "cyclonedx":
        from composer.audit import sbom

        body = sbom.cyclonedx_json(reports, prof.name, outcome.digest)
    elif args.html:
        from composer.audit import html

        body = html.render(reports, f"{prof.name} audit").encode()
    elif args.json:
        body = (json.dumps(text.as_json(reports), indent=2, sort_keys=True) + "\n").encode()
    elif args.gpl:
        body = text.gpl(reports).encode()
    elif args.files:
        body = text.files(reports).encode()
    else:
        colour = args.output is None and sys.stdout.isatty()
        body = text.table(reports, colour).encode()
    if args.output:
        pipeline.write_atomic(args.output, body)
        if not args.quiet:
            print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    for r in reports:
        auditing.enforce(r)  # after the output: the report explains the refusal
    return 0


def cmd_vendor(args: argparse.Namespace) -> int:
    from composer.pipeline import build as building

    prof, lock_path = _profile_and_lock_path(args)
    done = building.vendor(prof, lock_path, args.directory, _build_opts(args))
    if not args.quiet:
        print(f"vendored {prof.name}: {done.files} .debs ({done.size / 2**20:.1f} MiB) in "
              f"{done.directory}, {done.copied} copied; build from them alone with "
              f"`compose build --locked --vendored {args.directory} {args.profile}`",
              file=sys.stderr)
    return 0


COMMANDS = {"audit": cmd_audit, "vendor": cmd_vendor, "diff": cmd_diff, "lock": cmd_lock, "why": cmd_why, "graph": cmd_graph, "build": cmd_build,
            "verify": cmd_verify}


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary trees and partial outputs are cleaned."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python quiet at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ComposeError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A file the user named or a directory compose writes to: not a bug, say which.
        if args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        print("hint: check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
