"""Packet sequences and their incremental state: defaults, interned strings, data loss.

Each writer's packets form a sequence (``trusted_packet_sequence_id``). Its *incremental
state* — ``trace_packet_defaults`` and ``interned_data`` — lives from a packet flagged
``SEQ_INCREMENTAL_STATE_CLEARED`` (or the deprecated ``incremental_state_cleared``) to the
next; a packet flagged ``previous_packet_dropped`` says packets before it were lost, and the
state stays invalid until the next clear. Packets flagged ``SEQ_NEEDS_INCREMENTAL_STATE`` on
an invalid sequence are skipped, as the proto asks readers to
[protos/perfetto/trace/trace_packet.proto ``SequenceFlags``, ``previous_packet_dropped``].

Everything is computed over all packets at once: the *generation* of a packet (how many
clears its sequence has seen) keys its defaults and interned data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.packets import (
    FIRST_PACKET_ON_SEQUENCE,
    INCREMENTAL_STATE_CLEARED,
    INTERNED_DATA,
    PREVIOUS_PACKET_DROPPED,
    SEQUENCE_FLAGS,
    SEQUENCE_ID,
    TIMESTAMP_CLOCK_ID,
    TRACE_PACKET_DEFAULTS,
    Packets,
)
from importers.perfetto.runs import counts_so_far, grouped, in_trace_order, last_marked, run_starts
from importers.perfetto.wire import I64, LEN, U64, pick_fields, scan_fields, text_column

SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
#: InternedData.kernel_symbols [protos/perfetto/trace/interned_data/interned_data.proto];
#: InternedString {iid = 1, str = 2}
KERNEL_SYMBOLS = 26


@dataclass
class Sequences:
    """Per packet: its sequence, its incremental state (a number per sequence and
    generation), the clock its timestamp is in (0: the trace's default), whether packets were
    lost just before it on its sequence (not counting the loss every sequence's first packet
    reports), and whether it needs incremental state its sequence no longer has."""

    sequence: NDArray[np.int64]
    state: NDArray[np.int64]
    clock: NDArray[np.int64]
    loss_before: NDArray[np.bool_]
    unusable: NDArray[np.bool_]


def sequences(p: Packets) -> Sequences:
    """The sequence state of every packet of ``p`` (see module docstring)."""
    seq_id, _, _ = p.last(SEQUENCE_ID)
    flags, _, _ = p.last(SEQUENCE_FLAGS)
    legacy, _, _ = p.last(INCREMENTAL_STATE_CLEARED)
    dropped, _, _ = p.last(PREVIOUS_PACKET_DROPPED)
    first_flag, _, _ = p.last(FIRST_PACKET_ON_SEQUENCE)
    own_clock, has_clock, _ = p.last(TIMESTAMP_CLOCK_ID)
    default_clock, has_default = _default_clocks(p)
    sequence = seq_id.astype(np.int64)
    cleared = ((flags & SEQ_INCREMENTAL_STATE_CLEARED) != 0) | (legacy != 0)
    order, opens = grouped(sequence)
    generation = counts_so_far(cleared[order], opens)
    # a generation is a run too: it only grows along its sequence
    states = run_starts(sequence[order], generation)
    last_clear = last_marked(cleared[order], opens)
    last_drop = last_marked(dropped[order] != 0, opens)
    # a drop reported on the clearing packet itself happened before the new state
    valid = (last_clear >= 0) & (last_drop <= last_clear)
    set_default = last_marked(has_default[order], states)
    defaults = np.where(set_default >= 0, default_clock[order][set_default], 0)
    needs = (flags & SEQ_NEEDS_INCREMENTAL_STATE) != 0
    return Sequences(
        sequence=sequence,
        state=in_trace_order(order, np.cumsum(states) - 1),
        clock=np.where(has_clock, own_clock.astype(np.int64), in_trace_order(order, defaults)),
        loss_before=(dropped != 0) & ~in_trace_order(order, opens) & (first_flag == 0),
        unusable=needs & ~in_trace_order(order, valid),
    )


def _default_clocks(p: Packets) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """``trace_packet_defaults.timestamp_clock_id`` per packet, and which packets set it."""
    out = np.zeros(p.count, np.int64)
    has = np.zeros(p.count, np.bool_)
    packet, start, end = p.payload(TRACE_PACKET_DEFAULTS)
    if packet.size:
        value, length, _ = pick_fields(p.data, start, end, [TIMESTAMP_CLOCK_ID])
        found = length[:, 0] >= 0
        out[packet[found]] = value[found, 0].astype(np.int64)
        has[packet[found]] = True
    return out, has


@dataclass
class KernelSymbols:
    """The trace's interned kernel symbols, the last one interned under each (incremental
    state, iid): ``iids`` lists the iids interned (ascending, once each) and ``key`` numbers
    each symbol's pair as ``state * len(iids) + place of its iid in iids`` (ascending)."""

    iids: U64
    key: I64
    symbol: pa.Array

    def find(self, state: I64, iid: U64) -> tuple[I64, pa.Array]:
        """Which of the pairs (``state``, ``iid``) name an interned symbol, and the symbols
        they name (null where the interned entry has no ``str``)."""
        place = np.minimum(np.searchsorted(self.iids, iid), self.iids.shape[0] - 1)
        key = state * self.iids.shape[0] + place
        at = np.minimum(np.searchsorted(self.key, key), self.key.shape[0] - 1)
        rows = np.flatnonzero((self.iids[place] == iid) & (self.key[at] == key))
        return rows, self.symbol.take(pa.array(at[rows]))


def kernel_symbols(p: Packets, seqs: Sequences) -> KernelSymbols | None:
    """Every interned kernel symbol, None when the trace interned none."""
    packet, start, end = p.payload(INTERNED_DATA)
    if not packet.size:
        return None
    f = scan_fields(p.data, start, end)
    rows = np.flatnonzero(f.of(KERNEL_SYMBOLS, LEN))
    if not rows.size:
        return None
    s = f.at[rows]
    value, length, _ = pick_fields(p.data, s, s + f.value[rows].astype(np.int64), [1, 2])
    iids, place = np.unique(value[:, 0], return_inverse=True)
    key = seqs.state[packet[f.msg[rows]]] * iids.shape[0] + place
    # a key interned again names the symbol of its latest entry
    order = np.argsort(key, kind="stable")
    latest = order[run_starts(key[order][::-1])[::-1]]
    symbol = text_column(p.data, value[:, 1].astype(np.int64), length[:, 1]).dictionary_decode()
    return KernelSymbols(iids, key[latest], symbol.take(pa.array(latest)))
