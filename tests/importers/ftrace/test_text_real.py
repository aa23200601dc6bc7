"""Real text captures from ../shared/traces: exact counts, lossless round trip, and trace-cmd.

Counts come from ../shared/traces/README.md; for the trace.dat files, ``trace-cmd report`` (the
oracle installed by .ci/run) renders text in each of its modes and the import of that text must
give trace-cmd's own counts (README "(tc)") and the counts of an independent line counter.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from importers.capture import Capture
from importers.detect import load, sniff
from tests.importers.textcap import scanner_agrees_with_regex

README_COUNTS: dict[str, dict[str, int]] = {
    "juno-trace-txt/trace.txt": {
        "sched_switch": 1856,
        "sched_wakeup": 1068,
        "print": 14,
        "sched_overutilized": 3,
    },
    "trappy-surfaceflinger/trace_surfaceflinger.html": {
        "sched_switch": 715,
        "cpu_idle": 621,
        "sched_wakeup": 421,
        "cpu_frequency": 104,
        "tracing_mark_write": 160,
    },
    "trappy-surfaceflinger/trace_systrace.html": {
        "sched_switch": 4,
        "sched_wakeup": 4,
        "tracing_mark_write": 2,
    },
    "catapult-android-systrace/android_systrace.txt": {"sched_switch": 58, "sched_wakeup": 33},
    "kvm-x86-host-report-txt/host_report.txt": {
        "write_msr": 3482,
        "kvm_exit": 810,
        "kvm_entry": 806,
        "cpu_idle": 640,
        "sched_switch": 515,
    },
}
TRACE_CMD_COUNTS: dict[str, dict[str, int]] = {
    "juno-sched-load/trace.dat": {
        "sched_load_cfs_rq": 2437,
        "cpu_idle": 474,
        "sched_switch": 399,
        "sched_load_se": 364,
        "sched_migrate_task": 28,
        "cpu_frequency": 16,
        "print": 6,
    },
    "exynos-hmp-2014/trace.dat": {
        "sched_rq_runnable_ratio": 15129,
        "sched_rq_runnable_load": 15129,
        "sched_stat_runtime": 7981,
        "sched_switch": 826,
        "sched_wakeup": 415,
        "sched_migrate_task": 9,
    },
}
REPORT_MODES = ["", "-N", "-R", "-t", "-l"]

# An independent count: the event name is the first "name:" token after the timestamp.
_EVENT_AFTER_TS = re.compile(r"\d+\.\d+: +(?:\(\+\d+\) +)?([\w.-]+):")


def independent_counts(text: str) -> Counter[str]:
    return Counter(m.group(1) for m in map(_EVENT_AFTER_TS.search, text.splitlines()) if m)


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_text_capture_counts_match_readme(shared_traces: Path, name: str) -> None:
    cap = load(shared_traces / name)
    counts = cap.event_counts()
    for event, expected in README_COUNTS[name].items():
        assert counts.get(event) == expected, event
    assert cap.metadata.skipped == {}


def test_host_report_has_every_line(shared_traces: Path) -> None:
    path = shared_traces / "kvm-x86-host-report-txt/host_report.txt"
    cap = load(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "cpus=20"
    # README: 16671 event lines; every line but the preamble is an event
    assert sum(cap.event_counts().values()) == len(lines) - 1 == 16671
    assert cap.metadata.cpu_count == 20


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_parquet_round_trip_is_lossless(shared_traces: Path, tmp_path: Path, name: str) -> None:
    cap = load(shared_traces / name)
    cap.save(tmp_path)
    back = Capture.load(tmp_path)
    assert back.metadata == cap.metadata
    assert sorted(back.tables) == sorted(cap.tables)
    for table in cap.tables:
        assert_frame_equal(back.frame(table), cap.frame(table))


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_byte_scanner_agrees_with_the_regex_grammar(shared_traces: Path, name: str) -> None:
    scanner_agrees_with_regex(shared_traces / name)


def test_zipped_and_legacy_systrace(shared_traces: Path, tmp_path: Path) -> None:
    html = shared_traces / "trappy-surfaceflinger/trace_surfaceflinger.html"
    archive = tmp_path / "systrace.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(html, "trace.html")
    assert sniff(archive) == "systrace-zip"
    assert load(archive).event_counts() == load(html).event_counts()
    legacy = tmp_path / "legacy.html"
    legacy.write_text(
        '<html><body><script>\nvar linuxPerfData = "\\\n'
        "# tracer: nop\\n\\\n"
        "          atrace-14662 [000] 50260.647576: sched_switch: prev_comm=atrace prev_pid=14662 "
        "prev_prio=120 prev_state=S ==> next_comm=kworker/0:0 next_pid=13696 next_prio=120\\n\\\n"
        '";\n</script></body></html>\n'
    )
    assert load(legacy).event_counts() == {"sched_switch": 1}


@pytest.fixture(scope="module")
def trace_cmd() -> str:
    exe = shutil.which("trace-cmd")
    if exe is None:
        pytest.skip("trace-cmd not installed (.ci/run installs Debian's trace-cmd)")
    return exe


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(TRACE_CMD_COUNTS))
@pytest.mark.parametrize("mode", REPORT_MODES)
def test_trace_cmd_report_text_imports_exactly(
    shared_traces: Path, tmp_path: Path, trace_cmd: str, name: str, mode: str
) -> None:
    out = tmp_path / "report.txt"
    with open(out, "w") as fh:
        subprocess.run(
            [trace_cmd, "report", *([mode] if mode else []), str(shared_traces / name)],
            stdout=fh,
            stderr=subprocess.DEVNULL,
            check=True,
        )
    cap = load(out)
    counts = cap.event_counts()
    for event, expected in TRACE_CMD_COUNTS[name].items():
        assert counts.get(event) == expected, event
    assert counts == dict(independent_counts(out.read_text()))
    assert cap.metadata.skipped == {}
    assert cap.metadata.ts_resolution_ns == (1 if mode == "-t" else 1000)
    scanner_agrees_with_regex(out)
    switch = cap.frame("sched_switch")
    assert switch["prev_pid"].null_count() == 0 and switch["next_pid"].null_count() == 0
    assert switch.filter(pl.col("prev_state").is_null()).height == 0
