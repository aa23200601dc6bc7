"""Clock snapshots: every timestamp of the capture in boot-time nanoseconds.

Perfetto timestamps each packet in some clock (``timestamp_clock_id``, a sequence's
``trace_packet_defaults``, else BOOTTIME) and ftrace data in the ftrace clock, BOOTTIME unless
a bundle says otherwise (``ftrace_clock``). ``clock_snapshot`` packets read several clocks at
one instant [protos/perfetto/trace/clock_snapshot.proto, common/builtin_clock.proto]; bundles
in another ftrace clock carry their own pair (``ftrace_timestamp``, ``boot_timestamp``)
[protos/perfetto/trace/ftrace/ftrace_event_bundle.proto].

A time ``t`` in clock X becomes ``t - x + boot`` with the snapshot whose X reading is the last
one at or before ``t`` (the first snapshot when ``t`` precedes them all): the rule of
Perfetto's trace processor (``ClockSynchronizer``: ``upper_bound`` minus one), so the two
agree to the nanosecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from importers.perfetto.packets import CLOCK_SNAPSHOT, Packets
from importers.perfetto.wire import I64, LEN, pick_fields, scan_fields

#: BuiltinClock BOOTTIME [protos/perfetto/common/builtin_clock.proto]; the others are
#: REALTIME 1, REALTIME_COARSE 2, MONOTONIC 3, MONOTONIC_COARSE 4, MONOTONIC_RAW 5
BOOTTIME = 6
#: ClockSnapshot.clocks; Clock {clock_id = 1, timestamp = 2}
_CLOCKS, _CLOCK_ID, _CLOCK_TS = 1, 1, 2


@dataclass
class Clocks:
    """Snapshot pairs per clock: that clock's readings (ascending) and BOOTTIME's."""

    pairs: dict[int, tuple[I64, I64]] = field(default_factory=dict)

    def to_boot(self, clock: int, ts: I64) -> I64 | None:
        """``ts`` (clock ``clock``; 0 is the trace default, BOOTTIME) in BOOTTIME ns, or None
        when no snapshot relates ``clock`` to BOOTTIME."""
        if clock in (0, BOOTTIME):
            return ts
        if clock not in self.pairs:
            return None
        readings, boot = self.pairs[clock]
        k = np.clip(np.searchsorted(readings, ts, side="right") - 1, 0, None)
        converted: I64 = ts - readings[k] + boot[k]
        return converted

    def add(self, clock: int, readings: I64, boot: I64) -> None:
        """Snapshot pairs of ``clock`` (merged with those already known)."""
        if clock in self.pairs:
            readings = np.concatenate([self.pairs[clock][0], readings])
            boot = np.concatenate([self.pairs[clock][1], boot])
        order = np.argsort(readings, kind="stable")
        self.pairs[clock] = (readings[order], boot[order])


def clock_snapshots(p: Packets) -> Clocks:
    """The builtin clocks' pairs with BOOTTIME from every ``clock_snapshot`` packet."""
    clocks = Clocks()
    packet, start, end = p.payload(CLOCK_SNAPSHOT)
    if not packet.size:
        return clocks
    f = scan_fields(p.data, start, end)
    rows = np.flatnonzero(f.of(_CLOCKS, LEN))
    s = f.at[rows]
    value, length, _ = pick_fields(
        p.data, s, s + f.value[rows].astype(np.int64), [_CLOCK_ID, _CLOCK_TS]
    )
    known = (length[:, 0] >= 0) & (length[:, 1] >= 0)
    snapshot = f.msg[rows][known]
    clock, ts = value[known, 0].astype(np.int64), value[known, 1].astype(np.int64)
    # each snapshot's BOOTTIME reading (its last, if it has several)
    boot = np.full(int(snapshot.max(initial=-1)) + 1, -1, np.int64)
    is_boot = np.flatnonzero(clock == BOOTTIME)
    np.maximum.at(boot, snapshot[is_boot], is_boot)
    paired = np.flatnonzero((clock != BOOTTIME) & (boot[snapshot] >= 0))
    for key in np.unique(clock[paired]).tolist():
        mine = paired[clock[paired] == key]
        clocks.add(key, ts[mine], ts[boot[snapshot[mine]]])
    return clocks
