"""The audit as one self-contained HTML page, for people rather than tools.

The page answers, per architecture and at a glance, what takes the space in the image
(a bar per package, sorted by shipped size, coloured by licence family), which licences
ship, which GNU copyleft code ships and what links it, what the image lacks, and what the
policy says. Everything is inline (CSS and SVG, no script, no font or image fetched) and
a Content-Security-Policy forbids anything else, so the file can be mailed, archived
and opened offline. Every string from packages is escaped: names and paths come from
.debs and are not trusted. The output depends only on the reports (the date is their
epoch), so the same audit renders to the same bytes.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from composer.audit.report import AuditedPackage, AuditReport, Link, PackageLicences, Violation
from composer.errors import ComposeError

FAMILIES = ("gpl", "lgpl", "weak", "unknown", "permissive")
"""Licence families, strongest obligation first: a package takes the strongest of its
licences' families (a dual-licensed package is not given the benefit of the doubt; an
unknown licence outranks a permissive one because someone has to read it)."""

FAMILY_LABEL = {
    "gpl": "GPL family", "lgpl": "LGPL", "weak": "weak copyleft",
    "permissive": "permissive", "unknown": "unknown",
}
FAMILY_HINT = {
    "gpl": "GPL or AGPL: copyleft reaching what links it",
    "lgpl": "LGPL: copyleft on the library itself",
    "weak": "MPL, EPL, CDDL: file-level copyleft",
    "permissive": "MIT, BSD, Apache, Zlib, ISC, PSF, public domain",
    "unknown": "not a licence this page recognises: read the copyright file",
}
FAMILY_FILL = {
    "gpl": "#d64541", "lgpl": "#ef8a2c", "weak": "#e2b714", "permissive": "#3a9d5d",
    "unknown": "#9aa5b1", "generated": "#5f7fb0",
}

_WEAK = ("MPL-", "EPL-", "CDDL-", "CPL-", "Ms-RL", "ErlPL-", "IPL-", "SPL-", "LPL-", "CC-BY-SA-")
_PERMISSIVE_PREFIX = (
    "MIT", "BSD", "0BSD", "Apache-", "Zlib", "zlib-", "ISC", "PSF-", "Python-",
    "CNRI-Python", "X11", "Expat", "curl", "BSL-1.0", "Unicode-", "CC0-", "CC-BY-",
    "Unlicense", "WTFPL", "FSFAP", "FSFUL", "HPND", "NTP", "Libpng", "libpng-", "libtiff",
    "bzip2-", "OpenSSL", "SSLeay", "PostgreSQL", "TCL", "Info-ZIP", "OLDAP-", "ICU",
    "Artistic-", "W3C", "Spencer-", "IJG", "blessing", "Beerware", "MirOS", "Boost",
    "ImageMagick", "Ruby", "PHP-", "JSON", "Vim", "SGI-B-", "Intel", "AFL-", "PDDL-",
)
_PUBLIC_DOMAIN = re.compile(r"public[-_ ]?domain|^LicenseRef-PD\b", re.IGNORECASE)

KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * 1024 * 1024


def licence_family(spdx_id: str) -> str | None:
    """The family of one SPDX identifier; None for exceptions (``GCC-exception-3.1``),
    which qualify a licence rather than being one."""
    if "-exception" in spdx_id or spdx_id.endswith("exception"):
        return None
    if spdx_id.startswith(("GPL-", "AGPL-")):
        return "gpl"
    if spdx_id.startswith("LGPL-"):
        return "lgpl"
    if spdx_id.startswith(_WEAK):
        return "weak"
    if _PUBLIC_DOMAIN.search(spdx_id):
        return "permissive"
    if spdx_id.startswith(_PERMISSIVE_PREFIX):
        return "permissive"
    return "unknown"


def package_family(licences: PackageLicences) -> str:
    """The strongest family among a package's licences (``unknown`` when it has none)."""
    found = {f for i in licences.ids if (f := licence_family(i)) is not None}
    return next((f for f in FAMILIES if f in found), "unknown")


