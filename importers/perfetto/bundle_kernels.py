"""The compiled loops over whole groups of ftrace bundles: their plain events, their
``compact_sched`` arrays, each bundle's first and last times, and the bytes of the ``events``
table's columns; each is one pass over a group (counting kernels run the same loop first to
size their output, as in :mod:`~importers.perfetto.kernels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from importers.perfetto.bundle_layout import (
    BODY,
    BODY_LEN,
    BUNDLE,
    DAMAGED,
    INCONSISTENT,
    KEPT,
    KIND,
    OTHER,
    PID,
    SEQ,
    TS,
)
from importers.perfetto.encoding import I64, INTACT, LEN, U8, VARINT
from importers.perfetto.kernels import Int, read_field, read_varint


@njit(cache=True, nogil=True)
def ftrace_events(
    d: U8,
    starts: I64,
    ends: I64,
    base: I64,
    route: NDArray[np.int8],
    fill: bool,
    per_bundle: I64,
    wide: I64,
    narrow: NDArray[np.int32],
    flags: NDArray[np.uint8],
    placed: I64,
    damage: I64,
) -> int:
    """The ``FtraceEvent``s (field 2) of ``FtraceEventBundle``s, decoded one level down.

    Per event: ``timestamp`` (1), ``pid`` (2), ``common_flags`` (5, the kernel's 8-bit
    ``common_flags``) and which event it is: the number of its oneof member and that
    member's bytes (``kind`` 0 when it has none) [protos/perfetto/trace/ftrace/
    ftrace_event.proto ``FtraceEvent``]. ``per_bundle[b]`` counts bundle ``b``'s events.

    Filling puts each event in the set ``route[kind]`` (:data:`OTHER` for kinds past the
    table), in order: its ``placed[s]``-th row is ``wide[s, :, i]`` (``ts``, ``seq``: ``base[b]``
    plus its rank in its bundle ``b``, ``body``), ``narrow[s, :, i]`` (``pid``, ``kind``,
    ``body_len``, ``b``) and ``flags[s, i]``.
    ``damage[b]`` as in :func:`~importers.perfetto.kernels.scan`, for a bundle or any of its
    events; the events before the damage are kept. Counting (``fill`` false) only walks the
    bundles' own fields, so it cannot see damage inside an event: filling may then keep
    fewer events than it counted.
    """
    n = 0
    placed[:] = 0
    top = route.shape[0]
    for b in range(starts.shape[0]):
        pos, end = starts[b], ends[b]
        damage[b] = INTACT
        per_bundle[b] = 0
        while pos < end:
            f, w, _, s, nxt = read_field(d, pos, end)
            if nxt < 0:
                damage[b] = pos
                break
            pos = nxt
            if f != 2 or w != LEN:
                continue
            if not fill:
                per_bundle[b] += 1
                n += 1
                continue
            e_ts = np.uint64(0)
            e_pid = np.uint64(0)
            e_flags = np.uint64(0)
            e_kind = Int(0)
            e_body = Int(0)
            e_len = 0
            p = s
            while p < nxt:
                g, x, y, q, after = read_field(d, p, nxt)
                if after < 0:
                    damage[b] = p
                    break
                if g == 1 and x == VARINT:
                    e_ts = y
                elif g == 2 and x == VARINT:
                    e_pid = y
                elif g == 5 and x == VARINT:
                    e_flags = y
                elif x == LEN:
                    e_kind = g
                    e_body = q
                    e_len = int(y)
                p = after
            if damage[b] != INTACT:
                break
            k = route[e_kind] if e_kind < top else OTHER
            i = placed[k]
            wide[k, TS, i] = np.int64(e_ts)
            wide[k, SEQ, i] = base[b] + per_bundle[b]
            wide[k, BODY, i] = e_body
            narrow[k, PID, i] = np.int32(np.int64(e_pid & np.uint64(0xFFFFFFFF)))
            narrow[k, KIND, i] = e_kind
            narrow[k, BODY_LEN, i] = e_len
            narrow[k, BUNDLE, i] = b
            flags[k, i] = np.uint8(e_flags & np.uint64(0xFF))
            placed[k] += 1
            per_bundle[b] += 1
            n += 1
    return n


@njit(cache=True, nogil=True)
def compact_sched(
    d: U8,
    starts: I64,
    ends: I64,
    base: I64,
    column: I64,
    intern_field: int,
    status: NDArray[np.int8],
    values: I64,
    seq: I64,
    owner: I64,
    intern_at: I64,
    intern_len: I64,
    placed: I64,
) -> None:
    """The events of ``CompactSched`` messages, two kinds (switches, wakings) of ``width =
    values.shape[1]`` parallel arrays each, and their intern tables, in one pass.

    ``column[f]`` places repeated varint field ``f``: kind ``c // width``, array
    ``c % width`` (-1: none), its elements packed or not, in the order they come.
    Array 0 of a kind holds its timestamps, delta-encoded (each relative to the one before it
    in the message, the first absolute), which are written absolute; the last holds indices
    into the message's intern table (field ``intern_field``, strings), written as indices
    into ``intern_at``/``intern_len``, where every kept message's strings go.

    Row ``i`` of kind ``k`` is ``values[k, :, i]``, from message ``owner[k, i]``, numbered
    ``seq[k, i]``: ``base[m]`` plus its rank among the message's rows, the switches first.
    ``placed`` counts the rows of each kind and the strings. A message whose bytes do not
    decode (:data:`DAMAGED`), whose arrays of a kind differ in length or whose comm index
    is past its intern table (:data:`INCONSISTENT`) leaves nothing; ``status`` says which.
    Each output must have room for one row (string) per byte of the messages.
    """
    top = column.shape[0] - 1
    width = values.shape[1]
    for m in range(starts.shape[0]):
        pos, end = starts[m], ends[m]
        first = placed[:2].copy()
        strings = placed[2]
        count = np.zeros(2 * width, np.int64)
        stamp = np.zeros(2, np.int64)
        status[m] = KEPT
        while pos < end and status[m] == KEPT:
            f, w, v, s, nxt = read_field(d, pos, end)
            if nxt < 0:
                status[m] = DAMAGED
                break
            pos = nxt
            if f == intern_field and w == LEN:
                intern_at[placed[2]] = s
                intern_len[placed[2]] = Int(v)
                placed[2] += 1
                continue
            c = column[f] if f <= top else -1
            if c < 0 or (w != VARINT and w != LEN):
                continue
            kind, array = c // width, c % width
            at = s
            while True:
                if w == LEN:
                    if at >= nxt:
                        break
                    v, at = read_varint(d, at, nxt)
                    if at < 0:
                        status[m] = DAMAGED
                        break
                x = np.int64(v)
                if array == 0:
                    stamp[kind] += x
                    x = stamp[kind]
                values[kind, array, first[kind] + count[c]] = x
                count[c] += 1
                if w != LEN:
                    break
        for kind in range(2):
            rows = count[kind * width]
            if status[m] == KEPT and (count[kind * width : (kind + 1) * width] != rows).any():
                status[m] = INCONSISTENT
            for i in range(first[kind], first[kind] + rows):
                if status[m] != KEPT:
                    break
                index = values[kind, width - 1, i]
                if index < 0 or index >= placed[2] - strings:
                    status[m] = INCONSISTENT
        if status[m] != KEPT:
            placed[2] = strings
            continue
        for kind in range(2):
            rank = base[m] + (count[0] if kind == 1 else 0) - first[kind]
            for i in range(first[kind], first[kind] + count[kind * width]):
                seq[kind, i] = rank + i
                owner[kind, i] = m
                values[kind, width - 1, i] += strings
            placed[kind] += count[kind * width]


@njit(cache=True, nogil=True)
def bundle_extents(
    local: NDArray[np.signedinteger[Any]], raw: I64, boot: I64, first_ts: I64, last_raw: I64
) -> None:
    """Fold one kind of rows (``local``: each row's bundle within the group) into the
    per-bundle earliest BOOTTIME (``first_ts``, -1 while unknown) and latest own-clock time
    (``last_raw``): the kind's earliest time replaces ``first_ts`` when earlier or when that
    is still unknown."""
    n = first_ts.shape[0]
    earliest = np.zeros(n, np.int64)
    latest = np.zeros(n, np.int64)
    seen = np.zeros(n, np.bool_)
    for k in range(local.shape[0]):
        b = local[k]
        if not seen[b]:
            seen[b] = True
            earliest[b] = boot[k]
            latest[b] = raw[k]
        else:
            earliest[b] = min(earliest[b], boot[k])
            latest[b] = max(latest[b], raw[k])
    for b in range(n):
        if seen[b]:
            last_raw[b] = max(last_raw[b], latest[b])
            if first_ts[b] < 0 or earliest[b] < first_ts[b]:
                first_ts[b] = earliest[b]


@njit(cache=True, nogil=True)
def event_bytes(
    d: U8,
    body: I64,
    body_len: NDArray[np.int32],
    kind: NDArray[np.int32],
    print_kind: int,
    rendered: I64,
    extra: U8,
    extra_offsets: I64,
    extra_valid: NDArray[np.bool_],
    payload: U8,
    payload_offsets: I64,
    args: U8,
    args_offsets: I64,
    args_valid: NDArray[np.bool_],
) -> None:
    """The bytes of the ``events`` table's ``payload`` and ``args`` columns (Arrow offsets and
    validity), one row per event.

    ``payload`` is the event's member message. ``args`` is text ``rendered[i]`` of ``extra``
    when that is not -1, else for ``print_kind`` events what they wrote: the message's last
    field 2 (``PrintFtraceEvent.buf``; empty when not bytes) without the newline
    trace_marker writers end their text with; else null. ``payload`` and ``args`` must have
    room for every message's bytes and every text.
    """
    p = Int(0)
    a = Int(0)
    payload_offsets[0] = 0
    args_offsets[0] = 0
    for i in range(body.shape[0]):
        s, size = body[i], Int(body_len[i])
        payload[p : p + size] = d[s : s + size]
        p += size
        payload_offsets[i + 1] = p
        at, length = Int(0), Int(-1)
        if rendered[i] >= 0:
            j = rendered[i]
            if extra_valid[j]:
                lo, hi = extra_offsets[j], extra_offsets[j + 1]
                args[a : a + hi - lo] = extra[lo:hi]
                a += hi - lo
                length = hi - lo
        elif kind[i] == print_kind:
            q, end = s, s + size
            while q < end:
                f, w, v, vs, nxt = read_field(d, q, end)
                if nxt < 0:
                    break
                if f == 2:
                    at, length = (vs, Int(v)) if w == LEN else (Int(0), Int(0))
                q = nxt
            if length > 0 and d[at + length - 1] == 10:
                length -= 1
            if length >= 0:
                args[a : a + length] = d[at : at + length]
                a += length
        args_valid[i] = length >= 0
        args_offsets[i + 1] = a
