"""A trace.dat whose file ends before some CPU's data does: which CPUs, and their marker rows.

``head -c`` of a capture, an interrupted copy or a full disk leave the CPU data sections that
lie past the cut absent or short. The reader walks what is there and counts the rest as a skip;
:func:`truncation_markers` also puts one ``lost_events`` row of kind ``truncated`` per such CPU
after every record, so replay reports the CPU's time from its last decoded record to the end of
the capture as unknown, naming the truncation (``replay.unseen``).
"""

from __future__ import annotations

import pyarrow as pa

from importers.arrow_compute import maximum
from importers.schema import SIDE_TABLES, constant_column
from importers.tracedat.file import CpuStream, TraceDat


def cut_off(stream: CpuStream, file_size: int) -> bool:
    """The file ends before this CPU's data does (a truncated file)."""
    return stream.offset + stream.size > file_size


def pages_cut_off(stream: CpuStream, file_size: int, page_size: int) -> bool:
    """Whole ring-buffer pages of this CPU lie past the end of the file: records are missing.

    A cut inside the CPU's last page may take only its unused tail (the page's commit says
    how much it holds; a commit past the cut is counted as a damaged page instead).
    """
    kept = max(0, file_size - stream.offset)
    first_missing = stream.offset + -(-kept // page_size) * page_size
    return first_missing < stream.offset + stream.size


def truncation_markers(td: TraceDat, tables: dict[str, pa.Table]) -> pa.Table:
    """A ``lost_events`` row of kind ``truncated`` per CPU whose pages the file cuts off.

    It comes after every record (no ``ts``: its gap runs from the CPU's last decoded record
    to the end of the capture), so replay reports that time as unknown, naming the truncation.
    """
    cpus = {
        stream.cpu
        for inst in td.instances
        if not inst.compressed  # a cut-off compressed stream fails to inflate instead
        for stream in inst.cpus
        if pages_cut_off(stream, td.reader.size, inst.page_size)
    }
    return markers_after(tables, cpus, "truncated")


def markers_after(tables: dict[str, pa.Table], cpu_set: set[int], kind: str) -> pa.Table:
    """``lost_events`` rows of ``kind``, one per CPU of ``cpu_set``, numbered after every
    ``seq`` of ``tables`` and with no ``ts`` (no record follows them): each CPU's time from
    its last decoded record (or the start) to the end of the capture is unknown."""
    cpus = sorted(cpu_set)
    last = [maximum(t["seq"]).as_py() for t in tables.values() if "seq" in t.column_names]
    after = max((s for s in last if s is not None), default=-1) + 1
    return pa.table(
        {
            "ts": pa.nulls(len(cpus), pa.int64()),
            "seq": pa.array(range(after, after + len(cpus)), pa.int64()),
            "cpu": pa.array(cpus, pa.int16()),
            "count": pa.nulls(len(cpus), pa.int64()),
            "kind": constant_column(kind, len(cpus)),
        },
        schema=SIDE_TABLES["lost_events"],
    )
