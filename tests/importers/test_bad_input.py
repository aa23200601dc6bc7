"""Minimised reproducers of every class of bad input (issue 15), through ``pmu-replay import``.

Each case writes one damaged input — a real capture with one line or field made wrong, at run
time, or a few hand-written lines — and asserts the exact outcome: a one-line error naming the
file and the line or offset (and its exit code), or exit 0 with exactly the skips counted and
the tables as the undamaged input gives them. Reasons are those of :mod:`importers.ranges`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load
from importers.perf.file import open_perf
from importers.perf.records import SAMPLE, read_stream
from importers.skips import SkipLog
from importers.tracedat.file import read_container
from importers.tracedat.reader import open_reader
from replay.cli import main
from tests.conftest import FIXTURES

JUNO = "juno-trace-txt/trace.txt"
I16 = "-32768..32767"
I32 = "-2147483648..2147483647"
I64 = "-9223372036854775808..9223372036854775807"
U64 = "0..18446744073709551615"
WAKEUP = "sched_wakeup:          comm=sh pid=1642 prio=120 success=1 target_cpu=2"
SWITCH = (
    "sched_switch:          prev_comm=trace-cmd prev_pid=1701 prev_prio=120 prev_state={s} "
    "next_comm=swapper/1 next_pid={n} next_prio=120"
)


def run_import(
    capsys: pytest.CaptureFixture[str], path: Path, code: int = 0
) -> tuple[dict[str, object], str]:
    """``pmu-replay import PATH --json``: its summary (when it succeeds) and its stderr."""
    assert main(["import", str(path), "--json"]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return (json.loads(out) if code == 0 else {}), err


def juno_with(shared: Path, tmp: Path, line: str) -> tuple[Path, Path]:
    """The first 20 lines of the juno capture with ``line`` inserted as line 4, and the same
    lines without it."""
    lines = (shared / JUNO).read_text().splitlines(keepends=True)[:20]
    clean, bad = tmp / "clean.txt", tmp / "bad.txt"
    clean.write_text("".join(lines))
    bad.write_text("".join([*lines[:3], line + "\n", *lines[3:]]))
    return clean, bad


def skip(reason: str, *lines: int) -> dict[str, dict[str, object]]:
    return {reason: {"count": len(lines), "first": [f"line {n}" for n in lines]}}


# (bad line, skips it must give, how the tables differ from the clean lines')
CONTEXT_CASES = [
    # ftrace CPU numbers wrapped modulo 65536: [65536] was CPU 0, [99999] -31073, [2^32-1] -1
    (f"   <...>-1701  [65536]    76.211513: {WAKEUP}", f"cpu outside {I16} (line skipped)"),
    (f"   <...>-1701  [99999]    76.211513: {WAKEUP}", f"cpu outside {I16} (line skipped)"),
    (f"   <...>-1701  [4294967295]    76.211513: {WAKEUP}", f"cpu outside {I16} (line skipped)"),
    (f"   <...>-1701  [32768]    76.211513: {WAKEUP}", f"cpu outside {I16} (line skipped)"),
    # 2^64 + 1 digits: a 64-bit accumulator wraps them to pid 1
    (f"   <...>-18446744073709551617  [001]    76.211513: {WAKEUP}", f"common_pid outside {I32} (line skipped)"),
    # a huge task pid became a negative pid
    (f"   <...>-99999999999  [001]    76.211513: {WAKEUP}", f"common_pid outside {I32} (line skipped)"),
    (f"   <...>-1701  [001]    99999999999.211513: {WAKEUP}", f"timestamp in ns outside {I64} (line skipped)"),
    # several numbers out of range: the first checked (CPU, pid, TGID, time) names the skip
    (f"   <...>-99999999999  [99999]    99999999999.2: {WAKEUP}", f"cpu outside {I16} (line skipped)"),
    (f"   <...>-99999999999  [001]    99999999999.2: {WAKEUP}", f"common_pid outside {I32} (line skipped)"),
    # a lost-events marker of a CPU no column holds failed a polars cast
    ("CPU:99999 [LOST 5 EVENTS]", f"lost-events marker CPU outside {I16} (marker skipped)"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), CONTEXT_CASES)
def test_context_numbers_out_of_range_skip_the_line(
    shared_traces: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: str,
    reason: str,
) -> None:
    clean, bad = juno_with(shared_traces, tmp_path, line)
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == skip(reason, 4)
    assert summary["events"] == load(clean).event_counts()
    assert summary["lost_event_markers"] == 0
    capsys.readouterr()
    strict = main(["import", str(bad), "--strict"])
    err = capsys.readouterr().err
    assert strict == 3 and f"{bad}: {reason} at line 4 (1 in all)" in err


def test_the_largest_cpu_number_a_column_holds_is_a_row(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bad = juno_with(shared_traces, tmp_path, f"   <...>-1701  [32767]    76.211513: {WAKEUP}")
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == {}
    assert load(bad).frame("sched_wakeup").filter(pl.col("seq") == 3)["cpu"].to_list() == [32767]


def test_lost_count_past_int64_keeps_the_marker_with_an_unknown_count(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bad = juno_with(shared_traces, tmp_path, "CPU:1 [LOST 99999999999999999999 EVENTS]")
    summary, _ = run_import(capsys, bad)
    reason = f"lost-events count outside {I64} (marker kept, count unknown)"
    assert summary["skipped"] == skip(reason, 4)
    assert (summary["lost_event_markers"], summary["lost_events_unknown_count"]) == (1, 1)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # a too-large next_pid became null, then broke the Parquet write (non-nullable)
        (SWITCH.format(s="64", n="99999999999"), f"sched_switch next_pid outside {I32}"),
        (SWITCH.format(s="64", n="-2147483649"), f"sched_switch next_pid outside {I32}"),
        (SWITCH.format(s="64", n="18446744073709551617"), f"sched_switch next_pid outside {I32}"),
        ("cpu_idle: state=4294967296 cpu_id=2", "cpu_idle state outside -2147483648..4294967295"),
        ("cpu_frequency: state=4294967296 cpu_id=2", "cpu_frequency state outside 0..4294967295"),
        ("kvm_entry: vcpu_pc=18446744073709551616", f"kvm_entry vcpu_pc outside {U64}"),
    ],
)
def test_payload_fields_out_of_range_keep_the_line_in_events(
    shared_traces: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: str,
    reason: str,
) -> None:
    clean, bad = juno_with(shared_traces, tmp_path, f"   <...>-1701  [001]    76.211513: {line}")
    summary, _ = run_import(capsys, bad, 0)
    assert summary["skipped"] == skip(f"{reason} (kept in events)", 4)
    event = line.split(":")[0]
    cap = load(bad, strict=False)
    assert cap.frame("events").filter(pl.col("seq") == 3)["event"].to_list() == [event]
    typed = {k: v for k, v in load(clean).event_counts().items()}
    assert {k: v for k, v in cap.event_counts().items()} == {
        **typed,
        event: typed.get(event, 0) + 1,
    }
    assert cap.table(event).num_rows == load(clean).table(event).num_rows


def test_idle_state_of_a_u32_reads_as_the_binary_importer_reads_it(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cpu_idle state=2147483648 failed a cast to idle_state (int32): the u32 read as s32, as
    # importers.tracedat.tables does (-1 = exit from idle)
    _, bad = juno_with(
        shared_traces,
        tmp_path,
        "   <idle>-0  [002]    76.211513: cpu_idle: state=2147483648 cpu_id=2",
    )
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == {}
    row = load(bad).frame("cpu_idle").row(0, named=True)
    assert (row["state"], row["idle_state"]) == (2147483648, -2147483648)


@pytest.mark.parametrize(
    ("state", "reason", "printed"),
    [
        ("Q", "sched_switch prev_state letter the kernel never prints", "Q"),
        # the kernel prints prev_state in ASCII only; Python's int() would read "\u0663"
        # (Arabic-Indic three) as 3, a task state no kernel printed
        ("\u0663", f"sched_switch prev_state outside {I64}", None),
    ],
    ids=["unknown-letter", "non-ascii-digit"],
)
def test_prev_state_the_kernel_never_prints_is_counted(
    shared_traces: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    state: str,
    reason: str,
    printed: str | None,
) -> None:
    _, bad = juno_with(
        shared_traces,
        tmp_path,
        "   <...>-1701  [001]    76.211513: " + SWITCH.format(s=state, n="0"),
    )
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == skip(f"{reason} (row kept, prev_state null)", 4)
    row = load(bad).frame("sched_switch").filter(pl.col("seq") == 3).row(0, named=True)
    assert (row["prev_state"], row["prev_state_str"], row["next_pid"]) == (None, printed, 0)


def test_exact_duplicate_event_lines_are_imported_and_counted(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (shared_traces / JUNO).read_text().splitlines(keepends=True)
    doubled = tmp_path / "doubled.txt"
    doubled.write_text("".join([*lines[:101], lines[100], *lines[101:]]))
    summary, _ = run_import(capsys, doubled)
    reason = "exact repeat of an event line with the same timestamp (imported)"
    assert summary["skipped"] == skip(reason, 102)
    assert summary["events"]["sched_switch"] == 1856 + 1  # README count, plus the copy


def test_nul_byte_in_text_is_an_error_at_its_offset(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray((shared_traces / JUNO).read_bytes())
    at = data.index(b"sched_wakeup", 3000)
    data[at] = 0
    bad = tmp_path / "nul.txt"
    bad.write_bytes(data)
    _, err = run_import(capsys, bad, 3)
    line = data.count(b"\n", 0, at) + 1
    assert err == (
        f"pmu-replay: error: {bad}: text with a NUL byte at offset {at:#x} (line {line}), which "
        f"no text capture contains; if the rest is damage, cut the file before it "
        f"(head -c {at} {bad} > fixed.txt)\n"
    )


def test_one_json_line_in_a_tracer_file_leaves_it_ftrace(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (FIXTURES / "captures" / "lost-events-gap.txt").read_text().splitlines(keepends=True)
    bad = tmp_path / "json.txt"
    bad.write_text(
        "".join([*text[:12], '{"counter-value" : "1", "event" : "cycles"}\n', *text[12:]])
    )
    summary, _ = run_import(capsys, bad)
    assert summary["format"] == "ftrace-text"
    assert summary["skipped"] == skip("malformed line", 13)
    assert summary["events"] == load(FIXTURES / "captures" / "lost-events-gap.txt").event_counts()


def test_vcpu_thread_name_with_a_huge_index_names_no_vcpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vcpu.txt"
    path.write_text(
        "# tracer: nop\n"
        "  CPU 99999999999/KVM-501 [001] 1.000001: sched_wakeup: comm=x pid=9 prio=120 target_cpu=1\n"
        "  CPU 1/KVM-502 [001] 1.000002: sched_wakeup: comm=x pid=9 prio=120 target_cpu=1\n"
    )
    summary, _ = run_import(capsys, path)
    reason = f"vCPU index in a thread name outside {I32} (not taken as a vCPU)"
    assert summary["skipped"] == {
        reason: {"count": 1, "first": ["thread 501 'CPU 99999999999/KVM'"]}
    }
    assert [(v["tid"], v["vcpu_index"]) for v in summary["vcpus"]] == [(502, 1)]  # type: ignore[index]


# ---- perf script and perf stat -------------------------------------------------------------

PERF_SCRIPT = "flamegraph-perf-script/perf-cycles-instructions-01.txt"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("[001] 1410597.984841", "[99999] 1410597.984841", f"cpu outside {I16} (line skipped)"),
        ("21796 [001] 1410597.984841", "4294967296 [001] 1410597.984841", f"pid outside {I32} (line skipped)"),
        ("1410597.984841:", "1410597.9848411234567:", f"timestamp in ns outside {I64} (line skipped)"),
    ],
)  # fmt: skip
def test_perf_script_context_out_of_range(
    shared_traces: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    reason: str,
) -> None:
    text = (shared_traces / PERF_SCRIPT).read_text()
    at = text.index(old)
    bad = tmp_path / "script.txt"
    bad.write_text(text.replace(old, new, 1))
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == skip(reason, text.count("\n", 0, at) + 1)
    before = load(shared_traces / PERF_SCRIPT).event_counts()
    assert sum(summary["events"].values()) == sum(before.values()) - 1  # type: ignore[union-attr]


def test_perf_script_sample_ip_past_64_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the default fields of a hardware event (formats.md §4.7); an ip of 17 hex digits was null
    line = "perf  9622 [000]    89.50234{n}:    1426884     instructions:          {ip} [unknown] (/lib/libc-2.15.so)\n"
    path = tmp_path / "ip.txt"
    path.write_text(line.format(n=3, ip="769eaa68") + line.format(n=4, ip="1769eaa68769eaa68"))
    summary, _ = run_import(capsys, path)
    assert summary["skipped"] == skip(f"ip outside {U64} (line skipped)", 2)
    assert load(path).frame("pmu_samples")["ip"].to_list() == [0x769EAA68]


@pytest.mark.parametrize(
    ("name", "old", "new", "reason"),
    [
        ("perf-stat-interval.csv", "CPU1,", "CPU99999,", f"cpu outside {I16} (line skipped)"),
        ("perf-stat-per-cpu.json", '"cpu" : "1"', '"cpu" : "99999"', f"cpu outside {I16} (line skipped)"),
        # a damaged counter-value key yielded no row, counted only as a metric-only line
        ("perf-stat-per-cpu.json", '"counter-value"', '"counter-valu"',
         "perf stat JSON line with a counter-value or an event, not both"),
    ],
)  # fmt: skip
def test_perf_stat_lines_out_of_range_or_damaged(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    old: str,
    new: str,
    reason: str,
) -> None:
    text = (FIXTURES / "captures" / name).read_text()
    at = text.index(old)
    bad = tmp_path / name
    bad.write_text(text[:at] + new + text[at + len(old) :])
    assert main(["import", str(bad), "-o", str(tmp_path / "out"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == skip(reason, text.count("\n", 0, at) + 1)
    rows = pl.read_parquet(tmp_path / "out" / "pmu_counts.parquet")
    assert rows.height == load(FIXTURES / "captures" / name).table("pmu_counts").num_rows - 1
    assert rows["cpu"].min() >= 0  # type: ignore[operator]


# ---- binary records and chunks -------------------------------------------------------------


def test_perf_records_of_unknown_type_are_counted_by_kind_and_offset(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_traces / "quipper-perfdata/perf.data.armv7-3.4"
    stream = read_stream(open_perf(path), SkipLog(str(path)), None)
    samples = [int(o) for o, t in zip(stream.offset, stream.type, strict=True) if t == SAMPLE]
    types = (0, 0x8000, 0xFFFFFFFF)
    bad = with_u32s(path, tmp_path / "types.data", zip(samples[:3], types, strict=True))
    summary, _ = run_import(capsys, bad)
    assert summary["skipped"] == {
        f"record of unknown type {t} ({t:#x}), not decoded": {
            "count": 1,
            "first": [f"file offset {at:#x}"],
        }
        for t, at in zip(types, samples[:3], strict=True)
    }
    samples_seen = sum(v for k, v in summary["events"].items() if k.startswith("pmu_samples"))  # type: ignore[union-attr]
    assert samples_seen == 3893 - 3  # README: 3893 samples


def with_u32s(source: Path, target: Path, writes: Iterable[tuple[int, int]]) -> Path:
    """``source`` copied to ``target`` with little-endian u32 ``(offset, value)`` written."""
    data = bytearray(source.read_bytes())
    for at, value in writes:
        struct.pack_into("<I", data, at, value)
    target.write_bytes(data)
    return target


def v7_cpu_streams(path: Path) -> list[tuple[int, int, int]]:
    """(cpu, data offset, file offset of its BUFFER option entry) of each compressed CPU."""
    td = read_container(open_reader(path))
    data = path.read_bytes()
    out = []
    for stream in (s for inst in td.instances for s in inst.cpus):
        entry = data.index(struct.pack("<QQ", stream.offset, stream.size)) - 4
        out.append((stream.cpu, stream.offset, entry))
    return out


V7 = "kvm-x86-host-v7-kvmevents/trace.dat"


def test_trace_dat_cpu_id_past_int16_is_counted_not_a_traceback(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_traces / V7
    cpu, offset, entry = v7_cpu_streams(path)[0]
    bad = with_u32s(path, tmp_path / "cpuid.dat", [(entry, 0x80000000)])
    summary, _ = run_import(capsys, bad)
    ((reason, record),) = summary["skipped"].items()  # type: ignore[union-attr]
    assert reason == "BUFFER option CPU id above 32767 (that CPU's data not read)"
    assert record["count"] == 1 and record["first"][0].startswith("CPU id 2147483648 at byte ")
    assert record["first"][0].endswith(f"at file offset {offset:#x})")
    clean = load(path).frame("kvm_entry")
    assert summary["events"]["kvm_entry"] == clean.filter(pl.col("cpu") != cpu).height  # type: ignore[index]


def test_trace_dat_cpu_without_chunks_is_lost_data_with_cpu_and_start(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_traces / V7
    cpu, offset, _ = v7_cpu_streams(path)[1]
    bad = with_u32s(path, tmp_path / "zero.dat", [(offset, 0)])
    summary, _ = run_import(capsys, bad)
    size = read_container(open_reader(path)).instances[0].cpus[1].size
    assert summary["skipped"] == {
        "compressed CPU data with a chunk count of 0 (its events are lost)": {
            "count": 1,
            "first": [f"CPU {cpu} data at offset {offset:#x}, {size} bytes, from the start of the capture"],
        }
    }  # fmt: skip
    assert (summary["lost_event_markers"], summary["lost_events_unknown_count"]) == (1, 1)
    lost = load(bad).frame("lost_events")
    assert lost.select("cpu", "ts", "count", pl.col("kind").cast(pl.Utf8)).rows() == [
        (cpu, None, None, "unreadable")
    ]
