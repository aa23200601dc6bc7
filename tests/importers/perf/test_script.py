"""perf script and perf stat text: shared captures, text written by perf 6.1 from recordings
made here (compared with the perf.data import of the same recording), and the perf stat
variants of formats.md §6.4 item 14."""

from __future__ import annotations

import importlib
import subprocess
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load, sniff
from importers.errors import CaptureFormatError
from importers.perf.script import read_perf_script
from tests.importers.perf.oracle import can_record, perf_exe, record


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("perf-text")
    reason = can_record(tmp)
    if reason:
        pytest.skip(f"cannot record with perf on this machine: {reason}")
    return {
        "sched": record(tmp / "sched.data", "-e", "sched:sched_switch", "-a", "--", "sleep", "0.3"),
        "switch": record(
            tmp / "switch.data", "-e", "cpu-clock", "--switch-events", "-a", "--", "sleep", "0.3"
        ),
    }


def script(data: Path, out: Path, *args: str) -> Path:
    res = subprocess.run(
        [perf_exe(), "script", "-i", str(data), *args], capture_output=True, timeout=120
    )
    out.write_bytes(res.stdout)
    return out


def test_flamegraph_perf_script_with_header_and_lbr_callchains(shared_traces: Path) -> None:
    path = shared_traces / "flamegraph-perf-script" / "perf-cycles-instructions-01.txt"
    assert sniff(path) == "perf-script"
    cap = load(path)
    s = cap.frame("pmu_samples")
    assert Counter(s["event"].cast(pl.Utf8).to_list()) == {"cycles": 111, "instructions": 333}
    extra = cap.metadata.extra
    assert extra["callchain_lines"] == 705 and extra["samples"] == 444
    assert extra["perf_header"]["nrcpus avail"] == "8" and cap.metadata.cpu_count == 8
    assert len(extra["perf_header"]["event"]) == 2
    first = s.row(0, named=True)
    assert (first["ts"], first["cpu"], first["pid"], first["tgid"]) == (
        1410597984841000,
        1,
        21796,
        None,
    )
    assert cap.metadata.ts_resolution_ns == 1000
    assert cap.metadata.skipped == {}


def test_simpleperf_script_text_tab_separated_with_callchains(shared_traces: Path) -> None:
    path = shared_traces / "simpleperf-android" / "perf_display_bitmaps.header.perf-script"
    cap = load(path)
    s = cap.frame("pmu_samples")
    assert s.height == 525 and set(s["event"].cast(pl.Utf8)) == {"cpu-clock"}
    assert cap.metadata.extra["callchain_lines"] == 16285
    assert s.row(0, named=True)["tgid"] == 31850 and s.row(0, named=True)["pid"] == 31881
    assert set(s["period"].to_list()) == {250000}
    assert cap.metadata.extra["perf_header"]["event_type_info"] == "cpu-clock,1,0"
    assert "RenderThread" in cap.frame("tasks")["comm"].cast(pl.Utf8).to_list()


