"""One group of bundles into table parts: typed tables, ``events`` rows, compact rows.

``seq`` numbers rows in trace order: bundle after bundle, and inside a bundle its compact
switches, then its compact wakings, then its plain events, each in their own order. ``ts`` is
converted to BOOTTIME here (see :mod:`importers.perfetto.bundles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.bundles import BundleIndex, PlainEvents, plain_events
from importers.perfetto.clocks import Clocks
from importers.perfetto.compact import CompactRows, decode_compact
from importers.perfetto.generic import Symbols, events_rows
from importers.perfetto.packets import Packets
from importers.perfetto.sequences import Sequences
from importers.perfetto.typed import TABLE_OF, typed_table
from importers.perfetto.wire import I64, pick_fields, text_column
from importers.skips import SkipLog

#: events that name a task without a typed table: oneof number -> (pid field, comm fields)
#: task_newtask {pid 1, comm 2}, task_rename {pid 1, oldcomm 2, newcomm 3},
#: sched_process_free {comm 1, pid 2} [protos/perfetto/trace/ftrace/task.proto, sched.proto]
NAMING = {235: ("task_newtask", 1, (2,)), 236: ("task_rename", 1, (2, 3)),
          240: ("sched_process_free", 2, (1,))}  # fmt: skip


@dataclass
class Parts:
    """What groups of bundles contribute, gathered over the whole trace; per bundle, its
    first ``seq``, its earliest event's BOOTTIME and its last event's time in its own clock
    (both -1 when it has no event)."""

    first_seq: I64
    first_ts: I64
    last_raw: I64
    typed: dict[str, list[pa.Table]] = field(default_factory=dict)
    events: list[pa.Table] = field(default_factory=list)
    compact_switch: list[pl.DataFrame] = field(default_factory=list)
    compact_waking: list[pl.DataFrame] = field(default_factory=list)
    sightings: list[pl.DataFrame] = field(default_factory=list)


@dataclass
class Context:
    """What decoding any group needs: the trace, its bundles and state, the kernel release."""

    p: Packets
    b: BundleIndex
    seqs: Sequences
    clocks: Clocks
    kernel: tuple[int, int] | None
    interned: pl.DataFrame
    skips: SkipLog


def decode_group(ctx: Context, chosen: I64, seq_base: int, parts: Parts) -> int:
    """Decode bundles ``chosen`` into ``parts``; returns the next free ``seq``."""
    p, b = ctx.p, ctx.b
    ev = plain_events(p, b, chosen)
    switch, waking = _compact(ctx, chosen)
    local = np.full(b.count, -1, np.int64)
    local[chosen] = np.arange(chosen.shape[0])
    counts = [np.bincount(local[rows.bundle], minlength=chosen.shape[0])
              for rows in (switch, waking)]  # fmt: skip
    counts.append(b.events[chosen])
    sizes = counts[0] + counts[1] + counts[2]
    base = seq_base + np.cumsum(sizes) - sizes
    parts.first_seq[chosen] = base
    offsets = [base, base + counts[0], base + counts[0] + counts[1]]
    seq = [_ranked(local[bundle], offset) for bundle, offset in
           zip((switch.bundle, waking.bundle, ev.bundle), offsets, strict=True)]  # fmt: skip
    ts = [b.to_boot(ctx.clocks, bundle, raw) for bundle, raw in
          ((switch.bundle, switch.ts), (waking.bundle, waking.ts), (ev.bundle, ev.ts))]  # fmt: skip
    for (bundle, raw), t in zip(
        ((switch.bundle, switch.ts), (waking.bundle, waking.ts), (ev.bundle, ev.ts)),
        ts,
        strict=True,
    ):
        np.maximum.at(parts.last_raw, bundle, raw)
        earliest = np.full(b.count, np.iinfo(np.int64).max)
        np.minimum.at(earliest, bundle, t)
        parts.first_ts[:] = np.where(
            (earliest < np.iinfo(np.int64).max)
            & ((parts.first_ts < 0) | (earliest < parts.first_ts)),
            earliest,
            parts.first_ts,
        )
    parts.compact_switch.append(_compact_frame(switch, ts[0], seq[0], b))
    parts.compact_waking.append(_compact_frame(waking, ts[1], seq[1], b))
    _plain(ctx, ev, ts[2], seq[2], parts)
    return int(seq_base + sizes.sum())


def _ranked(bundle: I64, offset: I64) -> I64:
    """Each row's seq: its bundle's ``offset`` plus its place among that bundle's rows."""
    if not bundle.size:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.diff(bundle, prepend=-1))
    sizes = np.diff(np.append(starts, bundle.size))
    rank = np.arange(bundle.size) - np.repeat(starts, sizes)
    ranked: I64 = offset[bundle] + rank
    return ranked


