"""Every Arrow schema of a capture, declared once.

Conventions (``DESIGN.md`` "Tables", ``formats.md`` §6.2):

* ``ts`` is int64 nanoseconds in the capture's own clock (raw clock units when the capture's
  clock is not in ns, see ``CaptureMetadata.ts_unit``); never float.
* ``seq`` is int64, the position of the record in the source (the 0-based line number for text
  inputs), unique within a capture, so ``(ts, seq)`` orders records stably.
* Typed tables start with ``ts, seq, cpu, common_pid`` (``common_pid`` is the kernel's name for
  the thread that logged the event: it does not collide with event fields called ``pid``) and
  continue with the event's own fields under their kernel names and types.
* Repeating strings (comm, event names, PMU names, state letters) are ``dictionary<int32, utf8>``.
* Every event without a typed table goes to the long ``events`` table, so nothing is dropped.

Each field carries a ``doc`` entry in its Arrow field metadata. :func:`conform` casts a table to
its schema; :func:`dictionary_column` and :func:`constant_column` build ``DICT`` columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import cast

SCHEMA_VERSION = 1

DICT = pa.dictionary(pa.int32(), pa.string())


def dictionary_column(texts: list[str | None], codes: NDArray[np.integer]) -> pa.DictionaryArray:
    """A :data:`DICT` column whose row ``i`` is ``texts[codes[i]]`` (null where that is None).

    Equal texts share one dictionary entry, so ``texts`` may repeat.
    """
    uniq: dict[str, int] = {}
    remap = np.array([uniq.setdefault(t, len(uniq)) if t is not None else -1 for t in texts])
    idx = remap[codes] if len(remap) else np.zeros(0, np.int64)
    indices = pa.array(idx.astype(np.int32), mask=idx < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(uniq), pa.string()))


def constant_column(text: str, n: int) -> pa.DictionaryArray:
    """A :data:`DICT` column of ``n`` rows that all say ``text``."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([text], pa.string())
    )


#: field metadata key of integer columns with a handful of distinct values per capture (flag
#: sets, states): stored as Parquet dictionaries, see importers.capture
FEW_VALUES = b"few_values"


def _f(
    name: str, type_: pa.DataType, doc: str, nullable: bool = True, few_values: bool = False
) -> pa.Field:
    metadata = {"doc": doc, **({FEW_VALUES.decode(): "1"} if few_values else {})}
    return pa.field(name, type_, nullable=nullable, metadata=metadata)


TS = _f("ts", pa.int64(), "event time, int64 ns in the capture clock", nullable=False)
SEQ = _f("seq", pa.int64(), "position in the source; unique; orders equal ts", nullable=False)
CPU = _f("cpu", pa.int16(), "CPU the event was logged on", nullable=False)
COMMON_PID = _f("common_pid", pa.int32(), "thread id that logged the event", nullable=False)
PREFIX = [TS, SEQ, CPU, COMMON_PID]


def _typed(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*PREFIX, *fields])


def _comm(name: str, doc: str) -> pa.Field:
    return _f(name, DICT, doc + " (null when the source printed a placeholder such as <...>)")


_WAKEUP = _typed(
    _comm("comm", "woken task name"),
    _f("pid", pa.int32(), "woken thread id"),
    _f("prio", pa.int32(), "kernel priority"),
    _f("success", pa.int32(), "old kernels only; always 1"),
    _f("target_cpu", pa.int32(), "CPU the task is woken onto"),
)

