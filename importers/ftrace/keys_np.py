"""The numpy twin of the ``key=value`` kernel of :mod:`importers.ftrace.scan_jit`, for small
inputs: the same cuts and integers, every row of a grammar at once.

Each key is looked for once in the whole chunk (its `` key=`` occurrences), and each row takes
the first occurrence after the value of the key before; integers are read digit position by
digit position over all values, with the overflow rules of the numba kernel.
"""

from __future__ import annotations

import numpy as np

from importers.ftrace.scan_bytes import (
    COMM,
    DASH,
    I8,
    I32,
    I64,
    INT64_MAX,
    SPACE,
    TOKEN,
    U8,
    U64_TOP_DIGIT,
    Bools,
    Views,
)
from importers.ftrace.scan_np import Bytes, placeholder, view_structs
from importers.ranges import ABSENT, OVERFLOW, SIGNED, UNSIGNED


def find_keys(
    buf: U8,
    starts: I64,
    ends: I64,
    keys: U8,
    key_offsets: I64,
    required: Bools,
    kind: I8,
    view_of: I8,
) -> tuple[Bools, I32, I64, I8, Views]:
    """numpy twin of :func:`importers.ftrace.scan.find_keys`, on the rows' payloads copied
    one after the other (:func:`_compact`): each pass then reads only those bytes, not the
    whole chunk, whatever the share of the chunk the grammar's rows are."""
    b, starts, ends, shift = _compact(buf, starts, ends)
    n, m = starts.size, key_offsets.size - 1
    vs = np.full((m, n), -1, np.int32)
    ints = np.zeros((m, n), np.int64)
    int_how = np.full((m, n), ABSENT, np.int8)
    views = np.zeros((max(int(view_of.max()) + 1, 0), n, 16), np.uint8)
    key_start = _cut(b, starts, ends, keys, key_offsets)
    found = key_start >= 0
    ok: Bools = np.all(found | ~required[:, None], axis=0)
    found &= ok[None, :]  # no half-cut values: a row without a required key has none
    last = np.full(n, -1, np.int64)  # where the key after this one starts
    for k in range(m - 1, -1, -1):
        rows = np.flatnonzero(found[k])
        e = ends[rows]
        v0 = key_start[k, rows] + (key_offsets[k + 1] - key_offsets[k])
        end = np.where(last[rows] < 0, e, last[rows] - 1)
        if kind[k] == TOKEN:
            end = b.skip("text", v0, e)
        end = b.runs("space").prev_out(end - 1, v0) + 1  # trailing blanks
        last[rows] = key_start[k, rows]
        shown = np.where(placeholder(b, v0, end), -1, v0) if kind[k] == COMM else v0
        vs[k, rows] = np.where(shown < 0, -1, shown + shift[rows])
        if view_of[k] >= 0:  # strings of more than 12 bytes point into the chunk
            in_chunk = Bytes(buf)
            views[view_of[k], rows] = view_structs(in_chunk, vs[k, rows], end + shift[rows])
        how, value = parse_int(b, v0, end)
        int_how[k, rows] = how
        ints[k, rows] = np.where((how == SIGNED) | (how == UNSIGNED), value, 0)
    return ok, vs, ints, int_how, views


def _compact(buf: U8, starts: I64, ends: I64) -> tuple[Bytes, I64, I64, I64]:
    """The bytes ``buf[starts[i]:ends[i]]`` of every row, each followed by a newline (a byte
    no field runs over), where each row now starts and ends, and how far back it moved."""
    width = ends - starts
    at = np.cumsum(width + 1) - (width + 1)
    shift = starts - at
    pos = np.arange(int(width.sum()) + width.size) + np.repeat(shift, width + 1)
    sub = buf[np.clip(pos, 0, max(buf.size - 1, 0))]
    sub[at + width] = 0x0A
    return Bytes(sub), at, at + width, shift


