"""The field numbers the Perfetto importer decodes are the ``perfetto`` package's, by name.

The importer never loads the generated descriptors on its hot path; these tests hold its
constants to them (formats.md §7: "a test can assert the numbers the importer uses")."""

from __future__ import annotations

from typing import Any

import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from importers.perfetto import (
    bundles,
    clocks,
    compact,
    decode,
    generic,
    packets,
    processes,
    sequences,
    system,
    typed,
)
from importers.schema import TYPED_TABLES


def number(message: Any, name: str) -> int:
    return int(message.DESCRIPTOR.fields_by_name[name].number)


@pytest.mark.parametrize(
    ("constant", "name"),
    [
        (packets.FTRACE_EVENTS, "ftrace_events"),
        (packets.PROCESS_TREE, "process_tree"),
        (packets.CLOCK_SNAPSHOT, "clock_snapshot"),
        (packets.TIMESTAMP, "timestamp"),
        (packets.PROCESS_STATS, "process_stats"),
        (packets.SEQUENCE_ID, "trusted_packet_sequence_id"),
        (packets.INTERNED_DATA, "interned_data"),
        (packets.SEQUENCE_FLAGS, "sequence_flags"),
        (packets.FTRACE_STATS, "ftrace_stats"),
        (packets.TRACE_STATS, "trace_stats"),
        (packets.INCREMENTAL_STATE_CLEARED, "incremental_state_cleared"),
        (packets.PREVIOUS_PACKET_DROPPED, "previous_packet_dropped"),
        (packets.SYSTEM_INFO, "system_info"),
        (packets.COMPRESSED_PACKETS, "compressed_packets"),
        (packets.TIMESTAMP_CLOCK_ID, "timestamp_clock_id"),
        (packets.TRACE_PACKET_DEFAULTS, "trace_packet_defaults"),
        (packets.CPU_INFO, "cpu_info"),
        (packets.FIRST_PACKET_ON_SEQUENCE, "first_packet_on_sequence"),
        (packets.ZSTD_COMPRESSED_PACKETS, "zstd_compressed_packets"),
    ],
)
def test_trace_packet_fields(constant: int, name: str) -> None:
    assert constant == number(pb.TracePacket, name)


def test_packet_envelope_and_payload_names() -> None:
    fields = pb.TracePacket.DESCRIPTOR.fields_by_number
    for n, name in packets.PAYLOAD_NAMES.items():
        assert fields[n].name == name
    envelope = {fields[n].name for n in packets._ENVELOPE}
    assert envelope == {"trusted_uid", "timestamp", "trusted_packet_sequence_id",
                        "interned_data", "sequence_flags", "incremental_state_cleared",
                        "previous_packet_dropped", "timestamp_clock_id",
                        "trace_packet_defaults", "trusted_pid", "first_packet_on_sequence",
                        "machine_id"}  # fmt: skip
    # every other TracePacket field is a payload: in the "data" oneof
    oneof = {f.name for f in pb.TracePacket.DESCRIPTOR.oneofs_by_name["data"].fields}
    assert not envelope & oneof


def test_bundle_and_compact_fields() -> None:
    b = pb.FtraceEventBundle
    for constant, name in [
        (bundles.CPU, "cpu"), (bundles.EVENT, "event"), (bundles.LOST_EVENTS, "lost_events"),
        (bundles.COMPACT_SCHED, "compact_sched"), (bundles.FTRACE_CLOCK, "ftrace_clock"),
        (bundles.FTRACE_TIMESTAMP, "ftrace_timestamp"),
        (bundles.BOOT_TIMESTAMP, "boot_timestamp"), (bundles.ERROR, "error"),
        (bundles.PREVIOUS_BUNDLE_END_TS, "previous_bundle_end_timestamp"),
    ]:  # fmt: skip
        assert constant == number(b, name)
    clock_enum = pb.FtraceClock.DESCRIPTOR.values_by_number
    assert {k: clock_enum[k].name for k in bundles.FTRACE_CLOCK_NAMES} == {
        0: "FTRACE_CLOCK_UNSPECIFIED", 1: "FTRACE_CLOCK_UNKNOWN", 2: "FTRACE_CLOCK_GLOBAL",
        3: "FTRACE_CLOCK_LOCAL", 4: "FTRACE_CLOCK_MONO_RAW",
    }  # fmt: skip
    c = pb.FtraceEventBundle.CompactSched
    assert number(c, "intern_table") == compact.INTERN_TABLE
    for prefix, layout in (("switch_", compact.SWITCH), ("waking_", compact.WAKING)):
        renamed = {
            "ts": "timestamp",
            "comm": f"{'next_' if prefix == 'switch_' else ''}comm_index",
        }
        for column, n in layout.items():
            assert n == number(c, prefix + renamed.get(column, column))