def _compact(ctx: Context, chosen: I64) -> tuple[CompactRows, CompactRows]:
    """Compact switches and wakings of the chosen bundles (``bundle`` indexes the index)."""
    b = ctx.b
    with_compact = chosen[b.compact_len[chosen] >= 0]
    start = b.compact_at[with_compact]
    where = [ctx.p.where(int(k)) for k in b.packet[with_compact]]
    switch, waking = decode_compact(ctx.p.data, start, start + b.compact_len[with_compact],
                                    where, ctx.skips)  # fmt: skip
    switch.bundle = with_compact[switch.bundle]
    waking.bundle = with_compact[waking.bundle]
    return switch, waking


def _compact_frame(rows: CompactRows, ts: I64, seq: I64, b: BundleIndex) -> pl.DataFrame:
    columns = {"ts": ts, "seq": seq, "cpu": b.cpu[rows.bundle], **rows.columns}
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.Series("comm", rows.comm.dictionary_decode(), pl.Utf8))


def _plain(ctx: Context, ev: PlainEvents, ts: I64, seq: I64, parts: Parts) -> None:
    """Typed tables, ``events`` rows and task sightings of the plain events."""
    b, data = ctx.b, ctx.p.data
    order = np.argsort(ev.kind, kind="stable")
    kinds, firsts = np.unique(ev.kind[order], return_index=True)
    bounds = np.append(firsts, order.size)
    for k, kind in enumerate(kinds.tolist()):
        rows = order[bounds[k] : bounds[k + 1]]
        body, body_len = ev.body[rows], ev.body_len[rows].astype(np.int64)
        prefix: dict[str, pa.Array] = {
            "ts": pa.array(ts[rows]),
            "seq": pa.array(seq[rows]),
            "cpu": pa.array(b.cpu[ev.bundle[rows]]),
            "common_pid": pa.array(ev.pid[rows]),
        }
        table = TABLE_OF.get(kind)
        if table is not None:
            part = typed_table(table, data, body, body_len, prefix, ctx.kernel)
            parts.typed.setdefault(table, []).append(part)
            continue
        symbols = None
        if ctx.interned.height:
            packets = b.packet[ev.bundle[rows]]
            keys = pl.DataFrame({"sequence": ctx.seqs.sequence[packets],
                                 "generation": ctx.seqs.generation[packets]})  # fmt: skip
            symbols = Symbols(ctx.interned, keys)
        prefix["flags"] = pa.array(ev.flags[rows])
        parts.events.append(events_rows(data, kind, body, body_len, prefix, symbols))
        if kind in NAMING:
            parts.sightings.extend(_named(data, kind, body, body + body_len, ts[rows]))


def _named(data: NDArray[np.uint8], kind: int, start: I64, end: I64, ts: I64) -> list[pl.DataFrame]:
    """Sightings of the tasks a task-naming event names (see :data:`NAMING`)."""
    source, pid_field, comm_fields = NAMING[kind]
    value, length, _ = pick_fields(data, start, end, [pid_field, *comm_fields])
    out = []
    for k in range(1, 1 + len(comm_fields)):
        comm = text_column(data, value[:, k].view(np.int64), length[:, k]).dictionary_decode()
        out.append(
            pl.DataFrame(
                {
                    "pid": value[:, 0].view(np.int64).astype(np.int32),
                    "comm": pl.Series(comm, dtype=pl.Utf8),
                    "tgid": pl.Series([None] * len(ts), dtype=pl.Int32),
                    "ts": ts,
                    "source": source,
                }
            ).filter(pl.col("comm").is_not_null())
        )
    return out
