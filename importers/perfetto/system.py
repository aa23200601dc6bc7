"""What a trace says about its machine and its own health: ``system_info``, ``cpu_info``,
``ftrace_stats`` and ``trace_stats``.

``system_info`` (uname, Android build, SDK) and ``cpu_info`` go to the metadata; ``cpu_info``
also gives the topology when it identifies every CPU's core (``arm_identifier``: the MIDR
fields). It names no PMU, so each core type's PMU is named after its MIDR implementer and
part (``midr_41_d05``), and CPUs of one core type share one PMU, as KVM's arm64 PMU drivers
register one per core type [protos/perfetto/common/system_info.proto,
protos/perfetto/trace/system_info/cpu_info.proto].

``ftrace_stats`` packets (one at the start and one at the end of the trace) count, per CPU,
events the kernel overwrote (``overrun``) or dropped; their growth over the trace is data
lost somewhere in it [protos/perfetto/trace/ftrace/ftrace_stats.proto].
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from importers.host.topology import PmuSpec, Topology, ordered
from importers.perfetto.packets import CPU_INFO, FTRACE_STATS, SYSTEM_INFO, TRACE_STATS, Packets
from importers.perfetto.wire import (
    I64,
    LEN,
    U8,
    VARINT,
    Fields,
    repeated,
    scan_fields,
    text_column,
)

# SystemInfo and Utsname fields (strings, then integers)
_SYSTEM_STRINGS = {2: "android_build_fingerprint", 4: "tracing_service_version",
                   9: "android_soc_model", 10: "android_hardware_revision",
                   11: "android_storage_model", 12: "android_ram_model",
                   13: "android_guest_soc_model", 14: "android_device_manufacturer",
                   17: "machine_name"}  # fmt: skip
_SYSTEM_INTEGERS = {3: "hz", 5: "android_sdk_version", 6: "page_size", 7: "timezone_off_mins",
                    8: "num_cpus", 16: "system_ram_bytes"}  # fmt: skip
_UTSNAME, _UTSNAME_FIELDS = 1, {1: "sysname", 2: "version", 3: "release", 4: "machine"}
# CpuInfo.cpus; Cpu {processor 1, frequencies 2, capacity 3, arm_identifier 4};
# ArmCpuIdentifier {implementer 1, architecture 2, variant 3, part 4, revision 5}
_CPUS, _PROCESSOR, _FREQUENCIES, _CAPACITY, _ARM_ID = 1, 1, 2, 3, 4
_MIDR = {1: "implementer", 2: "architecture", 3: "variant", 4: "part", 5: "revision"}
# FtraceStats {phase 1, cpu_stats 2}: the first packet is START_OF_TRACE, the last END_OF_TRACE;
# FtraceCpuStats {cpu 1, entries 2, overrun 3, commit_overrun 4, ..., dropped_events 8}
_CPU_STATS = 2
_STAT_CPU, _OVERRUN, _DROPPED = 1, 3, 8
# TraceStats counters of data the tracing service itself lost
_TRACE_STAT_NAMES = {8: "chunks_discarded", 9: "patches_discarded", 10: "invalid_packets"}


def _messages(data: U8, f: Fields, rows: I64) -> tuple[I64, I64]:
    at = f.at[rows]
    return at, at + f.value[rows].astype(np.int64)


def _text(data: U8, f: Fields, row: int) -> str:
    column = text_column(data, f.at[row : row + 1], f.value[row : row + 1].astype(np.int64))
    return str(column.dictionary[column.indices[0].as_py()])


def system_info(p: Packets) -> dict[str, Any]:
    """The last ``system_info`` packet's fields by name (``utsname`` as a dict)."""
    _, start, end = p.payload(SYSTEM_INFO)
    if not start.size:
        return {}
    f = scan_fields(p.data, start[-1:], end[-1:])
    out: dict[str, Any] = {}
    for row in range(f.number.shape[0]):
        number, wire = int(f.number[row]), int(f.wire[row])
        if number in _SYSTEM_STRINGS and wire == LEN:
            out[_SYSTEM_STRINGS[number]] = _text(p.data, f, row)
        elif number in _SYSTEM_INTEGERS and wire == VARINT:
            value = int(f.value[row])
            out[_SYSTEM_INTEGERS[number]] = value - (1 << 64) if value >= 1 << 63 else value
        elif number == _UTSNAME and wire == LEN:
            s, e = _messages(p.data, f, np.array([row]))
            u = scan_fields(p.data, s, e)
            out["utsname"] = {
                _UTSNAME_FIELDS[int(u.number[k])]: _text(p.data, u, k)
                for k in range(u.number.shape[0])
                if int(u.number[k]) in _UTSNAME_FIELDS and u.wire[k] == LEN
            }
    return out


