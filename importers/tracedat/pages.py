"""Walk ring-buffer sub-buffers ("pages") into flat record arrays (formats.md §3.4).

Each page is ``u64 timestamp``, ``local_t commit`` (4 or 8 bytes, the *kernel* long size) and
``commit & COMMIT_MASK`` bytes of records. Records chain through their headers (``type_len``,
``time_delta``), so one page is inherently a sequential scan; pages are independent, so the
scan is one compiled loop (numba) over all pages of all CPUs, mirroring libtraceevent's
``kbuffer_load_subbuffer`` / ``translate_data`` / ``update_pointers`` (kbuffer-parse.c):

* type_len 1..28: data, ``type_len * 4`` payload bytes; ``ts += delta``.
* type_len 0: data whose length is ``array[0] - 4`` (rounded up to 4), after ``array[0]``.
* 29 PADDING: ``delta == 0`` ends the page; otherwise a discarded event of ``4 + array[0]``
  bytes whose delta still counts (libtraceevent, not the kernel reader: §6.4 #8).
* 30 TIME_EXTEND: ``ts += (array[0] << 27) + delta``.
* 31 TIME_STAMP: ``ts = (array[0] << 27 | delta)`` with the top five bits of the current ts.

A page whose records do not fit its commit is *damaged*: none of its records are emitted and
its status says why, so the importer can skip and count it (or fail in strict mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from importers.byte_loops import compiled
from importers.heap import trim_heap
from importers.tracedat.ringbuffer import (
    COMMIT_MASK,
    MISSED_NONE,
    MISSED_UNKNOWN,
    MISSING_EVENTS,
    MISSING_STORED,
    TS_MSB,
)

#: page status codes (index into :data:`PAGE_DAMAGE`)
PAGE_OK = 0
PAGE_DAMAGE = (
    "",
    "page shorter than its header (file truncated)",
    "page commit runs past the end of the page",
    "record runs past the page commit",
    "missed-events count stored past the page end",
)


@dataclass(frozen=True)
class PageLayout:
    """Where a page's fields lie (from ``header_page``) and how its words are ordered."""

    page_size: int
    commit_offset: int
    commit_size: int
    data_offset: int
    big_endian: bool


@dataclass
class Records:
    """Flat arrays of data records, in page order (so per CPU, in time order).

    ``offset`` is the payload's byte offset in the data buffer, ``length`` its length
    (a multiple of 4, possibly with trailing junk), ``page`` the index of its page, ``type``
    its ``common_type`` (event id).
    """

    ts: NDArray[np.int64]
    offset: NDArray[np.int64]
    length: NDArray[np.int32]
    page: NDArray[np.int32]
    type: NDArray[np.uint16]

    def drop(self, *names: str) -> None:
        """Let go of the named arrays: a decoder done with them gives their memory to the
        tables it builds (the caller holds no other reference to them)."""
        for name in names:
            setattr(self, name, np.empty(0, getattr(self, name).dtype))

    def arrays(
        self,
    ) -> tuple[
        NDArray[np.int64],
        NDArray[np.int64],
        NDArray[np.int32],
        NDArray[np.int32],
        NDArray[np.uint16],
    ]:
        return self.ts, self.offset, self.length, self.page, self.type

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        """The records of ``parts`` one after the other; ``parts`` is consumed, an array at a
        time, so no more than one array of the result is held twice (the parts' arrays, too
        small for the next whole array to reuse their heap blocks, are handed back)."""
        if not parts:
            return empty_records(0)
        if len(parts) == 1:  # one buffer instance: no copy
            return parts[0]
        whole = empty_records(0)
        for name in ("ts", "offset", "length", "page", "type"):
            setattr(whole, name, np.concatenate([getattr(p, name) for p in parts]))
            for p in parts:
                p.drop(name)
            trim_heap()
        return whole


def empty_records(n: int) -> Records:
    """Uninitialised arrays for ``n`` records (the fill pass writes every element)."""
    return Records(
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.empty(n, np.uint16),
    )


