"""perf script lines with ``-F comm,pid,tid,cpu,time,event,trace``: the ``tgid/tid`` column
names each task's process, and tracepoint lines whose payload is not understood keep their
columns in ``events`` and are counted, every one of them (formats.md §4.7).

The text is written here in perf script's layout (``%16s %5d/%-5d [%03d] %9.6f: ``); every
expected value is read off that text.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from importers.detect import load

SWITCH = (
    "{comm:>16} {tgid:>5}/{tid:<5} [{cpu:03d}] {ts}: sched:sched_switch: prev_comm={comm} "
    "prev_pid={tid} prev_prio=120 prev_state=S ==> next_comm=swapper/{cpu} next_pid=0 "
    "next_prio=120\n"
)
CUT = "{comm:>16} {tgid:>5}/{tid:<5} [{cpu:03d}] {ts}: sched:sched_switch: prev_comm={comm}\n"


def test_tasks_carry_the_tgid_of_the_pid_column(tmp_path: Path) -> None:
    path = tmp_path / "script.txt"
    path.write_text(
        SWITCH.format(comm="render", tgid=300, tid=301, cpu=2, ts="10.000001")
        + SWITCH.format(comm="main", tgid=300, tid=300, cpu=1, ts="10.000002")
        + SWITCH.format(comm="kworker", tgid=55, tid=55, cpu=0, ts="10.000003")
    )
    tasks = load(path).frame("tasks")
    # the next_comm of each switch is a sighting too, without a tgid (not on the line)
    assert sorted(
        tasks.select("pid", pl.col("comm").cast(pl.Utf8), "tgid").unique().rows(),
        key=str,
    ) == sorted(
        [(0, f"swapper/{cpu}", None) for cpu in range(3)]
        + [(55, "kworker", 55), (300, "main", 300), (301, "render", 300)],
        key=str,
    )


def test_every_payload_not_understood_is_counted_and_kept_with_its_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "script.txt"
    path.write_text(
        SWITCH.format(comm="main", tgid=300, tid=300, cpu=1, ts="10.000001")
        + "".join(
            CUT.format(comm="render", tgid=300, tid=301, cpu=n, ts=f"10.00001{n}") for n in range(7)
        )
    )
    cap = load(path)
    assert cap.frame("sched_switch")["ts"].to_list() == [10_000_001_000]
    events = cap.frame("events")
    assert events.select(
        "ts", "cpu", "common_pid", "tgid", pl.col("event").cast(pl.Utf8)
    ).rows() == [(10_000_010_000 + n * 1000, n, 301, 300, "sched_switch") for n in range(7)]
    # all 7 counted, the first 5 (FIRST_LOCATIONS) named
    assert cap.metadata.skipped == {
        "sched_switch payload not understood (kept in events)": {
            "count": 7,
            "first": [f"line {n}" for n in range(2, 7)],
        }
    }
