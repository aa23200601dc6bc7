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

from importers.schema import DICT
from importers.tracefs.event_format import FormatField


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
        out[offsets[i] : offsets[i + 1]] = data[starts[i] : starts[i] + lengths[i]]
    return out, offsets


def gather_matrix(
    data: NDArray[np.uint8], offsets: NDArray[np.int64], start: int, width: int
) -> NDArray[np.uint8]:
    """``(n, width)`` bytes at ``offsets[i] + start``; rows past the buffer end read as zeros.

    Aligned rows (ring-buffer records are 4-byte aligned) are copied a 32-bit word at a time.
    """
    words = data[: data.shape[0] // 4 * 4].view(np.uint32)
    padded = (width + 3) // 4 * 4
    out = _gather_rows(data, words, offsets, start, width, padded)
    return out[:, :width] if padded != width else out


@njit(cache=True, nogil=True)
def _gather_rows(
    data: NDArray[np.uint8],
    words: NDArray[np.uint32],
    offsets: NDArray[np.int64],
    start: int,
    width: int,
    padded: int,
) -> NDArray[np.uint8]:
    n = offsets.shape[0]
    out_words = np.zeros((n, padded // 4), np.uint32)
    out = out_words.view(np.uint8)
    limit = data.shape[0]
    for i in range(n):
        s = offsets[i] + start
        if s < 0 or s + width > limit:
            continue
        if s & 3 == 0 and s + padded <= words.shape[0] * 4:
            w = s >> 2
            for j in range(padded // 4):
                out_words[i, j] = words[w + j]
        else:
            for j in range(width):
                out[i, j] = data[s + j]
    return out


@njit(cache=True, inline="always")
def u32_at(d: NDArray[np.uint8], p: int, big: bool) -> np.int64:
    """The u32 at byte ``p`` of ``d`` (for compiled loops; the caller checks bounds)."""
    b0, b1, b2, b3 = np.int64(d[p]), np.int64(d[p + 1]), np.int64(d[p + 2]), np.int64(d[p + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return (b3 << 24) | (b2 << 16) | (b1 << 8) | b0


@njit(cache=True, inline="always")
def u64_at(d: NDArray[np.uint8], p: int, big: bool) -> np.uint64:
    """The u64 at byte ``p`` of ``d`` (for compiled loops; the caller checks bounds)."""
    lo = np.uint64(u32_at(d, p + 4 if big else p, big))
    hi = np.uint64(u32_at(d, p if big else p + 4, big))
    return (hi << np.uint64(32)) | lo


@njit(cache=True, nogil=True)
def gather_uint(
    data: NDArray[np.uint8], offsets: NDArray[np.int64], start: int, size: int, big: bool
) -> NDArray[np.uint64]:
    """Unsigned ``size``-byte integers at ``offsets[i] + start`` (zero past the buffer end)."""
    n = offsets.shape[0]
    out = np.zeros(n, np.uint64)
    limit = data.shape[0]
    for i in range(n):
        s = offsets[i] + start
        if s < 0 or s + size > limit:
            continue
        v = np.uint64(0)
        if big:
            for j in range(size):
                v = (v << np.uint64(8)) | np.uint64(data[s + j])
        else:
            for j in range(size - 1, -1, -1):
                v = (v << np.uint64(8)) | np.uint64(data[s + j])
        out[i] = v
    return out


def pack_records(
    data: NDArray[np.uint8],
    idx: NDArray[np.intp],
    offsets: NDArray[np.int64],
    lengths: NDArray[np.int64],
    types: NDArray[np.uint16],
    lut: NDArray[np.int64],
    big: bool,
) -> tuple[
    NDArray[np.uint8], NDArray[np.int64], NDArray[np.int32], NDArray[np.uint8], NDArray[np.uint8]
]:
    """Copy records ``idx`` into one buffer (Arrow binary layout) and read their common fields.

    Returns the packed bytes, the Arrow offsets, ``common_pid``, ``common_flags`` and
    ``common_preempt_count``. ``lut[k, type]`` is the offset of common field ``k`` in that
    type's format (they agree on every known kernel, but each record is still read by its own
    format; a negative offset reads as 0). One pass: each record is read while in cache.
    Ring-buffer records are 4-byte aligned and sized (RB_ALIGNMENT), so they are copied a
    32-bit word at a time.
    """
    words = data[: data.shape[0] // 4 * 4].view(np.uint32)
    return _pack_records(data, words, idx, offsets, lengths, types, lut, big)


@njit(cache=True, nogil=True)
def _pack_records(
    data: NDArray[np.uint8],
    words: NDArray[np.uint32],
    idx: NDArray[np.intp],
    offsets: NDArray[np.int64],
    lengths: NDArray[np.int64],
    types: NDArray[np.uint16],
    lut: NDArray[np.int64],
    big: bool,
) -> tuple[
    NDArray[np.uint8], NDArray[np.int64], NDArray[np.int32], NDArray[np.uint8], NDArray[np.uint8]
]:
    n = idx.shape[0]
    out_offsets = np.empty(n + 1, np.int64)
    out_offsets[0] = 0
    for i in range(n):
        out_offsets[i + 1] = out_offsets[i] + lengths[idx[i]]
    out_words = np.empty((out_offsets[n] + 3) // 4, np.uint32)
    out = out_words.view(np.uint8)[: out_offsets[n]]
    pid = np.zeros(n, np.int32)
    flags = np.zeros(n, np.uint8)
    preempt = np.zeros(n, np.uint8)
    for i in range(n):
        r = idx[i]
        s = offsets[r]
        length = lengths[r]
        o = out_offsets[i]
        if (s | length | o) & 3 == 0:
            w, ow = s >> 2, o >> 2
            for j in range(length >> 2):
                out_words[ow + j] = words[w + j]
        else:
            out[o : o + length] = data[s : s + length]
        t = types[r]
        p = lut[0, t]
        if p >= 0 and p + 4 <= length:
            if big:
                v = (
                    (out[o + p] << 24)
                    | (out[o + p + 1] << 16)
                    | (out[o + p + 2] << 8)
                    | out[o + p + 3]
                )
            else:
                v = (
                    (out[o + p + 3] << 24)
                    | (out[o + p + 2] << 16)
                    | (out[o + p + 1] << 8)
                    | out[o + p]
                )
            pid[i] = np.int32(np.uint32(v))
        f = lut[1, t]
        if 0 <= f < length:
            flags[i] = out[o + f]
        q = lut[2, t]
        if 0 <= q < length:
            preempt[i] = out[o + q]
    return out, out_offsets, pid, flags, preempt


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
    record decodes as null rather than reading a neighbour's bytes. With ``block`` > 0 the
    first ``block`` bytes of every record (the fixed part of its format) are copied once, so
    each fixed field is a column slice of that matrix instead of another pass over the
    scattered records.
    """

    def __init__(
        self,
        data: NDArray[np.uint8],
        offsets: NDArray[np.int64],
        lengths: NDArray[np.int64],
        big_endian: bool,
        block: int = 0,
    ) -> None:
        self.data = data
        self.offsets = offsets
        self.lengths = lengths
        self.big_endian = big_endian
        self.n = int(offsets.shape[0])
        self.block = gather_matrix(data, offsets, 0, block) if block > 0 else None

    def raw(self, offset: int, size: int) -> NDArray[np.uint8]:
        """``(n, size)`` contiguous byte matrix of the bytes at ``offset`` in each record."""
        if self.block is not None and offset + size <= self.block.shape[1]:
            return np.ascontiguousarray(self.block[:, offset : offset + size])
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
        if self.block is not None and offset + size <= self.block.shape[1]:
            order = ">" if self.big_endian else "<"
            dtype = np.dtype(f"{order}{'i' if signed else 'u'}{size}")
            # a strided column view of the block (rows contiguous), copied once by astype
            column = self.block[:, offset : offset + size].view(dtype).reshape(self.n)
            native: NDArray[np.generic] = column.astype(dtype.newbyteorder("="), copy=False)
            return native
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