def human_size(size: int) -> str:
    """Binary units, one decimal, as the reader compares sizes rather than counts bytes."""
    if size < KIB:
        return f"{size} B"
    if size < MIB:
        return f"{size / KIB:.1f} KiB"
    if size < GIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size / GIB:.2f} GiB"


def is_python_extension(path: str) -> bool:
    """Whether a shipped ELF object is a CPython extension module (loaded by the
    interpreter rather than by the dynamic loader at start)."""
    base = path.rsplit("/", 1)[-1]
    if not (base.endswith(".so") or ".so." in base):
        return False
    return ("/lib-dynload/" in path or ".cpython-" in base or ".abi3." in base
            or "/site-packages/" in path or "/dist-packages/" in path)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True, slots=True)
class _Totals:
    packages: int
    shipped: int
    gpl: int
    prose: int
    missing: int
    denied: int
    allowed: int
    generated: int

    @classmethod
    def of(cls, report: AuditReport) -> _Totals:
        pkgs = report.packages
        return cls(
            packages=len(pkgs),
            shipped=sum(p.shipped_size for p in pkgs),
            gpl=sum(1 for p in pkgs if p.licences.gpl_family),
            prose=sum(1 for p in pkgs if p.licences.detected),
            missing=len(report.missing),
            denied=len(report.denied),
            allowed=len(report.violations) - len(report.denied),
            generated=sum(f.size for f in report.generated),
        )


