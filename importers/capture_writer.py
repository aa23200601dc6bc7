"""A capture saved while it is imported: large tables written a row group at a time.

``Capture.save`` writes tables the importer has finished, so every decoded row is held until
the end and the Parquet encoding starts only after the decoding. An importer that decodes a
trace a part at a time (:mod:`importers.perfetto.read`) hands each part of a large table to a
:class:`CaptureWriter` instead: whole row groups are encoded on a writer thread (pyarrow
releases the GIL while encoding) while the next part is decoded, and the part is dropped.

The files are those ``Capture.save`` writes for the same table, byte for byte: the same
options (:func:`importers.capture.parquet_options`), row groups cut every
:data:`~importers.capture.ROW_GROUP_ROWS` rows, and each row group given the same pieces of
the same Arrow chunks (the Parquet writer's dictionary pages depend on how a row group's
rows are chunked).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow as pa

from importers.capture import (
    METADATA_FILE,
    ROW_GROUP_ROWS,
    Capture,
    StreamedTable,
    count_event_names,
    parquet_options,
    write_tables,
)
from importers.output import whole_directory
from importers.parquet_files import ParquetFileWriter
from importers.schema import TABLES, conform


class _Stream:
    """One table's file: parts buffered up to a row group, row groups written in order."""

    def __init__(self, name: str, path: Path, streamed: StreamedTable) -> None:
        self.name = name
        self.path = path
        self.streamed = streamed
        self.writer: ParquetFileWriter | None = None
        self.buffered: list[pa.Table] = []
        self.buffered_rows = 0
        #: the row group being written; at most one, so memory stays bounded when the
        #: decoding runs ahead of the encoding
        self.writing: Future[None] | None = None

    def append(self, part: pa.Table, pool: ThreadPoolExecutor) -> None:
        self.buffered.append(part)
        self.buffered_rows += part.num_rows
        while self.buffered_rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self.buffered)  # no copy: the parts' chunks, sliced below
            self._write(whole.slice(0, ROW_GROUP_ROWS), pool)
            rest = whole.slice(ROW_GROUP_ROWS)
            self.buffered, self.buffered_rows = [rest] if rest.num_rows else [], rest.num_rows

    def close(self, pool: ThreadPoolExecutor) -> None:
        """Write the last (short) row group and the file's footer."""
        if self.buffered_rows:
            self._write(pa.concat_tables(self.buffered), pool)
            self.buffered, self.buffered_rows = [], 0
        self.wait()
        if self.writer is not None:
            self.writer.close()

    def abandon(self) -> None:
        """Stop after the row group being written (the file is removed with the directory)."""
        self.buffered = []
        with suppress(pa.ArrowException, OSError):
            self.wait()
        if self.writer is not None:
            with suppress(pa.ArrowException, OSError):
                self.writer.close()

    def wait(self) -> None:
        """Until the row group being written is written (its error raised here)."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()

    def _write(self, group: pa.Table, pool: ThreadPoolExecutor) -> None:
        self.wait()
        if self.writer is None:
            schema = TABLES[self.name]
            self.writer = ParquetFileWriter(self.path, schema, **parquet_options(schema))
        writer = self.writer
        self.writing = pool.submit(writer.write_table, group, row_group_size=ROW_GROUP_ROWS)


class CaptureWriter:
    """Fills the directory of a capture being saved (see :func:`saving`): tables streamed a
    part at a time by :meth:`append`, the rest by :meth:`finish`.

    Parameters
    ----------
    out
        The directory being filled (a temporary sibling of ``target``).
    target
        Where the directory will be once complete (``StreamedTable.path`` points there).
    """

    def __init__(self, out: Path, target: Path) -> None:
        self.out = out
        self.target = target
        self.streamed: dict[str, StreamedTable] = {}
        self._streams: dict[str, _Stream] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self.finished = False

    def append(self, name: str, part: pa.Table) -> None:
        """Append ``part`` (rows in their final order) to table ``name``.

        Returns once the part is buffered; raises the error of an earlier row group's write.
        """
        part = conform(name, part)
        if not part.num_rows:
            return
        stream = self._streams.get(name)
        if stream is None:
            file = f"{name}.parquet"
            streamed = self.streamed[name] = StreamedTable(self.target / file)
            stream = self._streams[name] = _Stream(name, self.out / file, streamed)
        stream.streamed.rows += part.num_rows
        if "event" in part.column_names:
            counts = stream.streamed.event_counts
            for event, n in count_event_names(part).items():
                counts[event] = counts.get(event, 0) + n
        stream.append(part, self._pool)

    def finish(self, capture: Capture) -> None:
        """Close the streamed tables, then write ``capture``'s other tables and its metadata
        (last, as ``Capture.save`` does).

        A streamed table the importer also kept in ``capture.tables`` (for the steps after
        the import) is not written again; the streamed tables it did not keep are added to
        ``capture.streamed``.

        Raises
        ------
        ValueError
            When a table kept in memory has other rows than were streamed (changed after).
        """
        try:
            for stream in self._streams.values():
                stream.close(self._pool)
        finally:
            self._pool.shutdown(wait=True)
        for name, streamed in self.streamed.items():
            kept = capture.tables.get(name)
            if kept is None:
                capture.streamed[name] = streamed
            elif kept.num_rows != streamed.rows:
                raise ValueError(
                    f"table {name}: {kept.num_rows} rows in memory, {streamed.rows} written"
                )
        rest = {name: t for name, t in capture.tables.items() if name not in self.streamed}
        write_tables(self.out, rest, capture.metadata)
        self.finished = True

    def abort(self) -> None:
        """Stop writing (the import failed): the writer thread ends before the directory is
        removed."""
        for stream in self._streams.values():
            stream.abandon()
        self._pool.shutdown(wait=True)


@contextmanager
def saving(target: str | Path) -> Iterator[CaptureWriter]:
    """A :class:`CaptureWriter` for the capture directory ``target``, which is whole or
    absent as with ``Capture.save`` (:func:`importers.output.whole_directory`): it replaces
    ``target`` only when :meth:`CaptureWriter.finish` ran and the block ended without error.

    Raises
    ------
    RuntimeError
        When the block ends without :meth:`CaptureWriter.finish` (nothing is written).
    """
    with whole_directory(target, METADATA_FILE) as out:
        writer = CaptureWriter(out, Path(target).absolute())
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        if not writer.finished:
            writer.abort()
            raise RuntimeError(f"{target}: capture not finished; nothing written")
