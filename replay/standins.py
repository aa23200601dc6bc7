"""Stand-in vCPUs: which threads of a capture without VMs are worth replaying as if they were.

A phone trace or a workload trace names no vCPU thread, but its scheduler history is still a
what-if: "a vCPU scheduled like this thread would ...". The good stand-ins are threads that
move between clusters (what makes a default-mode counter stall) and run long (so the numbers
mean something). :func:`stand_ins` ranks them from ``sched_switch`` alone, and
:func:`stand_in_advice` turns them into the lines the "no vCPU threads found" error prints,
ending with a ``--vcpu`` line to copy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from importers.arrow_compute import cast, fill_null, take
from importers.capture import Capture
from importers.host.topology import Topology

#: How many stand-ins the advice lists.
SHOWN = 5
_IDLE = 0  # the per-CPU idle task (swapper/N) is never a candidate
_NOWHERE = -1  # a CPU no host PMU of the topology covers: a move to or from it is not counted


class StandIn(NamedTuple):
    """One candidate thread: its time on any CPU and how often it moved."""

    tid: int
    comm: str | None
    run_ns: int
    moves: int


def stand_ins(capture: Capture, topology: Topology | None, limit: int = SHOWN) -> list[StandIn]:
    """The best stand-in threads, best first.

    ``run_ns`` is the thread's time on any CPU (from each switch-in to the next switch on that
    CPU, or to the end of the capture); ``moves`` counts switch-ins on a CPU of another
    cluster (host PMU) than the thread's previous one — or of another CPU when there is no
    topology. Threads that moved come first, longest-running first; threads that never moved
    fill the remaining places. NumPy over the Arrow table, not polars: ``import`` prints this
    advice for every capture without VMs, and a few-MB capture should not pay polars' start-up.
    """
    switches = capture.table("sched_switch")
    if switches.num_rows == 0:
        return []
    ts, seq = switches["ts"].to_numpy(), switches["seq"].to_numpy()
    cpu = switches["cpu"].to_numpy()
    end = capture.metadata.last_ts
    run = _run_times(ts, seq, cpu, int(ts.max()) if end is None else end)
    pid = fill_null(switches["next_pid"], _IDLE).to_numpy()

    # per thread in time order: a switch-in somewhere else than the thread's previous one
    rows = np.flatnonzero(pid != _IDLE)
    if rows.size == 0:  # only the idle tasks ever ran
        return []
    rows = rows[np.lexsort((seq[rows], ts[rows], pid[rows]))]
    tid, where = pid[rows], _places(cpu[rows], topology)
    same_thread = np.append(False, tid[1:] == tid[:-1])
    moved = same_thread & np.append(False, where[1:] != where[:-1])
    if topology:
        moved &= np.append(False, (where[1:] != _NOWHERE) & (where[:-1] != _NOWHERE))

    first = np.flatnonzero(~same_thread)
    tids = tid[first]
    run_ns = np.add.reduceat(run[rows], first)
    moves = np.add.reduceat(moved.astype(np.int64), first)
    last_row = rows[np.append(first[1:], len(rows)) - 1]  # the name the thread had last
    best = np.lexsort((tids, -moves, -run_ns, moves == 0))[:limit]
    names = cast(take(switches["next_comm"], last_row[best]), pa.string()).to_pylist()
    return [
        StandIn(int(tids[i]), name, int(run_ns[i]), int(moves[i]))
        for i, name in zip(best, names, strict=True)
    ]


def _run_times(ts: np.ndarray, seq: np.ndarray, cpu: np.ndarray, end: int) -> np.ndarray:
    """Each switch-in's time on its CPU: to the next switch on that CPU, the last one to
    ``end``. Worked out in place, in the CPUs' time order: two row-sized int64 arrays beside
    the sort order, since the advice runs at the import's memory peak."""
    order = np.lexsort((seq, ts, cpu))
    on = cpu[order]
    last = np.flatnonzero(on[1:] != on[:-1])  # each CPU's last switch, but the final one's
    start = ts[order]
    stop = np.empty_like(start)
    stop[:-1], stop[-1] = start[1:], end
    stop[last] = end
    stop -= start  # the run times, CPU by CPU
    start[order] = stop  # and in the table's order, in start's memory
    return start


def _places(cpu: np.ndarray, topology: Topology | None) -> np.ndarray:
    """Where each CPU is for counting moves: its cluster (host PMU; :data:`_NOWHERE` for a
    CPU no PMU covers), or the CPU itself when there is no topology."""
    if not topology:
        return cpu
    covered = [c for p in topology.pmus for c in p.cpus]
    cluster = np.full(max(int(cpu.max()), *covered) + 1, _NOWHERE)
    for i, p in enumerate(topology.pmus):
        cluster[list(p.cpus)] = i
    place: np.ndarray = cluster[cpu]
    return place


def stand_in_advice(capture: Capture, topology: Topology | None, command: str = "") -> str:
    """Lines naming the best stand-ins and a ``--vcpu`` line to copy; empty when the capture
    has no thread to offer. With ``command`` (``pmu-replay compare cap/``), the line to copy is
    that whole command; without, the options to add to the command that failed."""
    best = stand_ins(capture, topology)
    if not best:
        return ""
    seconds = capture.metadata.ts_unit == "ns"
    moves = "cluster moves" if topology else "CPU moves"
    rows = [f"  {'tid':>8}  {'run ' + ('s' if seconds else 'units'):>12}  {moves:>13}  thread"]
    for tid, comm, run_ns, moved in best:
        run = f"{run_ns / 1e9:.3f}" if seconds else f"{run_ns}"
        rows.append(f"  {tid:>8}  {run:>12}  {moved:>13}  {comm or '?'}")
    copy = " ".join(f"--vcpu {s.tid}=standin:{i}" for i, s in enumerate(best))
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