CSS = """
:root { color-scheme: light; --ink: #1f2933; --muted: #52606d; --line: #d9dee4;
  --bg: #f5f7fa; --card: #ffffff; --accent: #2f5d8a; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  "DejaVu Sans", Arial, sans-serif; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas,
  "DejaVu Sans Mono", monospace; font-size: 0.88em; }
a { color: var(--accent); }
header.top { background: #1f3a56; color: #fff; padding: 24px 32px 20px; }
header.top h1 { margin: 0 0 10px; font-size: 26px; font-weight: 650; }
header.top a { color: #cfe3f7; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0 0 18px; }
dl.meta dt { color: #b9cde0; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td { overflow-wrap: anywhere; }
td.nowrap, td.nowrap code { white-space: nowrap; overflow-wrap: normal; }
th { font-size: 12.5px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  background: #eef1f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.num .sub { white-space: normal; display: block; font-size: 12px; font-weight: 400;
  color: var(--muted); }
table.totals { color: var(--ink); border-radius: 6px; overflow: hidden; }
table.totals a { color: var(--accent); }
table.totals th { overflow-wrap: normal; }
table.totals td { font-size: 18px; font-weight: 600; }
table.totals td.arch { font-size: 15px; }
.alert { color: #b42318; }
.ok { color: #1f6b35; }
nav.arches { margin-top: 14px; display: flex; gap: 8px; flex-wrap: wrap; }
nav.arches a { background: #2d5277; color: #fff; padding: 4px 12px; border-radius: 14px;
  text-decoration: none; }
main { padding: 8px 32px 32px; max-width: 1400px; }
section.arch { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  margin: 20px 0; padding: 8px 24px 24px; }
section.arch > h2 { font-size: 22px; margin: 12px 0 4px; }
section.arch > .digest { color: var(--muted); margin: 0 0 8px; overflow-wrap: anywhere; }
h3 { font-size: 18px; margin: 26px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 0 0 8px; padding: 0;
  list-style: none; font-size: 13.5px; color: var(--muted); }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 16px; height: 12px; border-radius: 2px; }
.striped { background-image: repeating-linear-gradient(45deg, rgba(255,255,255,.6) 0 3px,
  transparent 3px 6px); }
svg.chart { display: block; width: 100%; max-width: 1100px; height: auto; }
svg.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  Arial, sans-serif; font-size: 12px; fill: #1f2933; }
svg.chart text.tick { fill: #52606d; font-size: 11px; }
svg.chart text.value { fill: #323f4b; }
svg.chart line.grid { stroke: #e4e7eb; stroke-width: 1; }
svg.chart g.bar:hover rect.fill { opacity: .8; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12.5px;
  font-weight: 600; white-space: nowrap; }
.badge.gpl { background: #fde3e1; color: #8f1d18; }
.badge.lgpl { background: #fdebd8; color: #8a4306; }
.badge.weak { background: #fbf3c6; color: #6b5200; }
.badge.permissive { background: #dff4e6; color: #1d6234; }
.badge.unknown { background: #e4e7eb; color: #323f4b; }
.badge.prose { background-color: #e4e7eb; color: #323f4b;
  background-image: repeating-linear-gradient(45deg, rgba(255,255,255,.7) 0 3px,
  transparent 3px 6px); border: 1px dashed #7b8794; }
.badge.python { background: #e0ebf7; color: #1f4e7a; }
.badge.denied { background: #b42318; color: #fff; }
.badge.allowed { background: #dff4e6; color: #1d6234; }
td .dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 6px; vertical-align: baseline; }
.muted { color: var(--muted); }
.notes { margin: 4px 0 0; padding-left: 18px; font-size: 12.5px; color: var(--muted); }
article.gpl { border: 1px solid var(--line); border-left: 5px solid #d64541;
  border-radius: 6px; padding: 8px 16px 10px; margin: 12px 0; }
article.gpl.lgpl { border-left-color: #ef8a2c; }
article.gpl h4 { margin: 4px 0 6px; font-size: 16px; display: flex; gap: 10px;
  align-items: baseline; flex-wrap: wrap; }
article.gpl h4 .muted { font-weight: 400; font-size: 14px; }
article.gpl p { margin: 4px 0; }
article.gpl .use { margin: 2px 0 6px; }
article.gpl h5 { margin: 10px 0 4px; font-size: 13.5px; color: var(--muted); font-weight: 600; }
ul.links, ul.files { margin: 0; padding-left: 18px; }
ul.links li, ul.files li { overflow-wrap: anywhere; }
ul.files { columns: 2; column-gap: 24px; font-size: 13px; }
details summary { cursor: pointer; }
.arrow { color: #b42318; font-weight: 700; padding: 0 4px; }
td.path, td code { overflow-wrap: anywhere; }
footer { padding: 0 32px 32px; color: var(--muted); font-size: 13px; }
@media print { header.top { background: #fff; color: var(--ink); }
  dl.meta dt { color: var(--muted); } nav.arches { display: none; }
  section.arch { break-inside: auto; border: 0; } }
"""


def render(reports: Sequence[AuditReport], title: str) -> str:
    """One HTML document for the audits of an image's architectures."""
    if not reports:
        raise ComposeError("there is no audit to render",
                           hint="audit at least one architecture of the image")
    profiles = sorted({r.profile for r in reports})
    epochs = sorted({r.epoch for r in reports})
    out = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">\n",
        f"<meta name=\"generator\" content=\"compose\">\n<title>{_e(title)}</title>\n",
        f"<style>{CSS}</style>\n</head>\n<body>\n",
        "<header class=\"top\">\n",
        f"<h1>{_e(title)}</h1>\n<dl class=\"meta\">\n",
        f"<dt>Profile</dt><dd>{_e(', '.join(profiles))}</dd>\n",
        "<dt>Architectures</dt><dd>"
        f"{_e(', '.join(r.architecture for r in reports))}</dd>\n",
        f"<dt>Date</dt><dd>{_e(', '.join(_date(t) for t in epochs))}</dd>\n",
    ]
    for r in reports:
        digest = r.digest or "not built"
        label = f"Image digest ({r.architecture})" if len(reports) > 1 else "Image digest"
        out.append(f"<dt>{_e(label)}</dt><dd class=\"mono\">{_e(digest)}</dd>\n")
    out.append("</dl>\n")
    out.append(_totals_table(reports))
    if len(reports) > 1:
        out.append("<nav class=\"arches\" aria-label=\"Architectures\">")
        out += [f"<a href=\"#arch-{i}\">{_e(r.architecture)}</a>" for i, r in enumerate(reports)]
        out.append("</nav>\n")
    out.append("</header>\n<main>\n")
    for i, r in enumerate(reports):
        out.append(_arch_section(r, i))
    out.append("</main>\n<footer>\n")
    out.append(_sources(reports))
    out.append("<p>Rendered by compose from the image's audit. Licence families: the "
               "strongest family among a package's SPDX identifiers. Packages marked "
               "<em>detected from prose</em> have a copyright file that is not "
               "machine-readable: their licences were recognised in its text and "
               "deserve a human read.</p>\n</footer>\n</body>\n</html>\n")
    return "".join(out)


