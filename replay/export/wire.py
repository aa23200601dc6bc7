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

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
Rows = npt.NDArray[np.uint8]

# Wire types (protobuf encoding spec): VARINT = 0, I64 = 1, LEN = 2.
VARINT, I64, LEN = 0, 1, 2
#: The largest varint protobuf parsers accept: 10 bytes hold 64 bits.
MAX_VARINT_BYTES = 10


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


def padded_varints(values: U64, width: int) -> Rows:
    """``(n,)`` uint64 -> ``(n, width)`` uint8: each value as a varint of exactly ``width`` bytes.

    Every byte but the last carries the continuation bit, so ``1`` at width 3 is
    ``81 80 00``; values must fit in ``7 * width`` bits (all of uint64 at width 10).
    """
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    out = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    out[:, :-1] |= 0x80
    return out


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


def _blocks(part: Part, n: int) -> list[Rows]:
    """The byte columns of one field, in order."""
    if isinstance(part, Varint):
        key = np.frombuffer(tag(part.field, VARINT), np.uint8)
        if isinstance(part.values, int):
            const = np.frombuffer(tag(part.field, VARINT) + varint(part.values), np.uint8)
            return [np.broadcast_to(const, (n, const.size))]
        if part.values.shape != (n,):
            raise ValueError(f"field {part.field}: {part.values.shape[0]} values for {n} packets")
        cols = padded_varints(part.values, width_for(part.values))
        return [np.broadcast_to(key, (n, key.size)), cols]
    if isinstance(part, Fixed64):
        key = np.frombuffer(tag(part.field, I64), np.uint8)
        raw = np.ascontiguousarray(part.values, dtype="<f8").view(np.uint8).reshape(n, 8)
        return [np.broadcast_to(key, (n, key.size)), raw]
    inner = [b for p in part.parts for b in _blocks(p, n)]
    size = sum(b.shape[1] for b in inner)
    head = np.frombuffer(tag(part.field, LEN) + varint(size), np.uint8)
    return [np.broadcast_to(head, (n, head.size)), *inner]


def encode(layout: Message, n: int) -> Rows:
    """Encode ``n`` messages of ``layout`` (normally ``Trace.packet``) as ``(n, length)`` rows."""
    blocks = _blocks(layout, n)
    if n == 0:
        return np.zeros((0, sum(b.shape[1] for b in blocks)), np.uint8)
    return np.concatenate(blocks, axis=1)


def interleave(
    batches: Sequence[Rows], order: npt.NDArray[np.int64], max_packets: int = 1 << 20
) -> Iterator[bytes]:
    """The rows of every batch, concatenated in ``order``, in pieces of ``max_packets`` rows.

    ``order`` indexes the batches' rows as if stacked (batch 0's rows first); batches may have
    different row lengths. The bytes are gathered with one index array per piece, so memory
    stays bounded by ``max_packets`` whatever the number of rows.
    """
    lengths = np.concatenate([np.full(b.shape[0], b.shape[1], np.int64) for b in batches])
    bases = np.cumsum([0] + [b.size for b in batches[:-1]])
    starts = np.concatenate(
        [
            base + np.arange(b.shape[0], dtype=np.int64) * b.shape[1]
            for base, b in zip(bases, batches, strict=True)
        ]
    )
    flat = np.concatenate([b.reshape(-1) for b in batches])
    for first in range(0, order.size, max_packets):
        pick = order[first : first + max_packets]
        take_len, take_start = lengths[pick], starts[pick]
        out_start = np.cumsum(take_len) - take_len
        index = np.repeat(take_start - out_start, take_len) + np.arange(
            int(take_len.sum()), dtype=np.int64
        )
        yield flat[index].tobytes()
