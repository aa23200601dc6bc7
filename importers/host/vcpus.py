"""Which host threads are vCPUs, of which VM, with which index (``formats.md`` §2.7).

Methods, strongest first; each row of the result says which one found it:

* ``explicit``: ``--vcpu TID=VM:INDEX`` options (then nothing else is guessed);
* ``x86-vcpu-id``: threads logging x86 ``kvm_entry`` events, which carry the vCPU id;
* ``thread-name``: VMM thread names — QEMU ``CPU n/KVM`` (accel/kvm/kvm-accel-ops.c), crosvm
  ``crosvm_vcpun`` with no space (src/crosvm/sys/linux/vcpu.rs: the VMM of Android's and
  ChromeOS's VMs, named so since 2017), kvmtool ``kvm-vcpu-n``, Firecracker ``fc_vcpu n``,
  Cloud Hypervisor ``vcpun``;
* ``kvm-events``: any other thread that logs ``kvm_entry``/``kvm_exit`` (arm64 events carry
  no vCPU id, so the index stays unknown).

Threads are grouped into VMs by process: the TGID when the capture has it, else the thread
that forked them (``sched_process_fork``), else one VM per VMM kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from importers.arrow_compute import cast, drop_null, fill_null, unique
from importers.capture import Capture
from importers.errors import UsageError
from importers.schema import conform
from importers.skips import SkipLog

VMM_THREAD_NAMES: tuple[tuple[str, str], ...] = (
    ("qemu", r"^CPU (\d+)/KVM$"),
    ("crosvm", r"^crosvm_vcpu(\d+)$"),
    ("kvmtool", r"^kvm-vcpu-(\d+)$"),
    ("firecracker", r"^fc_vcpu (\d+)$"),
    ("cloud-hypervisor", r"^vcpu(\d+)$"),
)
#: the values a thread id or vCPU index can have (vcpus.tid and vcpu_index are int32)
INDEX_MAX = (1 << 31) - 1
#: skip reason of a VMM-style thread name whose index no vCPU can have
HUGE_INDEX = f"vCPU index in a thread name outside {-(1 << 31)}..{INDEX_MAX} (not taken as a vCPU)"
Row = dict[str, Any]


@dataclass(frozen=True)
class VcpuSpec:
    """One ``--vcpu TID=VM:INDEX`` option."""

    tid: int
    vm: str
    index: int | None


def parse_vcpu_specs(specs: list[str]) -> list[VcpuSpec]:
    """Parse ``--vcpu`` options: ``4242=vm0:0``, ``4243=vm0:1``, ``77=web`` (index unknown)."""
    out = []
    for spec in specs:
        m = re.fullmatch(r"\s*(\d+)\s*=\s*([^:\s][^:]*?)\s*(?::\s*(\d+))?\s*", spec)
        if not m:
            raise UsageError(
                f"--vcpu {spec!r}: write TID=VM:INDEX, e.g. --vcpu 4242=vm0:0 (the host thread id "
                "that runs vCPU 0 of vm0)"
            )
        tid, index = int(m.group(1)), int(m.group(3)) if m.group(3) else None
        if not all(n <= INDEX_MAX for n in (tid, index) if n is not None):
            raise UsageError(f"--vcpu {spec!r}: thread ids and vCPU indexes go up to {INDEX_MAX}")
        out.append(VcpuSpec(tid, m.group(2), index))
    tids = [s.tid for s in out]
    if len(set(tids)) != len(tids):
        raise UsageError("--vcpu names the same thread id twice")
    return out


def discover_vcpus(capture: Capture, explicit: list[VcpuSpec] | None = None) -> pa.Table:
    """The ``vcpus`` table of a capture (see module docstring for the methods).

    Threads, not events, are what the rows are about: the few distinct threads of the kvm
    events and of the thread names are found with Arrow, and the rest is plain Python.
    """
    names = _latest_names(capture.table("tasks"))
    if explicit:
        rows: list[Row] = [
            {"tid": s.tid, "vm": s.vm, "vcpu_index": s.index, "method": "explicit"}
            for s in explicit
        ]
        return _table([{**r, **_named(names, r["tid"])} for r in rows])
    found: dict[int, Row] = {}  # by tid, the strongest method first
    entry = drop_null(capture.table("kvm_entry").select(["common_pid", "vcpu_id"]))
    for tid, index in _first_per_thread(entry).items():
        found.setdefault(tid, {"vcpu_index": index, "method": "x86-vcpu-id"})
    named = _vmm_names(capture)
    for tid, (index, _) in named.items():
        found.setdefault(tid, {"vcpu_index": index, "method": "thread-name"})
    for t in ("kvm_entry", "kvm_exit"):
        for tid in unique(capture.table(t).column("common_pid").combine_chunks()).to_pylist():
            if tid is not None:
                found.setdefault(tid, {"vcpu_index": None, "method": "kvm-events"})
    if not found:
        return _table([])
    parents = _first_per_thread(
        capture.table("sched_process_fork").select(["child_pid", "parent_pid"])
    )
    rows = []
    for tid, row in found.items():
        vm_pid, comm = _named(names, tid).values()
        vmm = named[tid][1] if tid in named else None
        parent = parents.get(tid)
        kind = vmm or comm or "vm"
        owner = vm_pid if vm_pid is not None else parent
        rows.append(
            {
                "tid": tid,
                **row,
                "comm": comm,
                "vm": kind if owner is None else f"{kind}:{owner}",
                "vm_pid": owner,
            }
        )
    return _table(rows)


def _latest_names(tasks: pa.Table) -> dict[int, tuple[int | None, str | None]]:
    """Each thread's process (its largest tgid) and the name it had last."""
    pid = tasks.column("pid").to_numpy()
    last = fill_null(tasks.column("last_ts"), np.iinfo(np.int64).min).to_numpy()
    order = np.lexsort((last, pid))  # by thread, the latest name last
    comms = cast(tasks.column("comm"), pa.string()).to_pylist()
    tgids = tasks.column("tgid").to_pylist()
    out: dict[int, tuple[int | None, str | None]] = {}
    for i in order.tolist():
        known = out.get(int(pid[i]), (None, None))[0]
        tgid = tgids[i] if known is None or (tgids[i] is not None and tgids[i] > known) else known
        out[int(pid[i])] = (tgid, comms[i])
    return out


