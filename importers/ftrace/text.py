"""Importer of every text form of ftrace data into the canonical tables.

Reads the kernel's ``trace``/``trace_pipe`` text, ``trace-cmd report`` text (default, ``-N``,
``-R``, ``-l``, ``-t``, ``--ts-diff``, instance prefixes) and Android systrace HTML (plain,
zipped, legacy JS string). The text is processed in chunks, in parallel, each chunk tokenized by
:mod:`importers.ftrace.lines` and its payloads parsed by :mod:`importers.ftrace.payloads`, all
with vectorized numpy and Arrow kernels; nothing loops over lines in Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from importers.arrow_compute import (
    case_when,
    equal,
    is_valid,
    make_struct,
    match_substring,
    sort_indices,
    take,
    utf8_rtrim_whitespace,
)
from importers.capture import Capture, CaptureMetadata
from importers.capture_writer import CaptureWriter
from importers.detect import ProgressFn
from importers.errors import CaptureFormatError, DroppedEventsError
from importers.ftrace.lines import NO_MARKERS, ChunkLines, Preamble, scan_preamble, tokenize
from importers.ftrace.payloads import parse_payloads
from importers.ftrace.scan import string_column
from importers.ftrace.scan_bytes import Text
from importers.ftrace.source import TextChunk, open_text
from importers.heap import trim_heap
from importers.schema import conform
from importers.skips import FIRST_LOCATIONS, SkipLog
from importers.tasks import name_spans, sightings, typed_sightings

IMPORTER = "importers.ftrace.text 1"
_PREFIX = ["ts", "seq", "cpu", "common_pid"]


@dataclass
class ChunkResult:
    """What one chunk contributes to the capture."""

    chunk: TextChunk
    typed: dict[str, pa.Table]  # canonical schemas; strings copied out of the chunk buffer
    events: pa.Table
    lost: pa.Table  # seq, cpu, count, kind, ts (null when no later event in the chunk)
    first_per_cpu: dict[int, int]  # CPU -> ts of its first event in the chunk
    tasks: pa.Table
    skipped: dict[str, list[int]]
    frac_widths: set[int]
    info_lines: int
    events_seen: int = 0
    ts_range: tuple[int | None, int | None] = (None, None)
    max_cpu: int | None = None
    unparsed: dict[str, list[int]] = field(default_factory=dict)


def read_ftrace_text(
    path: Path,
    *,
    fmt: str,
    strict: bool = False,
    progress: ProgressFn | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import ftrace text, trace-cmd report text or systrace HTML (see module docstring).

    With ``writer`` (where the capture is being saved), each chunk's typed tables and events
    are handed to it as soon as the chunk is parsed, so their Parquet encoding runs while the
    later chunks are parsed instead of after the last one; the tables are also kept for the
    steps after the import (the caller finishes the writer).
    """
    source = open_text(path, fmt, progress)
    chunks = source.chunks
    try:
        first = next(chunks)
    except StopIteration:
        raise CaptureFormatError(f"{path}: empty file; nothing to import") from None
    preamble = scan_preamble(bytes(first.data[: 1 << 16]))
    skips = SkipLog(str(path), strict)
    results = []
    for result in _process_all(_chain(first, chunks), preamble):
        if writer is not None:
            for name, table in result.typed.items():
                writer.append(name, table)
            writer.append("events", result.events)
        results.append(result)

    if not any(r.events_seen for r in results):
        raise CaptureFormatError(
            f"{path}: no ftrace event lines found "
            f"({sum(sum(len(v) for v in r.skipped.values()) for r in results)} lines not "
            "understood); is this ftrace text (kernel trace, trace-cmd report, systrace)?"
        )
    widths = set().union(*(r.frac_widths for r in results))
    if len(widths) > 1 and 0 in widths:
        raise CaptureFormatError(
            f"{path}: mixes timestamps with and without a decimal point; cannot tell "
            "nanoseconds from raw clock counts. Re-export the capture with one clock"
        )
    for r in results:
        # only the first few locations are kept: render just those, count the rest
        for reason, seqs in r.skipped.items():
            skips.add(reason, [r.chunk.line_of(s) for s in seqs[:FIRST_LOCATIONS]], len(seqs))
        for event, seqs in r.unparsed.items():
            skips.add(
                f"{event} payload not understood (kept in events)",
                [r.chunk.line_of(s) for s in seqs[:FIRST_LOCATIONS]],
                len(seqs),
            )
    lost = _resolve_lost(results)
    if strict and lost.num_rows:
        cpu, seq = lost["cpu"][0].as_py(), lost["seq"][0].as_py()
        raise DroppedEventsError(
            f"{path}: CPU {cpu} lost events (first marker at "
            f"{_chunk_of(results, seq).line_of(seq)}); drop --strict to import "
            "the rest and see the losses reported as unknown intervals"
        )

    tables = _tables(results, lost)
    trim_heap()  # what the chunks' scans and tables freed: saving the tables comes next
    meta = _metadata(path, fmt, source.container, preamble, results, widths, skips, source.sha256())
    meta.extra["notes"] = source.notes
    return Capture(metadata=meta, tables=tables)


