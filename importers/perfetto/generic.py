"""Every other ``FtraceEvent`` into the long ``events`` table, with all its fields.

As for trace.dat, an event without a typed table keeps its raw record: ``payload`` holds the
bytes of its ``FtraceEvent`` member message, every field it was recorded with, and ``event``
names it, so :func:`event_fields` (or the ``perfetto`` package's classes) decode any row.
Rendering millions of payloads as text would cost more than the rest of the import. ``args``
is text where the message alone does not tell a reader what it says:

* ``print`` (trace_marker writes): the written text, as ftrace prints it;
* ``generic`` events (kernel events Perfetto has no message for): ``name=value`` of their
  ``{name, str_value | int_value | uint_value}`` fields, and ``event`` is the event's own name
  [protos/perfetto/trace/ftrace/generic.proto];
* kernel function addresses that the trace symbolized (``symbolize_ksyms``) are interned
  ids in the message: ``args`` names the functions, for the fields Perfetto's trace processor
  treats so (``kKernelFunctionFields`` in src/trace_processor/importers/ftrace/
  ftrace_parser.cc).

Event names come from the ``perfetto`` package's ``FtraceEvent`` schema (its generated
descriptors, loaded only when a trace has such events); an event newer than that schema is
``ftrace_event_<n>``, ``n`` its number in the oneof.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from importers.perfetto.plain import DENSE_KINDS, present_kinds
from importers.perfetto.sequences import KernelSymbols
from importers.perfetto.wire import (
    I64,
    LEN,
    U8,
    bundle_loops,
    decode_utf8,
    pick_fields,
    scan_fields,
    text_column,
)
from importers.schema import conform

PRINT, GENERIC = 3, 327
#: GenericFtraceEvent {event_name = 1, field = 2}; Field {name 1, str 3, int 4, uint 5}
_GENERIC_NAME, _GENERIC_FIELD = 1, 2
_FIELD_PARTS = [1, 3, 4, 5]
#: (event, field) numbers of kernel function addresses (see module docstring):
#: sched_blocked_reason.caller, workqueue_{queue,activate,execute_start,execute_end}.function,
#: funcgraph_{entry,exit}.func, mm_shrink_slab_start.shrink, hrtimer_expire_entry.function
KERNEL_FUNCTIONS = {18: (2,), 59: (2,), 56: (2,), 58: (2,), 57: (2,), 437: (2,), 438: (3,),
                    443: (8,), 553: (3,)}  # fmt: skip


@functools.cache
def event_names() -> dict[int, str]:
    """The ``perfetto`` package's ``FtraceEvent`` members: oneof number -> event name."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2

    return {
        f.number: f.name
        for f in perfetto_trace_pb2.FtraceEvent.DESCRIPTOR.fields
        if f.message_type is not None
    }


