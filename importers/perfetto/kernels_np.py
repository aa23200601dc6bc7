"""NumPy twins of the compiled protobuf loops of :mod:`~importers.perfetto.kernels`, for traces
small enough that numba's start-up would cost more than the loops (:mod:`importers.byte_loops`).

The cursors of all messages step one field at a time together, as the numpy page walk of
:mod:`importers.tracedat.pages` steps all pages one record at a time; a varint is read from a
window of up to ten bytes per cursor, one byte position at a time for the cursors whose varint
goes on. A numpy step costs tens of microseconds however few cursors it moves, so the few
messages still going when the others are done (a trace's one ``Trace`` message, a bundle far
longer than the rest) are finished field by field in Python. Each function decides exactly as
its kernel does: the same fields, values, positions and damage, on any bytes.
"""

from __future__ import annotations

from array import array

import numpy as np
from numpy.typing import NDArray

from importers.perfetto.encoding import (
    I32_WIRE,
    I64,
    I64_WIRE,
    INTACT,
    LEN,
    MAX_FIELD,
    U8,
    U64,
    VARINT,
)

#: the longest varint (64 bits in 7-bit groups); a longer one is damage, as in the kernel
VARINT_BYTES = 10
#: with fewer cursors than this left, reading their fields one by one in Python is cheaper
#: than a numpy step (the bundle scan of the shared captures, CPU per scan at 8, 16, 32, 64,
#: 128: pixel6a 87-105, 69-83, 51-68, 43-59, 45-51 ms; galaxy-j5 41-53, 39-40, 34-49, 34-48,
#: 34-48 ms)
FEW = 64
#: messages :func:`scan` steps through at once (see there)
MESSAGES_AT_ONCE = 8192
_MASK64 = (1 << 64) - 1

#: every field of a batch of messages: message, number, wire type, value, value start, and
#: per message its damage (as :func:`~importers.perfetto.kernels.scan` fills them)
Scanned = tuple[I64, NDArray[np.int32], NDArray[np.int8], U64, I64, I64]


def read_varints(d: U8, at: I64, end: I64) -> tuple[U64, I64]:
    """:func:`~importers.perfetto.kernels.read_varint` for each cursor: the varint at
    ``d[at[i]:end[i]]`` and the position after it; position -1 (and value 0) when damaged:
    unterminated by ``end`` or longer than :data:`VARINT_BYTES`."""
    inside = at < end
    b = d[np.where(inside, at, 0)] if d.shape[0] else np.zeros(at.shape[0], np.uint8)
    value = (b & 0x7F).astype(np.uint64)
    stop = inside & (b < 0x80)
    after = np.where(stop, at + 1, -1)
    live = np.flatnonzero(inside & ~stop)  # most varints are one byte: the rest go on here
    if not live.size:
        value[~stop] = 0
        return value, after
    pos = at[live] + 1
    for byte in range(1, VARINT_BYTES):
        inside = pos < end[live]
        live, pos = live[inside], pos[inside]
        if not live.size:
            break
        b = d[pos]
        value[live] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * byte)
        stop = b < 0x80
        after[live[stop]] = pos[stop] + 1
        going = ~stop
        live, pos = live[going], pos[going] + 1
    value[after < 0] = 0
    return value, after


def read_fields(d: U8, at: I64, end: I64) -> tuple[I64, I64, U64, I64, I64]:
    """:func:`~importers.perfetto.kernels.read_field` for each cursor: ``(number, wire type,
    value, value start, position after)``, position after -1 when damaged."""
    key, pos = read_varints(d, at, end)
    number = (key >> np.uint64(3)).astype(np.int64)
    wire = (key & np.uint64(7)).astype(np.int64)
    ok = (pos >= 0) & (number != 0) & (number <= MAX_FIELD)
    # a VARINT's value and a LEN's length are both the varint after the key
    is_len = ok & (wire == LEN)
    varint = (ok & (wire == VARINT)) | is_len
    value, after = read_varints(d, np.where(varint, pos, end), end)
    start = np.where(is_len, after, pos)
    fits = value <= (end - after).astype(np.uint64)  # (never read where damaged: after -1)
    after = np.where(is_len, np.where(fits & (after >= 0), after + value.astype(np.int64), -1),
                     after)  # fmt: skip
    fixed = ok & ((wire == I64_WIRE) | (wire == I32_WIRE))
    if fixed.any():
        for w, size, little in ((I64_WIRE, 8, "<u8"), (I32_WIRE, 4, "<u4")):
            i = np.flatnonzero(fixed & (wire == w))
            i = i[end[i] - pos[i] >= size]
            window = d[pos[i, None] + np.arange(size)]  # (cursors, size) little-endian bytes
            value[i] = window.view(little)[:, 0]
            after[i] = pos[i] + size
    return number, wire, value, start, after


