"""perf.data importer (file and pipe mode, and the simpleperf dialect) into canonical tables.

Pipeline: :mod:`importers.perf.file` reads the header, attrs and feature table;
:mod:`importers.perf.records` walks (and inflates) the record stream;
:mod:`importers.perf.decode` finds each record's attr, time and CPU and puts records in
``perf script`` order; :mod:`importers.perf.tables` and
:mod:`importers.perf.tracing` build the tables. Host facts from the features (PMU
mappings, hybrid topology, clock, command line) go to the metadata and the ``topology`` table.

Choices
-------
* ``seq`` is the position in perf's delivery order (ordered events flushed per
  FINISHED_ROUND), plus one slot per counter value a record carries.
* Event names are perf's: EVENT_DESC (file mode), EVENT_UPDATE (pipe mode), simpleperf's
  ``event_type_info``, else the name perf derives from type/config.
* Records with nothing the replay uses (MMAP*, KSYMBOL, NAMESPACES, ...) are counted per type
  in ``metadata.extra["records"]``; only undecodable input goes to the skip log.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from importers.arrow_compute import cast, drop_null, filter_rows, is_in
from importers.capture import Capture, CaptureMetadata, sha256_of
from importers.capture_writer import CaptureWriter
from importers.detect import ProgressFn
from importers.errors import DroppedEventsError, TopologyError
from importers.host.topology import PmuSpec, Topology, parse_cpulist
from importers.perf.attr import PerfAttr, read_attr
from importers.perf.decode import Decoded, decode
from importers.perf.features import CLOCK_NAMES, Features, read_features
from importers.perf.file import FEATURES, PerfFile, Section, open_perf, u64s
from importers.perf.records import (
    EVENT_UPDATE,
    HEADER_ATTR,
    HEADER_FEATURE,
    RECORD_NAMES,
    TRACING_DATA,
    RecordStream,
    read_stream,
)
from importers.perf.tables import (
    PmuMap,
    lost_events,
    pmu_counts,
    pmu_samples,
    switches,
    task_events,
    tracepoint_samples,
)
from importers.perf.tracing import read_tracing_data, tracepoint_names, tracepoint_tables
from importers.schema import TYPED_TABLES, conform
from importers.skips import SkipLog
from importers.tasks import cmdline_spans, name_spans, sightings, table_spans
from importers.tracedat.file import TraceDat

#: EVENT_UPDATE payload types (tools/lib/perf/include/perf/event.h)
EVENT_UPDATE_NAME = 2
#: core PMUs by sysfs name when the host has a single one (x86 ``cpu``, Arm ``armv*``)
_CORE_PREFIXES = ("cpu", "armv")


def read_perf_data(
    path: Path,
    *,
    fmt: str = "perf.data",
    strict: bool = False,
    progress: ProgressFn | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import a ``perf.data`` file (file or pipe mode, either byte order, or simpleperf's).

    Parameters
    ----------
    path
        The perf.data file.
    fmt
        Format name recorded in the metadata.
    strict
        Raise on the first undecodable record (or on lost events) instead of counting it.
    progress
        Optional ``(done, total)`` callback, called per stage.
    writer
        Where the capture is being saved: the tracepoint tables are written there as soon as
        they are decoded (their Parquet encoding then overlaps the rest of the import); they
        stay in the capture too.

    Returns
    -------
    Capture
        Typed tables of tracepoint samples, ``events``, ``pmu_samples``, ``pmu_counts``,
        ``perf_switches``, ``perf_task_events``, ``tasks``, ``lost_events``, ``topology``.

    Raises
    ------
    CaptureFormatError
        When the file is not a readable perf.data (message names file, section and offset).
    """
    with ThreadPoolExecutor(max_workers=1) as hasher:
        digest = hasher.submit(sha256_of, path)
        capture = _read(path, strict, progress, writer)
        capture.metadata.source_sha256 = digest.result()
    return capture


