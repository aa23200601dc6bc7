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

from importers.perfetto.bundles import RANK_BITS, BundleIndex, PlainEvents, plain_events
from importers.perfetto.clocks import Clocks
from importers.perfetto.compact import CompactRows, Names, decode_compact
from importers.perfetto.generic import Symbols, events_table
from importers.perfetto.losses import Losses
from importers.perfetto.packets import Packets
from importers.perfetto.running import CompactColumns, Running
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
class Group:
    """What one group of bundles contributes (see :class:`Parts`); ``first_ts`` and
    ``last_raw`` are per bundle of ``chosen``, ``last_plain`` maps each CPU to ``(seq, pid)``
    of its last plain event before its first compact switch in the group (or its last one,
    if it has none)."""

    chosen: I64
    first_ts: I64
    last_raw: I64
    switches: CompactColumns
    wakings: CompactColumns
    last_plain: dict[int, tuple[int, int]]
    typed: dict[str, list[pa.Table]] = field(default_factory=dict)
    events: list[pa.Table] = field(default_factory=list)
    sightings: list[pl.DataFrame] = field(default_factory=list)


@dataclass
class Parts:
    """What the groups of bundles contribute, gathered in trace order: their tables, the
    compact events' (:class:`~importers.perfetto.running.Running`) and their losses
    (:class:`~importers.perfetto.losses.Losses`) included.

    Per bundle: its earliest event's BOOTTIME and its last event's time in its own clock
    (both -1 when it has no event).
    """

    ctx: Context
    running: Running
    losses: Losses
    first_ts: I64
    last_raw: I64
    typed: dict[str, list[pa.Table]] = field(default_factory=dict)
    events: list[pa.Table] = field(default_factory=list)
    sightings: list[pl.DataFrame] = field(default_factory=list)

    def add(self, g: Group) -> None:
        """Append group ``g`` (groups arrive in trace order)."""
        self.first_ts[g.chosen] = g.first_ts
        self.last_raw[g.chosen] = g.last_raw
        for name, tables in g.typed.items():
            self.typed.setdefault(name, []).extend(tables)
        self.events.extend(g.events)
        self.sightings.extend(g.sightings)
        markers = self.losses.add(self.ctx.b, self.ctx.seqs, g.chosen, g.last_raw)
        if g.switches.ts.size or g.wakings.ts.size:
            where = (markers["cpu"].to_numpy().astype(np.int16), markers["seq"].to_numpy())
            compact = self.running.add(g.switches, g.wakings, g.last_plain, where,
                                       self.ctx.names.dictionary())  # fmt: skip
            for name, table in zip(("sched_switch", "sched_waking"), compact, strict=True):
                if table.num_rows:
                    self.typed.setdefault(name, []).append(table)


@dataclass
class Context:
    """What decoding any group needs: the trace, its bundles and state, the kernel release."""

    p: Packets
    b: BundleIndex
    seqs: Sequences
    clocks: Clocks
    kernel: tuple[int, int] | None
    interned: pl.DataFrame
    names: Names


def decode_group(ctx: Context, chosen: I64, skips: SkipLog) -> Group:
    """Decode bundles ``chosen`` (several groups may be decoded at once, each with its own
    ``skips``)."""
    b = ctx.b
    ev = plain_events(ctx.p, b, chosen, skips)
    switch, waking = _compact(ctx, chosen, skips)
    local = np.full(b.count, -1, np.int64)
    local[chosen] = np.arange(chosen.shape[0])
    n = chosen.shape[0]
    before_switch = np.bincount(local[switch.bundle], minlength=n)
    before_plain = before_switch + np.bincount(local[waking.bundle], minlength=n)
    first_ts = np.full(n, -1, np.int64)
    last_raw = np.full(n, -1, np.int64)
    seq, ts = [], []
    kinds = (
        (switch.bundle, switch.ts, np.zeros(n, np.int64)),
        (waking.bundle, waking.ts, before_switch),
        (ev.bundle, ev.ts, before_plain),
    )
    for bundle, raw, skip in kinds:
        seq.append(_ranked(bundle, local[bundle], skip))
        ts.append(b.to_boot(ctx.clocks, bundle, raw))
        _bundle_times(local[bundle], raw, ts[-1], first_ts, last_raw)
    switches = CompactColumns(ts[0], seq[0], b.cpu[switch.bundle], switch.columns, switch.comm)
    wakings = CompactColumns(ts[1], seq[1], b.cpu[waking.bundle], waking.columns, waking.comm)
    cpu = b.cpu[ev.bundle]
    last_plain = _last_plain(switches, cpu, ts[2], seq[2], ev.pid)
    group = Group(chosen, first_ts, last_raw, switches, wakings, last_plain)
    _plain(ctx, ev, cpu, ts[2], seq[2], group)
    return group


def _ranked(bundle: I64, local: I64, skip: I64) -> I64:
    """Each row's seq: its bundle's index shifted by ``RANK_BITS``, plus ``skip`` (the
    bundle's rows of the kinds numbered before) and its place among the bundle's rows of its
    kind (rows grouped by ascending bundle)."""
    if not bundle.size:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.diff(bundle, prepend=-1))
    sizes = np.diff(np.append(starts, bundle.size))
    rank = np.arange(bundle.size) - np.repeat(starts, sizes)
    ranked: I64 = (bundle << RANK_BITS) + skip[local] + rank
    return ranked


