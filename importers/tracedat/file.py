"""The trace.dat container, versions 6 and 7 (formats.md §3.1–§3.3, §3.6).

:func:`read_container` walks the file the way trace-cmd's ``tracecmd_read_headers`` /
``read_cpu_data`` do and returns a :class:`TraceDat`: header texts, event formats, metadata
blobs, options, and for every buffer instance the location of each CPU's ring-buffer pages.
The pages themselves are walked by :mod:`importers.tracedat.pages`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from importers.errors import CaptureFormatError
from importers.tracedat.options import (
    OPT_BUFFER,
    OPT_BUFFER_TEXT,
    OPT_CMDLINES,
    OPT_DONE,
    OPT_EVENT_FORMATS,
    OPT_FTRACE_EVENTS,
    OPT_HEADER_INFO,
    OPT_KALLSYMS,
    OPT_PRINTK,
    TraceOptions,
)
from importers.tracedat.reader import Reader, decompress
from importers.tracefs.event_format import EventFormat, parse_event_format

MAGIC = b"\x17\x08\x44tracing"
SECTION_STRINGS = 15
SECTION_FLAG_COMPRESSED = 1
_MAX_SECTIONS = 1 << 16
#: CPU columns are int16
MAX_CPU = (1 << 15) - 1


@dataclass
class CpuStream:
    """One CPU's ring-buffer data: ``size`` bytes at ``offset`` (on disk)."""

    cpu: int
    offset: int
    size: int


@dataclass
class Instance:
    """A ftrace buffer instance (``""`` = the top instance) and where its CPU data lies."""

    name: str
    clock: str | None
    page_size: int
    cpus: list[CpuStream]
    compressed: bool = False


@dataclass(frozen=True)
class Unread:
    """Ring-buffer data the file points at but that cannot be read: why, where, and the CPU
    whose events are lost with it (None when the CPU cannot be named)."""

    reason: str
    where: str
    cpu: int | None = None


@dataclass
class FormatText:
    """An event format as stored, indexed by id and name; parsed only when records use it.

    Captures hold thousands of formats (2461 in ``trace-Salamander4.dat``) and use a few;
    parsing them all would cost more than decoding the records.
    """

    id: int
    name: str
    system: str
    text: str
    where: str
    _parsed: EventFormat | None = None

    def parse(self) -> EventFormat:
        """The parsed format; :class:`CaptureFormatError` naming file and offset if broken."""
        if self._parsed is None:
            self._parsed = parse_event_format(self.text, system=self.system, where=self.where)
        return self._parsed


_ID_LINE = re.compile(r"^ID:\s*(\S+)", re.M)
_NAME_LINE = re.compile(r"^name:\s*(\S+)", re.M)


@dataclass
class TraceDat:
    """Everything in a trace.dat file except the ring-buffer records."""

    reader: Reader
    version: int
    long_size: int
    page_size: int
    compression: str | None = None
    header_page: str = ""
    header_event: str = ""
    formats: list[FormatText] = field(default_factory=list)
    #: a view of the file: a kernel's kallsyms is megabytes, of which a capture resolves a few
    #: addresses (:mod:`importers.tracedat.kallsyms`)
    kallsyms: bytes | memoryview = b""
    printk: bytes = b""
    cmdlines: bytes = b""
    cpus: int = 0
    options: TraceOptions = field(default_factory=TraceOptions)
    instances: list[Instance] = field(default_factory=list)
    latency: bool = False
    strings: bytes = b""
    sections: list[dict[str, object]] = field(default_factory=list)
    #: data the file points at that cannot be read, for the importer to count
    unread: list[Unread] = field(default_factory=list)

    def describe(self, string_id: int) -> str | None:
        """A v7 section's description: a NUL-terminated string in the STRINGS concatenation."""
        if not 0 <= string_id < len(self.strings):
            return None
        end = self.strings.find(b"\0", string_id)
        return self.strings[string_id : end if end >= 0 else None].decode("utf-8", "replace")


def read_container(r: Reader) -> TraceDat:
    """Parse the prefix, metadata and options of the trace.dat behind ``r``."""
    r.section = "file header"
    prefix = read_prefix(r)
    if prefix.version not in ("6", "7"):
        raise r.fail(10, f"trace.dat version {prefix.version!r}; pmu-replay reads versions 6 and 7")
    td = TraceDat(r, int(prefix.version), prefix.long_size, prefix.page_size)
    if td.version == 6:
        _read_v6(td, prefix.end)
    else:
        _read_v7(td, prefix.end)
    return td


