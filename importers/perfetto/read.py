"""Perfetto protobuf traces (Android, ChromeOS, Linux ``perfetto``/``tracebox``) into tables.

Pipeline: :mod:`~importers.perfetto.packets` (packets, compressed ones inflated),
:mod:`~importers.perfetto.sequences` (incremental state), :mod:`~importers.perfetto.clocks`
(BOOTTIME), :mod:`~importers.perfetto.bundles` (ftrace bundles, per CPU), then groups of
bundles decoded side by side by :mod:`~importers.perfetto.decode` (typed tables, ``events``,
compact rows) and taken in trace order by :mod:`~importers.perfetto.running` (what compact
events leave out) and :mod:`~importers.perfetto.losses` (and, for ``import -o``, written a
group at a time by :mod:`importers.capture_writer`); at the end
:mod:`~importers.perfetto.processes` (task names) and :mod:`~importers.perfetto.system` (the
machine).

``ts`` is BOOTTIME ns (the clock Perfetto records ftrace in by default); ``seq`` is the
position in the trace (:mod:`~importers.perfetto.decode`). Packets the importer does not
model (track events, battery counters, logs, ...) are counted by kind in the metadata.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy._core import multiarray

from importers.arrow_compute import coalesce
from importers.capture import Capture, CaptureMetadata, sha256_of
from importers.capture_writer import CaptureWriter
from importers.detect import ProgressFn
from importers.errors import DroppedEventsError
from importers.perfetto.bundles import (
    FTRACE_CLOCK_NAMES,
    UNCONVERTIBLE,
    bundle_index,
    count_events,
    groups,
)
from importers.perfetto.clocks import clock_snapshots
from importers.perfetto.decode import Context, Group, Parts, decode_group
from importers.perfetto.losses import Losses, lost_events_table
from importers.perfetto.packets import map_file, read_packets, release
from importers.perfetto.processes import stats_tgids, tree_sightings
from importers.perfetto.running import Running
from importers.perfetto.sequences import kernel_symbols, sequences
from importers.perfetto.system import (
    cpu_info,
    ftrace_overruns,
    kernel_version,
    system_info,
    topology,
    trace_stats,
)
from importers.perfetto.wire import I64
from importers.schema import TYPED_TABLES, conform
from importers.skips import SkipLog
from importers.tasks import name_spans

IMPORTER = "importers.perfetto.read:read_perfetto"


def read_perfetto(
    path: Path,
    *,
    fmt: str = "perfetto",
    strict: bool = False,
    progress: ProgressFn | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import a Perfetto protobuf trace.

    Parameters
    ----------
    path
        The trace file (``.perfetto-trace``, ``.pftrace``, ...; compressed files are
        inflated by :func:`importers.detect.load` first).
    fmt
        Format name recorded in the metadata.
    strict
        Raise on the first damaged packet, bundle or event (and on lost events) instead of
        counting it.
    progress
        Optional ``(done, total)`` callback, called per group of bundles.
    writer
        The directory the capture is being saved to: the typed tables and ``events`` are
        written to it a group at a time, while the next groups are decoded. The typed tables
        stay in the capture's ``tables`` too (vCPU discovery, the topology and the import's
        advice read them); ``events`` is in its ``streamed`` only (the largest table: 0.8 GB
        of Arrow for 9.6 M rows, 2.4 CPU-s of Parquet encoding, on the 491 MB benchmark
        trace).

    Returns
    -------
    Capture
        Typed tables (``sched_switch``, ``sched_waking``, ``cpu_frequency``, ``cpu_idle``,
        kvm events, ...), ``events``, ``tasks``, ``lost_events`` and, when ``cpu_info``
        identifies the cores, ``topology``.

    Raises
    ------
    CaptureFormatError
        When the file holds no readable packet (message names the file and offset).
    """
    with ThreadPoolExecutor(max_workers=1) as hasher, _small_pages():
        digest = hasher.submit(sha256_of, path)
        capture = _read(path, fmt, strict, progress, writer)
        capture.metadata.source_sha256 = digest.result()
    return capture


