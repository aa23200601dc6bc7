"""The numpy twins of the Perfetto byte loops give what the numba kernels give (issue 17).

A small trace's loops run as the twins (:mod:`importers.perfetto.kernels_np`,
:mod:`importers.perfetto.bundle_kernels_np`), a large one's as the kernels. Every shared Perfetto
capture is imported on each engine and every table and the metadata must be equal; property
tests hold each twin's arrays equal to its kernel's, loop by loop, on well-formed messages,
damaged ones (bytes overwritten, cut short) and arbitrary bytes, with the twin's cursors all
stepped in numpy or all read one by one in Python. The modules of synthetic and damaged
traces (test_synthetic, test_wire, test_compact, test_groups) run on each engine as well.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importers.detect import load
from importers.perfetto import bundle_kernels, bundle_kernels_np, bundles, kernels, kernels_np
from importers.perfetto.compact import _COLUMN, INTERN_TABLE
from importers.perfetto.plain import _ROUTE
from tests.importers.perfetto.conftest import ENGINES, engine
from tests.importers.perfetto.test_real import GALAXY, PIXEL6A, PIXEL7
from tests.importers.perfetto.test_wire import Field, encode, fields, varint

#: the twin's two ways: every cursor stepped in numpy, every cursor read in Python
WAYS = (1, 1 << 62)
CHECKS = settings(deadline=None, max_examples=150,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@pytest.mark.parametrize("name", [PIXEL6A, GALAXY, PIXEL7])
def test_every_engine_imports_the_shared_captures_alike(shared_traces: Path, name: str) -> None:
    captures = {}
    for e in ENGINES:
        with engine(e):
            captures[e] = load(shared_traces / name)
    theirs = captures["numba"]
    assert theirs.event_counts()  # a capture, not empty ones
    for e in ENGINES[1:]:
        ours = captures[e]
        assert ours.metadata == theirs.metadata, e
        assert ours.tables.keys() == theirs.tables.keys(), e
        for table, t in ours.tables.items():
            assert t.equals(theirs.tables[table], check_metadata=True), (e, table)


#: every numpy twin, by the module and name its callers look it up under
TWINS = [
    (kernels_np, "scan"),
    (kernels_np, "pick"),
    (kernels_np, "unpack"),
    (bundles, "event_counts"),
    (bundle_kernels_np, "ftrace_events"),
    (bundle_kernels_np, "compact_sched"),
    (bundle_kernels_np, "bundle_extents"),
    (bundle_kernels_np, "event_bytes"),
]


@pytest.mark.parametrize("name", ["numba", "numpy"])
def test_each_engine_runs_its_own_loops(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The comparison above cannot tell which engine ran (the twins give what the kernels
    give): on numba no twin is called, on numpy every twin is, over the shared captures
    (but ``unpack``: none of them has a repeated varint field)."""
    calls = dict.fromkeys((f"{m.__name__}.{f}" for m, f in TWINS), 0)
    for module, function in TWINS:
        key, twin = f"{module.__name__}.{function}", getattr(module, function)

        def counted(*args: Any, key: str = key, twin: Any = twin) -> Any:
            calls[key] += 1
            return twin(*args)

        monkeypatch.setattr(module, function, counted)
    with engine(name):
        for capture in (PIXEL6A, GALAXY, PIXEL7):
            load(shared_traces / capture)
    if name == "numba":
        assert not any(calls.values()), calls
    else:
        assert [k for k, n in calls.items() if not n] == ["importers.perfetto.kernels_np.unpack"]


def twin_each_way(twin: Callable[..., Any], *args: Any) -> list[Any]:
    """``twin(*args)`` with its cursors stepped in numpy, then read in Python, then with its
    messages and events taken a few at a time (``MESSAGES_AT_ONCE``)."""
    out = []
    for few, at_once in [*((few, None) for few in WAYS), (WAYS[0], 2)]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels_np, "FEW", few)
            if at_once is not None:
                patch.setattr(kernels_np, "MESSAGES_AT_ONCE", at_once)
                patch.setattr(bundle_kernels_np, "MESSAGES_AT_ONCE", at_once + 1)
            out.append(twin(*(a.copy() if isinstance(a, np.ndarray) else a for a in args)))
    return out