@dataclass(frozen=True)
class Prefix:
    """The fixed start of trace.dat data: version text, long size, page size, and where the
    metadata after it begins."""

    version: str
    long_size: int
    page_size: int
    end: int


def read_prefix(r: Reader) -> Prefix:
    """Check the magic and read the prefix at the start of ``r``; set ``r``'s byte order.

    Shared by trace.dat files and perf's TRACING_DATA blob (the same prefix with version 0.5
    or 0.6), so both refuse the byte orders, long sizes and page sizes the decoders cannot
    handle with a clean error. The caller checks the version, which differs between them.
    """
    if r.bytes_at(0, 10) != MAGIC:
        raise r.fail(0, f"no trace.dat magic (starts {r.bytes_at(0, 10)!r})")
    version, pos = r.cstr(10, 16)
    endian = r.bytes_at(pos, 1)[0]
    if endian > 1:
        raise r.fail(pos, f"endianness byte {endian} (expected 0 or 1)")
    r.big_endian = endian == 1
    long_size = r.bytes_at(pos + 1, 1)[0]
    page_size = r.u32(pos + 2)
    if long_size not in (4, 8) or not 64 <= page_size <= 1 << 24:
        raise r.fail(pos + 1, f"long size {long_size} / page size {page_size} out of range")
    return Prefix(version, long_size, page_size, pos + 6)


def read_v6_metadata(td: TraceDat, pos: int, cmdlines: bool) -> int:
    """The v6 metadata at ``pos``: header texts, ftrace and event formats, kallsyms, printk
    formats, then (with ``cmdlines``, unless the data ends there) saved cmdlines.

    perf's TRACING_DATA holds the same sequence; its version 0.5 (simpleperf) has no saved
    cmdlines, and perf itself reads a missing cmdlines blob as empty. Returns the offset after.
    """
    r = td.reader
    pos = _headers(td, r, pos)
    pos = _ftrace_formats(td, r, pos)
    pos = _event_formats(td, r, pos)
    td.kallsyms, pos = _kallsyms(r, pos)
    td.printk, pos = _blob(r, pos, "printk formats", wide=False)
    if cmdlines and pos < r.size:
        td.cmdlines, pos = _blob(r, pos, "saved cmdlines", wide=True)
    return pos


# --------------------------------------------------------------------------- shared pieces


def _headers(td: TraceDat, r: Reader, pos: int) -> int:
    for name in ("header_page", "header_event"):
        r.section = name
        tag, p = r.cstr(pos, 32)
        if tag != name:
            raise r.fail(pos, f"expected the {name!r} tag, found {tag[:20]!r}")
        size = r.u64(p)
        text = r.sized_blob(p + 8, size, name).decode("utf-8", "replace")
        setattr(td, name, text)
        pos = p + 8 + size
    return pos


def _format_list(td: TraceDat, r: Reader, pos: int, system: str) -> int:
    count = r.u32(pos)
    pos += 4
    if count * 8 > r.size - pos:
        raise r.fail(pos - 4, f"claims {count} event formats in {r.size - pos} bytes")
    for _ in range(count):
        size = r.u64(pos)
        text = r.sized_blob(pos + 8, size, f"{system} format").decode("utf-8", "replace")
        ident, name = _ID_LINE.search(text), _NAME_LINE.search(text)
        if not ident or not name or not ident[1].isdigit():
            raise r.fail(pos, f"event format without a numeric ID or a name: {text[:80]!r}")
        where = f"{r.path}@{pos:#x} ({r.section})"
        td.formats.append(FormatText(int(ident[1]), name[1], system, text, where))
        pos += 8 + size
    return pos


def _ftrace_formats(td: TraceDat, r: Reader, pos: int) -> int:
    r.section = "ftrace event formats"
    return _format_list(td, r, pos, "ftrace")