def _cut(b: Bytes, starts: I64, ends: I64, keys: U8, key_offsets: I64) -> I64:
    """Where each key starts in each row, (keys, rows), -1 where it is not found: the first
    key at the start of the payload, each later one as `` key=`` after the previous value.

    Unlike the kernel it goes on past a missing required key: such a row is not ok, and
    :func:`find_keys` drops all its keys."""
    m, n = key_offsets.size - 1, starts.size
    key_start = np.full((m, n), -1, np.int64)
    pos = starts.copy()
    spaces = np.flatnonzero(b.buf == SPACE)
    for k in range(m):
        key = keys[key_offsets[k] : key_offsets[k + 1]]
        klen = key.size
        if k == 0:
            hit = (ends - starts >= klen) & _matches(b, starts, key)
            at = starts
        else:
            occurrences = spaces[_matches(b, spaces + 1, key)]
            first = np.searchsorted(occurrences, pos)
            p = np.append(occurrences, np.iinfo(np.int64).max // 2)[first]
            hit = p + klen < ends
            at = p + 1
        key_start[k] = np.where(hit, at, -1)
        pos = np.where(hit, at + klen, pos)
    return key_start


def _matches(b: Bytes, at: I64, key: U8) -> Bools:
    """Whether ``key`` is at each position ``at`` of the chunk (entirely inside it)."""
    hit = np.zeros(at.shape, np.bool_)
    left = np.arange(at.size)  # the positions that matched so far
    for t in range(key.size):
        left = left[b.at(at[left] + t) == key[t]]
    hit[left] = True
    return hit


def parse_int(b: Bytes, s: I64, e: I64) -> tuple[I8, I64]:
    """How each ``buf[s:e]`` reads as an integer and its int64 value (the bit pattern when
    UNSIGNED), as the numba kernel reads them: optional sign, then ``0x`` hex or decimal,
    stopping at the first space; anything else after the digits makes it ABSENT, and 64 bits
    that do not hold it OVERFLOW (never wrapped into a value)."""
    neg = (s < e) & (b.at(s) == DASH)
    s = s + neg
    hexa = (s + 1 < e) & (b.at(s) == 0x30) & ((b.at(s + 1) | 0x20) == 0x78)
    s = s + 2 * hexa
    p = np.where(hexa, b.skip("hex", s, e), b.skip("digit", s, e))
    v = np.zeros(s.shape, np.uint64)
    over = np.zeros(s.shape, np.bool_)
    # leading zeros add nothing; 16 hex or 20 decimal significant digits fill 64 bits
    q = np.where(hexa, b.skip("hex-zero", s, p), b.skip("zero", s, p))
    over |= np.where(hexa, p - q > 16, p - q > 20)
    for t in range(min(int((p - q).max(initial=0)), 20)):
        live = q + t < p
        c = b.at(q + t) | np.where(hexa, 0x20, 0)  # the kernel lower-cases hex digits
        d = np.where(c >= 0x61, c - 0x57, c - 0x30).astype(np.uint64)
        top = (v > U64_TOP_DIGIT) | ((v == U64_TOP_DIGIT) & (d > 5))
        over |= live & ~hexa & top
        nxt = np.where(hexa, (v << np.uint64(4)) | d, v * np.uint64(10) + d)
        v = np.where(live, nxt, v)
    stop = b.at(p)
    number = (p > s) & ((p >= e) | (stop == SPACE) | (stop == 0x09))
    over |= neg & (v > INT64_MAX + np.uint64(1))
    negated = -(v - np.uint64(1)).view(np.int64) - 1  # -2^63 without overflowing on the way
    value = np.where(neg, negated, v.view(np.int64))
    how = np.where(neg | (v <= INT64_MAX), SIGNED, UNSIGNED)
    how = np.where(over, OVERFLOW, how)
    how = np.where(number, how, ABSENT).astype(np.int8)
    return how, value