def _bundle_times(local: I64, raw: I64, ts: I64, first_ts: I64, last_raw: I64) -> None:
    """Fold rows (grouped by ascending bundle, ``local`` to the group) into the per-bundle
    first BOOTTIME and last own-clock time."""
    if not local.size:
        return
    starts = np.flatnonzero(np.diff(local, prepend=-1))
    which = local[starts]
    last_raw[which] = np.maximum(last_raw[which], np.maximum.reduceat(raw, starts))
    first = np.minimum.reduceat(ts, starts)
    now = first_ts[which]
    first_ts[which] = np.where((now < 0) | (first < now), first, now)


def _last_plain(
    switches: CompactColumns, cpu: NDArray[np.int16], ts: I64, seq: I64, pid: NDArray[np.int32]
) -> dict[int, tuple[int, int]]:
    """Per CPU: ``(seq, pid)`` of its last plain event before its first compact switch of the
    group (or its last one). Rows are in seq order, so a CPU's last row is its latest."""
    present = np.flatnonzero(np.bincount(switches.cpu.astype(np.int64), minlength=1))
    first_ts = {int(c): int(switches.ts[np.argmax(switches.cpu == c)]) for c in present}
    out: dict[int, tuple[int, int]] = {}
    for c in np.flatnonzero(np.bincount(cpu.astype(np.int64), minlength=1)).tolist():
        mine = np.flatnonzero(cpu == c)
        if c in first_ts:
            mine = mine[ts[mine] < first_ts[c]]
        if mine.size:
            out[c] = (int(seq[mine[-1]]), int(pid[mine[-1]]))
    return out


def _compact(ctx: Context, chosen: I64, skips: SkipLog) -> tuple[CompactRows, CompactRows]:
    """Compact switches and wakings of the chosen bundles (``bundle`` indexes the index)."""
    b = ctx.b
    with_compact = chosen[b.compact_len[chosen] >= 0]
    start = b.compact_at[with_compact]
    where = [ctx.p.where(int(k)) for k in b.packet[with_compact]]
    switch, waking = decode_compact(ctx.p.data, start, start + b.compact_len[with_compact],
                                    where, ctx.names, skips)  # fmt: skip
    switch.bundle = with_compact[switch.bundle]
    waking.bundle = with_compact[waking.bundle]
    return switch, waking


def _plain(
    ctx: Context, ev: PlainEvents, cpu: NDArray[np.int16], ts: I64, seq: I64, group: Group
) -> None:
    """Typed tables, ``events`` rows (in seq order) and task sightings of the plain events."""
    b, data = ctx.b, ctx.p.data
    # oneof numbers are below 2**16 (ftrace_event.proto): a radix sort
    order = np.argsort(ev.kind.astype(np.uint16), kind="stable")
    sorted_kinds = ev.kind[order]
    bounds = np.flatnonzero(np.diff(sorted_kinds, prepend=-1, append=-1))
    other = np.ones(ev.kind.shape[0], np.bool_)
    others: dict[int, I64] = {}
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        kind = int(sorted_kinds[lo])
        rows = order[lo:hi]
        body, end = ev.body[rows], ev.body[rows] + ev.body_len[rows]
        if kind in NAMING:
            group.sightings.extend(_named(data, kind, body, end, ts[rows]))
        table = TABLE_OF.get(kind)
        if table is None:
            others[kind] = rows
            continue
        other[rows] = False
        part = typed_table(table, data, body, end - body, _prefix(rows, ts, seq, cpu, ev),
                           ctx.kernel)  # fmt: skip
        group.typed.setdefault(table, []).append(part)
    rows = np.flatnonzero(other)
    if not rows.size:
        return
    place = np.cumsum(other) - 1  # each event's row among the others (kept in seq order)
    symbols = None
    if ctx.interned.height:
        packets = b.packet[ev.bundle[rows]]
        keys = pl.DataFrame({"sequence": ctx.seqs.sequence[packets],
                             "generation": ctx.seqs.generation[packets]})  # fmt: skip
        symbols = Symbols(ctx.interned, keys)
    prefix = {**_prefix(rows, ts, seq, cpu, ev), "flags": pa.array(ev.flags[rows])}
    body, body_len = ev.body[rows], ev.body_len[rows].astype(np.int64)
    by_kind = {kind: place[r] for kind, r in others.items()}  # ascending: a stable sort
    group.events.append(events_table(data, by_kind, body, body_len, prefix, symbols))


def _prefix(
    rows: I64, ts: I64, seq: I64, cpu: NDArray[np.int16], ev: PlainEvents
) -> dict[str, pa.Array]:
    """``ts, seq, cpu, common_pid`` of ``rows``."""
    return {
        "ts": pa.array(ts[rows]),
        "seq": pa.array(seq[rows]),
        "cpu": pa.array(cpu[rows]),
        "common_pid": pa.array(ev.pid[rows]),
    }


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
