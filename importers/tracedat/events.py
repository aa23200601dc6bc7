"""Merge the per-CPU record arrays and split them into typed tables and ``events``.

Mirrors ``trace-cmd report``'s ordering (``tracecmd_read_next_data``: smallest timestamp
first, ties to the lowest CPU, then stream position) with one stable sort over the records of
all CPUs (already time-ordered per CPU, so the sort merges runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import cast, take
from importers.heap import trim_heap
from importers.schema import SIDE_TABLES, conform, constant_column
from importers.skips import SkipLog
from importers.tracedat.buffer import PageBuffer
from importers.tracedat.file import FormatText, TraceDat
from importers.tracedat.pages import Records
from importers.tracedat.payload import payload_column
from importers.tracedat.printk import RENDERED, PrintkContext
from importers.tracedat.ringbuffer import MISSED_NONE
from importers.tracedat.tables import MODELLED, typed_table
from importers.tracefs.event_format import EventFormat
from importers.tracefs.fields import FieldGather, gather_uint

#: systems of the modelled events (a same-named event of another system goes to ``events``)
_SYSTEMS = {"sched": "sched", "cpu": "power", "kvm": "kvm"}


def _modelled_table(fmt: EventFormat) -> str | None:
    if fmt.name not in MODELLED:
        return None
    system = _SYSTEMS.get(fmt.name.split("_", 1)[0])
    return fmt.name if system is None or fmt.system == system else None


def records_to_tables(
    td: TraceDat,
    data: NDArray[np.uint8],
    records: Records,
    page_cpu: NDArray[np.int16],
    page_stream: NDArray[np.int64],
    missed: NDArray[np.int64],
    skips: SkipLog,
    to_ns: Callable[[NDArray[np.int64]], NDArray[np.int64]] | None = None,
    pages: PageBuffer | None = None,
    emit: Callable[[str, pa.Table], None] | None = None,
) -> dict[str, pa.Table]:
    """Decode ``records`` into typed tables, ``events`` and ``lost_events``.

    ``records`` is consumed: each of its arrays is let go as soon as the tables no longer need
    it, so its memory holds the tables instead (the caller keeps no other reference).
    ``to_ns`` converts the raw timestamps the merge orders to the capture clock's ns;
    ``pages``, the buffer ``data`` views, gives back each page once no table reads it again.
    ``emit`` is handed each typed table and then ``events`` as soon as it is whole (to be
    written while the rest is decoded: :class:`importers.capture_writer.CaptureWriter`).
    """
    new_stream = np.flatnonzero(np.diff(page_stream)) + 1  # first page of each stream
    order = merge_order(records.ts, np.searchsorted(records.page, new_stream))
    ts = to_ns(records.ts) if to_ns is not None else records.ts
    seq, lost = _sequence(records, ts, order, page_cpu, missed)
    cpu = page_cpu[records.page]
    records.drop("ts", "page")
    formats, typed, ev = _split_by_type(td, records, order, cpu, seq, skips)
    del order
    t = records.type[ev]  # the events table's event types
    # Each table's ts, seq and cpu, and where its records lie, a capture-wide array at a
    # time, each let go once gathered: the records and the index arrays are gone before the
    # tables' fields take their memory.
    rows = [idx for _, _, idx in typed] + [ev]
    tables_of = [(name, fmt) for name, fmt, _ in typed]
    del typed, ev
    whole: dict[str, NDArray[np.generic]] = {
        "ts": ts, "seq": seq, "cpu": cpu, "offset": records.offset, "length": records.length
    }  # fmt: skip
    del ts, seq, cpu
    records.drop("type", "offset", "length")
    gathered = [Rows() for _ in rows]
    for key in list(whole):
        values = whole.pop(key)
        for part, idx in zip(gathered, rows, strict=True):
            setattr(part, key, values[idx])
        del values
    del rows
    trim_heap()  # the records and index arrays, freed
    big = td.reader.big_endian
    tables: dict[str, list[pa.Table]] = {}
    for i, (name, fmt) in enumerate(tables_of):
        table, notes = _typed(name, fmt, data, gathered[i], big)
        gathered[i] = Rows()  # its offsets and lengths, let go
        for note in notes:
            where = [f"event {fmt.system}:{fmt.name}"]
            skips.add(f"undecodable column: {note}", where, count=1)
        tables.setdefault(name, []).append(table)
        trim_heap()  # the gathers' temporaries, freed: not resident under the next table's
    out = {name: _concat_by_seq(chunks) for name, chunks in tables.items()}
    if emit is not None:
        for name, table in out.items():
            emit(name, table)
    out["events"] = _events(td, data, formats, t, gathered.pop(), pages)
    if emit is not None:
        emit("events", out["events"])
    out["lost_events"] = lost
    return out


@dataclass
class Rows:
    """The records of one table, in its row order: their ts, seq and cpu, and the offset and
    length of each in the pages."""

    ts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    seq: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    cpu: NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16))
    offset: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    length: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))

    def prefix(self) -> dict[str, pa.Array]:
        """The table's ``ts``, ``seq`` and ``cpu`` columns."""
        return {"ts": pa.array(self.ts), "seq": pa.array(self.seq), "cpu": pa.array(self.cpu)}


