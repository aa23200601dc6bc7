"""One row per scenario and vCPU: what the guest would see, in numbers.

Built from per-vCPU totals of the observations (:func:`vcpu_totals`), the findings and the
ticks of every replayed scenario: guest time run, time stalled and the distribution of stall
episodes (count, median, p99 and longest, :func:`episode_distribution`), risky zero-delta
ticks (count and per guest-hour), zero deltas at the guest's traced PMCCNTR reads, failed
entries and the guest time they carried, counted vs true cycles, unknown time and its share of
the vCPU's time on CPUs, the counters the guest programs but could not have
(FIXED_COUNTERS_ONLY hides the event counters; no-pmu hides everything), and the costs of
:mod:`replay.costs` (cross-PMU loads, perf-event re-creations, pinning). Every vCPU that ran has
a row under every scenario, also one that never entered the guest.
"""

from __future__ import annotations

import polars as pl

from replay.costs import COST_SCHEMA
from replay.row_order import in_blocks, rows_where, run_totals
from replay.work import VCPU_KEY

NS_PER_HOUR = 3_600 * 1_000_000_000
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "guest_ns": pl.Int64(),
    "stalled_ns": pl.Int64(),
    "stall_episodes": pl.UInt32(),
    "stall_median_ns": pl.Int64(),
    "stall_p99_ns": pl.Int64(),
    "stall_max_ns": pl.Int64(),
    "ticks_with_guest": pl.UInt32(),
    "risky_ticks": pl.UInt32(),
    "unknown_ticks": pl.UInt32(),
    "risky_ticks_per_guest_hour": pl.Float64(),
    "pmccntr_reads": pl.UInt32(),
    "zero_delta_reads": pl.UInt32(),
    "fail_entries": pl.UInt32(),
    "fail_entry_ns": pl.Int64(),
    "unknown_ns": pl.Int64(),
    "on_cpu_ns": pl.Int64(),
    "unknown_share": pl.Float64(),
    "true_cycles": pl.Int64(),
    "counted_cycles": pl.Int64(),
    "lost_counters": pl.Utf8(),
    # the costs, in their table's order (on_cpu_ns is above, beside the unknown share)
    **{c: t for c, t in COST_SCHEMA.items() if c not in (*VCPU_KEY, "on_cpu_ns")},
}


def episode_distribution(duration: pl.Expr) -> list[pl.Expr]:
    """``stall_median_ns``, ``stall_p99_ns``, ``stall_max_ns`` of stall episode lengths: each
    an observed length, the quantile's element rounded up (polars' ``higher``: of n sorted
    lengths, index ceil(q * (n - 1)))."""
    return [
        duration.quantile(0.5, "higher").alias("stall_median_ns"),
        duration.quantile(0.99, "higher").alias("stall_p99_ns"),
        duration.max().alias("stall_max_ns"),
    ]


def vcpu_totals(observations: pl.DataFrame, primary: int) -> pl.DataFrame:
    """Per scenario and vCPU, from the ``primary`` counter's observation rows: ``guest_ns``,
    ``unknown_ns``, ``true_cycles`` (outside unknown time) and ``counted_cycles`` (in guest
    time); :func:`summarize` takes them. Rows in no particular order."""
    # the columns chosen before the rows: a filter copies every column it is given
    used = [*VCPU_KEY, "start", "end", "state", "true_events", "delta"]
    primary_rows = observations.get_column("counter") == primary
    obs, vcpus = in_blocks(rows_where(observations.select(used), primary_rows), VCPU_KEY, [])
    length = pl.col("end") - pl.col("start")
    state = pl.col("state")
    # per vCPU: its rows are one block (a run) of the observations' order
    return run_totals(
        obs,
        vcpus,
        first=VCPU_KEY,
        last=[],
        sums={
            "guest_ns": pl.when(state == "guest").then(length),
            "unknown_ns": pl.when(state == "unknown").then(length),
            "true_cycles": pl.when(state != "unknown").then(pl.col("true_events")),
            "counted_cycles": pl.when(state == "guest").then(pl.col("delta")),
        },
    )