def kernel_version(info: dict[str, Any]) -> tuple[int, int] | None:
    """(major, minor) of ``utsname.release`` (``5.10.107-android13-4-...`` -> (5, 10))."""
    release = info.get("utsname", {}).get("release", "")
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cpu_info(p: Packets) -> list[dict[str, Any]]:
    """Per CPU of the last ``cpu_info`` packet: processor, capacity, frequencies, MIDR."""
    _, start, end = p.payload(CPU_INFO)
    if not start.size:
        return []
    top = scan_fields(p.data, start[-1:], end[-1:])
    s, e = _messages(p.data, top, np.flatnonzero(top.of(_CPUS, LEN)))
    f = scan_fields(p.data, s, e)
    found = repeated(p.data, f, [_FREQUENCIES])
    owner, freqs = found[_FREQUENCIES] if isinstance(found, dict) else (np.zeros(0), np.zeros(0))
    cpus: list[dict[str, Any]] = [
        {"cpu": k, "frequencies_khz": sorted(freqs[owner == k].tolist())} for k in range(len(s))
    ]
    for row in range(f.number.shape[0]):
        cpu, number, wire = cpus[int(f.msg[row])], int(f.number[row]), int(f.wire[row])
        if number == _PROCESSOR and wire == LEN:
            cpu["processor"] = _text(p.data, f, row)
        elif number == _CAPACITY and wire == VARINT:
            cpu["capacity"] = int(f.value[row])
        elif number == _ARM_ID and wire == LEN:
            ms, me = _messages(p.data, f, np.array([row]))
            m = scan_fields(p.data, ms, me)
            cpu["midr"] = {
                _MIDR[int(m.number[k])]: int(m.value[k])
                for k in range(m.number.shape[0])
                if int(m.number[k]) in _MIDR and m.wire[k] == VARINT
            }
    return cpus


def topology(cpus: list[dict[str, Any]]) -> Topology | None:
    """One PMU per core type when ``cpu_info`` gives every CPU's MIDR (see module
    docstring), with capacities and frequency tables; None otherwise."""
    if not cpus or not all("implementer" in c.get("midr", {}) and "part" in c["midr"]
                           for c in cpus):  # fmt: skip
        return None
    by_core: dict[str, set[int]] = {}
    for c in cpus:
        name = f"midr_{c['midr']['implementer']:02x}_{c['midr']['part']:03x}"
        by_core.setdefault(name, set()).add(c["cpu"])
    pmus = [PmuSpec(name, frozenset(members)) for name, members in by_core.items()]
    return Topology(
        ordered(pmus),
        "perfetto cpu_info",
        capacity={c["cpu"]: c["capacity"] for c in cpus if "capacity" in c},
        freqs_khz={c["cpu"]: c["frequencies_khz"] for c in cpus if c["frequencies_khz"]},
    )


def ftrace_overruns(p: Packets) -> dict[int, int]:
    """Per CPU: events overrun or dropped between the first and the last ``ftrace_stats``
    (only CPUs where that is more than zero)."""
    _, start, end = p.payload(FTRACE_STATS)
    if start.size < 2:
        return {}
    totals = []
    for k in (0, start.size - 1):
        top = scan_fields(p.data, start[k : k + 1], end[k : k + 1])
        s, e = _messages(p.data, top, np.flatnonzero(top.of(_CPU_STATS, LEN)))
        f = scan_fields(p.data, s, e)
        per_cpu: dict[int, int] = {}
        for m in range(len(s)):
            mine = (f.msg == m) & (f.wire == VARINT)
            stats = {int(n): int(v) for n, v in zip(f.number[mine], f.value[mine], strict=True)}
            per_cpu[stats.get(_STAT_CPU, m)] = stats.get(_OVERRUN, 0) + stats.get(_DROPPED, 0)
        totals.append(per_cpu)
    first, last = totals
    grown = {cpu: n - first.get(cpu, 0) for cpu, n in last.items()}
    return {cpu: n for cpu, n in sorted(grown.items()) if n > 0}


def trace_stats(p: Packets) -> dict[str, int]:
    """The tracing service's own losses from the last ``trace_stats`` (non-zero ones)."""
    _, start, end = p.payload(TRACE_STATS)
    if not start.size:
        return {}
    f = scan_fields(p.data, start[-1:], end[-1:])
    out = {
        _TRACE_STAT_NAMES[int(n)]: int(v)
        for n, v, w in zip(f.number, f.value, f.wire, strict=True)
        if int(n) in _TRACE_STAT_NAMES and w == VARINT and v
    }
    return out
