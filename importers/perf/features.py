"""Decoders of the perf.data header features (formats.md §4.2).

Each decoder reads one feature payload (``perf_header__process_sections`` order does not
matter) the way ``tools/perf/util/header.c`` ``process_<feature>`` does, bounded by the
section: a count or a string length that claims more bytes than the section has is a
:class:`CaptureFormatError` naming the file, the offset and the feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importers.perf.attr import PerfAttr, read_attr
from importers.perf.file import FEATURES, PerfReader, Section, u64s

# feature bits decoded here
HOSTNAME, OSRELEASE, VERSION, ARCH, NRCPUS, CPUDESC, CPUID = 3, 4, 5, 6, 7, 8, 9
TOTAL_MEM, CMDLINE, EVENT_DESC, CPU_TOPOLOGY, PMU_MAPPINGS, GROUP_DESC = 10, 11, 12, 13, 16, 17
SAMPLE_TIME, CLOCKID, COMPRESSED, CPU_PMU_CAPS, CLOCK_DATA = 21, 23, 27, 28, 29
HYBRID_TOPOLOGY, PMU_CAPS, SIMPLEPERF_META_INFO = 30, 31, 129
_STRINGS = {HOSTNAME: "hostname", OSRELEASE: "os_release", VERSION: "perf_version",
            ARCH: "arch", CPUDESC: "cpu_desc", CPUID: "cpuid"}  # fmt: skip
#: clockid_t values (include/uapi/linux/time.h) -> the clock names perf prints
CLOCK_NAMES = {0: "realtime", 1: "monotonic", 4: "monotonic_raw", 5: "realtime_coarse",
               6: "monotonic_coarse", 7: "boottime", 11: "tai"}  # fmt: skip


@dataclass
class Features:
    """What the decoded features say (each ``None``/empty when the file lacks it)."""

    strings: dict[str, str] = field(default_factory=dict)
    nr_cpus_available: int | None = None
    nr_cpus_online: int | None = None
    total_mem_kb: int | None = None
    cmdline: list[str] = field(default_factory=list)
    #: EVENT_DESC: (attr, name, ids) per event
    event_desc: list[tuple[PerfAttr, str, tuple[int, ...]]] = field(default_factory=list)
    core_siblings: list[str] = field(default_factory=list)
    thread_siblings: list[str] = field(default_factory=list)
    pmu_mappings: dict[int, str] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    sample_time: tuple[int, int] | None = None
    clockid_res_ns: int | None = None
    clock_data: dict[str, int] | None = None
    compressed: dict[str, int] | None = None
    #: HYBRID_TOPOLOGY: PMU name -> cpulist text
    hybrid_topology: dict[str, str] = field(default_factory=dict)
    #: PMU_CAPS (or CPU_PMU_CAPS under the key ``""``): PMU name -> capability -> value
    pmu_caps: dict[str, dict[str, str]] = field(default_factory=dict)
    simpleperf_meta: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.strings)
        out.update(
            {
                "nr_cpus_available": self.nr_cpus_available,
                "nr_cpus_online": self.nr_cpus_online,
                "total_mem_kb": self.total_mem_kb,
                "cmdline": " ".join(self.cmdline) or None,
                "core_siblings": self.core_siblings or None,
                "thread_siblings": self.thread_siblings or None,
                "pmu_mappings": {v: k for k, v in sorted(self.pmu_mappings.items())} or None,
                "groups": self.groups or None,
                "sample_time": list(self.sample_time) if self.sample_time else None,
                "clockid_res_ns": self.clockid_res_ns,
                "clock_data": self.clock_data,
                "compressed": self.compressed,
                "hybrid_topology": self.hybrid_topology or None,
                "pmu_caps": self.pmu_caps or None,
                "simpleperf_meta": self.simpleperf_meta or None,
            }
        )
        return {k: v for k, v in out.items() if v is not None}


class _Cursor:
    """Sequential, bounded reads inside one feature section."""

    def __init__(self, r: PerfReader, sec: Section) -> None:
        self.r, self.pos, self.end = r, sec.offset, sec.offset + sec.size

    def left(self) -> int:
        return self.end - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left():
            raise self.r.fail(self.pos, f"{what} needs {n} bytes, {self.left()} left")

    def u32(self) -> int:
        self.need(4, "u32")
        self.pos += 4
        return self.r.u32(self.pos - 4)

    def u64(self) -> int:
        self.need(8, "u64")
        self.pos += 8
        return self.r.u64(self.pos - 8)

    def count(self, unit: int, what: str) -> int:
        """A ``u32`` element count, checked against the bytes left (``unit`` each at least)."""
        n = self.u32()
        self.need(n * unit, f"{n} {what}")
        return n

    def string(self) -> str:
        """``struct perf_header_string``: ``u32 len`` then ``len`` NUL-padded bytes."""
        n = self.u32()
        self.need(n, "string")
        raw = self.r.bytes_at(self.pos, n)
        self.pos += n
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.count(4, "strings"))]


def read_features(r: PerfReader, sections: dict[int, Section]) -> Features:
    """Decode every known feature in ``sections`` (feature bit -> payload)."""
    out = Features()
    for bit, sec in sorted(sections.items()):
        r.section = f"feature {FEATURES.get(bit, bit)}"
        decode = _DECODERS.get(bit)
        if decode is not None:
            decode(_Cursor(r, sec), out, bit)
    return out


def _string(c: _Cursor, out: Features, bit: int) -> None:
    out.strings[_STRINGS[bit]] = c.string()


def _nrcpus(c: _Cursor, out: Features, bit: int) -> None:
    # write_nrcpus: nr_cpus_avail (max present CPU + 1) first, then the online count.
    out.nr_cpus_available, out.nr_cpus_online = c.u32(), c.u32()


def _total_mem(c: _Cursor, out: Features, bit: int) -> None:
    out.total_mem_kb = c.u64()


def _cmdline(c: _Cursor, out: Features, bit: int) -> None:
    out.cmdline = c.strings()


def _event_desc(c: _Cursor, out: Features, bit: int) -> None:
    nr, attr_size = c.count(8, "event descriptions"), c.u32()
    if nr and not 64 <= attr_size <= 4096:
        raise c.r.fail(c.pos - 4, f"EVENT_DESC attr size {attr_size} out of range")
    for _ in range(nr):
        c.need(attr_size, "EVENT_DESC attr")
        attr = read_attr(c.r, c.pos, attr_size)
        c.pos += attr_size
        nr_ids = c.u32()
        name = c.string()
        c.need(8 * nr_ids, f"{nr_ids} event ids")
        ids = u64s(c.r, c.r.bytes_at(c.pos, 8 * nr_ids))
        c.pos += 8 * nr_ids
        out.event_desc.append((attr, name, ids))


def _cpu_topology(c: _Cursor, out: Features, bit: int) -> None:
    out.core_siblings = c.strings()
    out.thread_siblings = c.strings()


def _pmu_mappings(c: _Cursor, out: Features, bit: int) -> None:
    for _ in range(c.count(8, "PMU mappings")):
        pmu_type = c.u32()
        out.pmu_mappings[pmu_type] = c.string()


def _group_desc(c: _Cursor, out: Features, bit: int) -> None:
    for _ in range(c.count(12, "groups")):
        name = c.string()
        out.groups.append({"name": name or None, "leader": c.u32(), "members": c.u32()})


def _sample_time(c: _Cursor, out: Features, bit: int) -> None:
    out.sample_time = (c.u64(), c.u64())


def _clockid(c: _Cursor, out: Features, bit: int) -> None:
    out.clockid_res_ns = c.u64()


def _clock_data(c: _Cursor, out: Features, bit: int) -> None:
    version, clockid = c.u32(), c.u32()
    out.clock_data = {
        "version": version,
        "clockid": clockid,
        "wall_clock_ns": c.u64(),
        "clockid_time_ns": c.u64(),
    }


def _compressed(c: _Cursor, out: Features, bit: int) -> None:
    keys = ("version", "type", "level", "ratio", "mmap_len")
    out.compressed = {k: c.u32() for k in keys}


def _hybrid_topology(c: _Cursor, out: Features, bit: int) -> None:
    for _ in range(c.count(8, "hybrid PMUs")):
        name = c.string()
        out.hybrid_topology[name] = c.string()


def _caps(c: _Cursor) -> dict[str, str]:
    caps: dict[str, str] = {}
    for _ in range(c.count(8, "PMU capabilities")):
        name = c.string()
        caps[name] = c.string()
    return caps


def _cpu_pmu_caps(c: _Cursor, out: Features, bit: int) -> None:
    out.pmu_caps.setdefault("", {}).update(_caps(c))


def _pmu_caps(c: _Cursor, out: Features, bit: int) -> None:
    # write_pmu_caps (and 5.x HYBRID_CPU_PMU_CAPS in the same slot): caps, then the PMU name.
    for _ in range(c.count(8, "PMUs")):
        caps = _caps(c)
        out.pmu_caps[c.string()] = caps


def _simpleperf_meta(c: _Cursor, out: Features, bit: int) -> None:
    # simpleperf record_file_writer WriteMetaInfoFeature: "key\0value\0" pairs.
    blob = c.r.bytes_at(c.pos, c.left()).split(b"\0")
    for key, value in zip(blob[0::2], blob[1::2], strict=False):
        if key:
            out.simpleperf_meta[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")


_DECODERS = {
    **dict.fromkeys(_STRINGS, _string),
    NRCPUS: _nrcpus,
    TOTAL_MEM: _total_mem,
    CMDLINE: _cmdline,
    EVENT_DESC: _event_desc,
    CPU_TOPOLOGY: _cpu_topology,
    PMU_MAPPINGS: _pmu_mappings,
    GROUP_DESC: _group_desc,
    SAMPLE_TIME: _sample_time,
    CLOCKID: _clockid,
    CLOCK_DATA: _clock_data,
    COMPRESSED: _compressed,
    HYBRID_TOPOLOGY: _hybrid_topology,
    CPU_PMU_CAPS: _cpu_pmu_caps,
    PMU_CAPS: _pmu_caps,
    SIMPLEPERF_META_INFO: _simpleperf_meta,
}