def _event_formats(td: TraceDat, r: Reader, pos: int) -> int:
    r.section = "event formats"
    systems = r.u32(pos)
    pos += 4
    if systems * 5 > r.size - pos:
        raise r.fail(pos - 4, f"claims {systems} event systems in {r.size - pos} bytes")
    for _ in range(systems):
        system, pos = r.cstr(pos, 4096)
        r.section = f"event formats of system {system!r}"
        pos = _format_list(td, r, pos, system)
    return pos


def _blob(r: Reader, pos: int, section: str, wide: bool) -> tuple[bytes, int]:
    r.section = section
    size = r.u64(pos) if wide else r.u32(pos)
    head = 8 if wide else 4
    return r.sized_blob(pos + head, size, section), pos + head + size


def _kallsyms(r: Reader, pos: int) -> tuple[memoryview, int]:
    """The kallsyms section (a 32-bit size, then the text) as a view of the file."""
    r.section = "kallsyms"
    size = r.u32(pos)
    return r.sized_view(pos + 4, size, "kallsyms"), pos + 4 + size


# --------------------------------------------------------------------------- version 6


def _read_v6(td: TraceDat, pos: int) -> None:
    r = td.reader
    pos = read_v6_metadata(td, pos, cmdlines=True)
    r.section = "CPU count"
    td.cpus = r.u32(pos)
    if td.cpus > 1 << 16:
        raise r.fail(pos, f"CPU count {td.cpus} is not plausible")
    pos += 4
    buffers: list[tuple[int, str]] = []
    while True:
        r.section = "options / flyrecord tag"
        tag = r.bytes_at(pos, 10)
        pos += 10
        if tag == b"options  \0":
            r.section = "options"
            pos = _options(td, r, pos, end=r.size, buffers=buffers)
        elif tag == b"latency  \0":
            td.latency = True
            return
        elif tag == b"flyrecord\0":
            break
        else:
            raise r.fail(pos - 10, f"unknown section tag {tag!r} (expected options/flyrecord)")
    clock = td.options.selected_clock
    td.instances.append(Instance("", clock, td.page_size, _v6_cpu_table(td, pos, "")))
    for offset, name in buffers:
        r.section = f"buffer instance {name!r}"
        if r.bytes_at(offset, 10) != b"flyrecord\0":
            raise r.fail(offset, "BUFFER option does not point at a 'flyrecord' tag")
        td.instances.append(
            Instance(name, clock, td.page_size, _v6_cpu_table(td, offset + 10, name))
        )


def _v6_cpu_table(td: TraceDat, pos: int, name: str) -> list[CpuStream]:
    r = td.reader
    r.section = f"flyrecord CPU table of instance {name!r}"
    streams = []
    for cpu in range(td.cpus):
        offset, size = r.u64(pos + 16 * cpu), r.u64(pos + 16 * cpu + 8)
        if size:
            streams.append(CpuStream(cpu, offset, size))
    return streams


def _options(td: TraceDat, r: Reader, pos: int, end: int, buffers: list[tuple[int, str]]) -> int:
    """Options list starting at ``pos``; returns the offset after the DONE option.

    v6 ends the list with a bare ``u16 0``; v7 gives DONE a size and a u64 (the next OPTIONS
    section), which :func:`_read_v7` reads.
    """
    while True:
        opt_id = r.u16(pos)
        if opt_id == OPT_DONE:
            return pos + 2
        size = r.u32(pos + 2)
        data = pos + 6
        if data + size > end:
            raise r.fail(pos, f"option {opt_id} claims {size} bytes past its section end")
        if opt_id == OPT_BUFFER and td.version == 6:
            name, _ = r.cstr(data + 8, size)
            buffers.append((r.u64(data), name))
        elif opt_id == OPT_BUFFER:
            td.instances.append(_v7_buffer(td, r, data, size))
        elif opt_id == OPT_BUFFER_TEXT:
            td.latency = True
        else:
            td.options.apply(opt_id, r, data, size)
        pos = data + size


# --------------------------------------------------------------------------- version 7


def _section_header(r: Reader, pos: int) -> tuple[int, int, int, int]:
    return r.u16(pos), r.u16(pos + 2), r.s32(pos + 4), r.u64(pos + 8)


