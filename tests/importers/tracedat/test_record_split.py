"""Which table each trace.dat record goes to: a modelled event's typed table only when its
system is the kernel's (``sched``, ``power``, ``kvm``), ``events`` otherwise; records without
a format are counted, every one of them; the common fields read by each event's own format;
``bprint`` text rendered in the file's byte order; missed-events markers; the end-of-page
padding word.

Files are written by :mod:`tests.importers.tracedat.builder`; every expected value is the one
the test wrote.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.tracedat.read import read_tracedat
from tests.importers.tracedat.builder import SWITCH_FORMAT, Capture, Layout, format_text, write_v6
from tests.importers.tracedat.test_printk import BPRINT


def write(tmp_path: Path, c: Capture) -> Path:
    path = tmp_path / "trace.dat"
    path.write_bytes(write_v6(c))
    return path


def test_every_record_without_a_format_is_counted(tmp_path: Path) -> None:
    lo = Layout()
    unknown = lo.pack("HBBi", 999, 0, 0, 5) + bytes(8)
    records = b"".join(lo.data(1, unknown) for _ in range(7))
    page = lo.page(10, records + lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)))
    cap = read_tracedat(write(tmp_path, Capture(layout=lo, cpus=1, data={"": {0: page}})))
    assert cap.table("sched_switch").column("ts").to_pylist() == [18]
    # all 7 counted, the first 5 (FIRST_LOCATIONS) named by CPU and place in the merge
    assert cap.metadata.skipped == {
        "record with an event id that has no format (corrupt record)": {
            "count": 7,
            "first": [f"CPU 0 record seq {s} (id 999)" for s in range(5)],
        }
    }


def test_a_modelled_name_of_another_system_goes_to_events(tmp_path: Path) -> None:
    """``sched_migrate_task`` is modelled in system ``sched`` only: a same-named event of a
    module's own system is not the scheduler's."""
    lo = Layout()
    fields = [("int dest_cpu", 8, 4, 1)]
    own = format_text("sched_migrate_task", 500, fields, '"dest_cpu=%d", REC->dest_cpu')
    record = lo.pack("HBBi", 500, 0, 0, 77) + lo.pack("i", 3)
    page = lo.page(10, lo.data(1, record))
    c = Capture(layout=lo, cpus=1, data={"": {0: page}}, formats=[("mymod", own)])
    cap = read_tracedat(write(tmp_path, c))
    assert "sched_migrate_task" not in cap.tables
    events = cap.frame("events")
    assert events.select(
        "ts", "common_pid", pl.col("system").cast(pl.Utf8), pl.col("event").cast(pl.Utf8)
    ).rows() == [(11, 77, "mymod", "sched_migrate_task")]


def test_an_unsigned_common_pid_past_int32_wraps_as_the_kernel_prints_it(
    tmp_path: Path,
) -> None:
    """A format may declare ``common_pid`` unsigned (a damaged or foreign ``format`` file): its
    4 bytes are kept as the int32 the ``tasks`` and typed tables hold, not refused."""
    lo = Layout()
    unsigned = SWITCH_FORMAT.replace(
        "field:int common_pid;\toffset:4;\tsize:4;\tsigned:1;",
        "field:unsigned int common_pid;\toffset:4;\tsize:4;\tsigned:0;",
    )
    assert unsigned != SWITCH_FORMAT
    page = lo.page(10, lo.data(1, lo.switch(-1, "a", 1, 0, "b", 2)))
    c = Capture(layout=lo, cpus=1, data={"": {0: page}}, formats=[("sched", unsigned)])
    cap = read_tracedat(write(tmp_path, c))
    assert cap.frame("sched_switch").select("ts", "common_pid", "prev_pid").rows() == [(11, -1, 1)]


@pytest.mark.parametrize("big", [False, True])
def test_bprint_arguments_are_read_in_the_files_byte_order(tmp_path: Path, big: bool) -> None:
    """``bprint`` rows of ``events`` carry their text, rendered from the binary arguments in
    the file's byte order (``trace_seq_bprintf`` on the recording machine's words) with the
    format from ``printk_formats`` and the caller from ``kallsyms``."""
    lo = Layout(big=big)
    record = lo.pack("HBBiQQ", 6, 0, 0, 1, 0xFFFF000008100040, 0xFFFF0000AA)
    record += lo.pack("Ii", 1800000, -3)
    page = lo.page(10, lo.data(1, record))
    c = Capture(
        layout=lo,
        cpus=1,
        data={"": {0: page}},
        formats=[("ftrace", BPRINT)],
        kallsyms=b"ffff000008080000 T _text\nffff000008100000 t cpufreq_notify\n",
        printk=b'0xffff0000aa : "freq=%u cpu=%d\\n"\n',
    )
    cap = read_tracedat(write(tmp_path, c))
    assert cap.frame("events").select("ts", pl.col("event").cast(pl.Utf8), "args").rows() == [
        (11, "bprint", "cpufreq_notify: freq=1800000 cpu=-3")
    ]


def test_missed_events_markers_take_their_place_in_the_merge(tmp_path: Path) -> None:
    """A page flagged with missed events (RB_MISSED_EVENTS, a count stored after the data) puts
    a ``lost_events`` row just before the first record that follows on its CPU, with that
    record's time; after the last page of a CPU nothing follows: no time, after everything."""
    lo = Layout()
    cpu0 = (
        lo.page(10, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)))  # 11, seq 0
        + lo.page(20, lo.data(1, lo.switch(2, "b", 2, 0, "a", 1)), missed=3)  # 21, seq 2
        + lo.page(30, b"", missed=5)
    )
    cap = read_tracedat(write(tmp_path, Capture(layout=lo, cpus=1, data={"": {0: cpu0}})))
    assert cap.frame("sched_switch").select("ts", "seq").rows() == [(11, 0), (21, 2)]
    lost = cap.frame("lost_events")
    assert lost.select("ts", "seq", "cpu", "count", pl.col("kind").cast(pl.Utf8)).rows() == [
        (21, 1, 0, 3, "missed"),
        (None, 3, 0, 5, "missed"),
    ]