def walk_pages(
    data: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    layout: PageLayout,
) -> tuple[Records, NDArray[np.int8], NDArray[np.int64]]:
    """Decode every page ``data[starts[i]:ends[i]]``.

    Returns the records of the undamaged pages, the status of each page (:data:`PAGE_DAMAGE`
    index) and its missed-events value (a count, :data:`MISSED_UNKNOWN` or
    :data:`MISSED_NONE`). Small inputs are walked in numpy, large ones by the compiled kernel
    (:mod:`importers.byte_loops`), in two passes (count, then fill) that keep memory at
    exactly what the records need.
    """
    if not compiled(int((ends - starts).sum())):
        return _walk_numpy_batches(data, starts, ends, layout)
    from importers.tracedat.pages_jit import walk

    npages = starts.shape[0]
    counts = np.zeros(npages, np.int64)
    status = np.zeros(npages, np.int8)
    missed = np.full(npages, MISSED_NONE, np.int64)
    args = (layout.commit_offset, layout.commit_size, layout.data_offset, layout.big_endian)
    for fill in (False, True):
        r = records = empty_records(int(counts[status == PAGE_OK].sum()) if fill else 0)
        walk(data, starts, ends, *args, fill, counts, status, missed,
             r.ts, r.offset, r.length, r.page, r.type)  # fmt: skip
    return records, status, missed


#: pages walked at once by the numpy walk: its steps (about as large as the records) are held
#: for a batch of pages only, not all of them
WALK_PAGES = 4096


def _walk_numpy_batches(
    d: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64], layout: PageLayout
) -> tuple[Records, NDArray[np.int8], NDArray[np.int64]]:
    """:func:`_walk_numpy` over :data:`WALK_PAGES` pages at a time."""
    parts, status, missed = [], [], []
    for a in range(0, len(starts), WALK_PAGES):
        pages = slice(a, a + WALK_PAGES)
        records, st, mi = _walk_numpy(d, starts[pages], ends[pages], layout)
        records.page += a
        parts.append(records)
        status.append(st)
        missed.append(mi)
    if not parts:
        return _walk_numpy(d, starts, ends, layout)
    return Records.concat(parts), np.concatenate(status), np.concatenate(missed)


def _walk_numpy(
    d: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64], layout: PageLayout
) -> tuple[Records, NDArray[np.int8], NDArray[np.int64]]:
    """The page walk in numpy: every page's cursor steps one record at a time, all pages at
    once (a page holds at most a few hundred records, so the steps are few)."""
    big = layout.big_endian
    status = np.zeros(starts.shape[0], np.int8)
    missed = np.full(starts.shape[0], MISSED_NONE, np.int64)
    status[starts + layout.data_offset > ends] = 1
    pg = np.flatnonzero(status == PAGE_OK)
    ts = _u64(d, starts[pg], big)
    if layout.commit_size == 8:
        flags = _u64(d, starts[pg] + layout.commit_offset, big)
    else:
        flags = _u32(d, starts[pg] + layout.commit_offset, big).astype(np.uint64)
    pos = starts[pg] + layout.data_offset
    end = pos + (flags & np.uint64(COMMIT_MASK)).astype(np.int64)
    over = end > ends[pg]
    status[pg[over]] = 2
    flagged = ~over & (flags & np.uint64(MISSING_EVENTS) != 0)
    missed[pg[flagged]] = MISSED_UNKNOWN
    stored = flagged & (flags & np.uint64(MISSING_STORED) != 0)
    past = stored & (end + layout.commit_size > ends[pg])
    status[pg[past]] = 4
    stored &= ~past
    count = (
        _u64(d, end[stored], big).view(np.int64)
        if layout.commit_size == 8
        else _u32(d, end[stored], big)
    )
    missed[pg[stored]] = count
    walking = ~over & ~past & (pos < end)
    pg, ts, pos, end = pg[walking], ts[walking], pos[walking], end[walking]
    steps: list[Step] = []  # each page's records come one per step
    while pg.size:
        bad = pos + 4 > end
        hdr = _u32(d, np.where(bad, 0, pos), big)
        type_len = hdr >> 27 if big else hdr & 0x1F
        delta = hdr & 0x7FFFFFF if big else hdr >> 5
        pad = type_len == 29
        stop = pad & (delta == 0)  # padding to the end of the page
        stamp = type_len >= 30  # TIME_EXTEND, TIME_STAMP
        wide = type_len == 0  # a data record whose length is array[0]
        bad |= ((pad & ~stop) | stamp | wide) & (pos + 8 > end)
        word = _u32(d, np.where(bad, 0, pos + 4), big)  # array[0]
        length = np.where(wide, (word - 4 + 3) & ~3, type_len * 4)
        payload = pos + np.where(wide, 8, 4)
        record = ~pad & ~stamp & ~bad
        bad |= record & ((length <= 0) | (payload + length > end))
        record &= ~bad
        ext = (word.astype(np.uint64) << np.uint64(27)) + delta.astype(np.uint64)
        ts = np.where((pad & ~stop) | record, ts + delta.astype(np.uint64), ts)
        ts = np.where(type_len == 30, ts + ext, ts)
        ts = np.where(type_len == 31, ext | (ts & np.uint64(TS_MSB)), ts)
        steps.append(Step(pg[record].astype(np.int32), ts[record].view(np.int64), payload[record],
                          length[record].astype(np.int32)))  # fmt: skip
        pos = np.where(pad, pos + 4 + word, np.where(stamp, pos + 8, payload + length))
        status[pg[bad]] = 3
        going = ~bad & ~stop & (pos < end)
        pg, ts, pos, end = pg[going], ts[going], pos[going], end[going]
    return _in_page_order(d, steps, status, big), status, missed