def _varint(buf: memoryview, at: int, end: int) -> tuple[int, int]:
    """:func:`~importers.perfetto.kernels.read_varint` of one cursor in Python."""
    value, shift, pos = 0, 0, at
    while pos < end:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & _MASK64, pos
        shift += 7
        if shift >= 7 * VARINT_BYTES:
            return 0, -1
    return 0, -1


def _field(buf: memoryview, at: int, end: int) -> tuple[int, int, int, int, int]:
    """:func:`~importers.perfetto.kernels.read_field` of one cursor in Python."""
    key, pos = _varint(buf, at, end)
    if pos < 0:
        return 0, 0, 0, 0, -1
    number, wire = key >> 3, key & 7
    if number == 0 or number > MAX_FIELD:
        return number, wire, 0, 0, -1
    if wire == VARINT:
        value, after = _varint(buf, pos, end)
        return number, wire, value, pos, after
    if wire == LEN:
        length, start = _varint(buf, pos, end)
        if start < 0 or length > end - start:
            return number, wire, 0, 0, -1
        return number, wire, length, start, start + length
    if wire in (I64_WIRE, I32_WIRE):
        size = 8 if wire == I64_WIRE else 4
        if end - pos < size:
            return number, wire, 0, 0, -1
        return number, wire, int.from_bytes(buf[pos : pos + size], "little"), pos, pos + size
    return number, wire, 0, 0, -1


def scan(d: U8, starts: I64, ends: I64, skip: int) -> Scanned:
    """:func:`~importers.perfetto.kernels.scan`: every field of every message, messages in
    order and each one's fields in order (field ``skip`` left out), and each message's damage.

    :data:`MESSAGES_AT_ONCE` messages at a time: the steps' arrays, their concatenation and
    its reordering are each about the size of the fields found, so all of a 2.6 MB trace's
    67 k events at once peaked 26 MiB, most of a small Perfetto import's memory above its
    libraries (messages are independent: the fields and damage are the same either way).
    """
    if starts.shape[0] <= MESSAGES_AT_ONCE:
        return _scan(d, starts, ends, skip)
    parts = [
        _scan(d, starts[lo : lo + MESSAGES_AT_ONCE], ends[lo : lo + MESSAGES_AT_ONCE], skip)
        for lo in range(0, starts.shape[0], MESSAGES_AT_ONCE)
    ]
    msg = np.concatenate([part[0] + k * MESSAGES_AT_ONCE for k, part in enumerate(parts)])
    number, wire, value, start, damage = (
        np.concatenate([part[c] for part in parts]) for c in range(1, 6)
    )
    return msg, number, wire, value, start, damage


def _scan(d: U8, starts: I64, ends: I64, skip: int) -> Scanned:
    """:func:`scan` of a batch of messages."""
    damage = np.full(starts.shape[0], INTACT, np.int64)
    live = np.flatnonzero(starts < ends)
    pos, end = starts[live].astype(np.int64), ends[live]
    steps: list[tuple[I64, I64, I64, U64, I64]] = []  # a field of each live message per step
    while live.size >= FEW:
        number, wire, value, start, after = read_fields(d, pos, end)
        bad = after < 0
        if bad.any():
            damage[live[bad]] = pos[bad]
        kept = ~bad & (number != skip)
        steps.append((live[kept], number[kept], wire[kept], value[kept], start[kept]))
        going = ~bad & (after < end)
        live, pos, end = live[going], after[going], end[going]
    # the stragglers, one at a time (their fields come after every step's, message by message)
    buf = d.data
    # in 8-byte arrays: a tuple of five ints took ~200 bytes, and the stragglers of a bundle
    # scan can hold tens of thousands of fields (7 MiB of pixel6a-startup's peak)
    rest = array("Q")
    for m, p, stop in zip(live.tolist(), pos.tolist(), end.tolist(), strict=True):
        while p < stop:
            f, w, v, s, nxt = _field(buf, p, stop)
            if nxt < 0:
                damage[m] = p
                break
            if f != skip:
                rest.extend((m, f, w, v, s))
            p = nxt
    tail = np.frombuffer(rest, np.uint64).reshape(-1, 5)
    dtypes = (np.int64, np.int64, np.int64, np.uint64, np.int64)
    columns = [np.concatenate([s[c] for s in steps] + [tail[:, c].astype(like)])
               for c, like in enumerate(dtypes)]  # fmt: skip
    order = np.argsort(columns[0], kind="stable")  # message by message, each in field order
    return (
        columns[0][order],
        columns[1][order].astype(np.int32),
        columns[2][order].astype(np.int8),
        columns[3][order],
        columns[4][order],
        damage,
    )