def _typed(
    name: str,
    fmt: EventFormat,
    data: NDArray[np.uint8],
    rows: Rows,
    big: bool,
) -> tuple[pa.Table, list[str]]:
    """Typed table ``name`` of the records ``rows``, its fields read straight from the pages."""
    g = FieldGather(data, rows.offset, rows.length.astype(np.int64), big)
    prefix = rows.prefix()
    return typed_table(
        name, fmt, g, prefix | {"common_pid": _common(fmt, g, "common_pid", pa.int32())}
    )


#: record indices: 32-bit where the records are few enough (all but unreal captures)
Index = NDArray[np.int32] | NDArray[np.int64]

#: the records of one typed table: its name, the event's format and the records' indices
Typed = tuple[str, EventFormat, Index]


def _split_by_type(
    td: TraceDat,
    records: Records,
    order: Index,
    cpu: NDArray[np.int16],
    seq: NDArray[np.int64],
    skips: SkipLog,
) -> tuple[dict[int, EventFormat], list[Typed], Index]:
    """Each event type's format, the records of each typed table and those of ``events``,
    all in merged order; records without a format or shorter than it are skipped and counted.
    """
    texts: dict[int, FormatText] = {}
    for ft in td.formats:
        texts.setdefault(ft.id, ft)
    types = records.type
    sorted_types = types[order]
    fixed = np.zeros(1 << 16, np.int32)  # fixed size of each type's format
    table_of: dict[int, str] = {}
    formats: dict[int, EventFormat] = {}
    present = np.flatnonzero(np.bincount(types, minlength=1)).tolist() if len(types) else []
    for t in present:
        if t in texts:
            fmt = formats[t] = texts[t].parse()
            fixed[t] = fmt.fixed_size
            name = _modelled_table(fmt)
            if name is not None:
                table_of[t] = name
    known = np.zeros(1 << 16, bool)
    known[list(formats)] = True
    short = records.length < fixed[types]
    short_types = set(np.unique(types[short]).tolist())
    keep = (known[types] & ~short)[order]
    typed: list[Typed] = []
    for t in sorted({*(set(present) - formats.keys()), *short_types, *table_of}):
        of_type = sorted_types == t
        if t not in formats:
            _skip(skips, "record with an event id that has no format (corrupt record)",
                  order[of_type], cpu, seq, f" (id {t})")  # fmt: skip
            continue
        if t in short_types:
            _skip(skips, "record shorter than its event format", order[of_type & ~keep], cpu,
                  seq, "")  # fmt: skip
        if t in table_of:
            typed.append((table_of[t], formats[t], order[of_type & keep]))
    is_event = known.copy()
    is_event[list(table_of)] = False
    return formats, typed, order[is_event[sorted_types] & keep]


def _skip(
    skips: SkipLog,
    reason: str,
    idx: Index,
    cpu: NDArray[np.int16],
    seq: NDArray[np.int64],
    detail: str,
) -> None:
    where = [f"CPU {cpu[r]} record seq {seq[r]}{detail}" for r in idx[:5]]
    skips.add(reason, where, count=len(idx))


