"""The clock of an exported trace: the capture's own clock, declared to Perfetto.

Replay timestamps are the capture's, in ns. Perfetto converts every timestamp to its trace clock
(BOOTTIME) through clock snapshots. Captures on BOOTTIME, MONOTONIC, MONOTONIC_RAW or REALTIME
(ftrace ``boot``/``mono``/``mono_raw``, perf ``-k`` clocks) are declared as those builtin
clocks; any other clock (ftrace ``local``/``global``/``x86-tsc``, or one the capture does not
state, as ftrace text does not) is declared as a sequence-scoped clock of its own. Offsets
between the host's clocks are not in the captures, so the snapshot maps the capture clock 1:1
onto BOOTTIME at the first timestamp: trace processor timestamps equal the replay tables'
``start``/``end``.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import BuiltinClock, TracePacket

from replay.export.packets import SEQUENCE_ID, framed

#: Sequence-scoped clock ids are 64..127 (``ClockSnapshot.Clock`` in clock_snapshot.proto).
CAPTURE_CLOCK_ID = 64

_BUILTIN = {
    "boot": BuiltinClock.BUILTIN_CLOCK_BOOTTIME,
    "boottime": BuiltinClock.BUILTIN_CLOCK_BOOTTIME,
    "mono": BuiltinClock.BUILTIN_CLOCK_MONOTONIC,
    "monotonic": BuiltinClock.BUILTIN_CLOCK_MONOTONIC,
    "mono_raw": BuiltinClock.BUILTIN_CLOCK_MONOTONIC_RAW,
    "monotonic_raw": BuiltinClock.BUILTIN_CLOCK_MONOTONIC_RAW,
    "realtime": BuiltinClock.BUILTIN_CLOCK_REALTIME,
}


@dataclass(frozen=True)
class TraceClock:
    """Which Perfetto clock the replay's timestamps are on."""

    name: str
    clock_id: int


def trace_clock(capture_clock: str | None) -> TraceClock:
    """The Perfetto clock for a capture clock name (``None`` when the capture does not say)."""
    name = (capture_clock or "unknown").strip().lower()
    key = name.removeprefix("clock_")
    if key in _BUILTIN:
        return TraceClock(name, int(_BUILTIN[key]))
    return TraceClock(name, CAPTURE_CLOCK_ID)


def clock_packets(clock: TraceClock, t0: int) -> bytes:
    """The clock snapshot (capture clock = BOOTTIME at ``t0``) and the packet defaults that put
    every later timestamp of the sequence on the capture clock."""
    snapshot = TracePacket(trusted_packet_sequence_id=SEQUENCE_ID, timestamp=t0)
    snapshot.clock_snapshot.primary_trace_clock = BuiltinClock.BUILTIN_CLOCK_BOOTTIME
    ids = [BuiltinClock.BUILTIN_CLOCK_BOOTTIME]
    if clock.clock_id != BuiltinClock.BUILTIN_CLOCK_BOOTTIME:
        ids.insert(0, clock.clock_id)
    for clock_id in ids:
        snapshot.clock_snapshot.clocks.add(clock_id=clock_id, timestamp=t0)
    defaults = TracePacket(
        trusted_packet_sequence_id=SEQUENCE_ID,
        sequence_flags=TracePacket.SEQ_INCREMENTAL_STATE_CLEARED,
    )
    defaults.trace_packet_defaults.timestamp_clock_id = clock.clock_id
    return framed(snapshot) + framed(defaults)
