"""The ``events`` table's ``payload`` column: the raw bytes of its records, copied from the pages.

The copy runs in the column's (``trace-cmd report``) order, a slice of rows at a time. The
merge keeps each CPU's records in file order, so every CPU's pages are used up from their
start; each page is given back as soon as its last record has been copied
(:meth:`importers.tracedat.buffer.PageBuffer.consumed`), so the pages shrink while the column
grows instead of both being resident at once.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from importers.tracedat.buffer import PageBuffer

#: rows copied per step
ROWS = 1 << 16
#: bytes copied per numpy pass at most (its index arrays take 8 bytes per word, three at a time)
BLOCK = 1 << 18


def payload_column(
    data: NDArray[np.uint8],
    start: NDArray[np.int64],
    length: NDArray[np.int32],
    pages: PageBuffer | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The bytes ``data[start[i] : start[i] + length[i]]`` of each row ``i``, as Arrow binary.

    Returns the bytes and the ``len(start) + 1`` Arrow offsets. With ``pages`` (the buffer
    ``data`` views), each page is given back once its last row is copied.
    """
    offsets = np.zeros(len(start) + 1, np.int64)
    for a in range(0, len(start), ROWS):  # a block at a time: cumsum would cast all to int64
        np.cumsum(length[a : a + ROWS], out=offsets[a + 1 : a + 1 + ROWS])
        offsets[a + 1 : a + 1 + ROWS] += offsets[a]
    out = np.empty(int(offsets[-1]), np.uint8)
    if pages is not None:
        for a in range(0, len(start), ROWS):
            pages.expect(start[a : a + ROWS])
    views = {w: (data[: len(data) // w * w].view(f"u{w}"), out[: len(out) // w * w].view(f"u{w}"))
             for w in (1, 4)}  # fmt: skip
    for a in range(0, len(start), ROWS):
        src, size = start[a : a + ROWS], length[a : a + ROWS].astype(np.int64)
        dst = offsets[a : a + len(src)]
        # ring-buffer records are 4-byte aligned and sized (RB_ALIGNMENT): 32-bit words
        word = 4 if not ((src | size | dst) & 3).any() else 1
        source, target = views[word]
        _copy(source, target, src // word, size // word, dst // word)
        if pages is not None:
            pages.consumed(src)
    return out, offsets


def _copy(
    source: NDArray[np.unsignedinteger],
    target: NDArray[np.unsignedinteger],
    src: NDArray[np.int64],
    size: NDArray[np.int64],
    dst: NDArray[np.int64],
) -> None:
    """``target[dst[i] : dst[i] + size[i]] = source[src[i] : src[i] + size[i]]``, a block of
    :data:`BLOCK` bytes at a time."""
    done = np.zeros(len(size) + 1, np.int64)  # units copied before each record
    np.cumsum(size, out=done[1:])
    cuts = np.searchsorted(done, np.arange(0, done[-1], BLOCK // source.itemsize), side="right")
    for a, b in itertools.pairwise([*(cuts - 1).tolist(), len(size)]):
        within = np.arange(done[a], done[b], dtype=np.int64)  # each unit's place in its record
        within -= np.repeat(done[a:b], size[a:b])
        to = np.repeat(dst[a:b], size[a:b])
        to += within
        within += np.repeat(src[a:b], size[a:b])
        target[to] = source[within]