_pages_lock = threading.Lock()
_pages_users = 0
_pages_before = True


@contextmanager
def _small_pages() -> Iterator[None]:
    """NumPy's transparent huge pages turned off while imports run (restored after the last).

    NumPy asks the kernel for huge pages (``madvise(MADV_HUGEPAGE)``) for every array of
    4 MiB or more; where the kernel gives them on request only (``madvise``, the Debian and
    Ubuntu default), every first touch of such an array zeroes 2 MiB. An import allocates and
    frees several GB of such arrays: on the 491 MB benchmark trace this took 7 of the
    process's 18 CPU-s as system time, 3 without huge pages (``NUMPY_MADVISE_HUGEPAGE=0``
    does the same, but only when set before NumPy is imported).
    """
    global _pages_users, _pages_before
    switch = getattr(multiarray, "_set_madvise_hugepage", None)
    with _pages_lock:
        if switch is not None and _pages_users == 0:
            _pages_before = bool(switch(False))
        _pages_users += 1
    try:
        yield
    finally:
        with _pages_lock:
            _pages_users -= 1
            if switch is not None and _pages_users == 0:
                switch(_pages_before)


def _read(
    path: Path, fmt: str, strict: bool, progress: ProgressFn | None, writer: CaptureWriter | None
) -> Capture:
    skips = SkipLog(str(path), strict)
    p = read_packets(map_file(path), skips)
    seqs = sequences(p)
    clocks = clock_snapshots(p)
    info = system_info(p)
    b, ftrace_errors = bundle_index(p, seqs, clocks, skips)
    b = count_events(p, b, skips)
    release(p.data, 0, p.data.shape[0])  # read again a group at a time
    kernel = kernel_version(info)
    ctx = Context(p, b, seqs, clocks, kernel, kernel_symbols(p, seqs))
    parts = Parts(
        ctx,
        Running(kernel),
        Losses(np.unique(b.cpu).tolist()),
        first_ts=np.full(b.count, -1, np.int64),
        last_raw=np.full(b.count, -1, np.int64),
    )
    total = max(1, int(b.events.sum()))
    written: list[tuple[int, int, int]] = []  # first ts, last ts and last CPU of events parts
    for group, group_skips in _decoded(ctx, skips):
        typed = parts.add(group)
        if writer is not None:
            for name, table in typed.items():
                writer.append(name, table)
            for part in parts.events:
                ts = pa.compute.min_max(part.column("ts")).as_py()
                written.append((ts["min"], ts["max"], pa.compute.max(part.column("cpu")).as_py()))
                writer.append("events", part)
            parts.events.clear()
        release(p.data, int(b.start[group.chosen[0]]), int(b.end[group.chosen[-1]]))
        for reason, record in group_skips.reasons.items():
            skips.add(reason, record.first, record.count)
        if progress:
            progress(int(b.events[: group.chosen[-1] + 1].sum()), total)
    tables = {name: pa.concat_tables(t) for name, t in parts.typed.items()}
    unknown = {
        "sched_switch without previous task": parts.running.no_prev,
        "sched_waking without logger": parts.running.no_logger,
    }
    if parts.events:
        tables["events"] = pa.concat_tables(parts.events)
    lost = lost_events_table(parts.losses.markers, b, parts.first_ts)
    if lost.num_rows:
        if strict:
            raise DroppedEventsError(
                f"{path}: {lost.num_rows} ftrace loss markers (first on CPU "
                f"{lost.column('cpu')[0]}); drop --strict to import with the losses recorded "
                "in lost_events"
            )
        tables["lost_events"] = lost
    tables["tasks"] = _tasks(p, seqs, clocks, parts)
    cpus = cpu_info(p)
    found = topology(cpus)
    if found is not None:
        tables["topology"] = found.to_table()
    extra: dict[str, Any] = {
        "packets": p.tally(),
        "system_info": info or None,
        "cpu_info": cpus or None,
        "ftrace_bundles": b.count,
        "ftrace_clocks": sorted(
            {FTRACE_CLOCK_NAMES.get(c, str(c)) for c in b.ftrace_clock.tolist()}
        ),
        "ftrace_errors": ftrace_errors or None,
        "ftrace_overrun": ftrace_overruns(p) or None,
        "trace_stats": trace_stats(p) or None,
        "compact_unknown": unknown if any(unknown.values()) else None,
    }
    unconverted = int(np.count_nonzero(b.clock_key == UNCONVERTIBLE))
    if unconverted:
        skips.add(
            "ftrace bundle in a clock without a BOOTTIME pair (timestamps left in that clock)",
            [p.where(int(k)) for k in b.packet[b.clock_key == UNCONVERTIBLE][:5]],
            count=unconverted,
        )
    return Capture(
        metadata=_metadata(path, fmt, tables, written, skips, extra),
        tables={k: v for k, v in tables.items() if v.num_rows},
        streamed={n: s for n, s in writer.streamed.items() if n not in tables} if writer else {},
    )


