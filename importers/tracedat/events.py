"""Merge the per-CPU record arrays and split them into typed tables and ``events``.

Mirrors ``trace-cmd report``'s ordering (``tracecmd_read_next_data``: smallest timestamp
first, ties to the lowest CPU, then stream position) with one stable sort over the records of
all CPUs (already time-ordered per CPU, so the sort merges runs).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.schema import SIDE_TABLES, conform, constant_column
from importers.skips import SkipLog
from importers.tracedat.file import FormatText, TraceDat
from importers.tracedat.pages import Records
from importers.tracedat.printk import RENDERED, PrintkContext
from importers.tracedat.ringbuffer import MISSED_NONE
from importers.tracedat.tables import MODELLED, typed_table
from importers.tracefs.event_format import EventFormat
from importers.tracefs.fields import FieldGather, pack_records

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
    ts: NDArray[np.int64],
    page_cpu: NDArray[np.int16],
    page_stream: NDArray[np.int64],
    missed: NDArray[np.int64],
    skips: SkipLog,
) -> dict[str, pa.Table]:
    """Decode ``records`` into typed tables, ``events`` and ``lost_events``."""
    n = len(records.ts)
    order = merge_order(records.ts, page_stream[records.page])
    seq, lost = _sequence(records, ts, order, page_cpu, missed)
    big = td.reader.big_endian
    offsets = records.offset
    lengths = records.length.astype(np.int64)
    types = records.type
    texts: dict[int, FormatText] = {}
    for ft in td.formats:
        texts.setdefault(ft.id, ft)
    # Group the merged records by type with one stable (radix) sort: within a group the
    # records stay in merged order.
    sorted_types = types[order]
    by_type = np.argsort(sorted_types, kind="stable")  # uint16: a radix sort
    grouped = order[by_type]
    cuts = np.flatnonzero(np.diff(sorted_types[by_type])) + 1
    cpu = page_cpu[records.page]
    formats: dict[int, EventFormat] = {}
    typed: list[tuple[str, EventFormat, NDArray[np.intp]]] = []
    event_mask = np.zeros(n, bool)
    for idx in np.split(grouped, cuts) if n else []:
        t = int(types[idx[0]])
        if t not in texts:
            _skip(skips, "record with an event id that has no format (corrupt record)",
                  idx, cpu, seq, f" (id {t})")  # fmt: skip
            continue
        fmt = formats[t] = texts[t].parse()
        short = lengths[idx] < fmt.fixed_size
        if short.any():
            _skip(skips, "record shorter than its event format", idx[short], cpu, seq, "")
            idx = idx[~short]
        name = _modelled_table(fmt)
        if name is None:
            event_mask[idx] = True
        else:
            typed.append((name, fmt, idx))

    def build(name: str, fmt: EventFormat, idx: NDArray[np.intp]) -> tuple[pa.Table, list[str]]:
        g = FieldGather(data, offsets[idx], lengths[idx], big, block=fmt.fixed_size)
        prefix = {
            "ts": pa.array(ts[idx]),
            "seq": pa.array(seq[idx]),
            "cpu": pa.array(cpu[idx]),
            "common_pid": _common(fmt, g, "common_pid", pa.int32()),
        }
        return typed_table(name, fmt, g, prefix)

    # Tables are independent and their work (numba gathers, numpy, Arrow) runs without the
    # GIL, so they are built on all cores; the events table, the biggest, starts first.
    ev = order[event_mask[order]]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        events = pool.submit(_events, td, data, formats, ev, types, ts, seq, cpu, offsets, lengths)
        built = [(name, fmt, pool.submit(build, name, fmt, idx)) for name, fmt, idx in typed]
        tables: dict[str, list[pa.Table]] = {}
        for name, fmt, future in built:
            table, notes = future.result()
            for note in notes:
                where = [f"event {fmt.system}:{fmt.name}"]
                skips.add(f"undecodable column: {note}", where, count=1)
            tables.setdefault(name, []).append(table)
        out = {name: _concat_by_seq(chunks) for name, chunks in tables.items()}
        out["events"] = events.result()
    out["lost_events"] = lost
    return out


def _skip(
    skips: SkipLog,
    reason: str,
    idx: NDArray[np.intp],
    cpu: NDArray[np.int16],
    seq: NDArray[np.int64],
    detail: str,
) -> None:
    where = [f"CPU {cpu[r]} record seq {seq[r]}{detail}" for r in idx[:5]]
    skips.add(reason, where, count=len(idx))


def merge_order(ts: NDArray[np.int64], stream: NDArray[np.int64]) -> NDArray[np.intp]:
    """Record indices in ``trace-cmd report`` order.

    ``tracecmd_read_next_data`` repeatedly takes the CPU whose *next* record has the smallest
    timestamp (ties to the lowest CPU), so each CPU's records keep their file order even when a
    stream steps back in time (a new page with an older base, clock jumps). Sorting stably by
    each stream's running maximum gives that merge: a record that steps back cannot be taken
    before its predecessor, and is taken right after it, as the merge does. ``ts`` holds the
    streams one after the other (``stream`` is non-decreasing).
    """
    key = ts.copy()
    bounds = np.flatnonzero(np.diff(stream)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
        np.maximum.accumulate(key[a:b], out=key[a:b])
    return np.argsort(key, kind="stable")


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
    order: NDArray[np.intp],
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
    seq[order] = np.arange(n, dtype=np.int64)  # rank in the merge
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
    return pa.array(values).cast(type_, safe=False)


def _concat_by_seq(chunks: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(chunks)
    if len(chunks) > 1:
        table = table.take(np.argsort(table.column("seq").to_numpy(), kind="stable"))
    return table


def _printk_args(
    td: TraceDat,
    formats: dict[int, EventFormat],
    t: NDArray[np.uint16],
    payload: NDArray[np.uint8],
    poffs: NDArray[np.int64],
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
        record = payload[int(poffs[r]) : int(poffs[r + 1])].tobytes()
        texts[r] = context.render(formats[int(t[r])], record)
    return pa.array(texts, pa.string())


def _events(
    td: TraceDat,
    data: NDArray[np.uint8],
    formats: dict[int, EventFormat],
    idx: NDArray[np.intp],
    types: NDArray[np.uint16],
    ts: NDArray[np.int64],
    seq: NDArray[np.int64],
    cpu: NDArray[np.int16],
    offsets: NDArray[np.int64],
    lengths: NDArray[np.int64],
) -> pa.Table:
    """The long ``events`` table: common fields, event name/system, raw payload."""
    n = len(idx)
    big = td.reader.big_endian
    t = types[idx]
    names = sorted({f.name for f in formats.values()})
    name_index = {key: i for i, key in enumerate(names)}
    systems = sorted({f.system for f in formats.values()})
    system_index = {s: i for i, s in enumerate(systems)}
    lut_name = np.zeros(1 << 16, np.int32)
    lut_system = np.zeros(1 << 16, np.int32)
    lut = np.zeros((3, 1 << 16), np.int64)
    for tid, f in formats.items():
        if not 0 <= tid < 1 << 16:
            continue
        lut_name[tid] = name_index[f.name]
        lut_system[tid] = system_index[f.system]
        for k, key in enumerate(("common_pid", "common_flags", "common_preempt_count")):
            field = f.field(key)
            lut[k, tid] = field.offset if field is not None else -(1 << 40)
    payload, poffs, pid, flags, preempt = pack_records(data, idx, offsets, lengths, types, lut, big)
    columns = {
        "ts": pa.array(ts[idx]),
        "seq": pa.array(seq[idx]),
        "cpu": pa.array(cpu[idx]),
        "common_pid": pa.array(pid),
        "event": pa.DictionaryArray.from_arrays(
            pa.array(lut_name[t]), pa.array(names, pa.string())
        ),
        "system": pa.DictionaryArray.from_arrays(
            pa.array(lut_system[t]), pa.array(systems, pa.string())
        ),
        "flags": pa.array(flags),
        "preempt_count": pa.array(preempt),
        "payload": pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), n, [None, pa.py_buffer(poffs), pa.py_buffer(payload)]
        ),
        "args": _printk_args(td, formats, t, payload, poffs),
    }
    return conform("events", pa.table(columns))
