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
from numba import njit
from numpy.typing import NDArray

from importers.tracefs.fields import u32_at, u64_at

COMMIT_MASK = (1 << 27) - 1
MISSING_EVENTS = 1 << 31
MISSING_STORED = 1 << 30
TS_MSB = 0xF8 << 56

#: page status codes (index into :data:`PAGE_DAMAGE`)
PAGE_OK = 0
PAGE_DAMAGE = (
    "",
    "page shorter than its header (file truncated)",
    "page commit runs past the end of the page",
    "record runs past the page commit",
    "missed-events count stored past the page end",
)

#: missed-events value for a page whose flag says events were lost but not how many
MISSED_UNKNOWN = -1
#: missed-events value for a page without the flag
MISSED_NONE = -2


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
        if not parts:
            return empty_records(0)
        return Records(
            *(np.concatenate(arrays) for arrays in zip(*(p.arrays() for p in parts), strict=True))
        )


def empty_records(n: int) -> Records:
    """Uninitialised arrays for ``n`` records (the fill pass writes every element)."""
    return Records(
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.empty(n, np.uint16),
    )


@njit(cache=True, nogil=True)
def _walk(
    d: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    commit_off: int,
    commit_size: int,
    data_off: int,
    big: bool,
    fill: bool,
    counts: NDArray[np.int64],
    status: NDArray[np.int8],
    missed: NDArray[np.int64],
    out_ts: NDArray[np.int64],
    out_off: NDArray[np.int64],
    out_len: NDArray[np.int32],
    out_page: NDArray[np.int32],
    out_type: NDArray[np.uint16],
) -> None:
    k = 0
    msb = np.uint64(TS_MSB)
    for pg in range(starts.shape[0]):
        if fill and status[pg] != 0:
            continue
        base = starts[pg]
        page_end = ends[pg]
        if base + data_off > page_end:
            status[pg] = 1
            continue
        ts = u64_at(d, base, big)
        if commit_size == 8:
            flags = u64_at(d, base + commit_off, big)
        else:
            flags = np.uint64(u32_at(d, base + commit_off, big))
        size = np.int64(flags & np.uint64(COMMIT_MASK))
        pos = base + data_off
        end = pos + size
        if end > page_end:
            status[pg] = 2
            continue
        if flags & np.uint64(MISSING_EVENTS):
            missed[pg] = MISSED_UNKNOWN
            if flags & np.uint64(MISSING_STORED):
                if end + commit_size > page_end:
                    status[pg] = 4
                    continue
                if commit_size == 8:
                    missed[pg] = np.int64(u64_at(d, end, big))
                else:
                    missed[pg] = u32_at(d, end, big)
        else:
            missed[pg] = MISSED_NONE
        n = 0
        bad = False
        while pos < end:
            if pos + 4 > end:
                bad = True
                break
            hdr = u32_at(d, pos, big)
            if big:
                type_len = hdr >> 27
                delta = hdr & 0x7FFFFFF
            else:
                type_len = hdr & 0x1F
                delta = hdr >> 5
            if type_len == 29:  # PADDING
                if delta == 0:
                    break
                if pos + 8 > end:
                    bad = True
                    break
                ts += np.uint64(delta)
                pos += 4 + u32_at(d, pos + 4, big)
                continue
            if type_len == 30 or type_len == 31:  # TIME_EXTEND / TIME_STAMP
                if pos + 8 > end:
                    bad = True
                    break
                ext = (np.uint64(u32_at(d, pos + 4, big)) << np.uint64(27)) + np.uint64(delta)
                if type_len == 30:
                    ts += ext
                else:
                    ts = ext | (ts & msb)
                pos += 8
                continue
            if type_len == 0:
                if pos + 8 > end:
                    bad = True
                    break
                length = u32_at(d, pos + 4, big) - 4
                length = (length + 3) & ~3
                payload = pos + 8
            else:
                length = type_len * 4
                payload = pos + 4
            if length <= 0 or payload + length > end:
                bad = True
                break
            ts += np.uint64(delta)
            if fill:
                out_ts[k] = np.int64(ts)
                out_off[k] = payload
                out_len[k] = length
                out_page[k] = pg
                # common_type (u16 at offset 0 of every entry) selects the format
                if big:
                    out_type[k] = (np.uint16(d[payload]) << 8) | np.uint16(d[payload + 1])
                else:
                    out_type[k] = (np.uint16(d[payload + 1]) << 8) | np.uint16(d[payload])
                k += 1
            n += 1
            pos = payload + length
        if bad:
            status[pg] = 3
        else:
            counts[pg] = n


def walk_pages(
    data: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    layout: PageLayout,
) -> tuple[Records, NDArray[np.int8], NDArray[np.int64]]:
    """Decode every page ``data[starts[i]:ends[i]]``.

    Returns the records of the undamaged pages, the status of each page (:data:`PAGE_DAMAGE`
    index) and its missed-events value (a count, :data:`MISSED_UNKNOWN` or
    :data:`MISSED_NONE`). Two passes (count, then fill) keep memory at exactly what the
    records need.
    """
    npages = starts.shape[0]
    counts = np.zeros(npages, np.int64)
    status = np.zeros(npages, np.int8)
    missed = np.full(npages, MISSED_NONE, np.int64)
    args = (layout.commit_offset, layout.commit_size, layout.data_offset, layout.big_endian)
    for fill in (False, True):
        r = records = empty_records(int(counts[status == PAGE_OK].sum()) if fill else 0)
        _walk(data, starts, ends, *args, fill, counts, status, missed,
              r.ts, r.offset, r.length, r.page, r.type)  # fmt: skip
    return records, status, missed
