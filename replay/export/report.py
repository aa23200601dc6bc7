"""Replay results -> one self-contained HTML report (``pmu-replay report``, ``compare --html``).

The file is meant to be attached to a bug report, a mailing-list thread or a capacity review:
everything is inline (styles, SVG charts), nothing is fetched (a Content-Security-Policy of
``default-src 'none'`` makes sure), no script runs, and it follows the reader's light or dark
colour scheme. Sections, each drawn from ``replay.json`` and the Parquet tables of a results
directory, showing what is there:

* the verdict: ``verdict`` (status, text, reasons, kernel, mainline fallback) when the results
  carry one, else the ``recommendation`` of a ranked comparison;
* the host: ``host`` (vPMU offered, PMUs with PMUVer, counters, AArch32 EL0 and where each fact
  came from) when present, else ``topology`` (PMU -> CPUs, perf types, source);
* the ranking (``ranking`` rows) with any cost columns they have;
* the charts (:mod:`replay.export.cost_charts`, :mod:`replay.export.timeline_charts`);
* per-vCPU numbers (``summary``), the replay's notes and its inputs.

Same results, same bytes: no timestamp, and the charts are deterministic (:mod:`.svg`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from typing import Any

from importers.output import whole_file
from replay.export.chart import Chart, ReportFrame
from replay.export.cost_charts import cost_chart, episode_chart
from replay.export.report_tables import (
    host_section,
    ranking_section,
    summary_section,
    verdict_section,
)
from replay.export.svg import css_variables
from replay.export.timeline_charts import placement_chart, ramp_chart
from replay.results import Results

_CSS = """\
:root { color-scheme: light dark; --bg: #ffffff; --panel: #f6f8fa; --good: #1a7f37;
  --bad: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --panel: #161b22;
  --good: #3fb950; --bad: #f85149; --warn: #d29922; } }
body { margin: 0 auto; max-width: 68rem; padding: 1.5rem; background: var(--bg);
  color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--grid);
  padding-bottom: .2rem; }
p, li { max-width: 60rem; }
.sub, figcaption, .muted { color: var(--muted); }
code { font: .9em ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.verdict { background: var(--panel); border-left: 4px solid var(--grid); padding: .75rem 1rem;
  border-radius: 4px; }
.verdict.conclusive { border-color: var(--good); }
.verdict.inconclusive { border-color: var(--warn); }
.verdict .text { font-size: 1.05rem; font-weight: 600; margin: .25rem 0; }
.status { display: inline-block; font-size: .8rem; font-weight: 600; text-transform: uppercase;
  letter-spacing: .04em; padding: 0 .5rem; border-radius: 3px; border: 1px solid currentColor; }
.conclusive .status { color: var(--good); }
.inconclusive .status { color: var(--warn); }
table { border-collapse: collapse; font-size: .88rem; margin: .5rem 0; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid var(--grid); text-align: left;
  vertical-align: top; }
th { font-weight: 600; }
td.name { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
  margin-right: .35em; vertical-align: -.05em; }
figure { margin: 1rem 0 2rem; }
figure svg { display: block; width: 100%; height: auto; }
details { margin: .5rem 0; }
summary { cursor: pointer; }
"""


@dataclass(frozen=True)
class ReportStats:
    """What :func:`write_report` wrote."""

    path: Path
    bytes: int
    charts: int


_CHARTS = (cost_chart, episode_chart, placement_chart, ramp_chart)


def render_report(results: Results) -> str:
    """The report of ``results`` as HTML text (see the module docstring)."""
    return _render(results)[0]


def _render(results: Results) -> tuple[str, int]:
    """The report's HTML and how many charts it draws."""
    results.require_observations("the HTML report")
    # replay.json as it is on disk: results fresh from a replay and results loaded from a
    # directory then render to the same bytes
    meta = json.loads(json.dumps(results.meta, sort_keys=True, default=str))
    data = ReportFrame.of(replace(results, meta=meta))
    drawn = [c for c in (make(data) for make in _CHARTS) if c is not None]
    capture = meta.get("capture") or {}
    title = f"pmu-replay: {Path(str(capture.get('path') or 'replay')).name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # nothing in this file may reach the network, whatever a mail client does with it
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{escape(title)}</title>",
        f"<style>\n{css_variables()}{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        _subtitle(meta, data),
        verdict_section(meta),
        host_section(meta),
        ranking_section(meta, data),
        *(_figure(c) for c in drawn),
        summary_section(data),
        _notes(meta),
        _inputs(meta),
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n", len(drawn)


def write_report(results: Results, path: str | Path) -> ReportStats:
    """Write the HTML report of ``results`` to ``path``, whole or absent
    (:func:`importers.output.whole_file`: a failed write leaves the previous file, or none).

    Raises
    ------
    UsageError
        matplotlib is missing, the path's parent is a file, or the results' observations were
        let go.
    OSError
        Naming ``path``, when it cannot be written (disk full, permission, ...).
    """
    text, charts = _render(results)
    out = Path(path)
    with whole_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return ReportStats(out, out.stat().st_size, charts)


def _subtitle(meta: dict[str, Any], data: ReportFrame) -> str:
    capture = meta.get("capture") or {}
    profile = meta.get("profile") or {}
    bits = [f"capture <code>{escape(str(capture.get('path', '?')))}</code>"]
    if capture.get("format"):
        bits.append(escape(str(capture["format"])))
    vms = meta.get("vms") or {}
    vcpus = sum(len(tids) for tids in vms.values())
    span = (data.end - data.start) / data.long.scale
    bits.append(f"{vcpus} vCPU(s) in {len(vms)} VM(s), {span:.3f} {data.long.unit} replayed")
    if profile.get("name"):
        bits.append(
            f"guest profile <b>{escape(str(profile['name']))}</b> "
            f"({escape(str(profile.get('description', '')))})"
        )
    return f'<p class="sub">{"; ".join(bits)}</p>'


def _figure(chart: Chart) -> str:
    return (
        f'<section id="{chart.key}">\n<h2>{escape(chart.title)}</h2>\n'
        f'<figure class="chart" data-chart="{chart.key}">\n{chart.svg}\n'
        f"<figcaption>{escape(chart.caption)}</figcaption>\n</figure>\n</section>"
    )


def _notes(meta: dict[str, Any]) -> str:
    notes = meta.get("notes") or []
    if not notes:
        return ""
    items = "\n".join(f"<li>{escape(str(n))}</li>" for n in notes)
    return (
        f'<section id="notes">\n<h2>What the replay assumed</h2>\n<ul>\n{items}\n</ul>\n</section>'
    )


def _inputs(meta: dict[str, Any]) -> str:
    capture = meta.get("capture") or {}
    scenarios = ", ".join(str(s.get("name")) for s in meta.get("scenarios", []))
    rows = [
        ("capture", capture.get("path")),
        ("sha256", capture.get("sha256")),
        ("clock", f"{capture.get('clock') or 'unknown'} ({capture.get('ts_unit', 'ns')})"),
        ("scenarios", scenarios),
        ("engine path", meta.get("engine_path")),
        ("pmu-replay", meta.get("pmu_replay")),
    ]
    body = "\n".join(
        f"<tr><th>{name}</th><td><code>{escape(str(value))}</code></td></tr>"
        for name, value in rows
        if value
    )
    return f'<section id="inputs">\n<h2>Inputs</h2>\n<table>\n{body}\n</table>\n</section>'
