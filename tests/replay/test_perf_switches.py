"""Scheduling from perf switch records: a perf.data without sched_switch samples replays from
its PERF_RECORD_SWITCH(_CPU_WIDE) records, and says so; its time range is that of what it
replays, with far outliers reported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from importers.perf.data import read_perf_data
from replay.api import open_capture, what_if
from replay.cli import main
from replay.timeline import _perf_switches
from tests.conftest import FIXTURES
from tests.importers.perf.builder import Attr, Writer, bits
from tests.importers.perf.oracle import can_record, perf_exe, script_lines

SID = bits("TID", "TIME", "CPU")
OUT = 1 << 13  # PERF_RECORD_MISC_SWITCH_OUT
S = 1_000_000_000
T0 = 1_000_000 * S  # a realistic perf clock reading


def switches(
    tmp_path: Path, records: list[tuple[int, int, int, bool]], wide: bool = True, **extra: int
) -> Path:
    """A perf.data of SWITCH_CPU_WIDE records (SWITCH, without the other task, if not
    ``wide``) ``(ts, cpu, tid, out)`` of the thread ``CPU 0/KVM`` (tid 100) and others, with
    its COMM record; ``extra`` adds an MMAP2 at that time."""
    w = Writer()
    a = Attr(1, 9, SID, [])  # software cpu-clock, as perf record --switch-events -a uses
    w.attrs = [a]
    comm = w.p("ii", 90, 100) + b"CPU 0/KVM\0\0\0\0\0\0\0"
    w.record(3, comm + w.sample_id(a, pid=90, tid=100, time=T0, cpu=0))
    for ts, cpu, tid, out in records:
        other = (1, 1) if tid != 1 else (100, 100)
        body = w.p("ii", *other) if wide else b""
        body += w.sample_id(a, pid=tid, tid=tid, time=ts, cpu=cpu)
        w.record(15 if wide else 14, body, OUT if out else 0)
    if "mmap2_time" in extra:
        body = w.p("iiQQQ", 90, 100, 0x1000, 0x1000, 0) + bytes(32) + b"/bin/x\0\0"
        w.record(10, body + w.sample_id(a, pid=90, tid=100, time=extra["mmap2_time"], cpu=0))
    path = tmp_path / "perf.data"
    path.write_bytes(w.file())
    return path


def test_switch_records_give_the_residency(tmp_path: Path) -> None:
    path = switches(tmp_path, [
        (T0 + 1 * S, 0, 100, False), (T0 + 3 * S, 0, 100, True),   # 2 s on CPU 0
        (T0 + 4 * S, 1, 100, False), (T0 + 5 * S, 1, -1, True),    # 1 s on CPU 1, then exits:
        (T0 + 6 * S, 0, 7, False),                                 # tid -1 (pid gone)
    ])  # fmt: skip
    cap = open_capture(path, pmus=["little=0", "big=1"])
    assert cap.frame("vcpus")["tid"].to_list() == [100]
    results = what_if(cap, ["default@cpu0"])
    row = results.summary.row(0, named=True)
    assert row["guest_ns"] == 3 * S
    assert row["stalled_ns"] == 1 * S  # the second on CPU 1, a foreign PMU
    assert any("residency is taken from perf's PERF_RECORD_SWITCH_CPU_WIDE" in n
               for n in results.meta["notes"])  # fmt: skip


@pytest.mark.parametrize(
    ("records", "unknown"),
    [
        # the idle task's switch-out (tid 0) is not the vCPU's, though the vCPU was the last
        # task switched in on that CPU
        ([(T0 + 1 * S, 0, 100, False), (T0 + 3 * S, 0, 100, True), (T0 + 4 * S, 0, 0, True)], 0),
        # a switch-out of the vCPU while off (its switch-in and the other task's switch-out
        # lost) contradicts the records: the stretch before it is unknown
        (
            [
                (T0 + 1 * S, 0, 100, False),
                (T0 + 3 * S, 0, 100, True),
                (T0 + 4 * S, 0, 7, False),
                (T0 + 5 * S, 0, 100, True),
            ],
            2 * S,
        ),
    ],
)
def test_a_switch_out_record_names_its_own_task(
    tmp_path: Path, records: list[tuple[int, int, int, bool]], unknown: int
) -> None:
    cap = open_capture(switches(tmp_path, records), pmus=["little=0", "big=1"])
    row = what_if(cap, ["default@cpu0"]).summary.row(0, named=True)
    assert (row["guest_ns"], row["unknown_ns"]) == (2 * S, unknown)


def test_per_thread_switch_records_give_the_residency_and_say_so(tmp_path: Path) -> None:
    """``perf record --switch-events`` of one thread: PERF_RECORD_SWITCH records, which do
    not name the other task (kernel/events/core.c ``perf_event_switch_output``)."""
    path = switches(tmp_path, [(T0 + 1 * S, 0, 100, False), (T0 + 3 * S, 0, 100, True)], wide=False)
    cap = open_capture(path, pmus=["little=0", "big=1"])
    results = what_if(cap, ["default@cpu0"])
    assert results.summary.row(0, named=True)["guest_ns"] == 2 * S
    assert (
        "no sched_switch events: residency is taken from perf's PERF_RECORD_SWITCH records"
        in (results.meta["notes"])
    )


def test_time_range_comes_from_what_is_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one MMAP2 timed 682,717 s before the switches, as in a simpleperf capture
    path = switches(tmp_path, [(T0 + S, 0, 100, False), (T0 + 2 * S, 0, 100, True)],
                    mmap2_time=T0 - 682_717 * S)  # fmt: skip
    meta = read_perf_data(path).metadata
    assert (meta.first_ts, meta.last_ts) == (T0 + S, T0 + 2 * S)
    assert meta.extra["time_outliers"] == {
        "records": {"MMAP2": 1},
        "earliest": T0 - 682_717 * S,
        "latest": T0 - 682_717 * S,
    }
    assert main(["import", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"duration\s+1\.000000 s", out)
    assert "1 MMAP2 timed far outside that range" in out
    # the COMM at T0, a second before the first switch, is no outlier
    near = switches(tmp_path, [(T0 + S, 0, 100, False), (T0 + 2 * S, 0, 100, True)])
    assert "time_outliers" not in read_perf_data(near).metadata.extra


@pytest.mark.slow
@pytest.mark.oracle
def test_recorded_switch_events_replay_with_the_threads_run_time(tmp_path: Path) -> None:
    reason = can_record(tmp_path)
    if reason:
        pytest.skip(f"cannot record with perf on this machine: {reason}")
    data = tmp_path / "switch.data"
    vmm = [sys.executable, str(FIXTURES / "demo/standin_vmm.py"), "--seconds", "1.5",
           "--vcpus", "2", "--load", "2"]  # fmt: skip
    # few samples and a large buffer: every switch record is kept (none lost)
    done = subprocess.run([perf_exe(), "record", "-e", "cpu-clock", "-F", "50", "-m", "1024",
                           "--switch-events", "-a", "-o", str(data), "--", *vmm],
                          capture_output=True, timeout=120)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"perf record --switch-events -a failed: {done.stderr.decode()[-300:]}")
    cpus = sorted(set(read_perf_data(data).frame("perf_switches")["cpu"].drop_nulls()))
    cap = open_capture(data, pmus=[f"little={cpus[0]}", f"big={','.join(map(str, cpus[1:]))}"])
    assert cap.table("sched_switch").num_rows == 0 and cap.table("lost_events").num_rows == 0
    vcpus = cap.frame("vcpus")["tid"].to_list()
    assert len(vcpus) == 2
    # perf's own reading of the same records: a thread runs from its switch-in to its next
    # switch-out on that CPU; an exiting thread's switch-out shows tid -1 (its pid is gone,
    # kernel/events/core.c perf_event_pid_type) and ends whoever the CPU switched in last
    spans: dict[int, int] = dict.fromkeys(vcpus, 0)
    on_cpu: dict[int, tuple[int, int]] = {}  # cpu -> (tid, since)
    for ln in script_lines(str(data), "tid,pid,cpu,time", "--show-switch-events"):
        m = re.match(r"PERF_RECORD_SWITCH_CPU_WIDE (IN|OUT)", ln.rest)
        if not m or ln.cpu is None:
            continue
        if m[1] == "IN":
            on_cpu[ln.cpu] = (ln.tid, ln.ts)
            continue
        tid, since = on_cpu.pop(ln.cpu, (None, 0))
        if tid in spans and ln.tid in (tid, -1):
            spans[tid] += ln.ts - since
    assert all(spans.values())
    summary = what_if(cap, ["default@cpu0"]).summary
    assert dict(summary.select("vcpu", "guest_ns").rows()) == spans
    assert summary["unknown_ns"].sum() == 0


def test_switch_records_without_a_cpu_are_left_out_and_counted() -> None:
    """Records recorded without sample CPU cannot place a vCPU: left out, and a note counts
    those of the vCPU threads (kernel/events/core.c perf_event_switch_output writes the CPU
    only with PERF_SAMPLE_CPU)."""
    perf = pl.DataFrame(
        {
            "tid": [100, 100, 100, 100, 7],
            "ts": [T0, T0 + S, T0 + 2 * S, T0 + 3 * S, T0 + 4 * S],
            "seq": [0, 1, 2, 3, 4],
            "cpu": [0, 0, None, None, None],
            "out": [False, True, False, True, False],
        },
        schema_overrides={"cpu": pl.Int32},
    )
    notes: list[str] = []
    bounds = _perf_switches(perf, [100], notes)
    assert bounds.select("tid", "ts", "cpu").rows() == [(100, T0, 0), (100, T0 + S, 0)]
    assert notes == [
        "2 switch records of the vCPU threads carry no CPU (recorded without sample CPU) and "
        "cannot say where they ran: left out"
    ]
    one: list[str] = []
    assert _perf_switches(perf.head(3), [100], one).height == 2
    assert one == [notes[0].replace("2 switch", "1 switch")]
    nothing: list[str] = []
    assert _perf_switches(perf.head(2), [100], nothing).height == 2
    assert nothing == []  # nothing left out, nothing said
