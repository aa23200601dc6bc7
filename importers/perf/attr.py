"""``perf_event_attr``: the description of one perf event, and the names perf gives it.

Layout and bit numbers from ``include/uapi/linux/perf_event.h`` (formats.md §4.1, §4.4). Only
the fields that decide how records decode (``sample_type``, ``read_format``, the
``sample_id_all`` flag, register masks, ``branch_sample_type``) and how events are named and
mapped to a host PMU (``type``, ``config``) are kept. Older writers emit shorter attrs
(``size`` = 64 for PERF_ATTR_SIZE_VER0 … 136 for VER8): absent fields read as zero, as the
kernel's ``perf_copy_attr`` treats them.
"""

from __future__ import annotations

from dataclasses import dataclass

from importers.tracedat.reader import Reader

# perf_type_id
TYPE_HARDWARE = 0
TYPE_SOFTWARE = 1
TYPE_TRACEPOINT = 2
TYPE_HW_CACHE = 3
TYPE_RAW = 4
TYPE_BREAKPOINT = 5
#: PERF_PMU_TYPE_SHIFT: hardware/cache configs carry the core PMU type in config[63:32]
PMU_TYPE_SHIFT = 32

# perf_event_sample_format, in record order (the order IS the bit order, formats.md §4.4)
SAMPLE_BITS = (
    "IP", "TID", "TIME", "ADDR", "READ", "CALLCHAIN", "ID", "CPU", "PERIOD", "STREAM_ID",
    "RAW", "BRANCH_STACK", "REGS_USER", "STACK_USER", "WEIGHT", "DATA_SRC", "IDENTIFIER",
    "TRANSACTION", "REGS_INTR", "PHYS_ADDR", "AUX", "CGROUP", "DATA_PAGE_SIZE",
    "CODE_PAGE_SIZE", "WEIGHT_STRUCT",
)  # fmt: skip
S = {name: 1 << i for i, name in enumerate(SAMPLE_BITS)}

# perf_event_read_format
READ_TOTAL_TIME_ENABLED = 1
READ_TOTAL_TIME_RUNNING = 2
READ_ID = 4
READ_GROUP = 8
READ_LOST = 16

# bits of the u64 flag word at offset 40 (bitfield order of struct perf_event_attr)
FLAG_BITS = (
    "disabled", "inherit", "pinned", "exclusive", "exclude_user", "exclude_kernel",
    "exclude_hv", "exclude_idle", "mmap", "comm", "freq", "inherit_stat", "enable_on_exec",
    "task", "watermark", "precise_ip", "precise_ip_hi", "mmap_data", "sample_id_all",
    "exclude_host", "exclude_guest", "exclude_callchain_kernel", "exclude_callchain_user",
    "mmap2", "comm_exec", "use_clockid", "context_switch", "write_backward", "namespaces",
    "ksymbol", "bpf_event", "aux_output", "cgroup", "text_poke", "build_id",
    "inherit_thread", "remove_on_exec", "sigtrap",
)  # fmt: skip
FLAG = {name: 1 << i for i, name in enumerate(FLAG_BITS)}

# Generic event names as perf prints them (tools/perf/util/evsel.c evsel__hw_names,
# evsel__sw_names, evsel__hw_cache*).
_HW_NAMES = (
    "cycles", "instructions", "cache-references", "cache-misses", "branches",
    "branch-misses", "bus-cycles", "stalled-cycles-frontend", "stalled-cycles-backend",
    "ref-cycles",
)  # fmt: skip
_SW_NAMES = (
    "cpu-clock", "task-clock", "page-faults", "context-switches", "cpu-migrations",
    "minor-faults", "major-faults", "alignment-faults", "emulation-faults", "dummy",
    "bpf-output", "cgroup-switches",
)  # fmt: skip
_CACHE = ("L1-dcache", "L1-icache", "LLC", "dTLB", "iTLB", "branch", "node")
_CACHE_OP = (("load", "loads"), ("store", "stores"), ("prefetch", "prefetches"))
_STATIC_PMUS = {
    TYPE_SOFTWARE: "software",
    TYPE_TRACEPOINT: "tracepoint",
    TYPE_BREAKPOINT: "breakpoint",
}


