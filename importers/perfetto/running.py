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

:class:`Running` takes the groups of bundles in trace order and carries each CPU's last
switch from one group to the next; a CPU's rows are in ``seq`` order, the order its ring
buffer holds them, and everything within a group is numpy over whole columns.
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
    """All compact events of one kind of a group, in ``seq`` order: ``ts, seq, cpu``, the
    kind's integer columns and ``comm`` (codes into the trace's compact task names)."""

    ts: I64
    seq: I64
    cpu: NDArray[np.int16]
    columns: dict[str, I64]
    comm: NDArray[np.int32]


def _key(cpu: NDArray[np.integer], seq: I64) -> I64:
    return (cpu.astype(np.int64) << _SEQ_BITS) | seq


class Running:
    """The compact events' tables, group after group (see module docstring).

    Parameters
    ----------
    kernel
        The kernel's (major, minor) release, for ``prev_state_str``.
    """

    def __init__(self, kernel: tuple[int, int] | None) -> None:
        self.kernel = kernel
        #: cpu -> (seq, next_pid, comm code, next_prio) of its last switch so far
        self.last: dict[int, tuple[int, int, int, int]] = {}
        #: cpu -> (seq, pid) of its last plain event before its first switch
        self.before: dict[int, tuple[int, int]] = {}
        self.markers = np.zeros(0, np.int64)  # sorted (cpu, seq) keys of every loss so far
        self.no_prev = 0
        self.no_logger = 0

    def add(
        self,
        switches: CompactColumns,
        wakings: CompactColumns,
        last_plain: dict[int, tuple[int, int]],
        markers: tuple[NDArray[np.int16], I64],
        names: pa.Array,
    ) -> tuple[pa.Table, pa.Table]:
        """``sched_switch`` and ``sched_waking`` rows of the next group's compact events.

        ``last_plain``: per CPU, the group's last plain event before its first switch there;
        ``markers``: the group's loss markers (cpu, seq); ``names``: the task names so far.
        """
        self.markers = np.sort(np.concatenate([self.markers, _key(*markers)]))
        for cpu, last in last_plain.items():
            if cpu not in self.last:
                self.before[cpu] = last
        # what the group's wakings see of a switch from an earlier group: its seq and task
        earlier = dict(self.last)
        switch = self._switches(switches, names)
        waking = self._wakings(wakings, switches, earlier, names)
        return switch, waking

    def _last_loss(self, cpu: NDArray[np.int16], seq: I64) -> I64:
        """Per row: seq of its CPU's last loss marker at or before it, -1 when none."""
        if not self.markers.size:
            return np.full(seq.shape[0], -1, np.int64)
        at = np.searchsorted(self.markers, _key(cpu, seq), side="right") - 1
        found = self.markers[np.maximum(at, 0)]
        hit = (at >= 0) & (found >> _SEQ_BITS == cpu)
        return np.where(hit, found & ((1 << _SEQ_BITS) - 1), -1)

    def _before(self, cpu: int, seq: int) -> int:
        """Who ran on ``cpu`` before its first switch (at ``seq``), unless events were lost
        since its last plain event."""
        if cpu not in self.before:
            return UNKNOWN_PID
        plain_seq, pid = self.before[cpu]
        loss = self._last_loss(np.array([cpu], np.int16), np.array([seq]))[0]
        return pid if plain_seq > loss else UNKNOWN_PID

    def _switches(self, sw: CompactColumns, names: pa.Array) -> pa.Table:
        n = sw.ts.shape[0]
        nxt, prio, comm = sw.columns["next_pid"], sw.columns["next_prio"], sw.comm
        order = np.argsort(sw.cpu, kind="stable")  # each CPU's rows, in seq order
        same = sw.cpu[order[1:]] == sw.cpu[order[:-1]]
        prev = np.full(n, -1, np.int64)
        prev[order[1:][same]] = order[:-1][same]
        prev_seq = np.where(prev >= 0, sw.seq[np.maximum(prev, 0)], -1)
        prev_pid = np.where(prev >= 0, nxt[np.maximum(prev, 0)], UNKNOWN_PID)
        prev_comm = np.where(prev >= 0, comm[np.maximum(prev, 0)], -1)
        prev_prio = np.where(prev >= 0, prio[np.maximum(prev, 0)], -1)
        # each CPU's first row here: the CPU's last switch of an earlier group, or whoever
        # ran before its first switch
        for row in order[np.concatenate([[True], ~same])].tolist() if n else []:
            cpu = int(sw.cpu[row])
            if cpu in self.last:
                prev_seq[row], prev_pid[row], prev_comm[row], prev_prio[row] = self.last[cpu]
            else:
                prev_pid[row] = self._before(cpu, int(sw.seq[row]))
        # nothing is inferred across lost events
        linked = prev_seq >= 0
        known = linked & (self._last_loss(sw.cpu, sw.seq) < prev_seq)
        prev_pid[linked & ~known] = UNKNOWN_PID
        for row in order[np.concatenate([~same, [True]])].tolist() if n else []:
            self.last[int(sw.cpu[row])] = (int(sw.seq[row]), int(nxt[row]), int(comm[row]),
                                           int(prio[row]))  # fmt: skip
        unknown = prev_pid == UNKNOWN_PID
        self.no_prev += int(unknown.sum())
        table = pa.table(
            {
                "ts": sw.ts,
                "seq": sw.seq,
                "cpu": sw.cpu,
                "common_pid": prev_pid.astype(np.int32),
                "prev_comm": _names(np.where(known, prev_comm, -1), names),
                "prev_pid": pa.array(prev_pid.astype(np.int32), mask=unknown),
                "prev_prio": pa.array(prev_prio.astype(np.int32), mask=~known),
                "prev_state": sw.columns["prev_state"],
                "prev_state_str": prev_state_text(sw.columns["prev_state"], self.kernel),
                "next_comm": _names(comm, names),
                "next_pid": nxt.astype(np.int32),
                "next_prio": prio.astype(np.int32),
            }
        )
        return conform("sched_switch", table)

    def _wakings(
        self,
        wk: CompactColumns,
        sw: CompactColumns,
        earlier: dict[int, tuple[int, int, int, int]],
        names: pa.Array,
    ) -> pa.Table:
        logger = np.full(wk.ts.shape[0], UNKNOWN_PID, np.int64)
        last_loss = self._last_loss(wk.cpu, wk.seq)
        for cpu in np.flatnonzero(np.bincount(wk.cpu.astype(np.int64), minlength=1)).tolist():
            mine = np.flatnonzero(wk.cpu == cpu)
            theirs = np.flatnonzero(sw.cpu == cpu)
            by_time = theirs[np.argsort(sw.ts[theirs], kind="stable")]
            at = np.searchsorted(sw.ts[by_time], wk.ts[mine], side="right") - 1
            switched = np.flatnonzero(at >= 0)
            switch = by_time[at[switched]]
            intact = last_loss[mine[switched]] < sw.seq[switch]
            logger[mine[switched[intact]]] = sw.columns["next_pid"][switch[intact]]
            # before the group's first switch there: an earlier group's last switch, else
            # whoever ran before the CPU's first switch
            first = mine[at < 0]
            if cpu in earlier:
                seq, pid, _, _ = earlier[cpu]
                logger[first[last_loss[first] < seq]] = pid
            elif cpu in self.before:
                plain_seq, pid = self.before[cpu]
                logger[first[last_loss[first] < plain_seq]] = pid
        self.no_logger += int(np.count_nonzero(logger == UNKNOWN_PID))
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
        return conform("sched_waking", table)


def _names(codes: NDArray[np.integer], names: pa.Array) -> pa.DictionaryArray:
    """Name codes as a dictionary column (code -1: null)."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    column: pa.DictionaryArray = pa.DictionaryArray.from_arrays(indices, names)
    return column
