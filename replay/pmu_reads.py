"""The guest's own PMU register accesses, when the capture shows them, and what they saw.

KVM traps every guest PMU sysreg access (``MDCR_EL2.TPM``); on arm64 the trap logs
``kvm_sys_access`` with the register's encoding (``formats.md`` §2.6). Where a capture has
these events, they replace guesswork about the guest: each ``PMCCNTR_EL0`` read is an instant at
which the guest really looked at its cycle counter. :func:`read_checks` gives, for every read,
the guest time and the counted cycles since the vCPU's previous read under each scenario: a read
after guest time with a zero delta is exactly the division by zero a Windows guest risks.
Absence of accesses proves nothing (partitioned-PMU patches stop the trapping), so it is only
reported, never used to conclude the PMU is idle.
"""

from __future__ import annotations

import polars as pl

from importers.capture import Capture
from replay.pmu import CYCLE_IDX
from replay.work import VCPU_KEY

READ_CHECK_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "ts": pl.Int64(),
    "since": pl.Int64(),
    "guest_ns": pl.Int64(),
    "delta": pl.Int64(),
    "zero_delta": pl.Boolean(),
    "unknown": pl.Boolean(),
}


def pmu_accesses(capture: Capture, tids: list[int]) -> pl.DataFrame:
    """``tid, ts, seq, sysreg, is_write`` of every PMU register access by the vCPU threads."""
    rows = capture.frame("kvm_sys_access")
    return (
        rows.filter(pl.col("common_pid").is_in(tids) & pl.col("sysreg").is_not_null())
        .select(
            pl.col("common_pid").cast(pl.Int32).alias("tid"),
            "ts",
            "seq",
            pl.col("sysreg").cast(pl.Utf8),
            "is_write",
        )
        .sort("tid", "ts", "seq")
    )


def describe_accesses(accesses: pl.DataFrame) -> str | None:
    """A one-line note of what the guests were seen doing with their PMU, if anything."""
    if accesses.is_empty():
        return None
    counts = (
        accesses.group_by("sysreg", "is_write")
        .len()
        .sort("len", "sysreg", descending=[True, False])
        .head(4)
    )
    parts = [
        f"{r['sysreg']} {'writes' if r['is_write'] else 'reads'} {r['len']}"
        for r in counts.iter_rows(named=True)
    ]
    return (
        f"{accesses.height} guest PMU register accesses traced ({', '.join(parts)}): "
        "PMCCNTR_EL0 reads are checked for zero deltas"
    )


def read_checks(observations: pl.DataFrame, accesses: pl.DataFrame) -> pl.DataFrame:
    """Per scenario and PMCCNTR_EL0 read: guest time and cycles counted since the last read."""
    reads = accesses.filter((pl.col("sysreg") == "PMCCNTR_EL0") & ~pl.col("is_write"))
    obs = observations.filter(pl.col("counter") == CYCLE_IDX)
    if reads.is_empty() or obs.is_empty():
        return pl.DataFrame(schema=READ_CHECK_SCHEMA)
    key = VCPU_KEY
    # the thread alone names the vCPU: its index is null when discovery could not tell it, and
    # an as-of join never matches null keys
    thread = ["scenario", "vm", "vcpu"]
    guest = pl.col("state") == "guest"
    running = (
        obs.sort(*key, "end")
        .with_columns(
            pl.when(guest)
            .then(pl.col("end") - pl.col("start"))
            .otherwise(0)
            .cum_sum()
            .over(key)
            .alias("cum_ns"),
            pl.col("delta").fill_null(0).cum_sum().over(key).alias("cum_delta"),
            (pl.col("state") == "unknown").cum_sum().over(key).alias("cum_unknown"),
        )
        .select(*thread, pl.col("end").alias("ts"), "cum_ns", "cum_delta", "cum_unknown")
    )
    vcpus = obs.select(key).unique()
    points = (
        reads.select(pl.col("tid").alias("vcpu"), "ts")
        .join(vcpus, on="vcpu")
        .sort("ts")
        .join_asof(
            running.sort("ts"), on="ts", by=thread, strategy="backward", check_sortedness=False
        )
        .with_columns(pl.col("cum_ns", "cum_delta", "cum_unknown").fill_null(0))
        .sort(*key, "ts")
    )
    since = pl.col("ts").shift(1).over(key)

    def diff(column: str) -> pl.Expr:
        return pl.col(column) - pl.col(column).shift(1).over(key)

    checks = points.with_columns(
        since.alias("since"),
        diff("cum_ns").alias("guest_ns"),
        diff("cum_delta").alias("delta"),
        (diff("cum_unknown") > 0).alias("unknown"),
    ).filter(pl.col("since").is_not_null())
    zero = (pl.col("guest_ns") > 0) & (pl.col("delta") == 0) & ~pl.col("unknown")
    return checks.with_columns(zero.alias("zero_delta")).select(
        pl.col(c).cast(t) for c, t in READ_CHECK_SCHEMA.items()
    )
