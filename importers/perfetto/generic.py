"""Every other ``FtraceEvent`` into the long ``events`` table, its fields rendered as text.

Names and field types come from the ``FtraceEvent`` schema of the ``perfetto`` package (its
generated descriptors, loaded only when a trace has such events), so ``args`` reads
``name=value`` for every field the event carries, in field order:

* ``print`` (trace_marker writes): ``args`` is the written text, as ftrace prints it;
* ``generic`` events (kernel events Perfetto has no message for): the event's own name and
  its ``{name, str_value | int_value | uint_value}`` fields
  [protos/perfetto/trace/ftrace/generic.proto];
* fields that hold kernel function addresses, when the trace interned their symbols
  (``symbolize_ksyms``), print the symbol: the fields Perfetto's trace processor treats so
  (``kKernelFunctionFields`` in src/trace_processor/importers/ftrace/ftrace_parser.cc);
* an event newer than that schema keeps its number (``ftrace_event_<n>``) and its fields by
  number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.wire import I64, LEN, U8, pick_fields, scan_fields, text_column
from importers.schema import conform

PRINT, GENERIC = 3, 327
#: GenericFtraceEvent {event_name = 1, field = 2}; Field {name 1, str 3, int 4, uint 5}
_GENERIC_NAME, _GENERIC_FIELD = 1, 2
#: (event, field) numbers of kernel function addresses (see module docstring)
#: sched_blocked_reason.caller, workqueue_{queue,activate,execute_start,execute_end}.function,
#: funcgraph_{entry,exit}.func, mm_shrink_slab_start.shrink, hrtimer_expire_entry.function
KERNEL_FUNCTIONS = frozenset({(18, 2), (59, 2), (56, 2), (58, 2), (57, 2), (437, 2), (438, 3),
                              (443, 8), (553, 3)})  # fmt: skip
# descriptor field types (google/protobuf/descriptor.proto FieldDescriptorProto.Type)
_DOUBLE, _FLOAT, _INT64, _UINT64, _INT32, _FIXED64, _FIXED32, _BOOL, _STRING = range(1, 10)
_MESSAGE, _BYTES, _UINT32, _ENUM, _SFIXED32, _SFIXED64, _SINT32, _SINT64 = range(11, 19)


@dataclass(frozen=True)
class EventSchema:
    """An ``FtraceEvent`` member: its event name and its fields (number, name, type)."""

    name: str
    fields: tuple[tuple[int, str, int], ...]


@functools.cache
def event_schemas() -> dict[int, EventSchema]:
    """The ``perfetto`` package's ``FtraceEvent`` members, by oneof number."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2

    out: dict[int, EventSchema] = {}
    for f in perfetto_trace_pb2.FtraceEvent.DESCRIPTOR.fields:
        if f.message_type is not None:
            fields = tuple((g.number, g.name, g.type) for g in f.message_type.fields)
            out[f.number] = EventSchema(f.name, fields)
    return out


def events_rows(
    data: U8,
    kind: int,
    body: I64,
    body_len: I64,
    prefix: dict[str, Any],
    symbols: Symbols | None,
) -> pa.Table:
    """``events`` rows of the events of oneof member ``kind``.

    ``prefix`` holds ``ts, seq, cpu, common_pid, flags``; ``symbols`` the trace's interned
    kernel symbols and each row's sequence state, when it has any.
    """
    end = body + body_len
    n = len(body)
    system: pa.Array = pa.nulls(n, pa.string())
    if kind == PRINT:
        value, length, _ = pick_fields(data, body, end, [2])  # PrintFtraceEvent.buf
        text = text_column(data, value[:, 0].view(np.int64), length[:, 0]).dictionary_decode()
        names: pa.Array = _constant("print", n)
        args = pl.Series(text).str.strip_suffix("\n")
        system = _constant("ftrace", n)
    elif kind == GENERIC:
        names, args = _generic(data, body, end)
    else:
        schema = event_schemas().get(kind)
        names = _constant(schema.name if schema else f"ftrace_event_{kind}", n)
        args = (
            _by_schema(data, kind, schema, body, end, symbols)
            if schema
            else _by_number(data, body, end)
        )
    columns = {**prefix, "event": names, "system": system, "args": args.to_arrow()}
    return conform("events", pa.table(columns))


@dataclass
class Symbols:
    """Interned kernel symbols (``sequence, generation, iid, symbol``) and the ``sequence,
    generation`` of each row being rendered."""

    interned: pl.DataFrame
    keys: pl.DataFrame

    def lookup(self, values: NDArray[np.uint64]) -> pl.DataFrame:
        """``row, symbol`` of the rows whose value is an iid interned on their sequence."""
        probe = self.keys.with_columns(pl.Series("iid", values)).with_row_index("row")
        found = probe.join(self.interned, on=["sequence", "generation", "iid"])
        return found.select("row", "symbol")