def _totals_table(reports: Sequence[AuditReport]) -> str:
    rows = []
    for i, r in enumerate(reports):
        t = _Totals.of(r)
        gen = (f"<span class=\"sub\">+ "
               f"{_e(human_size(t.generated))} generated by compose</span>"
               if t.generated else "")
        allowed = (f"<span class=\"sub\">+ {t.allowed} allowed</span>"
                   if t.allowed else "")
        rows.append(
            f"<tr><td class=\"arch\"><a href=\"#arch-{i}\">{_e(r.architecture)}</a></td>"
            f"<td class=\"num\">{t.packages}</td>"
            f"<td class=\"num\">{_e(human_size(t.shipped))}{gen}</td>"
            f"<td class=\"num{' alert' if t.gpl else ''}\">{t.gpl}</td>"
            f"<td class=\"num\">{t.prose}</td>"
            f"<td class=\"num {'alert' if t.missing else 'ok'}\">{t.missing}</td>"
            f"<td class=\"num {'alert' if t.denied else 'ok'}\">{t.denied}{allowed}</td></tr>\n"
        )
    return (
        "<table class=\"totals\"><thead><tr><th>Architecture</th><th class=\"num\">Packages"
        "</th><th class=\"num\">Shipped size</th><th class=\"num\">GPL-family packages</th>"
        "<th class=\"num\">Licences not machine-readable</th><th class=\"num\">Missing "
        "libraries</th><th class=\"num\">Denied licences</th></tr></thead>\n<tbody>\n"
        + "".join(rows) + "</tbody></table>\n"
    )


def _arch_section(report: AuditReport, index: int) -> str:
    t = _Totals.of(report)
    anchor = f"arch-{index}"
    out = [
        f"<section class=\"arch\" id=\"{anchor}\" aria-labelledby=\"{anchor}-h\">\n",
        f"<h2 id=\"{anchor}-h\">{_e(report.architecture)}</h2>\n",
        f"<p class=\"digest\">{_plural(t.packages, 'package')}, "
        f"{_e(human_size(t.shipped))} shipped"
        + (f", {_e(human_size(t.generated))} in {_plural(len(report.generated), 'file')} "
           "compose generated" if report.generated else "")
        + f" · <span class=\"mono\">{_e(report.digest or 'not built')}</span></p>\n",
        "<h3>What takes the space</h3>\n",
        _legend(bool(report.generated)),
        _chart(report, anchor),
        "<h3>Packages</h3>\n",
        _package_table(report, anchor),
        "<h3>GPL-family licences and what links them</h3>\n",
        _gpl_section(report, anchor),
        f"<h3>Missing libraries{_count(t.missing)}</h3>\n",
        _missing(report),
        f"<h3>Policy{_count(t.denied, 'denied')}</h3>\n",
        _violations(report.violations),
        "</section>\n",
    ]
    return "".join(out)