def _chain(first: TextChunk, rest: Iterator[TextChunk]) -> Iterator[TextChunk]:
    yield first
    yield from rest


def _process_all(chunks: Iterator[TextChunk], preamble: Preamble) -> Iterator[ChunkResult]:
    """Process chunks on a small thread pool (numpy, Arrow and the numba kernels release the
    GIL), results in order.

    At most two chunks per worker are in flight, which bounds memory for any input size.
    """
    workers = max(1, min(4, os.cpu_count() or 1))
    pending: list[Future[ChunkResult]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for chunk in chunks:
            pending.append(pool.submit(_process, chunk, preamble))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def _process(chunk: TextChunk, preamble: Preamble) -> ChunkResult:
    compiled = chunk.compiled
    lines: ChunkLines = tokenize(chunk.data, chunk.seq_base, preamble.instances, compiled=compiled)
    events = lines.events
    payloads = parse_payloads(lines.data, events, compiled=compiled)
    typed = payloads.typed
    # Converting here, in the worker, dictionary-encodes the strings (already copied out of
    # the chunk buffer): memory stays bounded by the output size.
    converted = {name: conform(name, table) for name, table in typed.items()}
    seq, cpu, ts = (events[c].to_numpy() for c in ("seq", "cpu", "ts"))
    tasks = name_spans(
        [
            sightings(events, "common_pid", "common_comm", "line", tgid="tgid"),
            *typed_sightings(typed),
        ]
    )
    rest = conform("events", _events_rows(lines.data, payloads.rest, compiled))
    chunk.release()
    cpus, first = np.unique(cpu, return_index=True)  # events are in seq order
    return ChunkResult(
        chunk=chunk,
        typed=converted,
        events=rest,
        lost=_next_event(lines.lost, seq, cpu, ts),
        first_per_cpu=dict(zip(cpus.tolist(), ts[first].tolist(), strict=True)),
        tasks=tasks,
        skipped={**lines.skipped, **payloads.counted},
        frac_widths=set(np.unique(events["frac_width"].to_numpy()).tolist()),
        info_lines=lines.info_lines,
        events_seen=events.num_rows,
        ts_range=(int(ts.min()), int(ts.max())) if ts.size else (None, None),
        max_cpu=int(cpu.max()) if cpu.size else None,
        unparsed=payloads.unparsed,
    )


def _next_event(markers: pa.Table, seq: np.ndarray, cpu: np.ndarray, ts: np.ndarray) -> pa.Table:
    """``markers`` in seq order with the ``ts`` of the next event of their CPU in the chunk
    (null when there is none): the end of the time the loss makes unknown."""
    markers = take(markers, sort_indices(markers["seq"]))
    at, on = markers["seq"].to_numpy(), markers["cpu"].to_numpy().astype(np.int64)
    # events by (CPU, seq): the first event of a marker's CPU at or after the marker
    order = np.lexsort((seq, cpu))
    key = cpu[order].astype(np.int64) * (1 << 47) + seq[order]
    i = np.searchsorted(key, on * (1 << 47) + at)
    found = i < key.size
    found[found] = cpu[order][i[found]] == on[found]
    after = np.zeros(at.size, np.int64)
    after[found] = ts[order][i[found]]
    return markers.append_column("ts", pa.array(after, mask=~found))


def _events_rows(data: Text, rest: pa.Table, compiled: bool) -> pa.Table:
    """Rows for the long ``events`` table: context columns plus the payload text."""
    offsets = rest["args_s"].to_numpy(), rest["args_e"].to_numpy()
    args = utf8_rtrim_whitespace(string_column(data, *offsets, compiled))
    # Lines with a context but no "event:" are the stack-trace events, function-tracer lines
    # ("func <-parent") or output of events the kernel could not print [trace_output.c].
    name = case_when(
        make_struct(
            is_valid(rest["event"]),
            equal(args, "<stack trace>"),
            equal(args, "<user stack trace>"),
            match_substring(args, " <-"),
        ),
        rest["event"],
        "kernel_stack",
        "user_stack",
        "function",
        "unknown",
    )
    return pa.table(
        {
            "ts": rest["ts"],
            "seq": rest["seq"],
            "cpu": rest["cpu"],
            "common_pid": rest["common_pid"],
            "tgid": rest["tgid"],
            "comm": rest["common_comm"],
            "event": name,
            "flags_str": rest["flags_str"],
            "args": args,
        }
    )


def _resolve_lost(results: list[ChunkResult]) -> pa.Table:
    """Lost-event markers with the time of the next record of their CPU.

    A marker whose CPU has no later event in its own chunk takes the first event of that CPU in
    the following chunks; one that is never followed keeps a null ``ts``.
    """
    rows: list[pa.Table] = []
    for i, r in enumerate(results):
        lost = r.lost
        if not lost.num_rows:
            continue
        ts, cpus = lost["ts"].to_pylist(), lost["cpu"].to_pylist()
        for later in results[i + 1 :]:
            if all(t is not None for t in ts):
                break
            ts = [
                later.first_per_cpu.get(c) if t is None else t
                for t, c in zip(ts, cpus, strict=True)
            ]
        at = lost.schema.get_field_index("ts")
        rows.append(lost.set_column(at, "ts", pa.array(ts, pa.int64())))
    if not rows:
        return NO_MARKERS.append_column("ts", pa.array([], pa.int64()))
    lost = pa.concat_tables(rows)
    return take(lost, sort_indices(lost["seq"])).select(["ts", "seq", "cpu", "count", "kind"])


def _tables(results: list[ChunkResult], lost: pa.Table) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    names = sorted({name for r in results for name in r.typed})
    for name in names:
        parts = [r.typed[name] for r in results if name in r.typed]
        # Each chunk keeps its own string dictionaries: unifying them rewrote every index
        # (0.15 s for 1 GB of text), and Parquet and polars read per-chunk dictionaries alike.
        tables[name] = pa.concat_tables(parts)
    events = pa.concat_tables([r.events for r in results])
    if events.num_rows:
        tables["events"] = events
    tasks = name_spans([r.tasks for r in results])
    if tasks.num_rows:
        tables["tasks"] = conform("tasks", tasks)
    if lost.num_rows:
        tables["lost_events"] = conform("lost_events", lost)
    return tables


def _metadata(
    path: Path,
    fmt: str,
    container: str,
    pre: Preamble,
    results: list[ChunkResult],
    widths: set[int],
    skips: SkipLog,
    sha256: str,
) -> CaptureMetadata:
    firsts = [r.ts_range[0] for r in results if r.ts_range[0] is not None]
    lasts = [r.ts_range[1] for r in results if r.ts_range[1] is not None]
    max_cpu = max((r.max_cpu for r in results if r.max_cpu is not None), default=None)
    raw = widths == {0}
    width = max(widths) if widths else 6
    extra: dict[str, object] = {"container": container}
    cpu_count = pre.cpus
    if cpu_count is None and max_cpu is not None:
        cpu_count = max_cpu + 1
        extra["cpu_count_source"] = "highest CPU seen in events"
    if pre.version is not None:
        extra["trace_cmd_file_version"] = pre.version
    if pre.tracer is not None:
        extra["tracer"] = pre.tracer
    if pre.entries is not None and pre.written is not None:
        extra["entries_in_buffer"] = pre.entries
        extra["entries_written"] = pre.written
        extra["entries_overwritten"] = pre.written - pre.entries
    if pre.instances:
        extra["instances"] = pre.instances
    extra["info_lines"] = sum(r.info_lines for r in results)
    return CaptureMetadata(
        source_path=str(path),
        source_sha256=sha256,
        format=_format_name(fmt, pre),
        importer=IMPORTER,
        clock=None,
        ts_unit="raw" if raw else "ns",
        ts_resolution_ns=None if raw else 10 ** (9 - width),
        cpu_count=cpu_count,
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        skipped=skips.to_json(),
        extra=extra,
    )


def _format_name(fmt: str, pre: Preamble) -> str:
    if fmt != "ftrace-text":
        return fmt
    # trace-cmd report prints "cpus=N" (and, before 3.0, "version = N"); the kernel's own
    # trace file starts with "# tracer:" instead.
    from_report = pre.version is not None or (pre.cpus is not None and pre.tracer is None)
    return "trace-cmd-report" if from_report else fmt


def _chunk_of(results: list[ChunkResult], seq: int) -> TextChunk:
    return next(r.chunk for r in reversed(results) if r.chunk.seq_base <= seq)
