"""trace.dat layouts no shared capture has, written by :mod:`tests.importers.tracedat.builder`
(formats.md §6.4 #7-10).

Where Debian's trace-cmd can read the written file (v6, v7 ``none`` and ``zstd``), it is the
oracle for order, timestamps and loss markers; the expected values are also derived by hand
from the record headers written.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers.capture import Capture as ImportedCapture
from importers.detect import load, sniff
from importers.errors import CaptureFormatError, DroppedEventsError, PmuReplayError
from importers.schema import conform
from importers.tracedat.read import read_tracedat
from importers.tracefs.event_format import parse_event_format
from importers.tracefs.fields import FieldGather, gather_matrix
from tests.importers.tracedat.builder import (
    EXEC_FORMAT,
    Capture,
    Layout,
    format_text,
    write_v6,
    write_v7,
)

VARIANTS = [
    pytest.param(big, klong, kind, id=f"{'be' if big else 'le'}-long{klong}-{kind}")
    for big in (False, True)
    for klong in (8, 4)
    for kind in ("v6", "v7-none", "v7-zlib", "v7-zstd")
]


def build(lo: Layout) -> Capture:
    """Two CPUs exercising every record type (hand-computed times in the comments)."""
    cpu0 = lo.page(
        1000,
        lo.data(10, lo.switch(1, "init", 1, 1, "worker", 42))  # 1010
        + lo.extend(1 << 30)  # + 2^30
        + lo.data(5, lo.exec_(42, "/bin/sh"))  # 1073742839
        + lo.padding(7, 12)  # discarded event: its delta still counts (libtraceevent)
        + lo.large(3, lo.switch(42, "worker", 42, 0x102, "init", 1)),  # 1073742849
    ) + lo.page(5000, lo.data(1, lo.switch(1, "a", 1, 256, "b", 2)), missed=17)  # 5001, older
    cpu3 = lo.page(
        1000,
        lo.data(0, lo.switch(7, "x", 7, 2, "y", 8))  # 1000: equal to nothing, CPU 3
        + lo.stamp(123456789)  # absolute
        + lo.data(0, lo.exec_(8, "/usr/bin/python", nul=False))  # 123456789
        + lo.padding(0, 8),  # delta 0: the rest of the page is padding
        missed=-1,
    )
    return Capture(layout=lo, cpus=4, data={"": {0: cpu0, 3: cpu3}})


EXPECTED = [  # (ts, cpu, pid, event) in trace-cmd report order
    (1000, 3, 7, "sched_switch"),
    (1010, 0, 1, "sched_switch"),
    (123456789, 3, 8, "sched_process_exec"),
    (1073742839, 0, 42, "sched_process_exec"),
    (1073742849, 0, 42, "sched_switch"),
    (5001, 0, 1, "sched_switch"),  # CPU 0's second page steps back; file order is kept
]


def write(tmp_path: Path, c: Capture, kind: str) -> Path:
    path = tmp_path / f"{kind}.dat"
    path.write_bytes(write_v6(c) if kind == "v6" else write_v7(c, kind.split("-")[1]))
    return path


def records(cap: ImportedCapture) -> list[tuple[int, int, int, str]]:
    rows = []
    for name in ("sched_switch", "events"):
        t = cap.table(name)
        events = t.column("event").to_pylist() if name == "events" else [name] * t.num_rows
        cols = [t.column(c).to_pylist() for c in ("seq", "ts", "cpu", "common_pid")]
        rows += list(zip(*cols, events, strict=True))
    return [r[1:] for r in sorted(rows)]


@pytest.mark.parametrize(("big", "klong", "kind"), VARIANTS)
def test_every_record_type_in_every_container(
    tmp_path: Path, big: bool, klong: int, kind: str
) -> None:
    path = write(tmp_path, build(Layout(big=big, kernel_long=klong)), kind)
    cap = load(path)
    assert records(cap) == EXPECTED
    sw = cap.table("sched_switch")
    assert sw.column("prev_comm").to_pylist() == ["x", "init", "worker", "a"]
    assert sw.column("prev_state").to_pylist() == [2, 1, 0x102, 256]
    assert sw.column("prev_state_str").to_pylist() == ["D", "S", "D+", "R+"]
    assert sw.column("next_pid").to_pylist() == [8, 42, 1, 2]
    lost = cap.table("lost_events").to_pylist()
    assert [(r["cpu"], r["ts"], r["count"]) for r in lost] == [(0, 5001, 17), (3, 1000, None)]
    seqs = [r["seq"] for r in lost] + sw.column("seq").to_pylist()
    assert len(set(seqs)) == len(seqs)
    assert cap.metadata.extra["kernel_long_size"] == klong
    assert cap.metadata.extra["big_endian"] is big
    assert cap.metadata.skipped == {}
    # tasks: the saved cmdlines, plus every name an event printed, with when it was seen
    tasks = {(t["pid"], t["comm"]): t for t in cap.table("tasks").to_pylist()}
    cmdlines = {k for k, t in tasks.items() if t["source"] == "saved_cmdlines"}
    assert cmdlines == {(1, "init"), (42, "worker")}
    named = sw.select(["ts", "prev_pid", "prev_comm"]).to_pylist() + [
        {"ts": r["ts"], "prev_pid": r["next_pid"], "prev_comm": r["next_comm"]}
        for r in sw.select(["ts", "next_pid", "next_comm"]).to_pylist()
    ]
    for row in named:
        span = tasks[(row["prev_pid"], row["prev_comm"])]
        assert span["first_ts"] <= row["ts"] <= span["last_ts"]
    assert set(tasks) == cmdlines | {(r["prev_pid"], r["prev_comm"]) for r in named}


TC_LINE = re.compile(
    r"^\s*(?:CPU:(\d+) \[(?:(\d+) )?EVENTS DROPPED\]|.*-(\d+)\s+\[(\d+)\]\s+(\d+)\.(\d+): (\w+):)"
)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["v6", "v7-none", "v7-zstd"])
@pytest.mark.parametrize("big", [False, True])
def test_trace_cmd_reads_the_same(tmp_path: Path, kind: str, big: bool) -> None:
    if shutil.which("trace-cmd") is None:
        pytest.skip("trace-cmd is not installed (CI installs Debian's trace-cmd)")
    path = write(tmp_path, build(Layout(big=big)), kind)
    out = subprocess.run(
        ["trace-cmd", "report", "-t", "-i", str(path)], capture_output=True, text=True, check=True
    ).stdout
    expected: list[tuple[object, ...]] = []
    for line in out.splitlines():
        m = TC_LINE.match(line)
        if m and m[1]:
            expected.append(("lost", int(m[1]), int(m[2]) if m[2] else None))
        elif m:
            expected.append((int(m[5]) * 10**9 + int(m[6]), int(m[4]), int(m[3]), m[7]))
    cap = read_tracedat(path)
    got = [
        (r[0], *r[1:])
        for r in zip(*[list(x) for x in zip(*records(cap), strict=True)], strict=True)
    ]
    lost = {r["seq"]: ("lost", r["cpu"], r["count"]) for r in cap.table("lost_events").to_pylist()}
    merged: list[tuple[object, ...]] = []
    seqs = sorted(
        [*lost, *cap.table("sched_switch").column("seq").to_pylist(),
         *cap.table("events").column("seq").to_pylist()]
    )  # fmt: skip
    it = iter(got)
    for s in seqs:
        merged.append(lost[s] if s in lost else next(it))
    assert merged == expected


def test_damaged_pages_are_skipped_and_counted_or_fail_in_strict_mode(tmp_path: Path) -> None:
    lo = Layout()
    good = lo.page(100, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)))
    past_end = lo.page(200, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)), commit=5000)
    past_commit = lo.page(300, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)), commit=40)
    c = Capture(layout=lo, cpus=1, data={"": {0: good + past_end + past_commit + good}})
    path = write(tmp_path, c, "v6")
    cap = read_tracedat(path)
    assert cap.table("sched_switch").column("ts").to_pylist() == [101, 101]
    skipped = cap.metadata.skipped
    commit = "damaged ring-buffer page skipped: page commit runs past the end of the page"
    record = "damaged ring-buffer page skipped: record runs past the page commit"
    assert skipped[commit]["count"] == 1 and skipped[record]["count"] == 1
    assert "CPU 0 page at file offset" in skipped[commit]["first"][0]
    with pytest.raises(CaptureFormatError, match="commit runs past the end of the page"):
        read_tracedat(path, strict=True)


def test_missed_events_fail_in_strict_mode(tmp_path: Path) -> None:
    with pytest.raises(DroppedEventsError, match="missed events on CPUs"):
        read_tracedat(write(tmp_path, build(Layout()), "v6"), strict=True)


def test_truncated_file_keeps_whole_pages(tmp_path: Path) -> None:
    path = write(tmp_path, build(Layout()), "v6")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4096 - 100])  # CPU 3's only page, cut
    cap = read_tracedat(path)
    assert [r[1] for r in records(cap)] == [0, 0, 0, 0]
    (reason,) = [k for k in cap.metadata.skipped if "past the end of the file" in k]
    # CPU 3's page is gone; CPU 0's last page lost its (unused) last 100 bytes.
    assert cap.metadata.skipped[reason]["count"] == 2
    assert [f.split(" data")[0] for f in cap.metadata.skipped[reason]["first"]] == [
        "CPU 0",
        "CPU 3",
    ]
    with pytest.raises(CaptureFormatError, match="truncated"):
        read_tracedat(path, strict=True)
    # only CPU 3 lost records: its gap runs from its last record (none) to the end
    lost = cap.frame("lost_events").filter(pl.col("kind") == "truncated")
    assert lost.select("cpu", "ts", "count").rows() == [(3, None, None)]
    assert lost["seq"][0] > max(cap.frame(t)["seq"].max() for t in ("sched_switch", "events"))  # type: ignore[type-var]


@pytest.mark.parametrize("oracle", [False, pytest.param(True, marks=pytest.mark.oracle)])
def test_tsc2nsec_and_date_follow_trace_cmd_timestamp_calc(tmp_path: Path, oracle: bool) -> None:
    if oracle and shutil.which("trace-cmd") is None:
        pytest.skip("trace-cmd is not installed (CI installs Debian's trace-cmd)")
    lo = Layout()
    tsc = 3_000_000_123  # raw TSC ticks
    page = lo.page(tsc, lo.data(0, lo.switch(1, "a", 1, 0, "b", 2)))
    mult, shift = 735842807, 31
    c = Capture(
        layout=lo,
        cpus=1,
        data={"": {0: page}},
        clock="x86-tsc",
        extra_options=[
            (14, struct.pack("<IIQ", mult, shift, 0)),
            (1, b"0x10\0"),  # DATE: µs
            (7, b"-25\0"),  # OFFSET: ns
        ],
    )
    cap = read_tracedat(write(tmp_path, c, "v7-none"))
    expected = ((tsc * mult) >> shift) + 0x10 * 1000 - 25
    if oracle:
        out = subprocess.run(
            ["trace-cmd", "report", "-t", "-i", str(tmp_path / "v7-none.dat")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (m,) = [m for m in map(TC_LINE.match, out.splitlines()) if m and m[5]]
        assert int(m[5]) * 10**9 + int(m[6]) == expected
    assert cap.table("sched_switch").column("ts").to_pylist() == [expected]
    assert (cap.metadata.clock, cap.metadata.ts_unit) == ("x86-tsc", "ns")


@pytest.mark.parametrize(("mult", "shift"), [(0xFFFF_FFFF, 33), (3_000_000_007, 40), (1 << 31, 63)])
def test_tsc2nsec_with_a_shift_above_32_is_the_exact_product(
    tmp_path: Path, mult: int, shift: int
) -> None:
    """``mul_u64_u32_shr`` is ``(tsc * mult) >> shift`` in 128-bit arithmetic (the kernel's
    include/linux/math64.h); the files seen so far all use shift 31, so the other branch, for
    shifts above 32, is checked against Python's exact integers here."""
    lo = Layout()
    tsc = (0x1234_5678 << 32) | 0xFEDC_BA98  # both halves matter
    page = lo.page(tsc, lo.data(0, lo.switch(1, "a", 1, 0, "b", 2)))
    c = Capture(
        layout=lo,
        cpus=1,
        data={"": {0: page}},
        clock="x86-tsc",
        extra_options=[(14, struct.pack("<IIQ", mult, shift, 0))],
    )
    cap = read_tracedat(write(tmp_path, c, "v7-none"))
    assert cap.table("sched_switch").column("ts").to_pylist() == [(tsc * mult) >> shift]


