"""Perfetto layouts the shared captures lack, written with the ``perfetto`` package's classes
(:mod:`tests.importers.perfetto.builder`): compressed packets, incremental state, clocks, loss
signals, compact_sched inference, process trees, CPU info, damage."""

from __future__ import annotations

import zlib
from pathlib import Path

import polars as pl
import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
    BuiltinClock,
    FtraceEventBundle,
    TracePacket,
)

from importers.capture import Capture
from importers.detect import load, looks_like_perfetto, sniff
from importers.errors import CaptureFormatError, DroppedEventsError
from importers.perfetto import bundles
from importers.perfetto.generic import event_fields
from replay.api import open_capture
from tests.importers.perfetto.builder import (
    Builder,
    compact_switches,
    compact_wakings,
    idle,
    switch,
)

# every test here runs on each engine of the byte loops (numba, numpy twins)
pytestmark = pytest.mark.usefixtures("each_engine")

BOOT, MONO, MONO_RAW = (BuiltinClock.BUILTIN_CLOCK_BOOTTIME, BuiltinClock.BUILTIN_CLOCK_MONOTONIC,
                        BuiltinClock.BUILTIN_CLOCK_MONOTONIC_RAW)  # fmt: skip
S = 1_000_000_000


def write(tmp_path: Path, blob: bytes, name: str = "t.perfetto-trace") -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def imported(tmp_path: Path, blob: bytes, strict: bool = False) -> Capture:
    return load(write(tmp_path, blob), strict=strict)


def two_cpus() -> Builder:
    t = Builder()
    b0 = t.bundle(0)
    switch(b0, 10 * S, ("swapper/0", 0), ("vcpu", 101))
    switch(b0, 11 * S, ("vcpu", 101), ("swapper/0", 0))
    idle(b0, 12 * S, 0, 1, 0)
    b1 = t.bundle(1)
    switch(b1, 10 * S + 5, ("swapper/1", 0), ("worker", 202))
    return t


@pytest.mark.parametrize("zstd", [False, True])
def test_compressed_packets_read_like_plain_ones(tmp_path: Path, zstd: bool) -> None:
    t = two_cpus()
    plain = imported(tmp_path, t.bytes())
    # the first packet stays plain: inflated packets take the compressed one's place
    deflated = load(write(tmp_path, t.compressed(keep_first=1, zstd=zstd), "z.perfetto-trace"))
    for name in ("sched_switch", "cpu_idle", "tasks"):
        assert deflated.table(name).equals(plain.table(name)), name
    assert deflated.metadata.extra["packets"]["ftrace_events"] == 2
    assert plain.frame("sched_switch")["next_pid"].to_list() == [101, 0, 202]


def test_compressed_packets_are_inflated_under_a_running_limit(tmp_path: Path) -> None:
    bomb = TracePacket()
    bomb.compressed_packets = zlib.compress(bytes(80 << 20), 9)  # 80 MiB from 80 kB
    t = two_cpus()
    t.packets.append(bomb)
    with pytest.raises(CaptureFormatError, match="compression bomb"):
        imported(tmp_path, t.bytes())


def test_packets_in_other_clocks_and_sequence_defaults(tmp_path: Path) -> None:
    t = Builder()
    snap = t.packet(seq=1).clock_snapshot
    for clock, value in ((BOOT, 100 * S), (MONO, 40 * S), (MONO_RAW, 30 * S)):
        c = snap.clocks.add()
        c.clock_id, c.timestamp = clock, value
    # a sequence whose packets default to MONOTONIC: its process tree is at 40 s mono
    d = t.packet(seq=3, sequence_flags=TracePacket.SEQ_INCREMENTAL_STATE_CLEARED)
    d.trace_packet_defaults.timestamp_clock_id = MONO
    tree = t.packet(seq=3, timestamp=40 * S, sequence_flags=TracePacket.SEQ_NEEDS_INCREMENTAL_STATE)
    th = tree.process_tree.threads.add()
    th.tid, th.tgid, th.name = 77, 70, "crosvm_vcpu0"
    # ftrace in MONO_RAW: 31 s raw is 101 s boot
    b = t.bundle(0, ftrace_clock=4)
    switch(b, 31 * S, ("swapper/0", 0), ("crosvm_vcpu0", 77))
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("sched_switch")["ts"].to_list() == [101 * S]
    tasks = cap.frame("tasks").filter(pl.col("pid") == 77)
    assert tasks.select("tgid", "first_ts", "last_ts", pl.col("source").cast(pl.Utf8)).rows() == [
        (70, 100 * S, 101 * S, "process_tree")
    ]