def test_typed_tables_map_event_fields_by_name() -> None:
    oneof = pb.FtraceEvent.DESCRIPTOR.fields_by_number
    for table, (member, columns) in typed.TYPED.items():
        assert table in TYPED_TABLES
        assert oneof[member].name == table
        fields = oneof[member].message_type.fields_by_number
        for column, n in columns.items():
            assert fields[n].name == column, (table, column)


def test_task_naming_events_and_kernel_function_fields() -> None:
    oneof = pb.FtraceEvent.DESCRIPTOR.fields_by_number
    for member, (name, pid, comms) in decode.NAMING.items():
        fields = oneof[member].message_type.fields_by_number
        assert oneof[member].name == name
        assert fields[pid].name == "pid"
        assert all("comm" in fields[c].name for c in comms)
    # the nine of Perfetto's kKernelFunctionFields (ftrace_parser.cc), by name
    named = {
        (oneof[m].name, oneof[m].message_type.fields_by_number[f].name)
        for m, fs in generic.KERNEL_FUNCTIONS.items()
        for f in fs
    }
    assert named == {
        ("sched_blocked_reason", "caller"), ("workqueue_queue_work", "function"),
        ("workqueue_activate_work", "function"), ("workqueue_execute_start", "function"),
        ("workqueue_execute_end", "function"), ("funcgraph_entry", "func"),
        ("funcgraph_exit", "func"), ("mm_shrink_slab_start", "shrink"),
        ("hrtimer_expire_entry", "function"),
    }  # fmt: skip
    assert oneof[generic.PRINT].name == "print"
    assert oneof[generic.GENERIC].name == "generic"
    assert generic.event_names()[generic.PRINT] == "print"


def test_side_messages() -> None:
    assert number(pb.InternedData, "kernel_symbols") == sequences.KERNEL_SYMBOLS
    assert sequences.SEQ_INCREMENTAL_STATE_CLEARED == pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    assert sequences.SEQ_NEEDS_INCREMENTAL_STATE == pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
    assert clocks.BOOTTIME == pb.BuiltinClock.BUILTIN_CLOCK_BOOTTIME
    assert bundles._MONOTONIC_RAW == pb.BuiltinClock.BUILTIN_CLOCK_MONOTONIC_RAW
    snap = pb.ClockSnapshot
    assert (
        number(snap, "clocks"),
        number(snap.Clock, "clock_id"),
        number(snap.Clock, "timestamp"),
    ) == (clocks._CLOCKS, clocks._CLOCK_ID, clocks._CLOCK_TS)
    tree = pb.ProcessTree
    assert (
        number(tree, "processes"), number(tree, "threads")) == (processes._PROCESSES, processes._THREADS)  # fmt: skip
    assert (
        number(tree.Process, "pid"), number(tree.Process, "cmdline")) == (processes._PID, processes._CMDLINE)  # fmt: skip
    assert (
        number(tree.Thread, "tid"),
        number(tree.Thread, "name"),
        number(tree.Thread, "tgid"),
    ) == (processes._TID, processes._NAME, processes._TGID)
    assert number(pb.ProcessStats.Process, "threads") == processes._STATS_THREADS
    info = pb.SystemInfo.DESCRIPTOR.fields_by_number
    for n, name in {**system._SYSTEM_STRINGS, **system._SYSTEM_INTEGERS}.items():
        assert info[n].name == name
    assert number(pb.SystemInfo, "utsname") == system._UTSNAME
    for n, name in system._UTSNAME_FIELDS.items():
        assert pb.Utsname.DESCRIPTOR.fields_by_number[n].name == name
    cpu = pb.CpuInfo.Cpu
    assert (number(pb.CpuInfo, "cpus"), number(cpu, "processor"),
                                number(cpu, "frequencies"), number(cpu, "capacity"),
                                number(cpu, "arm_identifier")) == (system._CPUS, system._PROCESSOR, system._FREQUENCIES, system._CAPACITY,
            system._ARM_ID)  # fmt: skip
    for n, name in system._MIDR.items():
        assert pb.CpuInfo.ArmCpuIdentifier.DESCRIPTOR.fields_by_number[n].name == name
    assert number(pb.FtraceStats, "cpu_stats") == system._CPU_STATS
    stats = pb.FtraceCpuStats
    assert (
        number(stats, "cpu"),
        number(stats, "overrun"),
        number(stats, "dropped_events"),
    ) == (system._STAT_CPU, system._OVERRUN, system._DROPPED)
    for n, name in system._TRACE_STAT_NAMES.items():
        assert pb.TraceStats.DESCRIPTOR.fields_by_number[n].name == name
