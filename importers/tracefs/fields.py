"""Vectorised decoding of event fields from record payloads, driven by :class:`FormatField`.

All records of one event type share a layout, so each fixed field is one fancy-index gather
into an ``(n, size)`` byte matrix viewed as the field's dtype (formats.md §3.7 step 5); there is
no Python object per record. Strings become Arrow dictionary arrays: the raw bytes are
hash-encoded by Arrow, and only the (few) distinct values are cleaned up in Python.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import cast, dictionary_encode, fill_null, is_null
from importers.byte_loops import compiled
from importers.schema import DICT
from importers.tracefs.event_format import FormatField


def gather_bytes(
    data: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Concatenate ``data[starts[i]:starts[i]+lengths[i]]``; return bytes and Arrow offsets."""
    lengths = np.asarray(lengths, np.int64)
    if compiled(int(lengths.sum())):
        from importers.tracefs import fields_jit

        return fields_jit.gather_bytes(data, starts, lengths)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(offsets[-1], np.uint8)
    # a block of rows at a time: the positions (8 bytes per byte gathered) stay small
    first = np.searchsorted(offsets, np.arange(0, offsets[-1], _BLOCK), side="right") - 1
    bounds = [*first.tolist(), len(lengths)]
    for a, b in itertools.pairwise(bounds):
        where = np.repeat(starts[a:b] - offsets[a:b], lengths[a:b])
        where += np.arange(offsets[a], offsets[b], dtype=np.int64)
        out[offsets[a] : offsets[b]] = data[where]
    return out, offsets


#: bytes gathered per block of rows by the numpy gather_bytes
_BLOCK = 1 << 20


@dataclass(frozen=True)
class StrideRuns:
    """Rows that lie in long runs at one constant stride, as perf's samples of one event do.

    perf copies each CPU's ring buffer into the file a chunk at a time, so a capture of one
    fixed-size sample (``perf record -e sched:sched_switch``) is a few runs of records at the
    sample's size apart, broken only where another record or chunk intervenes. A field of
    such rows is read as one strided view per run: one memory pass at the field's own width,
    instead of a fancy-index gather of every row (2-5x faster, and no compiled kernel).
    """

    stride: int
    #: index of the first row of each run, then the number of rows
    bounds: list[int]


#: the fewest rows per run, on average, for which runs are read as strided views; below it a
#: Python step per run costs more than the gather it saves
MIN_ROWS_PER_RUN = 1024


def stride_runs(rows: NDArray[np.int64]) -> StrideRuns | None:
    """The runs of ``rows`` at their common stride, or ``None`` when they are too scattered.

    A probe of 64 evenly spaced steps rejects scattered rows (the interleaved record types of
    a trace.dat page) without a pass over them all.
    """
    n = rows.shape[0]
    if n < max(2, MIN_ROWS_PER_RUN):
        return None
    probe = np.linspace(0, n - 2, 64).astype(np.int64)
    steps = rows[probe + 1] - rows[probe]
    stride = int(np.median(steps))
    if stride <= 0 or np.count_nonzero(steps == stride) < 48:
        return None
    breaks = np.flatnonzero(np.diff(rows) != stride) + 1
    if (breaks.shape[0] + 1) * MIN_ROWS_PER_RUN > n:
        return None
    return StrideRuns(stride, [0, *breaks.tolist(), n])


def _strided(
    data: NDArray[np.uint8],
    rows: NDArray[np.int64],
    runs: StrideRuns,
    dtype: np.dtype[Any],
    out: NDArray[Any],
) -> NDArray[Any]:
    """``out[i] = `` the ``dtype`` value at ``data[rows[i]:]``, one strided view per run."""
    for a, b in itertools.pairwise(runs.bounds):
        out[a:b] = np.ndarray(
            (b - a,), dtype, buffer=data, offset=int(rows[a]), strides=(runs.stride,)
        )
    return out


def _inside(data: NDArray[np.uint8], rows: NDArray[np.int64], width: int) -> bool:
    """Whether every row's ``width`` bytes lie in ``data``."""
    return bool(rows.shape[0]) and rows.min() >= 0 and rows.max() + width <= data.shape[0]