def assert_same(ours: Any, theirs: Any) -> None:
    if isinstance(ours, tuple):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b)
        return
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with a few bytes overwritten, and perhaps cut short."""
    out = bytearray(raw)
    for _ in range(draw(st.integers(0, 3)) if out else 0):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out)


#: runs of varint bytes around the longest varint (ten bytes): nine to twelve bytes, ended or
#: not, which arbitrary bytes almost never hold
long_varints = st.builds(lambda k, last: b"\xff" * k + bytes([last]), st.integers(8, 11),
                         st.integers(0, 255))  # fmt: skip
#: bytes with long varints among them
with_long_varints = st.lists(st.one_of(st.binary(max_size=8), long_varints), max_size=12).map(
    b"".join
)


@st.composite
def batches(draw: st.DrawFn, message: st.SearchStrategy[bytes]) -> tuple[np.ndarray, ...]:
    """Bytes and the spans of a batch of messages: well-formed, damaged or arbitrary, with a
    byte of padding before each so that spans do not start at 0."""
    # a key whose value is a long varint: at the start of a message, or after its fields
    long_value = st.tuples(st.sampled_from([b"", b"\x08\x01"]), long_varints).map(
        lambda t: t[0] + b"\x08" + t[1]
    )
    kind = st.one_of(message, message.flatmap(damaged), st.binary(max_size=60), long_value,
                     with_long_varints)  # fmt: skip
    parts = draw(st.lists(kind, min_size=1, max_size=40))
    data = b"".join(b"\xff" + p for p in parts)
    ends = np.cumsum([len(p) + 1 for p in parts]).astype(np.int64)
    starts = ends - np.array([len(p) for p in parts], np.int64)
    return np.frombuffer(data, np.uint8), starts, ends


plain = st.builds(encode, fields)


def scan_kernel(d: np.ndarray, starts: np.ndarray, ends: np.ndarray, skip: int) -> tuple[Any, ...]:
    damage = np.empty(starts.shape[0], np.int64)
    none = np.empty(0, np.int64)
    n = kernels.scan(d, starts, ends, skip, False, none, none.astype(np.int32),
                     none.astype(np.int8), none.astype(np.uint64), none, damage)  # fmt: skip
    out = (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int8),
           np.empty(n, np.uint64), np.empty(n, np.int64))  # fmt: skip
    kernels.scan(d, starts, ends, skip, True, *out, damage)
    return (*out, damage)


@CHECKS
@given(batches(plain), st.integers(0, 6))
def test_scan_twin(case: tuple[np.ndarray, ...], skip: int) -> None:
    d, starts, ends = case
    theirs = scan_kernel(d, starts, ends, skip)
    for ours in twin_each_way(kernels_np.scan, d, starts, ends, skip):
        assert_same(ours, theirs)


@CHECKS
@given(batches(plain), st.integers(0, 6), st.integers(1, 5))
def test_scan_twin_a_few_messages_at_a_time(
    case: tuple[np.ndarray, ...], skip: int, at_once: int
) -> None:
    """The twin's scan steps through so many messages at a time
    (``kernels_np.MESSAGES_AT_ONCE``): put together, the batches are the kernel's scan."""
    d, starts, ends = case
    theirs = scan_kernel(d, starts, ends, skip)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels_np, "MESSAGES_AT_ONCE", at_once)
        assert_same(kernels_np.scan(d, starts, ends, skip), theirs)


