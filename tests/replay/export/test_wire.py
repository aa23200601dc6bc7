"""The columnar protobuf encoder against perfetto's generated protobuf classes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TracePacket, TrackEvent

from replay.export.wire import (
    Fixed64,
    Message,
    Varint,
    as_u64,
    encode,
    interleave,
    varint,
    width_for,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


def test_varint_matches_the_protobuf_encoding() -> None:
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"  # the example of the protobuf encoding guide
    assert varint((1 << 64) - 1) == b"\xff" * 9 + b"\x01"
    with pytest.raises(ValueError):
        varint(1 << 64)


def test_varint_width_holds_the_largest_value() -> None:
    assert width_for(np.array([0], np.uint64)) == 1
    assert width_for(np.array([127, 128], np.uint64)) == 2
    assert width_for(np.array([(1 << 64) - 1], np.uint64)) == 10


def _packets(data: bytes) -> list[TracePacket]:
    trace = Trace()
    trace.ParseFromString(data)
    return list(trace.packet)


@settings(max_examples=max(200, settings.default.max_examples), deadline=None)
@given(
    st.lists(
        st.tuples(U64, U64, st.integers(-(1 << 63), (1 << 63) - 1)),
        min_size=1,
        max_size=40,
    )
)
def test_track_event_rows_parse_back(values: list[tuple[int, int, int]]) -> None:
    ts = np.array([v[0] for v in values], np.uint64)
    uuid = np.array([v[1] for v in values], np.uint64)
    counter = as_u64(np.array([v[2] for v in values], np.int64))
    layout = Message(
        1,
        [
            Varint(8, ts),
            Varint(10, 7),
            Message(
                11, [Varint(9, TrackEvent.TYPE_COUNTER), Varint(11, uuid), Varint(30, counter)]
            ),
        ],
    )
    rows = encode(layout, len(values))
    assert rows.shape[0] == len(values)
    parsed = _packets(rows.tobytes())
    assert [
        (p.timestamp, p.track_event.track_uuid, p.track_event.counter_value) for p in parsed
    ] == values
    assert all(p.trusted_packet_sequence_id == 7 for p in parsed)


def test_nested_messages_and_doubles_equal_protobuf_objects() -> None:
    ts = np.array([5, 10], np.uint64)
    layout = Message(
        1,
        [
            Varint(8, ts),
            Message(
                11,
                [
                    Message(4, [Varint(1, 3), Varint(4, as_u64(np.array([-2, 40])))]),
                    Varint(9, TrackEvent.TYPE_COUNTER),
                    Fixed64(44, np.array([0.5, 2.0**70])),
                ],
            ),
        ],
    )
    for got, (t, ann, value) in zip(
        _packets(encode(layout, 2).tobytes()), [(5, -2, 0.5), (10, 40, 2.0**70)], strict=True
    ):
        want = TracePacket(timestamp=t)
        want.track_event.type = TrackEvent.TYPE_COUNTER
        want.track_event.debug_annotations.add(name_iid=3, int_value=ann)
        want.track_event.double_counter_value = value
        assert got == want


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(
    st.lists(
        st.lists(st.binary(min_size=1, max_size=1), min_size=1, max_size=6), min_size=1, max_size=4
    ),
    st.randoms(),
)
def test_interleave_gathers_rows_of_any_length_in_order(
    shapes: list[list[bytes]], rnd: object
) -> None:
    # batch i: rows of length i + 1 whose bytes say (batch, row)
    batches = [
        np.array([[b * 16 + r] * (b + 1) for r in range(len(rows))], np.uint8)
        for b, rows in enumerate(shapes)
    ]
    flat_rows = [bytes(row) for batch in batches for row in batch]
    order = np.arange(len(flat_rows), dtype=np.int64)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    want = b"".join(flat_rows[i] for i in order)
    for max_packets in (1, 3, 1 << 20):
        assert b"".join(interleave(batches, order, max_packets)) == want


def test_encode_rejects_a_column_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="3 values for 2 packets"):
        encode(Message(1, [Varint(8, np.zeros(3, np.uint64))]), 2)
