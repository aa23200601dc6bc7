"""One row per scenario and vCPU: what the guest would see, in numbers.

Built from the observations, findings and ticks of every replayed scenario: guest time run,
time stalled, risky zero-delta ticks (count and per guest-hour), zero deltas at the guest's
traced PMCCNTR reads, failed entries and the guest
time they carried, counted vs true cycles, unknown time, and the counters the guest could not
program (FIXED_COUNTERS_ONLY hides the event counters; no-pmu hides everything).
"""

from __future__ import annotations

import polars as pl

NS_PER_HOUR = 3_600 * 1_000_000_000
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "guest_ns": pl.Int64(),
    "stalled_ns": pl.Int64(),
    "stall_episodes": pl.UInt32(),
    "ticks_with_guest": pl.UInt32(),
    "risky_ticks": pl.UInt32(),
    "unknown_ticks": pl.UInt32(),
    "risky_ticks_per_guest_hour": pl.Float64(),
    "pmccntr_reads": pl.UInt32(),
    "zero_delta_reads": pl.UInt32(),
    "fail_entries": pl.UInt32(),
    "fail_entry_ns": pl.Int64(),
    "unknown_ns": pl.Int64(),
    "true_cycles": pl.Int64(),
    "counted_cycles": pl.Int64(),
    "lost_counters": pl.Utf8(),
}
_KEY = ["scenario", "vm", "vcpu", "vcpu_index"]


def summarize(
    observations: pl.DataFrame,
    findings: pl.DataFrame,
    ticks: pl.DataFrame | None,
    reads: pl.DataFrame,
    primary: int,
    lost: dict[str, dict[str, list[str]]],
) -> pl.DataFrame:
    """The summary table (``lost``: scenario -> vm -> counter names the guest lost)."""
    obs = observations.filter(pl.col("counter") == primary)
    length = pl.col("end") - pl.col("start")
    state = pl.col("state")
    base = obs.group_by(_KEY).agg(
        length.filter(state == "guest").sum().alias("guest_ns"),
        length.filter(state == "unknown").sum().alias("unknown_ns"),
        pl.col("true_events").filter(state != "unknown").sum().alias("true_cycles"),
        pl.col("delta").filter(state == "guest").sum().alias("counted_cycles"),
    )
    per_kind = findings.group_by(*_KEY, "kind").agg(
        pl.col("duration").sum().alias("ns"), pl.len().alias("n")
    )
    stalls = (
        findings.filter((pl.col("kind") == "stall") & (pl.col("counter") == primary))
        .group_by(_KEY)
        .agg(pl.col("duration").sum().alias("stalled_ns"), pl.len().alias("stall_episodes"))
    )
    fails = per_kind.filter(pl.col("kind") == "fail_entry").select(
        *_KEY, pl.col("n").alias("fail_entries"), pl.col("ns").alias("fail_entry_ns")
    )
    table = base.join(stalls, on=_KEY, how="left").join(fails, on=_KEY, how="left")
    if ticks is not None and not ticks.is_empty():
        risky = ticks.group_by(_KEY).agg(
            pl.len().alias("ticks_with_guest"),
            pl.col("risky").sum().alias("risky_ticks"),
            pl.col("unknown").sum().alias("unknown_ticks"),
        )
        table = table.join(risky, on=_KEY, how="left")
    if not reads.is_empty():
        table = table.join(
            reads.group_by(_KEY).agg(
                pl.len().alias("pmccntr_reads"),
                pl.col("zero_delta").sum().alias("zero_delta_reads"),
            ),
            on=_KEY,
            how="left",
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
        .sort(_KEY)
    )