def _switch_rows(frame: pl.DataFrame, to_us: bool) -> list[tuple[object, ...]]:
    ts = (pl.col("ts") // 1000 * 1000) if to_us else pl.col("ts")
    cols = ["cpu", "prev_comm", "prev_pid", "prev_state_str", "next_comm", "next_pid",
            "next_prio"]  # fmt: skip
    return frame.select(ts, *(pl.col(c).cast(pl.Utf8) for c in cols)).rows()


@pytest.mark.oracle
@pytest.mark.parametrize("args", [(), ("--ns", "-F", "comm,pid,tid,cpu,time,event,trace")])
def test_sched_switch_text_equals_the_perf_data_import(
    recorded: dict[str, Path], tmp_path: Path, args: tuple[str, ...]
) -> None:
    text = script(recorded["sched"], tmp_path / "sched.txt", *args)
    assert sniff(text) == "perf-script"
    from_text, from_data = load(text), load(recorded["sched"])
    rows = _switch_rows(from_text.frame("sched_switch"), False)
    assert rows == _switch_rows(from_data.frame("sched_switch"), not args)
    assert len(rows) > 0
    assert from_text.metadata.skipped == {}
    # text has perf's sample tid, which perf prints as -1 for a task that was exiting; the
    # binary import has the raw entry's common_pid
    pids = zip(
        from_text.frame("sched_switch")["common_pid"].to_list(),
        from_data.frame("sched_switch")["common_pid"].to_list(),
        strict=True,
    )
    assert all(t in (d, -1) for t, d in pids)


@pytest.mark.oracle
def test_switch_events_and_ip_fields_equal_the_perf_data_import(
    recorded: dict[str, Path], tmp_path: Path
) -> None:
    data = load(recorded["switch"])
    text = load(script(recorded["switch"], tmp_path / "sw.txt", "--show-switch-events"))
    cols = ["cpu", "tid", "out", "preempt", "next_prev_pid", "next_prev_tid"]  # text: tid only
    us = pl.col("ts") // 1000
    assert (
        text.frame("perf_switches").select(us, *cols).rows()
        == data.frame("perf_switches").select(us, *cols).rows()
    )
    fields = load(script(recorded["switch"], tmp_path / "ip.txt", "-F", "tid,cpu,time,event,ip"))
    keep = ["cpu", "pid", "event", "ip"]
    assert (
        fields.frame("pmu_samples").select(us, *keep).rows()
        == data.frame("pmu_samples").select(us, *keep).rows()
    )


def test_not_perf_script(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("# ========\n# cmdline : perf record\n# ========\n#\n")
    with pytest.raises(CaptureFormatError, match="no perf script sample line"):
        load(path)


def test_truncated_tracepoint_payload_is_kept_in_events(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_text(
        "            perf 28940 [000]  1580.107277: sched:sched_switch: prev_comm=perf "
        "prev_pid=28940 prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18 "
        "next_prio=0\n"
        " memfd:sealed-91  3413 [001]  1580.285761: sched:sched_switch: prev_comm=memfd:sea\n"
    )
    cap = load(path)
    assert cap.frame("sched_switch").select("ts", "prev_pid", "next_pid").rows() == [
        (1580107277000, 28940, 18)
    ]
    events = cap.frame("events")
    assert events.select("seq", pl.col("event").cast(pl.Utf8), "args").rows() == [
        (1, "sched_switch", "prev_comm=memfd:sea")
    ]
    # the same reason, count and location as the ftrace text importer gives such a line
    assert cap.metadata.skipped == {
        "sched_switch payload not understood (kept in events)": {"count": 1, "first": ["line 2"]}
    }


def test_exiting_task_lines_do_not_make_perf_script_look_like_ftrace(tmp_path: Path) -> None:
    # perf prints comm ":-1" and tid -1 for a task that is exiting: ":-1    -1 [000]" has the
    # shape of ftrace's "comm-pid [cpu]"
    line = (
        "{comm} {tid:>5} [000]  4315.4{n:05d}: sched:sched_switch: prev_comm=python "
        "prev_pid=7 prev_prio=120 prev_state=X ==> next_comm=swapper/0 next_pid=0 next_prio=120\n"
    )
    text = "".join(
        line.format(comm=":-1" if n % 3 == 0 else "python", tid=-1 if n % 3 == 0 else 7, n=n)
        for n in range(30)
    )
    path = tmp_path / "exit.txt"
    path.write_text(text)
    assert sniff(path) == "perf-script"
    switch = load(path).frame("sched_switch")
    assert switch.height == 30 and switch["common_pid"].to_list()[:2] == [-1, 7]


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    # the same reason and location as the ftrace text importer gives
    switch = (
        b": sched:sched_switch: prev_comm=perf prev_pid=28940 prev_prio=120 prev_state=D "
        b"==> next_comm=migration/0 next_pid=18 next_prio=0\n"
    )
    path = tmp_path / "u.txt"
    path.write_bytes(
        b"            perf 28940 [000]  1580.107277" + switch
        + b"".join(b"            p\xffrf 28940 [000]  1580.10728%d" % n + switch for n in range(7))
    )  # fmt: skip
    cap = load(path)
    assert cap.frame("sched_switch")["ts"].to_list() == [1580107277000] + [
        1580107280000 + n * 1000 for n in range(7)
    ]
    # all 7 counted, the first 5 (FIRST_LOCATIONS) named
    assert cap.metadata.skipped == {
        "invalid UTF-8 replaced (line imported)": {
            "count": 7,
            "first": [f"line {n}" for n in range(2, 7)],
        }
    }


def test_lines_whose_numbers_do_not_fit_are_skipped_and_counted(tmp_path: Path) -> None:
    # 10^10 s is past 2^63 ns; CPU 40000 is past the int16 cpu column
    line = (
        "            perf 28940 [{cpu}]  {ts}: sched:sched_switch: prev_comm=perf prev_pid=28940 "
        "prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18 next_prio=0\n"
    )
    path = tmp_path / "big.txt"
    path.write_text(
        line.format(cpu="000", ts="1580.107277")
        + line.format(cpu="000", ts="10000000000.000000")
        + line.format(cpu="40000", ts="1580.107278")
    )
    cap = load(path)
    meta = cap.metadata
    assert (meta.format, meta.clock, meta.first_ts) == ("perf-script", "perf", 1580107277000)
    assert cap.frame("sched_switch")["ts"].to_list() == [1580107277000]
    assert sorted((next(iter(v["first"])), v["count"]) for v in meta.skipped.values()) == [
        ("line 2", 1),
        ("line 3", 1),
    ]
    assert all(reason.endswith("(line skipped)") for reason in meta.skipped)


def test_strict_raises_at_the_first_skipped_line_naming_file_and_line(tmp_path: Path) -> None:
    line = (
        "            perf 28940 [000]  {ts}: sched:sched_switch: prev_comm=perf prev_pid=28940 "
        "prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18 next_prio=0\n"
    )
    path = tmp_path / "big.txt"
    path.write_text(line.format(ts="1580.107277") + line.format(ts="10000000000.000000"))
    with pytest.raises(CaptureFormatError) as err:
        load(path, strict=True)
    assert str(err.value).startswith(f"{path}: ") and " at line 2 (1 in all)" in str(err.value)


def test_metadata_spans_the_samples_and_names_its_importer(shared_traces: Path) -> None:
    cap = load(shared_traces / "flamegraph-perf-script" / "perf-cycles-instructions-01.txt")
    ts = cap.frame("pmu_samples")["ts"]
    assert (cap.metadata.first_ts, cap.metadata.last_ts) == (ts.min(), ts.max())
    # the importer is recorded as "module:function" and resolves to the function that ran
    module, name = cap.metadata.importer.split(":")
    assert getattr(importlib.import_module(module), name) is read_perf_script


def test_lines_that_are_not_samples_are_all_counted(tmp_path: Path) -> None:
    good = (
        "            perf 28940 [000]  1580.107277: sched:sched_switch: prev_comm=perf "
        "prev_pid=28940 prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18 "
        "next_prio=0\n"
    )
    path = tmp_path / "garbage.txt"
    path.write_text(good + "".join(f"garbage {n}\n" for n in range(7)))
    cap = load(path)
    assert cap.frame("sched_switch").height == 1
    # all 7 counted, the first 5 (FIRST_LOCATIONS) named
    assert cap.metadata.skipped == {
        "line that is neither a perf script sample, a callchain nor a header": {
            "count": 7,
            "first": [f"line {n}" for n in range(2, 7)],
        }
    }