def _count(n: int, what: str = "") -> str:
    if not n:
        return ""
    return f" <span class=\"badge denied\">{n}{' ' + what if what else ''}</span>"


def _legend(generated: bool) -> str:
    items = [
        f"<li><span class=\"swatch\" style=\"background-color:{FAMILY_FILL[f]}\"></span>"
        f"<span title=\"{_e(FAMILY_HINT[f])}\">{_e(FAMILY_LABEL[f])}</span></li>"
        for f in ("gpl", "lgpl", "weak", "permissive", "unknown")
    ]
    items.append(
        f"<li><span class=\"swatch striped\" style=\"background-color:{FAMILY_FILL['unknown']}"
        "\"></span>striped: detected from prose (copyright file not machine-readable)</li>")
    if generated:
        items.append(f"<li><span class=\"swatch\" style=\"background-color:"
                     f"{FAMILY_FILL['generated']}\"></span>files compose generated</li>")
    return "<ul class=\"legend\" aria-label=\"Colours\">" + "".join(items) + "</ul>\n"


_W = 960
_LABEL_W = 210
_BAR_X = 218
_BAR_MAX = _W - _BAR_X - 150
_TOP = 26
_ROW = 22
_BAR_H = 15


def _ticks(largest: int) -> tuple[int, str, list[float]]:
    """A unit and tick positions (in that unit) that read as round numbers."""
    unit, name = (MIB, "MiB") if largest >= MIB else (KIB, "KiB") if largest >= KIB else (1, "B")
    top = largest / unit
    raw = top / 5 if top else 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks = []
    value = 0.0
    while value <= top + 1e-9:
        ticks.append(value)
        value = round(value + step, 6)
    return unit, name, ticks


def _chart(report: AuditReport, anchor: str) -> str:
    """Horizontal bars, biggest first, scaled linearly: the eye should land on what weighs."""
    rows: list[tuple[str, int, str, bool, str]] = []
    for p in report.packages:
        lic = p.licences
        family = package_family(lic)
        detail = f"{FAMILY_LABEL[family]}: {lic.expression or 'no licence found'}"
        if lic.detected:
            detail += " (detected from prose)"
        rows.append((p.name, p.shipped_size, family, lic.detected,
                     f"{detail}; {_plural(len(p.files), 'file')}"))
    if report.generated:
        rows.append(("(files compose generated)", sum(f.size for f in report.generated),
                     "generated", False, _plural(len(report.generated), "file")))
    rows.sort(key=lambda r: (-r[1], r[0]))
    total = sum(r[1] for r in rows) or 1
    largest = max((r[1] for r in rows), default=0)
    unit, unit_name, ticks = _ticks(largest)
    scale_top = max(largest, int(ticks[-1] * unit)) or 1
    height = _TOP + _ROW * max(len(rows), 1) + 10
    pattern = f"{anchor}-prose"
    out = [
        f"<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {_W} "
        f"{height}\" width=\"{_W}\" height=\"{height}\" "
        f"aria-labelledby=\"{anchor}-ct\">\n",
        f"<title id=\"{anchor}-ct\">Shipped size per package, {_e(report.architecture)}, "
        "largest first</title>\n",
        f"<defs><pattern id=\"{pattern}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\""
        " patternTransform=\"rotate(45)\"><rect width=\"3\" height=\"6\" fill=\"#ffffff\" "
        "fill-opacity=\"0.6\"/></pattern></defs>\n",
    ]
    bottom = _TOP + _ROW * max(len(rows), 1)
    for tick in ticks:
        x = _BAR_X + tick * unit / scale_top * _BAR_MAX
        label = f"{tick:g} {unit_name}" if tick else "0"
        out.append(f"<line class=\"grid\" x1=\"{x:.1f}\" y1=\"{_TOP - 4}\" x2=\"{x:.1f}\" "
                   f"y2=\"{bottom}\"/><text class=\"tick\" x=\"{x:.1f}\" y=\"{_TOP - 9}\" "
                   f"text-anchor=\"middle\">{_e(label)}</text>\n")
    if not rows:
        out.append(f"<text x=\"{_BAR_X}\" y=\"{_TOP + 15}\">No packages.</text>\n")
    for n, (name, size, family, prose, detail) in enumerate(rows):
        y = _TOP + n * _ROW + (_ROW - _BAR_H) / 2
        width = size / scale_top * _BAR_MAX
        if size:
            width = max(width, 1.5)
        share = size / total * 100
        pct = f"{share:.1f}%" if share >= 0.1 else "<0.1%"
        text_y = y + _BAR_H - 3.5
        fill = FAMILY_FILL[family]
        out.append(
            f"<g class=\"bar {family}\"><title>{_e(name)}: {_e(human_size(size))} "
            f"({size} bytes, {pct} of the image); {_e(detail)}</title>"
            f"<text x=\"{_LABEL_W}\" y=\"{text_y:.1f}\" text-anchor=\"end\""
            + (" font-style=\"italic\"" if family == "generated" else "")
            + f">{_e(_truncate(name, 30))}</text>"
            f"<rect class=\"fill\" x=\"{_BAR_X}\" y=\"{y:.1f}\" width=\"{width:.1f}\" "
            f"height=\"{_BAR_H}\" rx=\"2\" fill=\"{fill}\"/>"
            + (f"<rect x=\"{_BAR_X}\" y=\"{y:.1f}\" width=\"{width:.1f}\" height=\"{_BAR_H}\" "
               f"rx=\"2\" fill=\"url(#{pattern})\"/>" if prose else "")
            + f"<text class=\"value\" x=\"{_BAR_X + width + 6:.1f}\" y=\"{text_y:.1f}\">"
            f"{_e(human_size(size))} · {_e(pct)}</text></g>\n"
        )
    out.append("</svg>\n")
    return "".join(out)


