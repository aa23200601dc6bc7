"""One group of bundles into table parts: typed tables, ``events`` rows, compact rows.

``seq`` numbers rows in trace order: bundle after bundle, and inside a bundle its compact
switches, then its compact wakings, then its plain events, each in their own order. ``ts`` is
converted to BOOTTIME here (see :mod:`importers.perfetto.bundles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.bundles import MAX_CPU, RANK_BITS, BundleIndex
from importers.perfetto.clocks import Clocks
from importers.perfetto.compact import CompactRows, Names, decode_compact
from importers.perfetto.generic import Symbols, events_table
from importers.perfetto.losses import Losses
from importers.perfetto.packets import Packets
from importers.perfetto.plain import PlainEvents, plain_events, present_kinds
from importers.perfetto.running import CompactColumns, Running
from importers.perfetto.sequences import KernelSymbols, Sequences
from importers.perfetto.typed import TABLE_OF, typed_table
from importers.perfetto.wire import I64, bundle_loops, pick_fields, text_column
from importers.schema import constant_column
from importers.skips import SkipLog
from importers.tasks import NAMED_IN, table_spans

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
    if it has none); the compact events' ``comm`` index ``comm_names``."""

    chosen: I64
    first_ts: I64
    last_raw: I64
    switches: CompactColumns
    wakings: CompactColumns
    comm_names: list[str]
    last_plain: dict[int, tuple[int, int]]
    typed: dict[str, list[pa.Table]] = field(default_factory=dict)
    events: list[pa.Table] = field(default_factory=list)
    sightings: list[pa.Table] = field(default_factory=list)


@dataclass
class Parts:
    """What the groups of bundles contribute, gathered in trace order: their tables, the
    compact events' (:class:`~importers.perfetto.running.Running`) and their losses
    (:class:`~importers.perfetto.losses.Losses`) included.

    Per bundle: its earliest event's BOOTTIME and its last event's time in its own clock
    (both -1 when it has no event). ``names`` codes the compact events' task names;
    ``spans`` holds each typed table's task-name spans, folded a group at a time
    (:func:`importers.tasks.table_spans`).
    """

    ctx: Context
    running: Running
    losses: Losses
    first_ts: I64
    last_raw: I64
    typed: dict[str, list[pa.Table]] = field(default_factory=dict)
    events: list[pa.Table] = field(default_factory=list)
    sightings: list[pa.Table] = field(default_factory=list)
    names: Names = field(default_factory=Names)
    spans: dict[str, list[pa.Table]] = field(default_factory=dict)

    def add(self, g: Group) -> dict[str, pa.Table]:
        """Append group ``g`` (groups arrive in trace order); returns its rows of each typed
        table, in ``seq`` order (a group's rows follow the earlier groups' rows)."""
        self.first_ts[g.chosen] = g.first_ts
        self.last_raw[g.chosen] = g.last_raw
        pieces = {name: list(tables) for name, tables in g.typed.items()}
        self.events.extend(g.events)
        self.sightings.extend(g.sightings)
        markers = self.losses.add(self.ctx.b, self.ctx.seqs, g.chosen, g.last_raw)
        if g.switches.ts.size or g.wakings.ts.size:
            where = (markers.cpu, markers.seq)
            codes = self.names.of(g.comm_names)
            g.switches.comm, g.wakings.comm = codes[g.switches.comm], codes[g.wakings.comm]
            compact = self.running.add(g.switches, g.wakings, g.last_plain, where,
                                       self.names.dictionary())  # fmt: skip
            for name, table in zip(("sched_switch", "sched_waking"), compact, strict=True):
                if table.num_rows:
                    pieces.setdefault(name, []).append(table)
        tables = {name: _in_seq_order(pa.concat_tables(t)) for name, t in pieces.items()}
        for name, table in tables.items():
            self.typed.setdefault(name, []).append(table)
            self.spans.setdefault(name, []).extend(table_spans({name: table}))
        return tables

    def table_spans(self) -> list[pa.Table]:
        """The typed tables' task-name spans, table by table in the order of
        :data:`importers.tasks.NAMED_IN` (as :func:`importers.tasks.table_spans` of the
        whole tables gives them: a name's earliest source wins ties in that order)."""
        return [span for name in dict.fromkeys(t for t, _, _ in NAMED_IN)
                for span in self.spans.get(name, [])]  # fmt: skip