def last_rows(msg: I64, rows: I64) -> I64:
    """Of ``rows`` (ascending rows of a :func:`scan`, so grouped by message), the last of each
    message: protobuf's "last one wins" for scalars."""
    owners = msg[rows]
    return rows[np.append(owners[1:] != owners[:-1], True)] if rows.size else rows


def pick(d: U8, starts: I64, ends: I64, wanted: NDArray[np.int32]) -> tuple[U64, I64, int]:
    """:func:`~importers.perfetto.kernels.pick`: ``(value, length, damaged count)``, one column
    per ``wanted`` field (a number wanted twice fills only its last column, as there)."""
    msg, number, wire, value, at, damage = scan(d, starts, ends, 0)
    out = np.zeros((starts.shape[0], wanted.shape[0]), np.uint64)
    length = np.full((starts.shape[0], wanted.shape[0]), -1, np.int64)
    slot = {int(f): k for k, f in enumerate(wanted.tolist())}
    for f, k in slot.items():
        rows = last_rows(msg, np.flatnonzero(number == f))
        owner, is_len = msg[rows], wire[rows] == LEN
        out[owner, k] = np.where(is_len, at[rows].astype(np.uint64), value[rows])
        length[owner, k] = np.where(is_len, value[rows].astype(np.int64), 0)
    return out, length, int(np.count_nonzero(damage != INTACT))


def packed(d: U8, starts: I64, ends: I64) -> tuple[U64, I64, NDArray[np.bool_]]:
    """The varints filling each run ``d[starts[i]:ends[i]]`` back to back: all their values
    in order, how many each run holds, and whether it is damaged (one runs past its end or
    past :data:`VARINT_BYTES`), as :func:`~importers.perfetto.kernels.read_varint` read in a
    loop to each run's end decides. Every byte is looked at once, all runs together."""
    lengths = ends - starts
    first = np.cumsum(lengths) - lengths  # each run's first byte in the flat view
    total = int(lengths.sum())
    run = np.repeat(np.arange(starts.shape[0]), lengths)
    b = d[np.arange(total) - first[run] + starts[run]] if total else np.zeros(0, np.uint8)
    ends_varint = b < 0x80
    opens = np.zeros(total, np.bool_)  # a varint starts a run or follows the end of one
    opens[first[lengths > 0]] = True
    opens[1:] |= ends_varint[:-1]
    begin = np.flatnonzero(opens)
    varint = np.cumsum(opens) - 1
    byte = np.arange(total) - begin[varint]
    last = np.append(begin[1:], total)[: begin.size] - 1  # each varint's last byte
    broken = ~ends_varint[last] | (last - begin >= VARINT_BYTES)
    shift = (7 * np.minimum(byte, VARINT_BYTES - 1)).astype(np.uint64)
    bits = (b & 0x7F).astype(np.uint64) << shift
    values = np.bitwise_or.reduceat(bits, begin) if begin.size else np.zeros(0, np.uint64)
    owner = run[begin]
    damaged = np.bincount(owner[broken], minlength=starts.shape[0]) > 0
    counts = np.bincount(owner, minlength=starts.shape[0]).astype(np.int64)
    return values, counts, damaged


def unpack(d: U8, starts: I64, ends: I64, single: NDArray[np.bool_]) -> tuple[int, I64, U64]:
    """:func:`~importers.perfetto.kernels.unpack`: ``(count, counts, values)``; count is
    -1 - i when piece ``i`` is the first damaged one (counts and values then empty)."""
    counts = np.zeros(starts.shape[0], np.int64)
    damaged = np.zeros(starts.shape[0], np.bool_)
    one = np.flatnonzero(single & (starts < ends))
    value, after = read_varints(d, starts[one], ends[one])
    counts[one] = 1
    damaged[one] = after < 0
    runs = np.flatnonzero(~single)
    values, counts[runs], damaged[runs] = packed(d, starts[runs], ends[runs])
    if damaged.any():
        return -1 - int(np.argmax(damaged)), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    first = np.cumsum(counts) - counts
    out = np.empty(int(counts.sum()), np.uint64)
    out[first[one]] = value
    n = counts[runs]
    out[np.repeat(first[runs] - (np.cumsum(n) - n), n) + np.arange(values.shape[0])] = values
    return int(out.shape[0]), counts, out