@pytest.mark.parametrize(
    ("kind", "patch", "message"),
    [
        ("v6", lambda b: b[:200], "header_page|event format|needs"),
        ("v6", lambda b: b[:12] + b"\x05" + b[13:], "endianness byte 5"),
        ("v6", lambda b: b[:10] + b"9" + b[11:], "version '9'"),
        ("v6", lambda b: b.replace(b"header_page\0", b"header_pagX\0"), "header_page"),
        ("v6", lambda b: b.replace(b"flyrecord\0", b"flyrecorX\0"), "unknown section tag"),
        (
            "v6",
            lambda b: b.replace(b"header_page\0", b"header_page\0" + b"\xff" * 8, 1),
            "header_page claims 18446744073709551615 bytes",
        ),
        ("v7-none", lambda b: b[:-200], "needs|claims|past"),
        ("v6", lambda b: b.replace(b"ID: 300", b"ID: abc"), "numeric ID"),
        ("v6", lambda b: b.replace(b"offset:24;", b"offset:zz;"), "malformed field line"),
    ],
)
def test_broken_headers_are_clean_errors(
    tmp_path: Path, kind: str, patch: object, message: str
) -> None:
    path = write(tmp_path, build(Layout()), kind)
    assert callable(patch)
    path.write_bytes(patch(path.read_bytes()))
    with pytest.raises(PmuReplayError, match=message) as err:
        read_tracedat(path)
    assert str(path) in str(err.value)