def summarize(
    totals: pl.DataFrame,
    findings: pl.DataFrame,
    ticks: pl.DataFrame | None,
    reads: pl.DataFrame,
    primary: int,
    lost: dict[str, dict[str, list[str]]],
    costs: pl.DataFrame,
) -> pl.DataFrame:
    """The summary table (``totals``: :func:`vcpu_totals` of every scenario; ``lost``:
    scenario -> vm -> counter names the guest lost; ``costs``: :func:`replay.costs.vcpu_costs`,
    one row per scenario and vCPU)."""
    episode = pl.col("duration")
    stalls = (
        findings.filter((pl.col("kind") == "stall") & (pl.col("counter") == primary))
        .group_by(VCPU_KEY)
        .agg(
            episode.sum().alias("stalled_ns"),
            pl.len().alias("stall_episodes"),
            *episode_distribution(episode),
        )
    )
    # per vCPU, its fail-entry findings are a run of rows (findings are in vCPU key and kind
    # order): summed as runs, not hashed on string keys (4.8 M failed entries on a compare of
    # 9.8 M sched events held 0.4 GB of hashed keys at its peak)
    fail_rows = findings.get_column("kind") == "fail_entry"
    failed, vcpus = in_blocks(
        rows_where(findings.select(*VCPU_KEY, "duration"), fail_rows), VCPU_KEY, []
    )
    fails = run_totals(
        failed,
        vcpus,
        first=VCPU_KEY,
        last=[],
        sums={"fail_entries": pl.repeat(1, pl.len()), "fail_entry_ns": pl.col("duration")},
    )
    table = (
        costs.join(totals, on=VCPU_KEY, how="left", nulls_equal=True)
        .join(stalls, on=VCPU_KEY, how="left", nulls_equal=True)
        .join(fails, on=VCPU_KEY, how="left", nulls_equal=True)
    )
    if ticks is not None and not ticks.is_empty():
        # a vCPU's ticks are a run of rows too (6.9 M ticks at 9.8 M sched events)
        ticked, vcpus = in_blocks(ticks.select(*VCPU_KEY, "risky", "unknown"), VCPU_KEY, [])
        risky = run_totals(
            ticked,
            vcpus,
            first=VCPU_KEY,
            last=[],
            sums={
                "ticks_with_guest": pl.repeat(1, pl.len()),
                "risky_ticks": pl.col("risky").cast(pl.Int64),
                "unknown_ticks": pl.col("unknown").cast(pl.Int64),
            },
        )
        table = table.join(risky, on=VCPU_KEY, how="left", nulls_equal=True)
    if not reads.is_empty():
        table = table.join(
            reads.group_by(VCPU_KEY).agg(
                pl.len().alias("pmccntr_reads"),
                pl.col("zero_delta").sum().alias("zero_delta_reads"),
            ),
            on=VCPU_KEY,
            how="left",
            nulls_equal=True,
        )
    lost_names = pl.DataFrame(
        [
            {"scenario": sc, "vm": vm, "lost_counters": ",".join(names)}
            for sc, vms in lost.items()
            for vm, names in vms.items()
        ],
        schema={"scenario": pl.Utf8, "vm": pl.Utf8, "lost_counters": pl.Utf8},
    )
    table = table.join(lost_names, on=["scenario", "vm"], how="left")
    if "risky_ticks" in table.columns:
        hours = pl.col("guest_ns") / NS_PER_HOUR
        rate = pl.when(hours > 0).then(pl.col("risky_ticks").fill_null(0) / hours).otherwise(0.0)
        table = table.with_columns(rate.alias("risky_ticks_per_guest_hour"))
    on_cpu = pl.col("on_cpu_ns")
    table = table.with_columns(
        pl.when(on_cpu > 0)
        .then(pl.col("unknown_ns").fill_null(0) / on_cpu)
        .otherwise(0.0)
        .alias("unknown_share"),
    )
    counts = [
        "guest_ns",
        "stalled_ns",
        "stall_episodes",
        "fail_entries",
        "fail_entry_ns",
        "unknown_ns",
        "true_cycles",
        "counted_cycles",
    ]
    if "risky_ticks" in table.columns:  # tick columns stay null for guests that never check
        counts += ["ticks_with_guest", "risky_ticks", "unknown_ticks"]
    if "pmccntr_reads" in table.columns:  # read columns stay null without traced reads
        counts += ["pmccntr_reads", "zero_delta_reads"]
    missing = [
        pl.lit(None, t).alias(c) for c, t in SUMMARY_SCHEMA.items() if c not in table.columns
    ]
    return (
        table.with_columns(missing)
        .select(pl.col(c).cast(t) for c, t in SUMMARY_SCHEMA.items())
        .with_columns(pl.col(counts).fill_null(0), pl.col("lost_counters").fill_null(""))
        .sort(VCPU_KEY)
    )