def _section(td: TraceDat, pos: int, expect: int, name: str) -> bytes:
    """The payload of the section at ``pos`` (inflated), after checking its id."""
    r = td.reader
    r.section = f"{name} section"
    sid, flags, string_id, size = _section_header(r, pos)
    td.sections.append({"offset": pos, "id": sid, "description": td.describe(string_id)})
    if sid != expect:
        raise r.fail(pos, f"expected section id {expect} ({name}), found id {sid}")
    payload = r.sized_blob(pos + 16, size, f"{name} section")
    if flags & SECTION_FLAG_COMPRESSED:
        payload = _inflate_section(td, payload, pos + 16)
    return payload


def _inflate_section(td: TraceDat, payload: bytes, offset: int) -> bytes:
    r = td.reader
    if td.compression is None:
        raise r.fail(offset, "compressed section in a file that names no compression")
    if len(payload) < 8:
        raise r.fail(offset, "compressed section shorter than its 8-byte header")
    sub = Reader(r.path, payload, r.big_endian, r.section)
    comp, uncomp = sub.u32(0), sub.u32(4)
    if comp > len(payload) - 8:
        raise r.fail(offset, f"compressed size {comp} exceeds the section ({len(payload) - 8})")
    return decompress(td.compression, payload[8 : 8 + comp], uncomp, r, offset)


def _read_v7(td: TraceDat, pos: int) -> None:
    r = td.reader
    r.section = "compression header"
    algo, pos = r.cstr(pos, 64)
    _, pos = r.cstr(pos, 64)
    td.compression = None if algo == "none" else algo
    if algo not in ("none", "zlib", "zstd"):
        raise r.fail(pos, f"unknown compression {algo!r} (none, zlib and zstd exist)")
    options_offset = r.u64(pos)
    td.strings = _strings(td, pos + 8)
    visited: set[int] = set()
    while options_offset:
        if options_offset in visited or len(visited) > _MAX_SECTIONS:
            raise r.fail(options_offset, "OPTIONS sections form a loop")
        visited.add(options_offset)
        payload = _section(td, options_offset, 0, "options")
        sub = Reader(r.path, payload, r.big_endian, f"options section at {options_offset:#x}")
        done = _options(td, sub, 0, end=len(payload), buffers=[])
        if done - 2 + 14 > len(payload):
            break  # DONE without a next-section offset: the last OPTIONS section
        options_offset = sub.u64(done + 4)
    _v7_metadata(td)


def _strings(td: TraceDat, pos: int) -> bytes:
    """The concatenated payloads of every STRINGS section (trace-cmd ``read_metadata_strings``).

    No option points at them: walk the section headers from ``pos`` to the end of the file.
    A file may hold several, and a section's string id may resolve only in their
    concatenation (formats.md §3.3). Descriptions only label sections, so a walk that runs
    into a damaged header stops there rather than failing the import.
    """
    r = td.reader
    out = bytearray()
    for _ in range(_MAX_SECTIONS):
        if pos + 16 > r.size:
            break
        sid, flags, _, size = _section_header(r, pos)
        if sid == SECTION_STRINGS:
            r.section = "strings section"
            try:
                payload = r.sized_blob(pos + 16, size, "strings section")
                if flags & SECTION_FLAG_COMPRESSED:
                    payload = _inflate_section(td, payload, pos + 16)
            except CaptureFormatError:
                break
            out += payload
        pos += 16 + size
    return bytes(out)


def _v7_metadata(td: TraceDat) -> None:
    r, opts = td.reader, td.options.sections
    for opt, name in ((OPT_HEADER_INFO, "headers"), (OPT_FTRACE_EVENTS, "ftrace events")):
        if opt not in opts:
            raise r.fail(0, f"no {name} section (option {opt} missing)")
    sections = {
        OPT_HEADER_INFO: "headers",
        OPT_FTRACE_EVENTS: "ftrace events",
        OPT_EVENT_FORMATS: "event formats",
        OPT_KALLSYMS: "kallsyms",
        OPT_PRINTK: "printk formats",
        OPT_CMDLINES: "saved cmdlines",
    }
    for opt, name in sections.items():
        if opt not in opts:
            continue
        payload = _section(td, opts[opt], opt, name)
        sub = Reader(r.path, payload, r.big_endian, f"{name} section at {opts[opt]:#x}")
        if opt == OPT_HEADER_INFO:
            _headers(td, sub, 0)
        elif opt == OPT_FTRACE_EVENTS:
            _ftrace_formats(td, sub, 0)
        elif opt == OPT_EVENT_FORMATS:
            _event_formats(td, sub, 0)
        elif opt == OPT_KALLSYMS:
            td.kallsyms = _kallsyms(sub, 0)[0]
        elif opt == OPT_PRINTK:
            td.printk = _blob(sub, 0, name, wide=False)[0]
        else:
            td.cmdlines = _blob(sub, 0, name, wide=True)[0]
    if td.options.cpu_count is not None:
        td.cpus = td.options.cpu_count


