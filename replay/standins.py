"""Stand-in vCPUs: which threads of a capture without VMs are worth replaying as if they were.

A phone trace or a workload trace names no vCPU thread, but its scheduler history is still a
what-if: "a vCPU scheduled like this thread would ...". The good stand-ins are threads that
move between clusters (what makes a default-mode counter stall) and run long (so the numbers
mean something). :func:`stand_ins` ranks them from ``sched_switch`` alone, and
:func:`stand_in_advice` turns them into the lines the "no vCPU threads found" error prints,
ending with a ``--vcpu`` line to copy.
"""

from __future__ import annotations

import polars as pl

from importers.capture import Capture
from importers.host.topology import Topology

#: How many stand-ins the advice lists.
SHOWN = 5
_IDLE = 0  # the per-CPU idle task (swapper/N) is never a candidate


def stand_ins(capture: Capture, topology: Topology | None, limit: int = SHOWN) -> pl.DataFrame:
    """The best stand-in threads: ``tid, comm, run_ns, moves``, best first.

    ``run_ns`` is the thread's time on any CPU (from each switch-in to the next switch on that
    CPU, or to the end of the capture); ``moves`` counts switch-ins on a CPU of another
    cluster (host PMU) than the thread's previous one — or of another CPU when there is no
    topology. Threads that moved come first, longest-running first; threads that never moved
    fill the remaining places.
    """
    switches = capture.frame("sched_switch")
    if switches.is_empty():
        return pl.DataFrame(
            schema={"tid": pl.Int32, "comm": pl.Utf8, "run_ns": pl.Int64, "moves": pl.UInt32}
        )
    end = capture.metadata.last_ts
    cluster = {cpu: i for i, p in enumerate(topology.pmus) for cpu in p.cpus} if topology else {}
    where = pl.col("cpu").cast(pl.Int64)
    place = where.replace_strict(cluster, default=None) if cluster else where
    runs = (
        switches.select("ts", "seq", pl.col("cpu").cast(pl.Int16), "next_pid", "next_comm")
        .sort("cpu", "ts", "seq")
        .with_columns(
            (pl.col("ts").shift(-1).over("cpu").fill_null(end) - pl.col("ts")).alias("run_ns")
        )
        .filter(pl.col("next_pid") != _IDLE)
        .with_columns(place.alias("place"))
        .sort("next_pid", "ts", "seq")
        .with_columns(
            (pl.col("place") != pl.col("place").shift(1).over("next_pid"))
            .fill_null(False)
            .alias("moved")
        )
    )
    return (
        runs.group_by(pl.col("next_pid").cast(pl.Int32).alias("tid"))
        .agg(
            pl.col("next_comm").cast(pl.Utf8).last().alias("comm"),
            pl.col("run_ns").sum().cast(pl.Int64),
            pl.col("moved").sum().cast(pl.UInt32).alias("moves"),
        )
        .sort(
            [pl.col("moves") > 0, "run_ns", "moves", "tid"],
            descending=[True, True, True, False],
        )
        .head(limit)
    )


def stand_in_advice(capture: Capture, topology: Topology | None, command: str = "") -> str:
    """Lines naming the best stand-ins and a ``--vcpu`` line to copy; empty when the capture
    has no thread to offer. With ``command`` (``pmu-replay compare cap/``), the line to copy is
    that whole command; without, the options to add to the command that failed."""
    best = stand_ins(capture, topology)
    if best.is_empty():
        return ""
    seconds = capture.metadata.ts_unit == "ns"
    moves = "cluster moves" if topology else "CPU moves"
    rows = [f"  {'tid':>8}  {'run ' + ('s' if seconds else 'units'):>12}  {moves:>13}  thread"]
    for tid, comm, run_ns, moved in best.rows():
        run = f"{run_ns / 1e9:.3f}" if seconds else f"{run_ns}"
        rows.append(f"  {tid:>8}  {run:>12}  {moved:>13}  {comm or '?'}")
    copy = " ".join(f"--vcpu {tid}=standin:{i}" for i, tid in enumerate(best["tid"]))
    return (
        f"the best stand-ins here (threads that moved between "
        f"{'clusters' if topology else 'CPUs'} first, longest-running first):\n"
        + "\n".join(rows)
        + (
            f"\nto replay them as the vCPUs of one VM, run:\n  {command} {copy}"
            if command
            else f"\nto replay them as the vCPUs of one VM, add:\n  {copy}"
        )
    )