@CHECKS
@given(batches(plain), st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_pick_twin(case: tuple[np.ndarray, ...], wanted: list[int]) -> None:
    d, starts, ends = case
    want = np.array(wanted, np.int32)
    value = np.zeros((starts.shape[0], want.shape[0]), np.uint64)
    length = np.empty((starts.shape[0], want.shape[0]), np.int64)
    damaged_count = kernels.pick(d, starts, ends, want, value, length)
    for ours in twin_each_way(kernels_np.pick, d, starts, ends, want):
        assert_same(ours, (value, length, damaged_count))


def assert_unpack_same(
    d: np.ndarray, starts: np.ndarray, ends: np.ndarray, single: np.ndarray
) -> None:
    counts = np.empty(starts.shape[0], np.int64)
    count = kernels.unpack(d, starts, ends, single, False, counts, np.empty(0, np.uint64))
    values = np.empty(max(count, 0), np.uint64)
    if count >= 0:
        kernels.unpack(d, starts, ends, single, True, counts, values)
    ours = kernels_np.unpack(d, starts, ends, single)
    assert ours[0] == count
    if count >= 0:
        assert_same(ours[1:], (counts, values))


@CHECKS
@given(with_long_varints, st.data())
def test_unpack_twin(raw: bytes, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 12))
    starts = np.array(data.draw(st.lists(st.integers(0, len(raw)), min_size=n, max_size=n)))
    lengths = np.array(data.draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
    starts = starts.astype(np.int64)
    ends = np.minimum(starts + lengths, len(raw)).astype(np.int64)
    single = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    assert_unpack_same(np.frombuffer(raw, np.uint8), starts, ends, single)


@pytest.mark.parametrize("size", [9, 10, 11])
def test_unpack_twin_at_the_longest_varint(size: int) -> None:
    """A varint of ``size`` bytes, alone and after a one-byte one, packed and single: ten
    bytes is the longest that decodes."""
    raw = b"\x05" + b"\xff" * (size - 1) + b"\x01"
    d = np.frombuffer(raw, np.uint8)
    for at, single in ((0, False), (1, False), (1, True)):
        starts, ends = np.array([at], np.int64), np.array([len(raw)], np.int64)
        assert_unpack_same(d, starts, ends, np.array([single]))
    decoded = kernels_np.unpack(d, np.array([1], np.int64), np.array([len(raw)], np.int64),
                                np.array([False]))  # fmt: skip
    assert (decoded[0] == 1) is (size <= 10)


@st.composite
def event(draw: st.DrawFn) -> bytes:
    """An ``FtraceEvent``: timestamp, pid, common_flags and a member message, in any order,
    any of them repeated or missing, with the odd other field."""
    member = st.tuples(st.integers(3, 400), st.just(2), st.binary(max_size=12))
    scalar = st.tuples(st.sampled_from([1, 2, 5]), st.just(0), st.integers(0, 2**64 - 1))
    other = st.tuples(st.integers(1, 9), st.sampled_from([1, 5]), st.integers(0, 2**32 - 1))
    parts: list[Field] = draw(st.lists(st.one_of(member, scalar, other), max_size=6))
    return encode(parts)


@st.composite
def bundle(draw: st.DrawFn) -> bytes:
    events = draw(st.lists(event(), max_size=8))
    own: list[Field] = [(2, 2, e) for e in events]
    own += draw(st.lists(st.tuples(st.sampled_from([1, 3, 5]), st.just(0),
                                   st.integers(0, 2**40)), max_size=2))  # fmt: skip
    return encode(draw(st.permutations(own)))


@CHECKS
@given(batches(bundle()))
def test_ftrace_events_twin(case: tuple[np.ndarray, ...]) -> None:
    d, starts, ends = case
    n_b = starts.shape[0]
    damage = np.empty(n_b, np.int64)
    counted = np.empty(n_b, np.int64)
    none = np.empty(0, np.int64)
    kernels_counted = bundle_kernels.ftrace_events(
        d, starts, ends, none, none.astype(np.int8), False, counted, none.reshape(0, 0, 0),
        none.astype(np.int32).reshape(0, 0, 0), none.astype(np.uint8).reshape(0, 0),
        np.empty(2, np.int64), damage)  # fmt: skip
    assert_same(bundle_kernels_np.event_counts(d, starts, ends), counted)
    assert counted.sum() == kernels_counted
    base = np.arange(n_b, dtype=np.int64) * 1000 + 7
    room = int(counted.sum())
    route = np.resize(_ROUTE[:300], 300)  # kinds past it go to OTHER
    out = [np.empty(n_b, np.int64), np.empty((2, 3, room), np.int64),
           np.empty((2, 4, room), np.int32), np.empty((2, room), np.uint8),
           np.empty(2, np.int64), np.empty(n_b, np.int64)]  # fmt: skip
    n = bundle_kernels.ftrace_events(d, starts, ends, base, route, True, *out)
    theirs = rows_placed(out)
    for ours in twin_each_way(lambda *a: (bundle_kernels_np.ftrace_events(*a), a[5:]),
                              d, starts, ends, base, route, *[np.empty_like(o) for o in out]):  # fmt: skip
        assert ours[0] == n
        assert_same(rows_placed(list(ours[1])), theirs)


def rows_placed(out: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The defined part of :func:`ftrace_events`' outputs: per bundle, and each set's rows."""
    per_bundle, wide, narrow, flags, placed, damage = out
    sets = tuple(a for s, m in enumerate(placed.tolist())
                 for a in (wide[s, :, :m], narrow[s, :, :m], flags[s, :m]))  # fmt: skip
    return (per_bundle, placed, damage, *sets)


@st.composite
def compact(draw: st.DrawFn) -> bytes:
    """A ``CompactSched``: arrays of switches and wakings, packed or not, of equal length or
    not, comm indices inside their intern table or not, in any field order."""
    rows = draw(st.integers(0, 5))
    strings = draw(st.integers(0, 3))
    parts: list[Field] = [(INTERN_TABLE, 2, draw(st.binary(max_size=6))) for _ in range(strings)]
    numbers = [1, 2, 3, 4, 6] * draw(st.booleans()) + [7, 8, 9, 10, 11] * draw(st.booleans())
    numbers += draw(st.sets(st.sampled_from([1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12])))
    for number in numbers:
        n = rows + draw(st.sampled_from([0] * 12 + [1, -1]))
        top = 2**64 - 1
        if number in (6, 11):  # comm indices: inside the table mostly, now and then one past
            top = max(strings - (1 if draw(st.integers(0, 3)) else 0), 0)
        values = draw(st.lists(st.integers(0, top), min_size=max(n, 0), max_size=max(n, 0)))
        if draw(st.booleans()):
            parts.append((number, 2, b"".join(varint(v) for v in values)))
        else:
            parts += [(number, 0, v) for v in values]
    return encode(draw(st.permutations(parts)))


@CHECKS
@given(batches(compact()))
def test_compact_sched_twin(case: tuple[np.ndarray, ...]) -> None:
    d, starts, ends = case
    m = starts.shape[0]
    room = int((ends - starts).sum()) + 4  # a row per byte, after those placed before
    base = np.arange(m, dtype=np.int64) << 24

    def outputs() -> list[np.ndarray]:
        return [
            np.empty(m, np.int8),
            np.empty((2, 5, room), np.int64),
            np.empty((2, room), np.int64),
            np.empty((2, room), np.int64),
            np.empty(room, np.int64),
            np.empty(room, np.int64),
            np.array([3, 1, 2], np.int64),
        ]  # fmt: skip  (rows and strings before)

    def defined(out: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        status, values, seq, owner, intern_at, intern_len, placed = out
        rows = [slice(3, placed[0]), slice(1, placed[1])]
        kinds = tuple(a for k in range(2)
                      for a in (values[k, :, rows[k]], seq[k, rows[k]], owner[k, rows[k]]))  # fmt: skip
        return (status, placed, intern_at[2 : placed[2]], intern_len[2 : placed[2]], *kinds)

    theirs = outputs()
    bundle_kernels.compact_sched(d, starts, ends, base, _COLUMN, INTERN_TABLE, *theirs)
    for few in WAYS:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels_np, "FEW", few)
            ours = outputs()
            bundle_kernels_np.compact_sched(d, starts, ends, base, _COLUMN, INTERN_TABLE, *ours)
        assert_same(defined(ours), defined(theirs))


@CHECKS
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(-(2**62), 2**62), st.integers(-5, 2**40)),
             max_size=30),
    st.lists(st.tuples(st.integers(-1, 9), st.integers(-1, 2**40)), min_size=6, max_size=6),
)  # fmt: skip
def test_bundle_extents_twin(
    rows: list[tuple[int, int, int]], start: list[tuple[int, int]]
) -> None:
    local = np.array([r[0] for r in rows], np.int32)
    raw = np.array([r[1] for r in rows], np.int64)
    boot = np.array([r[2] for r in rows], np.int64)
    first_ts = np.array([s[0] for s in start], np.int64)
    last_raw = np.array([s[1] for s in start], np.int64)
    theirs = (first_ts.copy(), last_raw.copy())
    bundle_kernels.bundle_extents(local, raw, boot, *theirs)
    ours = (first_ts.copy(), last_raw.copy())
    bundle_kernels_np.bundle_extents(local, raw, boot, *ours)
    assert_same(ours, theirs)


@st.composite
def print_event(draw: st.DrawFn) -> bytes:
    """A ``PrintFtraceEvent``: ``buf`` (2) as text, maybe newline-ended, or as a varint,
    repeated or missing, among ``ip`` (1) fields."""
    buf = st.tuples(st.just(2), st.just(2),
                    st.binary(max_size=8).map(lambda b: b + b"\n" * (len(b) % 2)))  # fmt: skip
    other = st.one_of(st.tuples(st.just(2), st.just(0), st.integers(0, 99)),
                      st.tuples(st.just(1), st.just(0), st.integers(0, 2**64 - 1)))  # fmt: skip
    return encode(draw(st.lists(st.one_of(buf, other), max_size=4)))


@CHECKS
@given(batches(print_event()), st.data())
def test_event_bytes_twin(case: tuple[np.ndarray, ...], data: st.DataObject) -> None:
    d, starts, ends = case
    n = starts.shape[0]
    body, body_len = starts, (ends - starts).astype(np.int32)
    kind = np.array(data.draw(st.lists(st.sampled_from([3, 3, 4, 7]), min_size=n, max_size=n)),
                    np.int32).reshape(n)  # fmt: skip
    texts = data.draw(st.lists(st.one_of(st.none(), st.binary(max_size=5)), max_size=n))
    lengths = [len(t or b"") for t in texts]
    extra = np.frombuffer(b"".join(t or b"" for t in texts), np.uint8)
    extra_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    extra_valid = np.array([t is not None for t in texts], np.bool_)
    rendered = np.full(n, -1, np.int64)
    rendered[data.draw(st.permutations(range(n)))[: len(texts)]] = np.arange(len(texts))
    room = int(body_len.sum()) + extra.shape[0]

    def outputs() -> list[np.ndarray]:
        return [np.empty(int(body_len.sum()), np.uint8), np.empty(n + 1, np.int64),
                np.empty(room, np.uint8), np.empty(n + 1, np.int64), np.empty(n, np.bool_)]  # fmt: skip

    def defined(out: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        payload, payload_offsets, args, args_offsets, valid = out
        return (payload, payload_offsets, args[: args_offsets[-1]], args_offsets, valid)

    given_ = (d, body, body_len, kind, 3, rendered, extra, extra_offsets, extra_valid)
    theirs = outputs()
    bundle_kernels.event_bytes(*given_, *theirs)
    for few in WAYS:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels_np, "FEW", few)
            ours = outputs()
            bundle_kernels_np.event_bytes(*given_, *ours)
        assert_same(defined(ours), defined(theirs))