def _v7_buffer(td: TraceDat, r: Reader, pos: int, size: int) -> Instance:
    """v7 BUFFER option: section offset, name, clock, page size, sparse per-CPU table."""
    end = pos + size
    section_offset = r.u64(pos)
    name, p = r.cstr(pos + 8, size)
    clock, p = r.cstr(p, size)
    page_size, ncpus = r.u32(p), r.u32(p + 4)
    p += 8
    if p + 20 * ncpus > end:
        raise r.fail(p, f"BUFFER option lists {ncpus} CPUs in {end - p} bytes")
    if not 64 <= page_size <= 1 << 24:
        raise r.fail(p - 8, f"BUFFER option page size {page_size} out of range")
    cpus = []
    for i in range(ncpus):
        q = p + 20 * i
        cpu, offset, nbytes = r.u32(q), r.u64(q + 4), r.u64(q + 12)
        if nbytes and cpu > MAX_CPU:  # no CPU column holds it: the data cannot be placed
            td.unread.append(
                Unread(
                    f"BUFFER option CPU id above {MAX_CPU} (that CPU's data not read)",
                    f"CPU id {cpu} at byte {q:#x} of the {r.section} "
                    f"({nbytes} bytes of data at file offset {offset:#x})",
                )
            )
        elif nbytes:
            cpus.append(CpuStream(cpu, offset, nbytes))
    head = td.reader
    saved = head.section
    head.section = f"buffer flyrecord section of instance {name!r}"
    sid, flags, string_id, _ = _section_header(head, section_offset)
    description = td.describe(string_id)
    td.sections.append({"offset": section_offset, "id": sid, "description": description})
    if sid != OPT_BUFFER:
        raise head.fail(section_offset, f"expected a buffer section (id 3), found id {sid}")
    head.section = saved
    return Instance(name, clock or None, page_size, cpus, bool(flags & SECTION_FLAG_COMPRESSED))


#: trace-cmd compresses ring-buffer data in chunks of a few pages (10 in the shared captures);
#: a chunk header claiming more than this is corrupt.
MAX_CHUNK = 1 << 26


def cpu_chunks(td: TraceDat, stream: CpuStream) -> list[tuple[int, int, int]]:
    """``(offset, compressed, uncompressed)`` of each chunk of one CPU's compressed data.

    Layout (formats.md §3.3): ``u32 count``, then per chunk ``u32 compressed``, ``u32
    uncompressed`` and the data.
    """
    r = td.reader
    r.section = f"compressed data of CPU {stream.cpu}"
    # trace-cmd 3.2 counts the u32 chunk count in the BUFFER option's size (formats.md §3.3),
    # 3.1.6 does not (observed in files it extracts): accept both.
    end = min(stream.offset + stream.size + 4, r.size)
    count = r.u32(stream.offset)
    pos = stream.offset + 4
    if count == 0 and stream.size > 4:  # an empty CPU has 4 bytes (3.2) or none (3.1.6)
        td.unread.append(
            Unread(
                "compressed CPU data with a chunk count of 0 (its events are lost)",
                f"CPU {stream.cpu} data at offset {stream.offset:#x}, {stream.size} bytes, "
                "from the start of the capture",
                stream.cpu,
            )
        )
    if count * 8 > end - pos:
        raise r.fail(stream.offset, f"claims {count} compressed chunks in {stream.size} bytes")
    chunks = []
    for _ in range(count):
        comp, uncomp = r.u32(pos), r.u32(pos + 4)
        if pos + 8 + comp > end:
            raise r.fail(pos, f"chunk of {comp} bytes runs past the CPU data end {end:#x}")
        if uncomp > MAX_CHUNK:
            raise r.fail(pos, f"chunk claims {uncomp} bytes uncompressed")
        chunks.append((pos + 8, comp, uncomp))
        pos += 8 + comp
    return chunks
