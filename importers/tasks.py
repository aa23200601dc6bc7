"""The ``tasks`` side table: which names each thread had, when, and where we learnt them.

Every importer sees thread names in several places (the context of each text line,
``sched_switch`` prev/next, wakeups, forks, saved cmdlines, perf COMM records). Each source is
reduced to ``(pid, comm, tgid, ts, source)`` rows and :func:`name_spans` folds them into one row
per (pid, comm) with the first and last time seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Union

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import (
    cast,
    cast_table,
    dictionary_encode,
    fill_null,
    filter_rows,
    is_null,
    is_valid,
    sort_by,
    sort_indices,
    take,
)
from importers.schema import conform, constant_column

if TYPE_CHECKING:
    import polars as pl

#: a table of sightings or spans: Arrow, or the polars frames of the text importers (read
#: through ``to_arrow``, so this module never loads polars itself)
Part = Union[pa.Table, "pl.DataFrame"]

# (table, pid column, comm column) of the typed tables that name a task.
NAMED_IN: tuple[tuple[str, str, str], ...] = (
    ("sched_switch", "prev_pid", "prev_comm"),
    ("sched_switch", "next_pid", "next_comm"),
    ("sched_wakeup", "pid", "comm"),
    ("sched_waking", "pid", "comm"),
    ("sched_wakeup_new", "pid", "comm"),
    ("sched_migrate_task", "pid", "comm"),
    ("sched_process_fork", "parent_pid", "parent_comm"),
    ("sched_process_fork", "child_pid", "child_comm"),
    ("sched_process_exit", "pid", "comm"),
)

SPAN_SCHEMA = pa.schema(
    [
        ("pid", pa.int32()),
        ("tgid", pa.int32()),
        ("comm", pa.string()),
        ("first_ts", pa.int64()),
        ("last_ts", pa.int64()),
        ("source", pa.string()),
    ]
)


def sightings(frame: Part, pid: str, comm: str, source: str, tgid: str | None = None) -> pa.Table:
    """The names in ``frame`` as spans (:data:`SPAN_SCHEMA`): one row per (pid, comm) of
    its non-null names, folded in row order as :func:`name_spans` folds sightings.

    ``comm`` keeps its type (a typed table's dictionary column is grouped on its codes) and
    ``source`` is a one-value dictionary: only the folded names become plain strings, not one
    copy per row. A null name is grouped as a name of its own and its spans dropped, instead
    of filtering the rows first. A 32 MB text chunk's spans (219 k lines, best of 7): 53.5 ms
    with the rows filtered and their names copied as strings, 37.2 ms so.
    """
    # only the named columns: converting a whole polars frame to Arrow copies every column
    table = _arrow(frame.select([c for c in (pid, comm, tgid, "ts") if c]))
    try:
        spans = _fold(_named_rows(table, pid, table.column(comm), tgid, source))
    except pa.ArrowInvalid:
        # a number out of range in a row without a name (never read), or names Arrow cannot
        # group as they are (dictionaries holding a null): the named rows, names as strings
        table = filter_rows(table, is_valid(table.column(comm)))
        names = cast(table.column(comm), pa.string())
        spans = _fold(_named_rows(table, pid, names, tgid, source))
    return filter_rows(spans, is_valid(spans.column("comm")))


def _named_rows(
    table: pa.Table, pid: str, names: pa.ChunkedArray, tgid: str | None, source: str
) -> pa.Table:
    """Sightings ``pid, comm, tgid, ts, source`` of ``table``'s rows, named ``names``."""
    n = table.num_rows
    return pa.table(
        {
            "pid": cast(table.column(pid), pa.int32()),
            "comm": names,
            "tgid": cast(table.column(tgid), pa.int32()) if tgid else pa.nulls(n, pa.int32()),
            "ts": cast(table.column("ts"), pa.int64()),
            "source": constant_column(source, n),
        }
    )


def typed_sightings(typed: dict[str, Part]) -> list[pa.Table]:
    """Sightings from every typed table that names tasks."""
    return [
        sightings(frame, pid, comm, table)
        for table, pid, comm in NAMED_IN
        if (frame := typed.get(table)) is not None and len(frame)
    ]


def name_spans(parts: Sequence[Part]) -> pa.Table:
    """Fold sightings (or earlier spans) into one row per (pid, comm), as :data:`SPAN_SCHEMA`.

    Accepts both raw sightings (``ts``) and already folded spans (``first_ts``/``last_ts``), so
    chunked importers can fold per chunk and once more at the end. ``source`` is the source of
    the earliest sighting (a name known without a time, from saved cmdlines, counts as
    earliest); ``tgid`` the first known one.
    """
    folded = [_fold(table) for part in parts if (table := _arrow(part)).num_rows]
    if not folded:
        return SPAN_SCHEMA.empty_table()
    spans = _fold(pa.concat_tables(folded))
    keys = [("pid", "ascending"), ("first_ts", "ascending"), ("comm", "ascending")]
    return sort_by(spans, keys)  # nulls last


def _arrow(part: Part) -> pa.Table:
    return part if isinstance(part, pa.Table) else part.to_arrow()


def _fold(part: pa.Table) -> pa.Table:
    if "first_ts" in part.column_names:  # spans, from several sources: earliest first
        part = cast_table(part.select(SPAN_SCHEMA.names), SPAN_SCHEMA)
        known_first = fill_null(part.column("first_ts"), -(1 << 63))  # timeless first
        part = take(part, sort_indices(known_first))
        first, last = "first_ts", "last_ts"
    else:  # sightings: one source per table (see sightings), in source order
        first = last = "ts"
    spans = _per_task(part, "pid", "comm", first, last, ("tgid", "source"))
    return cast_table(pa.table({name: spans[name] for name in SPAN_SCHEMA.names}), SPAN_SCHEMA)


#: rows from which the (pid, comm) groups come from Acero's ``Table.group_by``: importing Acero
#: (with pyarrow.dataset, 35-60 ms on the development VM) is start-up a smaller capture should
#: not pay, and the hashed grouping costs ~20 ns a row more. ``table_spans`` of a perf.data's
#: sched_switch in fresh processes, 4 runs each (numpy 2.4, pyarrow 26): 438 k rows 39-58 ms
#: hashed against 73-118 ms with Acero; 2.2 M rows 148-236 against 136-201 ms
GROUP_BY_ROWS = 1 << 20


def _per_task(
    table: pa.Table, pid: str, comm: str, first: str, last: str, firsts: tuple[str, ...]
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """One row per (pid, comm) of ``table`` (a null is a key of its own): ``pid``, ``comm``,
    the least ``first`` and the greatest ``last`` as ``first_ts`` and ``last_ts`` (nulls
    skipped), and the first non-null value in row order of each column in ``firsts``."""
    if table.num_rows >= GROUP_BY_ROWS:
        # Acero groups on a dictionary key only when its chunks share one dictionary, and
        # takes the "first" of no dictionary column
        table = table.unify_dictionaries()
        for c in firsts:
            values = table.column(c)
            if pa.types.is_dictionary(values.type):
                plain = cast(values, values.type.value_type)
                table = table.set_column(table.schema.get_field_index(c), c, plain)
        # not threaded, so "first" is the first non-null value in row order
        out = table.group_by([pid, comm], use_threads=False).aggregate(
            [(first, "min"), (last, "max"), *((c, "first") for c in firsts)]
        )
        return {
            "pid": out.column(pid),
            "comm": out.column(comm),
            "first_ts": out.column(f"{first}_min"),
            "last_ts": out.column(f"{last}_max"),
            **{c: out.column(f"{c}_first") for c in firsts},
        }
    group, heads = _by_task(table.column(pid), table.column(comm))
    n = len(heads)
    return {
        "pid": take(table.column(pid), heads),
        "comm": take(table.column(comm), heads),
        "first_ts": _extreme(np.minimum, table.column(first), group, n),
        "last_ts": _extreme(np.maximum, table.column(last), group, n),
        **{c: _first_known(table.column(c), group, n) for c in firsts},
    }


def _by_task(pid: pa.ChunkedArray, comm: pa.ChunkedArray) -> tuple[NDArray[np.int32], pa.Array]:
    """Each row's (pid, comm) group, numbered in order of first appearance (a null pid or comm
    is a key of its own), and each group's first row.

    Hashed with Arrow's ``dictionary_encode`` (linear) rather than grouped by
    ``Table.group_by``, whose first call imports Acero and ``pyarrow.dataset`` (issue 17).
    """
    comms = _codes(comm)
    width = int(comms.max(initial=-1)) + 2  # codes -1 (null) .. the largest: width values
    # pid * width + comm code, a null pid taken as 2**31 (no int32 is): |key| < 2**63
    pids = cast(pid, pa.int32())  # as the spans' schema has them (out of range fails there)
    key = fill_null(pids, 0).to_numpy().astype(np.int64)
    if pids.null_count:
        key[is_null(pids).to_numpy(zero_copy_only=False)] = 1 << 31
    key *= width
    key += comms
    group = _codes(pa.array(key))
    heads = np.full(int(group.max(initial=-1)) + 1, len(group), np.int64)
    np.minimum.at(heads, group, np.arange(len(group)))
    return group, pa.array(heads)


def _codes(values: pa.Array | pa.ChunkedArray) -> NDArray[np.int32]:
    """Dictionary codes of ``values`` (numbered in order of first appearance unless they are
    dictionary codes already), -1 for null.

    Chunks of strings are hashed where they lie, into one dictionary (joining them first
    copied every string); a dictionary column's chunks are joined, which unifies their
    dictionaries.
    """
    if isinstance(values, pa.ChunkedArray):
        if pa.types.is_dictionary(values.type):
            return _codes(values.combine_chunks())
        parts = [_codes(chunk) for chunk in dictionary_encode(values).chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)
    encoded = values if pa.types.is_dictionary(values.type) else dictionary_encode(values)
    indices = encoded.indices  # unsigned in polars' Categorical: -1 fits no uint32
    codes: NDArray[np.int32] = fill_null(cast(indices, pa.int32()), -1).to_numpy()
    return codes


def _extreme(
    reduce: np.ufunc, values: pa.ChunkedArray, group: NDArray[np.int32], n: int
) -> pa.Array:
    """Per group, ``reduce`` (np.minimum or np.maximum) of the non-null values, else null."""
    raw = (fill_null(values, 0) if values.null_count else values).to_numpy()
    limits = np.iinfo(raw.dtype)
    out = np.full(n, limits.max if reduce is np.minimum else limits.min, raw.dtype)
    unknown = None
    if values.null_count:  # only the known values count; a group may have none
        known = is_valid(values).to_numpy(zero_copy_only=False)
        group, raw = group[known], raw[known]
        unknown = np.bincount(group, minlength=n) == 0
    reduce.at(out, group, raw)
    return pa.array(out, values.type, mask=unknown)


def _first_known(values: pa.ChunkedArray, group: NDArray[np.int32], n: int) -> pa.Array:
    """Per group, the first non-null value in row order (Acero's ``first``), else null."""
    rows = np.flatnonzero(is_valid(values).to_numpy(zero_copy_only=False))
    first = np.full(n, len(values), np.int64)
    np.minimum.at(first, group[rows], rows)
    found = first < len(values)
    return take(values, pa.array(np.where(found, first, 0), mask=~found))


def table_spans(tables: dict[str, pa.Table]) -> list[pa.Table]:
    """Spans of the names in the typed tables (:data:`NAMED_IN`) of a binary capture.

    Each typed table is first reduced to its distinct (pid, comm) pairs on the dictionary
    codes (millions of sched_switch rows name a few hundred threads).
    """
    parts = []
    for table, pid, comm in NAMED_IN:
        if table in tables and tables[table].num_rows:
            # chunks decoded apart (Perfetto's packet groups) have dictionaries of their own
            named = tables[table].select(["ts", pid, comm]).unify_dictionaries()
            named = filter_rows(named, is_valid(named.column(comm)))
            spans = _per_task(named, pid, comm, "ts", "ts", ())
            n = len(spans["pid"])
            parts.append(
                pa.table(
                    {
                        "pid": cast(spans["pid"], pa.int32()),
                        "tgid": pa.nulls(n, pa.int32()),
                        "comm": cast(spans["comm"], pa.string()),
                        "first_ts": spans["first_ts"],
                        "last_ts": spans["last_ts"],
                        # typed: inferring a type imports dateutil (4 ms of start-up)
                        "source": pa.repeat(pa.scalar(table, pa.string()), n),
                    }
                )
            )
    return parts


def cmdline_spans(cmdlines: bytes) -> pa.Table:
    """:func:`saved_cmdlines` as spans without times, for :func:`name_spans`."""
    return cast_table(saved_cmdlines(cmdlines), SPAN_SCHEMA)


def saved_cmdlines(cmdlines: bytes) -> pa.Table:
    """``tasks`` rows of a ``saved_cmdlines`` blob (trace.dat, perf tracing data).

    One ``pid comm`` per line, without times: the kernel keeps the last name of each pid.
    """
    pids: list[int] = []
    comms: list[str] = []
    for line in cmdlines.decode("utf-8", "replace").splitlines():
        pid, _, comm = line.strip().partition(" ")
        if pid.lstrip("-").isdigit() and comm:
            pids.append(int(pid))
            comms.append(comm)
    columns = {
        "pid": pa.array(pids, pa.int32()),
        "comm": dictionary_encode(pa.array(comms, pa.string())),
        "source": constant_column("saved_cmdlines", len(pids)),
    }
    return conform("tasks", pa.table(columns))