def test_a_kallsyms_larger_than_the_file_is_a_clean_error(tmp_path: Path) -> None:
    """The kallsyms section is read as a view of the file: its size is checked all the same."""
    kallsyms = b"ffff000008080000 T _text\n"
    path = write(tmp_path, Capture(kallsyms=kallsyms), "v6")
    raw = path.read_bytes()
    assert raw.count(struct.pack("<I", len(kallsyms)) + kallsyms) == 1
    path.write_bytes(raw.replace(struct.pack("<I", len(kallsyms)) + kallsyms, b"\xf0\xff\xff\xff"))
    with pytest.raises(PmuReplayError, match="kallsyms claims 4294967280 bytes") as err:
        read_tracedat(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([(14, struct.pack("<IIQ", 1, 99, 0))], "TSC2NSEC option has shift 99"),
        ([(1, b"0xfffffffffffffffffff\0")], "beyond a 64-bit clock"),
    ],
)
def test_absurd_clock_options_are_clean_errors(
    tmp_path: Path, options: list[tuple[int, bytes]], message: str
) -> None:
    c = build(Layout())
    c.extra_options = options
    with pytest.raises(CaptureFormatError, match=message):
        read_tracedat(write(tmp_path, c, "v6"))


def _first_section(data: bytes) -> int:
    return data.index(b"1.0\0") + 4 + 8


