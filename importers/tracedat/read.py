"""trace-cmd ``trace.dat`` (v6, v7) importer: binary records straight into canonical tables.

Pipeline (formats.md §3.7): :mod:`importers.tracedat.file` parses the container,
:mod:`importers.tracedat.pages` walks every ring-buffer page into flat record arrays, the
records of all CPUs are merged by ``(ts, cpu, position)`` (trace-cmd's
``tracecmd_read_next_data`` picks the smallest timestamp, ties to the lowest CPU), and each
event type is decoded from its own format by :mod:`importers.tracefs.fields` into the typed
tables (:mod:`importers.tracedat.tables`) or the long ``events`` table.

Choices
-------
* ``seq`` is the rank in that merge, counting a ``lost_events`` row just before the first
  record after the loss, so ``seq`` is unique over the whole capture.
* ``events`` rows carry the raw record bytes in ``payload``; ``args`` is left null for binary
  captures (rendering text per record would cost more than the whole decode; the typed tables
  hold the modelled events' fields, and ``payload`` keeps the rest losslessly).
* Timestamps follow ``trace-cmd report``: TSC2NSEC (``mul_u64_u32_shr``) when the file has it,
  then the DATE offset. TIME_SHIFT (guest/host sync) is parsed into metadata, not applied.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.capture import Capture, CaptureMetadata, sha256_of
from importers.capture_writer import CaptureWriter
from importers.detect import ProgressFn
from importers.errors import CaptureFormatError, DroppedEventsError
from importers.heap import trim_heap
from importers.schema import conform, empty_table
from importers.skips import SkipLog
from importers.tasks import cmdline_spans, name_spans, table_spans
from importers.tracedat.buffer import PageBuffer
from importers.tracedat.events import records_to_tables
from importers.tracedat.file import TraceDat, cpu_chunks, read_container
from importers.tracedat.pages import (
    PAGE_DAMAGE,
    PAGE_OK,
    PageLayout,
    Records,
    walk_pages,
)
from importers.tracedat.reader import Reader, decompress, open_reader
from importers.tracedat.ringbuffer import MISSED_NONE
from importers.tracedat.truncation import cut_off, markers_after, truncation_markers
from importers.tracefs.event_format import EventFormatError, parse_fields


def read_tracedat(
    path: Path,
    *,
    fmt: str = "trace.dat",
    strict: bool = False,
    progress: ProgressFn | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import a trace-cmd ``trace.dat`` file (v6 or v7).

    Parameters
    ----------
    path
        The trace.dat file.
    fmt
        Format name recorded in the metadata (``"trace.dat"``).
    strict
        Raise on the first damaged page or undecodable record instead of skipping and counting.
    progress
        Optional ``(done, total)`` callback, called per stage.
    writer
        Where the capture is being saved: each typed table and ``events`` are written there
        as soon as they are decoded, while the next is (the caller finishes it).

    Returns
    -------
    Capture
        Typed tables, ``events``, ``tasks``, ``lost_events`` and metadata.

    Raises
    ------
    CaptureFormatError
        When the file is not a readable trace.dat (message names file, section and offset).
    """
    with ThreadPoolExecutor(max_workers=1) as hasher:
        digest = hasher.submit(sha256_of, path)  # overlaps the decode; hashlib drops the GIL
        capture = _read(path, fmt, strict, progress, writer)
        capture.metadata.source_sha256 = digest.result()
    return capture


