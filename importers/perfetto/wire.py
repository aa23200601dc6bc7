"""The protobuf wire format, decoded by compiled loops over the bytes of many messages at once.

A message is a sequence of fields, each a varint key ``field_number << 3 | wire_type`` and a
value: wire type 0 a varint, 1 eight little-endian bytes, 2 a varint length and that many
bytes (strings, nested messages, packed repeated scalars), 5 four bytes. Types 3 and 4
(groups) are deprecated and never written by Perfetto, so they count as damage here, as do
field numbers 0 and above 2**29 - 1, varints longer than ten bytes and lengths past the end of
the message (protobuf.dev/programming-guides/encoding).

The functions here take the bytes and the ``[start, end)`` spans of a batch of messages and
return flat arrays, filled by the loops of :mod:`~importers.perfetto.kernels` (numba, imported
when first called) or their numpy twins in :mod:`~importers.perfetto.kernels_np`, as
:func:`compiled_loops` chooses; nothing in Python runs per field (but a few fields of a few
stragglers, see :mod:`~importers.perfetto.kernels_np`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from importers import byte_loops
from importers.perfetto import bundle_kernels_np, kernels_np

# the decoders import these from here, with the functions that use them
from importers.perfetto.encoding import I64 as I64
from importers.perfetto.encoding import INTACT as INTACT
from importers.perfetto.encoding import LEN as LEN
from importers.perfetto.encoding import U8 as U8
from importers.perfetto.encoding import U64 as U64
from importers.perfetto.encoding import VARINT as VARINT


def compiled_loops(data: U8) -> bool:
    """Whether the loops over ``data``, a trace's bytes, run as numba kernels (else as their
    numpy twins).

    The choice is made by the size of the whole trace
    (:func:`importers.byte_loops.compiled_perfetto`), not of each loop: a trace is decoded
    in groups of bundles whose loops, together, walk all of it, so a large trace pays
    numba's start-up once and runs every group compiled, and a small one never loads numba.
    """
    return byte_loops.compiled_perfetto(int(data.shape[0]))


def bundle_loops(data: U8) -> ModuleType:
    """The bundle loops over ``data`` that take the same arguments on either engine
    (``compact_sched``, ``bundle_extents``, ``event_bytes``): the numba kernels of
    :mod:`~importers.perfetto.bundle_kernels` or their numpy twins, as :func:`compiled_loops`
    chooses."""
    if compiled_loops(data):
        from importers.perfetto import bundle_kernels

        return bundle_kernels
    return bundle_kernels_np


@dataclass
class Fields:
    """Every field of a batch of messages (see :func:`~importers.perfetto.kernels.scan`), as
    parallel arrays.

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
    """:func:`~importers.perfetto.kernels.scan` run twice: count, then fill (field ``skip``
    left out; 0 keeps all)."""
    if not compiled_loops(data):
        return Fields(*kernels_np.scan(data, starts, ends, skip))
    from importers.perfetto.kernels import scan

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
    """:func:`~importers.perfetto.kernels.pick`: ``(value, length, damaged count)`` with one
    column per ``wanted`` field."""
    if not compiled_loops(data):
        return kernels_np.pick(data, starts, ends, np.asarray(wanted, np.int32))
    from importers.perfetto.kernels import pick

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
    if compiled_loops(data):
        from importers.perfetto.kernels import unpack

        counts = np.empty(rows.shape[0], np.int64)
        n = unpack(data, starts, ends, single, False, counts, np.empty(0, np.uint64))
        values = np.empty(max(n, 0), np.uint64)
        if n >= 0:
            unpack(data, starts, ends, single, True, counts, values)
    else:
        n, counts, values = kernels_np.unpack(data, starts, ends, single)
    if n < 0:
        return int(f.msg[rows[-1 - n]])
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
    from importers.tracefs.fields import gather_bytes

    absent = length < 0
    buf, offsets = gather_bytes(data, np.where(absent, 0, at), np.where(absent, 0, length))
    mask = pa.py_buffer(np.packbits(~absent, bitorder="little")) if absent.any() else None
    binary: pa.LargeBinaryArray = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(at), [mask, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )
    return binary


def decode_utf8(binary: pa.Array) -> pa.Array:
    """Binary values as strings: UTF-8 as protobuf requires; a stretch of rows that is not
    (kernel comms and trace_marker texts are bytes) is decoded row by row with
    replacement."""
    try:  # one check of all the bytes, and no copy of them, when they are all UTF-8
        whole: pa.Array = binary.cast(pa.large_string())
        return whole
    except pa.ArrowInvalid:
        pass
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
    words = decode_utf8(encoded.dictionary).cast(pa.string())
    column: pa.DictionaryArray = pa.DictionaryArray.from_arrays(
        encoded.indices.cast(pa.int32()), words
    )
    return column