def _family_badge(family: str) -> str:
    return (f"<span class=\"badge {family}\" title=\"{_e(FAMILY_HINT[family])}\">"
            f"{_e(FAMILY_LABEL[family])}</span>")


_PROSE_BADGE = ("<span class=\"badge prose\" title=\"The copyright file is not machine-readable"
                " (not DEP-5): these licences were detected from its prose\">detected from "
                "prose</span>")


def _package_table(report: AuditReport, anchor: str) -> str:
    gpl_ids = _gpl_anchors(report, anchor)
    rows = []
    for p in sorted(report.packages, key=lambda p: p.name):
        lic = p.licences
        family = package_family(lic)
        name = _e(p.name)
        if p.name in gpl_ids:
            name = f"<a href=\"#{gpl_ids[p.name]}\">{name}</a>"
        source = p.source + (f" ({p.source_version})" if p.source_version
                             and p.source_version != p.version else "")
        notes = ("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in lic.notes)
                 + "</ul>") if lic.notes else ""
        prose = " " + _PROSE_BADGE if lic.detected else ""
        rows.append(
            f"<tr><td><span class=\"dot\" style=\"background:{FAMILY_FILL[family]}\"></span>"
            f"<strong>{name}</strong></td>"
            f"<td class=\"nowrap\"><code>{_e(p.version)}</code></td><td>{_e(source)}</td>"
            f"<td><code>{_e(lic.expression or 'no licence found')}</code>{prose}{notes}</td>"
            f"<td>{_family_badge(family)}</td>"
            f"<td class=\"num\" title=\"{p.shipped_size} bytes\">{_e(human_size(p.shipped_size))}"
            f"</td><td class=\"num\">{len(p.files)}</td></tr>\n"
        )
    return (
        "<table class=\"packages\"><thead><tr><th>Package</th><th>Version</th><th>Source</th>"
        "<th>Licences (SPDX)</th><th>Family</th><th class=\"num\">Shipped</th>"
        "<th class=\"num\">Files</th></tr></thead>\n<tbody>\n" + "".join(rows)
        + "</tbody></table>\n"
    )


