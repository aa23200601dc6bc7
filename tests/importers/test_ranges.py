"""importers.ranges: where each integer type ends, for text digits, scanner values and times."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from importers.ranges import OVERFLOW, SIGNED, UNSIGNED, fit_scanned, parse_text, ts_ns


@pytest.mark.parametrize(
    ("dtype", "lo", "hi"),
    [
        (pl.Int16(), -(2**15), 2**15 - 1),
        (pl.Int32(), -(2**31), 2**31 - 1),
        (pl.Int64(), -(2**63), 2**63 - 1),
        (pl.UInt8(), 0, 255),
        (pl.UInt32(), 0, 2**32 - 1),
        (pl.UInt64(), 0, 2**64 - 1),
    ],
)
def test_text_fits_exactly_up_to_the_bounds(dtype: pl.DataType, lo: int, hi: int) -> None:
    texts = [str(lo - 1), str(lo), str(hi), str(hi + 1), None, "1" + "0" * 30]
    value, outside = parse_text(pl.col("t"), dtype)
    got = pl.DataFrame({"t": texts}).select(value.alias("v"), outside.alias("o"))
    assert got["v"].dtype == dtype
    assert got["v"].to_list() == [None, lo, hi, None, None, None]
    assert got["o"].to_list() == [True, False, False, True, False, True]


def test_hex_text() -> None:
    value, outside = parse_text(pl.col("t"), pl.UInt64(), base=16)
    frame = pl.DataFrame({"t": ["ffffffffffffffff", "10000000000000000"]})
    got = frame.select(value.alias("v"), outside.alias("o"))
    assert got.rows() == [(2**64 - 1, False), (None, True)]


def test_scanner_values_by_how_they_were_read() -> None:
    values = np.array([-1, 32767, 32768, -(2**63), 0, 5], np.int64)
    how = np.array([SIGNED, SIGNED, SIGNED, UNSIGNED, OVERFLOW, 0], np.int8)
    series, outside = fit_scanned(values, how, pl.Int16(), "cpu")
    assert series.to_list() == [-1, 32767, None, None, None, None]
    assert outside.tolist() == [False, False, True, True, True, False]
    series, outside = fit_scanned(values, how, pl.UInt64(), "pc")
    assert series.to_list() == [None, 32767, 32768, 2**63, None, None]
    assert outside.tolist() == [True, False, False, False, True, False]


def test_timestamps_to_the_last_ns_of_int64() -> None:
    sec = ["9223372036", "9223372036", "9223372037", "1", "123456789012345678", "5"]
    frac = ["854775807", "854775808", "0", "1234567890", None, "000001"]
    value, outside = ts_ns(pl.col("s"), pl.col("f"))
    got = pl.DataFrame({"s": sec, "f": frac}).select(value.alias("v"), outside.alias("o"))
    assert got["v"].to_list() == [2**63 - 1, None, None, None, 123456789012345678, 5_000_001_000]
    assert got["o"].to_list() == [False, True, True, True, False, False]
