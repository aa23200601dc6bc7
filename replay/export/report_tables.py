"""The HTML report's text sections: verdict, host, ranking and per-vCPU numbers.

Each section reads ``replay.json`` keys (and the ``summary`` table) and shows what is there, so
results written before a key existed still render, and a new key shows up where it belongs.
Every value is HTML-escaped: capture paths, thread and scenario names come from the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from importers.host.topology import format_cpulist
from replay.export.chart import ReportFrame
from replay.export.svg import series_var
from replay.host_report import pmuver_text


def verdict_section(meta: dict[str, Any]) -> str:
    """``verdict`` (status, text, reasons, scenario, kernel, mainline fallback), else the
    ranking's ``recommendation``, else a word that the results are not ranked."""
    verdict = meta.get("verdict")
    if isinstance(verdict, dict):
        status = str(verdict.get("status", ""))
        facts = [
            (label, verdict.get(key))
            for key, label in (
                ("scenario", "recommended"),
                ("kernel", "kernel"),
                ("mainline_fallback", "best on a released kernel"),
            )
        ]
        listed = "".join(
            f"<dt>{label}</dt><dd>{escape(_plain(value))}</dd>"
            for label, value in facts
            if value not in (None, "")
        )
        reasons = verdict.get("reasons") or []
        body = [
            f'<span class="status">{escape(status)}</span>',
            f'<p class="text" id="verdict-text">{escape(str(verdict.get("text", "")))}</p>',
            f"<dl>{listed}</dl>" if listed else "",
            _list("reasons", reasons),
        ]
        return _section("verdict", "Verdict", f'<div class="verdict {escape(status)}">', body)
    recommendation = meta.get("recommendation")
    if recommendation:
        body = [
            '<span class="status">recommendation</span>',
            f'<p class="text" id="verdict-text">{escape(str(recommendation))}</p>',
        ]
        return _section("verdict", "Verdict", '<div class="verdict">', body)
    body = [
        '<p class="text" id="verdict-text">Not ranked: these results come from '
        "<code>pmu-replay replay</code>; <code>pmu-replay compare</code> ranks every KVM mode "
        "and recommends one.</p>"
    ]
    return _section("verdict", "Verdict", '<div class="verdict">', body)


def _section(key: str, title: str, opening: str, body: list[str]) -> str:
    inner = "\n".join(b for b in body if b)
    return f'<section id="{key}">\n<h2>{title}</h2>\n{opening}\n{inner}\n</div>\n</section>'


def _list(title: str, items: list[Any]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{escape(_plain(i))}</li>" for i in items)
    return f'<p class="muted">{title}:</p><ul class="{title}">{lis}</ul>'


def _plain(value: Any) -> str:
    """A JSON value as one line of text (mappings as ``key: value; ...``)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


#: Columns of the host PMU table (``host.pmus`` keys), in order; absent keys are left out.
HOST_COLUMNS = (
    ("name", "host PMU"),
    ("cpus", "CPUs"),
    ("core", "core"),
    ("perf_type", "perf type"),
    ("pmuver", "PMUVer"),
    ("counters", "event counters"),
    ("aarch32_el0", "AArch32 EL0"),
    ("source", "source"),
)


def host_section(meta: dict[str, Any]) -> str:
    """The host PMUs: the ``host`` block when present, else the replay's ``topology``."""
    host = meta.get("host")
    topology = meta.get("topology") or {}
    lines: list[str] = []
    if isinstance(host, dict) and host.get("pmus"):
        pmus = [dict(p) for p in host["pmus"]]
        if host.get("vpmu_offered") is False:
            why = escape(str(host.get("why_not") or "see the PMUs below"))
            lines.append(
                f'<p class="text"><b>Mainline KVM offers no vPMU on this host</b> ({why}): '
                "every mode runs the guest without one.</p>"
            )
        elif kvm := host.get("kvm"):
            width = "64-bit" if kvm.get("guest_event_counters_64bit") else "32-bit"
            guest = pmuver_text(str(kvm.get("guest_pmuver")))
            lines.append(
                f'<p class="sub">KVM offers the guest {escape(guest)}'
                f" with {width} event counters"
                + ("; PMCR_EL0.LC is RES1 (no AArch32 EL0)" if kvm.get("pmcr_lc_res1") else "")
                + "</p>"
            )
    else:
        types = topology.get("perf_types") or {}
        pmus = [
            {"name": name, "cpus": cpus, "perf_type": types.get(name)}
            for name, cpus in (topology.get("pmus") or {}).items()
        ]
    if not pmus:
        return ""
    if topology.get("source"):
        lines.append(f'<p class="sub">topology from {escape(str(topology["source"]))}</p>')
    shown = [(k, label) for k, label in HOST_COLUMNS if any(p.get(k) is not None for p in pmus)]
    head = "".join(f"<th>{label}</th>" for _, label in shown)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{escape(_host_value(k, p.get(k)))}</td>" for k, _ in shown) + "</tr>"
        for p in pmus
    )
    table = f"<table>\n<tr>{head}</tr>\n{rows}\n</table>"
    return f'<section id="host">\n<h2>Host</h2>\n{"".join(lines)}\n{table}\n</section>'


