"""The ``tasks`` side table: which names each thread had, when, and where we learnt them.

Every importer sees thread names in several places (the context of each text line,
``sched_switch`` prev/next, wakeups, forks, saved cmdlines, perf COMM records). Each source is
reduced to ``(pid, comm, tgid, ts, source)`` rows and :func:`name_spans` folds them into one row
per (pid, comm) with the first and last time seen.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from importers.schema import conform, constant_column

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


def sightings(
    frame: pl.DataFrame, pid: str, comm: str, source: str, tgid: str | None = None
) -> pl.DataFrame:
    """Rows ``pid, comm, tgid, ts, source`` for every non-null name in ``frame``."""
    return frame.filter(pl.col(comm).is_not_null()).select(
        pl.col(pid).cast(pl.Int32).alias("pid"),
        pl.col(comm).cast(pl.Utf8).alias("comm"),
        (pl.col(tgid) if tgid else pl.lit(None)).cast(pl.Int32).alias("tgid"),
        pl.col("ts").cast(pl.Int64),
        pl.lit(source).alias("source"),
    )


def typed_sightings(typed: dict[str, pl.DataFrame]) -> list[pl.DataFrame]:
    """Sightings from every typed table that names tasks."""
    return [
        sightings(typed[table], pid, comm, table)
        for table, pid, comm in NAMED_IN
        if table in typed and typed[table].height
    ]


def name_spans(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Fold sightings (or earlier spans) into one row per (pid, comm).

    Accepts both raw sightings (``ts``) and already folded spans (``first_ts``/``last_ts``), so
    chunked importers can fold per chunk and once more at the end. ``source`` is the source of
    the earliest sighting.
    """
    folded = [_fold(p) for p in parts if p.height]
    if not folded:
        return pl.DataFrame(schema=SPAN_SCHEMA)
    return _fold(pl.concat(folded)).sort("pid", "first_ts", "comm", nulls_last=True)


SPAN_SCHEMA = {
    "pid": pl.Int32,
    "tgid": pl.Int32,
    "comm": pl.Utf8,
    "first_ts": pl.Int64,
    "last_ts": pl.Int64,
    "source": pl.Utf8,
}


def _fold(part: pl.DataFrame) -> pl.DataFrame:
    if "first_ts" in part.columns:  # spans, from several sources
        times = [pl.col("first_ts").min(), pl.col("last_ts").max()]
        source = pl.col("source").sort_by("first_ts").first()
    else:  # sightings: one source per frame (see sightings)
        times = [pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts")]
        source = pl.col("source").first()
    return (
        part.group_by("pid", "comm")
        .agg(pl.col("tgid").drop_nulls().first(), source, *times)
        .select(pl.col(name).cast(dtype) for name, dtype in SPAN_SCHEMA.items())
    )


def table_spans(tables: dict[str, pa.Table]) -> list[pl.DataFrame]:
    """Spans of the names in the typed tables (:data:`NAMED_IN`) of a binary capture.

    Each typed table is first reduced to its distinct (pid, comm) pairs on the dictionary
    codes (millions of sched_switch rows name a few hundred threads).
    """
    parts = []
    for table, pid, comm in NAMED_IN:
        if table in tables and tables[table].num_rows:
            frame = pl.from_arrow(tables[table].select(["ts", pid, comm]))
            assert isinstance(frame, pl.DataFrame)
            spans = frame.group_by(pid, comm).agg(
                pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts")
            )
            parts.append(
                spans.filter(pl.col(comm).is_not_null()).select(
                    pl.col(pid).cast(pl.Int32).alias("pid"),
                    pl.col(comm).cast(pl.Utf8).alias("comm"),
                    pl.lit(None, pl.Int32).alias("tgid"),
                    "first_ts",
                    "last_ts",
                    pl.lit(table).alias("source"),
                )
            )
    return parts


def cmdline_spans(cmdlines: bytes) -> pl.DataFrame:
    """:func:`saved_cmdlines` as spans without times, for :func:`name_spans`."""
    frame = pl.from_arrow(saved_cmdlines(cmdlines))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("comm", "source").cast(pl.Utf8))


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
