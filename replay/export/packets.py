"""TracePackets of an exported replay: TrackEvent batches (columnar) and the few others.

Events go on one packet sequence (:data:`SEQUENCE_ID`). It starts with a clock snapshot
and ``trace_packet_defaults`` naming the clock of every later timestamp; event names, argument
names and string argument values are interned (``interned_data``) so that each event carries
small ids instead of strings. Field numbers are read from perfetto's generated
``perfetto_trace_pb2`` descriptors, not written out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import IO

import numpy as np
import numpy.typing as npt
import polars as pl
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
    DebugAnnotation,
    InternedData,
    TracePacket,
    TrackDescriptor,
    TrackEvent,
)

from replay.export.wire import (
    Fixed64,
    Message,
    Part,
    Rows,
    Varint,
    as_u64,
    encode,
    interleave,
    varint,
)

SEQUENCE_ID = 1
#: Track descriptors go on a sequence of their own: a thread track declared on the events'
#: sequence would make the trace processor take that thread as the sequence's (legacy) thread
#: and tag every later event on other tracks with it (``legacy_event.passthrough_utid``).
DESCRIPTOR_SEQUENCE_ID = 2
_TRACE_PACKET = 1  # Trace.packet


def _field(message: type, name: str) -> int:
    number: int = message.DESCRIPTOR.fields_by_name[name].number  # type: ignore[attr-defined]
    return number


_P_TIMESTAMP = _field(TracePacket, "timestamp")
_P_SEQUENCE_ID = _field(TracePacket, "trusted_packet_sequence_id")
_P_TRACK_EVENT = _field(TracePacket, "track_event")
_P_SEQUENCE_FLAGS = _field(TracePacket, "sequence_flags")
_E_TYPE = _field(TrackEvent, "type")
_E_TRACK_UUID = _field(TrackEvent, "track_uuid")
_E_NAME_IID = _field(TrackEvent, "name_iid")
_E_COUNTER = _field(TrackEvent, "counter_value")
_E_DOUBLE_COUNTER = _field(TrackEvent, "double_counter_value")
_E_ANNOTATIONS = _field(TrackEvent, "debug_annotations")
_A_NAME_IID = _field(DebugAnnotation, "name_iid")
_A_INT = _field(DebugAnnotation, "int_value")
_A_STRING_IID = _field(DebugAnnotation, "string_value_iid")


class Kind(IntEnum):
    """Event kinds, valued by the order they take at equal timestamps on one track.

    A slice ending at ``t`` closes before one starting at ``t`` opens (TrackEvent closes the
    innermost open slice of the track, whatever its name); counters and instants come after.
    """

    END = 0
    BEGIN = 1
    INSTANT = 2
    COUNTER = 3


_EVENT_TYPE = {
    Kind.END: TrackEvent.TYPE_SLICE_END,
    Kind.BEGIN: TrackEvent.TYPE_SLICE_BEGIN,
    Kind.INSTANT: TrackEvent.TYPE_INSTANT,
    Kind.COUNTER: TrackEvent.TYPE_COUNTER,
}


@dataclass(frozen=True)
class Batch:
    """TrackEvents of one kind as a frame.

    Columns: ``ts`` (ns), ``uuid`` (track); ``depth`` (slice nesting level, 0 outermost) for
    BEGIN and END; ``name`` for BEGIN and INSTANT; ``value`` for COUNTER; and the argument
    columns listed in ``int_args`` / ``str_args`` (a null argument is left out of its event).
    """

    kind: Kind
    frame: pl.DataFrame
    int_args: tuple[str, ...] = ()
    str_args: tuple[str, ...] = ()


def framed(packet: TracePacket) -> bytes:
    """One packet as it sits in a trace file: ``Trace.packet`` tag, length, bytes."""
    body: bytes = packet.SerializeToString()
    return bytes([_TRACE_PACKET << 3 | 2]) + varint(len(body)) + body


def descriptor_packet(td: TrackDescriptor) -> bytes:
    packet = TracePacket(trusted_packet_sequence_id=DESCRIPTOR_SEQUENCE_ID)
    packet.track_descriptor.CopyFrom(td)
    return framed(packet)


@dataclass
class Interner:
    """Interned strings of the sequence: names of events and arguments, string arguments.

    Ids are handed out in first-use order, which the writer makes deterministic; strings new
    since the last :meth:`packet` go out in the next ``interned_data`` packet, which the writer
    places before the events that use them.
    """

    _ids: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "event_names": {},
            "debug_annotation_names": {},
            "debug_annotation_string_values": {},
        }
    )
    _new: dict[str, list[str]] = field(default_factory=dict)

    def iids(self, table: str, values: pl.Series) -> npt.NDArray[np.uint64]:
        """Ids of ``values`` (no nulls) in ``table``, interning the new ones."""
        ids = self._ids[table]
        for text in values.unique(maintain_order=True).to_list():
            if text not in ids:
                ids[text] = len(ids) + 1
                self._new.setdefault(table, []).append(text)
        mapped = values.replace_strict(ids, return_dtype=pl.UInt64)
        return mapped.to_numpy().astype(np.uint64, copy=False)

    def iid(self, table: str, text: str) -> int:
        return int(self.iids(table, pl.Series([text]))[0])

    def packet(self) -> bytes | None:
        """The ``interned_data`` packet of strings interned since the last call, if any."""
        if not self._new:
            return None
        data = InternedData()
        for text in self._new.pop("event_names", []):
            data.event_names.add(iid=self._ids["event_names"][text], name=text)
        for text in self._new.pop("debug_annotation_names", []):
            iid = self._ids["debug_annotation_names"][text]
            data.debug_annotation_names.add(iid=iid, name=text)
        for text in self._new.pop("debug_annotation_string_values", []):
            iid = self._ids["debug_annotation_string_values"][text]
            data.debug_annotation_string_values.add(iid=iid, str=text.encode())
        packet = TracePacket(
            trusted_packet_sequence_id=SEQUENCE_ID,
            sequence_flags=TracePacket.SEQ_NEEDS_INCREMENTAL_STATE,
            interned_data=data,
        )
        return framed(packet)


@dataclass(frozen=True)
class Encoded:
    """Packets of one batch as bytes rows, with their sort keys."""

    rows: Rows
    ts: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    depth_key: npt.NDArray[np.int64]


def encode_batch(batch: Batch, interner: Interner) -> Iterator[Encoded]:
    """Encode a batch; rows whose arguments are null in different places encode separately."""
    frame = batch.frame
    args = (*batch.int_args, *batch.str_args)
    if not frame.height:
        return
    present = [a for a in args if frame[a].null_count()]
    if present:
        mask = pl.sum_horizontal(
            pl.col(a).is_not_null().cast(pl.UInt32) * (1 << i) for i, a in enumerate(present)
        )
        parts = frame.with_columns(mask.alias("_mask")).partition_by("_mask", maintain_order=True)
        for part in parts:
            yield from _encode_rows(batch, part.drop("_mask"), interner)
    else:
        yield from _encode_rows(batch, frame, interner)


def _encode_rows(batch: Batch, frame: pl.DataFrame, interner: Interner) -> Iterator[Encoded]:
    n = frame.height
    ts = frame["ts"].to_numpy().astype(np.int64)
    uuid = frame["uuid"].to_numpy().astype(np.uint64)
    if batch.kind is Kind.COUNTER:
        yield from _counter_rows(ts, uuid, frame["value"].to_numpy().astype(np.uint64))
        return
    event: list[Part] = []
    row = frame.row(0, named=True)
    for arg in (*batch.int_args, *batch.str_args):
        if row[arg] is None:
            continue
        name = interner.iid("debug_annotation_names", arg)
        if arg in batch.int_args:
            value = Varint(_A_INT, as_u64(frame[arg].cast(pl.Int64).to_numpy()))
        else:
            value = Varint(
                _A_STRING_IID, interner.iids("debug_annotation_string_values", frame[arg])
            )
        event.append(Message(_E_ANNOTATIONS, [Varint(_A_NAME_IID, name), value]))
    event.append(Varint(_E_TYPE, int(_EVENT_TYPE[batch.kind])))
    if batch.kind is not Kind.END:
        event.append(Varint(_E_NAME_IID, interner.iids("event_names", frame["name"])))
    event.append(Varint(_E_TRACK_UUID, uuid))
    # Equal timestamps on one track: inner slices end first, outer slices begin first.
    depth = frame["depth"].to_numpy().astype(np.int64) if "depth" in frame.columns else None
    key = np.zeros(n, np.int64) if depth is None else (-depth if batch.kind is Kind.END else depth)
    yield Encoded(_packet_rows(ts, event), ts, np.full(n, int(batch.kind), np.int64), key)


def _counter_rows(
    ts: npt.NDArray[np.int64], uuid: npt.NDArray[np.uint64], values: npt.NDArray[np.uint64]
) -> Iterator[Encoded]:
    """Counter samples: int64 ``counter_value``, or ``double_counter_value`` for the values an
    int64 cannot hold (a 64-bit guest counter past 2^63; the trace processor keeps doubles)."""
    big = values >= np.uint64(1 << 63)
    for select in (~big, big):
        n = int(select.sum())
        if not n:
            continue
        value: Part = (
            Fixed64(_E_DOUBLE_COUNTER, values[select].astype(np.float64))
            if select is big
            else Varint(_E_COUNTER, values[select])
        )
        event: list[Part] = [
            Varint(_E_TYPE, int(TrackEvent.TYPE_COUNTER)),
            Varint(_E_TRACK_UUID, uuid[select]),
            value,
        ]
        kind = np.full(n, int(Kind.COUNTER), np.int64)
        yield Encoded(_packet_rows(ts[select], event), ts[select], kind, np.zeros(n, np.int64))


def _packet_rows(ts: npt.NDArray[np.int64], event: list[Part]) -> Rows:
    layout = Message(
        _TRACE_PACKET,
        [
            Varint(_P_TIMESTAMP, ts.view(np.uint64)),
            Varint(_P_SEQUENCE_ID, SEQUENCE_ID),
            Message(_P_TRACK_EVENT, event),
            Varint(_P_SEQUENCE_FLAGS, int(TracePacket.SEQ_NEEDS_INCREMENTAL_STATE)),
        ],
    )
    return encode(layout, ts.size)


class PacketWriter:
    """Writes framed packets and batches of events to a file, counting the packets."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.packets = 0

    def raw(self, data: bytes, packets: int) -> None:
        self.sink.write(data)
        self.packets += packets

    def events(self, batches: list[Batch], interner: Interner) -> None:
        """Encode, intern, order and write a group of batches."""
        encoded: list[Encoded] = [e for b in batches for e in encode_batch(b, interner)]
        interned = interner.packet()
        if interned is not None:
            self.raw(interned, 1)
        if not encoded:
            return
        ts = np.concatenate([e.ts for e in encoded])
        kind = np.concatenate([e.kind for e in encoded])
        depth = np.concatenate([e.depth_key for e in encoded])
        order = np.lexsort((depth, kind, ts))
        for data in interleave([e.rows for e in encoded], order):
            self.sink.write(data)
        self.packets += int(order.size)