def _read(
    path: Path, strict: bool, progress: ProgressFn | None, writer: CaptureWriter | None
) -> Capture:
    pf = open_perf(path)
    skips = SkipLog(str(path), strict)
    if pf.lost_features:
        skips.add(
            "feature section past the end of the file (truncated file)",
            [FEATURES.get(b, str(b)) for b in pf.lost_features],
        )
    features = read_features(pf.reader, pf.features) if not pf.pipe else Features()
    mmap_len = (features.compressed or {}).get("mmap_len")
    stream = read_stream(pf, skips, mmap_len)
    if progress:
        progress(1, 4)
    updates = _stream_headers(pf, stream)
    if pf.pipe:
        features = read_features(pf.reader, pf.features)
    td = read_tracing_data(pf.reader, pf.tracing_data) if pf.tracing_data else None
    names = event_names(pf.attrs, features, updates, tracepoint_names(td))
    pf.attrs = [replace(a, name=n) for a, n in zip(pf.attrs, names, strict=True)]
    d = decode(stream, pf.attrs, pf.big_endian, skips)
    if progress:
        progress(2, 4)
    topology = _topology(path, features)
    pmus = _pmu_map(features, topology)
    tables = _tables(d, td, names, pmus, skips, writer)
    lost, unplaced = lost_events(d, skips)
    if lost.num_rows or unplaced:
        if strict:
            raise DroppedEventsError(
                f"{path}: perf lost {int(lost.column('count').to_numpy().sum()) + unplaced} "
                "events (LOST/LOST_SAMPLES records); drop --strict to import with the losses "
                "recorded in lost_events"
            )
        tables["lost_events"] = lost
    if topology is not None:
        tables["topology"] = topology.to_table()
    if progress:
        progress(4, 4)
    meta = _metadata(path, pf, features, d, td, tables, skips, pmus, unplaced)
    return Capture(metadata=meta, tables={k: v for k, v in tables.items() if v.num_rows})


def _stream_headers(pf: PerfFile, stream: RecordStream) -> dict[int, str]:
    """Apply pipe-mode (and simpleperf) in-stream header records; return EVENT_UPDATE names."""
    r = pf.reader
    names: dict[int, str] = {}
    heads = np.flatnonzero(
        np.isin(stream.type, (HEADER_ATTR, HEADER_FEATURE, TRACING_DATA, EVENT_UPDATE))
        & ~stream.inflated
    )
    for i in heads.tolist():
        t, off, size = int(stream.type[i]), int(stream.offset[i]), int(stream.size[i])
        r.section = f"{RECORD_NAMES.get(t, t)} record"
        if t == HEADER_ATTR and size > 8:
            attr = read_attr(r, off + 8, size - 8)
            ids = u64s(r, r.bytes_at(off + 8 + attr.size, max(0, size - 8 - attr.size)))
            pf.attrs.append(replace(attr, ids=ids))
        elif t == HEADER_FEATURE and size >= 16:
            pf.features[r.u64(off + 8)] = Section(off + 16, size - 16)
        elif t == TRACING_DATA and size >= 12:
            blob = r.u32(off + 8)
            embedded = size >= 12 + blob  # simpleperf: blob inside the record, after the size
            pf.tracing_data = Section(off + 12 if embedded else off + size, blob)
        elif t == EVENT_UPDATE and size >= 24 and r.u64(off + 8) == EVENT_UPDATE_NAME:
            text = r.bytes_at(off + 24, size - 24).split(b"\0", 1)[0]
            names[r.u64(off + 16)] = text.decode("utf-8", "replace")
    return names


def event_names(
    attrs: list[PerfAttr],
    features: Features,
    updates: dict[int, str],
    tracepoints: dict[int, str],
) -> list[str]:
    """perf's name of each attr: EVENT_DESC, EVENT_UPDATE, simpleperf meta, or derived."""
    by_id: dict[int, str] = {}
    for _, desc_name, ids in features.event_desc:
        by_id.update(dict.fromkeys(ids, desc_name))
    by_id.update(updates)
    by_config: dict[tuple[int, int], str] = {}
    for line in features.simpleperf_meta.get("event_type_info", "").splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            by_config[(int(parts[1]), int(parts[2]))] = parts[0]
    positional = len(features.event_desc) == len(attrs)
    out = []
    for k, attr in enumerate(attrs):
        name: str | None = next((by_id[i] for i in attr.ids if i in by_id), None)
        if name is None and positional:
            desc, positional_name, _ = features.event_desc[k]
            if (desc.type, desc.config) == (attr.type, attr.config):
                name = positional_name
        name = name or by_config.get((attr.type, attr.config))
        out.append(name or attr.generic_name(features.pmu_mappings, tracepoints))
    return out


