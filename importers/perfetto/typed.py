"""Plain ``FtraceEvent``s of the modelled kinds into their typed tables.

Each modelled event is a member of ``FtraceEvent``'s oneof, whose fields carry the kernel's
field names [protos/perfetto/trace/ftrace/ftrace_event.proto, sched.proto, power.proto,
kvm.proto]; the numbers are checked against the ``perfetto`` package's descriptors by the
tests. A field the event lacks is null.

``prev_state_str`` is what the kernel's own ``sched_switch`` print format prints for
``prev_state`` (formats.md §2.1). A Perfetto trace carries no format file, so the letters come
from the kernel release in ``system_info``: the 4.14+ table (``__print_flags`` over
``TASK_REPORT``: S D T t X Z P I, ``+`` on ``TASK_REPORT_MAX`` 0x100) is the only one applied;
older kernels' tables varied by release (formats.md §2.1), so their letters stay null.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from importers.perfetto.wire import I64, U8, pick_fields, text_column
from importers.schema import DICT, TYPED_TABLES, conform, constant_column, dictionary_column
from importers.tracefs.sysregs import pmu_sysreg_name

#: table -> (its FtraceEvent oneof number, {column: field number of the event's message})
TYPED: dict[str, tuple[int, dict[str, int]]] = {
    "sched_switch": (4, {"prev_comm": 1, "prev_pid": 2, "prev_prio": 3, "prev_state": 4,
                         "next_comm": 5, "next_pid": 6, "next_prio": 7}),
    "sched_wakeup": (17, {"comm": 1, "pid": 2, "prio": 3, "success": 4, "target_cpu": 5}),
    "sched_waking": (20, {"comm": 1, "pid": 2, "prio": 3, "success": 4, "target_cpu": 5}),
    "sched_wakeup_new": (114, {"comm": 1, "pid": 2, "prio": 3, "success": 4, "target_cpu": 5}),
    "sched_migrate_task": (491, {"comm": 1, "pid": 2, "prio": 3, "orig_cpu": 4, "dest_cpu": 5}),
    "sched_process_fork": (239, {"parent_comm": 1, "parent_pid": 2, "child_comm": 3,
                                 "child_pid": 4}),
    "sched_process_exit": (238, {"comm": 1, "pid": 2, "prio": 4}),
    "cpu_frequency": (11, {"state": 1, "cpu_id": 2}),
    "cpu_idle": (13, {"state": 1, "cpu_id": 2}),
    "kvm_entry": (376, {"vcpu_pc": 1}),
    "kvm_exit": (377, {"esr_ec": 1, "ret": 2, "vcpu_pc": 3}),
    "kvm_sys_access": (390, {"CRm": 1, "CRn": 2, "Op0": 3, "Op1": 4, "Op2": 5, "is_write": 6,
                             "name": 7, "vcpu_pc": 8}),
    "kvm_handle_sys_reg": (381, {"hsr": 1}),
    "kvm_userspace_exit": (399, {"reason": 1}),
    "kvm_vcpu_wakeup": (400, {"ns": 1, "valid": 2, "waited": 3}),
}  # fmt: skip
#: oneof number -> table
TABLE_OF = {number: table for table, (number, _) in TYPED.items()}

# include/linux/sched.h (4.14+): TASK_REPORT states and TASK_REPORT_MAX, as sched_switch's
# TP_printk prints them (include/trace/events/sched.h)
_REPORT_LETTERS = ((0x01, "S"), (0x02, "D"), (0x04, "T"), (0x08, "t"), (0x10, "X"),
                   (0x20, "Z"), (0x40, "P"), (0x80, "I"))  # fmt: skip
_REPORT_MAX = 0x100


def typed_table(
    table: str,
    data: U8,
    body: I64,
    body_len: I64,
    prefix: dict[str, pa.Array],
    kernel: tuple[int, int] | None,
) -> pa.Table:
    """The typed table ``table`` of events whose messages are at ``data[body:body+len]``.

    ``prefix`` holds ``ts, seq, cpu, common_pid``; ``kernel`` the (major, minor) release.
    """
    schema = TYPED_TABLES[table]
    columns_of = TYPED[table][1]
    value, length, _ = pick_fields(data, body, body + body_len, list(columns_of.values()))
    columns: dict[str, pa.Array] = dict(prefix)
    raw: dict[str, NDArray[np.uint64]] = {}
    for k, column in enumerate(columns_of):
        present = length[:, k] >= 0
        kind = schema.field(column).type
        if kind == DICT:
            columns[column] = text_column(data, value[:, k].view(np.int64), length[:, k])
            continue
        raw[column] = value[:, k]
        columns[column] = _integers(value[:, k], present, kind)
    columns.update(_derived(table, raw, len(body), kernel))
    return conform(table, pa.table(columns))


def _integers(value: NDArray[np.uint64], present: NDArray[np.bool_], kind: pa.DataType) -> pa.Array:
    """Varint values as column type ``kind``: two's complement for signed columns (protobuf
    sign-extends negative int32/int64 to ten bytes), non-zero for booleans."""
    mask = ~present if not present.all() else None
    if pa.types.is_boolean(kind):
        return pa.array(value != 0, mask=mask)
    if pa.types.is_unsigned_integer(kind):
        return pa.array(value, mask=mask).cast(kind, safe=False)
    return pa.array(value.view(np.int64), mask=mask).cast(kind, safe=False)


def _derived(
    table: str, raw: dict[str, NDArray[np.uint64]], n: int, kernel: tuple[int, int] | None
) -> dict[str, pa.Array]:
    """Columns that follow from the fields: state letters, idle state, register names."""
    if table == "sched_switch":
        return {"prev_state_str": prev_state_text(raw["prev_state"].view(np.int64), kernel)}
    if table == "cpu_idle":
        return {"idle_state": pa.array(raw["state"].astype(np.uint32).view(np.int32))}
    if table == "kvm_exit":
        return {"isa": constant_column("arm64", n)}  # its fields are arm64's (kvm.proto)
    if table == "kvm_sys_access":
        encodings = np.stack([raw[k] for k in ("Op0", "Op1", "CRn", "CRm", "Op2")], axis=1)
        combos, inverse = np.unique(encodings, axis=0, return_inverse=True)
        names = [pmu_sysreg_name(*(int(x) for x in row)) for row in combos]
        return {"sysreg": dictionary_column(names, inverse.reshape(-1))}
    return {}


def prev_state_text(state: I64, kernel: tuple[int, int] | None) -> pa.DictionaryArray:
    """``prev_state`` as the kernel prints it (see module docstring); null when unknown."""
    encoded = pc.dictionary_encode(pa.array(state))  # a hash: few distinct states
    texts: list[str | None] = []
    for value in encoded.dictionary.to_pylist():
        if kernel is None or kernel < (4, 14) or value & ~(_REPORT_MAX * 2 - 1) or value < 0:
            texts.append(None)
            continue
        letters = "|".join(c for bit, c in _REPORT_LETTERS if value & bit)
        texts.append((letters or "R") + ("+" if value & _REPORT_MAX else ""))
    return dictionary_column(texts, encoded.indices.to_numpy())
