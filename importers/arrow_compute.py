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
    FilterOptions,
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