def _topology(path: Path, features: Features) -> Topology | None:
    """CPU -> core PMU from HYBRID_TOPOLOGY, or the single core PMU over every CPU."""
    types = {name: t for t, name in features.pmu_mappings.items()}
    try:
        if features.hybrid_topology:
            pmus = [
                PmuSpec(name, parse_cpulist(cpus), types.get(name))
                for name, cpus in features.hybrid_topology.items()
            ]
            return Topology(pmus, source="perf.data HYBRID_TOPOLOGY")
        core = _single_core_pmu(features)
        if core is not None and features.nr_cpus_available:
            cpus = frozenset(range(features.nr_cpus_available))
            return Topology([PmuSpec(core, cpus, types.get(core))], source="perf.data")
    except TopologyError as exc:
        raise TopologyError(f"{path}: HYBRID_TOPOLOGY feature is inconsistent ({exc})") from None
    return None


def _single_core_pmu(features: Features) -> str | None:
    core = [n for n in features.pmu_mappings.values() if n.startswith(_CORE_PREFIXES)]
    return core[0] if len(core) == 1 else None


def _pmu_map(features: Features, topology: Topology | None) -> PmuMap:
    by_cpu: dict[int, str] = {}
    if topology is not None and features.hybrid_topology:
        by_cpu = {c: p.name for p in topology.pmus for c in p.cpus}
    return PmuMap(dict(features.pmu_mappings), by_cpu, _single_core_pmu(features))


def _tables(
    d: Decoded,
    td: TraceDat | None,
    names: list[str],
    pmus: PmuMap,
    skips: SkipLog,
    writer: CaptureWriter | None,
) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    idx, raw_at, raw_size, event_id = tracepoint_samples(d, skips)
    if len(idx) and td is None:
        skips.add(
            "tracepoint sample in a file without tracing data (no event formats to decode it)",
            [f"seq {q}" for q in d.seq[idx[:5]].tolist()],
            count=len(idx),
        )
    elif len(idx) and td is not None:
        cpu = d.cpu[idx].astype(np.int16)
        tables.update(
            tracepoint_tables(
                td, d.stream.data, raw_at, raw_size, event_id, d.ts[idx], cpu, d.seq[idx], skips
            )
        )
        if writer is not None:
            for name, table in tables.items():
                writer.append(name, table)
    tables["pmu_samples"] = pmu_samples(d, names, pmus)
    tables["pmu_counts"] = pmu_counts(d, names, pmus)
    tables["perf_switches"] = switches(d, skips)
    tables["perf_task_events"] = task_events(d)
    tables["tasks"] = _tasks(tables, td)
    return tables


def _tasks(tables: dict[str, pa.Table], td: TraceDat | None) -> pa.Table:
    """Names from typed tables, COMM records and saved cmdlines, folded per (pid, comm)."""
    parts = table_spans(tables)
    events = tables.get("perf_task_events")
    if events is not None and events.num_rows:
        kind = cast(events.column("kind"), pa.string())
        named = filter_rows(events, is_in(kind, pa.array(["comm", "exec"], pa.string())))
        parts.append(sightings(named, "tid", "comm", "perf COMM", tgid="pid"))
    if td is not None and td.cmdlines:
        parts.append(cmdline_spans(td.cmdlines))
    return conform("tasks", name_spans(parts))