def test_global_ftrace_clock_takes_the_pair_before_each_event(tmp_path: Path) -> None:
    # Perfetto's ClockSynchronizer: the last snapshot at or before the time, else the first
    t = Builder()
    b = t.bundle(0, ftrace_clock=2, ftrace_timestamp=20 * S, boot_timestamp=25 * S)
    idle(b, 10 * S, 0, 1, 0)  # before every pair: the first one's offset, +5 s
    b = t.bundle(0, ftrace_clock=2, ftrace_timestamp=30 * S, boot_timestamp=37 * S)
    idle(b, 21 * S, 0, 1, 0)  # after the first pair: +5 s
    idle(b, 30 * S, 0, 1, 0)  # at the second pair: +7 s
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("cpu_idle")["ts"].to_list() == [15 * S, 26 * S, 37 * S]
    assert cap.metadata.extra["ftrace_clocks"] == ["global"]


def test_bundles_in_a_clock_without_pairs_are_kept_and_counted(tmp_path: Path) -> None:
    t = Builder()
    idle(t.bundle(0, ftrace_clock=4), 10 * S, 0, 1, 0)  # MONO_RAW without any snapshot
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("cpu_idle")["ts"].to_list() == [10 * S]
    (reason,) = cap.metadata.skipped
    assert "clock without a BOOTTIME pair" in reason


def test_needing_lost_incremental_state_drops_the_packet(tmp_path: Path) -> None:
    t = two_cpus()
    late = t.bundle(0, seq=9)
    t.packets[-1].sequence_flags = TracePacket.SEQ_NEEDS_INCREMENTAL_STATE  # never cleared
    idle(late, 13 * S, 0, 1, 0)
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("cpu_idle").height == 1
    assert cap.metadata.skipped["ftrace bundle needing incremental state lost with earlier "
                                "packets (dropped)"]["count"] == 1  # fmt: skip


def test_loss_signals_become_lost_events(tmp_path: Path) -> None:
    t = Builder()
    b = t.bundle(0, previous_bundle_end_timestamp=0)
    idle(b, 10 * S, 0, 1, 0)
    b = t.bundle(0, previous_bundle_end_timestamp=10 * S, lost_events=True)  # kernel lost
    idle(b, 20 * S, 0, 1, 0)
    b = t.bundle(0, previous_bundle_end_timestamp=25 * S)  # a bundle ending at 25 s is gone
    idle(b, 30 * S, 0, 1, 0)
    b = t.bundle(1, previous_bundle_end_timestamp=5 * S)  # CPU 1's first: earlier data gone
    idle(b, 31 * S, 0, 1, 1)
    b = t.bundle(1)  # no end timestamp (older Perfetto); packets dropped before it
    t.packets[-1].previous_packet_dropped = 1
    idle(b, 40 * S, 0, 1, 1)
    cap = imported(tmp_path, t.bytes())
    lost = cap.frame("lost_events").select("cpu", "ts", pl.col("kind").cast(pl.Utf8), "count")
    assert lost.sort("ts", "cpu", nulls_last=True).rows() == [
        (0, 20 * S, "lost", None),
        (0, 30 * S, "missing bundle", None),
        (1, 31 * S, "missing bundle", None),
        (1, 40 * S, "dropped packets", None),
        (0, None, "dropped packets", None),  # CPU 0 has no event after it
    ]
    with pytest.raises(DroppedEventsError):
        imported(tmp_path, t.bytes(), strict=True)


