"""The wire decoder against protobuf's encoding (protobuf.dev/programming-guides/encoding),
written out here field by field, and against arbitrary bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import FtraceEventBundle

from importers.perfetto.wire import INTACT, LEN, pick_fields, repeated, scan_fields

# every test here runs on each engine of the byte loops (numba, numpy twins)
pytestmark = pytest.mark.usefixtures("each_engine")

Field = tuple[int, int, int | bytes]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def encode(fields: list[Field]) -> bytes:
    out = b""
    for number, wire, value in fields:
        out += varint(number << 3 | wire)
        if wire == 0:
            assert isinstance(value, int)
            out += varint(value)
        elif wire == 1:
            assert isinstance(value, int)
            out += value.to_bytes(8, "little")
        elif wire == 5:
            assert isinstance(value, int)
            out += value.to_bytes(4, "little")
        else:
            assert isinstance(value, bytes)
            out += varint(len(value)) + value
    return out


fields = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 5000), st.just(0), st.integers(0, 2**64 - 1)),
        st.tuples(st.integers(1, 5000), st.just(1), st.integers(0, 2**64 - 1)),
        st.tuples(st.integers(1, 5000), st.just(5), st.integers(0, 2**32 - 1)),
        st.tuples(st.integers(1, 5000), st.just(2), st.binary(max_size=40)),
    ),
    max_size=12,
)


def arrays(*messages: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.frombuffer(b"".join(messages), np.uint8)
    ends = np.cumsum([len(m) for m in messages])
    return data, ends - [len(m) for m in messages], ends


@settings(deadline=None)  # the first example loads the compiled kernels
@given(st.lists(fields, min_size=1, max_size=4))
def test_scan_reads_every_field_of_every_message(messages: list[list[Field]]) -> None:
    data, starts, ends = arrays(*(encode(m) for m in messages))
    f = scan_fields(data, starts, ends)
    assert (f.damage == INTACT).all()
    got = []
    for row in range(f.number.shape[0]):
        value: int | bytes = int(f.value[row])
        if f.wire[row] == LEN:
            value = data[f.at[row] : f.at[row] + int(f.value[row])].tobytes()
        got.append((int(f.msg[row]), int(f.number[row]), int(f.wire[row]), value))
    assert got == [(m, *field) for m, fs in enumerate(messages) for field in fs]


@settings(deadline=None)  # the first example loads the compiled kernels
@given(fields, st.data())
def test_damage_is_where_the_bytes_stop_making_sense(
    message: list[Field], data: st.DataObject
) -> None:
    raw = encode(message)
    cut = data.draw(st.integers(0, len(raw)))
    arr, starts, ends = arrays(raw[:cut])
    f = scan_fields(arr, starts, ends)
    # every field that ends before the cut is read, none after it
    whole = 0
    for k in range(len(message)):
        if len(encode(message[: k + 1])) <= cut:
            whole = k + 1
    assert f.number.shape[0] == whole
    damaged = len(encode(message[:whole])) < cut
    assert (f.damage[0] == len(encode(message[:whole]))) if damaged else f.damage[0] == INTACT


@settings(deadline=None)  # the first example loads the compiled kernels
@given(fields)
def test_pick_keeps_the_last_occurrence(message: list[Field]) -> None:
    data, starts, ends = arrays(encode(message))
    wanted = sorted({n for n, _, _ in message})[:5] or [1]
    value, length, damaged = pick_fields(data, starts, ends, wanted)
    assert damaged == 0
    for k, number in enumerate(wanted):
        last = [(w, v) for n, w, v in message if n == number]
        if not last:
            assert length[0, k] == -1
            continue
        wire, expected = last[-1]
        if wire == LEN:
            at = int(value[0, k])
            assert data[at : at + int(length[0, k])].tobytes() == expected
        else:
            assert int(value[0, k]) == expected and length[0, k] == 0


@settings(deadline=None)  # the first example loads the compiled kernels
@given(st.lists(st.lists(st.integers(0, 2**63 - 1), max_size=20), min_size=1, max_size=5))
def test_repeated_fields_packed_or_not(runs: list[list[int]]) -> None:
    # compact_sched's arrays are packed; protobuf readers must accept them unpacked as well
    messages = []
    for k, values in enumerate(runs):
        b = FtraceEventBundle.CompactSched()
        b.switch_timestamp.extend(values)
        raw = b.SerializeToString()
        if k % 2:  # the same values, one field each
            raw = encode([(1, 0, v) for v in values])
        messages.append(raw)
    data, starts, ends = arrays(*messages)
    found = repeated(data, scan_fields(data, starts, ends), [1, 2])
    assert isinstance(found, dict)
    owner, values = found[1]
    assert owner.tolist() == [k for k, vs in enumerate(runs) for _ in vs]
    assert values.tolist() == [v for vs in runs for v in vs]
    assert found[2][1].size == 0


@settings(deadline=None)  # the first example loads the compiled kernels
@given(st.binary(max_size=200))
def test_any_bytes_stay_inside_their_message(raw: bytes) -> None:
    data, starts, ends = arrays(b"\x00" * 3, raw, b"\x00" * 3)
    f = scan_fields(data, starts, ends)
    inside = (f.at >= starts[f.msg]) & (f.at <= ends[f.msg])
    spans = np.where(f.wire == LEN, f.at + f.value.astype(np.int64), f.at)
    assert inside.all() and (spans <= ends[f.msg]).all()
    assert ((f.damage == INTACT) | ((f.damage >= starts) & (f.damage < ends))).all()
    found = repeated(data, f, [1, 2, 3])
    assert isinstance(found, (dict, int))