def _metadata(
    path: Path,
    pf: PerfFile,
    features: Features,
    d: Decoded,
    td: TraceDat | None,
    tables: dict[str, pa.Table],
    skips: SkipLog,
    pmus: PmuMap,
    unplaced: int,
) -> CaptureMetadata:
    stream = d.stream
    # bincount, not np.unique: no sort of millions of record types
    small = stream.type < 128
    tally = np.bincount(stream.type[small].astype(np.int64), minlength=128)
    kinds, counts = np.unique(stream.type[~small], return_counts=True)
    pairs = [(k, int(c)) for k, c in enumerate(tally.tolist()) if c]
    pairs += [(int(k), int(c)) for k, c in zip(kinds, counts, strict=True)]
    records = {RECORD_NAMES.get(k, f"type {k}"): c for k, c in pairs}
    first_ts, last_ts, outliers = _time_range(d, tables)
    attr0 = pf.attrs[0] if pf.attrs else None
    clock = "perf"
    if attr0 is not None and attr0.flag("use_clockid"):
        clock = CLOCK_NAMES.get(attr0.clockid, f"clockid {attr0.clockid}")
    simpleperf = any(b >= 128 for b in pf.features) or _embedded_tracing(pf)
    extra: dict[str, Any] = {
        "dialect": "simpleperf" if simpleperf else "linux-perf",
        "pipe_mode": pf.pipe,
        "big_endian": pf.big_endian,
        "attrs": [a.describe(pmus.of_attr(a)) for a in pf.attrs],
        "features": sorted(FEATURES.get(b, str(b)) for b in pf.features),
        "records": records,
        "tracing_data": None
        if td is None
        else {"long_size": td.long_size, "page_size": td.page_size, "formats": len(td.formats)},
        "lost_without_cpu": unplaced or None,
        "samples_without_time": int(np.count_nonzero(d.ts[stream.type == 9] <= 0)) or None,
        "time_outliers": outliers,
        **features.to_json(),
    }
    return CaptureMetadata(
        source_path=str(path),
        source_sha256="",
        format="perf.data",
        importer="importers.perf.data:read_perf_data",
        clock=clock,
        ts_unit="ns",
        ts_resolution_ns=1,
        cpu_count=features.nr_cpus_available,
        first_ts=first_ts,
        last_ts=last_ts,
        skipped=skips.to_json(),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def _time_range(
    d: Decoded, tables: dict[str, pa.Table]
) -> tuple[int | None, int | None, dict[str, Any] | None]:
    """The capture's time range, from the records it replays (samples and switch records),
    and the records timed far outside it.

    Side records (MMAP, COMM, ...) do not set the range: simpleperf has written an MMAP2 whose
    time made a 0.1 s recording span 682,717 s. A record more than the range's own length,
    and at least an hour, outside it is an outlier, counted per record type with the extreme
    times; records merely outside it (the EXITs when a recording ends a second after its
    last sample) are not.
    """
    timed = d.ts > 0
    replayed = [
        drop_null(t.column("ts")).to_numpy()
        for name, t in tables.items()
        if t.num_rows and (name in TYPED_TABLES or name == "perf_switches")
    ]
    values = np.concatenate(replayed) if replayed else np.zeros(0, np.int64)
    values = values[values > 0]
    if not values.size:
        all_ts = d.ts[timed]
        return (int(all_ts.min()), int(all_ts.max()), None) if all_ts.size else (None, None, None)
    first, last = int(values.min()), int(values.max())
    margin = max(last - first, 3600 * 1_000_000_000)
    far = timed & ((d.ts < first - margin) | (d.ts > last + margin))
    if not far.any():
        return first, last, None
    kinds, counts = np.unique(d.stream.type[far], return_counts=True)
    return first, last, {
        "records": {RECORD_NAMES.get(int(k), f"type {k}"): int(c)
                    for k, c in zip(kinds, counts, strict=True)},
        "earliest": int(d.ts[far].min()),
        "latest": int(d.ts[far].max()),
    }  # fmt: skip


def _embedded_tracing(pf: PerfFile) -> bool:
    sec = pf.tracing_data
    return (
        sec is not None
        and pf.data.offset <= sec.offset < pf.data.offset + pf.data.size
        and (not pf.pipe and 1 not in pf.features)
    )


__all__ = ["event_names", "read_perf_data"]