def _named(names: dict[int, tuple[int | None, str | None]], tid: int) -> Row:
    vm_pid, comm = names.get(tid, (None, None))
    return {"vm_pid": vm_pid, "comm": comm}


def _first_per_thread(pairs: pa.Table) -> dict[int, int]:
    """``{first column: second column}`` of each first value's first row (nulls skipped)."""
    pairs = drop_null(pairs)
    keys = pairs.column(0).to_numpy()
    _, first = np.unique(keys, return_index=True)
    first.sort()  # in order of first appearance
    values = pairs.column(1).to_numpy()
    return {int(keys[i]): int(values[i]) for i in first.tolist()}


def _vmm_names(capture: Capture) -> dict[int, tuple[int, str]]:
    """``{tid: (vcpu_index, vmm)}`` of every thread ever named like a VMM's vCPU thread.

    A name whose index does not fit ``vcpu_index`` names no vCPU; it is counted in the
    capture's skips (with the thread and name), not read as a wrapped or unknown index.
    """
    tasks = capture.table("tasks")
    names = cast(tasks.column("comm"), pa.string()).to_pylist()
    tids = tasks.column("pid").to_pylist()
    named: dict[int, tuple[int, str]] = {}
    huge: dict[int, str] = {}
    for vmm, pattern in VMM_THREAD_NAMES:
        regex = re.compile(pattern.removesuffix("$") + r"\Z")  # $ would allow a final newline
        for tid, comm in zip(tids, names, strict=True):
            m = regex.search(comm) if comm is not None else None
            if m is None:
                continue
            digits = m[1]
            if digits.isascii() and int(digits) <= INDEX_MAX:
                named.setdefault(tid, (int(digits), vmm))
            else:
                huge.setdefault(tid, comm)
    if huge:
        log = SkipLog(capture.metadata.source_path)
        log.add(HUGE_INDEX, [f"thread {t} {c!r}" for t, c in huge.items()])
        capture.metadata.skipped.update(log.to_json())
    return named


#: the types of the rows' values, which ``conform`` casts to the table's: named, because
#: inferring them imports dateutil (4 ms of start-up)
_ROW_TYPES = pa.schema(
    [
        ("tid", pa.int64()),
        ("vm", pa.string()),
        ("vm_pid", pa.int64()),
        ("vcpu_index", pa.int64()),
        ("comm", pa.string()),
        ("method", pa.string()),
    ]
)


def _table(rows: list[Row]) -> pa.Table:
    cols = _ROW_TYPES.names
    table = pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows], schema=_ROW_TYPES)
    return conform("vcpus", table)