def _read(
    path: Path, fmt: str, strict: bool, progress: ProgressFn | None, writer: CaptureWriter | None
) -> Capture:
    reader = open_reader(path)
    td = read_container(reader)
    if td.latency:
        raise CaptureFormatError(
            f"{path}: a latency-tracer trace.dat (its data is kernel text, not ring-buffer "
            "pages); convert it with `trace-cmd report -i FILE > trace.txt` and import that"
        )
    skips = SkipLog(str(path), strict)
    pages, starts, ends, page_cpu, page_inst = _pages(td, skips)
    pages.track(starts, ends)
    data = pages.array
    for unread in td.unread:
        skips.add(unread.reason, [unread.where])
    if progress:
        progress(1, 4)
    records, status, missed = _walk(td, data, starts, ends, page_inst)
    trim_heap()  # the walk's steps, freed
    _count_damage(td, skips, status, starts, page_cpu)
    if progress:
        progress(2, 4)
    ts = _convert_time(td, records.ts)
    span = (int(ts.min()), int(ts.max())) if len(ts) else None
    del ts  # converted again, after the merge, by records_to_tables (which drops the records)
    new_stream = (np.diff(page_cpu) != 0) | (np.diff(page_inst) != 0)
    page_stream = np.concatenate([[0], np.cumsum(new_stream)]).astype(np.int64)
    tables = records_to_tables(
        td, data, records, page_cpu, page_stream, missed, skips,
        to_ns=partial(_convert_time, td), pages=pages,
        emit=writer.append if writer is not None else None,
    )  # fmt: skip
    pages.release(0, len(data))  # every table is built: no page is read again
    trim_heap()  # what building them freed
    if progress:
        progress(3, 4)
    # Names seen in events, with when; saved_cmdlines (the kernel's last name of up to
    # saved_cmdlines_size pids) adds threads that logged but were never named by an event.
    spans = table_spans(tables)
    if td.cmdlines:
        spans.append(cmdline_spans(td.cmdlines))
    tables["tasks"] = conform("tasks", name_spans(spans))
    lost = tables.pop("lost_events")
    if lost.num_rows:
        if strict:
            raise DroppedEventsError(
                f"{path}: the kernel ring buffer missed events on CPUs "
                f"{sorted(set(lost.column('cpu').to_pylist()))} ({lost.num_rows} pages flagged); "
                "drop --strict to import with the losses recorded in lost_events"
            )
        tables["lost_events"] = lost
    # CPUs whose data could not be read at all, then those the end of the file cuts off: each
    # set of markers is numbered after every row before it
    unreadable = markers_after(
        tables, {u.cpu for u in td.unread if u.cpu is not None}, "unreadable"
    )
    lost = tables.get("lost_events", empty_table("lost_events"))
    tables["lost_events"] = pa.concat_tables([lost, unreadable])
    tables["lost_events"] = pa.concat_tables(
        [tables["lost_events"], truncation_markers(td, tables)]
    )
    if progress:
        progress(4, 4)
    trim_heap()  # what decoding freed: saving the tables (Parquet writers' buffers) comes next
    meta = _metadata(path, fmt, td, span, skips)
    return Capture(metadata=meta, tables={k: v for k, v in tables.items() if v.num_rows})


def page_layout(td: TraceDat, page_size: int) -> PageLayout:
    """Commit and data offsets from the capture's ``header_page`` (kernel long size)."""
    r = td.reader
    try:
        fields = {
            f.name: f for _, f in parse_fields(td.header_page.splitlines(), where="header_page")
        }
    except EventFormatError as exc:
        raise r.fail(0, f"header_page does not parse ({exc})") from None
    commit, data = fields.get("commit"), fields.get("data")
    if commit is None or data is None or commit.size not in (4, 8):
        raise r.fail(0, f"header_page lacks a usable commit/data field: {td.header_page[:200]!r}")
    if not commit.offset + commit.size <= data.offset < page_size:
        raise r.fail(0, f"header_page data offset {data.offset} outside the {page_size}-byte page")
    _check_header_event(td)
    return PageLayout(page_size, commit.offset, commit.size, data.offset, r.big_endian)


# The record-header constants the page walk relies on, as ring_buffer_print_entry_header prints
# them (formats.md §3.4); old kernels omit time_stamp.
_HEADER_EVENT = (
    ("type_len", r"type_len\s*:\s*(\d+) bits", 5),
    ("time_delta", r"time_delta\s*:\s*(\d+) bits", 27),
    ("padding", r"padding\s*:\s*type == (\d+)", 29),
    ("time_extend", r"time_extend\s*:\s*type == (\d+)", 30),
    ("time_stamp", r"time_stamp\s*:\s*type == (\d+)", 31),
    ("data max type_len", r"data max type_len\s*==\s*(\d+)", 28),
)


def _check_header_event(td: TraceDat) -> None:
    """Refuse a ring buffer whose record header differs from the one the page walk decodes."""
    for label, pattern, expected in _HEADER_EVENT:
        m = re.search(pattern, td.header_event)
        if m and int(m[1]) != expected:
            raise td.reader.fail(
                0,
                f"header_event says {label} {m[1]}, pmu-replay decodes ring buffers with "
                f"{expected} (a kernel ring-buffer layout it does not know)",
            )


