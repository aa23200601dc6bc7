"""The shared Perfetto captures: exact counts, and Perfetto's own trace processor as the oracle.

Counts (``../shared/traces/README.md``): the Pixel 6a trace has sched_switch 11086 as
compact_sched, cpu_frequency 1442, cpu_idle 6809; the Galaxy J5 trace sched_switch 27960,
cpu_idle 35844, cpu_frequency 176 as plain events. The trace processor (the wasm build of the
Perfetto UI, see tests/perfetto/trace_processor.py) reads the same files; its ``sched`` table
has one slice per switch, from the switch to the CPU's next one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from importers.capture import Capture
from importers.detect import load, sniff
from tests.conftest import SHARED_TRACES
from tests.perfetto.conftest import LoadTrace
from tests.perfetto.trace_processor import rows

PIXEL6A = "perfetto-pixel6a-startup/api32_startup_warm.perfetto-trace"
GALAXY = "perfetto-galaxy-j5/trace_file.perfetto-trace"
PIXEL7 = "perfetto-pixel7-app/trace.perfetto-trace"


@cache
def imported(name: str) -> Capture:
    return load(SHARED_TRACES / name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (PIXEL6A, {"sched_switch": 11086, "cpu_frequency": 1442, "cpu_idle": 6809,
                   "sched_waking": 6857}),
        (GALAXY, {"sched_switch": 27960, "cpu_idle": 35844, "cpu_frequency": 176}),
    ],
)  # fmt: skip
def test_event_counts_are_the_files(
    shared_traces: Path, name: str, expected: dict[str, int]
) -> None:
    assert sniff(shared_traces / name) == "perfetto"
    counts = imported(name).event_counts()
    assert {k: counts.get(k) for k in expected} == expected
    meta = imported(name).metadata
    assert meta.format == "perfetto" and meta.clock == "boot" and meta.skipped == {}


def test_pixel7_has_only_prints(shared_traces: Path) -> None:
    cap = imported(PIXEL7)
    assert cap.event_counts() == {"print": 6246}
    assert cap.metadata.extra["system_info"]["utsname"]["machine"] == "aarch64"


def test_machine_facts_go_to_the_metadata(shared_traces: Path) -> None:
    extra = imported(PIXEL6A).metadata.extra
    assert extra["system_info"]["utsname"]["release"].startswith("5.10.107-android13")
    assert extra["system_info"]["android_build_fingerprint"].startswith("google/bluejay/")
    assert extra["packets"]["ftrace_events"] == 162
    assert sum(extra["packets"].values()) == 269
    assert extra["ftrace_clocks"] == ["boot"]
    trace = pb.Trace.FromString((shared_traces / PIXEL6A).read_bytes())
    (stats,) = [p.trace_stats for p in trace.packet if p.HasField("trace_stats")]
    assert extra["trace_stats"] == {"chunks_discarded": stats.chunks_discarded}
    # Galaxy J5: ftrace in the global clock, converted with the bundles' own pairs
    assert imported(GALAXY).metadata.extra["ftrace_clocks"] == ["global"]


def test_compact_switches_name_the_task_switched_out(shared_traces: Path) -> None:
    sw = imported(PIXEL6A).frame("sched_switch").sort("cpu", "seq")
    # a compact switch's previous task is the CPU's previous switch's next task
    chained = sw.with_columns(
        pl.col("next_pid").shift(1).alias("expected"),
        pl.col("next_comm").shift(1).alias("expected_comm"),
        (pl.col("cpu") == pl.col("cpu").shift(1)).fill_null(False).alias("chained"),
    ).filter("chained")
    assert chained.height == 11086 - 8
    assert chained["prev_pid"].to_list() == chained["expected"].to_list()
    assert (
        chained["prev_comm"].cast(pl.Utf8).to_list()
        == chained["expected_comm"].cast(pl.Utf8).to_list()
    )
    assert (chained["common_pid"] == chained["prev_pid"]).all()
    # each CPU's first: from the CPU's plain events before it, else unknown and counted
    firsts = sw.group_by("cpu").first()
    unknown = imported(PIXEL6A).metadata.extra["compact_unknown"]
    assert firsts["prev_pid"].null_count() == unknown["sched_switch without previous task"]
    assert (firsts.filter(pl.col("prev_pid").is_null())["common_pid"] == -1).all()


def test_process_tree_names_reach_tasks(shared_traces: Path) -> None:
    # what python-protobuf reads in the same packets: every process's program, and every
    # thread that has a name (the Pixel 6a's have none)
    trace = pb.Trace.FromString((shared_traces / PIXEL6A).read_bytes())
    processes = {(pr.pid, pr.cmdline[0]) for p in trace.packet
                 for pr in p.process_tree.processes if pr.cmdline}  # fmt: skip
    threads = {(t.tid, t.name) for p in trace.packet for t in p.process_tree.threads if t.name}
    assert len(processes) == 665 and not threads  # README: 665 process names
    tasks = imported(PIXEL6A).frame("tasks").select("pid", pl.col("comm").cast(pl.Utf8))
    assert processes <= set(tasks.rows())


def _slices(cap: Capture, skip_first: bool) -> pl.DataFrame:
    """``cpu, ts, dur, tid`` of the scheduling slices the switches make: each switch starts
    one for its next task, ended by the CPU's next switch (the last stays open)."""
    sw = cap.frame("sched_switch").sort("cpu", "ts", "seq")
    slices = sw.select(
        "cpu",
        "ts",
        (pl.col("ts").shift(-1).over("cpu") - pl.col("ts")).alias("dur"),
        pl.col("next_pid").alias("tid"),
        (pl.col("seq").rank("ordinal").over("cpu") == 1).alias("first"),
    )
    return slices.filter(~pl.col("first")) if skip_first else slices


