"""Fields of text payloads that need more than a cast: task states, idle exits, kvm words.

Each ``_finish_*`` turns the intermediate ``_``-prefixed columns captured by the grammars of
:mod:`importers.ftrace.payloads` into the kernel fields of ``importers.schema``, and names the
rows it had to leave a field unknown in (counted by the importer, never silently null).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from importers.ranges import Limits, out_of_range
from importers.tracefs.sysregs import with_pmu_sysreg

#: Intermediate integer columns of the grammars: the type they are read into and the values
#: they may hold. cpu_idle's state is a u32 that the kernel prints unsigned (4294967295 for
#: PWR_EVENT_EXIT) and some printers signed (-1); kvm_userspace_exit prints "(%d)".
WORD32: Limits = (-(1 << 31), (1 << 32) - 1)
INTERMEDIATE: dict[str, tuple[pl.DataType, Limits | None]] = {
    "_idle": (pl.Int64(), WORD32),
    "_value": (pl.Int32(), None),
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
HUGE_STATE = out_of_range("sched_switch prev_state", pl.Int64(), "row kept, prev_state null")
Finished = tuple[pl.DataFrame, dict[str, list[int]]]


def _finish_sched_switch(df: pl.DataFrame) -> Finished:
    # Decided once per distinct printed state (a handful per capture), not per row. -R prints
    # the raw integer, whose letters depend on the kernel's own table: keep the bits only.
    bits: dict[str, int | None] = {}
    printed: dict[str, str | None] = {}
    for text in df["_state"].drop_nulls().unique().to_list():
        raw = _RAW_STATE.fullmatch(text) is not None
        bits[text] = _raw_state(text) if raw else state_bits(text)
        printed[text] = None if raw else text
    noted: dict[str, list[int]] = {}
    for text, value in bits.items():
        if value is None:
            reason = HUGE_STATE if printed[text] is None else UNKNOWN_STATE
            noted.setdefault(reason, []).extend(df.filter(pl.col("_state") == text)["seq"])
    state = pl.col("_state")
    if all(v is None for v in printed.values()):  # all raw (-R): nothing printed as letters
        as_printed = pl.lit(None, pl.Utf8)
    elif all(printed[k] == k for k in printed):  # all letters: kept as printed
        as_printed = state
    else:
        as_printed = state.replace_strict(printed, default=None, return_dtype=pl.Utf8)
    finished = df.with_columns(
        state.replace_strict(bits, default=None, return_dtype=pl.Int64).alias("prev_state"),
        as_printed.alias("prev_state_str"),
    )
    return finished, {reason: sorted(seqs) for reason, seqs in noted.items()}


def _finish_cpu_idle(df: pl.DataFrame) -> pl.DataFrame:
    # PWR_EVENT_EXIT is -1 stored in a u32; some printers show it signed [power.h]. The signed
    # idle_state is the u32 read as s32, as the binary importer reads it (-1 = exit).
    state = pl.col("_idle") % (1 << 32)
    return df.with_columns(
        state.cast(pl.UInt32).alias("state"),
        pl.when(state >= 1 << 31)
        .then(state - (1 << 32))
        .otherwise(state)
        .cast(pl.Int32)
        .alias("idle_state"),
    )


def _finish_userspace_exit(df: pl.DataFrame) -> pl.DataFrame:
    if "_value" not in df.columns:
        return df
    # "reason %s (%d)" (include/trace/events/kvm.h): for a negative errno the name is restart
    # (-EINTR) or error and the number -errno; every other name prints the KVM_EXIT code.
    failed = pl.col("reason_name").is_in(["restart", "error"])
    value = pl.col("_value").cast(pl.Int64)  # an int32 (importers.ranges checked it)
    return df.with_columns(
        pl.when(failed).then(None).otherwise(value % (1 << 32)).cast(pl.UInt32).alias("reason"),
        pl.when(failed).then(-value).otherwise(0).cast(pl.Int32).alias("errno"),
    )


def _finish_vcpu_wakeup(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        pl.col("_waited").is_in(["wait", "1"]).alias("waited"),
        pl.col("_valid").is_in(["valid", "1"]).alias("valid"),
    )


def _finish_sys_access(df: pl.DataFrame) -> pl.DataFrame:
    df = df.with_columns(
        (pl.col("_rw") == "write").alias("is_write"),
        pl.when(pl.col("name") == "UNKN").then(None).otherwise(pl.col("name")).alias("name"),
    )
    return with_pmu_sysreg(df)


def _finish_process_exit(df: pl.DataFrame) -> pl.DataFrame:
    if "_group_dead" not in df.columns:
        return df
    return df.with_columns(pl.col("_group_dead").is_in(["true", "1"]).alias("group_dead"))


_FINISH_COUNTING: dict[str, Callable[[pl.DataFrame], Finished]] = {
    "sched_switch": _finish_sched_switch,
}
_FINISH: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "sched_process_exit": _finish_process_exit,
    "cpu_idle": _finish_cpu_idle,
    "kvm_userspace_exit": _finish_userspace_exit,
    "kvm_vcpu_wakeup": _finish_vcpu_wakeup,
    "kvm_sys_access": _finish_sys_access,
}


def finish(event: str, frame: pl.DataFrame) -> Finished:
    """Derived fields of ``event`` from the intermediate columns of its grammars, and per skip
    reason the seqs of rows left with a field unknown."""
    if event in _FINISH_COUNTING:
        return _FINISH_COUNTING[event](frame)
    step = _FINISH.get(event)
    return (step(frame) if step else frame), {}
