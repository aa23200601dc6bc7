"""Vectorised decoding of event fields from record payloads, driven by :class:`FormatField`.

All records of one event type share a layout, so each fixed field is one fancy-index gather
into an ``(n, size)`` byte matrix viewed as the field's dtype (formats.md §3.7 step 5); there is
no Python object per record. Strings become Arrow dictionary arrays: the raw bytes are
hash-encoded by Arrow, and only the (few) distinct values are cleaned up in Python.
"""

from __future__ import annotations

import itertools

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


def gather_matrix(
    data: NDArray[np.uint8], offsets: NDArray[np.int64], start: int, width: int
) -> NDArray[np.uint8]:
    """``(n, width)`` bytes at ``offsets[i] + start``; rows past the buffer end read as zeros.

    Compiled, aligned rows (ring-buffer records are 4-byte aligned) are copied a 32-bit word at
    a time.
    """
    n = offsets.shape[0]
    if compiled(n * width):
        from importers.tracefs import fields_jit

        words = data[: data.shape[0] // 4 * 4].view(np.uint32)
        padded = (width + 3) // 4 * 4
        out: NDArray[np.uint8] = fields_jit.gather_rows(data, words, offsets, start, width, padded)
        return out[:, :width] if padded != width else out
    rows = np.asarray(offsets, np.int64) + start
    inside = (rows >= 0) & (rows + width <= data.shape[0])
    if not inside.any():
        return np.zeros((n, width), np.uint8)
    padded = (width + 3) // 4
    if inside.all() and not (rows & 3).any() and padded * 4 <= data.shape[0] - rows.max():
        # aligned rows: one gather of 32-bit words per column of words, much faster than
        # the windows below
        words = data[: data.shape[0] // 4 * 4].view(np.uint32)
        first = rows // 4
        out = np.empty((n, padded), np.uint32)
        for j in range(padded):
            out[:, j] = words[first + j]
        return out.view(np.uint8)[:, :width]
    # each row a window of the data (a view): the gather copies the rows only
    windows = np.lib.stride_tricks.sliding_window_view(data, width)
    if inside.all():
        matrix: NDArray[np.uint8] = windows[rows]
        return matrix
    matrix = np.zeros((n, width), np.uint8)
    matrix[inside] = windows[rows[inside]]
    return matrix


def gather_uint(
    data: NDArray[np.uint8], offsets: NDArray[np.int64], start: int, size: int, big: bool
) -> NDArray[np.uint64]:
    """Unsigned ``size``-byte integers at ``offsets[i] + start`` (zero past the buffer end)."""
    if compiled(offsets.shape[0] * size):
        from importers.tracefs import fields_jit

        return fields_jit.gather_uint(data, offsets, start, size, big)
    if size in (1, 2, 4, 8):  # each row's bytes read as one word
        word = np.dtype(f"{'>' if big else '<'}u{size}")
        matrix = np.ascontiguousarray(gather_matrix(data, offsets, start, size))
        return matrix.view(word)[:, 0].astype(np.uint64)
    matrix = gather_matrix(data, offsets, start, size).astype(np.uint64)
    out = np.zeros(offsets.shape[0], np.uint64)
    for column in (matrix if big else matrix[:, ::-1]).T:  # most significant byte first
        out = (out << np.uint64(8)) | column
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

    def raw(self, offset: int, size: int) -> NDArray[np.uint8]:
        """``(n, size)`` contiguous byte matrix of the bytes at ``offset`` in each record."""
        out: NDArray[np.uint8] = np.ascontiguousarray(
            gather_matrix(self.data, self.offsets, offset, size)
        )
        return out

    def scalar(self, f: FormatField) -> NDArray[np.generic] | None:
        """Integer values of a scalar field (``None`` when its size is not 1, 2, 4 or 8)."""
        return self.integer(f.offset, f.size, f.signed)

    def integer(self, offset: int, size: int, signed: bool) -> NDArray[np.generic] | None:
        if size not in (1, 2, 4, 8):
            return None
        wide = gather_uint(self.data, self.offsets, offset, size, self.big_endian)
        unsigned = wide.astype(np.dtype(f"u{size}"), copy=False)
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
