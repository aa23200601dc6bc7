"""``FtraceEventBundle``s: one read of one CPU's kernel ring buffer each.

A bundle holds that CPU's events of the read as plain ``FtraceEvent``s and, when the trace
config asks for it, its ``sched_switch``/``sched_waking`` events as ``compact_sched`` arrays;
it says whether the kernel lost events before it (``lost_events``), which clock its
timestamps are in (``ftrace_clock``, BOOTTIME when absent) and, from Perfetto v47, when the
CPU's previous bundle ended (``previous_bundle_end_timestamp``: 0 on a CPU's first bundle
when nothing came before it) [protos/perfetto/trace/ftrace/ftrace_event_bundle.proto;
src/traced/probes/ftrace/cpu_reader.cc ``Bundler::StartNewPacket``].

:func:`bundle_index` reads every bundle's own fields, :func:`count_events` counts their events
and :func:`groups` cuts them into groups decoded side by side
(:mod:`~importers.perfetto.decode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from importers.perfetto.bundle_kernels_np import event_counts
from importers.perfetto.clocks import Clocks
from importers.perfetto.packets import FTRACE_EVENTS, Packets
from importers.perfetto.sequences import Sequences
from importers.perfetto.wire import I64, INTACT, LEN, compiled_loops, last_of, scan_fields
from importers.skips import SkipLog

# FtraceEventBundle fields
CPU, EVENT, LOST_EVENTS, COMPACT_SCHED, FTRACE_CLOCK = 1, 2, 3, 4, 5
FTRACE_TIMESTAMP, BOOT_TIMESTAMP, ERROR, PREVIOUS_BUNDLE_END_TS = 6, 7, 8, 10
# FtraceClock: UNSPECIFIED (= boot) 0, UNKNOWN 1, GLOBAL 2, LOCAL 3, MONO_RAW 4
FTRACE_CLOCK_NAMES = {0: "boot", 1: "unknown", 2: "global", 3: "local", 4: "mono_raw"}
_MONOTONIC_RAW = 5  # BuiltinClock
#: Perfetto's trace processor refuses CPU numbers from here on (ftrace_tokenizer.cc)
MAX_CPU = 1024
#: plain events decoded per group (bounds the per-event arrays, ~40 bytes an event)
CHUNK_EVENTS = 1 << 21
#: clock key of bundles whose timestamps stay in their own clock
UNCONVERTIBLE = -1
#: a row's ``seq`` is its bundle's index shifted by this, plus its rank in the bundle: unique,
#: in trace order, and known without decoding earlier bundles
RANK_BITS = 24


@dataclass
class BundleIndex:
    """Every usable bundle, in trace order: its packet, CPU, span, ``compact_sched`` span
    (length -1 when absent), flags, event count and clock (``clock_key``: 0 when BOOTTIME,
    a clock of the trace's :class:`~importers.perfetto.clocks.Clocks`, or
    :data:`UNCONVERTIBLE`)."""

    packet: I64
    cpu: NDArray[np.int16]
    start: I64
    end: I64
    compact_at: I64
    compact_len: I64
    lost: NDArray[np.bool_]
    previous_end: I64
    has_previous_end: NDArray[np.bool_]
    events: I64
    ftrace_clock: I64
    clock_key: I64

    @property
    def count(self) -> int:
        return int(self.packet.shape[0])

    def subset(self, keep: NDArray[np.bool_] | I64) -> BundleIndex:
        """The bundles selected by ``keep`` (a mask or indices)."""
        return BundleIndex(*(getattr(self, f.name)[keep] for f in fields(self)))

    @property
    def converted(self) -> bool:
        """Whether the timestamps of some bundle are converted to BOOTTIME."""
        return not np.isin(self.clock_key, (0, UNCONVERTIBLE)).all()

    def to_boot(self, clocks: Clocks, bundle: I64, ts: I64) -> I64:
        """``ts`` of events of ``bundle`` (indices into this index) in BOOTTIME ns."""
        keys = self.clock_key[bundle]
        out = ts.copy()
        for key in np.unique(keys).tolist():
            if key in (0, UNCONVERTIBLE):
                continue
            mine = keys == key
            converted = clocks.to_boot(key, ts[mine])
            assert converted is not None  # keys are given only to clocks with pairs
            out[mine] = converted
        return out


def bundle_index(
    p: Packets, seqs: Sequences, clocks: Clocks, skips: SkipLog
) -> tuple[BundleIndex, int]:
    """The bundles of every ``ftrace_events`` packet, and how many ftrace errors they report.

    Bundles without a CPU (or with a CPU number no kernel has) and bundles on a sequence
    whose incremental state was lost are counted and left out. Sequence-scoped ftrace clock
    pairs are added to ``clocks``.
    """
    packet, start, end = p.payload(FTRACE_EVENTS)
    f = scan_fields(p.data, start, end, skip=EVENT)
    n = packet.shape[0]
    cpu, has_cpu, _ = last_of(f, n, CPU)
    lost, _, _ = last_of(f, n, LOST_EVENTS)
    compact_len, has_compact, compact_at = last_of(f, n, COMPACT_SCHED, LEN)
    ftrace_clock, _, _ = last_of(f, n, FTRACE_CLOCK)
    prev_end, has_prev_end, _ = last_of(f, n, PREVIOUS_BUNDLE_END_TS)
    ftrace_ts, has_ftrace_ts, _ = last_of(f, n, FTRACE_TIMESTAMP)
    boot_ts, has_boot_ts, _ = last_of(f, n, BOOT_TIMESTAMP)
    index = BundleIndex(
        packet=packet,
        cpu=np.minimum(cpu, MAX_CPU).astype(np.int16),
        start=start,
        end=end,
        compact_at=compact_at,
        compact_len=np.where(has_compact, compact_len.astype(np.int64), -1),
        lost=lost != 0,
        previous_end=prev_end.astype(np.int64),
        has_previous_end=has_prev_end,
        events=np.zeros(n, np.int64),
        ftrace_clock=ftrace_clock.astype(np.int64),
        clock_key=np.zeros(n, np.int64),
    )
    pairs = has_ftrace_ts & has_boot_ts
    _clock_keys(index, seqs, clocks, ftrace_ts.view(np.int64), boot_ts.view(np.int64), pairs)
    damaged = f.damage != INTACT
    _count(skips, "damaged ftrace bundle (its fields after the damage dropped)",
           [f"offset {int(a):#x}" for a in f.damage[damaged][:5]], damaged)  # fmt: skip
    unusable = seqs.unusable[packet]
    _count(skips, "ftrace bundle needing incremental state lost with earlier packets "
           "(dropped)", [p.where(k) for k in packet[unusable][:5]], unusable)  # fmt: skip
    no_cpu = ~has_cpu | (cpu >= MAX_CPU)
    _count(skips, "ftrace bundle without a valid cpu (dropped)",
           [p.where(k) for k in packet[no_cpu][:5]], no_cpu)  # fmt: skip
    errors = int(np.count_nonzero(f.number == ERROR))
    return index.subset(~unusable & ~no_cpu), errors


def _count(skips: SkipLog, reason: str, where: list[str], mask: NDArray[np.bool_]) -> None:
    if mask.any():
        skips.add(reason, where, count=int(mask.sum()))


def _clock_keys(
    b: BundleIndex,
    seqs: Sequences,
    clocks: Clocks,
    ftrace_ts: I64,
    boot_ts: I64,
    paired: NDArray[np.bool_],
) -> None:
    """Set each bundle's clock key (see :class:`BundleIndex`).

    The global and local ftrace clocks relate to BOOTTIME only through the bundles' own
    ``(ftrace_timestamp, boot_timestamp)`` pairs, one sequence-scoped clock per sequence as
    Perfetto's trace processor numbers them (from 64; ``FtraceTokenizer::
    HandleFtraceClockSnapshot``); each event then takes the pair before it, as
    :class:`~importers.perfetto.clocks.Clocks` does. MONO_RAW goes through the snapshots.
    """
    sequence = seqs.sequence[b.packet]
    mono_raw = b.ftrace_clock == 4
    b.clock_key[mono_raw] = _MONOTONIC_RAW if _MONOTONIC_RAW in clocks.pairs else UNCONVERTIBLE
    scoped = np.isin(b.ftrace_clock, [2, 3])
    for seq in np.unique(sequence[scoped]).tolist():
        mine = scoped & (sequence == seq)
        pairs = mine & paired
        if not pairs.any():
            b.clock_key[mine] = UNCONVERTIBLE
            continue
        clock = 64 + int(seq)
        clocks.add(clock, ftrace_ts[pairs], boot_ts[pairs])
        b.clock_key[mine] = clock
    b.clock_key[~np.isin(b.ftrace_clock, [0, 2, 3, 4])] = UNCONVERTIBLE


def count_events(p: Packets, b: BundleIndex, skips: SkipLog) -> BundleIndex:
    """Fill ``b.events``: the bundles' ``event`` fields, counted without decoding them.

    A bundle whose rows could not be ranked in :data:`RANK_BITS` (more events and compact
    bytes than any ring-buffer read holds) is left out and counted.
    """
    if compiled_loops(p.data):
        from importers.perfetto.bundle_kernels import ftrace_events

        damage = np.empty(b.count, np.int64)
        none = np.empty(0, np.int64)
        ftrace_events(p.data, b.start, b.end, none, none.astype(np.int8), False, b.events,
                      none.reshape(0, 0, 0), none.astype(np.int32).reshape(0, 0, 0),
                      none.astype(np.uint8).reshape(0, 0), np.empty(2, np.int64),
                      damage)  # fmt: skip
    else:
        b.events = event_counts(p.data, b.start, b.end)
    huge = b.events + np.maximum(b.compact_len, 0) >= 1 << RANK_BITS
    _count(skips, "ftrace bundle with more events than a ring-buffer read holds (dropped)",
           [p.where(int(k)) for k in b.packet[huge][:5]], huge)  # fmt: skip
    return b.subset(~huge)


def groups(b: BundleIndex) -> Iterator[I64]:
    """Indices of consecutive bundles holding about :data:`CHUNK_EVENTS` events each."""
    weight = b.events + np.maximum(b.compact_len, 0) // 4  # compact sched: ~4 bytes an event
    group = (np.cumsum(weight) - weight) // CHUNK_EVENTS
    bounds = np.flatnonzero(np.diff(group, prepend=-1, append=group[-1:] + 1))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        yield np.arange(lo, hi)
