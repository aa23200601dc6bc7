"""Vectorised decoding of event fields from record payloads, driven by :class:`FormatField`.

All records of one event type share a layout, so each fixed field is one fancy-index gather
into an ``(n, size)`` byte matrix viewed as the field's dtype (formats.md §3.7 step 5); there is
no Python object per record. Strings become Arrow dictionary arrays: the raw bytes are
hash-encoded by Arrow, and only the (few) distinct values are cleaned up in Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from numpy.typing import NDArray

from importers.event_format import FormatField
from importers.schema import DICT


@njit(cache=True, nogil=True)
def gather_bytes(
    data: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Concatenate ``data[starts[i]:starts[i]+lengths[i]]``; return bytes and Arrow offsets."""
    n = starts.shape[0]
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + lengths[i]
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        s = starts[i]
        o = offsets[i]
        for j in range(lengths[i]):
            out[o + j] = data[s + j]
    return out, offsets


@njit(cache=True, nogil=True)
def _cstr_lengths(
    data: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Length of each string up to its first NUL (``min(len, first NUL)``, formats.md §3.5)."""
    out = lengths.copy()
    for i in range(starts.shape[0]):
        s = starts[i]
        for j in range(lengths[i]):
            if data[s + j] == 0:
                out[i] = j
                break
    return out


class FieldGather:
    """Decode fields of ``n`` records whose payloads start at ``offsets`` in ``data``.

    ``lengths`` are the payload lengths; a dynamic (``__data_loc``) field pointing outside its
    record decodes as null rather than reading a neighbour's bytes.
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
        index = (self.offsets + offset)[:, None] + np.arange(size, dtype=np.int64)
        out: NDArray[np.uint8] = self.data[index]
        return out

    def scalar(self, f: FormatField) -> NDArray[np.generic] | None:
        """Integer values of a scalar field (``None`` when its size is not 1, 2, 4 or 8)."""
        return self.integer(f.offset, f.size, f.signed)

    def integer(self, offset: int, size: int, signed: bool) -> NDArray[np.generic] | None:
        if size not in (1, 2, 4, 8):
            return None
        order = ">" if self.big_endian else "<"
        dtype = np.dtype(f"{order}{'i' if signed else 'u'}{size}")
        values = self.raw(offset, size).view(dtype).reshape(self.n)
        return values.astype(dtype.newbyteorder("="), copy=False)

    def string(self, f: FormatField) -> pa.DictionaryArray:
        """A ``char[N]`` or ``__data_loc char[]`` field as ``dictionary<int32, utf8>``."""
        if f.loc is None:
            raw = np.ascontiguousarray(self.raw(f.offset, f.size))
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
    encoded = pc.dictionary_encode(binary)
    raw_values = encoded.dictionary.to_pylist()
    texts: dict[str, int] = {}
    remap = np.empty(len(raw_values), np.int32)
    for i, value in enumerate(raw_values):
        text = bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
        remap[i] = texts.setdefault(text, len(texts))
    indices = encoded.indices
    mapped = remap[indices.fill_null(0).to_numpy(zero_copy_only=False)]
    index_array = pa.array(
        mapped, pa.int32(), mask=indices.is_null().to_numpy(zero_copy_only=False)
    )
    result: pa.DictionaryArray = pa.DictionaryArray.from_arrays(
        index_array, pa.array(list(texts), pa.string())
    )
    return result.cast(DICT)