def _host_value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "pmuver":
        return pmuver_text(str(value))
    if key == "cpus" and isinstance(value, list):
        return format_cpulist(frozenset(int(c) for c in value))
    if key == "source" and isinstance(value, dict):
        # one source per fact (importers.host.pmus): facts that share a source are named once
        by_source: dict[str, list[str]] = {}
        for fact, source in value.items():
            by_source.setdefault(str(source), []).append(fact)
        return "; ".join(f"{', '.join(facts)}: {source}" for source, facts in by_source.items())
    return _plain(value)


@dataclass(frozen=True)
class Column:
    """A ranking column: ``replay.json`` ranking key, heading, format; ``optional`` columns show
    only when some scenario has a non-zero value there."""

    key: str
    label: str
    fmt: Callable[[Any], str]
    numeric: bool = True
    optional: bool = False


def _count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _text(value: Any) -> str:
    return str(value) if value not in (None, "") else "-"


def _kernel(proposed: Any) -> str:
    return "proposed" if proposed else "mainline"


RANKING_COLUMNS = (
    Column("rank", "#", _count),
    Column("scenario", "scenario", _text, numeric=False),
    Column("proposed", "kernel", _kernel, numeric=False),
    Column("stalled_share", "stalled", _share),
    Column("zero_delta_reads", "zero-delta reads", _count, optional=True),
    Column("risky_ticks", "risky ticks", _count),
    Column("fail_entries", "failed entries", _count),
    Column("pinned_capacity_share", "host capacity pinned off", _share, optional=True),
    Column("cross_pmu_loads", "cross-PMU loads", _count, optional=True),
    Column("event_recreations", "event re-creations", _count, optional=True),
    Column("lost_counters", "lost counters", _text, numeric=False),
    # the scenario's costs in words: "assessment" since the verdict, "verdict" before
    Column("assessment", "what it costs", _text, numeric=False),
    Column("verdict", "what it costs", _text, numeric=False),
)


def ranking_section(meta: dict[str, Any], data: ReportFrame) -> str:
    """The ranked scenarios, best first, with every cost column the rows carry."""
    rows = meta.get("ranking") or []
    if not rows:
        return ""
    shown = [
        c
        for c in RANKING_COLUMNS
        if any(c.key in r for r in rows) and (not c.optional or any(r.get(c.key) for r in rows))
    ]
    head = "".join(f"<th>{c.label}</th>" for c in shown)
    body = "\n".join("<tr>" + "".join(_cell(c, r, data) for c in shown) + "</tr>" for r in rows)
    keys = (meta.get("ranking_rule") or {}).get("keys") or []
    rule = f'<p class="sub">ranked by {escape(", then ".join(map(str, keys)))}</p>' if keys else ""
    return (
        '<section id="ranking">\n<h2>Ranking (best first)</h2>\n'
        f'{rule}<table class="ranking">\n<tr>{head}</tr>\n{body}\n</table>\n</section>'
    )


def _cell(column: Column, row: dict[str, Any], data: ReportFrame) -> str:
    text = escape(column.fmt(row.get(column.key)))
    if column.key == "scenario" and row.get("scenario") in data.colour:
        swatch = series_var(data.colour[row["scenario"]])
        text = f'<span class="swatch" style="background: {swatch}"></span>{text}'
    if column.key == "scenario":
        return f'<td class="name">{text}</td>'
    return f'<td class="num">{text}</td>' if column.numeric else f"<td>{text}</td>"


def summary_section(data: ReportFrame) -> str:
    """Per scenario and vCPU numbers (the terminal report's table), folded away."""
    summary = data.summary
    if summary.is_empty():
        return ""
    unit = data.long
    heads = ["scenario", "vCPU", f"guest {unit.unit}", f"stalled {unit.unit}"]
    heads += ["risky ticks", "failed entries", "counted / true cycles", f"unknown {unit.unit}"]
    heads += ["lost counters"]
    order = {s: i for i, s in enumerate(data.scenarios)}
    rows = sorted(
        summary.iter_rows(named=True), key=lambda r: (order.get(r["scenario"], 0), r["vcpu"])
    )
    lines = []
    for r in rows:
        ticks = r.get("ticks_with_guest")
        true = r.get("true_cycles") or 0
        cells = [
            (r["scenario"], False),
            (f"{r['vm']} vCPU {_text(r['vcpu_index'])} (tid {r['vcpu']})", False),
            (f"{r['guest_ns'] / unit.scale:.3f}", True),
            (f"{r['stalled_ns'] / unit.scale:.3f}", True),
            ("-" if ticks is None else f"{r['risky_ticks']}/{ticks}", True),
            (_count(r["fail_entries"]), True),
            (f"{r['counted_cycles'] / true:.1%}" if true else "-", True),
            (f"{r['unknown_ns'] / unit.scale:.3f}", True),
            (_text(r["lost_counters"]), False),
        ]
        lines.append(
            "<tr>"
            + "".join(
                f'<td class="num">{escape(v)}</td>' if num else f"<td>{escape(v)}</td>"
                for v, num in cells
            )
            + "</tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in heads)
    return (
        '<section id="per-vcpu">\n<h2>Per vCPU</h2>\n'
        f"<details><summary>{len(rows)} rows: every scenario and vCPU</summary>\n"
        f"<table>\n<tr>{head}</tr>\n{chr(10).join(lines)}\n</table>\n</details>\n</section>"
    )