def _decoded(ctx: Context, skips: SkipLog) -> Iterator[tuple[Group, SkipLog]]:
    """Groups of bundles decoded on a small thread pool (the kernels and Arrow release the
    GIL), yielded in trace order with their skips; at most two groups per worker are in
    flight, which bounds memory for any trace size."""
    workers = max(1, min(4, os.cpu_count() or 1))
    pending: list[tuple[Future[Group], SkipLog]] = []

    def submit(pool: ThreadPoolExecutor, chosen: I64) -> tuple[Future[Group], SkipLog]:
        group_skips = SkipLog(skips.path, skips.strict)
        return pool.submit(decode_group, ctx, chosen, group_skips), group_skips

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for chosen in groups(ctx.b):
            pending.append(submit(pool, chosen))
            if len(pending) >= 2 * workers:
                future, group_skips = pending.pop(0)
                yield future.result(), group_skips
        for future, group_skips in pending:
            yield future.result(), group_skips


def _tasks(p: Any, seqs: Any, clocks: Any, parts: Parts) -> pa.Table:
    """Names from the typed tables, task-naming events and ``process_tree``; ``tgid`` filled
    in from ``process_stats`` where no source gave one."""
    spans = name_spans([*parts.table_spans(), *parts.sightings, tree_sightings(p, seqs, clocks)])
    tgid = coalesce(spans.column("tgid"), stats_tgids(p, spans.column("pid")))
    return conform("tasks", spans.set_column(spans.schema.get_field_index("tgid"), "tgid", tgid))


def _metadata(
    path: Path,
    fmt: str,
    tables: dict[str, pa.Table],
    written: list[tuple[int, int, int]],
    skips: SkipLog,
    extra: dict[str, Any],
) -> CaptureMetadata:
    """The capture's metadata; ``written``: first ts, last ts and last CPU of each part of
    the ``events`` written as it was decoded (not in ``tables``)."""
    timed = [
        t.column("ts") for name, t in tables.items() if name in TYPED_TABLES or name == "events"
    ]
    lows = [pa.compute.min(c).as_py() for c in timed if len(c)] + [w[0] for w in written]
    highs = [pa.compute.max(c).as_py() for c in timed if len(c)] + [w[1] for w in written]
    cpus = [pa.compute.max(t.column("cpu")).as_py() for t in tables.values()
            if "cpu" in t.column_names and t.num_rows] + [w[2] for w in written]  # fmt: skip
    return CaptureMetadata(
        source_path=str(path),
        source_sha256="",
        format=fmt,
        importer=IMPORTER,
        clock="boot",
        ts_unit="ns",
        ts_resolution_ns=1,
        cpu_count=max(cpus) + 1 if cpus else None,
        first_ts=min(lows) if lows else None,
        last_ts=max(highs) if highs else None,
        skipped=skips.to_json(),
        extra={k: v for k, v in extra.items() if v is not None},
    )