def test_compact_sched_fields_follow_from_the_cpus_switches(tmp_path: Path) -> None:
    t = Builder()
    b = t.bundle(0)
    idle(b, 1 * S, 50, 1, 0)  # logged by 50, who runs before the CPU's first switch
    idle(b, 4 * S, 100, 1, 0)  # logged by 100, after that switch: not who ran before it
    compact_wakings(b, [(2 * S, "a", 100, 0), (4 * S, "b", 200, 0)])
    compact_switches(b, [(3 * S, "a", 100, 1), (5 * S, "b", 200, 0x100)])
    b = t.bundle(0, lost_events=True)
    compact_wakings(b, [(6 * S, "c", 300, 1)])  # after the loss, before any switch: unknown
    compact_switches(b, [(7 * S, "c", 300, 2), (8 * S, "a", 100, 1)])
    t.bundle(1).compact_sched.intern_table.append("unused")  # a CPU with an empty compact
    system = t.packet(seq=1).system_info
    system.utsname.release = "5.10.107-android13"
    cap = imported(tmp_path, t.bytes())
    sw = cap.frame("sched_switch")
    rows = sw.select("ts", "common_pid", "prev_pid", pl.col("prev_comm").cast(pl.Utf8),
                     pl.col("prev_state_str").cast(pl.Utf8), "next_pid").rows()  # fmt: skip
    assert rows == [
        (3 * S, 50, 50, None, "S", 100),  # the first: from the plain event, comm unknown
        (5 * S, 100, 100, "a", "R+", 200),
        (7 * S, -1, None, None, "D", 300),  # lost events: who ran before is unknown
        (8 * S, 300, 300, "c", "S", 100),
    ]
    wk = cap.frame("sched_waking").select("ts", "common_pid", "pid").rows()
    assert wk == [(2 * S, 50, 100), (4 * S, 100, 200), (6 * S, -1, 300)]
    assert cap.metadata.extra["compact_unknown"] == {
        "sched_switch without previous task": 1,
        "sched_waking without logger": 1,
    }
    assert sw["seq"].is_sorted()
    every = [cap.frame(t)["seq"] for t in ("sched_switch", "sched_waking", "cpu_idle")]
    assert pl.concat(every).n_unique() == 4 + 3 + 2  # seq is unique in the whole capture


def test_compact_arrays_of_unequal_length_are_dropped_and_counted(tmp_path: Path) -> None:
    t = two_cpus()
    b = t.bundle(2)
    compact_switches(b, [(3 * S, "a", 100, 1), (5 * S, "b", 200, 1)])
    b.compact_sched.switch_next_pid.append(7)  # one pid too many
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("sched_switch").height == 3
    assert list(cap.metadata.skipped) == [
        "compact_sched arrays of unequal length or comm index past the intern table (its "
        "events dropped)"
    ]


def test_crosvm_vcpu_threads_named_by_the_process_tree_are_vcpus(tmp_path: Path) -> None:
    # crosvm names its vCPU threads crosvm_vcpu<N> (src/crosvm/sys/linux/vcpu.rs)
    t = Builder()
    tree = t.packet(seq=2, timestamp=1 * S).process_tree
    pr = tree.processes.add()
    pr.pid, pr.ppid = 900, 1
    pr.cmdline.append("/apex/com.android.virt/bin/crosvm")
    for tid, name in ((901, "crosvm_vcpu0"), (902, "crosvm_vcpu1"), (903, "v_balloon")):
        th = tree.threads.add()
        th.tid, th.tgid, th.name = tid, 900, name
    b = t.bundle(0)
    switch(b, 2 * S, ("swapper/0", 0), ("crosvm_vcpu0", 901))
    switch(b, 3 * S, ("crosvm_vcpu0", 901), ("crosvm_vcpu1", 902))
    cap = open_capture(write(tmp_path, t.bytes()))
    vcpus = cap.frame("vcpus").select("tid", pl.col("vm").cast(pl.Utf8), "vcpu_index", "vm_pid")
    assert vcpus.sort("tid").rows() == [(901, "crosvm:900", 0, 900), (902, "crosvm:900", 1, 900)]


def test_cpu_info_gives_the_topology_and_metadata(tmp_path: Path) -> None:
    t = two_cpus()
    info = t.packet(seq=1).cpu_info
    for cpu in range(4):
        c = info.cpus.add()
        c.processor = "AArch64 Processor rev 0 (aarch64)"
        c.capacity = 400 if cpu < 2 else 1024
        c.frequencies.extend([300000, 1800000] if cpu < 2 else [500000, 2800000])
        c.arm_identifier.implementer = 0x41
        c.arm_identifier.part = 0xD05 if cpu < 2 else 0xD44
    cap = imported(tmp_path, t.bytes())
    topo = cap.frame("topology").select(
        "cpu", pl.col("pmu").cast(pl.Utf8), "capacity", "max_freq_khz"
    )
    assert topo.rows() == [
        (0, "midr_41_d05", 400, 1800000), (1, "midr_41_d05", 400, 1800000),
        (2, "midr_41_d44", 1024, 2800000), (3, "midr_41_d44", 1024, 2800000),
    ]  # fmt: skip
    assert cap.metadata.extra["cpu_info"][2]["midr"] == {"implementer": 0x41, "part": 0xD44}