def event_fields(event: str, payload: bytes) -> dict[str, Any]:
    """The fields of an ``events`` row's ``payload`` by name, decoded with the ``perfetto``
    package's message class of ``event`` (generic events and events newer than that schema
    have none: their ``args`` or field numbers say what they hold)."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2

    if event not in perfetto_trace_pb2.FtraceEvent.DESCRIPTOR.fields_by_name:
        raise ValueError(f"{event!r} is not an FtraceEvent of the perfetto package's schema")
    message = type(getattr(perfetto_trace_pb2.FtraceEvent(), event)).FromString(payload)
    return {f.name: value for f, value in message.ListFields()}


@dataclass
class Symbols:
    """The trace's interned kernel symbols and the incremental state of each row being
    rendered (:attr:`~importers.perfetto.sequences.Sequences.state`)."""

    interned: KernelSymbols
    state: I64

    def rows(self, rows: I64) -> Symbols:
        """The same symbols for a subset of the rows."""
        return Symbols(self.interned, self.state[rows])

    def lookup(self, values: NDArray[np.uint64]) -> tuple[I64, pa.Array]:
        """The rows whose value is an iid interned in their state, and its symbol."""
        return self.interned.find(self.state, values)


def events_table(
    data: U8, kind: NDArray[np.int32], body: I64, body_len: NDArray[np.int32],
    prefix: dict[str, Any], symbols: Symbols | None,
) -> pa.Table:  # fmt: skip
    """``events`` rows of events without a typed table, in the order given.

    ``kind`` is each row's oneof member; ``prefix`` holds ``ts, seq, cpu, common_pid,
    flags``; ``symbols`` the trace's interned kernel symbols and each row's sequence state,
    when it has any. Names are coded by a table of the kinds present; payloads and ``args``
    are gathered in one compiled pass (:func:`~importers.perfetto.bundle_kernels.event_bytes`),
    with the texts this module renders for some kinds.
    """
    n = len(body)
    names: list[str] = []
    code_of: dict[int, int] = {}
    rendered: list[tuple[I64, pa.Array]] = []  # rows and their args, where rendered here
    generic_codes = None
    for member in present_kinds(kind):
        code_of[member] = len(names)
        if member == GENERIC:  # named by the event itself
            rows = np.flatnonzero(kind == GENERIC)
            end = body[rows] + body_len[rows]
            own, text = _generic(data, body[rows], end)
            generic_codes = (rows, own.indices.to_numpy(zero_copy_only=False) + len(names))
            names += own.dictionary.to_pylist()
            rendered.append((rows, text))
            continue
        names.append(event_names().get(member, f"ftrace_event_{member}"))
        if symbols is not None and member in KERNEL_FUNCTIONS:
            rows = np.flatnonzero(kind == member)
            end = body[rows] + body_len[rows]
            text = _symbolized(data, member, body[rows], end, symbols.rows(rows))
            rendered.append((rows, text))
    name_code = _codes(kind, code_of)
    if generic_codes is not None:
        name_code[generic_codes[0]] = generic_codes[1]
    payload, args = _bytes(data, kind, body, body_len, rendered)
    columns = {
        **prefix,
        "event": pa.DictionaryArray.from_arrays(pa.array(name_code), pa.array(names, pa.string())),
        "system": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32), mask=kind != PRINT), pa.array(["ftrace"])
        ),
        "args": args,
        "payload": payload,
    }
    return conform("events", pa.table(columns))


def _codes(kind: NDArray[np.int32], code_of: dict[int, int]) -> NDArray[np.int32]:
    """Each row's code (``code_of`` its kind's), looked up in a dense table."""
    dense = [k for k in code_of if k < DENSE_KINDS]
    table = np.zeros(DENSE_KINDS, np.int32)
    table[dense] = [code_of[k] for k in dense]
    codes = table[np.minimum(kind, DENSE_KINDS - 1)]
    for k in set(code_of) - set(dense):  # numbers no FtraceEvent has yet
        codes[kind == k] = code_of[k]
    return codes


def _bytes(
    data: U8, kind: NDArray[np.int32], body: I64, body_len: NDArray[np.int32],
    rendered: list[tuple[I64, pa.Array]],
) -> tuple[pa.LargeBinaryArray, pa.Array]:  # fmt: skip
    """The ``payload`` and ``args`` columns (see
    :func:`~importers.perfetto.bundle_kernels.event_bytes`)."""
    n = len(body)
    index = np.full(n, -1, np.int64)
    texts = pa.array([], pa.large_string())
    if rendered:
        rows = np.concatenate([r for r, _ in rendered])
        index[rows] = np.arange(rows.shape[0])
        texts = pa.concat_arrays([t.cast(pa.large_string()) for _, t in rendered])
    _, offsets, chars = texts.buffers()
    extra = np.frombuffer(chars, np.uint8) if chars is not None else np.empty(0, np.uint8)
    room = int(body_len[kind == PRINT].sum(dtype=np.int64)) + extra.shape[0]
    payload = np.empty(int(body_len.sum(dtype=np.int64)), np.uint8)
    args = np.empty(room, np.uint8)
    payload_offsets, args_offsets = np.empty((2, n + 1), np.int64)
    valid = np.empty(n, np.bool_)
    spans = (data, body, body_len, kind, PRINT, index, extra,
             np.frombuffer(offsets, np.int64, len(texts) + 1),
             texts.is_valid().to_numpy(zero_copy_only=False), payload, payload_offsets,
             args, args_offsets, valid)  # fmt: skip
    bundle_loops(data).event_bytes(*spans)
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    binary = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [mask, pa.py_buffer(args_offsets), pa.py_buffer(args)]
    )
    column: pa.LargeBinaryArray = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(payload_offsets), pa.py_buffer(payload)]
    )
    return column, decode_utf8(binary)


def _symbolized(data: U8, kind: int, body: I64, end: I64, symbols: Symbols) -> pa.Array:
    """``field=function`` of the kernel function fields whose iid the trace interned."""
    fields = KERNEL_FUNCTIONS[kind]
    value, _, _ = pick_fields(data, body, end, list(fields))
    names = event_fields_names(kind)
    rows, texts = [], []
    for k, number in enumerate(fields):
        found, symbol = symbols.lookup(value[:, k])
        rows.append(found)
        texts.append(pc.binary_join_element_wise(f"{names[number]}=", symbol, ""))
    return _spaced(np.concatenate(rows), pa.concat_arrays(texts), len(body))


def _spaced(row: I64, texts: pa.Array, n: int) -> pa.StringArray:
    """Per row of ``n``, its non-null ``texts`` (``row`` says whose each is) joined by
    spaces, in the order given; empty for a row without any."""
    order = np.argsort(row, kind="stable")
    kept = order[texts.is_valid().to_numpy(zero_copy_only=False)[order]]
    offsets = np.searchsorted(row[kept], np.arange(n + 1)).astype(np.int32)
    joined: pa.StringArray = pc.binary_join(
        pa.ListArray.from_arrays(pa.array(offsets), texts.take(pa.array(kept))), " "
    )
    return joined


@functools.cache
def event_fields_names(kind: int) -> dict[int, str]:
    """Field number -> field name of the ``FtraceEvent`` member ``kind``."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2

    message = perfetto_trace_pb2.FtraceEvent.DESCRIPTOR.fields_by_number[kind].message_type
    return {f.number: f.name for f in message.fields}