def merge_order(ts: NDArray[np.int64], bounds: NDArray[np.intp]) -> Index:
    """Record indices in ``trace-cmd report`` order.

    ``tracecmd_read_next_data`` repeatedly takes the CPU whose *next* record has the smallest
    timestamp (ties to the lowest CPU), so each CPU's records keep their file order even when a
    stream steps back in time (a new page with an older base, clock jumps). Sorting stably by
    each stream's running maximum gives that merge: a record that steps back cannot be taken
    before its predecessor, and is taken right after it, as the merge does. ``ts`` holds the
    streams one after the other, each after the record indices ``bounds`` (ascending).
    The indices are 32-bit where they fit: this array and every index array taken from it are
    held together with the records.
    """
    key = ts.copy()
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
        np.maximum.accumulate(key[a:b], out=key[a:b])
    order = np.argsort(key, kind="stable")
    del key
    return order.astype(np.int32) if len(ts) <= np.iinfo(np.int32).max else order


def _following(
    records: Records, page_cpu: NDArray[np.int16], pages: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Index of the first record at or after each page, and whether it is on the same CPU."""
    first = np.searchsorted(records.page, pages)
    follows = first < len(records.page)
    nxt = np.where(follows, first, 0)
    if len(records.page):
        follows &= page_cpu[records.page[nxt]] == page_cpu[pages]
    return nxt, follows


def _sequence(
    records: Records,
    ts: NDArray[np.int64],
    order: Index,
    page_cpu: NDArray[np.int16],
    missed: NDArray[np.int64],
) -> tuple[NDArray[np.int64], pa.Table]:
    """``seq`` of each record, and the ``lost_events`` table.

    A loss marker takes the ``seq`` just before the first record that follows the loss on its
    CPU (and that record's ``ts``), or comes after everything when none follows.
    """
    n = len(order)
    pages = np.flatnonzero(missed != MISSED_NONE)
    nxt, follows = _following(records, page_cpu, pages)
    seq = np.empty(n, np.int64)
    for a in range(0, n, _ROWS):  # rank in the merge (a block at a time: no n-long range)
        seq[order[a : a + _ROWS]] = np.arange(a, min(a + _ROWS, n), dtype=np.int64)
    if follows.any():  # shift every record after a loss marker by the markers before it
        marker_ranks = np.sort(seq[nxt[follows]])
        seq += np.searchsorted(marker_ranks, seq, side="right")
    lost_seq = np.where(follows, seq[nxt] - 1 if n else 0, 0)
    tail = ~follows
    lost_seq[tail] = (seq.max() + 1 if n else 0) + np.arange(int(tail.sum()))
    count = missed[pages]
    lost = pa.Table.from_arrays(
        [
            pa.array(np.where(follows, ts[nxt] if n else 0, 0), pa.int64(), mask=tail),
            pa.array(lost_seq, pa.int64()),
            pa.array(page_cpu[pages], pa.int16()),
            pa.array(count, pa.int64(), mask=count < 0),
            constant_column("missed", len(pages)),
        ],
        schema=SIDE_TABLES["lost_events"],
    )
    return seq, lost


def _common(fmt: EventFormat, g: FieldGather, name: str, type_: pa.DataType) -> pa.Array:
    f = fmt.field(name)
    values = g.integer(f.offset, f.size, f.signed) if f is not None else None
    if values is None:
        return pa.nulls(g.n, type_)
    return cast(pa.array(values), type_, safe=False)


def _concat_by_seq(chunks: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(chunks)
    if len(chunks) > 1:
        table = take(table, np.argsort(table.column("seq").to_numpy(), kind="stable"))
    return table


def _printk_args(
    td: TraceDat,
    formats: dict[int, EventFormat],
    t: NDArray[np.uint16],
    data: NDArray[np.uint8],
    start: NDArray[np.int64],
    length: NDArray[np.int32],
) -> pa.Array:
    """``args`` text of ftrace ``print``/``bputs``/``bprint`` rows (null for other events).

    Other events keep ``args`` null: their fields are in ``payload`` and, for the modelled
    ones, in the typed tables; text per record would cost more than the whole decode.
    """
    wanted = np.zeros(1 << 16, bool)
    for tid, f in formats.items():
        wanted[tid] = f.system == "ftrace" and f.name in RENDERED
    rows = np.flatnonzero(wanted[t]) if wanted.any() else np.zeros(0, np.intp)
    if not len(rows):
        return pa.nulls(len(t), pa.string())
    context = PrintkContext(td.printk, td.kallsyms, td.long_size, td.reader.big_endian)
    texts: list[str | None] = [None] * len(t)
    for r in rows.tolist():
        record = data[int(start[r]) : int(start[r]) + int(length[r])].tobytes()
        texts[r] = context.render(formats[int(t[r])], record)
    return pa.array(texts, pa.string())


def _events(
    td: TraceDat,
    data: NDArray[np.uint8],
    formats: dict[int, EventFormat],
    t: NDArray[np.uint16],
    rows: Rows,
    pages: PageBuffer | None,
) -> pa.Table:
    """The long ``events`` table of the records ``rows`` (consumed) of types ``t``: ts, seq,
    cpu, the common fields, event name/system and raw payload."""
    big = td.reader.big_endian
    columns = rows.prefix()
    # the common fields and print text read the pages, which the payload copy gives back
    pid, flags, preempt = _common_fields(formats, t, data, rows.offset, rows.length, big)
    args = _printk_args(td, formats, t, data, rows.offset, rows.length)
    payload = payload_column(data, rows.offset, rows.length, pages)
    del rows  # the caller holds no other reference
    names = sorted({f.name for f in formats.values()})
    name_index = {key: i for i, key in enumerate(names)}
    systems = sorted({f.system for f in formats.values()})
    system_index = {s: i for i, s in enumerate(systems)}
    lut_name = np.zeros(1 << 16, np.int32)
    lut_system = np.zeros(1 << 16, np.int32)
    for tid, f in formats.items():
        lut_name[tid] = name_index[f.name]
        lut_system[tid] = system_index[f.system]
    columns |= {
        "common_pid": pa.array(pid),
        "event": pa.DictionaryArray.from_arrays(
            pa.array(lut_name[t]), pa.array(names, pa.string())
        ),
        "system": pa.DictionaryArray.from_arrays(
            pa.array(lut_system[t]), pa.array(systems, pa.string())
        ),
        "flags": pa.array(flags),
        "preempt_count": pa.array(preempt),
        "payload": payload,
        "args": args,
    }
    return conform("events", pa.table(columns))


def _common_fields(
    formats: dict[int, EventFormat],
    t: NDArray[np.uint16],
    data: NDArray[np.uint8],
    start: NDArray[np.int64],
    length: NDArray[np.int32],
    big: bool,
) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.uint8]]:
    """``common_pid``, ``common_flags`` and ``common_preempt_count`` of each record
    ``data[start[i] : start[i] + length[i]]``.

    Each record is read by its own type's format (the formats agree on every known kernel);
    a field its format lacks, or that lies past the record's end, reads as 0. A block of rows
    at a time keeps the position arrays small.
    """
    fields = (("common_pid", 4), ("common_flags", 1), ("common_preempt_count", 1))
    at = np.full((len(fields), 1 << 16), -1, np.int32)  # each field's offset per type; -1: none
    for tid, f in formats.items():
        for k, (key, _) in enumerate(fields):
            field = f.field(key)
            if field is not None:
                at[k, tid] = field.offset
    out = (np.zeros(len(t), np.uint32), np.zeros(len(t), np.uint8), np.zeros(len(t), np.uint8))
    for a in range(0, len(t), _ROWS):
        b = min(a + _ROWS, len(t))
        at_row, size = start[a:b], length[a:b]
        for k, (_, width) in enumerate(fields):
            where = at[k, t[a:b]]
            ok = (where >= 0) & (where + width <= size)
            out[k][a:b][ok] = gather_uint(data, at_row[ok] + where[ok], 0, width, big)
    pid, flags, preempt = out
    return pid.view(np.int32), flags, preempt


#: rows per block of the loops that keep their index arrays small
_ROWS = 1 << 18