def _pages(
    td: TraceDat, skips: SkipLog
) -> tuple[PageBuffer, NDArray[np.int64], NDArray[np.int64], NDArray[np.int16], NDArray[np.int32]]:
    """One byte buffer holding every page, and each page's start, end, CPU and instance.

    Uncompressed files are used in place (memory-mapped); compressed v7 buffers are inflated
    chunk by chunk straight into one buffer (sized from the chunk headers first), after which
    the compressed file's pages are given back.
    """
    r = td.reader
    compressed = any(inst.compressed for inst in td.instances)
    # (instance, stream, [(source offset, compressed size or -1, bytes)]) in file order
    plan = []
    for i, inst in enumerate(td.instances):
        for stream in inst.cpus:
            if inst.compressed:
                plan.append((i, stream, cpu_chunks(td, stream)))
                continue
            limit = min(r.size, stream.offset + stream.size)
            if cut_off(stream, r.size):
                skips.add(  # pages cut short are still walked; their commit decides
                    "CPU data past the end of the file (truncated file)",
                    [f"CPU {stream.cpu} data at offset {stream.offset:#x}, {stream.size} bytes"],
                    count=-(-(stream.offset + stream.size - max(stream.offset, r.size))
                            // inst.page_size),
                )  # fmt: skip
            plan.append((i, stream, [(stream.offset, -1, max(0, limit - stream.offset))]))
    if compressed:
        pages = PageBuffer.anonymous(sum(n for *_, chunks in plan for _, _, n in chunks))
    else:
        pages = PageBuffer.of_file(r.buf)
    data = pages.array
    base = 0
    starts, ends, cpus, insts = [], [], [], []
    jobs = []
    for i, stream, chunks in plan:
        page_size = td.instances[i].page_size
        begin = base if compressed else chunks[0][0]
        if compressed:
            for chunk in chunks:
                jobs.append((base, stream.cpu, chunk))
                base += chunk[2]
        limit = base if compressed else begin + chunks[0][2]
        page_starts = np.arange(begin, limit, page_size, dtype=np.int64)
        starts.append(page_starts)
        ends.append(np.minimum(page_starts + page_size, limit))
        cpus.append(np.full(len(page_starts), stream.cpu, np.int16))
        insts.append(np.full(len(page_starts), i, np.int32))
    if jobs:
        _inflate_all(td, data, jobs)
        PageBuffer.of_file(r.buf).release(0, r.size)
    cat = np.concatenate
    return (
        pages,
        cat(starts) if starts else np.zeros(0, np.int64),
        cat(ends) if ends else np.zeros(0, np.int64),
        cat(cpus) if cpus else np.zeros(0, np.int16),
        cat(insts) if insts else np.zeros(0, np.int32),
    )


def _inflate_all(
    td: TraceDat, data: NDArray[np.uint8], jobs: list[tuple[int, int, tuple[int, int, int]]]
) -> None:
    """Inflate chunks into their place in ``data`` on all cores (zlib and zstd drop the GIL)."""
    r = td.reader

    def inflate(job: tuple[int, int, tuple[int, int, int]]) -> None:
        dest, cpu, (pos, comp, n) = job
        if comp < 0:  # an uncompressed instance in a compressed file: copy as is
            data[dest : dest + n] = np.frombuffer(r.buf, np.uint8, n, pos)
            return
        label = Reader(r.path, r.buf, r.big_endian, f"compressed data of CPU {cpu}")
        blob = decompress(td.compression or "", r.buf[pos : pos + comp], n, label, pos - 8)
        data[dest : dest + n] = np.frombuffer(blob, np.uint8)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(inflate, jobs):
            pass  # re-raises the first failure, in file order


def _walk(
    td: TraceDat,
    data: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    page_inst: NDArray[np.int32],
) -> tuple[Records, NDArray[np.int8], NDArray[np.int64]]:
    """Walk the pages of each instance with that instance's page layout."""
    status = np.zeros(len(starts), np.int8)
    missed = np.full(len(starts), MISSED_NONE, np.int64)
    chunks: list[Records] = []
    for i, inst in enumerate(td.instances):
        sel = np.flatnonzero(page_inst == i)
        if not len(sel):
            continue
        recs, st, mi = walk_pages(data, starts[sel], ends[sel], page_layout(td, inst.page_size))
        recs.page = sel[recs.page].astype(np.int32)
        status[sel], missed[sel] = st, mi
        chunks.append(recs)
    return Records.concat(chunks), status, missed


def _count_damage(
    td: TraceDat,
    skips: SkipLog,
    status: NDArray[np.int8],
    starts: NDArray[np.int64],
    page_cpu: NDArray[np.int16],
) -> None:
    compressed = any(inst.compressed for inst in td.instances)
    for code in np.unique(status[status != PAGE_OK]).tolist():
        bad = np.flatnonzero(status == code)
        where = "inflated byte" if compressed else "file offset"
        skips.add(
            f"damaged ring-buffer page skipped: {PAGE_DAMAGE[code]}",
            [f"CPU {page_cpu[p]} page at {where} {starts[p]:#x}" for p in bad[:5]],
            count=len(bad),
        )


def _convert_time(td: TraceDat, raw: NDArray[np.int64]) -> NDArray[np.int64]:
    """trace-cmd's ``timestamp_calc``: TSC2NSEC (``mul_u64_u32_shr``), then DATE/OFFSET."""
    ts = raw
    if td.options.tsc2nsec is not None:
        mult, shift, _ = td.options.tsc2nsec
        if shift > 63:
            raise td.reader.fail(0, f"TSC2NSEC option has shift {shift} (at most 63 makes sense)")
        u = raw.view(np.uint64)
        lo = (u & np.uint64(0xFFFFFFFF)) * np.uint64(mult)
        hi = (u >> np.uint64(32)) * np.uint64(mult)
        if shift <= 32:
            out = (lo >> np.uint64(shift)) + (hi << np.uint64(32 - shift))
        else:
            out = (hi + (lo >> np.uint64(32))) >> np.uint64(shift - 32)
        ts = out.view(np.int64)
    offset = _ts_offset(td)
    if not -(1 << 63) <= offset < 1 << 63:
        raise td.reader.fail(0, f"DATE/OFFSET options add {offset} ns, beyond a 64-bit clock")
    return ts + np.int64(offset) if offset else ts


def _ts_offset(td: TraceDat) -> int:
    """What ``trace-cmd report`` adds to every timestamp (trace-input.c ``handle_options``).

    DATE is a µs offset to gettimeofday (×1000), OFFSET a ns offset (``--ts-offset``); both are
    ASCII numbers read with ``strtoll(buf, NULL, 0)``.
    """
    return _strtoll(td.options.date) * 1000 + _strtoll(td.options.offset)


_STRTOLL = re.compile(r"\s*([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)")


def _strtoll(text: str | None) -> int:
    """C ``strtoll(text, NULL, 0)``: hex with 0x, octal with a leading 0, else decimal."""
    m = _STRTOLL.match(text or "")
    if not m:
        return 0
    digits = m[2]
    value = (
        int(digits, 16)
        if digits[:2].lower() == "0x"
        else int(digits, 8 if digits[0] == "0" else 10)
    )
    return -value if m[1] == "-" else value


def _metadata(
    path: Path, fmt: str, td: TraceDat, span: tuple[int, int] | None, skips: SkipLog
) -> CaptureMetadata:
    o = td.options
    inst_clock = td.instances[0].clock if td.instances else None
    clock = o.selected_clock or inst_clock
    if inst_clock == "tsc2nsec" and o.selected_clock:
        clock = o.selected_clock  # x86-tsc converted to ns by TSC2NSEC
    raw_counter = clock in ("counter", "x86-tsc") and o.tsc2nsec is None
    extra: dict[str, Any] = {
        "trace_dat_version": td.version,
        "compression": td.compression,
        "big_endian": td.reader.big_endian,
        "long_size": td.long_size,
        "kernel_long_size": page_layout(td, td.page_size).commit_size,
        "page_size": td.page_size,
        "kernel_release": _kernel_release(o.uname),
        "uname": o.uname,
        "tracecmd_version": o.tracecmd_version,
        "trace_id": o.trace_id,
        "instances": [
            {
                "name": i.name,
                "clock": i.clock,
                "page_size": i.page_size,
                "cpus": [c.cpu for c in i.cpus],
            }
            for i in td.instances
        ],
        "tsc2nsec": None
        if o.tsc2nsec is None
        else dict(zip(("mult", "shift", "offset"), o.tsc2nsec, strict=True)),
        "ts_offset_ns": _ts_offset(td) or None,
        "offset": o.offset,
        "guests": o.guests,
        "time_shift": o.time_shift,
        "event_formats": len(td.formats),
        "sections": td.sections or None,
        "kallsyms_bytes": len(td.kallsyms),
    }
    return CaptureMetadata(
        source_path=str(path),
        source_sha256="",  # filled in by read_tracedat
        format=fmt,
        importer="importers.tracedat.read:read_tracedat",
        clock=clock,
        ts_unit="cycles" if raw_counter else "ns",
        ts_resolution_ns=1,
        # v7 without a CPUCOUNT option: the highest CPU id with data bounds it from below
        cpu_count=td.cpus or max((c.cpu + 1 for i in td.instances for c in i.cpus), default=None),
        first_ts=span[0] if span else None,
        last_ts=span[1] if span else None,
        skipped=skips.to_json(),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def _kernel_release(uname: str | None) -> str | None:
    parts = (uname or "").split()
    return parts[2] if len(parts) >= 3 else None


__all__ = ["page_layout", "read_tracedat"]