def _in_seq_order(table: pa.Table) -> pa.Table:
    """``table`` sorted by ``seq`` (a kind with plain and compact rows in one group is not)."""
    seq = table.column("seq").to_numpy()
    if (np.diff(seq) >= 0).all():
        return table
    return table.take(np.argsort(seq, kind="stable"))


@dataclass
class Context:
    """What decoding any group needs: the trace, its bundles and state, the kernel release."""

    p: Packets
    b: BundleIndex
    seqs: Sequences
    clocks: Clocks
    kernel: tuple[int, int] | None
    interned: KernelSymbols | None


def decode_group(ctx: Context, chosen: I64, skips: SkipLog) -> Group:
    """Decode bundles ``chosen`` (several groups may be decoded at once, each with its own
    ``skips``)."""
    b = ctx.b
    n = chosen.shape[0]
    local = np.full(b.count, -1, np.int64)
    local[chosen] = np.arange(n)
    switch, waking, comm_names = _compact(ctx, chosen, skips)
    compact = np.bincount(local[switch.bundle], minlength=n)
    compact += np.bincount(local[waking.bundle], minlength=n)
    typed, other = plain_events(ctx.p, b, chosen, (chosen << RANK_BITS) + compact, skips)
    first_ts = np.full(n, -1, np.int64)
    last_raw = np.full(n, -1, np.int64)
    ts = []
    for at, raw in ((local[switch.bundle], switch.ts), (local[waking.bundle], waking.ts),
                    (typed.local, typed.ts), (other.local, other.ts)):  # fmt: skip
        ts.append(b.to_boot(ctx.clocks, chosen[at], raw) if b.converted else raw)
        bundle_loops(ctx.p.data).bundle_extents(at, raw, ts[-1], first_ts, last_raw)
    switches = CompactColumns(ts[0], switch.seq, b.cpu[switch.bundle], switch.columns,
                              switch.comm)  # fmt: skip
    wakings = CompactColumns(ts[1], waking.seq, b.cpu[waking.bundle], waking.columns,
                             waking.comm)  # fmt: skip
    cpus = b.cpu[chosen]
    plain = [Plain(ev, cpus[ev.local], boot) for ev, boot in ((typed, ts[2]), (other, ts[3]))]
    group = Group(
        chosen, first_ts, last_raw, switches, wakings, comm_names, _last_plain(switches, plain)
    )
    _typed(ctx, plain[0], group)
    _others(ctx, chosen, plain[1], group)
    return group


@dataclass
class Plain:
    """A set of plain events with each one's CPU and BOOTTIME."""

    ev: PlainEvents
    cpu: NDArray[np.int16]
    ts: I64

    def prefix(self, rows: I64 | slice) -> dict[str, pa.Array]:
        """``ts, seq, cpu, common_pid`` of ``rows``."""
        return {
            "ts": pa.array(self.ts[rows]),
            "seq": pa.array(self.ev.seq[rows]),
            "cpu": pa.array(self.cpu[rows]),
            "common_pid": pa.array(self.ev.pid[rows]),
        }


