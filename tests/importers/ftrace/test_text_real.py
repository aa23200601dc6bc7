"""Real text captures from ../shared/traces: exact counts, row-by-row fields, lossless round
trip, and trace-cmd.

Counts come from ../shared/traces/README.md; for the trace.dat files, ``trace-cmd report`` (the
oracle installed by .ci/run) renders text in each of its modes and the import of that text must
give trace-cmd's own counts (README "(tc)"), the counts of an independent line counter, and,
row by row, the records of the trace.dat import of the same capture. Captures that exist only as
text are compared row by row with an independent regex reading of their lines.
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
from importers.schema import TYPED_TABLES
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
#: include/linux/sched.h (4.14 on): the bit a "+" after prev_state's letters stands for in text
TASK_REPORT_MAX = 0x100

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
    assert_rows_equal_trace_dat(cap, load(shared_traces / name), mode)


def _plain(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("seq").with_columns(pl.col(pl.Categorical).cast(pl.Utf8))


def assert_rows_equal_trace_dat(text: Capture, dat: Capture, mode: str) -> None:
    """Every record of every typed table, row by row and field by field, equals the trace.dat
    import of the same capture; the long ``events`` table by time, CPU, pid and event name.

    ``trace-cmd report`` prints microseconds rounded to nearest (``-t``: nanoseconds). What a
    text form cannot carry is left out, per mode: ``-R`` prints ``prev_state`` as a number only;
    the sched plugin (default, ``-t``, ``-l``) prints the state letters without the preempted
    ``+`` (libtraceevent plugin_sched_switch.c ``write_state``); ``-N`` prints the ``+`` but text
    can only encode it as today's TASK_REPORT_MAX bit, while these pre-4.14 kernels set
    TASK_STATE_MAX (1024 or 4096): ``prev_state`` is compared where no ``+`` was printed.
    """
    res = 1 if mode == "-t" else 1000
    names = [n for n in (*TYPED_TABLES, "events") if n in dat.tables or n in text.tables]
    assert names and [n for n in names if n in text.tables] == names
    for name in names:
        want, got = _plain(dat.frame(name)), _plain(text.frame(name))
        want = want.with_columns((pl.col("ts") + res // 2) // res * res)
        if name == "events":
            columns = ["ts", "cpu", "common_pid", "event"]
            want, got = want.select(columns), got.select(columns)
        elif name == "sched_switch":
            preempted = want["prev_state_str"].str.ends_with("+")
            if mode == "-R":
                want, got = want.drop("prev_state_str"), got.drop("prev_state_str")
            elif mode == "-N":
                marked = want.filter(preempted).with_columns(prev_state=TASK_REPORT_MAX)
                assert_frame_equal(got.filter(preempted), marked, check_dtypes=False)
                want, got = want.filter(~preempted), got.filter(~preempted)
            else:
                assert_frame_equal(
                    got.select("prev_state_str"),
                    want.select(pl.col("prev_state_str").str.strip_chars_end("+")),
                )
                want = want.filter(~preempted).drop("prev_state_str")
                got = got.filter(~preempted).drop("prev_state_str")
        assert want.height > 0, name
        assert_frame_equal(got, want, check_dtypes=False)


# An independent reading of a text capture's event lines (kernel trace, trace-cmd report,
# systrace): "comm-pid [(tgid)] [cpu] [flags] sec.usec: event: payload".
_CONTEXT = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[\w.]{4,5}\s+)?(?P<sec>\d+)\.(?P<usec>\d{6}):\s+(?P<event>\w+):\s+(?P<payload>.*?)"
    r"(?:\\n\\)?$"
)
# a value runs to the next " key=" or " ==>" (comms may hold spaces: "shell srvc 7950")
_KEY_VALUE = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|\s+==>|$)")
# trace-cmd's sched plugin: "prev:1 [120] S ==> next:2 [120]", "comm:pid [prio] CPU:003"
_PLUGIN_SWITCH = re.compile(
    r"^(?P<prev_comm>.*):(?P<prev_pid>\d+) \[(?P<prev_prio>-?\d+)\] (?P<prev_state>\S+) ==> "
    r"(?P<next_comm>.*):(?P<next_pid>\d+) \[(?P<next_prio>-?\d+)\]$"
)
_PLUGIN_WAKEUP = re.compile(
    r"^(?P<comm>.*):(?P<pid>\d+) \[(?P<prio>-?\d+)\](?: success=\d+)? CPU:(?P<target_cpu>\d+)$"
)
_FIELDS = {
    "sched_switch": ("prev_comm", "prev_pid", "prev_prio", "next_comm", "next_pid", "next_prio"),
    "sched_wakeup": ("comm", "pid", "prio", "target_cpu"),
}


def regex_rows(path: Path, event: str) -> list[tuple[object, ...]]:
    """``ts, cpu, common_pid, *fields, state`` of every ``event`` line, in file order."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = _CONTEXT.match(line)
        if not m or m["event"] != event:
            continue
        payload = m["payload"]
        plugin = (_PLUGIN_SWITCH if event == "sched_switch" else _PLUGIN_WAKEUP).match(payload)
        fields = plugin.groupdict() if plugin else dict(_KEY_VALUE.findall(payload))
        values = [v if k.endswith("comm") else int(v) for k in _FIELDS[event] for v in [fields[k]]]
        ts = int(m["sec"]) * 1_000_000_000 + int(m["usec"]) * 1000
        state = [fields["prev_state"]] if event == "sched_switch" else []
        out.append((ts, int(m["cpu"]), int(m["pid"]), *values, *state))
    return out


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_text_rows_equal_an_independent_regex_reading(shared_traces: Path, name: str) -> None:
    path = shared_traces / name
    cap = load(path)
    for event, fields in _FIELDS.items():
        want = regex_rows(path, event)
        frame = cap.frame(event).sort("seq")
        state = (
            [
                str(n) if s is None else s
                for n, s in frame.select("prev_state", "prev_state_str").rows()
            ]
            if event == "sched_switch"
            else None
        )
        got = frame.select("ts", "cpu", "common_pid", *fields).rows()
        if state is not None:
            got = [(*row, s) for row, s in zip(got, state, strict=True)]
        assert len(want) == README_COUNTS[name].get(event, len(want))
        assert got == want, (name, event)