def gather_matrix(
    data: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    start: int,
    width: int,
    runs: StrideRuns | None = None,
) -> NDArray[np.uint8]:
    """``(n, width)`` bytes at ``offsets[i] + start``; rows past the buffer end read as zeros.

    ``runs`` are the offsets' :func:`stride_runs`, when the caller has them. Compiled, aligned
    rows (ring-buffer records are 4-byte aligned) are copied a 32-bit word at a time.
    """
    n = offsets.shape[0]
    if runs is not None and _inside(data, offsets + start, width):
        void = np.dtype(f"V{width}")
        rows = _strided(data, offsets + start, runs, void, np.empty(n, void))
        return rows.view(np.uint8).reshape(n, width)
    if compiled(n * width):
        from importers.tracefs import fields_jit

        words = data[: data.shape[0] // 4 * 4].view(np.uint32)
        padded = (width + 3) // 4 * 4
        out: NDArray[np.uint8] = fields_jit.gather_rows(data, words, offsets, start, width, padded)
        return out[:, :width] if padded != width else out
    rows = np.asarray(offsets, np.int64) + start
    inside = (rows >= 0) & (rows + width <= data.shape[0])
    if width == 0 or not inside.any():
        return np.zeros((n, width), np.uint8)
    item = np.dtype(f"V{width}")  # a row's bytes as one item: the gather copies it at once
    if inside.all():
        matrix = _items(data, item, 1)[rows]
    else:
        matrix = np.zeros(n, item)
        matrix[inside] = _items(data, item, 1)[rows[inside]]
    return matrix.view(np.uint8).reshape(n, width)


def _items(data: NDArray[np.uint8], dtype: np.dtype[Any], step: int) -> NDArray[Any]:
    """Every ``step``-th byte position of ``data`` as the start of a ``dtype`` item.

    A view that overlaps itself (nothing is copied): indexing it by ``position // step``
    reads each row's bytes as one item, which numpy copies whole. That is 2-4x faster than
    gathering a row a byte or a word at a time.
    """
    count = (data.shape[0] - dtype.itemsize) // step + 1
    return np.ndarray((max(count, 0),), dtype, buffer=data, strides=(step,))


def gather_uint(
    data: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    start: int,
    size: int,
    big: bool,
    runs: StrideRuns | None = None,
) -> NDArray[np.uint64]:
    """Unsigned ``size``-byte integers at ``offsets[i] + start`` (zero past the buffer end).

    ``runs`` are the offsets' :func:`stride_runs`, when the caller has them.
    """
    if runs is None and compiled(offsets.shape[0] * size):
        from importers.tracefs import fields_jit

        return fields_jit.gather_uint(data, offsets, start, size, big)
    if size in (1, 2, 4, 8):
        return gather_word(data, offsets, start, size, big, runs).astype(np.uint64)
    matrix = gather_matrix(data, offsets, start, size).astype(np.uint64)
    out = np.zeros(offsets.shape[0], np.uint64)
    for column in (matrix if big else matrix[:, ::-1]).T:  # most significant byte first
        out = (out << np.uint64(8)) | column
    return out


def gather_word(
    data: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    start: int,
    size: int,
    big: bool,
    runs: StrideRuns | None = None,
) -> NDArray[np.unsignedinteger[Any]]:
    """Unsigned ``size``-byte integers (1, 2, 4 or 8 bytes) at ``offsets[i] + start``, as
    native ``u{size}`` (zero past the buffer end).

    ``runs`` are the offsets' :func:`stride_runs`, when the caller has them.
    """
    n = offsets.shape[0]
    native = np.dtype(f"u{size}")
    if runs is None and compiled(n * size):
        return gather_uint(data, offsets, start, size, big).astype(native)
    word = np.dtype(f"{'>' if big else '<'}u{size}")
    rows = np.asarray(offsets, np.int64) + start
    if runs is not None and _inside(data, rows, size):
        return _strided(data, rows, runs, word, np.empty(n, native))
    inside = (rows >= 0) & (rows + size <= data.shape[0])
    if not inside.any():
        return np.zeros(n, native)
    # words aligned to their size (ring-buffer fields are) read as aligned items, faster
    step = 1 if (rows & (size - 1)).any() else size
    at = rows // step if step > 1 else rows
    items = _items(data, word, step)
    if inside.all():
        values: NDArray[np.unsignedinteger[Any]] = items[at].astype(native, copy=False)
        return values
    out = np.zeros(n, native)
    out[inside] = items[at[inside]]
    return out


def _cstr_lengths(
    data: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Length of each string up to its first NUL (``min(len, first NUL)``, formats.md §3.5)."""
    if compiled(int(lengths.sum())):
        from importers.tracefs import fields_jit

        return fields_jit.cstr_lengths(data, starts, lengths)
    text, offsets = gather_bytes(data, starts, lengths)
    nuls = np.flatnonzero(text == 0)
    first = np.searchsorted(nuls, offsets[:-1])  # the first NUL at or after each start
    found = np.append(nuls, offsets[-1])[first]
    return np.minimum(found - offsets[:-1], lengths)


class FieldGather:
    """Decode fields of ``n`` records whose payloads start at ``offsets`` in ``data``.

    ``lengths`` are the payload lengths; a dynamic (``__data_loc``) field pointing outside its
    record decodes as null rather than reading a neighbour's bytes. Each field is read straight
    from ``data``: no copy of the records is made.
    """

    def __init__(
        self,
        data: NDArray[np.uint8],
        offsets: NDArray[np.int64],
        lengths: NDArray[np.int64],
        big_endian: bool,
    ) -> None:
        self.data = data
        self.offsets = offsets
        self.lengths = lengths
        self.big_endian = big_endian
        self.n = int(offsets.shape[0])

    @cached_property
    def runs(self) -> StrideRuns | None:
        """The records' :func:`stride_runs`, found once for all their fields."""
        return stride_runs(self.offsets)

    def raw(self, offset: int, size: int) -> NDArray[np.uint8]:
        """``(n, size)`` contiguous byte matrix of the bytes at ``offset`` in each record."""
        out: NDArray[np.uint8] = np.ascontiguousarray(
            gather_matrix(self.data, self.offsets, offset, size, self.runs)
        )
        return out

    def scalar(self, f: FormatField) -> NDArray[np.generic] | None:
        """Integer values of a scalar field (``None`` when its size is not 1, 2, 4 or 8)."""
        return self.integer(f.offset, f.size, f.signed)

    def integer(self, offset: int, size: int, signed: bool) -> NDArray[np.generic] | None:
        if size not in (1, 2, 4, 8):
            return None
        unsigned = gather_word(self.data, self.offsets, offset, size, self.big_endian, self.runs)
        return unsigned.view(np.dtype(f"i{size}")) if signed else unsigned

    def string(self, f: FormatField) -> pa.DictionaryArray:
        """A ``char[N]`` or ``__data_loc char[]`` field as ``dictionary<int32, utf8>``."""
        if f.loc is None:
            raw = self.raw(f.offset, f.size)
            binary = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(f.size), self.n, [None, pa.py_buffer(raw)]
            )
            return _clean_dictionary(binary)
        starts, lengths, valid = self.dynamic(f)
        lengths = _cstr_lengths(self.data, starts, lengths)
        buf, offs = gather_bytes(self.data, starts, lengths)
        mask = pa.py_buffer(np.packbits(valid, bitorder="little")) if not valid.all() else None
        binary = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), self.n, [mask, pa.py_buffer(offs), pa.py_buffer(buf)]
        )
        return _clean_dictionary(binary)

    def dynamic(
        self, f: FormatField
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """Absolute start, length and validity of a ``__data_loc`` / ``__rel_loc`` field."""
        loc = self.integer(f.offset, 4, False)
        assert loc is not None
        loc64 = loc.astype(np.int64)
        start = loc64 & 0xFFFF
        length = loc64 >> 16
        if f.loc == "rel_loc":
            start = start + f.offset + 4
        valid = start + length <= self.lengths
        length = np.where(valid, length, 0)
        return self.offsets + np.where(valid, start, 0), length, valid


def _clean_dictionary(binary: pa.Array) -> pa.DictionaryArray:
    """Dictionary-encode raw string bytes, cutting each value at its first NUL.

    Distinct raw values can clean to the same text (junk after the NUL of a renamed task's
    ``comm``), so the cleaned dictionary is de-duplicated and the indices remapped.
    """
    encoded = dictionary_encode(binary)
    raw_values = encoded.dictionary.to_pylist()
    texts: dict[str, int] = {}
    remap = np.empty(len(raw_values), np.int32)
    for i, value in enumerate(raw_values):
        text = bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
        remap[i] = texts.setdefault(text, len(texts))
    indices = encoded.indices
    mapped = remap[fill_null(indices, 0).to_numpy(zero_copy_only=False)]
    index_array = pa.array(mapped, pa.int32(), mask=is_null(indices).to_numpy(zero_copy_only=False))
    result: pa.DictionaryArray = pa.DictionaryArray.from_arrays(
        index_array, pa.array(list(texts), pa.string())
    )
    return cast(result, DICT)
