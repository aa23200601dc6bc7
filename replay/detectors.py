"""Observations -> findings: stalled counters, failed guest entries, unknown time, risky ticks.

* ``stall``: a counter the guest enabled does not count while guest time passes (spec §8.6
  invariant 16). One finding per episode: consecutive stalled guest pieces of one vCPU and
  counter on one CPU, not interrupted by a counting piece; ``duration`` is the guest time
  stalled, ``start``/``end`` span the episode.
* ``fail_entry``: a guest entry the real schedule would attempt on a CPU outside the VM's
  ``supported_cpus`` (``set-pmu``, and ``fixed-counters-only`` under v4 on CPUs without a
  PMU): ``KVM_EXIT_FAIL_ENTRY``. ``duration`` is the guest time that CPU carried in the real
  schedule, the capacity pinning would take away: zero for an entry the capture's own kernel
  refused already (:mod:`replay.refused`), which ran no guest time.
* ``unknown``: time whose outcome cannot be known (lost events, truncated input,
  contradictory records, and the stretch after an entry the capture's kernel refused but the
  scenario's would have let in).
* ``recreation``: a perf event the kernel re-created at a guest entry after a load
  (:mod:`replay.work`); an instant (``start`` = ``end``, no duration) on the event's counter,
  on the PMU it now lives on.
* Risky ticks (:func:`tick_table`): guest ticks in which the vCPU ran guest code but the
  counter the guest reads did not move, the zero delta a Windows guest divides by (spec §6.1).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from replay.refused import UNSEEN_GUEST
from replay.row_order import (
    blocks_in_order,
    in_blocks,
    rows_where,
    run_starts,
    run_totals,
    sort_rows,
)
from replay.work import VCPU_KEY

#: Statuses of an enabled counter that does not count (spec §1.5 mechanisms).
STALL_REASONS = (
    "foreign_cpu",
    "no_pmu_cpu",
    "filtered",
    "no_event",
    "counter_contention",
    "unmappable_event",
)

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "counter": pl.Int8(),
    "kind": pl.Utf8(),
    "start": pl.Int64(),
    "end": pl.Int64(),
    "duration": pl.Int64(),
    "cpu": pl.Int16(),
    "host_pmu": pl.Utf8(),
    "cause": pl.Utf8(),
}
_KEY = [*VCPU_KEY, "counter"]


def findings(observations: pl.DataFrame, primary: int, recreations: pl.DataFrame) -> pl.DataFrame:
    """Stall episodes of every counter, fail-entries and unknown time of each vCPU, and the
    perf-event re-creations (:data:`replay.work.RECREATION_SCHEMA` rows).

    ``primary`` is the counter whose rows stand for the vCPU in per-vCPU findings (each
    fail-entry or unknown interval appears once, not once per counter).
    """
    obs, vcpu_counters = in_blocks(observations, _KEY, ["start", "end"])
    stalled = (pl.col("state") == "guest") & pl.col("reason").is_in(STALL_REASONS)
    primary_row = pl.col("counter") == primary
    marks = obs.select(
        stalled.alias("stalled"),
        (primary_row & (pl.col("state") == "fail_entry")).alias("fail_entry"),
        (primary_row & (pl.col("state") == "unknown")).alias("unknown"),
        # an episode ends where the stalled state or the CPU changes (a null CPU: each row
        # its own episode)
        ((stalled != stalled.shift(1)) | (pl.col("cpu") != pl.col("cpu").shift(1)))
        .fill_null(True)
        .alias("changed"),
    )
    stalled_rows, new_episode = marks.get_column("stalled"), marks.get_column("changed")
    new_episode = (new_episode | vcpu_counters).filter(stalled_rows)
    # the columns a finding is made of chosen before the rows: a filter copies every column
    # it is given, and an observation has 17
    rows = obs.select(*_KEY, "window", "start", "end", "cpu", "host_pmu", "reason")
    stalls = _episodes(rows.filter(stalled_rows), new_episode).with_columns(
        pl.lit("stall").alias("kind")
    )
    # per vCPU (the primary counter's rows stand for it): one finding per entry window, found
    # by the number of its vCPU's block of rows (from 1), not by the key's strings, which took
    # seconds to hash on millions of refused entries
    refused_rows = marks.get_column("fail_entry")
    block = vcpu_counters.cum_sum().alias("_block").filter(refused_rows)
    refused, windows = in_blocks(
        rows.filter(refused_rows).with_columns(block), ["_block", "window"], []
    )
    fails = _episodes(refused, windows).with_columns(pl.lit("fail_entry").alias("kind"))
    unknown = rows.filter(marks.get_column("unknown")).with_columns(
        (pl.col("end") - pl.col("start")).alias("duration"), pl.lit("unknown").alias("kind")
    )
    parts = [
        frame.with_columns(pl.lit(None, pl.Int8).alias("counter")) if kind != "stall" else frame
        for kind, frame in (("stall", stalls), ("fail_entry", fails), ("unknown", unknown))
    ]
    parts.append(
        recreations.select(
            pl.exclude("ts"),
            pl.col("ts").alias("start"),
            pl.col("ts").alias("end"),
            pl.lit(0).alias("duration"),
            pl.lit("recreation").alias("kind"),
            pl.lit(None, pl.Utf8).alias("reason"),
        )
    )
    # the reason instead of the cause (written last)
    columns = {c: t for c, t in FINDING_SCHEMA.items() if c != "cause"} | {"reason": pl.Utf8()}
    found = pl.concat([p.select(pl.col(c).cast(t) for c, t in columns.items()) for p in parts])
    # sorted before the causes are written: the sort moves every column, and they are long
    found = sort_rows(
        found, ["scenario", "vm", "vcpu", "kind", "counter", "start"], nulls_last=True
    )
    return found.with_columns(_causes(found)).select(*FINDING_SCHEMA)


def _episodes(rows: pl.DataFrame, starts: pl.Series) -> pl.DataFrame:
    """One finding per run of ``rows`` (``starts`` marks each run's first row): its span,
    the guest time in it, and where it began."""
    return run_totals(
        rows,
        starts,
        first=[*_KEY, "start", "cpu", "host_pmu", "reason"],
        last=["end"],
        sums={"duration": pl.col("end") - pl.col("start")},
    )


def _causes(found: pl.DataFrame) -> pl.Series:
    """:func:`_cause` of every finding, written once per distinct kind, reason, CPU and host
    PMU, the string shared by the findings that have them: the millions of failed entries of
    a long capture have one cause per CPU, and written row by row they held 0.3 GB (compare
    of 9.8 M sched events)."""
    keys = found.select("kind", "reason", "cpu", "host_pmu")
    distinct = keys.unique().with_columns(_cause().alias("cause"))
    # a left join on distinct keys: one row per finding, in the findings' order
    shared = keys.join(
        distinct, on=keys.columns, how="left", maintain_order="left", nulls_equal=True
    )
    return shared.get_column("cause")


def _cause() -> pl.Expr:
    """Readable cause of a finding from its kind, status reason, CPU and host PMU."""
    cpu, pmu = pl.col("cpu").cast(pl.Utf8).fill_null("?"), pl.col("host_pmu").fill_null("?")
    return (
        pl.when(pl.col("kind") == "recreation")
        .then(
            pl.format(
                "perf event re-created on {} at the guest entry on CPU {} (KVM_REQ_RELOAD_PMU "
                "after a vcpu_load)",
                "host_pmu",
                "cpu",
            )
        )
        .when(pl.col("reason") == "foreign_cpu")
        .then(
            pl.format(
                "the counter's backing event lives on {}, which cannot count on CPU {}", pmu, cpu
            )
        )
        .when(pl.col("reason") == "no_pmu_cpu")
        .then(pl.format("no registered host PMU covers CPU {}", cpu))
        .when(pl.col("reason") == "filtered")
        .then(pl.lit("the VM's event filter denies the event"))
        .when(pl.col("reason") == "no_event")
        .then(pl.lit("no backing perf event exists"))
        .when(pl.col("reason") == "counter_contention")
        .then(
            pl.format(
                "host counter contention: the pinned backing event on {} got no hardware counter "
                "on CPU {} (the host's own pinned events, or this vCPU's earlier ones, hold "
                "them) and is in the error state",
                pmu,
                cpu,
            )
        )
        .when(pl.col("reason") == "unmappable_event")
        .then(pl.lit("the host PMU cannot count this event (kvm_map_pmu_event() refuses it)"))
        .when(pl.col("reason") == "fail_entry")
        .then(pl.format("CPU {} is outside the VM's supported CPUs (KVM_EXIT_FAIL_ENTRY)", cpu))
        .when(pl.col("reason") == UNSEEN_GUEST)
        .then(
            pl.lit(
                "an entry the capture's kernel refused (KVM_EXIT_FAIL_ENTRY) would run under "
                "this scenario: how long the guest ran, up to the vCPU's next entry attempt, "
                "the capture cannot show"
            )
        )
        .otherwise(pl.col("reason"))
    )


def tick_table(observations: pl.DataFrame, counter: int, t0: int, tick_ns: int) -> pl.DataFrame:
    """Per vCPU and guest tick: guest time, counter delta, and whether it is risky.

    A tick is ``risky`` when the vCPU ran guest code in it, with the counter enabled, but the
    counter did not move, and
    ``unknown`` instead when lost or contradictory records overlap it (the guest may have run
    more, counted or not).
    """
    key = VCPU_KEY
    used = [*key, "tick", "start", "end", "state", "counting", "reason", "delta"]
    counter_rows = observations.get_column("counter") == counter
    obs, vcpu_starts = in_blocks(
        rows_where(observations.select(used), counter_rows), key, ["start", "end"]
    )
    # Only a counter the guest can read and has enabled is read at the tick: without a vPMU,
    # or with the counter disabled, nothing is divided by its delta.
    in_use = pl.col("counting") | pl.col("reason").is_in(STALL_REASONS)
    marks = obs.select(
        ((pl.col("state") == "guest") & in_use).alias("guest"),
        (pl.col("state") == "unknown").alias("unknown"),
    )
    vcpu = vcpu_starts.cum_sum().alias("_vcpu")  # each row's vCPU block, numbered from 1

    def rows(mask: pl.Series) -> pl.DataFrame:
        # the block number added after the filter: a column computed over the whole table
        # has one chunk, and filtering a table of misaligned chunks took seconds
        return obs.filter(mask).with_columns(vcpu.filter(mask))

    guest, _ = in_blocks(rows(marks.get_column("guest")), ["_vcpu"], ["tick"])
    ran = run_totals(
        guest,
        run_starts(guest, ["_vcpu", "tick"]),
        first=[*key, "_vcpu", "tick"],
        last=[],
        sums={"guest_ns": pl.col("end") - pl.col("start"), "delta": pl.col("delta")},
    )
    unknown = rows(marks.get_column("unknown")).select(
        "_vcpu",
        ((pl.col("start") - t0) // tick_ns).alias("first"),
        ((pl.col("end") - 1 - t0) // tick_ns).alias("last"),
    )
    zero = (pl.col("guest_ns") > 0) & (pl.col("delta") == 0)
    doubtful = pl.Series(_in_unknown(ran, unknown))
    ticks = ran.with_columns(
        (zero & ~doubtful).alias("risky"),
        (zero & doubtful).alias("unknown"),
    )
    # each vCPU's ticks are in order already: put the vCPUs in key order
    return blocks_in_order(ticks, "_vcpu", obs.filter(vcpu_starts).select(key)).drop("_vcpu")


#: Ticks packed under the vCPU block number: the tick offset keeps ticks before ``t0``
#: (negative) below the next block, 2**39 ticks of 15.6 ms are 270 years.
_TICK_BITS = 40
_TICK_OFFSET = 1 << (_TICK_BITS - 1)


def _packed(block: pl.Series, tick: pl.Series) -> NDArray[np.int64]:
    return (block.to_numpy().astype(np.int64) << _TICK_BITS) + (
        tick.to_numpy().astype(np.int64) + _TICK_OFFSET
    )


def _in_unknown(ran: pl.DataFrame, unknown: pl.DataFrame) -> NDArray[np.bool_]:
    """For each ``(_vcpu, tick)`` row of *ran*: does an unknown piece of that vCPU overlap it.

    A binary search over the pieces' first ticks, then a running maximum of their last
    ticks: a long capture with a long unknown stretch has millions of ticks under it, and
    listing them all cost more than the replay.
    """
    if unknown.is_empty():
        return np.zeros(ran.height, dtype=np.bool_)
    first = _packed(unknown.get_column("_vcpu"), unknown.get_column("first"))
    order = np.argsort(first, kind="stable")
    first = first[order]
    # a block's last ticks are all below the next block's first ticks, so a running maximum
    # over every block never lets one vCPU's unknown time cover another's ticks
    reach = np.maximum.accumulate(
        _packed(unknown.get_column("_vcpu"), unknown.get_column("last"))[order]
    )
    asked = _packed(ran.get_column("_vcpu"), ran.get_column("tick"))
    latest = np.searchsorted(first, asked, side="right") - 1
    covered = latest >= 0
    return covered & (reach[np.maximum(latest, 0)] >= asked)
