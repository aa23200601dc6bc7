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
    """One panel of the cost chart: a ``summary`` column summed over a scenario's vCPUs.

    ``per`` divides the sum by another summed column (a share, shown in %); ``time`` marks
    columns in the capture's clock units (ns when it converts), shown in seconds.
    """

    column: str
    label: str
    per: str | None = None
    time: bool = False


#: Panels of the cost chart, in order; those whose column the summary lacks are left out.
COSTS = (
    Cost("stalled_ns", "cycle counter stalled\n(% of guest time)", per="guest_ns"),
    Cost("risky_ticks", "risky zero-delta ticks"),
    Cost("fail_entry_ns", "guest time on CPUs\npinning forbids", time=True),
    Cost("fail_entries", "failed guest entries"),
    Cost("cross_pmu_loads", "vCPU loads onto\nanother host PMU"),
    Cost("event_recreations", "perf event\nre-creations"),
)


def cost_chart(data: ReportFrame) -> Chart | None:
    """Small multiples: one panel per cost, one bar per scenario (ranking order)."""
    costs = [c for c in COSTS if c.column in data.summary.columns]
    if not costs or data.summary.is_empty():
        return None
    needed = {c.column for c in costs} | {c.per for c in costs if c.per}
    totals = data.summary.group_by("scenario").agg(pl.col(sorted(needed)).fill_null(0).sum())
    by_name = {row["scenario"]: row for row in totals.iter_rows(named=True)}
    names = [s for s in data.scenarios if s in by_name]
    rows = max(len(names), 1)
    with drawing("costs"):
        fig = new_figure(2.1 * len(costs) + 1.6, 0.34 * rows + 1.3)
        axes = fig.subplots(1, len(costs), sharey=True, squeeze=False)[0]
        y = np.arange(len(names))
        for ax, cost in zip(axes, costs, strict=True):
            values = [_value(by_name[n], cost, data.long.scale) for n in names]
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
            unit = "%" if cost.per else (data.long.unit if cost.time else "count")
            ax.set_title(cost.label, fontsize=8.5, loc="left")
            ax.set_xlabel(unit)
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(y, names)
        axes[0].invert_yaxis()
        svg = to_svg(fig, "costs")
    return Chart(
        "costs",
        "What each mode costs",
        "Per scenario, summed over every vCPU, best-ranked first. Stalls and risky ticks hit "
        "the guest; time on forbidden CPUs and failed entries are what pinning (set-pmu) "
        "takes; a missing bar is a zero.",
        svg,
    )


def _value(row: dict[str, Any], cost: Cost, time_scale: float) -> float:
    value = float(row[cost.column] or 0)
    if cost.per:
        base = float(row[cost.per] or 0)
        return 100.0 * value / base if base else 0.0
    return value / time_scale if cost.time else value


def _fmt(value: float, cost: Cost) -> str:
    if cost.per:
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
