"""From decoded fields to the canonical typed tables of :mod:`importers.schema`.

Each modelled event maps its kernel fields onto its table by name, with the aliases old or
other-architecture kernels need (formats.md §2.6, §6.2):

* arm64 ``kvm_exit`` of older kernels: ``idx`` -> ``ret``, ``exit_reason`` -> ``esr_ec``;
* x86 ``kvm_entry``: ``rip`` -> ``vcpu_pc``; x86 ``kvm_exit``: ``guest_rip`` -> ``vcpu_pc`` and
  the exit reason *name* (from the format's ``__print_symbolic`` table) -> ``exit_reason``.

Text columns (``prev_state_str``, ``ret_name``, ``ec_name``, ``exit_reason``, ``reason_name``)
are what the capture's own print fmt prints for the underlying values: the text-producing print
arguments that read only those fields are evaluated once per distinct value combination.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import cast, dictionary_encode
from importers.schema import DICT, TYPED_TABLES, conform, constant_column, dictionary_column
from importers.tracefs.event_format import EventFormat
from importers.tracefs.fields import FieldGather
from importers.tracefs.print_fmt import CannotEvaluate, PrintFmtError, evaluate
from importers.tracefs.sysregs import pmu_sysreg_name

#: typed tables filled from trace.dat records (pmu_* come from perf)
MODELLED = frozenset(name for name in TYPED_TABLES if not name.startswith("pmu_"))

#: column -> kernel field names to try, first match wins (per table)
_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "kvm_entry": {"vcpu_pc": ("vcpu_pc", "rip")},
    "kvm_exit": {"vcpu_pc": ("vcpu_pc", "guest_rip")},
}


def typed_table(
    name: str, fmt: EventFormat, g: FieldGather, prefix: dict[str, pa.Array]
) -> tuple[pa.Table, list[str]]:
    """The typed table ``name`` for the records in ``g`` (all of event ``fmt``).

    Returns the table (canonical schema) and notes about columns that could not be decoded.
    """
    schema = TYPED_TABLES[name]
    aliases = _ALIASES.get(name, {})
    values: dict[str, NDArray[np.generic]] = {}
    columns: dict[str, pa.Array] = dict(prefix)
    notes: list[str] = []
    for column in schema.names[len(prefix) :]:
        field_name = next(
            (c for c in aliases.get(column, (column,)) if fmt.field(c) is not None), None
        )
        f = fmt.field(field_name) if field_name else None
        if f is None:
            continue
        if schema.field(column).type == DICT and not f.is_string:
            # e.g. kvm_sys_access.name, a kernel pointer in binary captures, or x86
            # kvm_exit.exit_reason, a code whose name its derive hook prints
            continue
        if f.is_string:
            columns[column] = g.string(f)
            continue
        v = g.scalar(f)
        if v is None:
            notes.append(f"{name}.{column}: field {f.name} of size {f.size} is not a scalar")
            continue
        values[field_name or column] = v
        columns[column] = cast(pa.array(v), schema.field(column).type, safe=False)
    derived = _DERIVED.get(name)
    if derived is not None:
        columns.update(derived(fmt, g, values, notes))
    return conform(name, pa.table(columns)), notes


def _values_of(
    fmt: EventFormat, g: FieldGather, names: tuple[str, ...]
) -> dict[str, NDArray[np.generic]]:
    out = {}
    for n in names:
        f = fmt.field(n)
        v = g.scalar(f) if f is not None and not f.is_array else None
        if v is not None:
            out[n] = v
    return out


def derive_text(
    fmt: EventFormat,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
    label: str,
) -> pa.DictionaryArray:
    """What the print fmt prints from ``values`` alone, as a dictionary column.

    Uses the text-yielding print arguments whose fields are all in ``values``; evaluates them
    once per distinct combination of those fields (a few dozen at most in practice).
    """
    n = next(iter(values.values())).shape[0] if values else 0
    try:
        args = [
            a
            for a in fmt.print_args
            if a.yields_text() and a.fields() and a.fields() <= values.keys()
        ]
    except PrintFmtError as exc:
        notes.append(f"{fmt.name}.{label}: print fmt does not parse ({exc})")
        return pa.nulls(n, DICT)
    if not args or n == 0:
        return pa.nulls(n, DICT)
    used = sorted(set().union(*(a.fields() for a in args)))
    code = np.zeros(n, np.int64)
    uniques: list[NDArray[np.generic]] = []
    for name in used:
        u, inv = factorize(values[name])
        code = code * len(u) + inv
        uniques.append(u)
    combos, inverse = factorize(code)
    texts: list[str | None] = []
    for c in combos.tolist():
        rec: dict[str, int] = {}
        for name, u in zip(reversed(used), reversed(uniques), strict=True):
            rec[name] = int(u[c % len(u)])
            c //= len(u)
        try:
            texts.append("".join(str(evaluate(a, rec)) for a in args))
        except CannotEvaluate as exc:
            notes.append(f"{fmt.name}.{label}: cannot evaluate print fmt ({exc})")
            texts.append(None)
    return dictionary_column(texts, inverse)


def factorize(values: NDArray[np.generic]) -> tuple[NDArray[np.generic], NDArray[np.int64]]:
    """Distinct values (first-seen order) and each element's index into them.

    Arrow's hash-based ``dictionary_encode`` is linear, unlike ``np.unique``'s sort; columns
    such as ``prev_state`` have millions of rows but a handful of distinct values.
    """
    encoded = dictionary_encode(pa.array(values))
    uniques: NDArray[np.generic] = encoded.dictionary.to_numpy(zero_copy_only=False)
    inverse: NDArray[np.int64] = encoded.indices.to_numpy().astype(np.int64)
    return uniques, inverse


def _sched_switch(
    fmt: EventFormat,
    g: FieldGather,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
) -> dict[str, pa.Array]:
    if "prev_state" not in values:
        return {}
    return {
        "prev_state_str": derive_text(
            fmt, {"prev_state": values["prev_state"]}, notes, "prev_state"
        )
    }


#: arm64 kvm_exit columns, the field name older kernels give them, and their text column
_ARM64_KVM_EXIT = (("ret", "idx", "ret_name"), ("esr_ec", "exit_reason", "ec_name"))


def _kvm_exit(
    fmt: EventFormat,
    g: FieldGather,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
) -> dict[str, pa.Array]:
    """arm64 and x86 ``kvm_exit`` share a table, not their fields; arm64 has ``vcpu_pc``.

    arm64: ``ret`` and ``esr_ec`` (``idx`` and ``exit_reason`` on older kernels) and their
    names. x86: the name of ``exit_reason``, which depends on ``isa`` (VMX or SVM table).
    """
    if fmt.field("vcpu_pc") is None:
        codes = _values_of(fmt, g, ("exit_reason", "isa"))
        return {
            "isa": constant_column("x86", g.n),
            "exit_reason": derive_text(fmt, codes, notes, "exit_reason"),
        }
    out: dict[str, pa.Array] = {"isa": constant_column("arm64", g.n)}
    schema = TYPED_TABLES["kvm_exit"]
    for column, old_name, text_column in _ARM64_KVM_EXIT:
        if column in values:
            found = {column: values[column]}
        else:
            found = _values_of(fmt, g, (old_name,))
            if found:
                out[column] = cast(pa.array(found[old_name]), schema.field(column).type, safe=False)
        if found:
            out[text_column] = derive_text(fmt, found, notes, text_column)
    return out


def _cpu_idle(
    fmt: EventFormat,
    g: FieldGather,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
) -> dict[str, pa.Array]:
    state = values.get("state")
    if state is None:
        return {}
    return {"idle_state": pa.array(state.astype(np.uint32).view(np.int32))}


def _kvm_userspace_exit(
    fmt: EventFormat,
    g: FieldGather,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
) -> dict[str, pa.Array]:
    used: dict[str, NDArray[np.generic]] = {
        k: values[k] for k in ("reason", "errno") if k in values
    }
    return {"reason_name": derive_text(fmt, used, notes, "reason")} if used else {}


def _kvm_sys_access(
    fmt: EventFormat,
    g: FieldGather,
    values: dict[str, NDArray[np.generic]],
    notes: list[str],
) -> dict[str, pa.Array]:
    """``sysreg``: the Arm ARM name of the trapped register, from its encoding."""
    keys = ("Op0", "Op1", "CRn", "CRm", "Op2")
    if not all(k in values for k in keys):
        return {}
    stacked = np.stack([values[k].astype(np.int64) for k in keys], axis=1)
    combos, inverse = np.unique(stacked, axis=0, return_inverse=True)
    names = [pmu_sysreg_name(*(int(x) for x in row)) for row in combos]
    return {"sysreg": dictionary_column(names, inverse.reshape(-1))}


#: per table: extra columns computed from the record fields (``values`` holds those the
#: generic mapping read, keyed by kernel field name; ``g`` reads others)
_Derive = Callable[
    [EventFormat, FieldGather, dict[str, NDArray[np.generic]], list[str]], dict[str, pa.Array]
]
_DERIVED: dict[str, _Derive] = {
    "sched_switch": _sched_switch,
    "kvm_exit": _kvm_exit,
    "cpu_idle": _cpu_idle,
    "kvm_userspace_exit": _kvm_userspace_exit,
    "kvm_sys_access": _kvm_sys_access,
}
