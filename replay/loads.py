"""Every ``vcpu_load`` the replay performs, and which of them cross host PMUs.

``kvm_arch_vcpu_load()`` runs when a vCPU thread is switched in while inside ``KVM_RUN``. The
engine loads a vCPU at the first known piece of each residency, and again after time whose
outcome is unknown (the reference path puts the vCPU before unknown time,
:mod:`replay.paths.reference`). A load is *cross-PMU* when the host PMU covering its CPU
(``kvm_pmu_probe_armpmu()``: the first registered PMU containing it; none for a CPU no
registered PMU covers) differs from that of the vCPU's previous load. That is a property of the
schedule, the same under every scenario: it is what the FIXED_COUNTERS_ONLY series pays for
with perf-event re-creations (spec §3.4), and what freezes a default-mode vPMU (§1.5).
"""

from __future__ import annotations

import polars as pl

from replay.pmu import HostPmus
from replay.row_order import run_starts

#: Columns of the loads table, in order, with their types.
LOAD_SCHEMA: dict[str, pl.DataType] = {
    "vm": pl.Utf8(),
    "tid": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "load": pl.UInt32(),
    "cpu": pl.Int16(),
    "start": pl.Int64(),
    "host_pmu": pl.Utf8(),
    "cross_pmu": pl.Boolean(),
    "entry": pl.Int64(),
}


def loads_per_guest_s(loads: pl.Expr, schedule_guest_ns: pl.Expr) -> pl.Expr:
    """Cross-PMU loads per second of the schedule's guest time (0 without guest time).

    The base is the capture's guest time, not a scenario's: a scenario that refuses entries
    runs less guest time but the same schedule, and the rate must not grow with it.
    """
    guest_s = schedule_guest_ns.cast(pl.Float64) / 1e9
    return pl.when(guest_s > 0).then(loads.cast(pl.Float64) / guest_s).otherwise(0.0)


def cpu_pmus(host: HostPmus) -> pl.DataFrame:
    """``cpu, host_pmu`` for every possible CPU: the PMU ``kvm_pmu_probe_armpmu()`` finds
    (null where no registered PMU covers the CPU)."""
    rows = []
    for cpu in sorted(host.possible_cpus):
        pmu = host.probe_armpmu(cpu)
        rows.append((cpu, None if pmu is None else pmu.name))
    return pl.DataFrame(rows, schema={"cpu": pl.Int16, "host_pmu": pl.Utf8}, orient="row")


def vcpu_loads(pieces: pl.DataFrame, host: HostPmus, attempts: pl.DataFrame) -> pl.DataFrame:
    """One row per ``vcpu_load`` (see module docstring), in thread and time order.

    ``pieces`` and ``attempts`` (the refused entries) are the engine's
    (:class:`replay.work.Work`), each in thread (ascending ``tid``) and time order. ``load``
    numbers a thread's loads from 0; ``entry`` is the time of the load's first entry attempt,
    the one that serves a pending ``KVM_REQ_RELOAD_PMU`` (``check_vcpu_requests()`` runs
    before the ``supported_cpus`` test): its first ``kvm_entry`` or refused entry, whichever
    came first (null when the vCPU attempted no entry there).
    """
    columns = ["vm", "tid", "vcpu_index", "cpu", "start", "state"]
    stream = pieces
    if not attempts.is_empty():  # an attempt goes before a piece that begins at its time
        merged = [p.select(*columns, "residency", "end", "window") for p in (pieces, attempts)]
        stream = pl.concat(merged).sort("tid", "start", "end", "window")
    tid, state = pl.col("tid"), pl.col("state")
    same_thread = tid == tid.shift(1)
    known = state != "unknown"
    starts = known & ~(
        same_thread
        & (state.shift(1) != "unknown")
        & (pl.col("residency") == pl.col("residency").shift(1))
    ).fill_null(False)
    # A thread's first known piece starts a load, so every known piece belongs to the load its
    # thread last started, and a running count of starts numbers the loads of all threads
    # (rows in thread order), without grouping by thread.
    marked = (
        stream.select(*columns, starts.alias("starts"), known.alias("known"))
        .filter("known")
        .with_columns((pl.col("starts").cum_sum().cast(pl.Int64) - 1).alias("_load"))
    )
    attempted = marked.filter(state.is_in(["guest", "attempt"]))
    entries = attempted.filter(run_starts(attempted, ["_load"]))  # each load's first attempt
    loads = marked.filter("starts")  # the row of load n is row n
    # all null, made in polars: a Python list of millions of Nones took a tenth of the loads
    entry = (
        pl.repeat(None, loads.height, dtype=pl.Int64, eager=True)
        .alias("entry")
        .scatter(entries.get_column("_load"), entries.get_column("start"))
    )
    thread_first = tid.ne_missing(tid.shift(1))
    numbered = pl.col("_load") - pl.when(thread_first).then(pl.col("_load")).forward_fill()
    host_pmu = pl.col("host_pmu")
    cross = pl.when(thread_first).then(False).otherwise(host_pmu.ne_missing(host_pmu.shift(1)))
    return (
        loads.with_columns(numbered.alias("load"), entry)
        .join(cpu_pmus(host), on="cpu", how="left", maintain_order="left")
        .with_columns(cross.alias("cross_pmu"))
        .select(pl.col(c).cast(t) for c, t in LOAD_SCHEMA.items())
    )