def _constant(text: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([text]))


def _by_schema(
    data: U8,
    kind: int,
    schema: EventSchema,
    body: I64,
    end: I64,
    symbols: Symbols | None,
) -> pl.Series:
    """``name=value`` of every field present, in field order, joined by spaces."""
    numbers = [number for number, _, _ in schema.fields]
    value, length, _ = pick_fields(data, body, end, numbers)
    parts: list[pl.Series] = []
    for k, (number, name, ftype) in enumerate(schema.fields):
        text = _text(data, value[:, k], length[:, k], ftype)
        if symbols is not None and (kind, number) in KERNEL_FUNCTIONS:
            found = symbols.lookup(value[:, k])
            text = text.scatter(found["row"], found["symbol"])
        parts.append((name + "=" + text).alias(f"f{k}"))
    return _joined(pl.DataFrame(parts), len(body))


def _joined(columns: pl.DataFrame, n: int) -> pl.Series:
    if not columns.width:
        return pl.Series("args", [""] * n, pl.Utf8)
    joined = columns.select(pl.concat_str(pl.all(), separator=" ", ignore_nulls=True))
    return joined.to_series().alias("args")


def _text(data: U8, value: NDArray[np.uint64], length: I64, ftype: int) -> pl.Series:
    """One field of every row as text (null where the row lacks it)."""
    absent = length < 0
    shown: pl.Series
    if ftype in (_STRING, _BYTES):
        column = text_column(data, value.view(np.int64), length).dictionary_decode()
        return pl.Series(column)
    if ftype == _MESSAGE:
        shown = pl.Series(length).cast(pl.Utf8)
        shown = "<" + shown + " bytes>"
    elif ftype in (_SINT32, _SINT64):
        shown = pl.Series(
            (value >> np.uint64(1)).view(np.int64) ^ -(value & np.uint64(1)).view(np.int64)
        )
    elif ftype in (_INT32, _INT64, _ENUM, _SFIXED64):
        shown = pl.Series(value.view(np.int64))
    elif ftype == _SFIXED32:
        shown = pl.Series(value.astype(np.uint32).view(np.int32))
    elif ftype == _DOUBLE:
        shown = pl.Series(value.view(np.float64))
    elif ftype == _FLOAT:
        shown = pl.Series(value.astype(np.uint32).view(np.float32))
    else:  # unsigned, fixed, bool
        shown = pl.Series(value)
    return shown.cast(pl.Utf8).scatter(np.flatnonzero(absent), None)


def _generic(data: U8, body: I64, end: I64) -> tuple[pa.Array, pl.Series]:
    """Names and ``name=value`` fields of ``GenericFtraceEvent``s."""
    value, length, _ = pick_fields(data, body, end, [_GENERIC_NAME])
    names = text_column(data, value[:, 0].view(np.int64), length[:, 0])
    f = scan_fields(data, body, end)
    rows = np.flatnonzero(f.of(_GENERIC_FIELD, LEN))
    at = f.at[rows]
    fv, fl, _ = pick_fields(data, at, at + f.value[rows].astype(np.int64), [1, 3, 4, 5])
    shown = pl.select(
        pl.coalesce(
            _text(data, fv[:, 1], fl[:, 1], _STRING),
            _text(data, fv[:, 2], fl[:, 2], _INT64),
            _text(data, fv[:, 3], fl[:, 3], _UINT64),
        )
    ).to_series()
    pairs = pl.DataFrame(
        {"row": f.msg[rows], "pair": _text(data, fv[:, 0], fl[:, 0], _STRING) + "=" + shown}
    )
    return names, _per_row(pairs, len(body))


def _by_number(data: U8, body: I64, end: I64) -> pl.Series:
    """Fields of an event unknown to the schema, as ``<number>=<value>`` (LEN fields: their
    size), so that nothing it carries goes unmentioned."""
    f = scan_fields(data, body, end)
    shown = pl.Series(f.value).cast(pl.Utf8)
    shown = pl.select(
        pl.when(pl.Series(f.wire == LEN)).then("<" + shown + " bytes>").otherwise(shown)
    ).to_series()
    pairs = pl.DataFrame({"row": f.msg, "pair": pl.Series(f.number).cast(pl.Utf8) + "=" + shown})
    return _per_row(pairs, len(body))


def _per_row(pairs: pl.DataFrame, n: int) -> pl.Series:
    """``pair`` texts joined per ``row`` (in order), "" for rows without any."""
    joined = pairs.group_by("row", maintain_order=True).agg(pl.col("pair").str.join(" "))
    full = pl.DataFrame({"row": np.arange(n)}).join(joined, on="row", how="left")
    return full.sort("row")["pair"].fill_null("").alias("args")
