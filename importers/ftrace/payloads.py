"""Payload grammars of the modelled events in ftrace text, into typed columns.

Each event has a list of grammars — one per way its payload reaches users: the kernel's
``TP_printk`` output, trace-cmd's plugin rewrite, ``trace-cmd report -R`` raw ``field=value``,
the x86 forms of the kvm events (``formats.md`` §1.5, §2) — tried in order on the rows the
previous ones did not match. ``field=value`` forms are cut by the byte kernel
:func:`importers.ftrace.scan.find_keys`; other forms use a regex on the payload only. Target
names are the kernel field names of ``importers.schema``; ``_``-prefixed names are intermediate
values turned into fields by the event's finishing step (:mod:`importers.ftrace.fields`). Rows
that no grammar matches are not lost: they go to the ``events`` table and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from importers.arrow_compute import (
    dictionary_encode,
    fill_null,
    filter_rows,
    is_valid,
    sort_indices,
    take,
)
from importers.ftrace.fields import INTERMEDIATE, finish
from importers.ftrace.groups import groups
from importers.ftrace.lines import known_comm
from importers.ftrace.scan import find_keys, string_column, view_column
from importers.ftrace.scan_bytes import COMM, I64, TOKEN, VALUE, Text
from importers.ranges import ABSENT, Limits, fit_scanned, out_of_range, read_text
from importers.schema import TYPED_TABLES

HEX = r"[0-9a-fA-F]+"
#: what becomes of a row with a field outside its column's range
KEPT = "kept in events"


@dataclass(frozen=True)
class KeyValue:
    """A ``key=value ...`` payload: ``fields`` are (printed key, column) in print order."""

    fields: tuple[tuple[str, str], ...]
    optional: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    constants: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Pattern:
    """A payload regex whose named groups are columns; ``hex`` groups are bare hex digits."""

    regex: str
    hex: tuple[str, ...] = ()
    constants: tuple[tuple[str, str], ...] = ()


Grammar = KeyValue | Pattern


def _kv(
    *keys: str, optional: tuple[str, ...] = (), tokens: tuple[str, ...] = (), **rename: str
) -> KeyValue:
    return KeyValue(tuple((k, rename.get(k, k)) for k in keys), optional, tokens)


_WAKEUP: list[Grammar] = [
    _kv("comm", "pid", "prio", "success", "target_cpu", optional=("success",)),
    # trace-cmd's sched plugin: "comm:pid [prio] CPU:003" [libtraceevent plugin_sched_switch.c]
    Pattern(
        r"^(?P<comm>.*):(?P<pid>\d+) \[(?P<prio>-?\d+)\](?: success=(?P<success>\d+))?"
        r" CPU:(?P<target_cpu>\d+)"
    ),
]

GRAMMARS: dict[str, list[Grammar]] = {
    "sched_switch": [
        # kernel TP_printk and `report -N`: "... prev_state=S ==> next_comm=..."; `-R` prints
        # the same fields without "==>" (finished in importers.ftrace.fields).
        _kv(
            "prev_comm",
            "prev_pid",
            "prev_prio",
            "prev_state",
            "next_comm",
            "next_pid",
            "next_prio",
            tokens=("prev_state",),
            prev_state="_state",
        ),
        # trace-cmd's sched plugin: "prev:1 [120] S ==> next:2 [120]".
        Pattern(
            r"^(?P<prev_comm>.*):(?P<prev_pid>\d+) \[(?P<prev_prio>-?\d+)\] (?P<_state>\S+)"
            r" ==> (?P<next_comm>.*):(?P<next_pid>\d+) \[(?P<next_prio>-?\d+)\]"
        ),
    ],
    "sched_wakeup": _WAKEUP,
    "sched_waking": _WAKEUP,
    "sched_wakeup_new": _WAKEUP,
    "sched_migrate_task": [_kv("comm", "pid", "prio", "orig_cpu", "dest_cpu")],
    "sched_process_fork": [
        _kv("comm", "pid", "child_comm", "child_pid", comm="parent_comm", pid="parent_pid"),
        _kv("parent_comm", "parent_pid", "child_comm", "child_pid"),
    ],
    "sched_process_exit": [
        _kv("comm", "pid", "prio", "group_dead", optional=("group_dead",), group_dead="_group_dead")
    ],
    "cpu_frequency": [_kv("state", "cpu_id")],
    "cpu_idle": [_kv("state", "cpu_id", state="_idle")],
    "kvm_entry": [
        # arm64 "PC: 0x%016lx", also after trace-cmd's kvm-plugin garbage
        # ("CAN'T FIND FIELD "vcpu_id"<CANT FIND FIELD rip>PC: 0x...") [plugin_kvm.c].
        Pattern(rf"PC: 0x(?P<vcpu_pc>{HEX})$", hex=("vcpu_pc",)),
        # x86 "vcpu %u, rip 0x%lx" (the comma went away in later kernels).
        Pattern(rf"^vcpu (?P<vcpu_id>\d+),? rip 0x(?P<vcpu_pc>{HEX})", hex=("vcpu_pc",)),
        _kv("vcpu_pc"),
        _kv("vcpu_id", "rip", rip="vcpu_pc"),
    ],
    "kvm_exit": [
        Pattern(
            rf"(?:^|[\s>])(?P<ret_name>[A-Z][A-Z_]*): HSR_EC: 0x(?P<esr_ec>{HEX}) "
            rf"\((?P<ec_name>[^)]*)\), PC: 0x(?P<vcpu_pc>{HEX})",
            hex=("esr_ec", "vcpu_pc"),
            constants=(("isa", "arm64"),),
        ),
        Pattern(
            r"^(?:vcpu (?P<vcpu_id>\d+) )?reason (?P<exit_reason>[A-Z_0-9]+)(?: \(\d+\))?"
            rf" rip 0x(?P<vcpu_pc>{HEX})",
            hex=("vcpu_pc",),
            constants=(("isa", "x86"),),
        ),
        KeyValue(
            (("ret", "ret"), ("esr_ec", "esr_ec"), ("vcpu_pc", "vcpu_pc")),
            constants=(("isa", "arm64"),),
        ),
        # older arm64 kernels name the same fields idx / exit_reason (formats.md §2.6)
        KeyValue(
            (("idx", "ret"), ("exit_reason", "esr_ec"), ("vcpu_pc", "vcpu_pc")),
            constants=(("isa", "arm64"),),
        ),
        KeyValue(
            (("exit_reason", "exit_reason"), ("guest_rip", "vcpu_pc")), constants=(("isa", "x86"),)
        ),
    ],
    "kvm_userspace_exit": [
        Pattern(r"^reason (?P<reason_name>\S+) \((?P<_value>-?\d+)\)"),
        _kv("reason", "errno"),
    ],
    "kvm_vcpu_wakeup": [
        Pattern(r"^(?P<_waited>wait|poll) time (?P<ns>\d+) ns, polling (?P<_valid>valid|invalid)"),
        _kv("ns", "waited", "valid", waited="_waited", valid="_valid"),
    ],
    "kvm_sys_access": [
        Pattern(
            rf"^PC: (?:0x)?(?P<vcpu_pc>{HEX}) (?P<name>\S+) \((?P<Op0>\d+),\s*(?P<Op1>\d+),"
            r"\s*(?P<CRn>\d+),\s*(?P<CRm>\d+),\s*(?P<Op2>\d+)\) (?P<_rw>read|write)",
            hex=("vcpu_pc",),
        )
    ],
    "kvm_handle_sys_reg": [Pattern(rf"^HSR 0x(?P<hsr>{HEX})", hex=("hsr",)), _kv("hsr")],
}

#: the schema types a grammar column is read into as an integer (any other is text)
_INTEGERS = {pa.uint8(), pa.int16(), pa.int32(), pa.int64(), pa.uint32(), pa.uint64()}
IntType = tuple[pa.DataType, Limits | None]


def _int_type(event: str, column: str) -> IntType | None:
    """The integer type (and narrower limits) a grammar column is read into; None: text."""
    if column in INTERMEDIATE:
        return INTERMEDIATE[column]
    schema = TYPED_TABLES[event]
    if column not in schema.names:
        return None
    dtype = schema.field(column).type
    return (dtype, None) if dtype in _INTEGERS else None


@dataclass
class Payloads:
    """Result of :func:`parse_payloads`: typed frames, and the rows left for ``events``."""

    typed: dict[str, pa.Table]  # the columns of the event's typed table, nothing else
    rest: pa.Table
    unparsed: dict[str, list[int]]
    # skip reason -> seqs of the rows it counts: a field outside its column's range (the row
    # is in rest), a value the kernel never prints (the row is typed, that field null)
    counted: dict[str, list[int]] = field(default_factory=dict)


def parse_payloads(data: Text, events: pa.Table, *, compiled: bool = False) -> Payloads:
    """Split tokenized event lines into typed tables by event name.

    ``events`` has the tokenizer's columns (``seq, event, ts, cpu, common_pid, args_s,
    args_e, ...``) with payload offsets into ``data``. Returns typed tables (schema column
    names; integer types of the schema, text not yet dictionary-encoded), the rows of events
    without a grammar, per event the seqs of rows whose payload no grammar matched (also in
    ``rest``, so nothing is lost), and the rows to count under other skip reasons
    (:attr:`Payloads.counted`). ``compiled`` cuts ``key=value`` payloads with the numba kernel
    instead of numpy (:mod:`importers.ftrace.scan`).
    """
    typed: dict[str, pa.Table] = {}
    unparsed: dict[str, list[int]] = {}
    counted: dict[str, list[int]] = {}
    buf = np.frombuffer(data, dtype=np.uint8)
    names = dictionary_encode(events["event"]).combine_chunks()
    dictionary = names.dictionary.to_pylist()
    # the dictionary code of each row's event name, len(dictionary) where it has none
    codes = fill_null(names.indices, len(dictionary)).to_numpy()
    modelled = np.isin(codes, [i for i, name in enumerate(dictionary) if name in GRAMMARS])
    leftovers = [filter_rows(events, pa.array(~modelled))]
    # Rows travel as indices: only the context columns of the typed tables are gathered for
    # the rows a grammar matched, not the whole tokenized line.
    context = events.select(
        [c for c in ("seq", "ts", "cpu", "common_pid") if c in events.schema.names]
    )
    args_s, args_e = events["args_s"].to_numpy(), events["args_e"].to_numpy()
    seqs = events["seq"].to_numpy()
    for event, code in sorted((name, i) for i, name in enumerate(dictionary) if name in GRAMMARS):
        rows = np.flatnonzero(codes == code)
        parts: list[pa.Table] = []
        rejected: list[np.ndarray] = []
        for grammar in GRAMMARS[event]:
            if rows.size == 0:
                break
            starts, ends = args_s[rows], args_e[rows]
            if isinstance(grammar, KeyValue):
                cut = (data, buf, event, starts, ends, grammar, compiled)
                hit, values, outside = _key_values(*cut)
            else:
                hit, values, outside = _pattern(data, event, starts, ends, grammar, compiled)
            # a row the grammar matched with a number its column cannot hold: not a row of
            # the typed table, but counted under the first such field and kept in events
            bad = np.zeros(rows.size, bool)
            for reason, mask in outside.items():
                new = mask & hit & ~bad
                if new.any():
                    counted.setdefault(reason, []).extend(seqs[rows[new]].tolist())
                    bad |= new
            keep = hit & ~bad
            if keep.any():
                found = take(context, rows[keep])
                for name, column in zip(
                    values.column_names, filter_rows(values, keep).columns, strict=True
                ):
                    found = found.append_column(name, column)
                for name, value in grammar.constants:
                    # typed: inferring the type of a Python value imports dateutil
                    constant = pa.repeat(pa.scalar(value, pa.string()), found.num_rows)
                    found = found.append_column(name, constant)
                parts.append(found)
            rejected.append(rows[bad])
            rows = rows[~hit]
        if parts:
            merged = pa.concat_tables(parts, promote_options="default")
            if len(parts) > 1:
                merged = take(merged, sort_indices(merged["seq"]))
            finished, noted = finish(event, merged.combine_chunks())
            for reason, noted_seqs in noted.items():
                counted.setdefault(reason, []).extend(noted_seqs)
            schema = TYPED_TABLES[event].names
            typed[event] = finished.select([c for c in schema if c in finished.column_names])
        if rows.size:
            unparsed[event] = seqs[rows].tolist()
            leftovers.append(take(events, rows))
        out = np.concatenate(rejected) if rejected else rows[:0]
        if out.size:
            leftovers.append(take(events, np.sort(out)))
    return Payloads(typed, pa.concat_tables(leftovers).combine_chunks(), unparsed, counted)


def _kind(key: str, column: str, grammar: KeyValue) -> int:
    if key in grammar.tokens:
        return TOKEN
    return COMM if column.endswith("comm") else VALUE


def _key_values(
    data: Text,
    buf: np.ndarray,
    event: str,
    starts: I64,
    ends: I64,
    grammar: KeyValue,
    compiled: bool,
) -> tuple[np.ndarray, pa.Table, dict[str, np.ndarray]]:
    keys = [k.encode() + b"=" for k, _ in grammar.fields]
    strings = [_int_type(event, column) is None for _, column in grammar.fields]
    view_of = np.cumsum(strings, dtype=np.int8) - 1
    ok, vs, ints, how, views = find_keys(
        buf,
        starts,
        ends,
        np.frombuffer(b"".join(keys), dtype=np.uint8),
        np.cumsum([0, *(len(k) for k in keys)]).astype(np.int64),
        np.array([k not in grammar.optional for k, _ in grammar.fields]),
        np.array([_kind(k, c, grammar) for k, c in grammar.fields], dtype=np.int8),
        np.where(strings, view_of, -1).astype(np.int8),
        compiled,
    )
    columns: dict[str, pa.Array] = {}
    outside: dict[str, np.ndarray] = {}
    for k, (key, column) in enumerate(grammar.fields):
        int_type = _int_type(event, column)
        if int_type is None:
            columns[column] = view_column(data, views[view_of[k]], vs[k] >= 0)
            continue
        present = vs[k] >= 0
        ok &= (how[k] != ABSENT) | ~present  # a field that is there must be a number
        dtype, limits = int_type
        columns[column], bad = fit_scanned(ints[k], how[k], dtype, limits)
        if bad.any():  # named by the key the payload printed
            outside[out_of_range(f"{event} {key}", dtype, KEPT, limits)] = bad
    return ok, pa.table(columns), outside


def _pattern(
    data: Text, event: str, starts: I64, ends: I64, grammar: Pattern, compiled: bool
) -> tuple[np.ndarray, pa.Table, dict[str, np.ndarray]]:
    found = groups(string_column(data, starts, ends, compiled), grammar.regex)
    hit = np.zeros(starts.size, bool)
    columns: dict[str, pa.Array] = {}
    outside: dict[str, np.ndarray] = {}
    for column, text in found.items():
        hit |= is_valid(text).to_numpy(zero_copy_only=False)
        int_type = _int_type(event, column)
        if int_type is None and column.endswith("comm"):  # <...> / <pid>: name unknown
            columns[column] = known_comm(text)
        elif int_type is None:
            columns[column] = text
        else:
            dtype, limits = int_type
            base = 16 if column in grammar.hex else 10
            columns[column], bad = read_text(text, dtype, base, limits)
            if bad.any():
                outside[out_of_range(f"{event} {column.lstrip('_')}", dtype, KEPT, limits)] = bad
    return hit, pa.table(columns), outside
