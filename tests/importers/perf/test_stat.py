"""perf stat -x, CSV and -j JSON (formats.md §4.8, §6.4 item 14): per-CPU and per-core rows,
intervals, ``<not counted>`` rows of a PMU that did not run the task, metric-only lines, the
invalid trailing-comma JSON of some perf releases, and live ``perf stat`` output."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load, sniff
from importers.errors import CaptureFormatError
from importers.perf.stat import read_perf_stat

COLS = ["ts", "cpu", "pmu", "event", "value", "status", "unit", "time_running_ns", "aggregate"]


def rows(path: Path) -> list[tuple[object, ...]]:
    frame = load(path).frame("pmu_counts")
    return frame.select(
        pl.col(c).cast(pl.Utf8) if frame[c].dtype == pl.Categorical else pl.col(c) for c in COLS
    ).rows()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hybrid_arm_csv_with_not_counted_pmu(tmp_path: Path) -> None:
    # one generic event expanded per core PMU; the PMU that did not run the task reads
    # <not counted> (ArmDeveloperEcosystem/sysreport#10, as quoted in formats.md §4.6)
    path = write(
        tmp_path,
        "stat.csv",
        "# started on Mon Jan  1 00:00:00 2024\n\n"
        "<not counted>,,armv8_pmuv3_0/instructions/u,0,0.00,,\n"
        "134652,,armv8_pmuv3_1/instructions/u,212064,100.00,,\n"
        ",,,,,0.697,CPUs utilized\n",
    )
    assert sniff(path) == "perf-stat-csv"
    assert rows(path) == [
        (None, None, "armv8_pmuv3_0", "armv8_pmuv3_0/instructions/u", None, "not counted",
         "", 0, None),
        (None, None, "armv8_pmuv3_1", "armv8_pmuv3_1/instructions/u", 134652, "counted",
         "", 212064, None),
    ]  # fmt: skip
    assert load(path).metadata.extra["metric_only_lines"] == 1


def test_interval_per_cpu_and_per_core(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "i.csv",
        "     1.000417893,CPU0,2000,,armv8_pmuv3_0/cycles/,1000,100.00,,\n"
        "     1.000417893,CPU7,<not supported>,,armv8_pmuv3_0/cycles/,0,100.00,,\n"
        "S0-D0-C1,2,115.39,msec,task-clock,115393214,100.00,1.007,CPUs utilized\n",
    )
    assert rows(path) == [
        (1000417893, 0, "armv8_pmuv3_0", "armv8_pmuv3_0/cycles/", 2000, "counted", "", 1000,
         None),
        (1000417893, 7, "armv8_pmuv3_0", "armv8_pmuv3_0/cycles/", None, "not supported", "",
         0, None),
        (None, None, None, "task-clock", 115390000, "counted", "ns", 115393214, "S0-D0-C1"),
    ]  # fmt: skip


def test_json_lines_string_values_and_trailing_comma(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "stat.json",
        '{"interval" : 2.000123, "cpu" : "3", "counter-value" : "3805.723968", "unit" : "msec",'
        ' "event" : "task-clock", "event-runtime" : 3805723968, "pcnt-running" : 100.00,'
        ' "metric-value" : "0.95", "metric-unit" : "CPUs utilized"}\n'
        '{"core" : "S0-D0-C15", "aggregate-number" : 2, "counter-value" : "<not counted>",'
        ' "unit" : "", "event" : "cpu_atom/cycles/", "event-runtime" : 0, "pcnt-running" : 0.00, }\n'
        '{"counter-value" : "42.000000", "unit" : "", "event" : "instructions",'
        ' "event-runtime" : 10, "pcnt-running" : 100.00, "metric-value" : 1.5}\n'
        "{not json\n",
    )
    assert sniff(path) == "perf-stat-json"
    cap = load(path)
    assert rows(path) == [
        (2000123000, 3, None, "task-clock", 3805723968, "counted", "ns", 3805723968, None),
        (None, None, "cpu_atom", "cpu_atom/cycles/", None, "not counted", "", 0, "S0-D0-C15"),
        (None, None, None, "instructions", 42, "counted", "", 10, None),
    ]
    assert list(cap.metadata.skipped) == ["perf stat JSON line that does not decode"]


def test_fractional_non_clock_value_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "12.34,Joules,power/energy-pkg/,1000,100.00,,\n")
    cap = load(path)
    assert cap.frame("pmu_counts")["value"].to_list() == [None]
    assert "fractional counter value in unit Joules (not a count)" in cap.metadata.skipped
    with pytest.raises(CaptureFormatError, match="fractional counter value"):
        load(path, strict=True)


def test_no_counter_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "1,,cycles,x,y\n")
    with pytest.raises(CaptureFormatError, match="no perf stat counter line found"):
        load(path)


@pytest.mark.oracle
@pytest.mark.parametrize("mode", [["-x,", "-A"], ["-j", "-A"], ["-x,", "-I", "100"]])
def test_live_perf_stat_output(tmp_path: Path, mode: list[str]) -> None:
    perf = shutil.which("perf")
    if perf is None:
        pytest.skip("perf is not installed (CI installs Debian's linux-perf)")
    out = tmp_path / "stat.out"
    res = subprocess.run(
        [perf, "stat", *mode, "-a", "-e", "task-clock,context-switches", "-o", str(out),
         "--", "sleep", "0.25"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"perf stat failed here: {res.stderr.decode(errors='replace')[-200:]}")
    lines = [ln for ln in out.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    frame = load(out).frame("pmu_counts")
    assert frame.height == len(lines)
    assert set(frame["event"].cast(pl.Utf8)) == {"task-clock", "context-switches"}
    counted = frame.filter(pl.col("status") == "counted")
    switches = counted.filter(pl.col("event") == "context-switches")
    for line, value in zip(
        [ln for ln in lines if "context-switches" in ln and "<not" not in ln],
        switches["value"].to_list(),
        strict=True,
    ):
        assert f'"{value}.000000"' in line or f",{value}," in line
    if "-A" in mode:
        assert set(frame["cpu"].to_list()) == set(range(len(set(frame["cpu"].to_list()))))


def test_values_beyond_uint64_are_null_and_counted(tmp_path: Path) -> None:
    # a run time past 2^64 once crashed the import, then became null uncounted; a count past
    # it cannot be a uint64
    path = write(
        tmp_path,
        "big.csv",
        "42,,cycles,18446744073709551616,100.00,,\n"
        "18446744073709551616,,instructions,1000,100.00,,\n"
        "18446744073709551615,,branches,1000,100.00,,\n",
    )
    cap = load(path)
    assert rows(path) == [
        (None, None, None, "cycles", 42, "counted", "", None, None),
        (None, None, None, "instructions", None, "counted", "", 1000, None),
        (None, None, None, "branches", 2**64 - 1, "counted", "", 1000, None),
    ]
    assert cap.metadata.skipped == {
        "perf stat counter value outside 0..2^64": {"count": 1, "first": ["line 2"]},
        "run time in ns outside 0..18446744073709551615 (row kept, run time unknown)": {
            "count": 1,
            "first": ["line 1"],
        },
    }


def test_json_per_die_lines_and_damaged_lines_among_good_ones(tmp_path: Path) -> None:
    # perf stat -j --per-die names the die ("S0-D1"); a damaged line is skipped and counted,
    # and the lines after it are still read
    path = write(
        tmp_path,
        "die.json",
        '{"interval" : 1.5, "die" : "S0-D1", "aggregate-number" : 4, "counter-value" : "5",'
        ' "unit" : "", "event" : "cycles", "event-runtime" : 7, "pcnt-running" : 100.00}\n'
        '{"interval" : 1.5, "counter-value" : "6", "unit" : ""}\n'
        "[1, 2]\n"
        '{"interval" : 2.5, "die" : "S0-D0", "aggregate-number" : 4, "counter-value" : "9",'
        ' "unit" : "", "event" : "cycles", "event-runtime" : 8, "pcnt-running" : 100.00}\n',
    )
    cap = load(path)
    assert rows(path) == [
        (1_500_000_000, None, None, "cycles", 5, "counted", "", 7, "S0-D1"),
        (2_500_000_000, None, None, "cycles", 9, "counted", "", 8, "S0-D0"),
    ]
    assert (cap.metadata.first_ts, cap.metadata.last_ts) == (1_500_000_000, 2_500_000_000)
    assert cap.metadata.skipped == {
        "perf stat JSON line with a counter-value or an event, not both": {
            "count": 1,
            "first": ["line 2"],
        },
        "perf stat JSON line that is not an object": {"count": 1, "first": ["line 3"]},
    }


def test_a_clock_in_msec_converts_up_to_the_last_ns_of_uint64(tmp_path: Path) -> None:
    # 2^64 - 1 ns = 18446744073709.551615 ms: that reading fits, one ns more does not; without
    # -I a line has no time, though its first field has a decimal point
    path = write(
        tmp_path,
        "ms.csv",
        "18446744073709.551615,msec,task-clock,1000,100.00,,\n"
        "18446744073709.551616,msec,task-clock,1000,100.00,,\n"
        "2.5,msec,task-clock,1000,100.00,,\n",
    )
    assert [(r[0], r[4]) for r in rows(path)] == [
        (None, 2**64 - 1),
        (None, None),
        (None, 2_500_000),
    ]
    assert [loc["first"] for loc in load(path).metadata.skipped.values()] == [["line 2"]]


def test_an_empty_run_time_is_a_counter_line_with_the_run_time_unknown(tmp_path: Path) -> None:
    # the value is followed by a unit, an event and "a numeric or empty run time" (_csv_fields)
    path = write(tmp_path, "e.csv", "1234,,armv8_pmuv3_0/cycles/,,,,\n")
    assert rows(path) == [
        (None, None, "armv8_pmuv3_0", "armv8_pmuv3_0/cycles/", 1234, "counted", "", None, None)
    ]
    # the importer is recorded as "module:function" and resolves to the function that ran
    module, name = load(path).metadata.importer.split(":")
    assert getattr(importlib.import_module(module), name) is read_perf_stat
