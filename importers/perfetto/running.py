"""Who was running: the fields ``compact_sched`` leaves out, from the order of the switches.

A compact switch records only the task switched *in*; the task switched out is the one the
CPU's previous switch brought in, and the task that logged a compact waking is the one the
CPU's last switch before it brought in. Perfetto's trace processor infers them the same way
and drops what it cannot infer: the first compact switch of every CPU, and wakings before
it (``FtraceSchedEventTracker::PushSchedSwitchCompact`` and ``PushSchedWakingCompact`` in
src/trace_processor/importers/ftrace/ftrace_sched_event_tracker.cc).

Here every event is kept. Before a CPU's first switch the running task is the one that
logged the CPU's plain events (nothing switched it out yet), when there are such events;
after lost events (a loss marker on the CPU between two switches) the inference is not
made. What stays unknown is null (``prev_pid``, ``prev_comm``, ``prev_prio``) and the
logging thread is -1, and the metadata counts them.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from importers.perfetto.typed import prev_state_text
from importers.schema import conform

#: ``common_pid`` of a compact event whose logging thread cannot be known
UNKNOWN_PID = -1


def running_before(
    plain: pl.LazyFrame, switches: pl.DataFrame, markers: pl.DataFrame
) -> pl.DataFrame:
    """``cpu, pid``: who ran on each CPU before its first compact switch, from the last
    plain event (``cpu, ts, seq, common_pid``) before it and after any loss marker."""
    first = switches.group_by("cpu").agg(pl.col("ts").min().alias("first"), pl.col("seq").min())
    barrier = (
        first.join(markers.rename({"seq": "marker"}), on="cpu", how="left")
        .filter(pl.col("marker").is_null() | (pl.col("marker") <= pl.col("seq")))
        .group_by("cpu")
        .agg(pl.col("first").first(), pl.col("marker").max())
    )
    return (
        plain.join(barrier.lazy(), on="cpu")
        .filter((pl.col("ts") < pl.col("first")) & (pl.col("seq") > pl.col("marker").fill_null(-1)))
        .sort("ts", "seq")
        .group_by("cpu")
        .agg(pl.col("common_pid").last().alias("pid"))
        .collect()
    )


def _after_loss(before: str) -> pl.Expr:
    """Rows (with their ``marker``, see :func:`_last_marker`) whose CPU lost events after
    seq column ``before`` (after the start when it is null) and at or before the row."""
    return pl.col("marker").is_not_null() & (
        pl.col(before).is_null() | (pl.col("marker") > pl.col(before))
    )


def _last_marker(rows: pl.DataFrame, markers: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``marker``: the seq of its CPU's last loss marker at or before it."""
    return rows.sort("seq").join_asof(
        markers.sort("seq").with_columns(pl.col("seq").alias("marker")),
        on="seq",
        by="cpu",
        strategy="backward",
        check_sortedness=False,
    )


def _prev(column: str) -> pl.Expr:
    """``column`` of the CPU's previous row (rows in CPU and time order)."""
    return pl.col(column).shift(1).over("cpu")


def switch_table(
    compact: pl.DataFrame,
    markers: pl.DataFrame,
    before: pl.DataFrame,
    kernel: tuple[int, int] | None,
) -> tuple[pa.Table, int]:
    """``sched_switch`` rows of the compact switches (``ts, seq, cpu, prev_state, next_pid,
    next_prio, comm``), and how many have no known previous task."""
    ordered = _last_marker(compact, markers).sort("cpu", "ts", "seq")
    known = pl.col("prev_seq").is_not_null() & ~_after_loss("prev_seq")
    filled = (
        ordered.with_columns(_prev("seq").alias("prev_seq"))
        .join(before.rename({"pid": "before"}), on="cpu", how="left", maintain_order="left")
        .with_columns(
            # the CPU's first switch: whoever ran before it (running_before)
            pl.when(known)
            .then(_prev("next_pid"))
            .when(pl.col("prev_seq").is_null())
            .then("before")
            .alias("prev_pid"),
            pl.when(known).then(_prev("comm")).alias("prev_comm"),
            pl.when(known).then(_prev("next_prio")).alias("prev_prio"),
        )
        .sort("seq")
    )
    table = pa.table(
        {
            "ts": filled["ts"].to_arrow(),
            "seq": filled["seq"].to_arrow(),
            "cpu": filled["cpu"].to_arrow(),
            "common_pid": filled["prev_pid"].fill_null(UNKNOWN_PID).to_arrow(),
            "prev_comm": filled["prev_comm"].to_arrow().dictionary_encode(),
            "prev_pid": filled["prev_pid"].to_arrow(),
            "prev_prio": filled["prev_prio"].to_arrow(),
            "prev_state": filled["prev_state"].to_arrow(),
            "prev_state_str": prev_state_text(filled["prev_state"].to_numpy(), kernel),
            "next_comm": filled["comm"].to_arrow().dictionary_encode(),
            "next_pid": filled["next_pid"].to_arrow(),
            "next_prio": filled["next_prio"].to_arrow(),
        }
    )
    return conform("sched_switch", table), int(filled["prev_pid"].null_count())


def waking_table(
    compact: pl.DataFrame, switches: pl.DataFrame, markers: pl.DataFrame, before: pl.DataFrame
) -> tuple[pa.Table, int]:
    """``sched_waking`` rows of the compact wakings (``ts, seq, cpu, pid, target_cpu, prio,
    comm``), and how many have no known logging thread."""
    running = switches.select(
        "cpu", "ts", pl.col("seq").alias("switch_seq"), pl.col("next_pid").alias("running")
    ).sort("ts")
    found = (
        _last_marker(compact, markers)
        .sort("ts")
        .join_asof(running, on="ts", by="cpu", strategy="backward", check_sortedness=False)
        .join(before.rename({"pid": "before"}), on="cpu", how="left")
        .with_columns(
            pl.when(pl.col("switch_seq").is_not_null() & ~_after_loss("switch_seq"))
            .then("running")
            .when(pl.col("switch_seq").is_null() & pl.col("marker").is_null())
            .then("before")
            .alias("common_pid")
        )
        .sort("seq")
    )
    table = pa.table(
        {
            "ts": found["ts"].to_arrow(),
            "seq": found["seq"].to_arrow(),
            "cpu": found["cpu"].to_arrow(),
            "common_pid": found["common_pid"].fill_null(UNKNOWN_PID).to_arrow(),
            "comm": found["comm"].to_arrow().dictionary_encode(),
            "pid": found["pid"].to_arrow(),
            "prio": found["prio"].to_arrow(),
            "target_cpu": found["target_cpu"].to_arrow(),
        }
    )
    return conform("sched_waking", table), int(found["common_pid"].null_count())
