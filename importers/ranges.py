"""Integers read from text, checked against the type of the column that stores them.

Every text grammar (ftrace lines, markers and payloads, ``perf script``, ``perf stat``, vCPU
thread names) reads a number wide first — the digits as text, or a 64-bit value with how it
was read (:data:`SIGNED`, :data:`UNSIGNED`, :data:`OVERFLOW`, from the byte scanners) — and
this module decides whether it fits the column's type. A value that does not fit is never cast
into a wrap (CPU 65536 stored as 0, pid 2^32 - 1 as -1), a cast failure or a silent null: the
caller gets the rows that are out of range and skips them (or keeps them with that field
unknown) under :func:`out_of_range`, a reason counted with the lines where it happened.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

#: how a byte scanner read an integer (``importers.ftrace.scan._parse_int``): ``ABSENT`` not a
#: number; ``SIGNED`` the int64 value; ``UNSIGNED`` at least 2^63 and below 2^64, the int64
#: holds its bit pattern; ``OVERFLOW`` 2^64 or more (or below -2^63), the value is lost
ABSENT, SIGNED, UNSIGNED, OVERFLOW = 0, 1, 2, 3

Limits = tuple[int, int]
_BOUNDS: dict[pl.DataType, Limits] = {
    pl.Int8(): (-(1 << 7), (1 << 7) - 1),
    pl.Int16(): (-(1 << 15), (1 << 15) - 1),
    pl.Int32(): (-(1 << 31), (1 << 31) - 1),
    pl.Int64(): (-(1 << 63), (1 << 63) - 1),
    pl.UInt8(): (0, (1 << 8) - 1),
    pl.UInt16(): (0, (1 << 16) - 1),
    pl.UInt32(): (0, (1 << 32) - 1),
    pl.UInt64(): (0, (1 << 64) - 1),
}
_NS_PER_S = 1_000_000_000
_INT64_MAX = (1 << 63) - 1


def bounds(dtype: pl.DataType, limits: Limits | None = None) -> Limits:
    """Smallest and largest value of the integer type ``dtype`` (or ``limits``, narrower
    values a column of that type may hold)."""
    return limits or _BOUNDS[dtype]


def out_of_range(what: str, dtype: pl.DataType, fate: str, limits: Limits | None = None) -> str:
    """The skip reason of a ``what`` (``cpu``, ``sched_switch next_pid``) that does not fit
    ``dtype``; ``fate`` says what became of the row (``line skipped``, ``kept in events``)."""
    lo, hi = bounds(dtype, limits)
    return f"{what} outside {lo}..{hi} ({fate})"


def parse_text(
    text: pl.Expr, dtype: pl.DataType, base: int = 10, limits: Limits | None = None
) -> tuple[pl.Expr, pl.Expr]:
    """``text`` (an integer's digits, null when absent) read as ``dtype``.

    Returns the value (null where absent or out of range) and whether it was out of range
    (present, but not a value of ``dtype`` within ``limits``).
    """
    lo, hi = bounds(dtype, limits)
    wide_type = pl.UInt64 if dtype == pl.UInt64() else pl.Int64
    wide = text.str.to_integer(base=base, dtype=wide_type, strict=False)
    fits = wide.is_between(lo, hi)
    outside = text.is_not_null() & ~fits.fill_null(False)
    return pl.when(fits).then(wide).cast(dtype), outside


def fit_scanned(
    values: NDArray[np.int64],
    how: NDArray[np.int8],
    dtype: pl.DataType,
    name: str,
    limits: Limits | None = None,
) -> tuple[pl.Series, NDArray[np.bool_]]:
    """Integers read by a byte scanner (``how`` per value: :data:`ABSENT`, :data:`SIGNED`,
    :data:`UNSIGNED`, :data:`OVERFLOW`) as a ``dtype`` series (null where absent or out of
    range), and which were out of range."""
    lo, hi = bounds(dtype, limits)
    if dtype == pl.UInt64():
        fits = (how == UNSIGNED) | ((how == SIGNED) & (values >= 0))
        raw: NDArray[np.generic] = values.view(np.uint64)
    else:
        fits = (how == SIGNED) & (values >= lo) & (values <= hi)
        raw = values
    wide = pl.from_arrow(pa.array(np.where(fits, raw, 0), mask=~fits))
    assert isinstance(wide, pl.Series)
    return wide.cast(dtype).alias(name), (how != ABSENT) & ~fits


def outside_np(values: NDArray[np.int64], dtype: pl.DataType) -> NDArray[np.bool_]:
    """Which int64 ``values`` do not fit ``dtype`` (scanner values saturate, never wrap)."""
    lo, hi = bounds(dtype)
    return (values < lo) | (values > hi)


def ts_ns(sec: pl.Expr, frac: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Integer ns of a printed ``sec.frac`` timestamp, exactly (never through a float).

    Without a fraction the value is a raw clock count (``trace_clock`` counter, x86-tsc) and is
    kept as it is. Returns the value (null when absent, past int64 ns, or with a fraction of
    more than 9 digits, which no ns clock prints) and whether it was out of range.
    """
    width = frac.str.len_bytes().fill_null(0).cast(pl.Int64)
    scale = pl.lit(10, pl.Int64).pow((pl.lit(9, pl.Int64) - width).clip(0, 9))
    scaled = frac.str.to_integer(dtype=pl.Int64, strict=False) * scale
    seconds = sec.str.to_integer(dtype=pl.Int64, strict=False)
    limit = _INT64_MAX // _NS_PER_S
    fits_ns = (width <= 9) & (
        (seconds < limit) | ((seconds == limit) & (scaled <= _INT64_MAX % _NS_PER_S))
    )
    value = (
        pl.when(width == 0)
        .then(seconds)
        .when(fits_ns)
        .then(seconds * _NS_PER_S + scaled)
        .otherwise(None)
    )
    return value, sec.is_not_null() & value.is_null()


#: name of the column :func:`parse_columns` callers keep the out-of-range reason in
OUTSIDE = "outside"
Spec = tuple[pl.Expr, pl.DataType, int]


def parse_columns(specs: dict[str, Spec], fate: str) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """Several integer columns read from text at once (``specs``: column -> digits, type,
    base): their value expressions (aliased), and the skip reason of the first one, in
    ``specs`` order, out of range (null where all fit), for :func:`split_outside`."""
    values, reasons = {}, []
    for column, (text, dtype, base) in specs.items():
        value, bad = parse_text(text, dtype, base)
        values[column] = value.alias(column)
        reasons.append(pl.when(bad).then(pl.lit(out_of_range(column, dtype, fate))))
    return values, pl.coalesce(reasons).alias(OUTSIDE)


def split_outside(rows: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, list[int]]]:
    """``rows`` whose :data:`OUTSIDE` reason is null (without that column), and the ``seq``
    of the others per reason."""
    bad = rows.filter(pl.col(OUTSIDE).is_not_null())
    reasons = {
        str(reason): group["seq"].to_list()
        for (reason,), group in bad.group_by(OUTSIDE, maintain_order=True)
    }
    return rows.filter(pl.col(OUTSIDE).is_null()).drop(OUTSIDE), reasons
