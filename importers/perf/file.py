"""The perf.data container: file header, attrs with their ids, feature section table.

File mode (formats.md §4.1): a 104-byte ``perf_file_header`` (magic ``PERFILE2`` in the
writer's byte order), an attrs section of ``attr_size``-byte entries (each an attr followed by
the ``perf_file_section`` of its ids), the data section, then one ``perf_file_section`` per
feature bit set in the header bitmap, in ascending bit order (perf's
``perf_header__process_sections``). Pipe mode has a 16-byte header only: attrs, features and
tracing data arrive as records in the stream (:mod:`importers.perf.records`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from importers.errors import CaptureFormatError, where
from importers.perf.attr import PerfAttr, read_attr
from importers.tracedat.reader import Reader, open_reader

MAGIC_LE = b"PERFILE2"
MAGIC_BE = b"2ELIFREP"
FILE_HEADER_SIZE = 104
PIPE_HEADER_SIZE = 16
#: feature bits (tools/perf/util/header.h ``enum``; simpleperf adds 128+)
FEATURES = {
    1: "TRACING_DATA", 2: "BUILD_ID", 3: "HOSTNAME", 4: "OSRELEASE", 5: "VERSION", 6: "ARCH",
    7: "NRCPUS", 8: "CPUDESC", 9: "CPUID", 10: "TOTAL_MEM", 11: "CMDLINE", 12: "EVENT_DESC",
    13: "CPU_TOPOLOGY", 14: "NUMA_TOPOLOGY", 15: "BRANCH_STACK", 16: "PMU_MAPPINGS",
    17: "GROUP_DESC", 18: "AUXTRACE", 19: "STAT", 20: "CACHE", 21: "SAMPLE_TIME",
    22: "MEM_TOPOLOGY", 23: "CLOCKID", 24: "DIR_FORMAT", 25: "BPF_PROG_INFO", 26: "BPF_BTF",
    27: "COMPRESSED", 28: "CPU_PMU_CAPS", 29: "CLOCK_DATA", 30: "HYBRID_TOPOLOGY",
    31: "PMU_CAPS", 128: "SIMPLEPERF_FILE", 129: "SIMPLEPERF_META_INFO",
    130: "SIMPLEPERF_DEBUG_UNWIND", 131: "SIMPLEPERF_DEBUG_UNWIND_FILE",
    132: "SIMPLEPERF_FILE2",
}  # fmt: skip
#: at most this many attrs (perf itself is bounded by open file descriptors)
MAX_ATTRS = 1 << 16


class PerfReader(Reader):
    """:class:`Reader` whose errors tell perf users what to do."""

    def fail(self, offset: int, what: str) -> CaptureFormatError:
        return CaptureFormatError(
            f"{where(str(self.path), offset=offset)}: {what} (in {self.section}); the perf.data "
            "file is truncated or corrupt: record it again, or see what perf makes of it with "
            "`perf report -D -i FILE`"
        )


@dataclass
class Section:
    """``size`` bytes at ``offset`` of the file (a feature payload, a tracing-data blob)."""

    offset: int
    size: int


@dataclass
class PerfFile:
    """Everything in a perf.data file's header part; records are walked separately."""

    reader: PerfReader
    pipe: bool
    data: Section
    attrs: list[PerfAttr] = field(default_factory=list)
    features: dict[int, Section] = field(default_factory=dict)
    #: TRACING_DATA blob: feature 1, or in-stream record 66 (pipe mode, simpleperf)
    tracing_data: Section | None = None
    #: feature bits whose section lies (partly) past the end of the file
    lost_features: list[int] = field(default_factory=list)

    @property
    def big_endian(self) -> bool:
        return self.reader.big_endian


def open_perf(path: Path) -> PerfFile:
    """Read the header part of the perf.data file at ``path``.

    Raises :class:`CaptureFormatError` naming the file and offset when the header, the attrs
    or the feature table are truncated or inconsistent.
    """
    base = open_reader(path)
    r = PerfReader(base.path, base.buf)
    r.section = "file header"
    magic = r.bytes_at(0, 8) if r.size >= 8 else b""
    if magic not in (MAGIC_LE, MAGIC_BE):
        hint = " (PERFFILE: a perf 2.6.3x v1 file)" if magic == b"PERFFILE" else ""
        raise r.fail(0, f"not a perf.data file: magic {magic!r}{hint}")
    r.big_endian = magic == MAGIC_BE
    size = r.u64(8)
    if size == PIPE_HEADER_SIZE:
        return PerfFile(r, True, Section(PIPE_HEADER_SIZE, r.size - PIPE_HEADER_SIZE))
    if size != FILE_HEADER_SIZE:
        raise r.fail(8, f"header size {size}: neither a file (104) nor a pipe (16) header")
    attr_size = r.u64(16)
    attrs_sec = Section(r.u64(24), r.u64(32))
    data = Section(r.u64(40), r.u64(48))
    bitmap = [r.u64(72 + 8 * i) for i in range(4)]
    for name, sec, at in (("attrs", attrs_sec, 24), ("data", data, 40)):
        if sec.offset + sec.size > r.size:
            raise r.fail(at, f"{name} section [{sec.offset:#x}, +{sec.size}) past the file end")
    pf = PerfFile(r, False, data)
    pf.attrs = _file_attrs(r, attrs_sec, attr_size)
    pf.features, pf.lost_features = _feature_table(r, data, bitmap)
    if 1 in pf.features:
        pf.tracing_data = pf.features[1]
    return pf


def _file_attrs(r: PerfReader, sec: Section, attr_size: int) -> list[PerfAttr]:
    r.section = "attrs section"
    if sec.size == 0:
        return []
    if not 64 + 16 <= attr_size <= 4096 or sec.size % attr_size:
        raise r.fail(16, f"attr entry size {attr_size} does not divide the {sec.size}-byte section")
    attrs = []
    for i in range(min(sec.size // attr_size, MAX_ATTRS)):
        pos = sec.offset + i * attr_size
        attr = read_attr(r, pos, attr_size - 16)
        ids_at, ids_size = r.u64(pos + attr_size - 16), r.u64(pos + attr_size - 8)
        r.section = f"ids of attr {i}"
        blob = r.sized_blob(ids_at, ids_size - ids_size % 8, "attr ids") if ids_size else b""
        ids = u64s(r, blob)
        r.section = "attrs section"
        attrs.append(replace(attr, ids=ids))
    return attrs


def u64s(r: Reader, blob: bytes) -> tuple[int, ...]:
    """The whole u64 words of ``blob`` in the file's byte order."""
    n = len(blob) // 8
    return struct.unpack(f"{'>' if r.big_endian else '<'}{n}Q", blob[: n * 8])


def _feature_table(
    r: PerfReader, data: Section, bitmap: list[int]
) -> tuple[dict[int, Section], list[int]]:
    """One ``perf_file_section`` per set feature bit, right after the data section.

    Returns the readable sections and the bits whose section is cut off by the file end.
    """
    r.section = "feature section table"
    bits = [b for b in range(1, 256) if bitmap[b // 64] >> (b % 64) & 1]
    table = data.offset + data.size
    out: dict[int, Section] = {}
    lost: list[int] = []
    for i, bit in enumerate(bits):
        pos = table + 16 * i
        # perf writes the table last: a file cut there lost only its features.
        sec = Section(r.u64(pos), r.u64(pos + 8)) if pos + 16 <= r.size else None
        if sec is not None and sec.offset + sec.size <= r.size:
            out[bit] = sec
        else:
            lost.append(bit)
    return out, lost
