"""perf.data layouts no shared capture has (formats.md §6.4 items 11–13), written by
:mod:`tests.importers.perf.builder`: byte-swapped files, pipe mode, LOST records, READ groups,
SWITCH_CPU_WIDE, COMPRESSED2, old attr sizes, FINISHED_ROUND reordering, damaged streams."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from importers.errors import CaptureFormatError, DroppedEventsError
from importers.perf.data import read_perf_data
from tests.importers.perf.abi import (
    ATTR_FLAG,
    PERF_FORMAT_GROUP,
    PERF_FORMAT_ID,
    PERF_FORMAT_LOST,
    PERF_FORMAT_TOTAL_TIME_ENABLED,
    PERF_FORMAT_TOTAL_TIME_RUNNING,
    PERF_RECORD_COMM,
    PERF_RECORD_COMPRESSED,
    PERF_RECORD_COMPRESSED2,
    PERF_RECORD_FINISHED_ROUND,
    PERF_RECORD_LOST,
    PERF_RECORD_LOST_SAMPLES,
    PERF_RECORD_READ,
    PERF_RECORD_SWITCH_CPU_WIDE,
)
from tests.importers.perf.builder import (
    TRACEPOINT_ID,
    Attr,
    Writer,
    bits,
    hybrid_topology,
    nrcpus,
    pmu_mappings,
    tracing_data,
)
from tests.importers.tracedat.builder import Layout

SID = bits("TID", "TIME", "CPU", "IDENTIFIER")


def load(tmp_path: Path, blob: bytes, strict: bool = False) -> Capture:
    path = tmp_path / "perf.data"
    path.write_bytes(blob)
    return read_perf_data(path, strict=strict)


def cycles_writer(big: bool = False) -> Writer:
    w = Writer(Layout(big=big))
    st = bits("IDENTIFIER", "IP", "TID", "TIME", "CPU", "PERIOD")
    w.attrs = [Attr(8, 0x11, st, [101, 102]), Attr(9, 0x11, st, [201])]
    w.features[7] = nrcpus(w.lo, 4, 4)
    w.features[16] = pmu_mappings(w.lo, {8: "armv8_cortex_a55", 9: "armv8_cortex_a76"})
    w.features[30] = hybrid_topology(w.lo, {"armv8_cortex_a55": "0-1", "armv8_cortex_a76": "2-3"})
    for i, (attr, cpu) in enumerate([(0, 0), (1, 2), (0, 1), (1, 3)]):
        a = w.attrs[attr]
        w.sample(a, id=a.ids[0], ip=0x1000 + i, pid=7, tid=8, time=1000 + i, cpu=cpu, period=5)
    return w


@pytest.mark.parametrize("big", [False, True])
def test_two_arm_core_pmus_in_either_byte_order(tmp_path: Path, big: bool) -> None:
    cap = load(tmp_path, cycles_writer(big).file())
    s = cap.frame("pmu_samples")
    assert s.select("ts", "cpu", pl.col("pmu").cast(pl.Utf8), "ip", "attr_id").rows() == [
        (1000, 0, "armv8_cortex_a55", 0x1000, 101),
        (1001, 2, "armv8_cortex_a76", 0x1001, 201),
        (1002, 1, "armv8_cortex_a55", 0x1002, 101),
        (1003, 3, "armv8_cortex_a76", 0x1003, 201),
    ]
    assert cap.metadata.extra["big_endian"] is big
    topo = cap.frame("topology")
    assert topo.select("cpu", pl.col("pmu").cast(pl.Utf8), "pmu_type").rows() == [
        (0, "armv8_cortex_a55", 8),
        (1, "armv8_cortex_a55", 8),
        (2, "armv8_cortex_a76", 9),
        (3, "armv8_cortex_a76", 9),
    ]
    assert cap.metadata.cpu_count == 4


def test_generic_cycles_on_big_little_follow_the_sample_cpu(tmp_path: Path) -> None:
    """type 0 without an extended PMU type: the core PMU of the CPU the sample was taken on."""
    w = cycles_writer()
    st = bits("IP", "TID", "TIME", "CPU", "PERIOD")
    w.attrs = [Attr(0, 0, st, [])]
    w.records = []
    for cpu in (0, 3):
        w.sample(w.attrs[0], ip=1, pid=1, tid=1, time=10 + cpu, cpu=cpu, period=1)
    s = load(tmp_path, w.file()).frame("pmu_samples")
    assert s["pmu"].cast(pl.Utf8).to_list() == ["armv8_cortex_a55", "armv8_cortex_a76"]
    assert s["event"].cast(pl.Utf8).to_list() == ["cycles", "cycles"]


FIXED_FIELDS = ("IP", "TID", "TIME", "ADDR", "ID", "STREAM_ID", "CPU", "PERIOD")


@pytest.mark.parametrize("missing", FIXED_FIELDS)
def test_each_fixed_sample_field_is_found_by_its_own_bit(tmp_path: Path, missing: str) -> None:
    """Samples with every fixed-size field but one: each field present is read from its own
    place, so two PERF_SAMPLE_* bits swapped in the importer move a value."""
    w = Writer()
    a = Attr(1, 0, bits(*(f for f in FIXED_FIELDS if f != missing)), [77])
    w.attrs = [a]
    w.sample(a, ip=0x4321, pid=5, tid=6, time=1234, addr=0xAAAA, id=77, stream_id=88, cpu=3,
             period=9)  # fmt: skip
    row = load(tmp_path, w.file()).frame("pmu_samples").row(0, named=True)
    want = {"ip": 0x4321, "tgid": 5, "pid": 6, "ts": 1234, "attr_id": 77, "cpu": 3, "period": 9}
    gone = {"IP": ["ip"], "TID": ["tgid", "pid"], "ID": ["attr_id"], "CPU": ["cpu"]}
    for key in gone.get(missing, []):
        want[key] = None
    if missing == "PERIOD":
        want["period"] = a.sample_period  # a fixed period: the attr's
    if missing == "TIME":
        del want["ts"]  # no time recorded (the table keeps 0)
    assert {k: row[k] for k in want} == want


def test_lost_records_with_and_without_cpu(tmp_path: Path) -> None:
    w = cycles_writer()
    a = w.attrs[0]
    w.attrs[0] = a = Attr(a.type, a.config, a.sample_type | bits("IDENTIFIER"), a.ids)
    w.record(
        PERF_RECORD_LOST,
        w.p("QQ", 101, 17) + w.sample_id(a, pid=1, tid=1, time=2000, cpu=1, id=101),
    )
    w.record(
        PERF_RECORD_LOST_SAMPLES,
        w.p("Q", 5) + w.sample_id(a, pid=1, tid=1, time=2001, cpu=3, id=101),
    )
    cap = load(tmp_path, w.file())
    lost = cap.frame("lost_events")
    assert lost.select("ts", "cpu", "count", pl.col("kind").cast(pl.Utf8)).rows() == [
        (2000, 1, 17, "perf_lost"),
        (2001, 3, 5, "perf_lost_samples"),
    ]
    with pytest.raises(DroppedEventsError, match="perf lost 22 events"):
        load(tmp_path, w.file(), strict=True)


def test_sample_id_trailer_with_stream_id_finds_its_event(tmp_path: Path) -> None:
    """Without IDENTIFIER the trailer's id sits before STREAM_ID and CPU (perf's
    ``__perf_evsel__calc_is_pos``): reading one word too far back gives the stream id."""
    w = Writer()
    st = bits("TID", "TIME", "ID", "STREAM_ID", "CPU", "PERIOD")
    w.attrs = [Attr(1, 0, st, [101]), Attr(1, 1, st, [201])]
    w.sample(w.attrs[1], id=201, stream_id=555, pid=1, tid=1, time=1999, cpu=0, period=1)
    for k, (attr, cpu) in enumerate([(0, 1), (1, 3)]):
        a = w.attrs[attr]
        trailer = w.sample_id(a, pid=1, tid=1, time=2000 + k, cpu=cpu, id=a.ids[0], stream_id=555)
        w.record(PERF_RECORD_LOST, w.p("QQ", a.ids[0], 17 + k) + trailer)
    cap = load(tmp_path, w.file())
    assert cap.metadata.skipped == {}
    assert cap.frame("pmu_samples").select("ts", "cpu", "attr_id").rows() == [(1999, 0, 201)]
    assert cap.frame("lost_events").select("ts", "cpu", "count").rows() == [
        (2000, 1, 17),
        (2001, 3, 18),
    ]


def test_lost_without_cpu_is_reported_not_placed(tmp_path: Path) -> None:
    w = Writer()
    a = Attr(1, 0, bits("IP", "TID", "TIME", "PERIOD"), [])
    w.attrs = [a]
    w.record(PERF_RECORD_LOST, w.p("QQ", 0, 9) + w.sample_id(a, pid=3, tid=3, time=50))
    cap = load(tmp_path, w.file())
    assert cap.table("lost_events").num_rows == 0
    assert cap.metadata.extra["lost_without_cpu"] == 9
    assert any("without a CPU" in reason for reason in cap.metadata.skipped)


def test_read_group_with_ids_and_lost(tmp_path: Path) -> None:
    w = Writer()
    rf = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID
    rf |= PERF_FORMAT_GROUP | PERF_FORMAT_LOST
    st = bits("TID", "TIME", "ID", "CPU", "READ")
    w.attrs = [Attr(1, 0, st, [11], rf), Attr(1, 1, st, [12], rf)]
    read = w.p("QQQ", 2, 900, 800) + w.p("QQQ", 1234, 11, 0) + w.p("QQQ", 99, 12, 3)
    w.sample(w.attrs[0], read=read, pid=5, tid=5, time=77, id=11, cpu=2)
    cap = load(tmp_path, w.file())
    counts = cap.frame("pmu_counts")
    assert counts.select(
        "ts", "cpu", pl.col("event").cast(pl.Utf8), "value", "time_enabled_ns", "time_running_ns"
    ).rows() == [
        (77, 2, "cpu-clock", 1234, 900, 800),
        (77, 2, "task-clock", 99, 900, 800),
    ]
    sample_seq = cap.frame("pmu_samples")["seq"].to_list()
    assert counts["seq"].to_list() == [sample_seq[0] + 1, sample_seq[0] + 2]


def test_switch_cpu_wide_preempt_and_comm_exec(tmp_path: Path) -> None:
    w = Writer()
    a = Attr(1, 9, bits("TID", "TIME", "CPU"), [])
    w.attrs = [a]
    out_preempt = (1 << 13) | (1 << 14)
    w.record(
        PERF_RECORD_SWITCH_CPU_WIDE,
        w.p("ii", 30, 31) + w.sample_id(a, pid=20, tid=21, time=5, cpu=1),
        out_preempt,
    )
    w.record(
        PERF_RECORD_SWITCH_CPU_WIDE,
        w.p("ii", 20, 21) + w.sample_id(a, pid=30, tid=31, time=6, cpu=1),
        0,
    )
    comm = w.p("ii", 40, 41) + b"bash\0\0\0\0"
    w.record(PERF_RECORD_COMM, comm + w.sample_id(a, pid=40, tid=41, time=7, cpu=0), 1 << 13)
    cap = load(tmp_path, w.file())
    sw = cap.frame("perf_switches")
    assert sw.drop("seq").rows() == [
        (5, 1, 20, 21, True, True, 30, 31),
        (6, 1, 30, 31, False, False, 20, 21),
    ]
    tasks = cap.frame("perf_task_events")
    assert tasks.select(
        pl.col("kind").cast(pl.Utf8), "tid", pl.col("comm").cast(pl.Utf8)
    ).rows() == [("exec", 41, "bash")]
    assert cap.frame("tasks").select("pid", "tgid", "comm", "first_ts").rows() == [
        (41, 40, "bash", 7)
    ]


def tracepoint_writer(lo: Layout) -> Writer:
    w = Writer(lo)
    st = bits("IP", "TID", "TIME", "CPU", "PERIOD", "RAW", "CALLCHAIN", "REGS_USER", "STACK_USER")
    w.attrs = [Attr(2, TRACEPOINT_ID, st, [])]
    raw = lo.switch(42, "worker", 42, 1, "swapper/1", 0)
    w.sample(w.attrs[0], raw=raw, callchain=[0xFFFFFFFFFFFFFF80, 0x1234], pid=42, tid=42,
             time=300, cpu=1, period=1)  # fmt: skip
    return w


@pytest.mark.parametrize("big", [False, True])
def test_pipe_mode_tracepoints_with_tracing_data_after_the_record(
    tmp_path: Path, big: bool
) -> None:
    lo = Layout(big=big)
    w = tracepoint_writer(lo)
    cap = load(tmp_path, w.pipe(tracing=tracing_data(lo)))
    assert cap.metadata.extra["pipe_mode"] is True
    sw = cap.frame("sched_switch")
    assert sw.select("ts", "cpu", "common_pid", pl.col("prev_comm").cast(pl.Utf8), "prev_state",
                     pl.col("prev_state_str").cast(pl.Utf8), "next_pid").rows() == [
        (300, 1, 42, "worker", 1, "S", 0)
    ]  # fmt: skip
    assert cap.metadata.extra["attrs"][0]["name"] == "sched:sched_switch"


@pytest.mark.parametrize("kind", [PERF_RECORD_COMPRESSED, PERF_RECORD_COMPRESSED2])
def test_compressed_records(tmp_path: Path, kind: int) -> None:
    w = cycles_writer()
    w.compress_all(kind)
    cap = load(tmp_path, w.file())
    assert cap.frame("pmu_samples").height == 4
    assert cap.metadata.extra["records"]["SAMPLE"] == 4


def test_attr_ver0_without_sample_id_all(tmp_path: Path) -> None:
    w = Writer()
    a = Attr(
        1, 0, bits("IP", "TID", "TIME"), [], flags=ATTR_FLAG["freq"], size=64, sample_period=99
    )
    w.attrs = [a]
    w.sample(a, ip=5, pid=2, tid=3, time=10)
    w.record(PERF_RECORD_COMM, w.p("ii", 2, 3) + b"sh\0\0\0\0\0\0")  # no trailer: no sample_id_all
    cap = load(tmp_path, w.file())
    s = cap.frame("pmu_samples")
    assert s.select("ts", "tgid", "pid", "ip", "period").rows() == [(10, 2, 3, 5, 99)]
    assert cap.frame("perf_task_events")["ts"].to_list() == [None]


def test_finished_round_order_is_perfs(tmp_path: Path) -> None:
    """Flush at round k releases what is older than the max time seen before round k-1."""
    w = Writer()
    a = Attr(1, 0, bits("TID", "TIME", "CPU"), [])
    w.attrs = [a]
    for t in (30, 10):
        w.sample(a, pid=1, tid=1, time=t, cpu=0)
    w.record(PERF_RECORD_FINISHED_ROUND, b"")
    for t in (20, 5):
        w.sample(a, pid=1, tid=1, time=t, cpu=0)
    w.record(PERF_RECORD_FINISHED_ROUND, b"")
    w.sample(a, pid=1, tid=1, time=25, cpu=0)
    # flush 1 (threshold 0): nothing; flush 2 (threshold 30): 5,10,20,30; final: 25
    cap = load(tmp_path, w.file())
    assert cap.frame("pmu_samples")["ts"].to_list() == [5, 10, 20, 30, 25]


def test_unknown_id_and_damaged_stream_are_counted(tmp_path: Path) -> None:
    w = cycles_writer()
    w.sample(w.attrs[0], id=999, ip=1, pid=1, tid=1, time=5000, cpu=0)
    blob = w.file()
    cap = load(tmp_path, blob)
    assert cap.frame("pmu_samples").height == 4
    assert any("matches no attr" in r for r in cap.metadata.skipped)
    # a record whose size breaks the chain: the rest of the data is skipped and counted
    data_at = blob.index(w.records[2])
    broken = blob[: data_at + 6] + b"\x03\x00" + blob[data_at + 8 :]
    cap = load(tmp_path, broken)
    assert cap.frame("pmu_samples").height == 2
    assert any("record stream damaged" in r for r in cap.metadata.skipped)
    with pytest.raises(CaptureFormatError, match="record stream damaged"):
        load(tmp_path, broken, strict=True)


def test_not_perf_data_and_truncated_header(tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match=r"PERFFILE: a perf 2\.6"):
        load(tmp_path, b"PERFFILE" + bytes(200))
    with pytest.raises(CaptureFormatError, match=r"perf\.data@0x"):
        load(tmp_path, cycles_writer().file()[:60])


def read_writer() -> Writer:
    """Two counters read as a group with their ids (read_format ID|GROUP)."""
    w = Writer()
    st = bits("TID", "TIME", "CPU", "IDENTIFIER")
    w.attrs = [Attr(1, 0, st, [11], 4 | 8), Attr(1, 1, st, [12], 4 | 8)]
    return w


def test_read_records_yield_one_count_per_value(tmp_path: Path) -> None:
    w = read_writer()
    a = w.attrs[0]
    values = w.p("QQQQQ", 2, 1234, 11, 99, 12)
    w.record(
        PERF_RECORD_READ,
        w.p("ii", 5, 5) + values + w.sample_id(a, pid=5, tid=5, time=70, cpu=1, id=11),
    )
    w.sample(a, pid=5, tid=5, time=80, cpu=1, id=11)
    cap = load(tmp_path, w.file())
    counts = cap.frame("pmu_counts")
    assert counts.select("ts", "cpu", pl.col("event").cast(pl.Utf8), "value").rows() == [
        (70, 1, "cpu-clock", 1234),
        (70, 1, "task-clock", 99),
    ]
    assert cap.metadata.skipped == {}


def test_read_record_shorter_than_its_group_is_skipped(tmp_path: Path) -> None:
    """nr = 2 but one {value, id} pair: nothing is read from the trailer or the next record."""
    w = read_writer()
    a = w.attrs[0]
    values = w.p("QQQ", 2, 1234, 11)
    w.record(
        PERF_RECORD_READ,
        w.p("ii", 5, 5) + values + w.sample_id(a, pid=5, tid=5, time=70, cpu=1, id=11),
    )
    w.sample(a, pid=5, tid=5, time=80, cpu=1, id=11)
    cap = load(tmp_path, w.file())
    assert cap.table("pmu_counts").num_rows == 0
    assert cap.frame("pmu_samples")["ts"].to_list() == [80]
    assert any("shorter" in reason for reason in cap.metadata.skipped)
    with pytest.raises(CaptureFormatError, match="shorter"):
        load(tmp_path, w.file(), strict=True)


@pytest.mark.parametrize(
    ("at", "patch", "message"),
    [
        (14, b"\x02", "endianness byte 2"),
        (15, b"\x03", "long size 3"),
        (16, bytes(4), "page size 0"),
    ],
)
def test_tracing_data_prefix_is_validated(
    tmp_path: Path, at: int, patch: bytes, message: str
) -> None:
    """The trace.dat prefix inside TRACING_DATA gets the checks a trace.dat file gets (a long
    size of 3 used to reach the printk decoder and fail there with a KeyError)."""
    lo = Layout()
    blob = bytearray(tracing_data(lo))
    assert blob[10:14] == b"0.6\0"  # magic, version; then endianness, long size, page size
    blob[at : at + len(patch)] = patch
    with pytest.raises(CaptureFormatError, match=message):
        load(tmp_path, tracepoint_writer(lo).pipe(tracing=bytes(blob)))
