"""Sample fields whose length the record states: PERF_SAMPLE_READ and CALLCHAIN, and the
tracepoint's RAW data after them.

The read_format block (``evsel__parse_sample``; ``perf_output_read_one`` and
``perf_output_read_group`` in kernel/events/core.c) is, without PERF_FORMAT_GROUP,
``{value, [time_enabled], [time_running], [id], [lost]}`` and, with it,
``{nr, [time_enabled], [time_running], {value, [id], [lost]}[nr]}``. CALLCHAIN and RAW follow
it, so a block measured one word short or long misplaces the tracepoint's RAW data. A
callchain is ``{u64 nr; u64 ips[nr]}``: an ``nr`` the record cannot hold is damage. Every
expected value is the one the test wrote.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.importers.perf.abi import (
    PERF_FORMAT_GROUP,
    PERF_FORMAT_ID,
    PERF_FORMAT_TOTAL_TIME_ENABLED,
    PERF_FORMAT_TOTAL_TIME_RUNNING,
    PERF_RECORD_SAMPLE,
)
from tests.importers.perf.builder import TRACEPOINT_ID, Attr, Writer, bits, tracing_data
from tests.importers.perf.test_data_synthetic import load
from tests.importers.tracedat.builder import Layout

ENABLED, RUNNING = PERF_FORMAT_TOTAL_TIME_ENABLED, PERF_FORMAT_TOTAL_TIME_RUNNING
EVENT_ID = 77


def read_block(w: Writer, read_format: int, value: int, enabled: int, running: int) -> bytes:
    """The read_format block of one counter, laid out as the kernel writes it."""
    times = (w.p("Q", enabled) if read_format & ENABLED else b"") + (
        w.p("Q", running) if read_format & RUNNING else b""
    )
    ident = w.p("Q", EVENT_ID) if read_format & PERF_FORMAT_ID else b""
    if read_format & PERF_FORMAT_GROUP:
        return w.p("Q", 1) + times + w.p("Q", value) + ident
    return w.p("Q", value) + times + ident


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(
    "read_format",
    [
        ENABLED | RUNNING | PERF_FORMAT_ID,  # one value
        PERF_FORMAT_GROUP | ENABLED | RUNNING | PERF_FORMAT_ID,
        PERF_FORMAT_GROUP | RUNNING,
        PERF_FORMAT_GROUP | ENABLED,
    ],
)
def test_a_tracepoint_sample_with_a_read_block(tmp_path: Path, big: bool, read_format: int) -> None:
    lo = Layout(big=big)
    w = Writer(lo)
    st = bits("TID", "TIME", "CPU", "READ", "CALLCHAIN", "RAW")
    w.attrs = [Attr(2, TRACEPOINT_ID, st, [EVENT_ID], read_format)]
    raw = lo.switch(42, "worker", 42, 1, "swapper/1", 0)
    read = read_block(w, read_format, 5000, 900, 700)
    w.sample(w.attrs[0], read=read, raw=raw, callchain=[0x1234], pid=42, tid=42, time=300, cpu=1)
    cap = load(tmp_path, w.pipe(tracing=tracing_data(lo)))
    assert cap.frame("sched_switch").select(
        "ts", "cpu", "common_pid", pl.col("prev_comm").cast(pl.Utf8), "next_pid"
    ).rows() == [(300, 1, 42, "worker", 0)]
    counts = cap.frame("pmu_counts")
    assert counts.select("ts", "cpu", "value").rows() == [(300, 1, 5000)]
    if read_format & ENABLED:
        assert counts["time_enabled_ns"].to_list() == [900]
    if read_format & RUNNING:
        assert counts["time_running_ns"].to_list() == [700]
    assert cap.metadata.skipped == {}


LO = Layout()
#: a sched_switch RAW payload, padded as the kernel pads RAW (u32 size + data to 8 bytes)
RAW = LO.switch(42, "worker", 42, 1, "swapper/1", 0)
RAW += bytes(-(len(RAW) + 4) % 8)


def assert_one_damaged_sample(tmp_path: Path, sample_type: int, after_cpu: bytes) -> None:
    """A tracepoint sample ``{pid, tid}{time}{cpu, res}`` + ``after_cpu`` is counted as
    damage where it lies, and gives no row."""
    w = Writer(LO)
    w.attrs = [Attr(2, TRACEPOINT_ID, sample_type, [])]
    body = LO.pack("iiQII", 42, 42, 300, 1, 0) + after_cpu
    record = w.record(PERF_RECORD_SAMPLE, body, misc=1)
    blob = w.pipe(tracing=tracing_data(LO))
    cap = load(tmp_path, blob)
    assert cap.frame("sched_switch").height == 0
    assert cap.metadata.skipped == {
        "record shorter than its attr's sample layout": {
            "count": 1,
            "first": [f"file offset {blob.index(record):#x}"],
        }
    }


@pytest.mark.parametrize("nr", [1 << 63, (1 << 64) - 1, 2])
def test_a_callchain_longer_than_its_record_is_damage(tmp_path: Path, nr: int) -> None:
    """``nr`` is a u64: one of 2^63 or more entries must not wrap to a negative length (which
    would read the RAW data right after ``nr`` as if the callchain were empty)."""
    sample_type = bits("TID", "TIME", "CPU", "CALLCHAIN", "RAW")
    assert_one_damaged_sample(tmp_path, sample_type, LO.pack("QI", nr, len(RAW)) + RAW)


def test_raw_data_longer_than_its_record_is_damage(tmp_path: Path) -> None:
    sample_type = bits("TID", "TIME", "CPU", "RAW")
    assert_one_damaged_sample(tmp_path, sample_type, LO.pack("I", len(RAW) + 8) + RAW)
