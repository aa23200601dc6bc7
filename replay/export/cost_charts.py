"""The report's per-scenario charts: what each KVM mode costs, and how long its stalls last.

Both read the results directory's tables only (``summary``, ``findings``) and ``replay.json``,
and draw whatever cost columns the summary has (:data:`COSTS`): a column added to
``summary.parquet`` gets its panel by adding one :class:`Cost` line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from replay.export.chart import Chart, ReportFrame
from replay.export.svg import INK, MUTED, SERIES, drawing, new_figure, to_svg


@dataclass(frozen=True)
class Cost:
    """One panel of the cost chart: a ``summary`` column over a scenario's vCPUs.

    The column is summed, or its largest value taken (``most``: a per-VM figure repeated on
    every vCPU's row). ``per`` divides the sum by another summed column, and ``share`` marks a
    column that is a share already: both are shown in %. ``time`` marks a column in the
    capture's clock units, shown in seconds (``"long"``) or milliseconds (``"short"``) when the
    clock converts to ns.
    """

    column: str
    label: str
    per: str | None = None
    share: bool = False
    time: str | None = None
    most: bool = False


#: Panels of the cost chart, in order; those whose column the summary lacks are left out.
COSTS = (
    Cost("stalled_ns", "cycle counter stalled\n(% of guest time)", per="guest_ns"),
    Cost("risky_ticks", "risky zero-delta ticks"),
    Cost("fail_entry_ns", "guest time on CPUs\npinning forbids", time="long"),
    Cost("fail_entries", "failed guest entries"),
    Cost("pinned_capacity_share", "host capacity\npinning takes", share=True, most=True),
    Cost("cross_pmu_loads", "vCPU loads onto\nanother host PMU"),
    Cost("event_recreations", "perf event\nre-creations"),
    Cost("recreate_cpu_ns", "CPU time re-creating\nperf events", time="short"),
)
#: Panels side by side; more go on further rows.
PER_ROW = 4


def cost_chart(data: ReportFrame) -> Chart | None:
    """Small multiples: one panel per cost, one bar per scenario (ranking order)."""
    costs = [c for c in COSTS if c.column in data.summary.columns]
    if not costs or data.summary.is_empty():
        return None
    total = pl.col([c.column for c in costs if not c.most] + [c.per for c in costs if c.per])
    most = pl.col([c.column for c in costs if c.most])
    totals = data.summary.group_by("scenario").agg(total.fill_null(0).sum(), most.max())
    by_name = {row["scenario"]: row for row in totals.iter_rows(named=True)}
    names = [s for s in data.scenarios if s in by_name]
    rows, columns = -(-len(costs) // PER_ROW), min(len(costs), PER_ROW)
    with drawing("costs"):
        fig = new_figure(2.1 * columns + 1.6, (0.34 * max(len(names), 1) + 1.3) * rows)
        grid = fig.subplots(rows, columns, sharey=True, squeeze=False)
        y = np.arange(len(names))
        for ax, cost in zip(grid.flat, costs, strict=False):
            values = [_value(by_name[n], cost, data) for n in names]
            colours = [SERIES[data.colour[n]] for n in names]
            ax.barh(y, values, color=colours, height=0.7)
            peak = max(values, default=0.0)
            for yi, v in zip(y, values, strict=True):
                ax.annotate(
                    _fmt(v, cost),
                    (v, yi),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7.5,
                    color=INK if v else MUTED,
                )
            # room for the value labels right of the longest bar
            ax.set_xlim(0, peak * 1.45 if peak > 0 else 1)
            ax.set_title(cost.label, fontsize=8.5, loc="left")
            ax.set_xlabel(_unit(cost, data))
            ax.grid(axis="y", visible=False)
        for ax in grid.flat[len(costs) :]:
            ax.set_visible(False)
        grid[0, 0].set_yticks(y, names)
        grid[0, 0].invert_yaxis()
        svg = to_svg(fig, "costs")
    return Chart(
        "costs",
        "What each mode costs",
        "Per scenario, summed over every vCPU (host capacity: per VM), best-ranked first. "
        "Stalls and risky ticks hit the guest; time on forbidden CPUs, failed entries and "
        "capacity are what pinning (set-pmu) takes; perf event re-creations what "
        "fixed-counters-only costs the host; a missing bar is a zero.",
        svg,
    )


def _value(row: dict[str, Any], cost: Cost, data: ReportFrame) -> float:
    value = float(row[cost.column] or 0)
    if cost.per:
        base = float(row[cost.per] or 0)
        return 100.0 * value / base if base else 0.0
    if cost.share:
        return 100.0 * value
    if cost.time:
        return value / (data.long if cost.time == "long" else data.short).scale
    return value


def _unit(cost: Cost, data: ReportFrame) -> str:
    if cost.per or cost.share:
        return "%"
    if cost.time:
        return (data.long if cost.time == "long" else data.short).unit
    return "count"


def _fmt(value: float, cost: Cost) -> str:
    if cost.per or cost.share:
        return f"{value:.1f}%"
    return _number(value) if cost.time else f"{value:,.0f}"


def _number(value: float) -> str:
    """Three significant digits, without an exponent: ``0.0459``, ``1.29``, ``3,694``."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def episode_chart(data: ReportFrame) -> Chart | None:
    """Stall-episode lengths, one histogram row per scenario that stalls (shared log bins)."""
    stalls = data.findings.filter(
        (pl.col("kind") == "stall") & (pl.col("counter") == data.primary)
    ).select("scenario", "duration")
    if stalls.is_empty():
        return None
    names = [s for s in data.scenarios if s in set(stalls["scenario"].to_list())]
    unit = data.short
    lengths_all = stalls["duration"].to_numpy().astype(np.float64) / unit.scale
    low = max(float(lengths_all.min()), 1e-9)
    edges = np.geomspace(low, max(float(lengths_all.max()), low * 1.01) * 1.0001, 31)
    with drawing("episodes"):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        fig = new_figure(8.0, 0.9 * len(names) + 1.0)
        axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
        for ax, name in zip(axes, names, strict=True):
            part = stalls.filter(pl.col("scenario") == name)["duration"].to_numpy()
            lengths = part.astype(np.float64) / unit.scale
            counts, _ = np.histogram(lengths, bins=edges)
            colour = SERIES[data.colour[name]]
            ax.stairs(counts, edges, fill=True, color=colour, alpha=0.85)
            median = float(np.median(lengths))
            ax.axvline(median, color=INK, linewidth=0.8, linestyle=(0, (3, 2)))
            ax.set_xscale("log")
            # plain numbers (2, 5, 10, 20 ...) rather than powers of ten in mathtext
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("episodes", fontsize=7.5)
            ax.set_title(
                f"{name}: {len(lengths)} episodes, median {_number(median)} {unit.unit}, "
                f"longest {_number(float(lengths.max()))} {unit.unit}",
                fontsize=8.5,
                loc="left",
            )
            ax.grid(axis="x", visible=False)
        axes[-1].set_xlabel(f"stall episode length ({unit.unit}, log scale)")
        svg = to_svg(fig, "episodes")
    return Chart(
        "episodes",
        "How long the cycle counter stays frozen",
        "Each stall episode of the guest's cycle counter, by length; the dashed line is the "
        "median. Scenarios without a stall have no row.",
        svg,
    )