TYPED_TABLES: dict[str, pa.Schema] = {
    "sched_switch": _typed(
        _comm("prev_comm", "task switched out"),
        _f("prev_pid", pa.int32(), "thread switched out"),
        _f("prev_prio", pa.int32(), "its priority"),
        _f(
            "prev_state",
            pa.int64(),
            "raw task state bits (capture's own __print_flags table)",
            few_values=True,
        ),
        _f("prev_state_str", DICT, "task state as printed: R, R+, S, D|W, ..."),
        _comm("next_comm", "task switched in"),
        _f("next_pid", pa.int32(), "thread switched in"),
        _f("next_prio", pa.int32(), "its priority"),
    ),
    "sched_wakeup": _WAKEUP,
    "sched_waking": _WAKEUP,
    "sched_wakeup_new": _WAKEUP,
    "sched_migrate_task": _typed(
        _comm("comm", "migrated task"),
        _f("pid", pa.int32(), "migrated thread"),
        _f("prio", pa.int32(), "its priority"),
        _f("orig_cpu", pa.int32(), "CPU it leaves"),
        _f("dest_cpu", pa.int32(), "CPU it goes to"),
    ),
    "sched_process_fork": _typed(
        _comm("parent_comm", "forking task"),
        _f("parent_pid", pa.int32(), "forking thread"),
        _comm("child_comm", "new task"),
        _f("child_pid", pa.int32(), "new thread"),
    ),
    "sched_process_exit": _typed(
        _comm("comm", "exiting task"),
        _f("pid", pa.int32(), "exiting thread"),
        _f("prio", pa.int32(), "its priority"),
        _f("group_dead", pa.bool_(), "last thread of its group (new kernels only)"),
    ),
    "cpu_frequency": _typed(
        _f("state", pa.uint32(), "new frequency in kHz"),
        _f("cpu_id", pa.uint32(), "CPU the frequency applies to (not the logging CPU)"),
    ),
    "cpu_idle": _typed(
        _f("state", pa.uint32(), "raw idle state; 4294967295 = exit from idle"),
        _f("cpu_id", pa.uint32(), "CPU entering or leaving idle"),
        _f("idle_state", pa.int32(), "state as signed: -1 = exit from idle"),
    ),
    "kvm_entry": _typed(
        _f("vcpu_pc", pa.uint64(), "guest PC at entry (arm64 PC, x86 rip)"),
        _f("vcpu_id", pa.int32(), "vCPU id where the event carries one (x86); arm64: null"),
    ),
    "kvm_exit": _typed(
        _f("isa", DICT, "arm64 or x86: which kernel print format the row came from"),
        _f("ret", pa.int32(), "arm64 exception type (older kernels: idx)"),
        _f("ret_name", DICT, "arm64 exception type name: IRQ, TRAP, SERROR, ILLEGAL, HYP_GONE"),
        _f("esr_ec", pa.uint32(), "arm64 ESR exception class (0 unless TRAP)"),
        _f("ec_name", DICT, "exception class name (SYS64, WFx, ...) or hex when unknown"),
        _f("exit_reason", DICT, "x86 exit reason name (HLT, MSR_WRITE, ...)"),
        _f("vcpu_pc", pa.uint64(), "guest PC at exit (arm64 PC, x86 rip)"),
        _f("vcpu_id", pa.int32(), "vCPU id where the event carries one (x86); arm64: null"),
    ),
    "kvm_userspace_exit": _typed(
        _f("reason", pa.uint32(), "KVM_EXIT_* code"),
        _f("errno", pa.int32(), "negative errno for restart/error exits"),
        _f("reason_name", DICT, "reason as printed"),
    ),
    "kvm_vcpu_wakeup": _typed(
        _f("ns", pa.uint64(), "time spent halted or polling"),
        _f("waited", pa.bool_(), "true = wait, false = poll"),
        _f("valid", pa.bool_(), "whether the wakeup was valid"),
    ),
    "kvm_sys_access": _typed(
        _f("vcpu_pc", pa.uint64(), "guest PC of the trapped access"),
        _f("is_write", pa.bool_(), "write (MSR) or read (MRS)"),
        _f("name", DICT, "register name as printed; null in binary captures"),
        _f("Op0", pa.uint8(), "sysreg encoding Op0"),
        _f("Op1", pa.uint8(), "sysreg encoding Op1"),
        _f("CRn", pa.uint8(), "sysreg encoding CRn"),
        _f("CRm", pa.uint8(), "sysreg encoding CRm"),
        _f("Op2", pa.uint8(), "sysreg encoding Op2"),
        _f("sysreg", DICT, "Arm ARM name decoded from the encoding (PMU registers), else null"),
    ),
    "kvm_handle_sys_reg": _typed(
        _f("hsr", pa.uint64(), "ESR_EL2 of the trapped sysreg access"),
    ),
    "pmu_samples": pa.schema(
        [
            TS,
            SEQ,
            _f("cpu", pa.int16(), "CPU of the sample (null when not recorded)"),
            _f("pid", pa.int32(), "thread id (perf tid)"),
            _f("tgid", pa.int32(), "process id (perf pid)"),
            _f("pmu", DICT, "host PMU the event belongs to (armv8_cortex_a55, cpu_core, ...)"),
            _f("event", DICT, "event name (cycles, instructions, ...)"),
            _f("attr_id", pa.uint64(), "perf event id of the sample"),
            _f("ip", pa.uint64(), "sampled instruction pointer"),
            _f("period", pa.uint64(), "sample period (events since the previous sample)"),
            _f("cpumode", pa.uint8(), "PERF_RECORD_MISC cpumode bits"),
        ]
    ),
    "pmu_counts": pa.schema(
        [
            _f("ts", pa.int64(), "end of the counting interval; null for whole-run totals"),
            SEQ,
            _f("cpu", pa.int16(), "CPU counted; null when aggregated over CPUs"),
            _f("pmu", DICT, "host PMU of the counter"),
            _f("event", DICT, "event name as given to perf"),
            _f("value", pa.uint64(), "counter value; null unless status is counted"),
            _f("status", DICT, "counted, not counted or not supported"),
            _f("unit", DICT, "unit printed by perf stat, if any"),
            _f("time_enabled_ns", pa.uint64(), "time the event was enabled"),
            _f("time_running_ns", pa.uint64(), "time the event was on a counter"),
            _f("source", DICT, "perf stat csv, perf stat json, perf.data read, ..."),
            _f("aggregate", DICT, "perf stat --per-core/--per-socket/... id (S0-D0-C1), else null"),
        ]
    ),
}

