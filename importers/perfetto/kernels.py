"""The compiled loops of the protobuf wire format over the bytes of many messages at once
(:mod:`~importers.perfetto.wire` wraps them; :mod:`~importers.perfetto.bundle_kernels` builds
on :func:`read_field`).

numba is imported by these two modules only, and they only when bytes are decoded, so that
importing the package costs no compiler start-up.

Every kernel takes the bytes and the ``[start, end)`` spans of a batch of messages and fills
flat arrays; nothing in Python runs per field. Counting kernels and filling kernels are the
same loop run twice (``fill=False`` sizes the output), as elsewhere in the project.
"""

from __future__ import annotations

import numpy as np
from numba import njit
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

Int = np.int64
#: a position in the bytes: Python int outside the compiled code, int64 inside it
Pos = int | np.int64
_NONE = np.uint64(0)


@njit(cache=True, inline="always")
def read_varint(d: U8, at: Pos, end: Pos) -> tuple[np.uint64, Int]:
    """The varint at ``d[at:end]`` and the position after it; position -1 when damaged."""
    value = np.uint64(0)
    shift = np.uint64(0)
    pos = Int(at)
    while pos < end:
        b = d[pos]
        pos += 1
        value |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += np.uint64(7)
        if shift >= np.uint64(70):
            return _NONE, Int(-1)
    return _NONE, Int(-1)


@njit(cache=True, inline="always")
def read_field(d: U8, at: Pos, end: Pos) -> tuple[Int, Int, np.uint64, Int, Int]:
    """One field at ``at``: ``(number, wire type, value, value start, position after)``.

    For LEN fields ``value`` is the length and the value starts at the returned start; for
    fixed fields ``value`` holds the little-endian bytes. Position after is -1 when damaged.
    """
    key, pos = read_varint(d, at, end)
    if pos < 0:
        return Int(0), Int(0), _NONE, Int(0), Int(-1)
    number = Int(key >> np.uint64(3))
    wire = Int(key & np.uint64(7))
    if number == 0 or number > MAX_FIELD:
        return number, wire, _NONE, Int(0), Int(-1)
    if wire == VARINT:
        value, after = read_varint(d, pos, end)
        return number, wire, value, pos, after
    if wire == LEN:
        length, start = read_varint(d, pos, end)
        if start < 0 or length > np.uint64(end - start):
            return number, wire, _NONE, Int(0), Int(-1)
        return number, wire, length, start, start + Int(length)
    if wire in (I64_WIRE, I32_WIRE):
        size = 8 if wire == I64_WIRE else 4
        if end - pos < size:
            return number, wire, _NONE, Int(0), Int(-1)
        value = np.uint64(0)
        for k in range(size):
            value |= np.uint64(d[pos + k]) << np.uint64(8 * k)
        return number, wire, value, pos, pos + size
    return number, wire, _NONE, Int(0), Int(-1)


@njit(cache=True, nogil=True)
def scan(
    d: U8,
    starts: I64,
    ends: I64,
    skip: int,
    fill: bool,
    msg: I64,
    number: NDArray[np.int32],
    wire: NDArray[np.int8],
    value: U64,
    at: I64,
    damage: I64,
) -> int:
    """Every field of every message, in order (field ``skip`` left out); returns the count.

    ``damage[m]`` is the offset where message ``m`` stops making sense (:data:`INTACT` if it
    does not); fields before that offset are kept.
    """
    n = 0
    for m in range(starts.shape[0]):
        pos, end = starts[m], ends[m]
        damage[m] = INTACT
        while pos < end:
            f, w, v, s, nxt = read_field(d, pos, end)
            if nxt < 0:
                damage[m] = pos
                break
            if f != skip:
                if fill:
                    msg[n] = m
                    number[n] = f
                    wire[n] = w
                    value[n] = v
                    at[n] = s
                n += 1
            pos = nxt
    return n


@njit(cache=True, nogil=True)
def pick(d: U8, starts: I64, ends: I64, wanted: NDArray[np.int32], value: U64, length: I64) -> int:
    """The last occurrence of each ``wanted`` field of every message (proto's "last wins").

    ``length[m, k]`` is -1 when message ``m`` lacks field ``wanted[k]``; for LEN fields
    ``value[m, k]`` is where the bytes start and ``length[m, k]`` how many there are, for
    other fields ``value`` is the value and ``length`` 0. Returns the number of damaged
    messages (their fields before the damage are kept).
    """
    top = 0
    for k in range(wanted.shape[0]):
        top = max(top, wanted[k])
    slot = np.full(top + 1, -1, np.int64)
    for k in range(wanted.shape[0]):
        slot[wanted[k]] = k
    damaged = 0
    for m in range(starts.shape[0]):
        length[m, :] = -1
        pos, end = starts[m], ends[m]
        while pos < end:
            f, w, v, s, nxt = read_field(d, pos, end)
            if nxt < 0:
                damaged += 1
                break
            if f <= top and slot[f] >= 0:
                k = slot[f]
                if w == LEN:
                    value[m, k] = np.uint64(s)
                    length[m, k] = int(v)
                else:
                    value[m, k] = v
                    length[m, k] = 0
            pos = nxt
    return damaged


@njit(cache=True, nogil=True)
def unpack(
    d: U8, starts: I64, ends: I64, single: NDArray[np.bool_], fill: bool, counts: I64, out: U64
) -> int:
    """The varints of each piece: one at ``starts[i]`` when ``single[i]``, else all of
    ``d[starts[i]:ends[i]]`` (a packed run); ``counts[i]`` says how many. Returns the count,
    or -1 - i when piece ``i`` is damaged."""
    n = 0
    for i in range(starts.shape[0]):
        pos = Int(starts[i])
        c = 0
        while pos < ends[i] and (c == 0 or not single[i]):
            value, pos = read_varint(d, pos, ends[i])
            if pos < 0:
                return -1 - i
            if fill:
                out[n] = value
            n += 1
            c += 1
        counts[i] = c
    return n