def test_other_events_keep_their_fields(tmp_path: Path) -> None:
    t = two_cpus()
    t.packet(seq=7, sequence_flags=TracePacket.SEQ_INCREMENTAL_STATE_CLEARED)
    sym = t.packets[-1].interned_data.kernel_symbols.add()
    sym.iid, sym.str = 5, b"do_sys_poll"
    b = t.bundle(0)
    t.packets[-1].sequence_flags = TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
    e = b.event.add()
    e.timestamp, e.pid = 20 * S, 101
    e.sched_blocked_reason.pid, e.sched_blocked_reason.caller = 101, 5
    e = b.event.add()
    e.timestamp, e.pid = 21 * S, 101
    e.print.buf = "B|101|guest work\n"
    e = b.event.add()
    e.timestamp, e.pid = 22 * S, 101
    e.generic.event_name = "vendor_thing"
    for name, kind, value in (("level", "int_value", -3), ("label", "str_value", "hot")):
        f = e.generic.field.add()
        f.name = name
        setattr(f, kind, value)
    e = b.event.add()  # a generic event without a name
    e.timestamp, e.pid = 23 * S, 101
    e.generic.field.add().name = "bare"
    # an event number this pmu-replay's schema does not know: field 9999 of FtraceEvent
    b.event.add().ParseFromString(bytes.fromhex("08e807") + b"\xfa\xf0\x04\x02\x08\x07")
    cap = imported(tmp_path, t.bytes())
    ev = cap.frame("events").sort("seq")
    assert ev.select(pl.col("event").cast(pl.Utf8), "args").rows() == [
        ("sched_blocked_reason", "caller=do_sys_poll"),
        ("print", "B|101|guest work"),
        ("vendor_thing", "level=-3 label=hot"),
        ("generic", "bare="),
        ("ftrace_event_9999", None),
    ]
    blocked = ev.row(0, named=True)
    assert event_fields("sched_blocked_reason", blocked["payload"]) == {"pid": 101, "caller": 5}
    assert ev["payload"][4] == b"\x08\x07"
    with pytest.raises(ValueError, match="not an FtraceEvent"):
        event_fields("vendor_thing", ev["payload"][2])


def test_damage_is_counted_and_the_rest_kept(tmp_path: Path) -> None:
    blob = two_cpus().bytes()
    cut = imported(tmp_path, blob[:-3])  # the last packet (CPU 1's bundle) cut short
    assert cut.frame("sched_switch").height == 2
    assert list(cut.metadata.skipped) == ["trace cut short: its last packet is incomplete "
                                          "(dropped)"]  # fmt: skip
    # a packet whose bytes stop making sense: a field key of wire type 7
    bad = TracePacket()
    bad.timestamp = 5
    t = two_cpus()
    t.packets.insert(1, bad)
    raw = bytearray(t.bytes())
    at = raw.index(bad.SerializeToString())
    raw[at] = 0x0F  # the packet's first key: field 1, wire type 7
    cap = imported(tmp_path, bytes(raw))
    assert cap.frame("sched_switch").height == 3
    assert cap.metadata.skipped["damaged TracePacket (dropped whole)"]["count"] == 1
    with pytest.raises(CaptureFormatError, match="damaged TracePacket"):
        imported(tmp_path, bytes(raw), strict=True)
    with pytest.raises(CaptureFormatError, match="no complete TracePacket at offset 0"):
        imported(tmp_path, blob[:10])