def test_v7_unknown_section_id_and_bad_compression_are_clean_errors(tmp_path: Path) -> None:
    path = write(tmp_path, build(Layout()), "v7-zlib")
    data = bytearray(path.read_bytes())
    first = _first_section(data)  # the headers section (id 16)
    bad_id = bytes(data[:first]) + struct.pack("<H", 77) + bytes(data[first + 2 :])
    path.write_bytes(bad_id)
    with pytest.raises(
        CaptureFormatError, match=r"expected section id 16 \(headers\), found id 77"
    ):
        read_tracedat(path)
    broken = bytearray(data)
    broken[first + 16 + 8 : first + 16 + 12] = b"\xde\xad\xbe\xef"  # inside the zlib stream
    path.write_bytes(bytes(broken))
    with pytest.raises(CaptureFormatError, match=r"does not inflate.*headers section") as err:
        read_tracedat(path)
    assert f"@{first + 16:#x}" in str(err.value)


def test_v7_huge_uncompressed_size_is_refused_before_allocating(tmp_path: Path) -> None:
    path = write(tmp_path, build(Layout()), "v7-zstd")
    data = bytearray(path.read_bytes())
    first = _first_section(data)
    data[first + 16 + 4 : first + 16 + 8] = struct.pack("<I", 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureFormatError, match="claims 4294967280 bytes uncompressed"):
        read_tracedat(path)