@pytest.mark.slow
@pytest.mark.oracle
@pytest.mark.parametrize("name", [PIXEL6A, GALAXY])
def test_scheduling_equals_perfettos_trace_processor(
    shared_traces: Path, load_trace: LoadTrace, name: str
) -> None:
    cap = imported(name)
    compact = name == PIXEL6A
    tp = load_trace(shared_traces / name)
    # Perfetto drops each CPU's first compact switch: it has no prev_* fields, so no slice is
    # started (FtraceSchedEventTracker::PushSchedSwitchCompact, "the first per-cpu switch is
    # effectively discarded"; stats compact_sched_switch_skipped). We keep it: one more per
    # CPU. Plain sched_switch events carry prev_*: every one makes a slice there too.
    per_cpu = {r["cpu"]: r["n"] for r in rows(tp, "select cpu, count(*) n from sched group by cpu")}
    ours = cap.frame("sched_switch").group_by("cpu").len()
    assert {r["cpu"]: r["len"] - compact for r in ours.iter_rows(named=True)} == per_cpu
    skipped = rows(tp, "select value from stats where name = 'compact_sched_switch_skipped'")
    assert (skipped[0]["value"] if skipped else 0) == (len(per_cpu) if compact else 0)
    # every slice to the nanosecond (clock conversion included), and each thread's run time
    theirs = pl.DataFrame(
        rows(tp, "select s.cpu, s.ts, s.dur, t.tid from sched s join thread t using (utid)"),
        schema={"cpu": pl.Int16, "ts": pl.Int64, "dur": pl.Int64, "tid": pl.Int32},
    )
    mine = _slices(cap, skip_first=compact)
    assert (
        mine.select("cpu", "ts")
        .sort("cpu", "ts")
        .equals(theirs.select("cpu", "ts").sort("cpu", "ts"))
    )
    closed = pl.col("dur") > 0
    run = mine.filter(closed).group_by("tid").agg(pl.col("dur").sum()).sort("tid")
    expected = theirs.filter(closed).group_by("tid").agg(pl.col("dur").sum()).sort("tid")
    assert run.equals(expected)
