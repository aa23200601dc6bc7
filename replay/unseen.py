"""Time the capture cannot show: what a gap in one CPU's records hides from every vCPU.

A CPU's records have a gap where its ring buffer lost events (``lost_events`` rows of the
kernel, trace-cmd or perf), or where the file ends before that CPU's data does (a truncated
trace.dat: ``kind`` ``truncated``, from the CPU's last decoded record to the end of the
capture). :func:`replay.timeline.build_timeline` marks the pieces a vCPU thread spent on that
CPU during the gap as unknown; :func:`off_cpu_unknown` adds the rest of what the gap hides:
a thread that the records show on no CPU at the time may well have run on that one, switched
in and out unseen, so its off-CPU time inside any gap is unknown too. Time a thread visibly
spent on another CPU is known: that CPU's own records would show it leave.
"""

from __future__ import annotations

import numpy as np
import polars as pl

LOST_CAUSE = "events lost on this CPU"
TRUNCATED_CAUSE = "CPU data cut off by the end of the file (truncated capture)"
#: ``lost_events.kind`` of a CPU whose data the file cuts off (the trace.dat importer).
TRUNCATED = "truncated"


def gap_cause(kind: pl.Expr) -> pl.Expr:
    """The unknown-time cause of a gap of ``lost_events`` kind ``kind``."""
    return pl.when(kind == TRUNCATED).then(pl.lit(TRUNCATED_CAUSE)).otherwise(pl.lit(LOST_CAUSE))


def off_cpu_unknown(
    pieces: pl.DataFrame, gaps: pl.DataFrame, tids: list[int], t0: int, t1: int
) -> pl.DataFrame:
    """Unknown pieces for the time each thread of ``tids`` is on no CPU inside a gap.

    ``pieces`` (``tid, residency, cpu, start, end, state, cause``) are the threads' pieces, in
    thread and time order and not overlapping; ``gaps`` (``cpu, gap_start, gap_end, cause``)
    may overlap: where they do, the new piece names the gap that began first (then the lowest
    CPU). The result has the pieces' columns, no residency, and the gap's CPU and cause.
    """
    union = _union(gaps)
    spans = pieces.select("tid", "start", "end")
    before = pl.col("end").shift(1).over("tid").fill_null(t0)
    last = spans.group_by("tid").agg(pl.col("end").max().alias("start"))
    idle = pl.DataFrame({"tid": tids}, schema={"tid": pl.Int32}).join(spans, on="tid", how="anti")
    start, end = pl.lit(t0, pl.Int64).alias("start"), pl.lit(t1, pl.Int64).alias("end")
    off = pl.concat(
        [
            spans.select("tid", before.alias("start"), pl.col("start").alias("end")),
            last.with_columns(end),
            idle.select("tid", start, end),
        ]
    ).filter(pl.col("end") > pl.col("start"))
    a, b = off["start"].to_numpy(), off["end"].to_numpy()
    u_start, u_end = union["gap_start"].to_numpy(), union["gap_end"].to_numpy()
    # the union's intervals are disjoint and sorted: those overlapping [a, b) are a range
    first = np.searchsorted(u_end, a, side="right")
    count = np.maximum(np.searchsorted(u_start, b, side="left") - first, 0)
    row = np.repeat(np.arange(off.height), count)
    gap = np.repeat(first - np.cumsum(count) + count, count) + np.arange(row.size)
    return pl.DataFrame(
        {
            "tid": off["tid"].to_numpy()[row],
            "residency": pl.Series([None] * row.size, dtype=pl.UInt32),
            "cpu": union["cpu"].to_numpy()[gap],
            "start": np.maximum(a[row], u_start[gap]),
            "end": np.minimum(b[row], u_end[gap]),
            "state": pl.Series(["unknown"] * row.size, dtype=pl.Utf8),
            "cause": union["cause"].to_numpy()[gap],
        },
        schema=pieces.schema,
    )


def _union(gaps: pl.DataFrame) -> pl.DataFrame:
    """Disjoint, sorted intervals covering every gap, each with its first gap's CPU and cause."""
    ordered = gaps.filter(pl.col("gap_start") < pl.col("gap_end")).sort("gap_start", "cpu")
    reach = pl.col("gap_end").cum_max().shift(1)
    group = (pl.col("gap_start") >= reach).fill_null(True).cum_sum()
    return (
        ordered.with_columns(group.alias("group"))
        .group_by("group", maintain_order=True)
        .agg(
            pl.col("gap_start").first(),
            pl.col("gap_end").max(),
            pl.col("cpu").first(),
            pl.col("cause").first(),
        )
    )