@dataclass(frozen=True)
class PerfAttr:
    """One event of a perf.data file: its attr fields and the sample ids that point at it."""

    type: int
    size: int
    config: int
    sample_period: int
    sample_type: int
    read_format: int
    flags: int
    branch_sample_type: int = 0
    sample_regs_user: int = 0
    sample_regs_intr: int = 0
    clockid: int = 0
    config1: int = 0
    ids: tuple[int, ...] = ()
    name: str | None = None

    def has(self, bit: str) -> bool:
        """Whether ``sample_type`` has PERF_SAMPLE_<bit>."""
        return bool(self.sample_type & S[bit])

    def flag(self, name: str) -> bool:
        """Whether the attr flag bit ``name`` (``sample_id_all``, ``freq``, ...) is set."""
        return bool(self.flags & FLAG[name])

    @property
    def sample_type_names(self) -> list[str]:
        return [b for b in SAMPLE_BITS if self.sample_type & S[b]]

    @property
    def extended_pmu_type(self) -> int | None:
        """The core PMU type a generic hardware/cache event was opened on (config[63:32])."""
        if self.type in (TYPE_HARDWARE, TYPE_HW_CACHE) and self.config >> PMU_TYPE_SHIFT:
            return self.config >> PMU_TYPE_SHIFT
        return None

    def generic_name(self, pmu_names: dict[int, str], tracepoints: dict[int, str]) -> str:
        """The name perf derives when the file carries no EVENT_DESC (``evsel__name``)."""
        cfg = self.config & 0xFFFFFFFF if self.extended_pmu_type else self.config
        if self.type == TYPE_HARDWARE and cfg < len(_HW_NAMES):
            name = _HW_NAMES[cfg]
        elif self.type == TYPE_SOFTWARE and cfg < len(_SW_NAMES):
            name = _SW_NAMES[cfg]
        elif self.type == TYPE_HW_CACHE and _cache_name(cfg):
            name = _cache_name(cfg) or ""
        elif self.type == TYPE_TRACEPOINT:
            return tracepoints.get(cfg, f"tracepoint:{cfg}")
        elif self.type == TYPE_RAW:
            name = f"raw 0x{cfg:x}"
        elif self.type in pmu_names:
            return f"{pmu_names[self.type]}/config=0x{cfg:x}/"
        else:
            name = f"unknown type {self.type} config 0x{cfg:x}"
        ext = self.extended_pmu_type
        if ext is not None and ext in pmu_names:
            return f"{pmu_names[ext]}/{name}/"
        return name

    def static_pmu(self) -> str | None:
        """PMU name fixed by ``type`` alone (software, tracepoint, breakpoint), if any."""
        return _STATIC_PMUS.get(self.type)

    def describe(self, pmu: str | None) -> dict[str, object]:
        """JSON-able summary for the capture metadata."""
        return {
            "name": self.name,
            "type": self.type,
            "config": f"{self.config:#x}",
            "pmu": pmu,
            "sample_type": self.sample_type_names,
            "read_format": self.read_format,
            "sample_id_all": self.flag("sample_id_all"),
            "freq": self.flag("freq"),
            "sample_period": self.sample_period,
            "ids": len(self.ids),
        }


def _cache_name(config: int) -> str | None:
    cache, op, result = config & 0xFF, (config >> 8) & 0xFF, (config >> 16) & 0xFF
    if cache >= len(_CACHE) or op >= len(_CACHE_OP) or result > 1:
        return None
    if result:
        return f"{_CACHE[cache]}-{_CACHE_OP[op][0]}-misses"
    return f"{_CACHE[cache]}-{_CACHE_OP[op][1]}"


#: PERF_ATTR_SIZE_VER0: the smallest attr any writer produced
ATTR_SIZE_VER0 = 64


def read_attr(r: Reader, pos: int, room: int) -> PerfAttr:
    """Decode the ``perf_event_attr`` at ``pos``; ``room`` is the space the container gives it.

    The attr's own ``size`` says how much of it the writer filled (0 means VER0); fields past
    ``min(size, room)`` read as zero. Byte-swapped files store the flag bitfield in the
    writer's bit order, so each of its bytes is bit-reversed (perf's ``swap_bitfield``).
    """
    r.need(pos, min(room, ATTR_SIZE_VER0))
    if room < ATTR_SIZE_VER0:
        raise r.fail(pos, f"attr of {room} bytes, smaller than the first attr version (64)")
    size = r.u32(pos + 4) or ATTR_SIZE_VER0
    if size < ATTR_SIZE_VER0 or size > 4096:
        raise r.fail(pos + 4, f"attr size {size} out of range (64..4096)")
    limit = min(size, room)

    def u64(off: int) -> int:
        return r.u64(pos + off) if off + 8 <= limit else 0

    def u32(off: int) -> int:
        return r.u32(pos + off) if off + 4 <= limit else 0

    raw_flags = r.bytes_at(pos + 40, 8)
    if r.big_endian:
        flags = int.from_bytes(bytes(int(f"{b:08b}"[::-1], 2) for b in raw_flags), "little")
    else:
        flags = int.from_bytes(raw_flags, "little")
    clockid = u32(92)
    return PerfAttr(
        type=r.u32(pos),
        size=size,
        config=u64(8),
        sample_period=u64(16),
        sample_type=u64(24),
        read_format=u64(32),
        flags=flags,
        config1=u64(56),
        branch_sample_type=u64(72),
        sample_regs_user=u64(80),
        clockid=clockid - (1 << 32) if clockid >= 1 << 31 else clockid,
        sample_regs_intr=u64(96),
    )
