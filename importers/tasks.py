"""The ``tasks`` side table: which names each thread had, when, and where we learnt them.

Every importer sees thread names in several places (the context of each text line,
``sched_switch`` prev/next, wakeups, forks, saved cmdlines, perf COMM records). Each source is
reduced to ``(pid, comm, tgid, ts, source)`` rows and :func:`name_spans` folds them into one row
per (pid, comm) with the first and last time seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Union

import pyarrow as pa
import pyarrow.compute as pc

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
    """Rows ``pid, comm, tgid, ts, source`` for every non-null name in ``frame``."""
    # only the named columns: converting a whole polars frame to Arrow copies every column
    table = _arrow(frame.select([c for c in (pid, comm, tgid, "ts") if c]))
    table = table.filter(table.column(comm).is_valid())
    n = table.num_rows
    return pa.table(
        {
            "pid": table.column(pid).cast(pa.int32()),
            "comm": table.column(comm).cast(pa.string()),
            "tgid": table.column(tgid).cast(pa.int32()) if tgid else pa.nulls(n, pa.int32()),
            "ts": table.column("ts").cast(pa.int64()),
            "source": pa.repeat(source, n),
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
    return spans.sort_by(keys)  # nulls last


def _arrow(part: Part) -> pa.Table:
    return part if isinstance(part, pa.Table) else part.to_arrow()


def _fold(part: pa.Table) -> pa.Table:
    if "first_ts" in part.column_names:  # spans, from several sources: earliest first
        part = part.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
        known_first = pc.fill_null(part.column("first_ts"), -(1 << 63))  # timeless first
        part = part.take(pc.sort_indices(known_first))
        first, last = ("first_ts", "min"), ("last_ts", "max")
    else:  # sightings: one source per table (see sightings), in source order
        first, last = ("ts", "min"), ("ts", "max")
    # not threaded, so "first" is the first row of each group in the order above
    out = part.group_by(["pid", "comm"], use_threads=False).aggregate(
        [("tgid", "first"), ("source", "first"), first, last]
    )
    columns = {
        "pid": out.column("pid"),
        "tgid": out.column("tgid_first"),
        "comm": out.column("comm"),
        "first_ts": out.column("_".join(first)),
        "last_ts": out.column("_".join(last)),
        "source": out.column("source_first"),
    }
    return pa.table(columns).cast(SPAN_SCHEMA)


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
            named = named.filter(named.column(comm).is_valid())
            spans = named.group_by([pid, comm], use_threads=False).aggregate(
                [("ts", "min"), ("ts", "max")]
            )
            n = spans.num_rows
            parts.append(
                pa.table(
                    {
                        "pid": spans.column(pid).cast(pa.int32()),
                        "tgid": pa.nulls(n, pa.int32()),
                        "comm": spans.column(comm).cast(pa.string()),
                        "first_ts": spans.column("ts_min"),
                        "last_ts": spans.column("ts_max"),
                        "source": pa.repeat(table, n),
                    }
                )
            )
    return parts


def cmdline_spans(cmdlines: bytes) -> pa.Table:
    """:func:`saved_cmdlines` as spans without times, for :func:`name_spans`."""
    return saved_cmdlines(cmdlines).cast(SPAN_SCHEMA)


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
        "comm": pa.array(comms, pa.string()).dictionary_encode(),
        "source": constant_column("saved_cmdlines", len(pids)),
    }
    return conform("tasks", pa.table(columns))
