"""trace.dat import against independent oracles.

v6 files: ``trace-cmd report`` (Debian's 3.1.6) is the oracle for the per-event counts, the
global record order, the exact nanosecond timestamps, the CPU and pid of every record, and the
fields of every modelled event (``-R`` raw values, ``-N`` for the print-fmt text such as
``prev_state=D|W``). v7 files: Debian's trace-cmd cannot inflate their zlib sections, so the
counts come from ``../shared/traces/README.md`` (measured with an independent reader).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest

from importers.capture import Capture
from importers.detect import load
from importers.schema import TYPED_TABLES
from tests.importers.tracedat import v7_oracle

V6_FILES = ["juno-sched-load/trace.dat", "exynos-hmp-2014/trace.dat"]
LINE = re.compile(
    r"^\s*(?P<comm>.*)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<args>.*)$"
)
ARG = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|\s+==>|$)")


@cache
def imported(path: str) -> Capture:
    return load(Path(path))


Line = tuple[int, int, int, str, dict[str, str], str]


@cache
def report(path: str, *flags: str) -> tuple[Line, ...]:
    """(ts ns, cpu, pid, event, args, comm) of every line of ``trace-cmd report -t FLAGS``."""
    out = subprocess.run(
        ["trace-cmd", "report", "-t", *flags, "-i", path],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    rows = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        sec, frac = m["ts"].split(".")
        ts = int(sec) * 1_000_000_000 + int(frac.ljust(9, "0"))
        args = dict(ARG.findall(m["args"]))
        rows.append((ts, int(m["cpu"]), int(m["pid"]), m["event"], args, m["comm"].strip()))
    return tuple(rows)


@pytest.fixture(scope="module")
def trace_cmd() -> str:
    exe = shutil.which("trace-cmd")
    if exe is None:
        pytest.skip("trace-cmd is not installed (CI installs Debian's trace-cmd as the oracle)")
    return exe


def all_records(cap: Capture) -> list[tuple[int, int, int, str]]:
    """(ts, cpu, pid, event) of every record of every table, in seq order."""
    rows: list[tuple[int, int, int, int, str]] = []
    for name in [*TYPED_TABLES, "events"]:
        t = cap.table(name)
        if not t.num_rows or "common_pid" not in t.column_names:
            continue
        events = t.column("event").to_pylist() if name == "events" else [name] * t.num_rows
        rows.extend(
            zip(
                t.column("seq").to_pylist(),
                t.column("ts").to_pylist(),
                t.column("cpu").to_pylist(),
                t.column("common_pid").to_pylist(),
                events,
                strict=True,
            )
        )
    rows.sort()
    return [r[1:] for r in rows]


@pytest.mark.oracle
@pytest.mark.parametrize("rel", V6_FILES)
def test_v6_order_timestamps_cpus_pids_equal_trace_cmd(
    shared_traces: Path, trace_cmd: str, rel: str
) -> None:
    path = str(shared_traces / rel)
    expected = [(ts, cpu, pid, ev) for ts, cpu, pid, ev, _, _ in report(path, "-R")]
    got = all_records(imported(path))
    assert len(got) == len(expected)
    assert Counter(e for *_, e in got) == Counter(e for *_, e in expected)
    assert got == expected


def _raw(value: str) -> int | str:
    try:
        return int(value, 16) if value.startswith("0x") else int(value)
    except ValueError:
        return value


MODELLED_FIELDS = {
    "sched_switch": ["prev_comm", "prev_pid", "prev_prio", "prev_state", "next_comm", "next_pid",
                     "next_prio"],
    "sched_wakeup": ["comm", "pid", "prio", "success", "target_cpu"],
    "sched_wakeup_new": ["comm", "pid", "prio", "success", "target_cpu"],
    "sched_migrate_task": ["comm", "pid", "prio", "orig_cpu", "dest_cpu"],
    "sched_process_fork": ["parent_comm", "parent_pid", "child_comm", "child_pid"],
    "sched_process_exit": ["comm", "pid", "prio"],
    "cpu_frequency": ["state", "cpu_id"],
    "cpu_idle": ["state", "cpu_id"],
}  # fmt: skip


@pytest.mark.oracle
@pytest.mark.parametrize("rel", V6_FILES)
def test_v6_modelled_fields_equal_trace_cmd_raw(
    shared_traces: Path, trace_cmd: str, rel: str
) -> None:
    path = str(shared_traces / rel)
    cap = imported(path)
    lines = report(path, "-R")
    checked = 0
    for event, fields in MODELLED_FIELDS.items():
        rows = [(ts, args) for ts, _, _, ev, args, _ in lines if ev == event]
        table = cap.table(event)
        assert table.num_rows == len(rows), event
        if not rows:
            continue
        present = [f for f in fields if f in rows[0][1]]  # success= only on old kernels
        expected = [(ts, [_raw(args[f]) for f in present]) for ts, args in rows]
        columns = [table.column(f).to_pylist() for f in present]
        got = [(ts, [c[i] for c in columns]) for i, ts in enumerate(table.column("ts").to_pylist())]
        assert got == expected, event
        checked += len(rows)
    assert checked > 0
    idle = cap.table("cpu_idle").to_pydict()
    assert idle["idle_state"] == [s - (1 << 32) if s >= 1 << 31 else s for s in idle["state"]]


@pytest.mark.oracle
@pytest.mark.parametrize("rel", V6_FILES)
def test_v6_prev_state_text_equals_trace_cmd_print_fmt(
    shared_traces: Path, trace_cmd: str, rel: str
) -> None:
    path = str(shared_traces / rel)
    lines = report(path, "-N")
    expected = [args["prev_state"] for _, _, _, ev, args, _ in lines if ev == "sched_switch"]
    got = imported(path).table("sched_switch").column("prev_state_str").to_pylist()
    assert got == expected
    assert len(set(got)) > 2  # several states, not a constant column


@cache
def report_text(path: str) -> tuple[tuple[str, str], ...]:
    """(event, text after the event name) of every line of plain ``trace-cmd report``."""
    out = subprocess.run(
        ["trace-cmd", "report", "-i", path], capture_output=True, text=True, check=True
    ).stdout
    return tuple((m["event"], m["args"].strip()) for m in map(LINE.match, out.splitlines()) if m)


@pytest.mark.oracle
@pytest.mark.parametrize(("rel", "event"), [(V6_FILES[0], "print"), (V6_FILES[1], "bprint")])
def test_v6_trace_printk_and_marker_text_equals_trace_cmd(
    shared_traces: Path, trace_cmd: str, rel: str, event: str
) -> None:
    path = str(shared_traces / rel)
    expected = [text for ev, text in report_text(path) if ev == event]
    events = imported(path).table("events")
    got = [
        a
        for e, a in zip(
            events.column("event").to_pylist(), events.column("args").to_pylist(), strict=True
        )
        if e == event
    ]
    assert got == expected and len(got) >= 6
    assert events.column("args").null_count == events.num_rows - len(got)


@pytest.mark.oracle
@pytest.mark.parametrize("rel", V6_FILES)
def test_v6_saved_cmdlines_become_tasks(shared_traces: Path, trace_cmd: str, rel: str) -> None:
    path = str(shared_traces / rel)
    cap = imported(path)
    tasks = cap.table("tasks").to_pylist()
    names = {t["pid"]: t["comm"] for t in tasks if t["source"] == "saved_cmdlines"}
    assert len(names) == sum(t["source"] == "saved_cmdlines" for t in tasks) > 10
    # trace-cmd names each line's task from saved_cmdlines ("<...>" when it has none).
    header = {(pid, comm) for _, _, pid, _, _, comm in report(path, "-R") if pid}
    assert {(pid, names.get(pid, "<...>")) for pid, _ in header} == header
    # ... and every name sched_switch printed is a task, seen from its first to its last use
    spans = {(t["pid"], t["comm"]): (t["first_ts"], t["last_ts"]) for t in tasks}
    sw = cap.table("sched_switch")
    for side in ("prev", "next"):
        seen = {}
        for ts, pid, comm in zip(
            *(sw.column(c).to_pylist() for c in ("ts", f"{side}_pid", f"{side}_comm")),
            strict=True,
        ):
            lo, hi = seen.get((pid, comm), (ts, ts))
            seen[(pid, comm)] = (min(lo, ts), max(hi, ts))
        for key, (lo, hi) in seen.items():
            first, last = spans[key]
            assert first <= lo and hi <= last


# Counts measured with an independent reader (../shared/traces/README.md, "(ind)").
V7_COUNTS = {
    "kvm-x86-hostguest-v7/trace.dat": {"kvm_entry": 5861, "kvm_exit": 5860},
    "kvm-x86-hostguest-v7/trace-Salamander4.dat": {
        "rcu_utilization": 7976,
        "sched_switch": 3835,
        "irq_handler_entry": 2600,
        "irq_handler_exit": 2600,
        "sched_wakeup": 2162,
        "cpu_idle": 2020,
    },
    "kvm-x86-host-v7-kvmevents/trace.dat": {
        "kvm_entry": 1558,
        "kvm_exit": 1558,
        "kvm_hv_timer_state": 1528,
        "kvm_apic": 1055,
        "kvm_vcpu_wakeup": 472,
        "kvm_userspace_exit": 5,
    },
}
V7_TOTALS = {"kvm-x86-hostguest-v7/trace-Salamander4.dat": 90029}


@pytest.mark.parametrize("rel", sorted(V7_COUNTS))
def test_v7_counts_equal_readme(shared_traces: Path, rel: str) -> None:
    cap = imported(str(shared_traces / rel))
    counts = cap.event_counts()
    for event, n in V7_COUNTS[rel].items():
        assert counts.get(event) == n, event
    if rel in V7_TOTALS:
        assert sum(counts.values()) == V7_TOTALS[rel]
    assert cap.metadata.skipped == {}


def as_table_row(
    record: dict[str, object], columns: tuple[str, ...], mask: int, reasons: dict[int, str]
) -> tuple[object, ...]:
    """An x86 kvm record's fields under the canonical column names: ``rip``/``guest_rip`` is
    ``vcpu_pc``; the exit reason is printed through the print fmt's first (VMX, ``isa`` 1)
    ``__print_symbolic`` table."""
    named = dict(record)
    named["vcpu_pc"] = record.get("rip", record.get("guest_rip"))
    if "exit_reason" in record:
        named["exit_reason"] = reasons[int(record["exit_reason"]) & mask]  # type: ignore[call-overload]
        named["isa"] = {1: "x86"}[record["isa"]]  # type: ignore[index]
    return tuple(named[c] for c in columns)


@pytest.mark.parametrize(
    "rel", ["kvm-x86-hostguest-v7/trace.dat", "kvm-x86-host-v7-kvmevents/trace.dat"]
)
def test_v7_kvm_fields_equal_an_independent_reader(shared_traces: Path, rel: str) -> None:
    """Every kvm_entry/kvm_exit record of the zlib v7 files, field by field, against
    tests/importers/tracedat/v7_oracle.py (Debian's trace-cmd cannot inflate zlib)."""
    path = shared_traces / rel
    want = v7_oracle.events(path, {"kvm_entry", "kvm_exit"})
    exit_format = next(f for f in v7_oracle.formats(v7_oracle.open_v7(path), {"kvm_exit"}).values())
    mask, reasons = v7_oracle.symbols(exit_format.print_fmt, "exit_reason")
    cap = imported(str(path))
    for event, columns in (
        ("kvm_entry", ("ts", "cpu", "common_pid", "vcpu_id", "vcpu_pc")),
        ("kvm_exit", ("ts", "cpu", "common_pid", "vcpu_id", "vcpu_pc", "exit_reason", "isa")),
    ):
        got = cap.frame(event).sort("seq").select(columns).rows()
        oracle = [as_table_row(r, columns, mask, reasons) for r in want if r["event"] == event]
        assert len(got) == len(oracle) == V7_COUNTS[rel][event]
        assert got == oracle, event


def test_v7_tsc2nsec_span_and_guest_map(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / "kvm-x86-hostguest-v7/trace.dat"))
    meta = cap.metadata
    assert meta.ts_unit == "ns" and meta.clock == "x86-tsc"
    assert meta.first_ts is not None and meta.last_ts is not None
    # README: about 2.25 s after TSC-to-ns conversion (6.58 s of raw TSC span).
    assert 2.2e9 < meta.last_ts - meta.first_ts < 2.3e9
    assert meta.extra["guests"][0]["vcpus"] == [{"vcpu": 0, "host_tid": 483882}]
    # The GUEST option's vCPU 0 -> host thread 483882 agrees with x86 kvm_entry.vcpu_id (the
    # host also ran a second, untraced-guest VM, whose two vCPU threads show up as well).
    entry = cap.table("kvm_entry")
    pairs = Counter(
        zip(
            entry.column("common_pid").to_pylist(), entry.column("vcpu_id").to_pylist(), strict=True
        )
    )
    assert {vcpu for (tid, vcpu) in pairs if tid == 483882} == {0}
    assert pairs[(483882, 0)] > entry.num_rows // 2
    exits = cap.table("kvm_exit")
    reasons = Counter(exits.column("exit_reason").to_pylist())
    assert set(exits.column("isa").to_pylist()) == {"x86"}
    assert None not in reasons and all(r.isupper() for r in reasons)
    assert exits.column("vcpu_pc").null_count == 0


