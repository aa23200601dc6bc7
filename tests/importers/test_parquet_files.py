"""``importers.parquet_files`` writes the files ``pyarrow.parquet`` writes, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importers.capture import parquet_options
from importers.detect import load
from importers.parquet_files import ParquetFileWriter, write_table


@pytest.fixture(scope="module")
def tables(shared_traces: Path) -> dict[str, pa.Table]:
    """Every table of a real capture: strings as dictionaries, delta-encoded ts, statistics."""
    capture = load(shared_traces / "juno-sched-load" / "trace.dat")
    return {name: table for name, table in capture.tables.items() if table.num_rows}


def test_whole_tables_are_written_as_pyarrow_parquet_writes_them(
    tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    assert {"sched_switch", "events", "tasks"} <= set(tables)
    for name, table in tables.items():
        options = parquet_options(table.schema)
        ours, theirs = tmp_path / f"ours-{name}", tmp_path / f"theirs-{name}"
        # small row groups: the footer lists several, each with its own statistics
        write_table(table, ours, row_group_size=100, **options)
        pq.write_table(table, theirs, row_group_size=100, **options)
        assert ours.read_bytes() == theirs.read_bytes(), name
        assert pq.read_table(ours).equals(table)


def test_types_whose_encoding_depends_on_the_format_version(tmp_path: Path) -> None:
    """Parquet 2.6 (pyarrow's default) keeps unsigned 32-bit and nanosecond types that 2.4
    would widen or coarsen: the version passed on must be pyarrow's."""
    table = pa.table(
        {
            "u32": pa.array([1, 2**32 - 1], pa.uint32()),
            "ns": pa.array([1, 2], pa.timestamp("ns")),
            "name": pa.array(["a", None]).dictionary_encode(),
        }
    )
    write_table(table, tmp_path / "ours")
    pq.write_table(table, tmp_path / "theirs")
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes()
    assert pq.read_table(tmp_path / "ours").schema.equals(table.schema)


def test_a_table_written_a_part_at_a_time(tables: dict[str, pa.Table], tmp_path: Path) -> None:
    table = tables["sched_switch"]
    options = parquet_options(table.schema)
    ours = ParquetFileWriter(tmp_path / "ours", table.schema, **options)
    groups = 0
    with pq.ParquetWriter(tmp_path / "theirs", table.schema, **options) as theirs:
        for start in range(0, table.num_rows, 150):
            part = table.slice(start, 150)
            ours.write_table(part, row_group_size=100)
            theirs.write_table(part, row_group_size=100)
            groups += -(-part.num_rows // 100)
    ours.close()
    ours.close()  # a second close does nothing
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes()
    assert pq.ParquetFile(tmp_path / "ours").num_row_groups == groups > 2


def test_a_table_of_another_schema_is_refused(tables: dict[str, pa.Table], tmp_path: Path) -> None:
    writer = ParquetFileWriter(tmp_path / "f", tables["tasks"].schema)
    with pytest.raises(ValueError, match="is not the file's"):
        writer.write_table(tables["sched_switch"])
    writer.close()


def test_a_file_left_unfinished_by_an_error_is_removed(
    tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    path = tmp_path / "f.parquet"
    with pytest.raises(pa.ArrowException):
        write_table(tables["tasks"], path, compression="no-such-codec")
    assert not path.exists()
    with pytest.raises(ValueError, match="Row group size"):
        write_table(tables["tasks"], path, row_group_size=0)
    assert not path.exists()
