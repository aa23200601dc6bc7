"""``Capture``: the canonical tables of one imported capture, plus typed metadata.

A saved capture is a directory with one Parquet file per non-empty table, named after the table
(``sched_switch.parquet``, ``events.parquet``, ...), and ``metadata.json``. Users can open any
table directly with ``polars.read_parquet``; :meth:`Capture.load` gives back exactly what
:meth:`Capture.save` wrote. An importer can also write its large tables while it decodes them
(:mod:`importers.capture_writer`): the same files, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from importers.arrow_compute import value_counts
from importers.errors import CaptureFormatError
from importers.host.topology import check_one_row_per_cpu
from importers.output import whole_directory
from importers.parquet_files import write_table
from importers.schema import (
    FEW_VALUES,
    SCHEMA_VERSION,
    TABLES,
    TYPED_TABLES,
    conform,
    empty_table,
)

if TYPE_CHECKING:
    import polars as pl

METADATA_FILE = "metadata.json"
#: rows per Parquet row group (pyarrow's default, fixed here so that a table written a part at
#: a time by :class:`importers.capture_writer.CaptureWriter` is cut where a whole one is)
ROW_GROUP_ROWS = 1 << 20


@dataclass
class CaptureMetadata:
    """What is known about a capture as a whole.

    ``ts_unit`` is ``"ns"`` unless the capture clock is a raw counter (``trace_clock=counter``,
    ``x86-tsc`` without a conversion), in which case ``ts`` holds raw clock units.
    ``ts_resolution_ns`` is 1 for binary sources and 1000 for text that prints microseconds.
    ``skipped`` maps a skip reason to ``{"count": n, "first": [locations]}``.
    ``extra`` holds format-specific facts (kernel release, tracer, trace-cmd version, ...).
    """

    source_path: str
    source_sha256: str
    format: str
    importer: str
    clock: str | None = None
    ts_unit: str = "ns"
    ts_resolution_ns: int | None = None
    cpu_count: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    schema_version: int = SCHEMA_VERSION
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaptureMetadata:
        return cls(**data)


@dataclass
class StreamedTable:
    """A table written to the capture's directory a part at a time while it was imported
    (:class:`importers.capture_writer.CaptureWriter`) and not kept in memory: where it will be
    once the directory is complete, its rows, and its rows per ``event`` name."""

    path: Path
    rows: int = 0
    event_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Capture:
    """Tables by name (canonical schemas of :mod:`importers.schema`) and metadata; tables an
    import wrote as it went are in ``streamed`` instead of ``tables``."""

    metadata: CaptureMetadata
    tables: dict[str, pa.Table] = field(default_factory=dict)
    streamed: dict[str, StreamedTable] = field(default_factory=dict)

    def table(self, name: str) -> pa.Table:
        """The table ``name``, or an empty one with its schema when the capture has none (a
        streamed table is read back from its file)."""
        if name not in TABLES:
            raise KeyError(f"no table called {name!r}; known: {', '.join(sorted(TABLES))}")
        if name in self.streamed:
            import pyarrow.parquet as pq  # reading: see importers.parquet_files

            return conform(name, pq.read_table(self.streamed[name].path))
        return self.tables.get(name, empty_table(name))

    def frame(self, name: str) -> pl.DataFrame:
        """The table ``name`` as a polars DataFrame (dictionary strings become Categorical)."""
        import polars as pl  # loaded by the first caller that wants frames (not by `import`)

        df = pl.from_arrow(self.table(name))
        assert isinstance(df, pl.DataFrame)
        return df

    def event_counts(self) -> dict[str, int]:
        """Number of records per event name, over the typed tables and the ``events`` table.

        PMU samples count per event (``pmu_samples:cycles``); perf stat values are not events.
        """
        counts: dict[str, int] = {}
        for name in TYPED_TABLES:
            if name in ("pmu_samples", "pmu_counts"):
                continue
            n = self.streamed[name].rows if name in self.streamed else self.table(name).num_rows
            if n:
                counts[name] = n
        for table, prefix in (("events", ""), ("pmu_samples", "pmu_samples:")):
            named = (
                self.streamed[table].event_counts
                if table in self.streamed
                else count_event_names(self.table(table))
            )
            for event, n in named.items():
                counts[f"{prefix}{event}"] = counts.get(f"{prefix}{event}", 0) + n
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def save(self, directory: str | Path) -> Path:
        """Write one Parquet file per non-empty table plus ``metadata.json`` as ``directory``.

        The directory is whole or absent (:func:`importers.output.whole_directory`): it is
        written beside its name and renamed into place, replacing an earlier saved capture as
        a whole, so it always describes exactly one capture, even after a failed or
        interrupted save. Metadata is written last.
        """
        with whole_directory(directory, METADATA_FILE) as out:
            tables = {**{name: self.table(name) for name in self.streamed}, **self.tables}
            write_tables(out, tables, self.metadata)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Capture:
        """Read a directory written by :meth:`save`."""
        import pyarrow.parquet as pq  # reading: see importers.parquet_files

        src = Path(directory)
        meta_path = src / METADATA_FILE
        try:
            meta = CaptureMetadata.from_json(json.loads(meta_path.read_text()))
        except FileNotFoundError:
            raise CaptureFormatError(
                f"{src}: not a saved capture (no {METADATA_FILE}); "
                "create one with `pmu-replay import CAPTURE -o DIR`"
            ) from None
        except (ValueError, TypeError) as exc:
            raise CaptureFormatError(f"{meta_path}: unreadable capture metadata ({exc})") from None
        if meta.schema_version != SCHEMA_VERSION:
            raise CaptureFormatError(
                f"{meta_path}: schema version {meta.schema_version}, this pmu-replay reads "
                f"{SCHEMA_VERSION}; import the original capture again"
            )
        tables: dict[str, pa.Table] = {}
        for name in TABLES:
            path = src / f"{name}.parquet"
            if path.exists():
                try:
                    tables[name] = conform(name, pq.read_table(path))
                except (pa.ArrowException, ValueError) as exc:
                    raise CaptureFormatError(f"{path}: unreadable table ({exc})") from None
        if "topology" in tables:
            # a table other tools write too: rows that disagree about a CPU are named here,
            # where the file is known, rather than when the replay rebuilds the topology
            check_one_row_per_cpu(tables["topology"], str(src / "topology.parquet"))
        return cls(metadata=meta, tables=tables)


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (captures can be many GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def count_event_names(table: pa.Table) -> dict[str, int]:
    """Rows of ``table`` per value of its ``event`` column.

    Counted per chunk on the dictionary codes: decoding millions of names only to count them
    cost a second on a large Perfetto trace.
    """
    counts: dict[str, int] = {}
    for chunk in table.column("event").chunks:
        for item in value_counts(chunk).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def write_tables(out: Path, tables: dict[str, pa.Table], metadata: CaptureMetadata) -> None:
    """The non-empty ``tables`` as Parquet files in ``out``, then ``metadata.json``."""
    writes = [
        (out / f"{name}.parquet", conform(name, table))
        for name in TABLES
        if (table := tables.get(name)) is not None and table.num_rows
    ]
    # pyarrow releases the GIL while encoding: tables are written side by side.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: _write_parquet(job[1], job[0]), writes))
    meta = json.dumps(metadata.to_json(), indent=2, sort_keys=True)
    (out / METADATA_FILE).write_text(meta + "\n")


def _write_parquet(table: pa.Table, path: Path) -> None:
    """One table as zstd Parquet (see :func:`parquet_options`)."""
    write_table(table, path, row_group_size=ROW_GROUP_ROWS, **parquet_options(table.schema))


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """``pyarrow.parquet`` writer options for a table of ``schema``: zstd, with encodings
    chosen for event tables.

    ``ts`` and ``seq`` ascend almost everywhere: delta encoding stores them in a few bits a
    row. Parquet dictionaries are kept for the dictionary-typed (string) columns only; on the
    integer columns they cost time and saved nothing. For a 4.4M-row sched_switch this writes
    in 0.5 s instead of 0.9 s and 5.8 MB instead of 20.6 MB. Min/max statistics are kept
    for the numeric columns, which readers filter on (``ts``, ``cpu``, pids); on the string
    columns they took a quarter of the write time and no reader uses them. Integer columns
    the schema marks :data:`~importers.schema.FEW_VALUES` (``prev_state``, a bit set) are
    dictionaries too: a fifth of the write time of plain int64 and half the bytes.
    """
    deltas = {
        c: "DELTA_BINARY_PACKED"
        for c in ("ts", "seq")
        if c in schema.names and pa.types.is_integer(schema.field(c).type)
    }
    strings = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    numbers = [f.name for f in schema if f.name not in strings]
    few = [f.name for f in schema if FEW_VALUES in (f.metadata or {})]
    return {
        "compression": "zstd",
        "use_dictionary": strings + few,
        "column_encoding": deltas or None,
        "write_statistics": numbers,
    }
