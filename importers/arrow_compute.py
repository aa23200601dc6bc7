"""Arrow compute kernels called through ``pyarrow._compute``, not ``pyarrow.compute``.

Why (issue 17, start-up time): ``import pyarrow.compute`` costs ~35 ms on this machine
(``_make_global_functions`` wraps ~290 kernels, scraping a docstring for each, at import) —
a tenth of the whole wait for a small capture. Every pyarrow method that runs a kernel
(``Array.cast``, ``Table.filter``, ``is_valid``, ``fill_null``, ``take``, ``sort_by``, ...)
imports it on its first call, so the code a small import runs calls the kernels here instead:
each function calls the kernel by name with the options ``pyarrow.compute``'s own wrapper of
that name would build, so results are the same arrays.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyarrow._compute import (
    CastOptions,
    DictionaryEncodeOptions,
    ExtractRegexOptions,
    FilterOptions,
    MatchSubstringOptions,
    NullOptions,
    ScalarAggregateOptions,
    SetLookupOptions,
    SortOptions,
    TakeOptions,
    call_function,
)

#: an Array or ChunkedArray (a Table or RecordBatch where the kernel takes one)
Values = Any


def cast(values: Values, target: pa.DataType, *, safe: bool = True) -> Values:
    """``values.cast(target, safe=safe)``."""
    options = CastOptions.safe(target) if safe else CastOptions.unsafe(target)
    return call_function("cast", [values], options)


def cast_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table.cast(schema)``: each column cast to its field's type (names must match)."""
    if table.schema.names != schema.names:
        raise ValueError(f"cannot cast columns {table.schema.names} to {schema.names}")
    columns = [cast(c, field.type) for c, field in zip(table.columns, schema, strict=True)]
    return pa.Table.from_arrays(columns, schema=schema)


def take(data: Values, indices: Values) -> Values:
    """``data.take(indices)`` (rows of a table, or elements); a null index takes a null."""
    return call_function("take", [data, indices], TakeOptions(boundscheck=True))


def filter_rows(data: Values, mask: Values) -> Values:
    """``data.filter(mask)``: the rows where ``mask`` is true (null drops the row)."""
    return call_function("filter", [data, mask], FilterOptions("drop"))


def drop_null(data: Values) -> Values:
    """``data.drop_null()``: the rows without a null in any column."""
    return call_function("drop_null", [data])


def is_valid(values: Values) -> Values:
    """``values.is_valid()``."""
    return call_function("is_valid", [values])


def is_null(values: Values) -> Values:
    """``values.is_null()``."""
    return call_function("is_null", [values], NullOptions(nan_is_null=False))


def fill_null(values: Values, fill: object) -> Values:
    """``values.fill_null(fill)``: ``fill`` (a Python value) where ``values`` is null."""
    return call_function("coalesce", [values, pa.scalar(fill, type=values.type)])


def total(values: Values) -> pa.Scalar:
    """``pyarrow.compute.sum``: nulls skipped, null when nothing is valid."""
    return call_function("sum", [values], ScalarAggregateOptions())


def maximum(values: Values) -> pa.Scalar:
    """``pyarrow.compute.max``: nulls skipped, null when nothing is valid."""
    return call_function("max", [values], ScalarAggregateOptions())


def is_in(values: Values, value_set: pa.Array) -> Values:
    """``pyarrow.compute.is_in(values, value_set=value_set)``: whether each value is one of
    ``value_set`` (a null only where ``value_set`` holds a null)."""
    return call_function("is_in", [values], SetLookupOptions(value_set))


def unique(values: Values) -> pa.Array:
    """``pyarrow.compute.unique``: distinct values in order of first appearance."""
    return call_function("unique", [values])


def value_counts(values: Values) -> pa.StructArray:
    """``pyarrow.compute.value_counts``: ``{values, counts}`` in order of first appearance."""
    return call_function("value_counts", [values])


def dictionary_encode(values: Values) -> Values:
    """``pyarrow.compute.dictionary_encode``: nulls stay null (not a dictionary entry)."""
    return call_function("dictionary_encode", [values], DictionaryEncodeOptions())