SIDE_TABLES: dict[str, pa.Schema] = {
    "events": pa.schema(
        [
            TS,
            SEQ,
            CPU,
            COMMON_PID,
            _f("tgid", pa.int32(), "process id when the source shows it"),
            _f("comm", DICT, "logging task name as printed; null for placeholders"),
            _f("event", DICT, "event name", nullable=False),
            _f("system", DICT, "event system (sched, kvm, ...) when known"),
            _f("flags_str", DICT, "irq/preempt flag column as printed (text)"),
            _f("flags", pa.uint8(), "raw common_flags (binary)"),
            _f("preempt_count", pa.uint8(), "raw common_preempt_count (binary)"),
            _f("args", pa.string(), "event payload as text (text sources, or rendered fields)"),
            _f("payload", pa.large_binary(), "raw record bytes (binary sources)"),
        ]
    ),
    "tasks": pa.schema(
        [
            _f("pid", pa.int32(), "thread id", nullable=False),
            _f("tgid", pa.int32(), "process id when known"),
            _f("comm", DICT, "name the thread had", nullable=False),
            _f("first_ts", pa.int64(), "first time seen with this name"),
            _f("last_ts", pa.int64(), "last time seen with this name"),
            _f(
                "source", DICT, "where the name came from (line, sched_switch, saved_cmdlines, ...)"
            ),
        ]
    ),
    "lost_events": pa.schema(
        [
            _f("ts", pa.int64(), "time of the next record on that CPU; null if none follows"),
            SEQ,
            _f("cpu", pa.int16(), "CPU whose buffer lost events", nullable=False),
            _f("count", pa.int64(), "number of events lost; null when unknown"),
            _f("kind", DICT, "lost (kernel marker), dropped (trace-cmd), missed (page flag), ..."),
        ]
    ),
    "vcpus": pa.schema(
        [
            _f("tid", pa.int32(), "host thread that runs the vCPU", nullable=False),
            _f("vm", DICT, "VM name: VMM process comm and pid, or the name given by --vcpu"),
            _f("vm_pid", pa.int32(), "VMM process id when known"),
            _f("vcpu_index", pa.int32(), "vCPU index inside the VM when known"),
            _f("comm", DICT, "thread name"),
            _f("method", DICT, "how it was found: explicit, thread-name, x86-vcpu-id, kvm-events"),
        ]
    ),
    "perf_switches": pa.schema(
        [
            TS,
            SEQ,
            _f("cpu", pa.int16(), "CPU of the switch; null when the record carries no CPU"),
            _f("pid", pa.int32(), "process id of the task switched in or out (perf pid)"),
            _f("tid", pa.int32(), "thread switched in or out (perf tid)"),
            _f("out", pa.bool_(), "true: switched out (PERF_RECORD_MISC_SWITCH_OUT)"),
            _f("preempt", pa.bool_(), "switched out while runnable (MISC_SWITCH_OUT_PREEMPT)"),
            _f("next_prev_pid", pa.int32(), "SWITCH_CPU_WIDE: the other task's process id"),
            _f("next_prev_tid", pa.int32(), "SWITCH_CPU_WIDE: the other task's thread id"),
        ]
    ),
    "perf_task_events": pa.schema(
        [
            _f("ts", pa.int64(), "record time; null when the record carries none"),
            SEQ,
            _f("cpu", pa.int16(), "CPU of the record; null when the record carries no CPU"),
            _f("kind", DICT, "comm, exec (COMM from exec), fork or exit", nullable=False),
            _f("pid", pa.int32(), "process id (perf pid)"),
            _f("tid", pa.int32(), "thread id (perf tid)"),
            _f("ppid", pa.int32(), "fork/exit: parent process id"),
            _f("ptid", pa.int32(), "fork/exit: parent thread id"),
            _f("comm", DICT, "comm/exec: the thread's new name"),
        ]
    ),
    "topology": pa.schema(
        [
            _f("cpu", pa.int16(), "host CPU", nullable=False),
            _f("pmu", DICT, "host PMU covering the CPU (sysfs name)"),
            _f("pmu_type", pa.int32(), "perf type id of that PMU"),
            _f("cluster", pa.int16(), "cluster / frequency domain index"),
            _f("capacity", pa.int32(), "relative CPU capacity (1024 = biggest)"),
            _f("max_freq_khz", pa.int64(), "highest frequency"),
            _f(
                "source",
                DICT,
                "sysfs snapshot, LISA platform file, command line, perf.data, inferred",
            ),
            _f("midr_el1", pa.uint64(), "MIDR_EL1 of the CPU (sysfs regs/identification)"),
            _f("pmuver", pa.int8(), "ID_AA64DFR0_EL1.PMUVer a topology file states for the PMU"),
            _f("counters", pa.int8(), "event counters a topology file states for the PMU"),
            _f("aarch32_el0", pa.bool_(), "AArch32 EL0 support a topology file states for the PMU"),
            _f("pmceid0", pa.uint64(), "PMCEID0_EL0 layout of the events the PMU's sysfs lists"),
            _f("pmceid1", pa.uint64(), "PMCEID1_EL0 layout of the events the PMU's sysfs lists"),
            _f("reserved_counters", pa.int8(), "counters the host's own pinned events hold"),
            _f("reserved_cycles", pa.bool_(), "the host's own pinned events hold PMCCNTR"),
        ]
    ),
}

TABLES: dict[str, pa.Schema] = {**TYPED_TABLES, **SIDE_TABLES}


def empty_table(name: str) -> pa.Table:
    """An empty table with the canonical schema of ``name``."""
    return TABLES[name].empty_table()


def conform(name: str, table: pa.Table) -> pa.Table:
    """Cast ``table`` to the canonical schema of ``name`` (column order, types, field docs).

    Columns missing from ``table`` are added as nulls; extra columns are an error, because a
    column that is not in the schema would be lost on the next save.
    """
    schema = TABLES[name]
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"table {name} has columns not in its schema: {sorted(extra)}")
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(cast(table.column(field.name), field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
