"""The plain ``FtraceEvent``s of a group of bundles, in two sets: events of the kinds with
a typed table (:mod:`~importers.perfetto.typed`), and the others (the ``events`` table,
:mod:`~importers.perfetto.generic`). One compiled pass decodes every event one level down
and routes it (:func:`~importers.perfetto.bundle_kernels.ftrace_events`), so neither set is
gathered from the other afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from importers.perfetto import bundle_kernels_np
from importers.perfetto.bundle_layout import BODY, BODY_LEN, BUNDLE, KIND, PID, SEQ, TS
from importers.perfetto.bundles import BundleIndex
from importers.perfetto.packets import Packets
from importers.perfetto.typed import TABLE_OF
from importers.perfetto.wire import I64, INTACT, compiled_loops
from importers.skips import SkipLog

#: oneof numbers below this (all of ftrace_event.proto's) are routed, counted and coded by
#: dense tables
DENSE_KINDS = 1 << 16
#: set of each kind (see :mod:`~importers.perfetto.bundle_kernels`): 0 typed, 1 other
_ROUTE = np.ones(DENSE_KINDS, np.int8)
_ROUTE[list(TABLE_OF)] = 0


@dataclass
class PlainEvents:
    """One set of plain events of a group of bundles, in ``seq`` order; ``local`` is each
    event's bundle within the group."""

    local: NDArray[np.int32]
    ts: I64
    seq: I64
    pid: NDArray[np.int32]
    flags: NDArray[np.uint8]
    kind: NDArray[np.int32]
    body: I64
    body_len: NDArray[np.int32]


def plain_events(
    p: Packets, b: BundleIndex, chosen: I64, base: I64, skips: SkipLog
) -> tuple[PlainEvents, PlainEvents]:
    """The events of bundles ``chosen``, numbered from ``base`` (per chosen bundle) on in
    ``seq``: those of typed kinds, and the others. Events past damage inside an event are
    dropped and counted."""
    n = int(b.events[chosen].sum())
    per_bundle = np.empty(chosen.shape[0], np.int64)
    damage = np.empty(chosen.shape[0], np.int64)
    # each set may hold every event; the pages a set does not fill are never touched
    wide = np.empty((2, 3, n), np.int64)
    narrow = np.empty((2, 4, n), np.int32)
    flags = np.empty((2, n), np.uint8)
    placed = np.empty(2, np.int64)
    spans = (p.data, b.start[chosen], b.end[chosen], base, _ROUTE)
    if compiled_loops(p.data):
        from importers.perfetto.bundle_kernels import ftrace_events

        ftrace_events(*spans, True, per_bundle, wide, narrow, flags, placed, damage)
    else:
        bundle_kernels_np.ftrace_events(*spans, per_bundle, wide, narrow, flags, placed, damage)
    lost = int((b.events[chosen] - per_bundle).sum())
    if lost:
        where = [f"offset {int(a):#x}" for a in damage[damage != INTACT][:5]]
        skips.add("damaged FtraceEvent (it and the rest of its bundle dropped)", where, lost)
    typed, other = (
        PlainEvents(
            local=narrow[s, BUNDLE, :m],
            ts=wide[s, TS, :m],
            seq=wide[s, SEQ, :m],
            pid=narrow[s, PID, :m],
            flags=flags[s, :m],
            kind=narrow[s, KIND, :m],
            body=wide[s, BODY, :m],
            body_len=narrow[s, BODY_LEN, :m],
        )
        for s, m in enumerate(placed.tolist())
    )
    return typed, other


def present_kinds(kind: NDArray[np.int32]) -> list[int]:
    """The distinct values of ``kind`` (oneof numbers of plain events), ascending: a count
    over a dense table, where sorting millions of events would cost more."""
    counts = np.bincount(np.minimum(kind, DENSE_KINDS), minlength=DENSE_KINDS + 1)
    present = np.flatnonzero(counts[:DENSE_KINDS]).tolist()
    if counts[DENSE_KINDS]:  # numbers no FtraceEvent has yet
        present += np.unique(kind[kind >= DENSE_KINDS]).tolist()
    return present