def test_latency_files_are_refused_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path, build(Layout()), "v6")
    data = path.read_bytes()
    cut = data.index(b"options  \0")
    path.write_bytes(data[:cut] + b"latency  \0# tracer: irqsoff\n")
    with pytest.raises(CaptureFormatError, match=r"latency-tracer trace\.dat"):
        read_tracedat(path)


def test_record_with_an_unknown_event_id_is_counted(tmp_path: Path) -> None:
    lo = Layout()
    unknown = lo.pack("HBBi", 999, 0, 0, 5) + bytes(8)
    page = lo.page(10, lo.data(1, unknown) + lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)))
    cap = read_tracedat(write(tmp_path, Capture(layout=lo, cpus=1, data={"": {0: page}}), "v6"))
    assert cap.table("sched_switch").column("ts").to_pylist() == [12]
    (reason,) = cap.metadata.skipped
    assert "no format" in reason and cap.metadata.skipped[reason]["count"] == 1


def test_instances_with_their_own_page_size(tmp_path: Path) -> None:
    lo = Layout()
    small = Layout(page_size=1024)
    c = build(lo)
    c.data["web"] = {
        1: small.page(50, small.data(0, small.switch(9, "nginx", 9, 0, "php", 10)))
        + small.page(60, small.data(0, small.switch(10, "php", 10, 1, "nginx", 9)))
    }
    c.page_sizes["web"] = 1024
    cap = read_tracedat(write(tmp_path, c, "v7-zstd"))
    sw = cap.table("sched_switch")
    assert sw.column("ts").to_pylist()[:2] == [50, 60]
    assert sw.column("cpu").to_pylist()[:2] == [1, 1]
    names = [(i["name"], i["page_size"], i["cpus"]) for i in cap.metadata.extra["instances"]]
    assert names == [("", 4096, [0, 3]), ("web", 1024, [1])]


@pytest.mark.parametrize("nul", [True, False])
def test_data_loc_strings_with_and_without_nul(nul: bool) -> None:
    lo = Layout()
    fmt = parse_event_format(EXEC_FORMAT, system="sched")
    payloads = [lo.exec_(8, "/usr/bin/python", nul=nul), lo.exec_(9, "(null)", nul=nul)]
    buf = np.frombuffer(b"".join(payloads), np.uint8)
    offsets = np.array([0, len(payloads[0])], np.int64)
    lengths = np.array([len(p) for p in payloads], np.int64)
    field = fmt.field("filename")
    assert field is not None
    strings = FieldGather(buf, offsets, lengths, False).string(field)
    assert strings.to_pylist() == ["/usr/bin/python", "(null)"]


# arm64 kvm_exit of an older kernel (juno-sched-load's format: idx / exit_reason) and of a
# current one (ret / esr_ec), each with its own symbol tables (formats.md §2.6).
OLD_EXIT = format_text(
    "kvm_exit",
    400,
    [
        ("int idx", 8, 4, 1),
        ("unsigned int exit_reason", 12, 4, 0),
        ("unsigned long vcpu_pc", 16, 8, 0),
    ],
    '"%s: HSR_EC: 0x%04x (%s), PC: 0x%08lx", __print_symbolic(REC->idx, {0, "IRQ" }, '
    '{1, "TRAP" }), REC->exit_reason, __print_symbolic(REC->exit_reason, { (0x01), "WFx" }, '
    '{ (0x18), "SYS64" }), REC->vcpu_pc',
)
NEW_EXIT = format_text(
    "kvm_exit",
    401,
    [("int ret", 8, 4, 1), ("unsigned int esr_ec", 12, 4, 0), ("unsigned long vcpu_pc", 16, 8, 0)],
    '"%s: HSR_EC: 0x%04x (%s), PC: 0x%016lx", __print_symbolic(REC->ret, { 0, "IRQ" }, '
    '{ 1, "SERROR" }, { 2, "TRAP" }, { 3, "ILLEGAL" }, { 0xbadca11, "HYP_GONE" }), '
    'REC->esr_ec, __print_symbolic(REC->esr_ec, { 0x18, "SYS64" }, { 0x01, "WFx" }), '
    "REC->vcpu_pc",
)
ENTRY = format_text(
    "kvm_entry", 402, [("unsigned long vcpu_pc", 8, 8, 0)], '"PC: 0x%016lx", REC->vcpu_pc'
)


