"""Who was running: the fields ``compact_sched`` leaves out, from the order of the switches.

A compact switch records only the task switched *in*; the task switched out is the one the
CPU's previous switch brought in, and the task that logged a compact waking is the one the
CPU's last switch before it brought in. Perfetto's trace processor infers them the same way
and drops what it cannot infer: the first compact switch of every CPU, and wakings before
it (``FtraceSchedEventTracker::PushSchedSwitchCompact`` and ``PushSchedWakingCompact`` in
src/trace_processor/importers/ftrace/ftrace_sched_event_tracker.cc).

Here every event is kept. Before a CPU's first switch the running task is the one that
logged the CPU's plain events (nothing switched it out yet), when there are such events;
across lost events (a loss marker on the CPU between the two) nothing is inferred. What stays
unknown is null (``prev_pid``, ``prev_comm``, ``prev_prio``) and the logging thread is -1
(:data:`UNKNOWN_PID`); the metadata counts them.

A CPU's rows are in ``seq`` order, the order its ring buffer holds them; everything here is
numpy over whole columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.typed import prev_state_text
from importers.perfetto.wire import I64
from importers.schema import conform

#: ``common_pid`` of a compact event whose logging thread cannot be known
UNKNOWN_PID = -1
#: bits of ``seq`` in a (cpu, seq) search key
_SEQ_BITS = 44


@dataclass
class CompactColumns:
    """All compact events of one kind, in ``seq`` order: ``ts, seq, cpu``, the kind's integer
    columns and ``comm`` (codes into the trace's compact task names)."""

    ts: I64
    seq: I64
    cpu: NDArray[np.int16]
    columns: dict[str, I64]
    comm: NDArray[np.int32]


@dataclass
class Markers:
    """Loss markers: ``cpu`` and ``seq`` of each, as a sorted search key."""

    keys: I64

    @classmethod
    def of(cls, cpu: NDArray[np.int16], seq: I64) -> Markers:
        return cls(np.sort(_key(cpu, seq)))

    def last_before(self, cpu: NDArray[np.int16], seq: I64) -> I64:
        """Per row: seq of its CPU's last marker at or before it, -1 when none."""
        if not self.keys.size:
            return np.full(seq.shape[0], -1, np.int64)
        at = np.searchsorted(self.keys, _key(cpu, seq), side="right") - 1
        found = self.keys[np.maximum(at, 0)]
        hit = (at >= 0) & (found >> _SEQ_BITS == cpu)
        return np.where(hit, found & ((1 << _SEQ_BITS) - 1), -1)


def _key(cpu: NDArray[np.int16], seq: I64) -> I64:
    return (cpu.astype(np.int64) << _SEQ_BITS) | seq


def running_before(
    last_plain: dict[int, tuple[int, int]], switches: CompactColumns, markers: Markers
) -> dict[int, int]:
    """CPU -> who ran on it before its first compact switch: the thread of its last plain
    event before that switch (``last_plain``: CPU -> ``(seq, pid)``), unless events were
    lost between the two."""
    cpus, first = np.unique(switches.cpu, return_index=True)
    barrier = dict(zip(cpus.tolist(), markers.last_before(cpus, switches.seq[first]).tolist(),
                       strict=True))  # fmt: skip
    return {cpu: pid for cpu, (seq, pid) in last_plain.items() if seq > barrier.get(cpu, -1)}


def switch_table(
    sw: CompactColumns,
    markers: Markers,
    before: dict[int, int],
    names: pa.Array,
    kernel: tuple[int, int] | None,
) -> tuple[pa.Table, int]:
    """``sched_switch`` rows of the compact switches, and how many have no known previous
    task."""
    n = sw.ts.shape[0]
    order = np.argsort(sw.cpu, kind="stable")  # each CPU's rows, in seq order
    same = sw.cpu[order[1:]] == sw.cpu[order[:-1]]
    prev = np.full(n, -1, np.int64)
    prev[order[1:][same]] = order[:-1][same]
    has_prev = prev >= 0
    last_loss = markers.last_before(sw.cpu, sw.seq)
    known = has_prev & (last_loss < sw.seq[np.maximum(prev, 0)])
    first = np.array([before.get(int(c), UNKNOWN_PID) for c in sw.cpu[~has_prev]], np.int64)
    prev_pid = np.full(n, UNKNOWN_PID, np.int64)
    prev_pid[known] = sw.columns["next_pid"][prev[known]]
    prev_pid[~has_prev] = first
    unknown = prev_pid == UNKNOWN_PID
    table = pa.table(
        {
            "ts": sw.ts,
            "seq": sw.seq,
            "cpu": sw.cpu,
            "common_pid": prev_pid.astype(np.int32),
            "prev_comm": _names(np.where(known, sw.comm[np.maximum(prev, 0)], -1), names),
            "prev_pid": pa.array(prev_pid.astype(np.int32), mask=unknown),
            "prev_prio": pa.array(
                sw.columns["next_prio"][np.maximum(prev, 0)].astype(np.int32), mask=~known
            ),
            "prev_state": sw.columns["prev_state"],
            "prev_state_str": prev_state_text(sw.columns["prev_state"], kernel),
            "next_comm": _names(sw.comm, names),
            "next_pid": sw.columns["next_pid"].astype(np.int32),
            "next_prio": sw.columns["next_prio"].astype(np.int32),
        }
    )
    return conform("sched_switch", table), int(unknown.sum())


def waking_table(
    wk: CompactColumns,
    sw: CompactColumns,
    markers: Markers,
    before: dict[int, int],
    names: pa.Array,
) -> tuple[pa.Table, int]:
    """``sched_waking`` rows of the compact wakings, and how many have no known logging
    thread."""
    logger = np.full(wk.ts.shape[0], UNKNOWN_PID, np.int64)
    last_loss = markers.last_before(wk.cpu, wk.seq)
    for cpu in np.flatnonzero(np.bincount(wk.cpu.astype(np.int64), minlength=1)).tolist():
        mine = np.flatnonzero(wk.cpu == cpu)
        theirs = np.flatnonzero(sw.cpu == cpu)
        by_time = theirs[np.argsort(sw.ts[theirs], kind="stable")]
        at = np.searchsorted(sw.ts[by_time], wk.ts[mine], side="right") - 1
        # before the CPU's first switch (and no loss since the start): who ran before it
        logger[mine[(at < 0) & (last_loss[mine] < 0)]] = before.get(cpu, UNKNOWN_PID)
        switched = np.flatnonzero(at >= 0)
        switch = by_time[at[switched]]
        intact = last_loss[mine[switched]] < sw.seq[switch]
        logger[mine[switched[intact]]] = sw.columns["next_pid"][switch[intact]]
    table = pa.table(
        {
            "ts": wk.ts,
            "seq": wk.seq,
            "cpu": wk.cpu,
            "common_pid": logger.astype(np.int32),
            "comm": _names(wk.comm, names),
            "pid": wk.columns["pid"].astype(np.int32),
            "prio": wk.columns["prio"].astype(np.int32),
            "target_cpu": wk.columns["target_cpu"].astype(np.int32),
        }
    )
    return conform("sched_waking", table), int(np.count_nonzero(logger == UNKNOWN_PID))


def _names(codes: NDArray[np.integer], names: pa.Array) -> pa.DictionaryArray:
    """Name codes as a dictionary column (code -1: null)."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    column: pa.DictionaryArray = pa.DictionaryArray.from_arrays(indices, names)
    return column
