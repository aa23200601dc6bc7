"""The report's time charts: where each vCPU ran, and what the worst vCPU's cycle counter read.

Real captures have millions of pieces; a chart a few hundred pixels wide cannot show more than
one colour per pixel column anyway. :func:`placement_chart` therefore cuts the capture into
:data:`COLUMNS` equal time slices and shows, per vCPU and slice, the cluster it spent most of
that slice on; :func:`ramp_chart` samples its cumulative counts at as many instants. The SVG
stays a few hundred kB at any capture size, and the caption says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.export.chart import Chart, ReportFrame

if TYPE_CHECKING:
    from matplotlib.patches import Patch
from replay.export.svg import GRID, INK, MUTED, SERIES, drawing, new_figure, to_svg

#: Time slices across the capture (about one per pixel column of the chart's plot area).
COLUMNS = 700
#: vCPUs drawn at most in the placement chart (the most stalled first).
MAX_VCPUS = 24
_UNKNOWN = -1  # placement category of unknown time
#: Height of a vCPU's row in the placement chart, and of its bar (points; 72 to the inch).
ROW_INCHES = 0.32
_BAR_PT = 0.7 * ROW_INCHES * 72
_DASHES = ("solid", (0, (5, 2)), (0, (2, 1.5)), (0, (6, 2, 1.5, 2)), (0, (1, 1)))


def placement_chart(data: ReportFrame) -> Chart | None:
    """Per vCPU, a bar over time coloured by the cluster (host PMU) it mostly ran on."""
    pieces = data.pieces
    if pieces.is_empty() or data.end <= data.start:
        return None
    cpu_cluster = {cpu: i for i, cpus in enumerate(data.clusters.values()) for cpu in cpus}
    vcpus = _vcpus_by_stall(data)
    shown = vcpus[:MAX_VCPUS]
    width = (data.end - data.start) / COLUMNS
    cells = _dominant_cells(pieces, cpu_cluster, len(data.clusters), data.start, width)
    scale = data.long
    with drawing("placement"):
        fig = new_figure(9.0, ROW_INCHES * len(shown) + 1.25)
        ax = fig.add_subplot()
        for row, (tid, _) in enumerate(shown):
            mine = cells.filter(pl.col("tid") == tid)
            for category, runs in _runs(mine):
                colour = MUTED if category == _UNKNOWN else SERIES[category % len(SERIES)]
                # A run is one thick line: one SVG path per vCPU and cluster with two points a
                # run, a quarter of the bytes of one rectangle per run (a real capture has
                # thousands of runs per vCPU).
                ends = np.array([(s, s + n) for s, n in runs], dtype=np.float64) * width
                xs = np.column_stack([ends / scale.scale, np.full(len(ends), np.nan)]).ravel()
                ax.plot(xs, np.full(len(xs), row), color=colour, lw=_BAR_PT, solid_capstyle="butt")
        ax.set_yticks(range(len(shown)), [label for _, label in shown])
        ax.set_ylim(len(shown) - 0.5, -0.5)
        ax.set_xlim(0, (data.end - data.start) / scale.scale)
        ax.set_xlabel(f"time since capture start ({scale.unit})")
        ax.grid(axis="y", visible=False)
        handles = [
            _swatch(SERIES[i % len(SERIES)], f"{name} ({_cpus(cpus)})")
            for i, (name, cpus) in enumerate(data.clusters.items())
        ]
        handles.append(_swatch(MUTED, "unknown (lost or contradictory records)"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, fontsize=8)
        svg = to_svg(fig, "placement")
    more = (
        f" The {len(shown)} most-stalled of {len(vcpus)} vCPUs are shown."
        if len(vcpus) > len(shown)
        else ""
    )
    return Chart(
        "placement",
        "Where each vCPU ran",
        "Time on a CPU (guest or host mode), coloured by the CPU's cluster (host PMU); gaps are "
        "time off every CPU. The capture is cut into "
        f"{COLUMNS} equal slices and each slice shows where the vCPU spent most of it." + more,
        svg,
    )


def _vcpus_by_stall(data: ReportFrame) -> list[tuple[int, str]]:
    """(tid, label) of every vCPU, most stalled time (any scenario) first."""
    stalled = (
        data.summary.group_by("vcpu").agg(pl.col("stalled_ns").max())
        if "stalled_ns" in data.summary.columns
        else pl.DataFrame(schema={"vcpu": pl.Int32, "stalled_ns": pl.Int64})
    )
    vcpus = (
        data.pieces.group_by("vm", "tid", "vcpu_index")
        .agg()
        .join(stalled, left_on="tid", right_on="vcpu", how="left")
        .with_columns(pl.col("stalled_ns").fill_null(0))
        .sort(["stalled_ns", "vm", "vcpu_index", "tid"], descending=[True, False, False, False])
    )
    return [(tid, _vcpu_label(vm, index, tid)) for vm, tid, index, _ in vcpus.rows()]


def _vcpu_label(vm: str | None, index: int | None, tid: int) -> str:
    which = f"vCPU {index}" if index is not None else "vCPU ?"
    return f"{vm or '?'} {which} (tid {tid})"


def _dominant_cells(
    pieces: pl.DataFrame, cpu_cluster: dict[int, int], clusters: int, start: int, width: float
) -> pl.DataFrame:
    """``tid, cell, category``: per vCPU and time slice, the cluster (or unknown) with the most
    time in it; a CPU of no known cluster gets category ``clusters``."""
    category = (
        pl.when(pl.col("state") == "unknown")
        .then(pl.lit(_UNKNOWN))
        .otherwise(pl.col("cpu").replace_strict(cpu_cluster, default=clusters))
        .cast(pl.Int64)
    )
    first = ((pl.col("start") - start) / width).floor().cast(pl.Int64).clip(0, COLUMNS - 1)
    last = ((pl.col("end") - 1 - start) / width).floor().cast(pl.Int64).clip(0, COLUMNS - 1)
    cell_start = pl.col("cell").cast(pl.Float64) * width + start
    overlap = pl.min_horizontal(pl.col("end"), cell_start + width) - pl.max_horizontal(
        pl.col("start"), cell_start
    )
    return (
        pieces.filter(pl.col("end") > pl.col("start"))
        .select(
            "tid", "start", "end", category.alias("category"), first.alias("a"), last.alias("b")
        )
        .with_columns(pl.int_ranges("a", pl.col("b") + 1).alias("cell"))
        .explode("cell")
        .with_columns(overlap.alias("time"))
        .group_by("tid", "cell", "category")
        .agg(pl.col("time").sum())
        .sort("tid", "cell", "time", "category", descending=[False, False, True, False])
        .unique(["tid", "cell"], keep="first", maintain_order=True)
        .select("tid", "cell", "category")
    )


def _runs(cells: pl.DataFrame) -> list[tuple[int, list[tuple[int, int]]]]:
    """Consecutive cells of one category merged: category -> [(first cell, cell count)]."""
    runs = (
        cells.sort("cell")
        .with_columns(
            (
                (pl.col("category") != pl.col("category").shift(1))
                | (pl.col("cell") != pl.col("cell").shift(1) + 1)
            )
            .fill_null(True)
            .cum_sum()
            .alias("run")
        )
        .group_by("run", "category")
        .agg(pl.col("cell").min().alias("first"), pl.len().alias("n"))
        .sort("category", "first")
    )
    return [
        (category, list(zip(part["first"].to_list(), part["n"].to_list(), strict=True)))
        for (category,), part in runs.group_by("category", maintain_order=True)
    ]


def _swatch(colour: str, label: str) -> Patch:
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=label, linewidth=0)


def _cpus(cpus: list[int]) -> str:
    """``CPU 0`` or ``CPUs 0,3-5``."""
    from importers.host.topology import format_cpulist

    return f"CPU {cpus[0]}" if len(cpus) == 1 else f"CPUs {format_cpulist(frozenset(cpus))}"


def ramp_chart(data: ReportFrame) -> Chart | None:
    """The worst vCPU's guest-visible cycle count per scenario against the cycles it ran."""
    worst = _worst_vcpu(data)
    if worst is None:
        return None
    tid, label, scenario = worst
    guest = data.pieces.filter((pl.col("tid") == tid) & (pl.col("state") == "guest"))
    if guest.is_empty() or "cycles" not in guest.columns:
        return None
    span = data.end - data.start
    at = data.start + np.linspace(0, span, COLUMNS + 1).astype(np.int64)
    true = _sampled(guest.sort("end"), "cycles", at)
    obs = data.observations.filter(
        (pl.col("vcpu") == tid) & (pl.col("counter") == data.primary) & (pl.col("state") == "guest")
    )
    curves: dict[bytes, tuple[list[str], npt.NDArray[np.int64]]] = {}
    for name in data.scenarios:
        part = obs.filter(pl.col("scenario") == name)
        if part.is_empty():
            continue
        counted = _sampled(part.sort("end"), "delta", at)
        # scenarios that read exactly the same are one line with every name in its label,
        # so no series hides under another
        curves.setdefault(counted.tobytes(), ([], counted))[0].append(name)
    x = (at - data.start) / data.long.scale
    with drawing("ramp"):
        fig = new_figure(9.0, 4.2)
        ax = fig.add_subplot()
        ax.step(x, true / 1e6, where="post", color=GRID, linewidth=6, label="cycles the vCPU ran")
        for i, (names, counted) in enumerate(curves.values()):
            first = names[0]
            ax.step(
                x,
                counted / 1e6,
                where="post",
                color=SERIES[data.colour[first]],
                linewidth=1.6,
                linestyle=_DASHES[i % len(_DASHES)],
                label=" = ".join(names),
            )
        ax.set_xlim(0, span / data.long.scale)
        ax.set_xlabel(f"time since capture start ({data.long.unit})")
        ax.set_ylabel("cycles (millions)")
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title(label, fontsize=9, loc="left", color=INK)
        svg = to_svg(fig, "ramp")
    return Chart(
        "ramp",
        "Counted vs true cycles of the worst vCPU",
        f"{label}, the vCPU that stalls longest (under {scenario}): the cycle counter the guest "
        "reads in each scenario against the cycles it really ran in guest mode (the wide grey "
        "line). Flat stretches are stalls; scenarios that read the same share one line.",
        svg,
    )


def _worst_vcpu(data: ReportFrame) -> tuple[int, str, str] | None:
    """(tid, label, scenario) of the vCPU and scenario with the most stalled time (else the
    most guest time)."""
    summary = data.summary
    if summary.is_empty():
        return None
    key = "stalled_ns" if summary["stalled_ns"].max() else "guest_ns"
    row = summary.sort([key, "scenario", "vcpu"], descending=[True, False, False]).row(
        0, named=True
    )
    return row["vcpu"], _vcpu_label(row["vm"], row["vcpu_index"], row["vcpu"]), row["scenario"]


def _sampled(part: pl.DataFrame, column: str, at: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The running sum of ``column`` over rows ending at or before each instant of ``at``."""
    ends = part["end"].to_numpy()
    total = np.concatenate([[0], np.cumsum(part[column].fill_null(0).to_numpy())])
    return total[np.searchsorted(ends, at, side="right")].astype(np.int64)
