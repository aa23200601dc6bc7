"""Integers read from text, checked against the type of the column that stores them.

Every text grammar (ftrace lines, markers and payloads, ``perf script``, ``perf stat``, vCPU
thread names) reads a number wide first — the digits as text, or a 64-bit value with how it
was read (:data:`SIGNED`, :data:`UNSIGNED`, :data:`OVERFLOW`, from the byte scanners) — and
this module decides whether it fits the column's type. A value that does not fit is never cast
into a wrap (CPU 65536 stored as 0, pid 2^32 - 1 as -1), a cast failure or a silent null: the
caller gets the rows that are out of range and skips them (or keeps them with that field
unknown) under :func:`out_of_range`, a reason counted with the lines where it happened.

Digits are read over Arrow and numpy by the ftrace text importer (:func:`read_text`,
:func:`read_ts`, which load no polars), and as polars expressions by the ``perf script`` and
``perf stat`` importers, whose tables are polars frames (:func:`parse_text`, :func:`ts_ns`);
``tests/importers/test_ranges.py`` holds the two to the same values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import binary_length, cast, fill_null, is_valid

if TYPE_CHECKING:
    import polars as pl

#: how a byte scanner read an integer (``importers.ftrace.scan.find_keys``): ``ABSENT`` not a
#: number; ``SIGNED`` the int64 value; ``UNSIGNED`` at least 2^63 and below 2^64, the int64
#: holds its bit pattern; ``OVERFLOW`` 2^64 or more (or below -2^63), the value is lost
ABSENT, SIGNED, UNSIGNED, OVERFLOW = 0, 1, 2, 3

Limits = tuple[int, int]
#: an integer type of Arrow (the text importer's tables) or polars (the ``perf`` text
#: importers' frames): both print as the names below, whatever the case
IntType = Union[pa.DataType, "pl.DataType"]
_BOUNDS: dict[str, Limits] = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint8": (0, (1 << 8) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_NS_PER_S = 1_000_000_000
_INT64_MAX = (1 << 63) - 1


def bounds(dtype: IntType, limits: Limits | None = None) -> Limits:
    """Smallest and largest value of the integer type ``dtype`` (or ``limits``, narrower
    values a column of that type may hold)."""
    return limits or _BOUNDS[str(dtype).lower()]


def out_of_range(what: str, dtype: IntType, fate: str, limits: Limits | None = None) -> str:
    """The skip reason of a ``what`` (``cpu``, ``sched_switch next_pid``) that does not fit
    ``dtype``; ``fate`` says what became of the row (``line skipped``, ``kept in events``)."""
    lo, hi = bounds(dtype, limits)
    return f"{what} outside {lo}..{hi} ({fate})"


def parse_text(
    text: pl.Expr, dtype: pl.DataType, base: int = 10, limits: Limits | None = None
) -> tuple[pl.Expr, pl.Expr]:
    """``text`` (an integer's digits, null when absent) read as ``dtype``, in polars (the
    ``perf`` text importers; :func:`read_text` is the same rule over Arrow).

    Returns the value (null where absent or out of range) and whether it was out of range
    (present, but not a value of ``dtype`` within ``limits``).
    """
    import polars as pl  # the caller's frames are polars: loaded already

    lo, hi = bounds(dtype, limits)
    wide_type = pl.UInt64 if dtype == pl.UInt64() else pl.Int64
    wide = text.str.to_integer(base=base, dtype=wide_type, strict=False)
    fits = wide.is_between(lo, hi)
    outside = text.is_not_null() & ~fits.fill_null(False)
    return pl.when(fits).then(wide).cast(dtype), outside


def fit_scanned(
    values: NDArray[np.int64],
    how: NDArray[np.int8],
    dtype: pa.DataType,
    limits: Limits | None = None,
) -> tuple[pa.Array, NDArray[np.bool_]]:
    """Integers read by a byte scanner (``how`` per value: :data:`ABSENT`, :data:`SIGNED`,
    :data:`UNSIGNED`, :data:`OVERFLOW`) as a ``dtype`` array (null where absent or out of
    range), and which were out of range."""
    lo, hi = bounds(dtype, limits)
    if dtype == pa.uint64():
        fits = (how == UNSIGNED) | ((how == SIGNED) & (values >= 0))
        raw: NDArray[np.generic] = values.view(np.uint64)
    else:
        fits = (how == SIGNED) & (values >= lo) & (values <= hi)
        raw = values
    return _column(raw, fits, dtype), (how != ABSENT) & ~fits


def read_text(
    text: pa.Array, dtype: pa.DataType, base: int = 10, limits: Limits | None = None
) -> tuple[pa.Array, NDArray[np.bool_]]:
    """:func:`parse_text` over Arrow: ``text`` (an integer's digits, an optional ``-``; null
    when absent) read as ``dtype``. Returns the value (null where absent or out of range) and
    whether it was out of range (present, but not a value of ``dtype`` within ``limits``)."""
    present = is_valid(text).to_numpy(zero_copy_only=False)
    negative, magnitude, readable = _digits(text, base)
    lo, hi = bounds(dtype, limits)
    if dtype == pa.uint64():
        fits = readable & ~negative
        raw: NDArray[np.generic] = magnitude
    else:  # the int64 value, wrapped where it does not fit (then fits is False)
        signed = magnitude.view(np.int64)
        with np.errstate(over="ignore"):  # -(-2^63) wraps to itself, the right value
            value = np.where(negative, -signed, signed)
        wide = (negative & (magnitude <= np.uint64(1 << 63))) | (magnitude <= _INT64_MAX)
        fits = readable & wide & (value >= lo) & (value <= hi)
        raw = value
    fits &= present
    return _column(raw, fits, dtype), present & ~fits


def _column(raw: NDArray[np.generic], fits: NDArray[np.bool_], dtype: pa.DataType) -> pa.Array:
    return cast(pa.array(np.where(fits, raw, 0), mask=~fits), dtype)


_DIGIT = np.full(256, 255, np.uint8)
_DIGIT[ord("0") : ord("9") + 1] = np.arange(10)
_DIGIT[ord("a") : ord("f") + 1] = np.arange(10, 16)
_DIGIT[ord("A") : ord("F") + 1] = np.arange(10, 16)


def _digits(
    text: pa.Array, base: int
) -> tuple[NDArray[np.bool_], NDArray[np.uint64], NDArray[np.bool_]]:
    """Sign, magnitude (uint64) and whether each string is ``-``? and 1+ digits of ``base``
    whose value fits 64 bits. One numpy step per digit position, over all strings at once."""
    text = cast(text, pa.large_string())
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], np.int64, n + 1, text.offset * 8)
    data = text.buffers()[2]
    chars = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    chars = np.append(chars, np.uint8(0))  # a sentinel, so every index below is in bounds
    starts, ends = offsets[:-1], offsets[1:]
    negative = (ends > starts) & (chars[np.minimum(starts, chars.size - 1)] == ord("-"))
    first = starts + negative
    readable = ends > first
    magnitude = np.zeros(n, np.uint64)
    top = np.uint64((1 << 64) - 1)
    for j in range(int((ends - first).max(initial=0))):
        live = first + j < ends
        digit = _DIGIT[chars[np.where(live, first + j, chars.size - 1)]].astype(np.uint64)
        readable &= ~live | (digit < base)
        readable &= ~live | (magnitude <= (top - digit) // np.uint64(base))
        with np.errstate(over="ignore"):
            magnitude = np.where(live, magnitude * np.uint64(base) + digit, magnitude)
    return negative, magnitude, readable


def outside_np(values: NDArray[np.int64], dtype: IntType) -> NDArray[np.bool_]:
    """Which int64 ``values`` do not fit ``dtype`` (scanner values saturate, never wrap)."""
    lo, hi = bounds(dtype)
    return (values < lo) | (values > hi)


def ts_ns(sec: pl.Expr, frac: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Integer ns of a printed ``sec.frac`` timestamp, exactly (never through a float).

    Without a fraction the value is a raw clock count (``trace_clock`` counter, x86-tsc) and is
    kept as it is. Returns the value (null when absent, past int64 ns, or with a fraction of
    more than 9 digits, which no ns clock prints) and whether it was out of range. In polars
    (the ``perf`` text importers); :func:`read_ts` is the same rule over Arrow.
    """
    import polars as pl  # the caller's frames are polars: loaded already

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


