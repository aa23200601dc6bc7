"""Fields of text payloads that need more than a cast: task states, idle exits, kvm words.

Each ``_finish_*`` turns the intermediate ``_``-prefixed columns captured by the grammars of
:mod:`importers.ftrace.payloads` into the kernel fields of ``importers.schema``, and names the
rows it had to leave a field unknown in (counted by the importer, never silently null).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from importers.arrow_compute import (
    add,
    cast,
    dictionary_encode,
    equal,
    fill_null,
    if_else,
    is_in,
    is_null,
    is_valid,
    less,
    negate,
    take,
)
from importers.ranges import Limits, out_of_range
from importers.tracefs.sysregs import pmu_sysreg_name

#: Intermediate integer columns of the grammars: the type they are read into and the values
#: they may hold. cpu_idle's state is a u32 that the kernel prints unsigned (4294967295 for
#: PWR_EVENT_EXIT) and some printers signed (-1); kvm_userspace_exit prints "(%d)".
WORD32: Limits = (-(1 << 31), (1 << 32) - 1)
INTERMEDIATE: dict[str, tuple[pa.DataType, Limits | None]] = {
    "_idle": (pa.int64(), WORD32),
    "_value": (pa.int32(), None),
}

# Task state letters of sched_switch's __print_flags table on current kernels (>= 4.14, the
# TASK_REPORT set) and, for letters those kernels no longer print, the 4.2-4.13 table
# [include/trace/events/sched.h]. Text cannot tell which kernel printed it: the string is kept
# verbatim in prev_state_str and these bits are a best effort.
STATE_BITS = {"S": 0x1, "D": 0x2, "T": 0x4, "t": 0x8, "X": 0x10, "Z": 0x20, "P": 0x40, "I": 0x80}
OLD_STATE_BITS = {"x": 64, "K": 128, "W": 256, "N": 1024}
TASK_REPORT_MAX = 0x100


def state_bits(text: str) -> int | None:
    """Raw ``prev_state`` bits for a printed state such as ``R+``, ``D|W`` or ``S``."""
    letters = text.rstrip("+")
    bits = TASK_REPORT_MAX if text.endswith("+") else 0
    if letters in ("R", ""):
        return bits
    for letter in letters.split("|"):
        value = STATE_BITS.get(letter, OLD_STATE_BITS.get(letter))
        if value is None:
            return None
        bits |= value
    return bits


_RAW_STATE = re.compile(r"(?:0x[0-9a-fA-F]+|\d+)")
_INT64_MAX = (1 << 63) - 1


def _raw_state(text: str) -> int | None:
    """``prev_state`` printed as a raw integer by ``-R`` (decimal, or 0x hex for a long)."""
    value = int(text, 16) if text.startswith("0x") else int(text) if text.isascii() else None
    return value if value is not None and value <= _INT64_MAX else None


#: skip reasons of prev_state values that give no bits (the row is kept, prev_state null)
UNKNOWN_STATE = "sched_switch prev_state letter the kernel never prints (row kept, prev_state null)"
HUGE_STATE = out_of_range("sched_switch prev_state", pa.int64(), "row kept, prev_state null")
Finished = tuple[pa.Table, dict[str, list[int]]]


def _finish_sched_switch(df: pa.Table) -> Finished:
    # Decided once per distinct printed state (a handful per capture), not per row. -R prints
    # the raw integer, whose letters depend on the kernel's own table: keep the bits only.
    states = dictionary_encode(df["_state"]).combine_chunks()
    bits: list[int | None] = []
    printed: list[str | None] = []
    for text in states.dictionary.to_pylist():
        raw = _RAW_STATE.fullmatch(text) is not None
        bits.append(_raw_state(text) if raw else state_bits(text))
        printed.append(None if raw else text)
    noted: dict[str, list[int]] = {}
    codes = states.indices
    seqs = df["seq"].to_numpy()
    for code, value in enumerate(bits):
        if value is None:
            reason = HUGE_STATE if printed[code] is None else UNKNOWN_STATE
            hit = equal(codes, code).to_numpy(zero_copy_only=False)
            noted.setdefault(reason, []).extend(seqs[hit].tolist())
    finished = _with(
        df,
        prev_state=take(pa.array(bits, pa.int64()), codes),
        prev_state_str=take(pa.array(printed, pa.string()), codes),
    )
    return finished, {reason: sorted(seqs) for reason, seqs in noted.items()}


def _with(df: pa.Table, **columns: pa.Array) -> pa.Table:
    """``df`` with ``columns`` set: replaced where ``df`` has them, else added at the end."""
    for name, column in columns.items():
        if name in df.column_names:
            df = df.set_column(df.column_names.index(name), name, column)
        else:
            df = df.append_column(name, column)
    return df


def _is_in(column: pa.ChunkedArray, values: list[str]) -> pa.Array:
    """Whether each value is one of ``values`` (null where it is null)."""
    return if_else(is_null(column), None, is_in(column, pa.array(values, pa.string())))


def _finish_cpu_idle(df: pa.Table) -> pa.Table:
    # PWR_EVENT_EXIT is -1 stored in a u32; some printers show it signed [power.h]. The signed
    # idle_state is the u32 read as s32, as the binary importer reads it (-1 = exit).
    idle = df["_idle"].combine_chunks()
    state = fill_null(idle, 0).to_numpy() % (1 << 32)
    missing = ~is_valid(idle).to_numpy(zero_copy_only=False)
    return _with(
        df,
        state=pa.array(state.astype(np.uint32), mask=missing),
        idle_state=pa.array(state.astype(np.uint32).view(np.int32), mask=missing),
    )


def _finish_userspace_exit(df: pa.Table) -> pa.Table:
    if "_value" not in df.column_names:
        return df
    # "reason %s (%d)" (include/trace/events/kvm.h): for a negative errno the name is restart
    # (-EINTR) or error and the number -errno; every other name prints the KVM_EXIT code.
    failed = fill_null(_is_in(df["reason_name"], ["restart", "error"]), False)
    value = cast(df["_value"].combine_chunks(), pa.int64())  # an int32 (importers.ranges checked)
    code = cast(if_else(less(value, 0), add(value, 1 << 32), value), pa.uint32())
    reason = if_else(failed, None, code)
    errno = cast(if_else(failed, negate(value), pa.scalar(0, pa.int64())), pa.int32())
    if "reason" in df.column_names:  # rows of the "reason=%d errno=%d" form keep their own
        printed = is_valid(value)
        reason = if_else(printed, reason, df["reason"].combine_chunks())
        errno = if_else(printed, errno, df["errno"].combine_chunks())
    return _with(df, reason=reason, errno=errno)


def _finish_vcpu_wakeup(df: pa.Table) -> pa.Table:
    return _with(
        df,
        waited=_is_in(df["_waited"], ["wait", "1"]),
        valid=_is_in(df["_valid"], ["valid", "1"]),
    )


def _finish_sys_access(df: pa.Table) -> pa.Table:
    name = df["name"]
    return _with(
        df,
        is_write=equal(df["_rw"], "write"),
        name=if_else(equal(name, "UNKN"), None, name),
        sysreg=_pmu_sysregs(df),
    )


def _pmu_sysregs(df: pa.Table) -> pa.Array:
    """The PMU register each ``Op0, Op1, CRn, CRm, Op2`` (uint8) names, null for any other,
    named once per distinct encoding (:func:`~importers.tracefs.sysregs.pmu_sysreg_name`)."""
    keys = ("Op0", "Op1", "CRn", "CRm", "Op2")
    known = np.ones(df.num_rows, bool)
    packed = np.zeros(df.num_rows, np.int64)
    for key in keys:
        column = df[key].combine_chunks()
        known &= is_valid(column).to_numpy(zero_copy_only=False)
        packed = packed << 8 | fill_null(column, 0).to_numpy().astype(np.int64)
    distinct, codes = np.unique(packed, return_inverse=True)
    names = [pmu_sysreg_name(*(int(e) >> s & 0xFF for s in (32, 24, 16, 8, 0))) for e in distinct]
    return if_else(pa.array(known), take(pa.array(names, pa.string()), codes), None)


def _finish_process_exit(df: pa.Table) -> pa.Table:
    if "_group_dead" not in df.column_names:
        return df
    return _with(df, group_dead=_is_in(df["_group_dead"], ["true", "1"]))


_FINISH_COUNTING: dict[str, Callable[[pa.Table], Finished]] = {
    "sched_switch": _finish_sched_switch,
}
_FINISH: dict[str, Callable[[pa.Table], pa.Table]] = {
    "sched_process_exit": _finish_process_exit,
    "cpu_idle": _finish_cpu_idle,
    "kvm_userspace_exit": _finish_userspace_exit,
    "kvm_vcpu_wakeup": _finish_vcpu_wakeup,
    "kvm_sys_access": _finish_sys_access,
}


def finish(event: str, frame: pa.Table) -> Finished:
    """Derived fields of ``event`` from the intermediate columns of its grammars, and per skip
    reason the seqs of rows left with a field unknown."""
    if event in _FINISH_COUNTING:
        return _FINISH_COUNTING[event](frame)
    step = _FINISH.get(event)
    return (step(frame) if step else frame), {}
