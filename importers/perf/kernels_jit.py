"""The numba kernels of the perf.data importer, for large inputs (see :mod:`importers.byte_loops`).

Each gives exactly what its numpy counterpart gives: :func:`walk` the record walk of
:mod:`importers.perf.records`, :func:`gather_words` the field gather of
:mod:`importers.perf.samples`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from importers.tracefs.fields_jit import u32_at, u64_at


@njit(cache=True)
def walk(
    d: NDArray[np.uint8],
    start: int,
    end: int,
    big: bool,
    offset: NDArray[np.int64],
    rtype: NDArray[np.uint32],
    misc: NDArray[np.uint16],
    size: NDArray[np.int32],
    fill: bool,
) -> tuple[int, int, int]:
    """Walk records in ``d[start:end]``; returns (count, stop offset, status)."""
    pos = start
    n = 0
    while pos < end:
        if end - pos < 8:
            return n, pos, 1
        t = u32_at(d, pos, big)
        # misc and size are the two u16 halves of the second header word
        word = u32_at(d, pos + 4, big)
        misc_bits = word >> 16 if big else word & 0xFFFF
        s = word & 0xFFFF if big else word >> 16
        if s < 8:
            return n, pos, 2
        if pos + s > end:
            return n, pos, 3
        extra = 0
        if t == 66 and s >= 12:
            blob = u32_at(d, pos + 8, big)
            if s < 12 + blob:  # blob follows the record (perf), rounded up to 8 bytes
                extra = int(((blob + 7) // 8) * 8)
        elif t == 71 and s >= 16:
            aux = np.int64(u64_at(d, pos + 8, big))  # a huge size wraps negative: damage
            if aux < 0:
                return n, pos, 3
            extra = int(aux)
        if extra < 0 or pos + s + extra > end:
            return n, pos, 3
        if fill:
            offset[n] = pos
            rtype[n] = t
            misc[n] = misc_bits
            size[n] = s
        n += 1
        pos += int(s) + extra
    return n, pos, 0


@njit(cache=True, nogil=True)
def gather_words(
    data: NDArray[np.uint8],
    base: NDArray[np.int64],
    at: NDArray[np.int64],
    width: NDArray[np.int64],
    big: bool,
) -> NDArray[np.uint64]:
    """``(k, n)`` unsigned fields: field ``j`` of record ``i`` is ``width[j]`` bytes at
    ``base[i] + at[j]`` (zero past the buffer end). One pass over the records reads all ``k``
    fields, where a gather per field would walk the whole stream ``k`` times. Widths are 4 or
    8."""
    n, k = base.shape[0], at.shape[0]
    out = np.zeros((k, n), np.uint64)
    limit = data.shape[0]
    for i in range(n):
        for j in range(k):
            s = base[i] + at[j]
            if s < 0 or s + width[j] > limit:
                continue
            if width[j] == 8:
                out[j, i] = u64_at(data, s, big)
            else:
                out[j, i] = np.uint64(u32_at(data, s, big))
    return out
