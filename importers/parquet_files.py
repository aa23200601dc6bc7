"""Parquet files written without ``pyarrow.parquet``'s filesystem layer.

``pyarrow.parquet`` imports ``pyarrow.fs``, which loads the S3, GCS, HDFS and Azure
filesystems' libraries: 14 MiB of resident memory and a few tens of ms in every ``import``,
whose files are only ever local. Its ``ParquetWriter`` is a thin layer over
``pyarrow._parquet.ParquetWriter``: it resolves the path to a filesystem's output stream and
passes its own defaults on. Here the path is opened as a local ``OSFile`` and those defaults
are passed the same way, so the files are the same byte for byte
(``tests/importers/test_parquet_files.py`` holds them equal to ``pyarrow.parquet``'s).
Reading stays with ``pyarrow.parquet``: the commands that read captures load it anyway.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow._parquet as _parquet

#: what ``pyarrow.parquet.ParquetWriter`` passes unless told otherwise, where
#: ``pyarrow._parquet``'s own default differs: the format version, the writer engine it fixes,
#: the codec
_WRITER_DEFAULTS = {"version": "2.6", "writer_engine_version": "V2", "compression": "snappy"}


class ParquetFileWriter:
    """A Parquet file at ``path`` written a row group at a time, as
    ``pyarrow.parquet.ParquetWriter(path, schema, **options)`` writes it."""

    def __init__(self, path: str | Path, schema: pa.Schema, **options: Any) -> None:
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        try:
            self._writer = _parquet.ParquetWriter(
                self._sink, schema, **{**_WRITER_DEFAULTS, **options}
            )
        except BaseException:
            self._sink.close()
            raise

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        """Append ``table`` (of this file's schema) in row groups of ``row_group_size``."""
        if not table.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"table schema {table.schema} is not the file's {self.schema}")
        self._writer.write_table(table, row_group_size=row_group_size)

    def close(self) -> None:
        """Write the footer and close the file (once)."""
        if not self._sink.closed:
            try:
                self._writer.close()
            finally:
                self._sink.close()


def write_table(
    table: pa.Table, path: str | Path, row_group_size: int | None = None, **options: Any
) -> None:
    """``table`` as one Parquet file, as ``pyarrow.parquet.write_table`` writes it; a file
    left unfinished by an error is removed."""
    try:
        writer = ParquetFileWriter(path, table.schema, **options)
        try:
            writer.write_table(table, row_group_size=row_group_size)
        finally:
            writer.close()
    except BaseException:
        with suppress(OSError):
            Path(path).unlink()
        raise