def _strings(data: U8, value: NDArray[np.uint64], length: I64) -> pa.Array:
    """A string field of every row (null where the row lacks it)."""
    return text_column(data, value.view(np.int64), length).dictionary_decode()


def _integers(value: NDArray[np.generic], length: I64) -> pa.Array:
    """An integer field of every row as text (null where the row lacks it)."""
    return pa.array(value, mask=length < 0).cast(pa.string())


def _generic(data: U8, body: I64, end: I64) -> tuple[pa.DictionaryArray, pa.Array]:
    """Names (``generic`` for one without) and ``name=value`` fields of
    ``GenericFtraceEvent``s."""
    value, length, _ = pick_fields(data, body, end, [_GENERIC_NAME])
    names = text_column(data, value[:, 0].view(np.int64), length[:, 0])
    if names.null_count:
        names = pc.fill_null(names.dictionary_decode(), "generic").dictionary_encode()
    f = scan_fields(data, body, end)
    rows = np.flatnonzero(f.of(_GENERIC_FIELD, LEN))
    at = f.at[rows]
    fv, fl, _ = pick_fields(data, at, at + f.value[rows].astype(np.int64), _FIELD_PARTS)
    shown = pc.coalesce(
        _strings(data, fv[:, 1], fl[:, 1]),
        _integers(fv[:, 2].view(np.int64), fl[:, 2]),
        _integers(fv[:, 3], fl[:, 3]),
    )
    # a field without a value shows as "name="; one without a name is left out
    pairs = pc.binary_join_element_wise(_strings(data, fv[:, 0], fl[:, 0]),
                                        pc.fill_null(shown, ""), "=")  # fmt: skip
    return names, _spaced(f.msg[rows], pairs, len(body))
