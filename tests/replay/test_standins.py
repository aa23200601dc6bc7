"""Stand-in vCPUs: a capture without VMs names the threads worth replaying as if they were."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from importers.capture import Capture, CaptureMetadata
from importers.schema import conform
from replay.api import capture_topology, open_capture
from replay.cli import main
from replay.standins import stand_ins
from tests.conftest import FIXTURES

TOPOLOGY = FIXTURES / "topologies" / "two-cluster.json"  # CPUs 0-1 little, 2-3 big
HEADER = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 16/16   #P:4\n#\n"

#: (cpu, seconds, prev comm, prev pid, next comm, next pid): who runs where, and when.
SWITCHES = [
    (0, "1.000000", "swapper/0", 0, "worker", 100),
    (3, "1.000000", "swapper/3", 0, "hog", 200),
    (0, "1.010000", "worker", 100, "hopper", 300),
    (0, "1.015000", "hopper", 300, "swapper/0", 0),
    (1, "1.020000", "swapper/1", 0, "hopper", 300),
    (2, "1.020000", "swapper/2", 0, "worker", 100),
    (1, "1.025000", "hopper", 300, "swapper/1", 0),
    (2, "1.050000", "worker", 100, "blip", 400),
    (2, "1.052000", "blip", 400, "swapper/2", 0),
    (1, "1.060000", "swapper/1", 0, "worker", 100),
    (1, "1.070000", "worker", 100, "swapper/1", 0),
    (0, "1.070000", "swapper/0", 0, "blip", 400),
    (0, "1.071000", "blip", 400, "swapper/0", 0),
    (3, "1.090000", "hog", 200, "swapper/3", 0),
]


def write_capture(tmp_path: Path, switches: list[tuple[int, str, str, int, str, int]]) -> Path:
    """Kernel trace text of ``switches`` (4 CPUs, no VMM thread)."""
    lines = [
        f"{prev}-{pid:<5} [{cpu:03d}] d..2. {ts}: sched_switch: prev_comm={prev} prev_pid={pid} "
        f"prev_prio=120 prev_state=S ==> next_comm={nxt} next_pid={npid} next_prio=120"
        for cpu, ts, prev, pid, nxt, npid in switches
    ]
    path = tmp_path / "workload.txt"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def no_vms(tmp_path: Path) -> Path:
    """A workload capture without any VMM thread (kernel trace text, 4 CPUs)."""
    return write_capture(tmp_path, SWITCHES)


def test_threads_that_cross_clusters_come_first(no_vms: Path) -> None:
    cap = open_capture(no_vms, topology=TOPOLOGY)
    best = stand_ins(cap, capture_topology(cap))
    # worker: 10 + 30 + 10 ms, little -> big -> little; blip: 2 + 1 ms, big -> little;
    # then, never across clusters, hog (90 ms) and hopper (5 + 5 ms on CPUs 0 and 1, both little)
    assert best == [
        (100, "worker", 50_000_000, 2),
        (400, "blip", 3_000_000, 1),
        (200, "hog", 90_000_000, 0),
        (300, "hopper", 10_000_000, 0),
    ]
    # without a topology, a move is a change of CPU
    assert {s.tid: s.moves for s in stand_ins(cap, None)} == {
        100: 2,
        400: 1,
        300: 1,
        200: 0,
    }
    assert [s.tid for s in stand_ins(cap, capture_topology(cap), limit=1)] == [100]
    # a CPU the topology does not cover belongs to no cluster: moves to or from it are not
    # counted (only the little cluster, CPUs 0-1, is described here)
    little = replace(capture_topology(cap), pmus=capture_topology(cap).pmus[:1])
    assert {s.tid: s.moves for s in stand_ins(cap, little)} == {100: 0, 400: 0, 300: 0, 200: 0}


def test_a_thread_running_at_the_end_runs_to_it_under_its_last_name(tmp_path: Path) -> None:
    # 500 runs 2 ms on CPU 0 as "early", then as "late" on CPU 1 from 1.004 s to the capture's
    # last event (1.010 s); 600 runs 10 ms on CPU 2
    switches = [
        (0, "1.000000", "swapper/0", 0, "early", 500),
        (2, "1.000000", "swapper/2", 0, "other", 600),
        (0, "1.002000", "early", 500, "swapper/0", 0),
        (1, "1.004000", "swapper/1", 0, "late", 500),
        (2, "1.010000", "other", 600, "swapper/2", 0),
    ]
    cap = open_capture(write_capture(tmp_path, switches))
    assert stand_ins(cap, None) == [(500, "late", 8_000_000, 1), (600, "other", 10_000_000, 0)]


def test_the_error_lists_them_with_a_line_to_copy(
    no_vms: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(no_vms), "--topology", str(TOPOLOGY)]) == 4
    err = capsys.readouterr().err
    assert "no vCPU threads found" in err and "--vcpu TID=VM:INDEX" in err
    rows = [line.split() for line in err.splitlines() if line.strip()[:3].isdigit()]
    assert rows == [
        ["100", "0.050", "2", "worker"],
        ["400", "0.003", "1", "blip"],
        ["200", "0.090", "0", "hog"],
        ["300", "0.010", "0", "hopper"],
    ]
    line = err.strip().splitlines()[-1].split()
    assert line == [
        "--vcpu", "100=standin:0", "--vcpu", "400=standin:1",
        "--vcpu", "200=standin:2", "--vcpu", "300=standin:3",
    ]  # fmt: skip
    # ...and the line does what it says
    assert main(["replay", str(no_vms), "--topology", str(TOPOLOGY), *line, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"vm": "standin"' in out


def test_import_names_the_command_that_replays_them(
    no_vms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cap"
    assert main(["import", str(no_vms), "--topology", str(TOPOLOGY), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "none found: give --vcpu TID=VM:INDEX to replay" in text
    assert text.rstrip().splitlines()[-2] == "to replay them as the vCPUs of one VM, run:"
    command = text.rstrip().splitlines()[-1].split()
    assert command[:3] == ["pmu-replay", "compare", str(out)]
    assert command[3:5] == ["--vcpu", "100=standin:0"]  # the thread that moved most
    # ...and the command does what it says
    assert main([*command[1:], "-o", str(tmp_path / "cmp")]) == 0
    assert json.loads((tmp_path / "cmp" / "replay.json").read_text())["vms"] == {
        "standin": [100, 400, 200, 300]
    }


def _many_switches(rows: int, parts: int) -> Capture:
    """``rows`` random switches on 8 CPUs, half of them to the idle task, with ties in ``ts``
    (``seq`` orders them), in ``parts`` Arrow chunks as an import's tables are."""
    rng = np.random.default_rng(17)
    ts = np.sort(rng.integers(0, rows // 4, rows)) * 1000
    pid = rng.integers(1, 300, rows).astype(np.int32)
    pid[rng.random(rows) < 0.5] = 0
    switches = conform(
        "sched_switch",
        pa.table(
            {
                "ts": ts,
                "seq": rng.permutation(rows),
                "cpu": rng.integers(0, 8, rows).astype(np.int16),
                "common_pid": np.zeros(rows, np.int32),
                "next_pid": pid,
                "next_comm": pa.array([f"t{p}" for p in pid]).dictionary_encode(),
            }
        ),
    )
    step = -(-rows // parts)
    chunked = pa.concat_tables(switches.slice(i, step) for i in range(0, rows, step))
    meta = CaptureMetadata("many.txt", "", "ftrace-text", "test", last_ts=int(ts.max()) + 5000)
    return Capture(meta, {"sched_switch": chunked})


def test_run_times_and_moves_agree_with_an_independent_reading() -> None:
    cap = _many_switches(20_000, 3)
    end = cap.metadata.last_ts
    df = pl.from_arrow(cap.table("sched_switch").select(["ts", "seq", "cpu", "next_pid"]))
    assert isinstance(df, pl.DataFrame)
    df = df.sort("cpu", "ts", "seq").with_columns(
        run=pl.col("ts").shift(-1).over("cpu").fill_null(end) - pl.col("ts")
    )
    threads = (
        df.filter(pl.col("next_pid") != 0)
        .sort("next_pid", "ts", "seq")
        .with_columns(moved=pl.col("cpu") != pl.col("cpu").shift(1).over("next_pid"))
        .group_by("next_pid")
        .agg(pl.col("run").sum(), pl.col("moved").fill_null(False).sum())
    )
    expected = {r["next_pid"]: (r["run"], r["moved"]) for r in threads.iter_rows(named=True)}
    found = stand_ins(cap, None, limit=len(expected))
    assert {s.tid: (s.run_ns, s.moves) for s in found} == expected


def test_the_advice_holds_few_arrays_beside_the_tables() -> None:
    # The advice runs after a whole import, beside its tables, at the import's memory peak
    # (issue 17: a 1 GB text import peaks below the text's size). Its NumPy arrays: the sort
    # order, the switch-ins' starts and ends (8 bytes a switch each), CPUs in that order (2)
    # and where they change (1); written as expressions, 50 bytes a switch.
    rows = 400_000
    cap = _many_switches(rows, 8)
    tracemalloc.start()
    try:
        stand_ins(cap, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / rows < 32