def test_a_record_shorter_than_its_format_is_counted_where_it_lies(tmp_path: Path) -> None:
    lo = Layout()
    short = lo.switch(1, "a", 1, 0, "b", 2)[:16]  # the common fields and 8 bytes of prev_comm
    page = lo.page(10, lo.data(1, short) + lo.data(1, lo.switch(2, "b", 2, 0, "a", 1)))
    cap = read_tracedat(write(tmp_path, Capture(layout=lo, cpus=1, data={"": {0: page}})))
    assert cap.frame("sched_switch").select("ts", "prev_pid").rows() == [(12, 2)]
    assert cap.metadata.skipped == {
        "record shorter than its event format": {"count": 1, "first": ["CPU 0 record seq 0"]}
    }


def test_a_file_whose_cpus_recorded_nothing_has_no_events(tmp_path: Path) -> None:
    cap = read_tracedat(write(tmp_path, Capture(layout=Layout(), cpus=2, data={"": {}})))
    assert list(cap.tables) == ["tasks"]  # the saved cmdlines only
    assert cap.frame("tasks").select("pid", pl.col("comm").cast(pl.Utf8)).rows() == [
        (1, "init"),
        (42, "worker"),
    ]
    assert cap.metadata.skipped == {}


@pytest.mark.parametrize("big", [False, True])
def test_a_padding_word_in_the_last_4_bytes_of_the_commit_ends_the_page(
    tmp_path: Path, big: bool
) -> None:
    """PADDING with a zero delta is the end-of-page marker, a single header word
    (``rb_event_set_padding``; kbuffer's ``translate_data`` stops there): it needs no
    ``array[0]`` after it, so it may sit in the commit's last 4 bytes."""
    lo = Layout(big=big)
    records = lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)) + lo.hdr(29, 0)
    page = lo.page(10, records)
    cap = read_tracedat(write(tmp_path, Capture(layout=lo, cpus=1, data={"": {0: page}})))
    assert cap.frame("sched_switch").select("ts", "prev_pid").rows() == [(11, 1)]
    assert cap.metadata.skipped == {}
