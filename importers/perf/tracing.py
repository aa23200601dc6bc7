"""Tracepoint samples: the TRACING_DATA blob and the RAW payloads it decodes.

TRACING_DATA is the metadata prefix of a trace.dat v6 file with version ``0.6`` (perf) or
``0.5`` (simpleperf, no saved cmdlines) and no options or CPU data (formats.md §4.5, perf's
``trace_report``). It is read with the trace.dat container's own section readers, and the RAW
payload of each tracepoint sample (the ftrace entry, common fields first) goes through the
trace.dat record decoder (:func:`importers.tracedat.events.records_to_tables`), so perf and
trace-cmd captures yield the same typed tables for the same kernel events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perf.file import PerfReader, Section
from importers.skips import SkipLog
from importers.tracedat.events import records_to_tables
from importers.tracedat.file import TraceDat, read_prefix, read_v6_metadata
from importers.tracedat.pages import Records
from importers.tracedat.ringbuffer import MISSED_NONE


def read_tracing_data(r: PerfReader, sec: Section) -> TraceDat:
    """Parse the tracing-data blob at ``sec`` of the file behind ``r``.

    Offsets in error messages are relative to the blob, whose file offset the path names.
    """
    blob = PerfReader(
        Path(f"{r.path}[tracing data @{sec.offset:#x}]"), r.bytes_at(sec.offset, sec.size)
    )
    blob.section = "tracing data header"
    prefix = read_prefix(blob)
    if prefix.version not in ("0.5", "0.6"):
        raise blob.fail(
            10, f"tracing data version {prefix.version!r}; perf writes 0.6, simpleperf 0.5"
        )
    td = TraceDat(blob, 6, prefix.long_size, prefix.page_size)
    read_v6_metadata(td, prefix.end, cmdlines=prefix.version == "0.6")
    return td


def tracepoint_names(td: TraceDat | None) -> dict[int, str]:
    """``system:name`` of every event id the tracing data describes."""
    if td is None:
        return {}
    return {f.id: f"{f.system}:{f.name}" for f in reversed(td.formats)}


def tracepoint_tables(
    td: TraceDat,
    data: NDArray[np.uint8],
    raw_at: NDArray[np.int64],
    raw_size: NDArray[np.int64],
    event_id: NDArray[np.int64],
    ts: NDArray[np.int64],
    cpu: NDArray[np.int16],
    seq: NDArray[np.int64],
    skips: SkipLog,
) -> dict[str, pa.Table]:
    """Typed tables and ``events`` rows of tracepoint samples given in delivery order.

    ``event_id`` is the attr's ``config`` (perf decodes each sample with its evsel's format,
    not with the ``common_type`` inside the payload). ``seq`` is each sample's capture-wide
    position; the decoder numbers its input 0..n-1, which is mapped back here.
    """
    too_big = event_id >= 1 << 16
    if too_big.any():
        skips.add(
            "tracepoint sample whose event id is not a 16-bit ftrace id",
            [f"seq {s}" for s in seq[too_big][:5].tolist()],
            count=int(too_big.sum()),
        )
    keep = ~too_big
    records = Records(
        ts[keep],
        raw_at[keep],
        raw_size[keep].astype(np.int32),
        np.arange(int(keep.sum()), dtype=np.int32),
        event_id[keep].astype(np.uint16),
    )
    m = len(records.ts)
    tables = records_to_tables(
        td,
        data,
        records,
        cpu[keep],
        np.zeros(m, np.int64),
        np.full(m, MISSED_NONE, np.int64),
        skips,
    )
    tables.pop("lost_events", None)
    global_seq = seq[keep]
    out: dict[str, pa.Table] = {}
    for name, table in tables.items():
        local = table.column("seq").to_numpy()
        column = table.schema.get_field_index("seq")
        out[name] = table.set_column(
            column, table.schema.field(column), pa.array(global_seq[local], pa.int64())
        )
    return out
