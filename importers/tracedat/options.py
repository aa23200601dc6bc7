"""trace.dat options (formats.md §3.3 option table): decoded into :class:`TraceOptions`.

Options are shared by both versions: v6 lists them in ``options  `` blocks, v7 in OPTIONS
sections. Only BUFFER differs between versions, so the container module decodes that one.
Unknown option ids are kept by id (trace-cmd's ``handle_options`` ignores them too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importers.tracedat.reader import Reader

OPT_DONE = 0
OPT_DATE = 1
OPT_CPUSTAT = 2
OPT_BUFFER = 3
OPT_TRACECLOCK = 4
OPT_UNAME = 5
OPT_HOOK = 6
OPT_OFFSET = 7
OPT_CPUCOUNT = 8
OPT_VERSION = 9
OPT_PROCMAPS = 10
OPT_TRACEID = 11
OPT_TIME_SHIFT = 12
OPT_GUEST = 13
OPT_TSC2NSEC = 14
OPT_HEADER_INFO = 16
OPT_FTRACE_EVENTS = 17
OPT_EVENT_FORMATS = 18
OPT_KALLSYMS = 19
OPT_PRINTK = 20
OPT_CMDLINES = 21
OPT_BUFFER_TEXT = 22


@dataclass
class TraceOptions:
    """Decoded options of one trace.dat file (all optional)."""

    date: str | None = None
    offset: str | None = None
    cpustat: list[str] = field(default_factory=list)
    trace_clock: str | None = None
    uname: str | None = None
    cpu_count: int | None = None
    tracecmd_version: str | None = None
    trace_id: int | None = None
    tsc2nsec: tuple[int, int, int] | None = None
    guests: list[dict[str, Any]] = field(default_factory=list)
    time_shift: dict[str, Any] | None = None
    sections: dict[int, int] = field(default_factory=dict)
    unknown: list[int] = field(default_factory=list)

    def apply(self, opt_id: int, r: Reader, pos: int, size: int) -> None:
        """Decode option ``opt_id`` whose ``size`` data bytes start at ``pos`` in ``r``."""
        data = r.sized_blob(pos, size, f"option {opt_id}")
        if opt_id == OPT_DATE:
            self.date = _text(data)
        elif opt_id == OPT_CPUSTAT:
            self.cpustat.append(_text(data))
        elif opt_id == OPT_TRACECLOCK:
            self.trace_clock = _text(data)
        elif opt_id == OPT_UNAME:
            self.uname = _text(data)
        elif opt_id == OPT_OFFSET:
            self.offset = _text(data)
        elif opt_id == OPT_CPUCOUNT and size >= 4:
            self.cpu_count = r.u32(pos)
        elif opt_id == OPT_VERSION:
            self.tracecmd_version = _text(data)
        elif opt_id == OPT_TRACEID and size >= 8:
            self.trace_id = r.u64(pos)
        elif opt_id == OPT_TSC2NSEC and size >= 16:
            self.tsc2nsec = (r.u32(pos), r.u32(pos + 4), r.u64(pos + 8))
        elif opt_id == OPT_GUEST:
            self.guests.append(_guest(r, pos, size))
        elif opt_id == OPT_TIME_SHIFT:
            self.time_shift = _time_shift(r, pos, size)
        elif OPT_HEADER_INFO <= opt_id <= OPT_CMDLINES and size >= 8:
            self.sections[opt_id] = r.u64(pos)
        elif opt_id not in (OPT_HOOK, OPT_PROCMAPS, OPT_BUFFER, OPT_BUFFER_TEXT):
            self.unknown.append(opt_id)

    @property
    def selected_clock(self) -> str | None:
        """The clock in ``[brackets]`` of the TRACECLOCK text, or the text itself."""
        text = self.trace_clock
        if not text:
            return None
        if "[" in text and "]" in text:
            return text[text.index("[") + 1 : text.index("]")]
        return text.split()[0] if text.split() else None


def _text(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _guest(r: Reader, pos: int, size: int) -> dict[str, Any]:
    """GUEST: ``name\\0``, u64 trace id, u32 ncpus, ncpus × (u32 vcpu, u32 host pid)."""
    end = pos + size
    name, p = r.cstr(pos, size)
    trace_id, ncpus = r.u64(p), r.u32(p + 8)
    p += 12
    if p + 8 * ncpus > end:
        raise r.fail(p, f"GUEST option lists {ncpus} vCPUs but holds {end - p} bytes")
    vcpus = [{"vcpu": r.u32(p + 8 * i), "host_tid": r.u32(p + 8 * i + 4)} for i in range(ncpus)]
    return {"name": name, "trace_id": trace_id, "vcpus": vcpus}


def _time_shift(r: Reader, pos: int, size: int) -> dict[str, Any]:
    """TIME_SHIFT (trace-cmd ``tsync_cpu_offsets_load``): parsed, kept as metadata, not applied.

    Layout: u64 peer trace id, u32 flags, u32 ncpus, then per CPU ``u32 count`` and ``count``
    times, offsets and scalings (u64 each); trailing bytes, when present, are per-CPU
    fraction-bit arrays.
    """
    end = pos + size
    peer, flags, ncpus = r.u64(pos), r.u32(pos + 8), r.u32(pos + 12)
    p = pos + 16
    cpus: list[dict[str, list[int]]] = []
    for _ in range(ncpus):
        if p + 4 > end:
            raise r.fail(p, f"TIME_SHIFT option lists {ncpus} CPUs beyond its {size} bytes")
        count = r.u32(p)
        p += 4
        if p + 24 * count > end:
            raise r.fail(p, f"TIME_SHIFT option claims {count} samples beyond its {size} bytes")
        arrays = {
            key: [r.u64(p + 8 * (k * count + i)) for i in range(count)]
            for k, key in enumerate(("times", "offsets", "scalings"))
        }
        p += 24 * count
        cpus.append(arrays)
    for arrays in cpus:
        count = len(arrays["times"])
        if p + 8 * count <= end:
            arrays["fraction_bits"] = [r.u64(p + 8 * i) for i in range(count)]
            p += 8 * count
    return {"peer_trace_id": peer, "flags": flags, "cpus": cpus}
