"""NumPy twins of the compiled loops over groups of ftrace bundles
(:mod:`~importers.perfetto.bundle_kernels`), for traces small enough that numba's start-up
would cost more than the loops (:mod:`importers.byte_loops`).

They are built on :func:`~importers.perfetto.kernels_np.scan`: a bundle's fields, then its
events' fields one level down, each level all messages at once. The filling twins take the
kernels' output arrays and fill them as the kernels do (only the rows the kernels count as
placed are defined), so the callers size them once for either engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
from importers.perfetto.kernels_np import MESSAGES_AT_ONCE, last_rows, packed, scan

#: ``FtraceEvent`` fields read by :func:`ftrace_events`
_TIMESTAMP, _PID, _COMMON_FLAGS = 1, 2, 5
#: ``FtraceEventBundle.event``
_EVENT = 2


def event_counts(d: U8, starts: I64, ends: I64) -> I64:
    """The ``event`` fields of each bundle (before any damage of the bundle's own fields), as
    :func:`~importers.perfetto.bundle_kernels.ftrace_events` counts them (``fill`` false)."""
    msg, number, wire, _, _, _ = scan(d, starts, ends, 0)
    events = (number == _EVENT) & (wire == LEN)
    return np.bincount(msg[events], minlength=starts.shape[0]).astype(np.int64)


def _last(msg: I64, hit: NDArray[np.bool_], count: int, column: NDArray[Any]) -> NDArray[Any]:
    """Per message (``count`` of them): ``column`` at its last ``hit`` row, 0 without one."""
    rows = last_rows(msg, np.flatnonzero(hit))
    out = np.zeros(count, column.dtype)
    out[msg[rows]] = column[rows]
    return out


def ftrace_events(
    d: U8,
    starts: I64,
    ends: I64,
    base: I64,
    route: NDArray[np.int8],
    per_bundle: I64,
    wide: I64,
    narrow: NDArray[np.int32],
    flags: NDArray[np.uint8],
    placed: I64,
    damage: I64,
) -> int:
    """:func:`~importers.perfetto.bundle_kernels.ftrace_events` filling its arrays (its
    ``fill`` true): each event decoded one level down and put in the set ``route[kind]``.

    An event that does not decode ends its bundle there (the bundle's damage is then the
    event's); else the bundle's damage is that of its own fields.
    """
    msg, number, wire, value, at, bundle_damage = scan(d, starts, ends, 0)
    is_event = (number == _EVENT) & (wire == LEN)
    owner, e_start = msg[is_event], at[is_event]
    e_end = e_start + value[is_event].astype(np.int64)
    n = e_start.shape[0]
    ts, pid, common_flags = (np.zeros(n, np.uint64) for _ in range(3))
    kind, body, body_len = np.zeros(n, np.int32), np.zeros(n, np.int64), np.zeros(n, np.int64)
    e_damage = np.zeros(n, np.int64)
    # the events' fields a batch at a time (kernels_np.MESSAGES_AT_ONCE): all of a trace's
    # at once are a dozen arrays of its every field
    for lo in range(0, n, MESSAGES_AT_ONCE):
        batch = slice(lo, lo + MESSAGES_AT_ONCE)
        e_msg, e_number, e_wire, e_value, e_at, e_damage[batch] = scan(
            d, e_start[batch], e_end[batch], 0
        )
        m = e_damage[batch].shape[0]
        varint = e_wire == VARINT
        ts[batch] = _last(e_msg, varint & (e_number == _TIMESTAMP), m, e_value)
        pid[batch] = _last(e_msg, varint & (e_number == _PID), m, e_value)
        common_flags[batch] = _last(e_msg, varint & (e_number == _COMMON_FLAGS), m, e_value)
        is_len = e_wire == LEN
        kind[batch] = _last(e_msg, is_len, m, e_number.astype(np.int32))
        body[batch] = _last(e_msg, is_len, m, e_at)
        body_len[batch] = _last(e_msg, is_len, m, e_value.astype(np.int64))
    # a bundle keeps its events up to its first damaged one
    rank = np.arange(n) - np.searchsorted(owner, owner)
    broken = e_damage != INTACT
    cut = np.full(starts.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(cut, owner[broken], rank[broken])
    damage[:] = bundle_damage
    first_broken = broken & (rank == cut[owner])
    damage[owner[first_broken]] = e_damage[first_broken]
    keep = rank < cut[owner]
    per_bundle[:] = np.bincount(owner[keep], minlength=starts.shape[0])
    top = route.shape[0]
    sets = np.where(kind < top, route[np.minimum(kind, top - 1)], OTHER)
    for k in range(wide.shape[0]):
        rows = np.flatnonzero(keep & (sets == k))
        m = rows.shape[0]
        placed[k] = m
        wide[k, TS, :m] = ts[rows].view(np.int64)
        wide[k, SEQ, :m] = base[owner[rows]] + rank[rows]
        wide[k, BODY, :m] = body[rows]
        narrow[k, PID, :m] = (pid[rows] & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)
        narrow[k, KIND, :m] = kind[rows]
        narrow[k, BODY_LEN, :m] = body_len[rows]
        narrow[k, BUNDLE, :m] = owner[rows]
        flags[k, :m] = common_flags[rows] & np.uint64(0xFF)
    return int(np.count_nonzero(keep))


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
    """:func:`~importers.perfetto.bundle_kernels.compact_sched`, all messages at once: their
    fields, the elements of their column fields (packed or not), then per message the
    checks that keep or drop all of its rows and strings together."""
    width = values.shape[1]
    n = starts.shape[0]
    msg, number, wire, value, at, damage = scan(d, starts, ends, 0)
    intern = (number == intern_field) & (wire == LEN)
    top = column.shape[0] - 1
    col = np.where(number <= top, column[np.minimum(number, top)], -1)
    is_column = ~intern & (col >= 0) & ((wire == VARINT) | (wire == LEN))
    # the elements of the column fields, field after field: a varint, or a packed run's
    one = np.flatnonzero(is_column & (wire == VARINT))
    runs = np.flatnonzero(is_column & (wire == LEN))
    run_end = at[runs] + value[runs].astype(np.int64)
    run_values, run_counts, run_broken = packed(d, at[runs], run_end)
    counts = np.zeros(msg.shape[0], np.int64)
    counts[one] = 1
    counts[runs] = run_counts
    first = np.cumsum(counts) - counts
    elements = np.empty(int(counts.sum()), np.uint64)
    elements[first[one]] = value[one]
    shift = first[runs] - (np.cumsum(run_counts) - run_counts)
    elements[np.repeat(shift, run_counts) + np.arange(run_values.shape[0])] = run_values
    field = np.repeat(np.arange(msg.shape[0]), counts)
    e_msg, e_col = msg[field], col[field]
    x = elements.view(np.int64)
    e_kind, e_array = e_col // width, e_col % width
    # delta-encoded timestamps: a running sum per message and kind, in order (wrapping as
    # the kernel's int64 sum does)
    stamps = np.flatnonzero(e_array == 0)
    group = e_msg[stamps] * 2 + e_kind[stamps]
    order = stamps[np.argsort(group, kind="stable")]
    sums = np.cumsum(x[order])
    g = e_msg[order] * 2 + e_kind[order]
    opens = np.flatnonzero(np.diff(g, prepend=g[:1] - 1))  # each group's first
    before = np.repeat(sums[opens] - x[order][opens], np.diff(np.append(opens, order.shape[0])))
    x[order] = sums - before
    # the rank of each element among its message's elements of its column
    key = e_msg * (2 * width) + e_col
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    rank = np.empty(key.shape[0], np.int64)
    rank[by_key] = np.arange(key.shape[0]) - np.searchsorted(sorted_key, sorted_key)
    count = np.bincount(key, minlength=n * 2 * width).reshape(n, 2, width)
    rows = count[:, :, 0]
    strings = np.bincount(msg[intern], minlength=n)
    bad = np.zeros(n, np.bool_)
    bad[msg[runs[run_broken]]] = True
    status[:] = np.where((damage != INTACT) | bad, DAMAGED, KEPT)
    comm = e_array == width - 1
    past = comm & ((x < 0) | (x >= strings[e_msg]))
    unequal = (count != rows[:, :, None]).any(axis=(1, 2))
    unequal[e_msg[past]] = True
    status[(status == KEPT) & unequal] = INCONSISTENT
    kept = status == KEPT
    # kept messages' strings and rows, in message order, after what ``placed`` holds
    s_rows = np.flatnonzero(intern & kept[msg])
    first_string = placed[2] + np.cumsum(strings * kept) - strings * kept
    intern_at[placed[2] : placed[2] + s_rows.shape[0]] = at[s_rows]
    intern_len[placed[2] : placed[2] + s_rows.shape[0]] = value[s_rows].astype(np.int64)
    placed[2] += s_rows.shape[0]
    x[comm] += first_string[e_msg[comm]]
    for kind in range(2):
        mine = rows[:, kind] * kept
        first_row = placed[kind] + np.cumsum(mine) - mine
        e = np.flatnonzero(kept[e_msg] & (e_kind == kind))
        dest = first_row[e_msg[e]] + rank[e]
        values[kind, e_array[e], dest] = x[e]
        heads = np.flatnonzero(kept[e_msg] & (e_kind == kind) & (e_array == 0))
        m, to = e_msg[heads], first_row[e_msg[heads]] + rank[heads]
        seq[kind, to] = base[m] + (rows[m, 0] if kind == 1 else 0) + rank[heads]
        owner[kind, to] = m
        placed[kind] += int(mine.sum())


def bundle_extents(
    local: NDArray[np.signedinteger[Any]], raw: I64, boot: I64, first_ts: I64, last_raw: I64
) -> None:
    """:func:`~importers.perfetto.bundle_kernels.bundle_extents` with unbuffered minimum and
    maximum per bundle."""
    n = first_ts.shape[0]
    seen = np.bincount(local, minlength=n) > 0
    earliest = np.full(n, np.iinfo(np.int64).max)
    latest = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(earliest, local, boot)
    np.maximum.at(latest, local, raw)
    last_raw[seen] = np.maximum(last_raw[seen], latest[seen])
    earlier = seen & ((first_ts < 0) | (earliest < first_ts))
    first_ts[earlier] = earliest[earlier]


def _ranges(starts: I64, lengths: I64) -> I64:
    """Every index of the ranges ``[starts[i], starts[i] + lengths[i])``, back to back."""
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))


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
    """:func:`~importers.perfetto.bundle_kernels.event_bytes`: the bytes gathered by index
    ranges, the ``print`` texts found by a :func:`scan` of the print events."""
    n = body.shape[0]
    size = body_len.astype(np.int64)
    payload_offsets[0] = 0
    np.cumsum(size, out=payload_offsets[1:])
    payload[: payload_offsets[n]] = d[_ranges(body, size)]
    # args: a rendered text, else a print's buf, else null
    at = np.zeros(n, np.int64)
    length = np.full(n, -1, np.int64)
    ours = rendered >= 0
    j = rendered[ours]
    shown = np.flatnonzero(ours)[extra_valid[j]]
    j = rendered[shown]
    at[shown] = extra_offsets[j]
    length[shown] = extra_offsets[j + 1] - extra_offsets[j]
    prints = np.flatnonzero(~ours & (kind == print_kind))
    msg, number, wire, value, v_at, _ = scan(d, body[prints], body[prints] + size[prints], 0)
    buf = last_rows(msg, np.flatnonzero(number == 2))  # PrintFtraceEvent.buf
    text = prints[msg[buf]]
    is_len = wire[buf] == LEN
    at[text] = np.where(is_len, v_at[buf], 0)
    length[text] = np.where(is_len, value[buf].astype(np.int64), 0)
    newline = text[(length[text] > 0)]
    newline = newline[d[at[newline] + length[newline] - 1] == 10]  # trace_marker's "\n"
    length[newline] -= 1
    args_valid[:] = length >= 0
    kept = np.maximum(length, 0)
    args_offsets[0] = 0
    np.cumsum(kept, out=args_offsets[1:])
    into = _ranges(args_offsets[:-1], kept)
    from_extra = np.repeat(ours, kept)
    args[into[from_extra]] = extra[_ranges(at[ours], kept[ours])]
    args[into[~from_extra]] = d[_ranges(at[~ours], kept[~ours])]
