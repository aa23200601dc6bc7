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
import polars as pl
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
from importers.perfetto.wire import LEN, pick_fields, scan_fields, text_column

SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
#: InternedData.kernel_symbols [protos/perfetto/trace/interned_data/interned_data.proto];
#: InternedString {iid = 1, str = 2}
KERNEL_SYMBOLS = 26


@dataclass
class Sequences:
    """Per packet: its sequence, generation, the clock its timestamp is in (0: the trace's
    default), whether packets were lost just before it on its sequence (not counting the loss
    every sequence's first packet reports), and whether it needs incremental state its
    sequence no longer has."""

    sequence: NDArray[np.int64]
    generation: NDArray[np.int64]
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
    frame = pl.DataFrame(
        {
            "packet": np.arange(p.count),
            "sequence": seq_id.astype(np.int64),
            "cleared": ((flags & SEQ_INCREMENTAL_STATE_CLEARED) != 0) | (legacy != 0),
            "dropped": dropped != 0,
            "first": first_flag != 0,
            "defaults": default_clock,
            "has_defaults": has_default,
        }
    )
    idx = pl.col("packet")
    state = frame.with_columns(
        pl.col("cleared").cum_sum().over("sequence").alias("generation"),
        pl.when("cleared").then(idx).forward_fill().over("sequence").alias("last_clear"),
        pl.when("dropped").then(idx).forward_fill().over("sequence").alias("last_drop"),
        (idx == idx.first().over("sequence")).alias("opens"),
    ).with_columns(
        # a drop reported on the clearing packet itself happened before the new state
        (
            pl.col("last_clear").is_not_null()
            & (pl.col("last_drop").is_null() | (pl.col("last_drop") <= pl.col("last_clear")))
        ).alias("valid"),
        pl.when("has_defaults")
        .then("defaults")
        .forward_fill()
        .over("sequence", "generation")
        .fill_null(0),
    )
    needs = (flags & SEQ_NEEDS_INCREMENTAL_STATE) != 0
    valid = state["valid"].to_numpy()
    return Sequences(
        sequence=state["sequence"].to_numpy(),
        generation=state["generation"].cast(pl.Int64).to_numpy(),
        clock=np.where(has_clock, own_clock.astype(np.int64), state["defaults"].to_numpy()),
        loss_before=(state["dropped"] & ~state["opens"] & ~state["first"]).to_numpy(),
        unusable=needs & ~valid,
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


def kernel_symbols(p: Packets, seqs: Sequences) -> pl.DataFrame:
    """``sequence, generation, iid, symbol`` of every interned kernel symbol."""
    packet, start, end = p.payload(INTERNED_DATA)
    empty = pl.DataFrame(
        schema={"sequence": pl.Int64, "generation": pl.Int64, "iid": pl.UInt64, "symbol": pl.Utf8}
    )
    if not packet.size:
        return empty
    f = scan_fields(p.data, start, end)
    rows = np.flatnonzero(f.of(KERNEL_SYMBOLS, LEN))
    if not rows.size:
        return empty
    s = f.at[rows]
    value, length, _ = pick_fields(p.data, s, s + f.value[rows].astype(np.int64), [1, 2])
    owner = packet[f.msg[rows]]
    symbol = text_column(p.data, value[:, 1].astype(np.int64), length[:, 1])
    return pl.DataFrame(
        {
            "sequence": seqs.sequence[owner],
            "generation": seqs.generation[owner],
            "iid": value[:, 0],
            "symbol": pl.Series(symbol.dictionary_decode()),
        }
    ).unique(["sequence", "generation", "iid"], keep="last", maintain_order=True)
