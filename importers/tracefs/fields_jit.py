"""The numba kernels of :mod:`importers.tracefs.fields`, for large inputs (see
:mod:`importers.byte_loops`), and the word readers every compiled record walk uses.

Each kernel gives exactly what its numpy counterpart in :mod:`importers.tracefs.fields` gives.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


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


@njit(cache=True, nogil=True)
def gather_rows(
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


@njit(cache=True, nogil=True)
def cstr_lengths(
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