@dataclass
class Step:
    """The records one step of the numpy walk found, one per page at most (all steps are
    held until the walk ends, so page and length are as narrow as the records')."""

    page: NDArray[np.int32]
    ts: NDArray[np.int64]
    offset: NDArray[np.int64]
    length: NDArray[np.int32]


def _in_page_order(
    d: NDArray[np.uint8], steps: list[Step], status: NDArray[np.int8], big: bool
) -> Records:
    """The records of the undamaged pages, page by page, each page's in step order.

    Each step's records go straight to their places (a page's k-th record follows the records
    of the pages before it and its own first k), and each step is dropped once placed.
    """
    counts = np.zeros(len(status), np.int64)
    for step in steps:
        counts[step.page] += 1
    counts[status != PAGE_OK] = 0  # a damaged page gives no records
    place = np.concatenate([[0], np.cumsum(counts)[:-1]])
    records = empty_records(int(counts.sum()))
    steps.reverse()  # popped in walk order
    while steps:
        step = steps.pop()
        ok = status[step.page] == PAGE_OK
        page = step.page[ok]
        at = place[page]
        place[page] += 1
        records.ts[at], records.offset[at] = step.ts[ok], step.offset[ok]
        records.length[at], records.page[at] = step.length[ok], page
    first, second = d[records.offset].astype(np.uint16), d[records.offset + 1].astype(np.uint16)
    records.type[:] = (first << 8) | second if big else (second << 8) | first  # common_type
    return records


def _u32(d: NDArray[np.uint8], p: NDArray[np.int64], big: bool) -> NDArray[np.int64]:
    """The u32 at each byte position ``p`` of ``d`` (the caller checks bounds)."""
    return _word(d, p, np.dtype(">u4" if big else "<u4")).astype(np.int64)


def _u64(d: NDArray[np.uint8], p: NDArray[np.int64], big: bool) -> NDArray[np.uint64]:
    return _word(d, p, np.dtype(">u8" if big else "<u8")).astype(np.uint64)


def _word(
    d: NDArray[np.uint8], p: NDArray[np.int64], dtype: np.dtype[np.unsignedinteger]
) -> NDArray[np.unsignedinteger]:
    """The ``dtype`` word at each byte position ``p``: one window of the data per position,
    or, when every position is a multiple of the word's size (ring-buffer records are 4-byte
    aligned, RB_ALIGNMENT), one element of a word view of the data, without a copy per row."""
    size = dtype.itemsize
    if not (p & (size - 1)).any():
        aligned: NDArray[np.unsignedinteger] = d[: d.shape[0] // size * size].view(dtype)
        return aligned[p // size]
    windows = np.lib.stride_tricks.sliding_window_view(d, size)
    words: NDArray[np.unsignedinteger] = np.ascontiguousarray(windows[p]).view(dtype)[:, 0]
    return words
