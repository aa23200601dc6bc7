"""Sample fields before PERIOD, and the event id that says which attr a record belongs to, in
either byte order (formats.md §4.4; perf ``evsel__parse_sample`` and
``evlist__event2evsel``).

A sample body starts ``{IDENTIFIER, IP, {u32 pid, tid}, TIME, ADDR, ID, STREAM_ID,
{u32 cpu, res}, PERIOD}`` (those ``sample_type`` selects); other kernel records end with the
``sample_id`` trailer ``{{pid, tid}, TIME, ID, STREAM_ID, {cpu, res}, IDENTIFIER}``, so their id
is found counting from the record's end. pid and tid are signed: the kernel reports -1 for a
task that is no longer alive (``perf_event_pid``). Every expected value is the one the test
wrote.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.importers.perf.abi import PERF_RECORD_COMM, PERF_RECORD_SAMPLE, PERF_RECORD_SWITCH
from tests.importers.perf.builder import Attr, Writer, bits
from tests.importers.perf.test_data_synthetic import load
from tests.importers.tracedat.builder import Layout

PREFIX = bits("IDENTIFIER", "IP", "TID", "TIME", "ADDR", "ID", "STREAM_ID", "CPU", "PERIOD")


@pytest.mark.parametrize("big", [False, True])
def test_every_field_before_period_in_either_byte_order(tmp_path: Path, big: bool) -> None:
    w = Writer(Layout(big=big))
    w.attrs = [Attr(1, 0, PREFIX, [0x1111]), Attr(1, 1, PREFIX, [0x2222])]
    w.sample(w.attrs[1], id=0x2222, ip=0xFFFF000012345678, pid=300, tid=301,
             time=0x0102030405060708, addr=9, stream_id=0x2222, cpu=3, period=4000)  # fmt: skip
    w.sample(w.attrs[0], id=0x1111, ip=0x400000, pid=-1, tid=-1, time=0x0102030405060709,
             addr=0, stream_id=0x1111, cpu=1, period=1)  # fmt: skip
    cap = load(tmp_path, w.file())
    assert cap.frame("pmu_samples").select(
        "ts", "cpu", "tgid", "pid", "ip", "period", "attr_id"
    ).rows() == [
        (0x0102030405060708, 3, 300, 301, 0xFFFF000012345678, 4000, 0x2222),
        (0x0102030405060709, 1, -1, -1, 0x400000, 1, 0x1111),
    ]


@pytest.mark.parametrize("big", [False, True])
def test_a_trailer_id_names_the_attr_of_a_non_sample_record(tmp_path: Path, big: bool) -> None:
    """Two attrs whose trailers differ before the id (one has TID), at the same place from
    the end (perf refuses attrs whose ``is_pos`` differ, ``evlist__valid_sample_type``): only
    the id says which layout the trailer has."""
    w = Writer(Layout(big=big))
    w.attrs = [
        Attr(1, 0, bits("TID", "TIME", "ID", "CPU"), [0x1111]),
        Attr(1, 1, bits("TIME", "ID", "CPU"), [0x2222]),
    ]
    for a, ident, t in ((w.attrs[0], 0x1111, 70), (w.attrs[1], 0x2222, 80)):
        comm = w.p("ii", 40, 41) + b"bash\0\0\0\0"
        trailer = w.sample_id(a, pid=40, tid=41, time=t, id=ident, cpu=2)
        w.record(PERF_RECORD_COMM, comm + trailer, 1 << 13)
    cap = load(tmp_path, w.file())
    assert cap.frame("perf_task_events").select(
        "ts", "cpu", "tid", pl.col("comm").cast(pl.Utf8)
    ).rows() == [(70, 2, 41, "bash"), (80, 2, 41, "bash")]
    assert cap.metadata.skipped == {}


def test_a_sample_too_short_to_hold_its_id_matches_no_attr(tmp_path: Path) -> None:
    """perf's ``evlist__event2id`` gives up when ``id_pos`` is not inside the body
    (``id_pos >= n``): the record counts as an unknown id (``nr_unknown_id``), whatever the
    bytes after it are (here: the end of the file)."""
    w = Writer()
    w.attrs = [Attr(1, 0, PREFIX, [0x1111]), Attr(1, 1, PREFIX, [0x2222])]
    w.sample(w.attrs[0], id=0x1111, ip=1, pid=5, tid=5, time=10, cpu=0, period=1)
    empty = w.record(PERF_RECORD_SAMPLE, b"", misc=1)  # its IDENTIFIER would be at offset 8
    blob = w.file()
    assert blob.endswith(empty)
    cap = load(tmp_path, blob)
    assert cap.frame("pmu_samples")["ts"].to_list() == [10]
    assert cap.metadata.skipped == {
        "record whose event id matches no attr (perf: nr_unknown_id)": {
            "count": 1,
            "first": [f"file offset {blob.index(empty, len(blob) - 8):#x}"],
        }
    }


def test_a_record_too_short_for_its_sample_id_trailer_is_damage(tmp_path: Path) -> None:
    """PERF_RECORD_SWITCH is the header and the trailer only: one without its trailer holds no
    time, task or CPU to read."""
    w = Writer()
    w.attrs = [Attr(1, 0, bits("TID", "TIME", "CPU"), [])]
    w.sample(w.attrs[0], pid=5, tid=5, time=10, cpu=0)
    cut = w.record(PERF_RECORD_SWITCH, b"", misc=1 << 13)
    blob = w.file()
    cap = load(tmp_path, blob)
    assert "perf_switches" not in cap.tables
    assert cap.metadata.skipped == {
        "record shorter than its attr's sample layout": {
            "count": 1,
            "first": [f"file offset {blob.index(cut, len(blob) - 8):#x}"],
        }
    }