def sort_indices(data: Values, keys: list[tuple[str, str]] | None = None) -> pa.Array:
    """``pyarrow.compute.sort_indices`` (stable; nulls at the end), by ``keys`` of a table."""
    return call_function("sort_indices", [data], SortOptions(keys or ()))


def sort_by(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    """``table.sort_by(keys)``: stable, nulls at the end."""
    return take(table, sort_indices(table, keys))


#: the Arrow type pyarrow infers for a Python value of each type
_INFERRED = {
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    type(None): pa.null(),
}


def _typed(value: object) -> object:
    """``value``, made the scalar pyarrow would infer if it is a Python value: inferring it
    imports dateutil (4 ms of start-up), naming the type does not. The kernel then casts it to
    the common type as it would the inferred one, so the result is the same."""
    if isinstance(value, (pa.Array, pa.ChunkedArray, pa.Scalar)):
        return value
    return pa.scalar(value, _INFERRED[type(value)])


def equal(left: Values, right: object) -> Values:
    """``pyarrow.compute.equal``: null where either side is null."""
    return call_function("equal", [left, _typed(right)])


def less(left: Values, right: object) -> Values:
    """``pyarrow.compute.less``: null where either side is null."""
    return call_function("less", [left, _typed(right)])


def add(left: Values, right: object) -> Values:
    """``pyarrow.compute.add`` (unchecked: wraps on overflow, as pyarrow's does)."""
    return call_function("add", [left, _typed(right)])


def negate(values: Values) -> Values:
    """``pyarrow.compute.negate`` (unchecked)."""
    return call_function("negate", [values])


def invert(values: Values) -> Values:
    """``pyarrow.compute.invert``: boolean not, null stays null."""
    return call_function("invert", [values])


def or_(left: Values, right: Values) -> Values:
    """``pyarrow.compute.or_``: null where either side is null."""
    return call_function("or", [left, right])


def if_else(cond: Values, left: object, right: object) -> Values:
    """``pyarrow.compute.if_else``: ``left`` where ``cond`` is true, ``right`` where false,
    null where ``cond`` is null."""
    return call_function("if_else", [cond, _typed(left), _typed(right)])


def coalesce(*values: object) -> Values:
    """``pyarrow.compute.coalesce``: the first non-null of ``values`` in each row."""
    return call_function("coalesce", list(map(_typed, values)))


def make_struct(*fields: Values) -> Values:
    """``pyarrow.compute.make_struct`` with unnamed fields (the condition of :func:`case_when`)."""
    return call_function("make_struct", list(fields))


def case_when(conditions: Values, *cases: object) -> Values:
    """``pyarrow.compute.case_when``: per row, the case of the first true field of
    ``conditions``; the extra last case (if given) where none is true, else null."""
    return call_function("case_when", [conditions, *map(_typed, cases)])


def binary_length(strings: Values) -> Values:
    """``pyarrow.compute.binary_length``: bytes per string, null stays null."""
    return call_function("binary_length", [strings])


def utf8_trim_whitespace(strings: Values) -> Values:
    """``pyarrow.compute.utf8_trim_whitespace``: Unicode white space off both ends."""
    return call_function("utf8_trim_whitespace", [strings])


def utf8_rtrim_whitespace(strings: Values) -> Values:
    """``pyarrow.compute.utf8_rtrim_whitespace``: Unicode white space off the end."""
    return call_function("utf8_rtrim_whitespace", [strings])


def match_substring(strings: Values, pattern: str) -> Values:
    """``pyarrow.compute.match_substring``: whether ``pattern`` occurs (case-sensitive)."""
    return call_function("match_substring", [strings], MatchSubstringOptions(pattern))


def match_substring_regex(strings: Values, pattern: str) -> Values:
    """``pyarrow.compute.match_substring_regex``: whether the RE2 ``pattern`` matches."""
    return call_function("match_substring_regex", [strings], MatchSubstringOptions(pattern))


def extract_regex(strings: Values, pattern: str) -> Values:
    """``pyarrow.compute.extract_regex``: a struct of the named groups of ``pattern``, null
    where it does not match."""
    return call_function("extract_regex", [strings], ExtractRegexOptions(pattern))