def test_sniffed_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    trace = write(tmp_path, two_cpus().bytes(), "capture.bin")
    assert sniff(trace) == "perfetto"
    # text that happens to start with a newline (0x0a) is not a Perfetto trace
    text = b"\n# tracer: nop\n#\n  sh-5 [001] 1.000001: cpu_idle: state=1 cpu_id=1\n"
    assert not looks_like_perfetto(text)
    # keys of the deprecated group wire types (3, 4) or none (6, 7) are not protobuf's
    for key in (0x0B, 0x0C, 0x0E, 0x0F):
        assert not looks_like_perfetto(b"\n\x05" + bytes([key]) + b"abcd\n")
    assert looks_like_perfetto(b"\n\x05\x0dabcd\n")  # wire type 5: four bytes
    assert sniff(write(tmp_path, text, "t.txt")) == "ftrace-text"


def test_process_stats_and_the_services_own_counters(tmp_path: Path) -> None:
    t = two_cpus()
    stats = t.packet(seq=2).process_stats.processes.add()
    stats.pid = 100
    stats.threads.add().tid = 101  # vcpu (101) belongs to process 100
    for phase, overrun in ((1, 3), (2, 10)):  # START_OF_TRACE, END_OF_TRACE
        fs = t.packet(seq=1).ftrace_stats
        fs.phase = phase
        cpu = fs.cpu_stats.add()
        cpu.cpu, cpu.overrun, cpu.dropped_events = 1, overrun, phase
    t.packet(seq=1).trace_stats.chunks_discarded = 4
    extra = (cap := imported(tmp_path, t.bytes())).metadata.extra
    assert cap.frame("tasks").filter(pl.col("pid") == 101)["tgid"].to_list() == [100]
    assert extra["ftrace_overrun"] == {1: 8}  # (10 + 2) - (3 + 1): overrun and dropped
    assert extra["trace_stats"] == {"chunks_discarded": 4}


def _blocked(b: FtraceEventBundle, ts: int, caller: int) -> None:
    e = b.event.add()
    e.timestamp, e.pid = ts, 101
    e.sched_blocked_reason.pid, e.sched_blocked_reason.caller = 101, caller


def _interned(t: Builder, seq: int, symbols: list[tuple[int, bytes]]) -> None:
    """A packet clearing sequence ``seq``'s state and interning ``symbols`` (iid, name)."""
    t.packet(seq=seq, sequence_flags=TracePacket.SEQ_INCREMENTAL_STATE_CLEARED)
    for iid, name in symbols:
        sym = t.packets[-1].interned_data.kernel_symbols.add()
        sym.iid, sym.str = iid, name


def test_kernel_symbols_are_those_of_each_sequences_current_state(tmp_path: Path) -> None:
    """An iid names the symbol last interned under it on the event's own sequence since that
    sequence's last clear."""
    t = two_cpus()
    _interned(t, 7, [(5, b"first_name"), (5, b"do_sys_poll"), (6, b"schedule")])
    _interned(t, 9, [(5, b"other_sequence")])
    b = t.bundle(0)
    _blocked(b, 20 * S, 5)
    _blocked(b, 21 * S, 6)
    b = t.bundle(1, seq=9)
    _blocked(b, 22 * S, 5)
    _interned(t, 7, [(6, b"after_clear")])
    b = t.bundle(0)
    _blocked(b, 23 * S, 6)
    _blocked(b, 24 * S, 5)  # interned before the clear only
    ev = imported(tmp_path, t.bytes()).frame("events").sort("ts")
    assert ev["args"].to_list() == [
        "caller=do_sys_poll",
        "caller=schedule",
        "caller=other_sequence",
        "caller=after_clear",
        "",
    ]


