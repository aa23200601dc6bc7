"""Protocol Buffers wire format, encoded column-wise with numpy.

A Perfetto trace is a ``Trace`` message: a sequence of ``packet`` fields (number 1, length
delimited), one per ``TracePacket``. Building millions of ``TracePacket`` objects with
python-protobuf costs ~2.5 µs each (``perfetto-and-scale.md`` §1.5), so the bulk packets
(slices, instants, counter samples) are encoded here as whole columns instead: every varint of a
column is written at the same, possibly non-minimal, width (protobuf parsers accept varints of
up to 10 bytes whatever their value), so every packet of a batch has the same length, all tag
and length bytes are constants, and a batch of ``n`` packets is one ``(n, length)`` ``uint8``
array (§1.6). Widths are the smallest that hold the batch's largest value, so small values stay
small.

A packet layout is a tree of :class:`Varint`, :class:`Fixed64` and :class:`Message` parts;
:func:`encode` turns it into bytes rows and :func:`interleave` merges batches of different
layouts into one ordered byte stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
Rows = npt.NDArray[np.uint8]

# Wire types (protobuf encoding spec): VARINT = 0, I64 = 1, LEN = 2.
VARINT, I64, LEN = 0, 1, 2


def varint(value: int) -> bytes:
    """The minimal varint encoding of a non-negative ``value`` (< 2**64)."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    """The key of field ``field``: ``(field << 3) | wire_type`` as a varint."""
    return varint(field << 3 | wire_type)


def width_for(values: U64) -> int:
    """Bytes a padded varint needs so that every value of ``values`` fits (7 bits a byte)."""
    top = int(values.max()) if values.size else 0
    return max(1, -(-top.bit_length() // 7))


def _put_varints(out: Rows, values: U64) -> None:
    """Write ``values`` as padded varints into the columns of ``out`` (one byte column at a
    time: no ``n x width`` uint64 temporary).

    Every byte but the last carries the continuation bit, so ``1`` at width 3 is ``81 80 00``;
    values must fit in ``7 * width`` bits (all of uint64 at width 10).
    """
    width = out.shape[1]
    for j in range(width):
        byte = (values >> np.uint64(7 * j)) & np.uint64(0x7F)
        out[:, j] = byte if j == width - 1 else byte | np.uint64(0x80)


def as_u64(values: npt.ArrayLike) -> U64:
    """Integers as the uint64 a varint carries: int64 two's complement, as protobuf does."""
    arr = np.asarray(values)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64).view(np.uint64)
    return arr.astype(np.uint64)


@dataclass(frozen=True)
class Varint:
    """A varint field: one value per packet, or the same ``int`` in every packet."""

    field: int
    values: U64 | int


@dataclass(frozen=True)
class Fixed64:
    """A ``double`` field (wire type I64), one value per packet."""

    field: int
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Message:
    """An embedded message field made of ``parts``, in field order."""

    field: int
    parts: Sequence[Part]


Part = Varint | Fixed64 | Message


# A laid-out column: (offset, constant bytes) or (offset, width, values, fixed64?)
_Const = tuple[int, bytes]
_Column = tuple[int, int, npt.NDArray[Any], bool]


def _layout(part: Part, n: int, offset: int, consts: list[_Const], cols: list[_Column]) -> int:
    """Place ``part`` at byte ``offset`` of every row; returns the offset after it."""
    if isinstance(part, Varint):
        if isinstance(part.values, int):
            const = tag(part.field, VARINT) + varint(part.values)
            consts.append((offset, const))
            return offset + len(const)
        if part.values.shape != (n,):
            raise ValueError(f"field {part.field}: {part.values.shape[0]} values for {n} packets")
        key = tag(part.field, VARINT)
        consts.append((offset, key))
        width = width_for(part.values)
        cols.append((offset + len(key), width, part.values, False))
        return offset + len(key) + width
    if isinstance(part, Fixed64):
        key = tag(part.field, I64)
        consts.append((offset, key))
        cols.append((offset + len(key), 8, part.values, True))
        return offset + len(key) + 8
    # An embedded message: its length is the same in every row, so the header is a constant
    # that can only be written once the parts are placed.
    inner_consts: list[_Const] = []
    inner_cols: list[_Column] = []
    end = 0
    for p in part.parts:
        end = _layout(p, n, end, inner_consts, inner_cols)
    head = tag(part.field, LEN) + varint(end)
    consts.append((offset, head))
    base = offset + len(head)
    consts.extend((base + o, b) for o, b in inner_consts)
    cols.extend((base + o, w, v, f) for o, w, v, f in inner_cols)
    return base + end


def encode(layout: Message, n: int) -> Rows:
    """Encode ``n`` messages of ``layout`` (normally ``Trace.packet``) as ``(n, length)`` rows."""
    consts: list[_Const] = []
    cols: list[_Column] = []
    length = _layout(layout, n, 0, consts, cols)
    out = np.empty((n, length), np.uint8)
    for offset, const in consts:
        out[:, offset : offset + len(const)] = np.frombuffer(const, np.uint8)
    for offset, width, values, fixed64 in cols:
        if fixed64:
            raw = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
            out[:, offset : offset + 8] = raw
        else:
            _put_varints(out[:, offset : offset + width], values)
    return out


def interleave(
    batches: Sequence[Rows], order: npt.NDArray[np.int64], max_packets: int = 1 << 20
) -> Iterator[memoryview]:
    """The rows of every batch, concatenated in ``order``, in pieces of ``max_packets`` rows.

    ``order`` indexes the batches' rows as if stacked (batch 0's rows first); batches may have
    different row lengths, so this is a gather of variable-length byte runs: a compiled loop
    over rows (:func:`_gather`), one output buffer per piece.
    """
    if len(batches) == 1:  # rows of one width: a plain row gather
        for first in range(0, order.size, max_packets):
            yield batches[0][order[first : first + max_packets]].data
        return
    sizes = np.array([b.shape[0] for b in batches], np.int64)
    widths = np.array([b.shape[1] for b in batches], np.int64)
    lengths = np.repeat(widths, sizes)
    starts = np.cumsum(lengths) - lengths  # of each row in ``flat``
    flat = np.concatenate([b.reshape(-1) for b in batches])
    for first in range(0, order.size, max_packets):
        pick = order[first : first + max_packets]
        out = np.empty(int(lengths[pick].sum()), np.uint8)
        _gather(flat, starts[pick], lengths[pick], out)
        yield out.data


@numba.njit(cache=True, nogil=True)
def _gather(
    flat: Rows, starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], out: Rows
) -> None:
    """``out`` = the runs ``flat[starts[i] : starts[i] + lengths[i]]``, one after the other."""
    pos = 0
    for i in range(starts.shape[0]):
        n = lengths[i]
        out[pos : pos + n] = flat[starts[i] : starts[i] + n]
        pos += n
