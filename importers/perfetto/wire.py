"""The protobuf wire format, decoded by compiled loops over the bytes of many messages at once.

A message is a sequence of fields, each a varint key ``field_number << 3 | wire_type`` and a
value: wire type 0 a varint, 1 eight little-endian bytes, 2 a varint length and that many
bytes (strings, nested messages, packed repeated scalars), 5 four bytes. Types 3 and 4
(groups) are deprecated and never written by Perfetto, so they count as damage here, as do
field numbers 0 and above 2**29 - 1, varints longer than ten bytes and lengths past the end of
the message (protobuf.dev/programming-guides/encoding).

Every kernel takes the bytes and the ``[start, end)`` spans of a batch of messages and returns
flat arrays; nothing in Python runs per field. Counting kernels and filling kernels are the
same loop run twice (``fill=False`` sizes the output), as elsewhere in the project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from numpy.typing import NDArray

from importers.tracefs.fields import gather_bytes

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]

VARINT, I64_WIRE, LEN, I32_WIRE = 0, 1, 2, 5
#: the largest field number protobuf allows (2**29 - 1): a larger key is damage
MAX_FIELD = (1 << 29) - 1
#: a message with no damage
INTACT = -1


Int = np.int64
#: a position in the bytes: Python int outside the compiled code, int64 inside it
Pos = int | np.int64
_NONE = np.uint64(0)


@njit(cache=True, inline="always")
def _varint(d: U8, at: Pos, end: Pos) -> tuple[np.uint64, Int]:
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
def _field(d: U8, at: Pos, end: Pos) -> tuple[Int, Int, np.uint64, Int, Int]:
    """One field at ``at``: ``(number, wire type, value, value start, position after)``.

    For LEN fields ``value`` is the length and the value starts at the returned start; for
    fixed fields ``value`` holds the little-endian bytes. Position after is -1 when damaged.
    """
    key, pos = _varint(d, at, end)
    if pos < 0:
        return Int(0), Int(0), _NONE, Int(0), Int(-1)
    number = Int(key >> np.uint64(3))
    wire = Int(key & np.uint64(7))
    if number == 0 or number > MAX_FIELD:
        return number, wire, _NONE, Int(0), Int(-1)
    if wire == VARINT:
        value, after = _varint(d, pos, end)
        return number, wire, value, pos, after
    if wire == LEN:
        length, start = _varint(d, pos, end)
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
            f, w, v, s, nxt = _field(d, pos, end)
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
            f, w, v, s, nxt = _field(d, pos, end)
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
            value, pos = _varint(d, pos, ends[i])
            if pos < 0:
                return -1 - i
            if fill:
                out[n] = value
            n += 1
            c += 1
        counts[i] = c
    return n


@njit(cache=True, nogil=True)
def ftrace_events(
    d: U8,
    starts: I64,
    ends: I64,
    fill: bool,
    per_bundle: I64,
    ts: I64,
    pid: NDArray[np.int32],
    flags: NDArray[np.uint8],
    kind: NDArray[np.int32],
    body: I64,
    body_len: NDArray[np.int32],
    damage: I64,
) -> int:
    """The ``FtraceEvent``s (field 2) of ``FtraceEventBundle``s, decoded one level down.

    Per event: ``timestamp`` (1), ``pid`` (2), ``common_flags`` (5, the kernel's 8-bit
    ``common_flags``) and which event it is: the number of its oneof member and that
    member's bytes (``kind`` 0 when it has none) [protos/perfetto/trace/ftrace/
    ftrace_event.proto ``FtraceEvent``]. ``per_bundle[b]`` counts bundle ``b``'s events.
    ``damage[b]`` as in :func:`scan`, for a bundle or any of its events; the events before
    the damage are kept. Counting (``fill`` false) only walks the bundles' own fields, so it
    cannot see damage inside an event: filling may then keep fewer events than it counted.
    """
    n = 0
    for b in range(starts.shape[0]):
        pos, end = starts[b], ends[b]
        damage[b] = INTACT
        per_bundle[b] = 0
        while pos < end:
            f, w, _, s, nxt = _field(d, pos, end)
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
                g, x, y, q, after = _field(d, p, nxt)
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
            ts[n] = np.int64(e_ts)
            pid[n] = np.int32(np.int64(e_pid & np.uint64(0xFFFFFFFF)))
            flags[n] = np.uint8(e_flags & np.uint64(0xFF))
            kind[n] = e_kind
            body[n] = e_body
            body_len[n] = e_len
            per_bundle[b] += 1
            n += 1
    return n


@dataclass
class Fields:
    """Every field of a batch of messages (see :func:`scan`), as parallel arrays.

    ``at`` is where a LEN field's bytes start (``value`` is their length) or where a scalar's
    encoding starts; ``damage`` has one entry per message.
    """

    msg: I64
    number: NDArray[np.int32]
    wire: NDArray[np.int8]
    value: U64
    at: I64
    damage: I64

    def of(self, number: int, wire: int | None = None) -> NDArray[np.bool_]:
        """Mask of the rows of field ``number`` (and wire type ``wire`` when given)."""
        hit: NDArray[np.bool_] = self.number == number
        return hit if wire is None else hit & (self.wire == wire)


def last_of(
    f: Fields, count: int, number: int, wire: int | None = None
) -> tuple[U64, NDArray[np.bool_], I64]:
    """Per message of ``f`` (``count`` of them): field ``number``'s value (its last
    occurrence, as protobuf merges scalars), whether the message has it, and ``at``; only
    occurrences of wire type ``wire`` when given."""
    rows = np.flatnonzero(f.of(number, wire))[::-1]
    owners, first = np.unique(f.msg[rows], return_index=True)
    chosen = rows[first]
    value = np.zeros(count, np.uint64)
    at = np.zeros(count, np.int64)
    has = np.zeros(count, np.bool_)
    value[owners] = f.value[chosen]
    at[owners] = f.at[chosen]
    has[owners] = True
    return value, has, at


def scan_fields(data: U8, starts: I64, ends: I64, skip: int = 0) -> Fields:
    """:func:`scan` run twice: count, then fill (field ``skip`` left out; 0 keeps all)."""
    n_msgs = starts.shape[0]
    damage = np.empty(n_msgs, np.int64)
    none = np.empty(0, np.int64)
    n = scan(data, starts, ends, skip, False, none, none.astype(np.int32), none.astype(np.int8),
             none.astype(np.uint64), none, damage)  # fmt: skip
    out = Fields(
        np.empty(n, np.int64),
        np.empty(n, np.int32),
        np.empty(n, np.int8),
        np.empty(n, np.uint64),
        np.empty(n, np.int64),
        damage,
    )
    scan(data, starts, ends, skip, True, out.msg, out.number, out.wire, out.value, out.at, damage)
    return out


def pick_fields(data: U8, starts: I64, ends: I64, wanted: list[int]) -> tuple[U64, I64, int]:
    """:func:`pick`: ``(value, length, damaged count)`` with one column per ``wanted`` field."""
    n = starts.shape[0]
    value = np.zeros((n, len(wanted)), np.uint64)
    length = np.empty((n, len(wanted)), np.int64)
    damaged = pick(data, starts, ends, np.asarray(wanted, np.int32), value, length)
    return value, length, damaged


def repeated(data: U8, f: Fields, numbers: list[int]) -> dict[int, tuple[I64, U64]] | int:
    """Every element of repeated varint fields ``numbers`` of the messages of ``f``, packed
    or not, in order: ``{number: (message, value)}``; or the index of a damaged message."""
    rows = np.flatnonzero(np.isin(f.number, numbers) & np.isin(f.wire, [VARINT, LEN]))
    rows = rows[np.argsort(f.number[rows], kind="stable")]  # by field, then in order
    single = f.wire[rows] == VARINT
    starts = f.at[rows]
    # a single varint stops itself (the scan checked it): at most ten bytes
    ends = np.where(
        single, np.minimum(starts + 10, data.shape[0]), starts + f.value[rows].astype(np.int64)
    )
    counts = np.empty(rows.shape[0], np.int64)
    n = unpack(data, starts, ends, single, False, counts, np.empty(0, np.uint64))
    if n < 0:
        return int(f.msg[rows[-1 - n]])
    values = np.empty(n, np.uint64)
    unpack(data, starts, ends, single, True, counts, values)
    owner = np.repeat(f.msg[rows], counts)
    # rows are grouped by field number: each field's elements are one slice
    bounds = np.concatenate([[0], np.cumsum(counts)])
    firsts = np.searchsorted(f.number[rows], numbers, side="left")
    lasts = np.searchsorted(f.number[rows], numbers, side="right")
    return {k: (owner[bounds[a] : bounds[z]], values[bounds[a] : bounds[z]])
            for k, a, z in zip(numbers, firsts, lasts, strict=True)}  # fmt: skip


#: rows checked as UTF-8 at once (a stretch with a bad row is decoded in Python)
_UTF8_STRETCH = 1 << 16


def _binary(data: U8, at: I64, length: I64) -> pa.LargeBinaryArray:
    """Bytes at ``data[at:at+length]`` per row; null where ``length`` is negative."""
    absent = length < 0
    buf, offsets = gather_bytes(data, np.where(absent, 0, at), np.where(absent, 0, length))
    mask = pa.py_buffer(np.packbits(~absent, bitorder="little")) if absent.any() else None
    binary: pa.LargeBinaryArray = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(at), [mask, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )
    return binary


def _utf8(binary: pa.Array) -> pa.Array:
    """Binary values as strings: UTF-8 as protobuf requires; a stretch of rows that is not
    (kernel comms and trace_marker texts are bytes) is decoded row by row with
    replacement."""
    pieces = []
    for start in range(0, max(len(binary), 1), _UTF8_STRETCH):
        stretch = binary.slice(start, _UTF8_STRETCH)
        try:
            pieces.append(stretch.cast(pa.large_string()))
        except pa.ArrowInvalid:
            texts = [None if v is None else v.decode("utf-8", "replace")
                     for v in stretch.to_pylist()]  # fmt: skip
            pieces.append(pa.array(texts, pa.large_string()))
    return pa.concat_arrays(pieces)


def text_column(data: U8, at: I64, length: I64) -> pa.DictionaryArray:
    """Strings at ``data[at:at+length]`` as a :data:`~importers.schema.DICT` column; null
    where ``length`` is negative (field absent). Arrow hashes the raw bytes; only the
    distinct values are decoded."""
    encoded = pc.dictionary_encode(_binary(data, at, length))
    words = _utf8(encoded.dictionary).cast(pa.string())
    column: pa.DictionaryArray = pa.DictionaryArray.from_arrays(
        encoded.indices.cast(pa.int32()), words
    )
    return column


def text_array(data: U8, at: I64, length: I64) -> pa.Array:
    """Strings at ``data[at:at+length]`` (mostly distinct ones: no dictionary)."""
    return _utf8(_binary(data, at, length))