def _gpl_packages(report: AuditReport) -> list[AuditedPackage]:
    rank = {f: i for i, f in enumerate(FAMILIES)}
    gpl = [p for p in report.packages if p.licences.gpl_family]
    return sorted(gpl, key=lambda p: (rank[package_family(p.licences)], p.name))


def _gpl_anchors(report: AuditReport, anchor: str) -> dict[str, str]:
    return {p.name: f"{anchor}-gpl-{i}" for i, p in enumerate(_gpl_packages(report))}


def _link_line(link: Link, own: str) -> str:
    tags = ""
    if is_python_extension(link.binary):
        tags += " <span class=\"badge python\">Python extension</span>"
    if link.package == own:
        tags += " <span class=\"muted\">(same package)</span>"
    resolved = f" title=\"resolved to {_e(link.resolved)}\"" if link.resolved else ""
    return (f"<li><code{resolved}>{_e(link.needed)}</code><span class=\"arrow\" "
            f"aria-label=\"is linked by\">←</span><code>{_e(link.binary)}</code> "
            f"({_e(link.package)}){tags}</li>")


def _gpl_section(report: AuditReport, anchor: str) -> str:
    packages = _gpl_packages(report)
    if not packages:
        return "<p class=\"ok\">No package ships GPL, LGPL or AGPL code.</p>\n"
    ids = _gpl_anchors(report, anchor)
    out = [f"<p class=\"muted\">{_plural(len(packages), 'package')} of the GNU copyleft "
           "family ship. For each: the licences of the files that ship, and the shipped ELF "
           "objects that link one of its libraries directly (DT_NEEDED).</p>\n"]
    for p in packages:
        lic = p.licences
        family = package_family(lic)
        links = sorted((lk for lk in report.links if lk.provider == p.name),
                       key=lambda lk: (lk.package == p.name, lk.needed, lk.binary))
        extensions = sum(1 for lk in links if is_python_extension(lk.binary))
        out.append(
            f"<article class=\"gpl {family}\" id=\"{ids[p.name]}\">"
            f"<h4>{_family_badge(family)} {_e(p.name)} <code class=\"muted\">{_e(p.version)}"
            f"</code> <span class=\"muted\">{_e(human_size(p.shipped_size))}, "
            f"{_plural(len(p.files), 'file')}</span></h4>\n"
            f"<div><code>{_e(lic.expression or 'no licence found')}</code>"
            + (" " + _PROSE_BADGE if lic.detected else "")
            + (f" <span class=\"muted\">from <code>{_e(lic.copyright_path)}</code></span>"
               if lic.copyright_path else "")
            + "</div>\n<h5>Shipped files it covers</h5>\n"
        )
        out.append(_uses(p))
        if links:
            head = _plural(len(links), "direct link")
            if extensions:
                head += ", " + _plural(extensions, "from a Python extension module",
                                       "from Python extension modules")
            out.append(f"<h5>Linked by ({_e(head)})</h5>\n<ul class=\"links\">"
                       + "".join(_link_line(lk, p.name) for lk in links) + "</ul>\n")
        else:
            out.append("<h5>Linked by</h5><p class=\"muted\">No shipped ELF object links a "
                       "library of this package.</p>\n")
        out.append("</article>\n")
    return "".join(out)


def _file_list(paths: Sequence[str]) -> str:
    summary = _plural(len(paths), "shipped file")
    opened = " open" if len(paths) <= 6 else ""
    return (f"<details{opened}><summary>{_e(summary)}</summary><ul class=\"files\">"
            + "".join(f"<li><code>{_e(f)}</code></li>" for f in paths) + "</ul></details>")