@pytest.mark.parametrize("events_per_group", [None, 1])
def test_one_marker_per_bundle_and_cpu_and_none_for_a_sequences_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events_per_group: int | None
) -> None:
    """A bundle both flagged and out of order gets one marker, ``lost``; a CPU's last event
    is carried from group to group (with one event a group, each bundle is decoded in a group
    of its own); the drop every sequence's first packet reports marks nothing."""
    t = Builder()
    idle(t.bundle(0, previous_bundle_end_timestamp=0), 10 * S, 0, 1, 0)
    idle(t.bundle(0, previous_bundle_end_timestamp=10 * S), 20 * S, 0, 1, 0)  # in order
    idle(t.bundle(0, previous_bundle_end_timestamp=15 * S, lost_events=True), 30 * S, 0, 1, 0)
    idle(t.bundle(1, previous_bundle_end_timestamp=0), 31 * S, 0, 1, 1)
    idle(t.bundle(1, seq=9), 32 * S, 0, 1, 1)
    t.packets[-1].previous_packet_dropped = 1  # opens sequence 9
    idle(t.bundle(1, seq=9), 40 * S, 0, 1, 1)
    t.packets[-1].previous_packet_dropped = 1
    if events_per_group is not None:
        monkeypatch.setattr(bundles, "CHUNK_EVENTS", events_per_group)
    lost = imported(tmp_path, t.bytes()).frame("lost_events")
    assert lost.select("cpu", "ts", pl.col("kind").cast(pl.Utf8)).rows() == [
        (0, 30 * S, "lost"),
        (0, None, "dropped packets"),  # CPU 0 has no event after it
        (1, 40 * S, "dropped packets"),
    ]


def test_incremental_state_is_per_generation(tmp_path: Path) -> None:
    """A drop reported on the clearing packet came before the new state; a drop after it
    invalidates the state; defaults last until the next clear."""
    t = Builder()
    snap = t.packet(seq=1).clock_snapshot
    for clock, value in ((BOOT, 100 * S), (MONO, 40 * S)):
        c = snap.clocks.add()
        c.clock_id, c.timestamp = clock, value
    t.packet(seq=3)  # opens the sequence
    cleared = TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    needs = TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
    d = t.packet(seq=3, sequence_flags=cleared, previous_packet_dropped=1)
    d.trace_packet_defaults.timestamp_clock_id = MONO
    for ts, tid, name in ((41 * S, 77, "in_mono"), (102 * S, 78, "in_boot")):
        th = t.packet(seq=3, timestamp=ts, sequence_flags=needs).process_tree.threads.add()
        th.tid, th.tgid, th.name = tid, 70, name
        idle(t.bundle(0, seq=3), ts, 0, 1, 0)
        t.packets[-1].sequence_flags = needs
        if tid == 77:
            t.packet(seq=3, sequence_flags=cleared)  # the defaults end here
    t.packet(seq=3, previous_packet_dropped=1)
    idle(t.bundle(0, seq=3), 200 * S, 0, 1, 0)
    t.packets[-1].sequence_flags = needs
    cap = imported(tmp_path, t.bytes())
    assert cap.frame("cpu_idle")["ts"].to_list() == [41 * S, 102 * S]
    assert cap.metadata.skipped["ftrace bundle needing incremental state lost with earlier "
                                "packets (dropped)"]["count"] == 1  # fmt: skip
    tasks = cap.frame("tasks").filter(pl.col("tgid") == 70).sort("pid")
    assert tasks.select("pid", "first_ts").rows() == [(77, 101 * S), (78, 102 * S)]


def test_task_names_of_trees_stats_and_naming_events(tmp_path: Path) -> None:
    """Empty and absent names name nobody; a thread ``process_stats`` lists under two
    processes belongs to the first; a generic field without a name is left out of ``args``."""
    t = two_cpus()
    tree = t.packet(seq=2, timestamp=1 * S).process_tree
    for tid, name in ((301, ""), (302, "w")):
        th = tree.threads.add()
        th.tid, th.name = tid, name
    for pid in (100, 200):
        stats = t.packet(seq=2).process_stats.processes.add()
        stats.pid = pid
        stats.threads.add().tid = 401
    b = t.bundle(0)
    for ts, pid, comm in ((20 * S, 401, "worker"), (21 * S, 402, None)):
        e = b.event.add()
        e.timestamp, e.pid, e.task_newtask.pid = ts, 1, pid
        if comm is not None:
            e.task_newtask.comm = comm
    e = b.event.add()
    e.timestamp, e.pid, e.generic.event_name = 22 * S, 1, "vendor_thing"
    e.generic.field.add().int_value = 4
    f = e.generic.field.add()
    f.name, f.str_value = "a", "x"
    cap = imported(tmp_path, t.bytes())
    tasks = cap.frame("tasks").filter(pl.col("pid") > 300).sort("pid")
    assert tasks.select("pid", "comm", "tgid").rows() == [(302, "w", None), (401, "worker", 100)]
    assert cap.frame("events").filter(pl.col("event") == "vendor_thing")["args"][0] == "a=x"