def read_ts(sec: pa.Array, frac: pa.Array) -> tuple[pa.Array, NDArray[np.bool_]]:
    """:func:`ts_ns` over Arrow: integer ns of ``sec.frac`` (``frac`` null: a raw clock count,
    kept as it is), and where ``sec`` was present but the value is not (past int64 ns, a
    fraction of more than 9 digits)."""
    width = fill_null(binary_length(frac), 0).to_numpy().astype(np.int64)
    seconds, _ = read_text(sec, pa.int64())
    fraction, _ = read_text(frac, pa.int64())
    known = is_valid(seconds).to_numpy(zero_copy_only=False)
    whole = fill_null(seconds, 0).to_numpy()
    scaled = fill_null(fraction, 0).to_numpy() * 10 ** np.clip(9 - width, 0, 9)
    limit = _INT64_MAX // _NS_PER_S
    fits_ns = (width <= 9) & is_valid(fraction).to_numpy(zero_copy_only=False)
    fits_ns &= (whole < limit) | ((whole == limit) & (scaled <= _INT64_MAX % _NS_PER_S))
    raw = width == 0
    value = np.where(raw, whole, np.where(fits_ns, whole * _NS_PER_S + scaled, 0))
    valid = known & (raw | fits_ns)
    present = is_valid(sec).to_numpy(zero_copy_only=False)
    return pa.array(value, mask=~valid), present & ~valid


#: name of the column :func:`parse_columns` callers keep the out-of-range reason in
OUTSIDE = "outside"
Spec = tuple["pl.Expr", "pl.DataType", int]


def parse_columns(specs: dict[str, Spec], fate: str) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """Several integer columns read from text at once (``specs``: column -> digits, type,
    base): their value expressions (aliased), and the skip reason of the first one, in
    ``specs`` order, out of range (null where all fit), for :func:`split_outside`."""
    import polars as pl  # the caller's frames are polars: loaded already

    values, reasons = {}, []
    for column, (text, dtype, base) in specs.items():
        value, bad = parse_text(text, dtype, base)
        values[column] = value.alias(column)
        reasons.append(pl.when(bad).then(pl.lit(out_of_range(column, dtype, fate))))
    return values, pl.coalesce(reasons).alias(OUTSIDE)


def split_outside(rows: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, list[int]]]:
    """``rows`` whose :data:`OUTSIDE` reason is null (without that column), and the ``seq``
    of the others per reason."""
    import polars as pl  # the caller's frames are polars: loaded already

    bad = rows.filter(pl.col(OUTSIDE).is_not_null())
    reasons = {
        str(reason): group["seq"].to_list()
        for (reason,), group in bad.group_by(OUTSIDE, maintain_order=True)
    }
    return rows.filter(pl.col(OUTSIDE).is_null()).drop(OUTSIDE), reasons