def _uses(p: AuditedPackage) -> str:
    shipped = [u for u in p.licences.uses if u.how != "unshipped" and u.files]
    unshipped = [u for u in p.licences.uses if u.how == "unshipped" or not u.files]
    if not shipped:
        expr = p.licences.expression or "no licence found"
        return (f"<div class=\"use\"><code>{_e(expr)}</code> for the whole package: "
                + _file_list([f.path for f in p.files]) + "</div>\n")
    out = []
    for u in shipped:
        globs = " ".join(u.patterns) or "*"
        how = {"all": "every file", "matched": "files matching",
               "compiled": "compiled from sources matching"}.get(u.how, u.how)
        debian = (f" <span class=\"muted\">(Debian: {_e(u.debian)})</span>"
                  if u.debian and u.debian != u.expression else "")
        out.append(f"<div class=\"use\"><code>{_e(u.expression)}</code>{debian} "
                   f"<span class=\"muted\">{_e(how)}</span> <code>{_e(globs)}</code>: "
                   + _file_list(u.files) + "</div>\n")
    if unshipped:
        exprs = ", ".join(sorted({u.expression for u in unshipped}))
        verb = "covers" if len(unshipped) == 1 else "cover"
        out.append(f"<p class=\"muted\">{_plural(len(unshipped), 'paragraph')} of the copyright "
                   f"file {verb} nothing that ships ({_e(exprs)}).</p>\n")
    return "".join(out)


def _missing(report: AuditReport) -> str:
    missing = sorted(report.missing, key=lambda lk: (lk.needed, lk.binary))
    if not missing:
        return "<p class=\"ok\">Every needed library is in the image.</p>\n"
    rows = "".join(
        f"<tr><td><code>{_e(lk.needed)}</code></td><td class=\"path\"><code>{_e(lk.binary)}"
        f"</code></td><td>{_e(lk.package)}</td></tr>\n" for lk in missing)
    return (f"<p class=\"alert\">The image lacks {_plural(len(missing), 'library', 'libraries')}"
            " that shipped ELF objects need: these would fail to load.</p>\n"
            "<table class=\"missing\"><thead><tr><th>Needed library</th><th>Needed by</th>"
            "<th>Package</th></tr></thead>\n<tbody>\n" + rows + "</tbody></table>\n")


def _violations(violations: Sequence[Violation]) -> str:
    if not violations:
        return "<p class=\"ok\">No shipped licence matches a deny rule of the profile.</p>\n"
    ordered = sorted(violations, key=lambda v: (v.allowed is not None, v.package, v.licence))
    rows = []
    for v in ordered:
        status = ("<span class=\"badge denied\">denied</span>" if v.allowed is None else
                  f"<span class=\"badge allowed\">allowed</span> {_e(v.allowed)}")
        why = "<br>".join(_e(" → ".join(chain)) for chain in v.why) or "—"
        rows.append(
            f"<tr><td><strong>{_e(v.package)}</strong></td>"
            f"<td class=\"nowrap\"><code>{_e(v.licence)}</code></td>"
            f"<td class=\"nowrap\"><code>{_e(v.rule)}</code></td>"
            f"<td class=\"path\"><code>{_e(v.file)}</code></td>"
            f"<td>{status}</td><td>{why}</td></tr>\n")
    return ("<table class=\"violations\"><thead><tr><th>Package</th><th>Licence</th>"
            "<th>Deny rule</th><th>Copyright file</th><th>Status</th><th>Why it ships</th>"
            "</tr></thead>\n<tbody>\n" + "".join(rows) + "</tbody></table>\n")


def _sources(reports: Sequence[AuditReport]) -> str:
    seen = sorted({s for r in reports for s in r.sources})
    if not seen:
        return ""
    items = "".join(
        f"<li>{_e(archive)} {_e(suite)} <span class=\"mono\">Release sha256 "
        f"{_e(sha[:16])}…</span></li>" for archive, suite, sha in seen)
    return f"<p>Packages from:</p><ul>{items}</ul>\n"