def test_v7_raw_tsc_clock_is_reported_as_cycles(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / "kvm-x86-host-v7-kvmevents/trace.dat"))
    assert (cap.metadata.clock, cap.metadata.ts_unit) == ("x86-tsc", "cycles")
    assert cap.metadata.extra["kernel_release"] == "6.5.0-18-generic"
    assert cap.metadata.extra["tracecmd_version"].startswith("3.2.0")


def test_v7_guest_time_shift_is_parsed(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / "kvm-x86-hostguest-v7/trace-Salamander4.dat"))
    shift = cap.metadata.extra["time_shift"]
    assert len(shift["cpus"]) == 1 and len(shift["cpus"][0]["times"]) == 2
    assert "fraction_bits" in shift["cpus"][0]
    # Three STRINGS sections; the flyrecord section's string id resolves only in their
    # concatenation (formats.md §3.3).
    sections = {s["offset"]: s for s in cap.metadata.extra["sections"]}
    assert sections[913195] == {"offset": 913195, "id": 3, "description": "buffer flyrecord "}
    assert [s["description"] for s in sections.values() if s["id"] == 0] == ["options"] * 3
    states = Counter(cap.table("sched_switch").column("prev_state_str").to_pylist())
    assert {"R", "S"} <= set(states) and None not in states


def test_every_shared_trace_dat_has_unique_seq(shared_traces: Path) -> None:
    for path in sorted(shared_traces.glob("*/*.dat")):
        cap = imported(str(path))
        seqs = pa.chunked_array(
            [t.column("seq") for t in cap.tables.values() if "seq" in t.column_names]
        ).to_numpy()
        assert len(set(seqs.tolist())) == len(seqs), path
