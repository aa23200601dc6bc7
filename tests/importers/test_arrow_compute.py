"""Each kernel call of :mod:`importers.arrow_compute` returns what ``pyarrow.compute`` (or the
pyarrow method it stands for) returns, errors included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from importers import arrow_compute as ac

INTS = pa.chunked_array([[3, None, -1], [300, 3, None, 7]], pa.int64())
WORDS = pa.chunked_array([["b", None, "a"], ["b", "", None, "c"]], pa.string())
SMALL = pa.array([3, None, 0, 3, -2, None, 7], pa.int32())
FLAGS = pa.chunked_array([[True, None, False], [False, True, None, True]])
PADDED = pa.array(["  12 ", None, "f <-g\t", "", "34", "\u2003x\u2003", "5a"], pa.string())
TABLE = pa.table(
    {"pid": pa.array([2, 1, None, 1, 2], pa.int32()), "comm": ["x", "y", "z", None, "a"]}
)

SAME: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
    ("cast", lambda: ac.cast(INTS, pa.int16()), lambda: INTS.cast(pa.int16())),
    (
        "cast unsafe",
        lambda: ac.cast(INTS, pa.int8(), safe=False),
        lambda: INTS.cast(pa.int8(), safe=False),
    ),
    (
        "cast table",
        lambda: ac.cast_table(TABLE, pa.schema([("pid", pa.int64()), ("comm", pa.large_string())])),
        lambda: TABLE.cast(pa.schema([("pid", pa.int64()), ("comm", pa.large_string())])),
    ),
    (
        "take",
        lambda: ac.take(TABLE, pa.array([4, None, 0])),
        lambda: TABLE.take(pa.array([4, None, 0])),
    ),
    (
        "filter",
        lambda: ac.filter_rows(TABLE, pa.array([True, None, False, True, True])),
        lambda: TABLE.filter(pa.array([True, None, False, True, True])),
    ),
    ("drop_null", lambda: ac.drop_null(TABLE), lambda: TABLE.drop_null()),
    ("is_valid", lambda: ac.is_valid(WORDS), lambda: WORDS.is_valid()),
    ("is_null", lambda: ac.is_null(WORDS), lambda: WORDS.is_null()),
    ("fill_null", lambda: ac.fill_null(INTS, -9), lambda: INTS.fill_null(-9)),
    ("sum", lambda: ac.total(INTS), lambda: pc.sum(INTS)),
    (
        "sum of nulls",
        lambda: ac.total(pa.nulls(3, pa.int64())),
        lambda: pc.sum(pa.nulls(3, pa.int64())),
    ),
    ("max", lambda: ac.maximum(INTS), lambda: pc.max(INTS)),
    ("max of nothing", lambda: ac.maximum(INTS.slice(0, 0)), lambda: pc.max(INTS.slice(0, 0))),
    (
        "is_in",
        lambda: ac.is_in(WORDS, pa.array(["a", "c"])),
        lambda: pc.is_in(WORDS, value_set=pa.array(["a", "c"])),
    ),
    (
        "is_in with a null",
        lambda: ac.is_in(WORDS, pa.array(["b", None])),
        lambda: pc.is_in(WORDS, value_set=pa.array(["b", None])),
    ),
    ("unique", lambda: ac.unique(WORDS), lambda: pc.unique(WORDS)),
    (
        "value_counts",
        lambda: ac.value_counts(WORDS.combine_chunks()),
        lambda: pc.value_counts(WORDS.combine_chunks()),
    ),
    ("dictionary_encode", lambda: ac.dictionary_encode(WORDS), lambda: pc.dictionary_encode(WORDS)),
    ("sort_indices", lambda: ac.sort_indices(INTS), lambda: pc.sort_indices(INTS)),
    (
        "sort_by",
        lambda: ac.sort_by(TABLE, [("pid", "ascending"), ("comm", "descending")]),
        lambda: TABLE.sort_by([("pid", "ascending"), ("comm", "descending")]),
    ),
    ("equal", lambda: ac.equal(WORDS, "b"), lambda: pc.equal(WORDS, "b")),
    ("equal, int32 to a Python int", lambda: ac.equal(SMALL, 3), lambda: pc.equal(SMALL, 3)),
    ("equal arrays", lambda: ac.equal(INTS, INTS), lambda: pc.equal(INTS, INTS)),
    ("less", lambda: ac.less(INTS, 0), lambda: pc.less(INTS, 0)),
    ("add", lambda: ac.add(INTS, 1 << 32), lambda: pc.add(INTS, 1 << 32)),
    ("add wraps", lambda: ac.add(INTS, (1 << 63) - 1), lambda: pc.add(INTS, (1 << 63) - 1)),
    ("negate", lambda: ac.negate(INTS), lambda: pc.negate(INTS)),
    ("invert", lambda: ac.invert(FLAGS), lambda: pc.invert(FLAGS)),
    ("or", lambda: ac.or_(FLAGS, ac.is_null(WORDS)), lambda: pc.or_(FLAGS, WORDS.is_null())),
    (
        "if_else to null",
        lambda: ac.if_else(FLAGS, None, WORDS),
        lambda: pc.if_else(FLAGS, None, WORDS),
    ),
    (
        "if_else from null",
        lambda: ac.if_else(FLAGS, INTS, None),
        lambda: pc.if_else(FLAGS, INTS, None),
    ),
    (
        "if_else, an int32 and a Python int",
        lambda: ac.if_else(FLAGS, SMALL, 0),
        lambda: pc.if_else(FLAGS, SMALL, 0),
    ),
    (
        "if_else arrays",
        lambda: ac.if_else(FLAGS, INTS, INTS),
        lambda: pc.if_else(FLAGS, INTS, INTS),
    ),
    (
        "coalesce",
        lambda: ac.coalesce(WORDS, ac.if_else(FLAGS, PADDED, None)),
        lambda: pc.coalesce(WORDS, pc.if_else(FLAGS, PADDED, None)),
    ),
    (
        "case_when, an else and none",
        lambda: ac.case_when(ac.make_struct(FLAGS, ac.is_null(WORDS)), WORDS, "n", "else"),
        lambda: pc.case_when(pc.make_struct(FLAGS, WORDS.is_null()), WORDS, "n", "else"),
    ),
    (
        "case_when without an else",
        lambda: ac.case_when(ac.make_struct(FLAGS), "t", WORDS),
        lambda: pc.case_when(pc.make_struct(FLAGS), "t", WORDS),
    ),
    ("binary_length", lambda: ac.binary_length(WORDS), lambda: pc.binary_length(WORDS)),
    (
        "utf8_trim_whitespace",
        lambda: ac.utf8_trim_whitespace(PADDED),
        lambda: pc.utf8_trim_whitespace(PADDED),
    ),
    (
        "utf8_rtrim_whitespace",
        lambda: ac.utf8_rtrim_whitespace(PADDED),
        lambda: pc.utf8_rtrim_whitespace(PADDED),
    ),
    (
        "match_substring",
        lambda: ac.match_substring(PADDED, " <-"),
        lambda: pc.match_substring(PADDED, " <-"),
    ),
    (
        "match_substring none",
        lambda: ac.match_substring(WORDS, "zz"),
        lambda: pc.match_substring(WORDS, "zz"),
    ),
    (
        "match_substring_regex",
        lambda: ac.match_substring_regex(PADDED, r"^\d+$"),
        lambda: pc.match_substring_regex(PADDED, r"^\d+$"),
    ),
    (
        "extract_regex, unmatched and empty groups",
        lambda: ac.extract_regex(PADDED, r"(?P<pid>\d+)(?P<tail>.*)"),
        lambda: pc.extract_regex(PADDED, r"(?P<pid>\d+)(?P<tail>.*)"),
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), [s[1:] for s in SAME], ids=[s[0] for s in SAME])
def test_the_same_result(ours: Callable[[], Any], theirs: Callable[[], Any]) -> None:
    got, want = ours(), theirs()
    assert type(got) is type(want)
    assert got.equals(want)


def test_a_safe_cast_refuses_what_does_not_fit() -> None:
    with pytest.raises(pa.ArrowInvalid):
        INTS.cast(pa.int8())
    with pytest.raises(pa.ArrowInvalid):
        ac.cast(INTS, pa.int8())


def test_a_table_cast_needs_the_same_names() -> None:
    with pytest.raises(ValueError, match="cannot cast columns"):
        ac.cast_table(TABLE, pa.schema([("comm", pa.string()), ("pid", pa.int32())]))