@pytest.mark.parametrize("exit_format", [OLD_EXIT, NEW_EXIT], ids=["idx-exit_reason", "ret-esr_ec"])
def test_arm64_kvm_exit_fields_aliases_and_names(tmp_path: Path, exit_format: str) -> None:
    lo = Layout()
    exit_id = 400 if exit_format is OLD_EXIT else 401

    def kvm_exit(ret: int, ec: int, pc: int) -> bytes:
        return lo.pack("HBBiiIQ", exit_id, 0, 0, 77, ret, ec, pc)

    trap = 1 if exit_format is OLD_EXIT else 2
    page = lo.page(
        100,
        lo.data(1, lo.pack("HBBiQ", 402, 0, 0, 77, 0xFFFF800008123400))
        + lo.data(1, kvm_exit(trap, 0x18, 0xFFFF8000081234A8))
        + lo.data(1, kvm_exit(0, 0, 0x1000))
        + lo.data(1, kvm_exit(trap, 0x3F, 0x2000)),
    )
    c = Capture(
        layout=lo,
        cpus=1,
        data={"": {0: page}},
        formats=[("kvm", exit_format), ("kvm", ENTRY)],
    )
    cap = read_tracedat(write(tmp_path, c, "v7-zlib"))
    exits = cap.table("kvm_exit").to_pydict()
    assert exits["isa"] == ["arm64"] * 3
    assert exits["ret"] == [trap, 0, trap]
    assert exits["ret_name"] == ["TRAP", "IRQ", "TRAP"]
    assert exits["esr_ec"] == [0x18, 0, 0x3F]
    assert exits["ec_name"] == ["SYS64", "0x0", "0x3f"]  # unknown codes print as hex
    assert exits["vcpu_pc"] == [0xFFFF8000081234A8, 0x1000, 0x2000]
    assert exits["exit_reason"] == [None] * 3 and exits["vcpu_id"] == [None] * 3
    assert exits["common_pid"] == [77] * 3
    entry = cap.table("kvm_entry").to_pydict()
    assert entry["vcpu_pc"] == [0xFFFF800008123400] and entry["ts"] == [101]


def test_unknown_ring_buffer_header_is_refused(tmp_path: Path) -> None:
    c = build(Layout())
    c.header_event = "\ttype_len    :    5 bits\n\tpadding     : type == 27\n"
    with pytest.raises(CaptureFormatError, match="header_event says padding 27"):
        read_tracedat(write(tmp_path, c, "v6"))


def test_sniffed_saved_and_reloaded(tmp_path: Path) -> None:
    path = write(tmp_path, build(Layout(big=True)), "v7-zstd")
    assert sniff(path) == "trace.dat"
    cap = load(path)
    saved = ImportedCapture.load(cap.save(tmp_path / "out"))
    for name, table in cap.tables.items():
        assert saved.table(name).equals(conform(name, table)), name
    assert saved.metadata == cap.metadata
    assert len(cap.metadata.source_sha256) == 64


@given(
    st.binary(min_size=1, max_size=300),
    st.lists(st.integers(-8, 320), max_size=12),
    st.integers(0, 9),
    st.integers(1, 24),
)
def test_gather_matrix_equals_plain_slicing(
    raw: bytes, offsets: list[int], start: int, width: int
) -> None:
    data = np.frombuffer(raw, np.uint8)
    got = gather_matrix(data, np.array(offsets, np.int64), start, width)
    for row, offset in zip(got, offsets, strict=True):
        s = offset + start
        inside = s >= 0 and s + width <= len(raw)
        assert bytes(row) == (raw[s : s + width] if inside else bytes(width))
