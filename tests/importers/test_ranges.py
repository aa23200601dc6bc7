"""importers.ranges: where each integer type ends, for text digits, scanner values and times.

Text is read by two implementations of one rule: polars expressions (the ``perf`` text
importers) and Arrow + numpy (the ftrace text importer); every case holds both to the same
values.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from importers.ranges import (
    OVERFLOW,
    SIGNED,
    UNSIGNED,
    fit_scanned,
    parse_text,
    read_text,
    read_ts,
    ts_ns,
)


def both_read(
    texts: list[str | None], dtype: pa.DataType, base: int = 10
) -> tuple[list[object], list[bool]]:
    """``texts`` read as ``dtype`` by both implementations, which must agree."""
    value, outside = parse_text(pl.col("t"), pl.from_arrow(pa.array([], dtype)).dtype, base)
    got = pl.DataFrame({"t": texts}, schema={"t": pl.Utf8}).select(
        value.alias("v"), outside.alias("o")
    )
    array, bad = read_text(pa.array(texts, pa.string()), dtype, base)
    assert array.type == dtype
    assert (array.to_pylist(), bad.tolist()) == (got["v"].to_list(), got["o"].to_list())
    return array.to_pylist(), bad.tolist()


@pytest.mark.parametrize(
    ("dtype", "lo", "hi"),
    [
        (pa.int16(), -(2**15), 2**15 - 1),
        (pa.int32(), -(2**31), 2**31 - 1),
        (pa.int64(), -(2**63), 2**63 - 1),
        (pa.uint8(), 0, 255),
        (pa.uint32(), 0, 2**32 - 1),
        (pa.uint64(), 0, 2**64 - 1),
    ],
)
def test_text_fits_exactly_up_to_the_bounds(dtype: pa.DataType, lo: int, hi: int) -> None:
    texts = [str(lo - 1), str(lo), str(hi), str(hi + 1), None, "1" + "0" * 30, "007"]
    values, outside = both_read(texts, dtype)
    assert values == [None, lo, hi, None, None, None, 7]
    assert outside == [True, False, False, True, False, True, False]


def test_text_that_is_not_a_number() -> None:
    """A present string that is no number (empty, a lone sign, a stray letter) is out of
    range: never a silent null."""
    values, outside = both_read(["", "-", "1x", "1a", "-0", "-12", "0" * 40 + "5"], pa.int32())
    assert values == [None, None, None, None, 0, -12, 5]
    assert outside == [True, True, True, True, False, False, False]


def test_hex_text() -> None:
    texts = ["ffffffffffffffff", "10000000000000000", "fF", "g"]
    values, outside = both_read(texts, pa.uint64(), base=16)
    assert values == [2**64 - 1, None, 255, None]
    assert outside == [False, True, False, True]


def test_scanner_values_by_how_they_were_read() -> None:
    values = np.array([-1, 32767, 32768, -(2**63), 0, 5], np.int64)
    how = np.array([SIGNED, SIGNED, SIGNED, UNSIGNED, OVERFLOW, 0], np.int8)
    array, outside = fit_scanned(values, how, pa.int16())
    assert array.type == pa.int16()
    assert array.to_pylist() == [-1, 32767, None, None, None, None]
    assert outside.tolist() == [False, False, True, True, True, False]
    array, outside = fit_scanned(values, how, pa.uint64())
    assert array.to_pylist() == [None, 32767, 32768, 2**63, None, None]
    assert outside.tolist() == [True, False, False, False, True, False]


def test_timestamps_to_the_last_ns_of_int64() -> None:
    sec = ["9223372036", "9223372036", "9223372037", "1", "123456789012345678", "5", None]
    frac = ["854775807", "854775808", "0", "1234567890", None, "000001", None]
    want = [2**63 - 1, None, None, None, 123456789012345678, 5_000_001_000, None]
    bad = [False, True, True, True, False, False, False]
    value, outside = ts_ns(pl.col("s"), pl.col("f"))
    frame = pl.DataFrame({"s": sec, "f": frac}, schema={"s": pl.Utf8, "f": pl.Utf8})
    got = frame.select(value.alias("v"), outside.alias("o"))
    assert (got["v"].to_list(), got["o"].to_list()) == (want, bad)
    array, outside_np = read_ts(pa.array(sec, pa.string()), pa.array(frac, pa.string()))
    assert (array.to_pylist(), outside_np.tolist()) == (want, bad)
