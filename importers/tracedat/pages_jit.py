"""The compiled page walk of :mod:`importers.tracedat.pages`, for large inputs (see
:mod:`importers.byte_loops`): one loop over every page of every CPU, mirroring libtraceevent's
``kbuffer_load_subbuffer`` / ``translate_data`` / ``update_pointers`` (kbuffer-parse.c).

It gives exactly what the numpy walk of :mod:`importers.tracedat.pages` gives.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from importers.tracedat.ringbuffer import (
    COMMIT_MASK,
    MISSED_NONE,
    MISSED_UNKNOWN,
    MISSING_EVENTS,
    MISSING_STORED,
    TS_MSB,
)
from importers.tracefs.fields_jit import u32_at, u64_at


@njit(cache=True, nogil=True)
def walk(
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