def _last_plain(switches: CompactColumns, plain: list[Plain]) -> dict[int, tuple[int, int]]:
    """Per CPU: ``(seq, pid)`` of its last plain event before its first compact switch of the
    group (or its last one). A set's rows are in seq order, so a CPU's last row is its
    latest; of the sets', the one with the larger seq."""
    cpus = MAX_CPU + 1
    has_switch = np.zeros(cpus, np.bool_)
    first_switch = np.zeros(cpus, np.int64)
    present, first = np.unique(switches.cpu, return_index=True)
    has_switch[present] = True
    first_switch[present] = switches.ts[first]
    out: dict[int, tuple[int, int]] = {}
    for part in plain:
        before = np.flatnonzero(~has_switch[part.cpu] | (part.ts < first_switch[part.cpu]))
        last = np.full(cpus, -1, np.int64)
        np.maximum.at(last, part.cpu[before], before)
        for c in np.flatnonzero(last >= 0).tolist():
            seq, pid = int(part.ev.seq[last[c]]), int(part.ev.pid[last[c]])
            if c not in out or out[c][0] < seq:
                out[c] = (seq, pid)
    return out


def _compact(
    ctx: Context, chosen: I64, skips: SkipLog
) -> tuple[CompactRows, CompactRows, list[str]]:
    """Compact switches and wakings of the chosen bundles (``bundle`` indexes the index), and
    the task names their ``comm`` indexes."""
    b = ctx.b
    with_compact = chosen[b.compact_len[chosen] >= 0]
    start = b.compact_at[with_compact]

    def where(messages: I64) -> list[str]:
        return [ctx.p.where(int(k)) for k in b.packet[with_compact[messages]]]

    switch, waking, names = decode_compact(ctx.p.data, start,
                                           start + b.compact_len[with_compact],
                                           with_compact << RANK_BITS, where, skips)  # fmt: skip
    switch.bundle = with_compact[switch.bundle]
    waking.bundle = with_compact[waking.bundle]
    return switch, waking, names


def _typed(ctx: Context, plain: Plain, group: Group) -> None:
    """The typed tables of the plain events of typed kinds, a part per kind."""
    ev = plain.ev
    for kind in present_kinds(ev.kind):
        rows = np.flatnonzero(ev.kind == kind)
        table = TABLE_OF[kind]
        part = typed_table(table, ctx.p.data, ev.body[rows], ev.body_len[rows].astype(np.int64),
                           plain.prefix(rows), ctx.kernel)  # fmt: skip
        group.typed.setdefault(table, []).append(part)


def _others(ctx: Context, chosen: I64, plain: Plain, group: Group) -> None:
    """``events`` rows (in seq order) and task sightings of the other plain events."""
    ev, data = plain.ev, ctx.p.data
    if not ev.kind.size:
        return
    for kind in NAMING:
        rows = np.flatnonzero(ev.kind == kind)
        if rows.size:
            end = ev.body[rows] + ev.body_len[rows]
            group.sightings.extend(_named(data, kind, ev.body[rows], end, plain.ts[rows]))
    symbols = None
    if ctx.interned is not None:
        symbols = Symbols(ctx.interned, ctx.seqs.state[ctx.b.packet[chosen[ev.local]]])
    prefix = {**plain.prefix(slice(None)), "flags": pa.array(ev.flags)}
    group.events.append(events_table(data, ev.kind, ev.body, ev.body_len, prefix, symbols))


def _named(data: NDArray[np.uint8], kind: int, start: I64, end: I64, ts: I64) -> list[pa.Table]:
    """Sightings of the tasks a task-naming event names (see :data:`NAMING`)."""
    source, pid_field, comm_fields = NAMING[kind]
    value, length, _ = pick_fields(data, start, end, [pid_field, *comm_fields])
    pid = pa.array(value[:, 0].view(np.int64).astype(np.int32))
    out = []
    for k in range(1, 1 + len(comm_fields)):
        comm = text_column(data, value[:, k].view(np.int64), length[:, k]).dictionary_decode()
        named = pa.table(
            {
                "pid": pid,
                "comm": comm,
                "tgid": pa.nulls(len(ts), pa.int32()),
                "ts": pa.array(ts),
                "source": constant_column(source, len(ts)),
            }
        )
        out.append(named.filter(comm.is_valid()))
    return out
